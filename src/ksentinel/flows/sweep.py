"""Remove what crashed runs left behind: entries tagged ``ksentinel`` and ``ksentinel-*`` upload tokens.

Only objects carrying ksentinel's tag (entries) or file-name prefix (tokens) are ever touched;
``--tag`` narrows to one run and ``--older-than`` spares what running jobs are still using.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ksentinel.errors import ConfigError, KalturaApiError
from ksentinel.flows.core import TAG
from ksentinel.flows.entries import ALL_STATUSES
from ksentinel.kaltura.api import KalturaApi

PAGE = 500
MAX_PAGES = 200
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> float:
    """``90s``, ``15m``, ``2h``, ``1d`` -> seconds."""
    match = _AGE.match(text or "")
    if not match:
        raise ConfigError(f"bad age {text!r}: use a number with s, m, h or d (e.g. 2h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class SweepResult:
    entries: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _tagged(tags: Any, run_tag: str | None) -> bool:
    parts = {t.strip() for t in str(tags or "").split(",")}
    return TAG in parts and (run_tag is None or f"{TAG}-{run_tag}" in parts)


def sweep(
    api: KalturaApi,
    *,
    run_tag: str | None = None,
    older_than: float = 0.0,
    dry_run: bool = False,
    on_item: Callable[[str, str], None] | None = None,
) -> SweepResult:
    """Delete tagged leftovers with ``api`` (an ADMIN client); returns what was (or would be) removed."""
    result = SweepResult()
    cutoff = int(time.time() - older_than) if older_than else None
    entry_filter: dict[str, Any] = {
        "objectType": "KalturaBaseEntryFilter",
        "tagsLike": TAG,
        "statusIn": ALL_STATUSES,
        "orderBy": "+createdAt",
    }
    if cutoff is not None:
        entry_filter["createdAtLessThanOrEqual"] = cutoff
    doomed: list[str] = []
    for index in range(1, MAX_PAGES + 1):
        page = api.call(
            "baseEntry",
            "list",
            filter=entry_filter,
            pager={"objectType": "KalturaFilterPager", "pageSize": PAGE, "pageIndex": index},
            nocache=1,
        )
        objects = page.get("objects") or []
        doomed += [o["id"] for o in objects if _tagged(o.get("tags"), run_tag)]
        if len(objects) < PAGE:
            break
    for entry_id in doomed:
        _remove(
            api,
            "baseEntry",
            {"entryId": entry_id},
            entry_id,
            "entry",
            result.entries,
            result,
            dry_run,
            on_item,
        )

    prefix = f"{TAG}-{run_tag}" if run_tag else f"{TAG}-"
    token_filter = {"objectType": "KalturaUploadTokenFilter", "statusIn": "0,1,2"}
    tokens: list[str] = []
    for index in range(1, MAX_PAGES + 1):
        page = api.call(
            "uploadToken",
            "list",
            filter=token_filter,
            pager={"objectType": "KalturaFilterPager", "pageSize": PAGE, "pageIndex": index},
            nocache=1,
        )
        objects = page.get("objects") or []
        for token in objects:
            created = int(token.get("createdAt") or 0)
            if str(token.get("fileName") or "").startswith(prefix) and (cutoff is None or created <= cutoff):
                tokens.append(token["id"])
        if len(objects) < PAGE:
            break
    for token_id in tokens:
        _remove(
            api,
            "uploadToken",
            {"uploadTokenId": token_id},
            token_id,
            "upload token",
            result.tokens,
            result,
            dry_run,
            on_item,
        )
    return result


def _remove(
    api: KalturaApi,
    service: str,
    params: dict[str, str],
    object_id: str,
    kind: str,
    bucket: list[str],
    result: SweepResult,
    dry_run: bool,
    on_item: Callable[[str, str], None] | None,
) -> None:
    try:
        if not dry_run:
            api.call(service, "delete", **params)
    except KalturaApiError as exc:
        if exc.code not in ("ENTRY_ID_NOT_FOUND", "UPLOAD_TOKEN_NOT_FOUND"):
            result.errors.append(f"{kind} {object_id}: {exc.code}")
        return
    bucket.append(object_id)
    if on_item is not None:
        on_item(kind, object_id)

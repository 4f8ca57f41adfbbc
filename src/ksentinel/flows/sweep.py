"""Remove what crashed runs left behind: entries tagged ``ksentinel`` and ``ksentinel-*`` upload tokens.

Only objects carrying ksentinel's tag (entries) or file-name prefix (tokens) are ever touched;
``--tag`` narrows to one run and ``--older-than`` spares what running jobs are still using.

Kaltura refuses a list whose offset reaches 10,000 (``QUERY_EXCEEDED_MAX_MATCHES_ALLOWED``), so the sweep
never pages by offset that far:

* entries are read oldest first through a ``createdAt`` cursor: each page asks for
  ``createdAtGreaterThanOrEqual`` = the last ``createdAt`` seen (page 1 again), and ids already seen at
  that boundary second are skipped. Only a run of entries all created in the same second moves the
  page index, and never past the limit;
* ``KalturaUploadTokenFilter`` has no ``createdAt`` filter, only ``orderBy`` ``+createdAt``: tokens are
  read oldest first and deleted as they are met, so the list shrinks under the sweep and the page index
  only has to skip the tokens that stay (other people's, or ones that could not be removed). The first
  token younger than ``--older-than`` ends the walk: everything after it is younger still.
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

MAX_PAGE = 500  # Kaltura's largest page
PAGE = MAX_PAGE  # the page the sweep asks for
MAX_MATCHES = 10_000  # an offset (pageIndex-1)*pageSize from here on is refused (sphinx MAX_MATCHES)
MAX_ROUNDS = 100_000  # list calls per kind of object: a bound against a server that never runs dry
#: every KalturaUploadTokenStatus uploadToken.delete accepts: PENDING, PARTIAL_UPLOAD, FULL_UPLOAD,
#: CLOSED (content taken by an entry) and TIMED_OUT; DELETED (5) is gone already
TOKEN_STATUSES = "0,1,2,3,4"
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
    #: where the listing had to stop before the end (Kaltura's match limit); a new sweep goes on
    incomplete: list[str] = field(default_factory=list)


def _tagged(tags: Any, run_tag: str | None) -> bool:
    parts = {t.strip() for t in str(tags or "").split(",")}
    return TAG in parts and (run_tag is None or f"{TAG}-{run_tag}" in parts)


def _created(obj: dict[str, Any]) -> int | None:
    try:
        return int(obj.get("createdAt"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _pager(page_size: int, index: int) -> dict[str, Any]:
    return {"objectType": "KalturaFilterPager", "pageSize": page_size, "pageIndex": index}


def sweep(
    api: KalturaApi,
    *,
    run_tag: str | None = None,
    older_than: float = 0.0,
    dry_run: bool = False,
    on_item: Callable[[str, str], None] | None = None,
    page_size: int | None = None,
) -> SweepResult:
    """Delete tagged leftovers with ``api`` (an ADMIN client); returns what was (or would be) removed.

    ``older_than`` 0 (a run cleaning up after itself) takes every tagged object, however new;
    ``page_size`` defaults to :data:`PAGE`.
    """
    page_size = PAGE if page_size is None else page_size
    if not 1 <= page_size <= MAX_PAGE:
        raise ValueError(f"page_size must be 1..{MAX_PAGE}")
    result = SweepResult()
    cutoff = int(time.time() - older_than) if older_than else None
    for entry_id in _tagged_entries(api, run_tag, cutoff, page_size, result):
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
    _sweep_tokens(api, run_tag, cutoff, page_size, result, dry_run, on_item)
    return result


def _tagged_entries(
    api: KalturaApi, run_tag: str | None, cutoff: int | None, page_size: int, result: SweepResult
) -> list[str]:
    """Ids of the tagged entries created at or before ``cutoff``, oldest first, by a createdAt cursor."""
    entry_filter: dict[str, Any] = {
        "objectType": "KalturaBaseEntryFilter",
        "tagsLike": TAG,
        "statusIn": ALL_STATUSES,
        "orderBy": "+createdAt",
    }
    if cutoff is not None:
        entry_filter["createdAtLessThanOrEqual"] = cutoff
    cursor: int | None = None
    index = 1
    seen: set[str] = set()
    doomed: list[str] = []
    for _ in range(MAX_ROUNDS):
        if (index - 1) * page_size >= MAX_MATCHES:
            if cursor is None:  # no usable createdAt to move on with
                result.incomplete.append(f"entries: listing stopped at Kaltura's {MAX_MATCHES} matches")
                break
            result.incomplete.append(
                f"entries: more than {MAX_MATCHES} created in second {cursor}; the rest of that second was skipped"
            )
            cursor, index = cursor + 1, 1
        page_filter = dict(entry_filter)
        if cursor is not None:
            page_filter["createdAtGreaterThanOrEqual"] = cursor
        page = api.call("baseEntry", "list", filter=page_filter, pager=_pager(page_size, index), nocache=1)
        objects = page.get("objects") or []
        for obj in objects:
            entry_id = str(obj.get("id") or "")
            if entry_id and entry_id not in seen:
                seen.add(entry_id)
                if _tagged(obj.get("tags"), run_tag):
                    doomed.append(entry_id)
        if len(objects) < page_size:
            break
        last = _created(objects[-1])
        if last is not None and (cursor is None or last > cursor):
            cursor, index = last, 1  # the next page starts at that second again; seen ids are skipped
        else:
            index += 1  # a full page all in the cursor's second: the next page of that second
    else:
        result.incomplete.append(f"entries: stopped after {MAX_ROUNDS} pages")
    return doomed


def _sweep_tokens(
    api: KalturaApi,
    run_tag: str | None,
    cutoff: int | None,
    page_size: int,
    result: SweepResult,
    dry_run: bool,
    on_item: Callable[[str, str], None] | None,
) -> None:
    """Remove ``ksentinel-*`` upload tokens, oldest first, deleting as they are met (see the module)."""
    prefix = f"{TAG}-{run_tag}" if run_tag else f"{TAG}-"
    token_filter = {
        "objectType": "KalturaUploadTokenFilter",
        "statusIn": TOKEN_STATUSES,
        "orderBy": "+createdAt",
    }
    seen: set[str] = set()
    staying = 0  # tokens seen that are still listed in front of the unseen ones
    index = 1
    for _ in range(MAX_ROUNDS):
        if (index - 1) * page_size >= MAX_MATCHES:
            why = "a dry run removes nothing, so it cannot see further" if dry_run else "re-run to go on"
            result.incomplete.append(
                f"upload tokens: listing stopped at Kaltura's {MAX_MATCHES} matches ({staying} kept in front; {why})"
            )
            return
        page = api.call("uploadToken", "list", filter=token_filter, pager=_pager(page_size, index), nocache=1)
        objects = page.get("objects") or []
        done = len(objects) < page_size
        removed = False
        for token in objects:
            token_id = str(token.get("id") or "")
            if not token_id or token_id in seen:
                continue
            seen.add(token_id)
            created = _created(token)
            if cutoff is not None and created is not None and created > cutoff:
                done = True  # oldest first: every token from here on is younger still
                break
            old_enough = cutoff is None or created is not None
            if old_enough and str(token.get("fileName") or "").startswith(prefix):
                gone = _remove(
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
                if gone:
                    removed = True
                    continue
            staying += 1
        if done:
            return
        # removed tokens left the list: the next unseen token is at offset `staying`; otherwise the list
        # is as it was and the next unseen token starts the next page
        index = staying // page_size + 1 if removed else index + 1
    result.incomplete.append(f"upload tokens: stopped after {MAX_ROUNDS} pages")


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
) -> bool:
    """Delete one object; True when it is gone from the lists now (deleted, or already gone)."""
    try:
        if not dry_run:
            api.call(service, "delete", **params)
    except KalturaApiError as exc:
        if exc.code not in ("ENTRY_ID_NOT_FOUND", "UPLOAD_TOKEN_NOT_FOUND"):
            result.errors.append(f"{kind} {object_id}: {exc.code}")
            return False
        return True
    bucket.append(object_id)
    if on_item is not None:
        on_item(kind, object_id)
    return not dry_run

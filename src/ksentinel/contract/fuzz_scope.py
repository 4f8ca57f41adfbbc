"""Default-deny fuzzing: which in-scope actions the fuzzer may send generated cases to.

The one place that says what is fuzzed without being asked (docs/contracts.md, "What is fuzzed"):

* **reads**: an action whose name is one of :data:`READ_VERBS` or starts with one followed by a
  capital letter (``get``, ``getContextData``, ``list``, ``listByReferenceId``, ``count``, ``search``,
  ``ping``);
* **add/delete pairs**: ``add`` and ``delete`` of a service that has both; the guard
  (:mod:`ksentinel.contract.fuzz_safety`) replaces every id with one of the run's own objects and
  everything the run creates is deleted at the end.

Everything else is left out, with its reason, unless ``[contract] fuzz_include`` names it (glob
patterns over ``service.action``, like ``include``). :data:`NEVER_BY_DEFAULT` (exports, bulk uploads,
uploads, flags, bulk deletes, notifications, what starts a batch job) is left out even then, unless
``fuzz_include`` names the action one by one (``media.convert``, no wildcard): a pattern such as
``media.*`` never enables one. A production target (``Target.environment == "production"``) fuzzes
reads only, whatever ``fuzz_include`` says.

Left-out actions stay in the suite's OpenAPI document, marked ``x-ksentinel-not-fuzzed`` (the
reason): the fuzzer sends none of their cases and reports each as *not tested* with that reason.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: the verbs of read-only actions (an action named so, or so followed by a capital letter)
READ_VERBS = ("get", "list", "count", "search", "ping")
#: never fuzzed unless named one by one in ``fuzz_include``: (glob over ``service.action``, why)
NEVER_BY_DEFAULT: tuple[tuple[str, str], ...] = (
    ("*notification*.*", "sends notifications"),
    ("*.*notification*", "sends notifications"),
    ("*.export*", "exports (starts a batch job)"),
    ("*.bulkupload*", "bulk upload (starts a batch job)"),
    ("*.bulkdelete", "bulk delete"),
    ("*.upload", "uploads content"),
    ("*.flag", "flags content for moderation"),
    ("*.convert", "starts a conversion batch job"),
    ("*.*convert", "starts a conversion batch job"),  # reconvert
    ("*.regenerate*", "starts a batch job"),
    ("*.reindex*", "starts a batch job"),
    ("*.index", "starts a batch job"),
    ("*.*tocsv", "starts a batch job"),
    ("*.*batch*", "starts a batch job"),
)
FUZZ_KEY = "fuzz_include"
NOT_FUZZED = "x-ksentinel-not-fuzzed"
_PATH = re.compile(r"^/api_v3/service/([^/]+)/action/([^/]+)$")
_GLOB = re.compile(r"[*?\[\]!]")
PRODUCTION = "production"


def is_read(action: str) -> bool:
    """``get``, ``getContextData``, ``list``, ... (:data:`READ_VERBS`), not ``getter`` or ``listen``."""
    return any(action == verb or re.match(rf"^{verb}[A-Z0-9_]", action) for verb in READ_VERBS)


def never_by_default(service: str, action: str) -> str | None:
    """Why ``service.action`` is never fuzzed unless named one by one, or None."""
    name = f"{service}.{action}".lower()
    return next((why for pattern, why in NEVER_BY_DEFAULT if fnmatch.fnmatchcase(name, pattern)), None)


@dataclass(frozen=True)
class FuzzPolicy:
    """What may be fuzzed: the default (reads, add/delete pairs), ``fuzz_include`` and the environment."""

    include: Sequence[str] = ()
    read_only: bool = False  # a production target: reads only

    def _named(self, names: Iterable[str], action: str) -> tuple[bool, bool]:
        """Whether ``fuzz_include`` matches one of ``names``.``action`` by a pattern, and one by one."""
        matched = exact = False
        for name in names:
            full = f"{name}.{action}".lower()
            for pattern in self.include:
                lowered = pattern.lower() if "." in pattern else f"{pattern.lower()}.*"
                if _GLOB.search(pattern) is None:
                    exact = exact or lowered == full
                    matched = matched or lowered == full
                elif fnmatch.fnmatchcase(full, lowered):
                    matched = True
        return matched, exact

    def reason(self, names: Sequence[str], action: str, service_actions: Iterable[str]) -> str | None:
        """Why ``action`` of the service called ``names`` (its name and id) is not fuzzed, or None."""
        never = next((why for n in names if (why := never_by_default(n, action))), None)
        read = is_read(action) and never is None
        if self.read_only and not read:
            return "production target: reads only"
        matched, exact = self._named(names, action)
        if never is not None:
            if exact:
                return None
            # the reason names no action, so the summary groups every action it covers on one line
            return f"never fuzzed by default: {never} (name each in [contract] {FUZZ_KEY})"
        if read:
            return None
        actions = set(service_actions)
        if action in ("add", "delete") and {"add", "delete"} <= actions:
            return None
        if matched:
            return None
        return (
            f"not fuzzed by default: changes existing state or starts work (add it to [contract] {FUZZ_KEY})"
        )


def policy_for(scope: Any, target: Any = None) -> FuzzPolicy:
    """The policy of a run: ``fuzz_include`` of its scope; reads only on a production target."""
    include = tuple(getattr(scope, FUZZ_KEY, ()) or ()) if scope is not None else ()
    environment = getattr(target, "environment", "test") if target is not None else "test"
    return FuzzPolicy(include, read_only=str(environment).lower() == PRODUCTION)


def decisions(document: Mapping[str, Any], policy: FuzzPolicy) -> dict[str, str | None]:
    """For each operation (``service.action`` as its operationId), why it is not fuzzed (None: fuzzed)."""
    by_service: dict[str, list[tuple[str, str, str]]] = {}
    for path, item in (document.get("paths") or {}).items():
        operation = item.get("post") if isinstance(item, dict) else None
        match = _PATH.match(path)
        if not isinstance(operation, dict) or not match:
            continue
        subject = str(operation.get("operationId") or path)
        service_id = str(operation.get("x-kaltura-service-id") or match.group(1))
        service_name = subject.rsplit(".", 1)[0] if "." in subject else service_id
        by_service.setdefault(service_id, []).append((service_name, match.group(2), subject))
    out: dict[str, str | None] = {}
    for service_id, operations in by_service.items():
        actions = [action for _, action, _ in operations]
        for service_name, action, subject in operations:
            names = [service_name] + ([service_id] if service_id != service_name else [])
            out[subject] = policy.reason(names, action, actions)
    return out


def mark_not_fuzzed(document: dict[str, Any], policy: FuzzPolicy) -> dict[str, str]:
    """Mark each left-out operation of ``document`` (in place) with :data:`NOT_FUZZED`; returns them
    (``service.action`` -> reason)."""
    reasons = decisions(document, policy)
    for item in (document.get("paths") or {}).values():
        operation = item.get("post") if isinstance(item, dict) else None
        if isinstance(operation, dict):
            why = reasons.get(str(operation.get("operationId")))
            if why:
                operation[NOT_FUZZED] = why
            else:
                operation.pop(NOT_FUZZED, None)
    return {subject: why for subject, why in sorted(reasons.items()) if why}


def not_fuzzed_reason(operation: Mapping[str, Any]) -> str | None:
    """Why an operation of the suite's document is not fuzzed (its :data:`NOT_FUZZED` mark), or None."""
    why = operation.get(NOT_FUZZED)
    return str(why) if why else None

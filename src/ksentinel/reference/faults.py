"""Deliberate defects the reference platform can switch on (``ksentinel serve --fault NAME``).

Each fault exists so that some part of ksentinel can prove it catches it; the catalogue says which
part is expected to (the fault matrix of the self-test reads ``detected_by``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ksentinel.errors import ConfigError


@dataclass(frozen=True)
class Fault:
    name: str
    summary: str
    detected_by: tuple[str, ...]


CATALOGUE: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault(
            "schema-drift",
            "entries come back with updatedAt renamed and createdAt as a date string",
            ("contract",),
        ),
        Fault(
            "schema-drift-reads",
            "get and list answers carry entries with updated_at and createdAt as a date string "
            "(add and update answers stay right)",
            ("contract",),
        ),
        Fault(
            "wrong-error-code",
            "a missing entry gives INTERNAL_SERVERL_ERROR instead of ENTRY_ID_NOT_FOUND",
            ("contract", "probe", "alert"),
        ),
        Fault("http-500", "one call in five answers HTTP 500", ("contract", "load", "probe", "alert")),
        Fault("stale-cache", "writes do not invalidate the response cache", ("contract", "probe", "alert")),
        Fault("cache-leak", "the cache key ignores the partner", ("contract",)),
        Fault(
            "cache-user-leak",
            "the cache key ignores the user: one user's cached list is served to another",
            ("contract", "probe", "alert"),
        ),
        Fault("ks-expiry-ignored", "expired KS are accepted", ("contract",)),
        Fault("ks-signature-ignored", "KS signatures are not checked", ("contract",)),
        Fault("slow-list", "baseEntry.list and media.list take 800 ms longer", ("load", "probe")),
        Fault(
            "pager-duplicates", "consecutive list pages overlap by one entry", ("contract", "probe", "alert")
        ),
        Fault(
            "upload-corrupt", "stored content differs from what was uploaded", ("contract", "probe", "alert")
        ),
    )
}

SLOW_LIST_SECONDS = 0.8
HTTP_500_EVERY = 5


def parse_faults(names: list[str] | tuple[str, ...]) -> frozenset[str]:
    """Validate fault names; unknown names give a one-line ``ConfigError``."""
    unknown = [n for n in names if n not in CATALOGUE]
    if unknown:
        raise ConfigError(f"unknown fault {unknown[0]!r}; known faults: {', '.join(sorted(CATALOGUE))}")
    return frozenset(names)


#: the actions whose answers ``schema-drift-reads`` drifts (every action's under ``schema-drift``)
READ_ACTIONS = frozenset({"get", "list"})


def drifts(faults: frozenset[str] | set[str], action: str) -> bool:
    """Whether an answer of ``action`` drifts: always under ``schema-drift``, reads under ``schema-drift-reads``."""
    return "schema-drift" in faults or ("schema-drift-reads" in faults and action.lower() in READ_ACTIONS)


def drift(value: object) -> object:
    """The ``schema-drift`` fault: entries lose ``updatedAt`` to ``updated_at`` and get a date-string ``createdAt``."""
    import datetime

    if isinstance(value, list):
        return [drift(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: drift(v) for k, v in value.items()}
    if str(out.get("objectType", "")).endswith("Entry"):
        if "updatedAt" in out:
            out["updated_at"] = out.pop("updatedAt")
        if isinstance(out.get("createdAt"), int):
            out["createdAt"] = datetime.datetime.fromtimestamp(out["createdAt"], datetime.UTC).isoformat()
    return out

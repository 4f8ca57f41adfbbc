"""The schema diff section of a run report: what ``ksentinel schema diff`` found between two schemas."""

from __future__ import annotations

from typing import Any

from ksentinel.schema.diff_output import DiffOutcome

MAX_ROWS = 2000


def schema_diff_section(outcome: DiffOutcome) -> dict[str, Any]:
    """A plain, JSON-ready dict: the outcome's fields, and its rows in three groups: ``attention``
    (failing, breaking and warning rows that are not ignored), ``ignored``, and, bounded, ``others``
    (the info rows)."""
    data = outcome.to_dict()
    changes = data.pop("changes")
    attention = [c for c in changes if not c["ignored"] and (c["failing"] or c["severity"] != "info")]
    others = [c for c in changes if not c["ignored"] and not c["failing"] and c["severity"] == "info"]
    data["attention"] = attention
    data["ignored"] = [c for c in changes if c["ignored"]]
    data["others"] = others[:MAX_ROWS]
    data["others_left_out"] = max(0, len(others) - MAX_ROWS)
    return data

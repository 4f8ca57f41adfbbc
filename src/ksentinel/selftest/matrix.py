"""The fault matrix as data: one row per fault (and one for the clean platform), one cell per part.

A cell says whether the part was expected to catch the fault (the catalogue's ``detected_by``),
whether it did, and one line of evidence. The clean row expects nothing: any part that raises
something there is an ``ALARM``. :meth:`Matrix.as_dict` is what the JSON report holds;
:meth:`Matrix.render_table` is what the terminal shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ksentinel.selftest.soak import Soak

PARTS = ("contract", "load", "probe", "alert")
CLEAN = "clean"

# the mark of each cell state
CAUGHT, MISSED, NOT_EXPECTED, ALARM, QUIET, ERROR, SKIPPED = (
    "caught",
    "MISSED",
    "-",
    "ALARM",
    "quiet",
    "ERROR",
    "skipped",
)
#: States that make the matrix fail.
FAILING = (MISSED, ALARM, ERROR)


@dataclass
class Cell:
    """One part against one fault.

    ``caught`` is ``None`` when the part did not come to a verdict: it was not run (``ran`` False:
    not expected for this fault, or skipped, e.g. no promtool) or it broke (``ran`` True, ``detail``
    says how).
    """

    fault: str
    part: str
    expected: bool
    caught: bool | None
    detail: str = ""
    seconds: float = 0.0
    ran: bool = True
    evidence: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        clean = self.fault == CLEAN
        if not self.ran:
            return SKIPPED if (self.expected or clean) and self.detail else NOT_EXPECTED
        if self.caught is None:
            return ERROR
        if clean:
            return ALARM if self.caught else QUIET
        if self.expected:
            return CAUGHT if self.caught else MISSED
        return CAUGHT if self.caught else QUIET  # a part run although not named: informative only

    def as_dict(self) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "caught": self.caught,
            "detail": self.detail,
            "state": self.state,
            "seconds": round(self.seconds, 2),
            "evidence": list(self.evidence),
        }


@dataclass
class Row:
    fault: str  # a catalogue name, or "clean"
    summary: str
    cells: dict[str, Cell] = field(default_factory=dict)
    problem: str = ""  # the catalogue entry itself is wrong (no detector, unknown part)

    @property
    def ok(self) -> bool:
        if self.problem:
            return False
        return not any(cell.state in FAILING for cell in self.cells.values())


@dataclass
class Matrix:
    parts: tuple[str, ...] = PARTS
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0
    soak: Soak | None = None  # the clean soak, when it was asked for

    def row(self, fault: str) -> Row:
        return next(r for r in self.rows if r.fault == fault)

    def cells(self) -> list[Cell]:
        return [cell for row in self.rows for cell in row.cells.values()]

    @property
    def problems(self) -> list[str]:
        return [f"{row.fault}: {row.problem}" for row in self.rows if row.problem]

    @property
    def ok(self) -> bool:
        """Every expected detection happened, the clean platform raised nothing (the soak included),
        nothing broke."""
        return all(row.ok for row in self.rows) and (self.soak is None or self.soak.ok)

    @property
    def caught(self) -> int:
        return sum(
            1 for cell in self.cells() if cell.fault != CLEAN and cell.expected and cell.caught is True
        )

    @property
    def expected(self) -> int:
        """Expected detections that came to a verdict or broke (skipped cells are not counted)."""
        return sum(
            1 for cell in self.cells() if cell.fault != CLEAN and cell.expected and cell.state != SKIPPED
        )

    @property
    def score(self) -> str:
        return f"{self.caught}/{self.expected}"

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for cell in self.cells():
            found[cell.state] = found.get(cell.state, 0) + 1
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "score": self.score,
            "parts": list(self.parts),
            "seconds": round(self.seconds, 1),
            "problems": self.problems,
            "soak": self.soak.as_dict() if self.soak is not None else None,
            "rows": [
                {
                    "fault": row.fault,
                    "summary": row.summary,
                    "problem": row.problem,
                    "cells": {part: cell.as_dict() for part, cell in row.cells.items()},
                }
                for row in self.rows
            ],
        }

    def render_table(self) -> str:
        """Faults as rows, parts as columns; then the evidence of each cell that ran, and a verdict."""
        header = ("FAULT", *self.parts)
        body = []
        for row in self.rows:
            marks = [row.cells[p].state if p in row.cells else NOT_EXPECTED for p in self.parts]
            body.append((row.fault, *marks) if not row.problem else (row.fault, *marks, "<- " + row.problem))
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
        lines = []
        for index, line in enumerate([header, *body]):
            cells = [cell.ljust(widths[i]) if i < len(widths) else cell for i, cell in enumerate(line)]
            lines.append("  ".join(cells).rstrip())
            if index == 0:
                lines.append("  ".join("-" * w for w in widths))
        evidence = [
            f"  {cell.fault} / {cell.part}: {cell.state}: {cell.detail}"
            for cell in self.cells()
            if cell.detail and (cell.ran or cell.state == SKIPPED)
        ]
        if evidence:
            lines += ["", "evidence:", *evidence]
        if self.problems:
            lines += ["", "catalogue problems:", *(f"  {p}" for p in self.problems)]
        if self.soak is not None:
            lines += ["", self.soak.summary()]
            lines += [f"  {failure}" for failure in self.soak.failures[:5]]
            if len(self.soak.failures) > 5:
                lines.append(f"  ... and {len(self.soak.failures) - 5} more")
        counts = self.counts()
        alarms, missed, errors = counts.get(ALARM, 0), counts.get(MISSED, 0), counts.get(ERROR, 0)
        verdict = "PASS" if self.ok else "FAIL"
        tail = f"{missed} missed, {alarms} alarms on the clean platform, {errors} errors"
        if counts.get(SKIPPED):
            tail += f", {counts[SKIPPED]} skipped"
        if self.problems:
            tail += f", {len(self.problems)} catalogue problems"
        if self.soak is not None:
            tail += f", clean soak {self.soak.state}"
        lines += ["", f"fault matrix: {verdict}: score {self.score} caught; {tail} in {self.seconds:.0f}s"]
        return "\n".join(lines)

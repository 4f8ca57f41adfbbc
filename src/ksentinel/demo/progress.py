"""Progress of the demo's stages on stderr: rich bars on a terminal, one plain line per event elsewhere."""

from __future__ import annotations

import sys
import time
from typing import Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from ksentinel.report.model import Stage

_MARK = {"passed": "[green]ok[/]", "skipped": "[dim]skipped[/]"}


class StageProgress(Protocol):
    def __enter__(self) -> StageProgress: ...
    def __exit__(self, *exc: object) -> None: ...
    def start(self, name: str, detail: str = "") -> None: ...
    def tick(self, fraction: float) -> None: ...
    def done(self, stage: Stage) -> None: ...


class RichProgress:
    """One bar per stage; a stage that knows its length (load) fills its bar, the others pulse."""

    def __init__(self, names: list[str], console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(finished_text="•"),
            TextColumn("{task.description:<12}"),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {
            name: self._progress.add_task(name, total=None, start=False, note="[dim]waiting[/]")
            for name in names
        }
        self._current: str | None = None

    def __enter__(self) -> RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)

    def start(self, name: str, detail: str = "") -> None:
        self._current = name
        task = self._tasks[name]
        self._progress.start_task(task)
        self._progress.update(task, note=escape(detail) or "running", total=None)

    def tick(self, fraction: float) -> None:
        if self._current is not None:
            self._progress.update(self._tasks[self._current], total=1.0, completed=fraction)

    def done(self, stage: Stage) -> None:
        task = self._tasks[stage.name]
        self._progress.start_task(task)  # a skipped stage never started: stop its spinner too
        mark = _MARK.get(stage.status, f"[bold red]{stage.status.upper()}[/]")
        note = f"{mark} {escape(stage.summary[:160])}"
        if stage.status == "skipped":
            self._progress.update(task, total=1.0, completed=0, note=note)
        else:
            self._progress.update(task, total=1.0, completed=1.0, note=note)
        self._progress.stop_task(task)
        self._current = None


class PlainProgress:
    """For logs and CI: a line when a stage starts and one when it ends."""

    def __init__(self, names: list[str]) -> None:
        self._names = names
        self._started = 0.0

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _say(self, text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def start(self, name: str, detail: str = "") -> None:
        self._started = time.monotonic()
        position = self._names.index(name) + 1 if name in self._names else 0
        self._say(
            f"ksentinel demo: [{position}/{len(self._names)}] {name}" + (f": {detail}" if detail else "")
        )

    def tick(self, fraction: float) -> None:
        return None

    def done(self, stage: Stage) -> None:
        self._say(f"ksentinel demo:   {stage.name} {stage.status} in {stage.seconds:.1f}s: {stage.summary}")


def stage_progress(names: list[str]) -> StageProgress:
    console = Console(file=sys.stderr)  # fixed now: stages redirect sys.stderr into their logs
    return RichProgress(names, console) if console.is_terminal else PlainProgress(names)

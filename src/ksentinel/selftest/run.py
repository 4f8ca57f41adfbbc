"""``run_matrix``: the clean platform and each fault of the catalogue against the parts named for it.

Each row gets a fresh embedded reference platform (the fault switched on, or none for the clean
row) and runs its parts one after the other: contract, load, probe, alert. The clean row runs every
selected part and expects nothing; a fault row runs the parts its ``detected_by`` names and
expects each to catch it. A catalogue entry with no detector, or naming a part that does not
exist, is not run: it is a problem of the matrix itself and fails it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ksentinel.config import Config, Target
from ksentinel.errors import ConfigError, KsentinelError
from ksentinel.selftest import parts as part_lib
from ksentinel.selftest.matrix import CLEAN, PARTS, Cell, Matrix, Row
from ksentinel.slo import SloSpec

Progress = Callable[[str], None]


def _quiet(line: str) -> None:
    pass


def catalogue() -> dict[str, object]:
    """The reference platform's fault catalogue (read at call time, so tests can extend it)."""
    from ksentinel.reference import faults

    return dict(faults.CATALOGUE)


def catalogue_problem(detected_by: Sequence[str]) -> str:
    """Why a catalogue entry cannot be part of the matrix, or ``""``."""
    if not detected_by:
        return "no detector: its detected_by is empty"
    unknown = [part for part in detected_by if part not in PARTS]
    if unknown:
        return f"detected_by names unknown part {unknown[0]!r} (parts: {', '.join(PARTS)})"
    return ""


def run_matrix(
    faults: Sequence[str] | None = None,
    parts: Sequence[str] | None = None,
    progress: Progress | None = None,
    *,
    include_clean: bool = True,
    verbose: bool = False,
    soak_passes: int = 0,
) -> Matrix:
    """Run the matrix; ``faults``/``parts`` narrow it (default: all). Raises ``ConfigError`` on unknown names.

    ``progress`` receives one line per cell as it finishes (and, with ``verbose``, the parts' own output).
    With ``include_clean`` and ``soak_passes`` > 0, a clean soak follows the rows (:mod:`.soak`).
    """
    say = progress or _quiet
    known = catalogue()
    chosen_faults = list(dict.fromkeys(faults)) if faults is not None else list(known)
    for name in chosen_faults:
        if name not in known:
            raise ConfigError(f"unknown fault {name!r}; known faults: {', '.join(sorted(known))}")
    chosen_parts = tuple(dict.fromkeys(parts)) if parts is not None else PARTS
    for part in chosen_parts:
        if part not in PARTS:
            raise ConfigError(f"unknown part {part!r}; parts: {', '.join(PARTS)}")
    shown_parts = tuple(p for p in PARTS if p in chosen_parts)
    matrix = Matrix(parts=shown_parts)
    started = time.monotonic()
    objectives: SloSpec | None = None

    plans: list[tuple[Row, tuple[str, ...]]] = []
    if include_clean:
        row = Row(CLEAN, "no fault: every part runs and must raise nothing")
        plans.append((row, shown_parts))
    for name in chosen_faults:
        fault = known[name]
        detected_by = tuple(getattr(fault, "detected_by", ()))
        row = Row(name, str(getattr(fault, "summary", "")))
        row.problem = catalogue_problem(detected_by)
        to_run = () if row.problem else tuple(p for p in shown_parts if p in detected_by)
        if not row.problem and not to_run:
            continue  # --part left none of its detectors
        plans.append((row, to_run))

    with part_lib.isolated_config() as config:
        for row, to_run in plans:
            matrix.rows.append(row)
            named = () if row.fault == CLEAN else getattr(known.get(row.fault), "detected_by", ())
            for part in shown_parts:
                row.cells[part] = Cell(row.fault, part, part in named, None, ran=False)
            if row.problem:
                say(f"{row.fault}: not run: {row.problem}")
                continue
            if objectives is None:
                objectives = part_lib.default_objectives()
            _run_row(row, to_run, _Context(config, objectives, say, verbose))
        if include_clean and soak_passes > 0:
            from ksentinel.selftest.soak import run_soak

            matrix.soak = run_soak(config, soak_passes, say)
    matrix.seconds = time.monotonic() - started
    return matrix


@dataclass(frozen=True)
class _Context:
    config: Config
    objectives: SloSpec
    say: Progress
    verbose: bool

    @property
    def output(self) -> part_lib.Output:
        return (lambda line: self.say(f"    | {line}")) if self.verbose else _quiet


def _run_row(row: Row, to_run: tuple[str, ...], context: _Context) -> None:
    from ksentinel.embedded import open_target
    from ksentinel.flows.preflight import check_target

    say = context.say
    faults = () if row.fault == CLEAN else (row.fault,)
    say(f"{row.fault}: starting the reference platform; parts: {', '.join(to_run)}")
    try:
        with open_target(None, faults=faults, config=context.config) as target:
            # the one preflight of the row, before any part: its calls come first on a fresh platform
            check_target(target)
            observation: part_lib.ProbeObservation | None = None
            for part in to_run:
                began = time.monotonic()
                try:
                    verdict, observation = _run_part(part, target, observation, context)
                except KsentinelError as exc:
                    verdict = part_lib.Verdict(None, f"error: {exc}")
                except Exception as exc:  # a self-test reports a broken part and goes on
                    verdict = part_lib.Verdict(None, f"error: {exc.__class__.__name__}: {exc}")
                cell = row.cells[part]
                cell.caught, cell.detail, cell.ran = verdict.caught, verdict.detail, verdict.ran
                cell.evidence = list(verdict.evidence)
                cell.seconds = time.monotonic() - began
                say(f"{row.fault}: {part}: {cell.state} in {cell.seconds:.1f}s: {cell.detail}")
    except KsentinelError as exc:
        for part in to_run:
            cell = row.cells[part]
            if not cell.ran and not cell.detail:
                cell.caught, cell.ran = None, True
                cell.detail = f"error: the platform could not be tested: {exc}"
        say(f"{row.fault}: error: {exc}")


def _run_part(
    part: str, target: Target, observation: part_lib.ProbeObservation | None, context: _Context
) -> tuple[part_lib.Verdict, part_lib.ProbeObservation | None]:
    output, objectives = context.output, context.objectives
    if part == "contract":
        return part_lib.contract_part(target, config=context.config, output=output), observation
    if part == "load":
        return part_lib.load_part(target, config=context.config, output=output), observation
    if part == "probe":
        observation = part_lib.observe_probe(target, output=output, verbose=context.verbose)
        return part_lib.probe_verdict(observation, objectives), observation
    if part == "alert":
        if part_lib.find_promtool() is None:  # say so without running the probe for nothing
            return part_lib.alert_part(part_lib.ProbeObservation(), objectives), observation
        if observation is None:  # the alert part replays what the probe sees, named for it or not
            observation = part_lib.observe_probe(target, output=output, verbose=context.verbose)
        return part_lib.alert_part(observation, objectives), observation
    raise ConfigError(f"unknown part {part!r}")

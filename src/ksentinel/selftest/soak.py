"""The clean soak: many probe passes of every flow on a fresh, realistic reference platform.

The fault matrix's clean row shows that one pass raises nothing; the soak shows that the flows stay
quiet run after run on a platform that lags, converts asynchronously, redirects downloads and marks
some cache hits differently (docs/reference-platform.md, "Realism"): the false alarms a real Kaltura
would raise once an hour show up here. Every run must succeed; a soak that did not run all its
passes is "not tested", never a pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ksentinel.config import Config
from ksentinel.errors import KsentinelError

DEFAULT_PASSES = 20
MAX_FAILURES_SHOWN = 5
Progress = Callable[[str], None]

PASS, FAIL, NOT_TESTED = "PASS", "FAIL", "not tested"


@dataclass
class Soak:
    """What the soak saw: runs per flow, the failures (one line each) and why it stopped early."""

    passes: int
    flows: tuple[str, ...] = ()
    runs: int = 0
    passes_done: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    problem: str = ""  # why it could not run all its passes

    @property
    def expected_runs(self) -> int:
        return self.passes * len(self.flows)

    @property
    def state(self) -> str:
        if self.failures:
            return FAIL
        if self.problem or not self.flows or self.runs < self.expected_runs:
            return NOT_TESTED
        return PASS

    @property
    def ok(self) -> bool:
        return self.state == PASS

    def summary(self) -> str:
        if self.state == PASS:
            return (
                f"clean soak: PASS: {self.passes_done}/{self.passes} passes, {self.runs} runs of "
                f"{len(self.flows)} flows, 0 failures in {self.seconds:.0f}s"
            )
        if self.state == FAIL:
            return (
                f"clean soak: FAIL: {len(self.failures)} of {self.runs} runs failed "
                f"({self.passes_done}/{self.passes} passes) in {self.seconds:.0f}s"
            )
        why = self.problem or f"only {self.runs} of {self.expected_runs} runs happened"
        return f"clean soak: not tested: {why}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "ok": self.ok,
            "passes": self.passes,
            "passes_done": self.passes_done,
            "flows": list(self.flows),
            "runs": self.runs,
            "expected_runs": self.expected_runs,
            "failures": list(self.failures),
            "problem": self.problem,
            "seconds": round(self.seconds, 1),
            "summary": self.summary(),
        }


def run_soak(
    config: Config,
    passes: int = DEFAULT_PASSES,
    progress: Progress | None = None,
    *,
    faults: tuple[str, ...] = (),
) -> Soak:
    """``passes`` probe passes of every flow, one run at a time, on a fresh realistic platform
    (``faults`` only to prove the soak can fail)."""
    from ksentinel.embedded import open_target
    from ksentinel.flows import all_flows
    from ksentinel.flows.preflight import check_target
    from ksentinel.selftest.parts import observe_probe

    say = progress or (lambda line: None)
    soak = Soak(passes, tuple(all_flows()))
    started = time.monotonic()

    def output(line: str) -> None:
        # observe_probe says "probe pass N: flow result ..." once per run
        if " success " not in f" {line} ":
            say(f"soak: {line}")

    try:
        with open_target(None, faults=faults, config=config) as target:
            check_target(target)
            say(f"soak: {passes} passes of {len(soak.flows)} flows against {target.url}")
            for number in range(1, passes + 1):
                observation = observe_probe(target, passes=1, output=output)
                outcomes = [o for batch in observation.outcomes for o in batch]
                soak.runs += len(outcomes)
                for outcome in outcomes:
                    if not outcome.ok:
                        where = f" at {outcome.failed_step}" if outcome.failed_step else ""
                        soak.failures.append(
                            f"pass {number}: {outcome.flow} {outcome.result}{where}: {outcome.reason}"[:300]
                        )
                soak.passes_done = number
                say(
                    f"soak: pass {number}/{passes}: {len(outcomes)} runs, "
                    f"{len(soak.failures)} failures so far ({time.monotonic() - started:.0f}s)"
                )
    except KsentinelError as exc:
        soak.problem = f"the platform could not be soaked: {exc}"
    except KeyboardInterrupt:
        soak.problem = f"interrupted after {soak.passes_done} of {passes} passes"
        soak.seconds = time.monotonic() - started
        raise
    finally:
        soak.seconds = time.monotonic() - started
    return soak

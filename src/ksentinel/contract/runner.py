"""``ksentinel contract``: run the contract suite against a target and write JUnit + an HTML report.

Exit codes: 0 every contract kept, 1 a contract broken, 2 usage error or a target that is
unreachable, not a Kaltura API or refuses our secret (one line on stderr), 130 interrupted (SIGINT or
SIGTERM: the check in progress ends, what the run created is deleted, the report, its JSON and JUnit
are written with the verdict INCOMPLETE).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ksentinel.config import ENV_CONFIG, Target, load_config
from ksentinel.config.child_env import target_environment
from ksentinel.contract.profiles import get_profile
from ksentinel.contract.settings import contract_settings
from ksentinel.report import CheckResult, ContractSection, RunReport, write_report

EXIT_OK, EXIT_BROKEN, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass
class ContractOutcome:
    exit_code: int
    section: ContractSection
    report_path: Path | None
    junit_path: Path | None


def find_suite(suite: Path | None) -> Path:
    """The contract suite folder: ``--suite``, else ``./contracts``, else the one shipped with ksentinel."""
    from ksentinel.suites import find_suite as find

    return find("contracts", suite).path


#: pytest's exit codes for a suite that did not run at all (a tool error of ours, never the target's)
_NOT_RUN = {
    2: "the contract suite could not be collected (an error while importing it: see the output above)",
    3: "pytest failed internally (see the output above)",
    4: "pytest refused its command line (see the output above)",
    5: "the contract suite holds no checks",
}


class _InterruptWatch:
    """A pytest plugin that notes a KeyboardInterrupt ending the session (pytest returns 2 for it)."""

    def __init__(self) -> None:
        self.seen = False

    def pytest_keyboard_interrupt(self, excinfo: object) -> None:
        import pytest

        value = getattr(excinfo, "value", None)
        # pytest stops on a collection error with Session.Interrupted, a KeyboardInterrupt too: that is
        # a suite that could not run (exit 2, a tool error), not a run someone interrupted
        if isinstance(value, KeyboardInterrupt) and not isinstance(value, pytest.Session.Interrupted):
            self.seen = True


@contextlib.contextmanager
def exit_when_interrupted() -> Iterator[None]:
    """SIGINT or SIGTERM outside the checks (starting the platform, the preflight): one line, exit 130."""
    from ksentinel.pytest_plugin import stop_on_signals

    with stop_on_signals() as stopped:
        try:
            yield
        except KeyboardInterrupt:
            sys.stderr.write(f"ksentinel contract: interrupted ({stopped.signal or 'SIGINT'})\n")
            raise SystemExit(EXIT_INTERRUPTED) from None


def run_contract(
    target: Target,
    *,
    profile: str = "ci",
    suite: Path | None = None,
    junit: Path | None = None,
    report: Path | None = None,
    workers: int = 0,
    verbose: bool = False,
    extra_args: tuple[str, ...] = (),
    config_path: Path | None = None,
) -> ContractOutcome:
    """Run the suite with pytest in this process; the caller has run :func:`check_target`.

    ``config_path`` (else ``$KSENTINEL_CONFIG``, else the ``ksentinel.toml`` found walking up) is the
    file whose ``[contract]`` section the suite reads; it is validated before any test runs.
    """
    import pytest

    from ksentinel.contract.junit import fold_summaries
    from ksentinel.pytest_plugin import stop_on_signals

    chosen = get_profile(profile)
    suite_dir = find_suite(suite)
    if config_path is None and os.environ.get(ENV_CONFIG):
        config_path = Path(os.environ[ENV_CONFIG])
    contract_settings(load_config(config_path))  # a bad [contract] key is one line and exit 2
    started = time.time()
    run_id = time.strftime("%Y%m%d%H%M%S", time.localtime(started))
    with tempfile.TemporaryDirectory(prefix="ksentinel-contract-") as tmp:
        results_file = Path(tmp) / "results.json"
        args = [
            str(suite_dir),
            "--rootdir",
            str(suite_dir),
            "-c",
            str(suite_dir / "pytest.ini"),
            "--ksentinel-profile",
            chosen.name,
            "--ksentinel-results",
            str(results_file),
            "--ksentinel-run-id",
            f"contract-{run_id}",
            "-v" if verbose else "-q",
        ]
        if junit is not None:
            junit.parent.mkdir(parents=True, exist_ok=True)
            args += ["--junitxml", str(junit)]
        if workers:
            args += ["-n", str(workers)]
        if config_path is not None:
            args += ["--ksentinel-config", str(config_path.absolute())]
        args += list(extra_args)
        watch = _InterruptWatch()
        with target_environment(target), stop_on_signals() as stopped:
            try:
                code = int(pytest.main(args, plugins=[watch]))
            except KeyboardInterrupt:  # another signal while pytest was cleaning up
                code, watch.seen = EXIT_INTERRUPTED, True
        results = json.loads(results_file.read_text()) if results_file.exists() else []
    if junit is not None and junit.exists():
        fold_summaries(junit)  # the fuzzed actions' umbrella test is not one more check
    interrupted = watch.seen or stopped.signal is not None
    section = ContractSection(
        chosen.name,
        [CheckResult.from_dict(r) for r in results],
        time.time() - started,
        interrupted=interrupted,
        not_run=None if interrupted else _NOT_RUN.get(code),
    )
    exit_code = EXIT_OK if code == 0 else EXIT_BROKEN if code == 1 else EXIT_USAGE
    if code == 0 and not section.judged:
        exit_code = EXIT_USAGE  # nothing was judged (every check skipped or not tested): never a pass
    if code == 1 and not section.counts()["failed"] and section.counts()["error"]:
        exit_code = EXIT_USAGE  # tool errors and nothing broken: the run could not judge
    if interrupted:
        exit_code = EXIT_INTERRUPTED
    report_path = None
    if report is not None:
        run_report = RunReport(
            title="ksentinel contract",
            target=f"{target.name} {target.url} partner {target.partner_id}",
            started=time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
            duration=time.time() - started,
            contract=section,
        )
        if junit is not None:
            run_report.links["JUnit XML"] = os.path.relpath(junit, report.parent)
        report_path = write_report(run_report, report)
    return ContractOutcome(exit_code, section, report_path, junit)

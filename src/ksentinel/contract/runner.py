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
from ksentinel.contract.profiles import get_profile
from ksentinel.contract.settings import contract_settings
from ksentinel.errors import ConfigError, KsentinelError
from ksentinel.flows import Credentials, Sessions
from ksentinel.flows.preflight import preflight
from ksentinel.kaltura.api import KalturaApi
from ksentinel.report import CheckResult, ContractSection, RunReport, write_report

EXIT_OK, EXIT_BROKEN, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
TARGET_ENV = (
    "KSENTINEL_URL",
    "KSENTINEL_PARTNER_ID",
    "KSENTINEL_ADMIN_SECRET",
    "KSENTINEL_USER_SECRET",
    "KSENTINEL_PEER_PARTNER_ID",
    "KSENTINEL_PEER_ADMIN_SECRET",
    "KSENTINEL_TARGET",
    "KSENTINEL_CONFIG",
    "KSENTINEL_KS_VERSION",
    "KSENTINEL_TIMEOUT",
    "KSENTINEL_READY_TIMEOUT",
    "KSENTINEL_ENVIRONMENT",
    "KSENTINEL_ALLOW_WRITES",
    "KSENTINEL_MAX_RPS",
)


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


def credentials_of(target: Target) -> Credentials:
    if target.admin_secret is None:
        raise ConfigError(f"target {target.name!r} has no admin secret (set KSENTINEL_ADMIN_SECRET)")
    return Credentials(
        target.partner_id,
        target.admin_secret.reveal(),
        target.user_secret.reveal() if target.user_secret else None,
        target.peer_partner_id,
        target.peer_admin_secret.reveal() if target.peer_admin_secret else None,
        target.ks_version,
    )


def check_target(target: Target) -> Credentials:
    """Preflight: raises a one-line TargetError when the target cannot be tested at all. The KS it
    used is ended right after (``session.end``, the KS in the body)."""
    credentials = credentials_of(target)
    with KalturaApi(target.url, partner_id=target.partner_id, timeout=min(target.timeout, 15.0)) as api:
        sessions = Sessions(credentials, track=True)
        try:
            preflight(api, sessions)
        finally:
            # best effort and brief: a target that hangs past the preflight must not hold the run
            with (
                contextlib.suppress(KsentinelError),
                KalturaApi(
                    target.url, partner_id=target.partner_id, timeout=min(target.timeout, 3.0)
                ) as brief,
            ):
                sessions.end_all(brief)
    return credentials


class _InterruptWatch:
    """A pytest plugin that notes a KeyboardInterrupt ending the session (pytest returns 2 for it)."""

    def __init__(self) -> None:
        self.seen = False

    def pytest_keyboard_interrupt(self, excinfo: object) -> None:
        if isinstance(getattr(excinfo, "value", None), KeyboardInterrupt):
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


@contextlib.contextmanager
def target_environment(target: Target) -> Iterator[None]:
    """Expose ``target`` to the pytest run (and its xdist workers) through KSENTINEL_* variables."""
    saved = {name: os.environ.get(name) for name in TARGET_ENV}
    values = {
        "KSENTINEL_URL": target.url,
        "KSENTINEL_PARTNER_ID": str(target.partner_id),
        "KSENTINEL_ADMIN_SECRET": target.admin_secret.reveal() if target.admin_secret else None,
        "KSENTINEL_USER_SECRET": target.user_secret.reveal() if target.user_secret else None,
        "KSENTINEL_PEER_PARTNER_ID": str(target.peer_partner_id) if target.peer_partner_id else None,
        "KSENTINEL_PEER_ADMIN_SECRET": target.peer_admin_secret.reveal()
        if target.peer_admin_secret
        else None,
        "KSENTINEL_KS_VERSION": str(target.ks_version),
        "KSENTINEL_TIMEOUT": str(target.timeout),
        "KSENTINEL_READY_TIMEOUT": str(target.ready_timeout),
        # the workers see an ad-hoc URL target: it must keep this target's environment, write
        # permission and rate cap, or a production target would be fuzzed as staging
        "KSENTINEL_ENVIRONMENT": target.environment,
        "KSENTINEL_ALLOW_WRITES": "true" if target.allow_writes else "false",
        "KSENTINEL_MAX_RPS": "unlimited" if target.max_rps is None else str(target.max_rps),
    }
    try:
        for name in TARGET_ENV:
            os.environ.pop(name, None)
        for name, value in values.items():
            if value is not None:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
    )
    exit_code = EXIT_OK if code == 0 else EXIT_BROKEN if code == 1 else EXIT_USAGE
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

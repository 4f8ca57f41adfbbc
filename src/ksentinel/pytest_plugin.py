"""The pytest plugin behind ``contracts/``: the target, API client, sessions and flow fixtures.

Registered as the ``ksentinel`` pytest11 entry point. It is inert unless a test asks for one of its
fixtures. Options: ``--ksentinel-target/--ksentinel-url/--ksentinel-partner-id/--ksentinel-config``
(secrets from the environment as everywhere), ``--ksentinel-profile`` and ``--ksentinel-results``
(a JSON file of every check's outcome and details, the input of the HTML report). Failure texts are
redacted before any reporter (terminal, JUnit) sees them.

A failed check shows the exchange that proves it: the suite's client sends through a
:class:`~ksentinel.kaltura.recorder.Recorder`, and a check that failed without naming an exchange of
its own (the fuzzed actions name theirs) gets the last one it sent (a flow: the last one of the step
that failed), redacted, as ``request``/``response`` in its details and under its failure text. That
text starts with what broke (``E   <rule>: <why>``), as a fuzzed action's does, so JUnit's message
says it, not the check's source.

An *advisory* finding (``ksentinel_advise``) is something worth knowing that does not break the
contract, such as a real Kaltura echoing a refused KS: the check is skipped with a reason starting
``advisory:`` and a ``ksentinel.advisory`` JUnit property, and its outcome in the results is
``advisory``, never a failure.

SIGINT and SIGTERM (a cancelled CI job) stop a contract run like Ctrl-C (:func:`stop_on_signals`):
the check in progress ends, the fixtures are torn down (what the run created is deleted), the results
and JUnit are written, and JUnit marks the run ``interrupted`` (a ``ksentinel.interrupted`` testsuite
property and an error test case of that name); ``ksentinel contract`` then exits 130, INCOMPLETE.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import statistics
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ksentinel.config import Config, Target, load_config, resolve_target
from ksentinel.contract.profiles import ContractProfile, get_profile
from ksentinel.contract.settings import ContractSettings, contract_settings
from ksentinel.errors import ConfigError
from ksentinel.flows import Credentials, FlowContext, FlowResult, Sessions, get_flow, new_run_id, run_flow
from ksentinel.flows.sessions import credentials_of
from ksentinel.kaltura.api import KalturaApi
from ksentinel.kaltura.recorder import Recorder, evidence
from ksentinel.kaltura.redact import redact
from ksentinel.kaltura.transport import HttpxTransport

logger = logging.getLogger(__name__)

DETAILS = "ksentinel"
ADVISORY = f"{DETAILS}.advisory"
INDEX_LAG = f"{DETAILS}.index_lag"
NOT_TESTED_STEPS = f"{DETAILS}.not_tested_steps"  # JUnit property: steps a flow could not check here
ADVISORY_PREFIX = "advisory: "
INTERRUPTED = f"{DETAILS}.interrupted"
#: a row that sums up other rows (a test fanned out into subtests, each its own row): its value is
#: the summary; the report shows it without counting it, and ``ksentinel contract`` folds its JUnit
#: test case into testsuite properties (each action is counted once)
SUMMARY = f"{DETAILS}.summary"
#: set on an item whose check records its own exchanges (the fuzzer's): the client's last one says
#: nothing about its failure
OWN_EXCHANGES = pytest.StashKey[bool]()
_EXCHANGES = pytest.StashKey[Recorder]()
_CALL_MARK = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ksentinel", "ksentinel contract suite")
    group.addoption(
        "--ksentinel-config", default=None, help="ksentinel.toml to use (default: found walking up)"
    )
    group.addoption(
        "--ksentinel-target", default=None, help="target name from ksentinel.toml (env KSENTINEL_TARGET)"
    )
    group.addoption("--ksentinel-url", default=None, help="ad-hoc target URL (env KSENTINEL_URL)")
    group.addoption(
        "--ksentinel-partner-id",
        default=None,
        type=int,
        help="ad-hoc target partner id (env KSENTINEL_PARTNER_ID)",
    )
    group.addoption(
        "--ksentinel-profile", default=os.environ.get("KSENTINEL_PROFILE", "ci"), help="quick, ci or deep"
    )
    group.addoption(
        "--ksentinel-results", default=None, help="write every check's outcome as JSON to this file"
    )
    group.addoption(
        "--ksentinel-run-id", default=os.environ.get("KSENTINEL_RUN_ID"), help="tag for created objects"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ksentinel(kind, subject): what a contract check covers (for the report)"
    )
    config.pluginmanager.register(
        ResultsCollector(config.getoption("--ksentinel-results")), "ksentinel-results"
    )


# ---- interrupts ------------------------------------------------------------------------------------
@dataclasses.dataclass
class Interruption:
    """The signal that stopped the run (``SIGINT``, ``SIGTERM``), ``None`` until one did."""

    signal: str | None = None


_ACTIVE: list[Interruption] = []


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Interruption]:
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread, as Ctrl-C does.

    pytest then ends the check in progress, tears the fixtures down (deleting what the run created)
    and writes the results and JUnit; another signal meanwhile stops that too. A handler installed
    before (``ksentinel demo``'s) is called first; an ignored signal stays ignored. Nested uses share
    the outermost one's :class:`Interruption`.
    """
    if _ACTIVE:
        yield _ACTIVE[-1]
        return
    state = Interruption()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous: dict[int, Any] = {}

    def interrupt(signum: int, frame: Any) -> None:
        state.signal = state.signal or signal.Signals(signum).name
        outer = previous.get(signum)
        if callable(outer) and outer is not signal.default_int_handler:
            outer(signum, frame)
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        current = signal.getsignal(signum)
        if current is not signal.SIG_IGN:
            previous[signum] = current
            signal.signal(signum, interrupt)
    _ACTIVE.append(state)
    try:
        yield state
    finally:
        _ACTIVE.remove(state)
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _mark_junit_interrupted(config: pytest.Config, signal_name: str) -> None:
    """The JUnit file says the run is incomplete: a testsuite property and an ``interrupted`` error case."""
    # pytest's JUnit writer has no public API for an extra test case: the one reach into pytest's
    # internals (`_pytest.junitxml.xml_key`, `_NodeReporter._add_simple`), bounded in pyproject.toml
    # and checked by tests/test_transport_internals.py
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover - pytest moved it
        return
    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    message = f"the run was interrupted ({signal_name}) before every check ran: the verdict is INCOMPLETE"
    xml.add_global_property(INTERRUPTED, signal_name)
    # the property is pytest's API, the test case its internals (as its own "internal" error case)
    with contextlib.suppress(AttributeError, TypeError):
        reporter = xml.node_reporter("ksentinel::interrupted")
        reporter.attrs.update(classname="ksentinel", name="interrupted")
        reporter._add_simple("error", message, message)


# ---- results ---------------------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Where the check's own exchanges start (the client's exchanges before it were its fixtures')."""
    recorder = item.config.stash.get(_EXCHANGES, None)
    if recorder is not None:
        item.stash[_CALL_MARK] = recorder.mark()
    return (yield)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    marker = item.get_closest_marker("ksentinel")
    if marker is not None and report.when == "call":
        kind, subject = ([*marker.args, "check", item.name])[:2]
        report.user_properties.append((f"{DETAILS}.kind", kind))
        report.user_properties.append((f"{DETAILS}.subject", subject))
        if report.failed and report.longrepr is not None:
            report.longrepr = failure_text(item, report, call, _failure_exchange(item, report))
    if report.failed and report.longrepr is not None and is_ksentinel_item(item):
        report.longrepr = redact(str(report.longrepr))


def is_ksentinel_item(item: pytest.Item) -> bool:
    """A check of ksentinel's: marked ``ksentinel`` or using a ``ksentinel_*`` fixture. The plugin is
    installed for every pytest run of an environment that has ksentinel; it leaves other items alone."""
    if item.get_closest_marker("ksentinel") is not None:
        return True
    return any(name.startswith("ksentinel_") for name in getattr(item, "fixturenames", ()))


def recorded_details(properties: list[tuple[str, object]]) -> dict[str, Any]:
    """Every ``ksentinel`` details property of a report, merged in the order they were recorded."""
    details: dict[str, Any] = {}
    for name, value in properties:
        if name == f"{DETAILS}.details" and isinstance(value, str):
            with contextlib.suppress(ValueError):
                details.update(json.loads(value))
    return details


def _failure_exchange(item: pytest.Item, report: pytest.TestReport) -> dict[str, Any] | None:
    """The exchange the check named, else the last one its client sent during the check (then added to
    the check's details); ``None`` for a check that records its own (the fuzzer's) or sent nothing."""
    details = recorded_details(report.user_properties)
    if details.get("request") or details.get("response"):
        return details
    recorder = item.config.stash.get(_EXCHANGES, None)
    mark = item.stash.get(_CALL_MARK, None)
    if recorder is None or mark is None or item.stash.get(OWN_EXCHANGES, False):
        return None
    chosen = evidence(recorder.since(mark))
    if chosen is None:
        return None
    found = chosen.as_details()
    report.user_properties.append((f"{DETAILS}.details", redact(json.dumps(found, default=str))))
    return found


def failure_text(
    item: pytest.Item,
    report: pytest.TestReport,
    call: pytest.CallInfo[None],
    exchange: dict[str, Any] | None,
) -> str:
    """What broke first (``E`` lines, the first one JUnit's message), then the exchange that shows it
    and where the check failed; an exception other than a failed assertion keeps its traceback."""
    lines = [f"E   {line}" for line in short_reason(report).splitlines()] or ["E   failed"]
    lines += exchange_lines(exchange or {})
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        path = Path(str(crash.path))
        with contextlib.suppress(ValueError):
            path = path.relative_to(item.config.rootpath)
        lines.append(f"    at {path.as_posix()}:{crash.lineno}")
    text = "\n".join(lines)
    raised = call.excinfo
    if (
        raised is not None
        and not raised.errisinstance(AssertionError)
        and hasattr(report.longrepr, "reprcrash")
    ):
        text += f"\n\n{report.longrepr}"
    return text


def exchange_lines(details: dict[str, Any]) -> list[str]:
    """``request: POST <url>``, its body, ``response: HTTP 200 <body>`` (cut), as the fuzzed actions show it."""
    request, response = details.get("request") or {}, details.get("response") or {}
    lines = []
    if request:
        step = f" (step {request['step']})" if request.get("step") else ""
        lines.append(f"    request: {request.get('method')} {request.get('url')}{step}")
        if request.get("body"):
            lines.append(f"    request body: {_cut(str(request['body']))}")
    if response.get("error"):
        lines.append(f"    response: none: {_cut(str(response['error']))}")
    elif response:
        lines.append(f"    response: HTTP {response.get('status')} {_cut(str(response.get('body', '')))}")
        for name, value in (response.get("headers") or {}).items():
            lines.append(f"    response header {name}: {_cut(str(value))}")
    return lines


def _cut(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class ResultsCollector:
    """Gathers every check's outcome (on the xdist controller too) and writes them as JSON."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.results: list[dict[str, Any]] = []
        #: the signal (``SIGINT`` when it is not known) whose KeyboardInterrupt ended the session
        self.interrupted: str | None = None
        self.contract_run = False
        self._signals = contextlib.ExitStack()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Contract checks collected (with plain pytest too): SIGTERM stops them like Ctrl-C."""
        if any(item.get_closest_marker("ksentinel") for item in session.items):
            self.contract_run = True
            self._signals.enter_context(stop_on_signals())

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # a contract run (``ksentinel contract`` always asks for the results), not pytest.exit()
        if (self.path or self.contract_run) and isinstance(excinfo.value, KeyboardInterrupt):
            self.interrupted = (_ACTIVE[-1].signal if _ACTIVE else None) or "SIGINT"

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._signals.close()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not (report.when == "call" or (report.when == "setup" and not report.passed)):
            return
        props = dict(report.user_properties)
        outcome = "error" if report.when == "setup" and report.failed else report.outcome
        message = short_reason(report)
        reason = message.removeprefix("Skipped: ")
        if report.skipped and (ADVISORY in props or reason.startswith(ADVISORY_PREFIX)):
            outcome, message = "advisory", reason.removeprefix(ADVISORY_PREFIX)
        elif f"{DETAILS}.outcome" in props:  # a check that names its outcome: "error" (tool), "not_tested"
            outcome, message = str(props[f"{DETAILS}.outcome"]), reason
        entry: dict[str, Any] = {
            "nodeid": report.nodeid,
            "name": report.nodeid.split("::", 1)[-1],
            "kind": props.get(f"{DETAILS}.kind", "check"),
            "subject": props.get(f"{DETAILS}.subject", report.nodeid.split("::")[-1]),
            "outcome": outcome,
            "duration": round(report.duration, 4),
            "message": message,
        }
        entry.update(recorded_details(report.user_properties))
        if props.get(SUMMARY):
            entry["summary"] = True
        self.results.append(entry)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Advisory findings get their own lines: they neither fail the run nor hide among skips."""
        advisories = [r for r in self.results if r["outcome"] == "advisory"]
        if advisories:
            terminalreporter.section("ksentinel advisories (not failures)")
            for result in advisories:
                first = (result["message"] or "").splitlines()[0] if result["message"] else ""
                terminalreporter.line(redact(f"ADVISORY {result['kind']} {result['subject']}: {first}"[:400]))

    @pytest.hookimpl(tryfirst=True)  # before JUnit is written
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.interrupted and not hasattr(session.config, "workerinput"):
            _mark_junit_interrupted(session.config, self.interrupted)
        if self.path and not hasattr(session.config, "workerinput"):
            Path(self.path).write_text(
                redact(json.dumps(self.results, indent=1, default=str)), encoding="utf-8"
            )


def short_reason(report: pytest.TestReport) -> str:
    """A few lines that say why a check did not pass (the ``E`` lines of the failure)."""
    if report.passed:
        return ""
    if report.skipped and isinstance(report.longrepr, tuple):
        return redact(str(report.longrepr[2]))
    text = redact(str(report.longrepr or ""))
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    if errors and errors[0].startswith("AssertionError: "):  # a check's assert with its message
        errors[0] = errors[0].removeprefix("AssertionError: ")
        # pytest's explanation of the assert ("assert ...", "+  where ...") repeats the message
        errors = errors[
            : next((i for i, line in enumerate(errors) if i and line.startswith("assert ")), None)
        ]
    if errors:
        return "\n".join(errors[:6])
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def lag_text(lags: list[float]) -> str:
    """``3 writes: median 1.020 s, max 1.410 s`` (the JUnit property of a flow's index lag)."""
    plural = "s" if len(lags) != 1 else ""
    return f"{len(lags)} write{plural}: median {statistics.median(lags):.3f} s, max {max(lags):.3f} s"


# ---- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def ksentinel_profile(pytestconfig: pytest.Config) -> ContractProfile:
    return get_profile(pytestconfig.getoption("--ksentinel-profile"))


@pytest.fixture(scope="session")
def ksentinel_run_id(pytestconfig: pytest.Config) -> str:
    return pytestconfig.getoption("--ksentinel-run-id") or new_run_id()


@pytest.fixture(scope="session")
def ksentinel_config(pytestconfig: pytest.Config) -> Config:
    path = pytestconfig.getoption("--ksentinel-config")
    return load_config(Path(path) if path else None)


@pytest.fixture(scope="session")
def ksentinel_contract_settings(ksentinel_config: Config) -> ContractSettings:
    """``[contract]`` of ksentinel.toml (``strict_ks_echo``); a bad value stops the run (exit 2)."""
    try:
        return contract_settings(ksentinel_config)
    except ConfigError as exc:
        pytest.exit(str(exc), returncode=2)


@pytest.fixture(scope="session")
def ksentinel_target(pytestconfig: pytest.Config, ksentinel_config: Config) -> Iterator[Target]:
    """The target under test; with none configured, an embedded reference platform for this session."""
    from ksentinel.embedded import open_target  # starts the reference platform only when needed

    resolved = resolve_target(
        ksentinel_config,
        target=pytestconfig.getoption("--ksentinel-target"),
        url=pytestconfig.getoption("--ksentinel-url"),
        partner_id=pytestconfig.getoption("--ksentinel-partner-id"),
    )
    with open_target(resolved.target, config=ksentinel_config) as target:
        if target.admin_secret is None:
            pytest.exit(
                f"target {target.name!r} has no admin secret (set KSENTINEL_ADMIN_SECRET)", returncode=2
            )
        yield target


def is_production(target: Target) -> bool:
    """A production target (``environment = "production"``): the suite fuzzes reads only and runs
    read-only flows only (``getattr``: targets without the setting are test targets)."""
    return str(getattr(target, "environment", "test") or "test").lower() == "production"


@pytest.fixture(scope="session")
def ksentinel_credentials(ksentinel_target: Target) -> Credentials:
    return credentials_of(ksentinel_target)


@pytest.fixture(scope="session")
def ksentinel_sessions(ksentinel_target: Target, ksentinel_credentials: Credentials) -> Iterator[Sessions]:
    """The run's KS pool. Every KS it hands out (the flows', the security checks', the peer partner's)
    is ended with ``session.end`` when the session ends, also after a failure or an interrupt."""
    sessions = Sessions(ksentinel_credentials, track=True)
    try:
        yield sessions
    finally:
        # no partner id: the KS names its partner (the peer's KSs are ended too)
        with KalturaApi(ksentinel_target.url, timeout=min(ksentinel_target.timeout, 15.0)) as api:
            for problem in sessions.end_all(api):
                logger.warning("could not end a KS of the contract run: %s", problem)


@pytest.fixture(scope="session")
def ksentinel_exchanges(pytestconfig: pytest.Config) -> Iterator[Recorder]:
    """The transport of the suite's client: it keeps the last exchanges, redacted, for the report of a
    failed check (:class:`~ksentinel.kaltura.recorder.Recorder`)."""
    recorder = Recorder(HttpxTransport())
    pytestconfig.stash[_EXCHANGES] = recorder
    try:
        yield recorder
    finally:
        del pytestconfig.stash[_EXCHANGES]
        recorder.close()


@pytest.fixture(scope="session")
def kaltura_api(
    ksentinel_target: Target, ksentinel_sessions: Sessions, ksentinel_exchanges: Recorder
) -> Iterator[KalturaApi]:
    """An ADMIN client of the primary partner (its copies share its transport, so its recorder)."""
    api = KalturaApi(
        ksentinel_target.url,
        partner_id=ksentinel_target.partner_id,
        timeout=ksentinel_target.timeout,
        transport=ksentinel_exchanges,
    )
    try:
        yield api.with_ks(ksentinel_sessions.admin())
    finally:
        api.close()


@pytest.fixture
def ksentinel_record(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Attach report details (rule, request, response, steps) to the current check."""

    def record(**details: Any) -> None:
        text = redact(json.dumps(details, default=str))
        request.node.user_properties.append((f"{DETAILS}.details", text))

    return record


@pytest.fixture
def ksentinel_advise(
    request: pytest.FixtureRequest, ksentinel_record: Callable[..., None]
) -> Callable[..., None]:
    """Make the current check an advisory finding: ``pytest.skip(advise(reason, findings=[...]))``.

    ``advise`` records the findings for the report and a ``ksentinel.advisory`` JUnit property, and
    returns the skip reason ``advisory: <reason>``; skipped with it, the check counts as ``advisory``
    (JUnit: a skipped case) and the run does not fail. ``reason`` and the findings must not hold a KS
    or a secret (they are redacted all the same).
    """

    def advise(reason: str, *, findings: list[dict[str, Any]] | None = None) -> str:
        reason = redact(reason)
        ksentinel_record(findings=findings or [])
        request.node.user_properties.append((ADVISORY, reason))
        return f"{ADVISORY_PREFIX}{reason}"

    return advise


@pytest.fixture
def run_contract_flow(
    request: pytest.FixtureRequest,
    kaltura_api: KalturaApi,
    ksentinel_target: Target,
    ksentinel_sessions: Sessions,
    ksentinel_profile: ContractProfile,
    ksentinel_run_id: str,
    ksentinel_record: Callable[..., None],
    ksentinel_exchanges: Recorder,
) -> Callable[[str], FlowResult]:
    """Run a catalogue flow with the profile's options and record its steps for the report.

    A flow that failed records the exchange that shows it: the last one of the step that failed (a
    check that needs no request of its own, such as ``upload.content_match``: the flow's last one
    before its clean-up); a clean-up that failed, the clean-up's last one.

    An upload waits for its conversion at most the target's ``ready_timeout`` (a real Kaltura takes
    seconds to minutes; the embedded platform a minute at most).

    The seconds each fresh write took to show up in list/count (``FlowResult.index_lags``) go to the
    report too, and to JUnit as a ``ksentinel.index_lag`` property.
    """

    options = dataclasses.replace(
        ksentinel_profile.flow_options, ready_timeout=ksentinel_target.ready_timeout
    )

    def run(name: str) -> FlowResult:
        flow = get_flow(name)
        if is_production(ksentinel_target) and getattr(flow, "writes", True):
            pytest.skip(f"not run on a production target: the {name} flow writes (read-only flows only)")
        ctx = FlowContext(
            kaltura_api, ksentinel_sessions, run_id=f"{ksentinel_run_id}-{name}", options=options
        )
        mark = ksentinel_exchanges.mark()
        result = run_flow(flow, ctx)
        failed = next((s for s in result.steps if not s.ok), None)
        if result.failure or result.error or result.cleanup_errors:
            step = result.failure.step if result.failure else failed.name if failed else ""
            if not (result.failure or result.error):
                step = f"{name}.cleanup"
            chosen = evidence(ksentinel_exchanges.since(mark), step)
            if chosen is not None:
                ksentinel_record(**chosen.as_details())
        ksentinel_record(
            rule=result.failure.step if result.failure else (failed.name if failed else ""),
            steps=[
                {
                    "name": s.name,
                    "ok": s.ok,
                    "duration": round(s.duration, 4),
                    "reason": s.reason,
                    "code": s.code,
                    "tested": s.tested,
                }
                for s in result.steps
            ],
            notes=ctx.notes,
            index_lags=[round(lag, 4) for lag in result.index_lags],
            not_tested={s.name: s.reason for s in result.not_tested},
        )
        if result.index_lags:
            request.node.user_properties.append((INDEX_LAG, lag_text(result.index_lags)))
        if result.not_tested:  # a step that could not run its check here: said, never counted as kept
            request.node.user_properties.append(
                (NOT_TESTED_STEPS, "; ".join(f"{s.name}: {s.reason}" for s in result.not_tested))
            )
        return result

    return run

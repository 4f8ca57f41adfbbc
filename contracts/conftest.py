"""The contract suite. Fixtures come from ksentinel's pytest plugin (``ksentinel.pytest_plugin``).

Run it with ``ksentinel contract`` (which adds the report, JUnit and exit codes), or directly:
``pytest contracts --ksentinel-url URL --ksentinel-partner-id N`` with KSENTINEL_ADMIN_SECRET set.
Without a target, the embedded reference platform is started for the session.

The schemathesis part (``test_schema.py``) gets its fixtures here: the target's schema loaded into
schemathesis and a :class:`~ksentinel.contract.fuzz_runner.Fuzzer` that sends generated cases
safely (objects it did not create are never changed) and deletes what it created at the end.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ksentinel.contract.fuzz_runner import (
    NOT_TESTED,
    ActionVerdict,
    Fuzzer,
    Tally,
    action_verdict,
    fuzz_session,
)
from ksentinel.contract.scope import load_scope
from ksentinel.kaltura.redact import redact
from ksentinel.pytest_plugin import DETAILS as PREFIX
from ksentinel.pytest_plugin import OWN_EXCHANGES, SUMMARY

SUITE = Path(__file__).resolve().parent
DETAILS, KIND, SUBJECT = f"{PREFIX}.details", f"{PREFIX}.kind", f"{PREFIX}.subject"
#: the report outcome when it is not pytest's own: ``error`` (a tool error), ``not_tested``
OUTCOME, CASES = f"{PREFIX}.outcome", f"{PREFIX}.cases"
#: the "all actions" row: the in-scope actions default-deny fuzzing left out, with the reasons
NOT_FUZZED = f"{PREFIX}.not_fuzzed"
#: a fuzzed action's own node id (``test_action[POST /api_v3/...]``), carried from an xdist worker
NODEID = f"{PREFIX}.nodeid"
_FUZZER = pytest.StashKey[Fuzzer]()
_VERDICTS = pytest.StashKey[dict[str, str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_SubtestJUnitProperties(config), "ksentinel-subtest-junit-properties")


class _SubtestJUnitProperties:
    """Each fuzzed action (a subtest) as its own test case, on the xdist controller too: named after the
    action (an xdist worker must send it under the item's node id), with its ``ksentinel.*`` properties
    (JUnit takes a test case's properties from its teardown report, which a subtest does not have)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" or not hasattr(report, "context"):  # only subtest reports have one
            return
        if hasattr(self.config, "workerinput"):
            return  # an xdist worker: its reports keep the item's node id (xdist checks), the controller renames
        report.nodeid = str(dict(report.user_properties).get(NODEID, report.nodeid))
        try:
            from _pytest.junitxml import xml_key
        except ImportError:  # pragma: no cover - pytest moved it
            return
        xml = self.config.stash.get(xml_key, None)
        if xml is None:
            return
        reporter = xml.node_reporter(report)
        for name, value in report.user_properties:
            if str(name).startswith(f"{PREFIX}."):
                reporter.add_property(str(name), str(value))


@pytest.fixture(scope="session")
def ksentinel_fuzzer(
    ksentinel_target,
    ksentinel_config,
    ksentinel_profile,
    ksentinel_sessions,
    kaltura_api,
    ksentinel_run_id,
) -> Iterator[Fuzzer]:
    """Generated cases go through this: safety edits, the KS, the Kaltura checks, clean-up at the end."""
    with fuzz_session(
        ksentinel_target,
        load_scope(ksentinel_config, SUITE),
        profile=ksentinel_profile,
        sessions=ksentinel_sessions,
        api=kaltura_api,
        run_tag=f"{ksentinel_run_id}-fuzz",
    ) as fuzzer:
        yield fuzzer


@pytest.fixture
def ksentinel_schema(request: pytest.FixtureRequest, ksentinel_fuzzer: Fuzzer) -> Any:
    """The target's schema in schemathesis, for ``schemathesis.pytest.from_fixture``."""
    _prepare_subtest_ids(request.node)
    return ksentinel_fuzzer.schema


# schemathesis 4 names each operation's subtest by rewriting the test node's private `_nodeid`, which
# pytest 9 no longer has: the suite's one contact with those internals is these two functions
# (pyproject.toml bounds schemathesis and pytest; the contract tests fail loudly when they move).
def _prepare_subtest_ids(node: pytest.Item) -> None:
    """Give the node the ``_nodeid`` schemathesis rewrites per operation."""
    if not hasattr(node, "_nodeid"):
        node._nodeid = node.nodeid


def _subtest_id(item: pytest.Item) -> str | None:
    """The id schemathesis gave the operation now running (the item's own id between them), or None
    for an item schemathesis does not parametrize."""
    alias = getattr(item, "_nodeid", None)
    return str(alias) if alias is not None else None


@pytest.fixture
def ksentinel_fuzz(
    request: pytest.FixtureRequest, ksentinel_fuzzer: Fuzzer, ksentinel_record
) -> Iterator[Fuzzer]:
    """The fuzzer, with its failures attached to the running check's report details."""
    ksentinel_fuzzer.on_failure = lambda broken: ksentinel_record(**broken.details())
    request.node.stash[_FUZZER] = ksentinel_fuzzer
    request.node.stash[OWN_EXCHANGES] = True  # a broken action names its exchange, the client's says nothing
    yield ksentinel_fuzzer
    ksentinel_fuzzer.on_failure = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """One report row per fuzzed action: schemathesis runs them as subtests of one test item.

    Each row gets the action's honest verdict (:func:`~ksentinel.contract.fuzz_runner.action_verdict`):
    passed only when answers were judged; a guard refusal or an action the target does not offer is
    *not tested* (a skip whose reason starts ``not tested:``); an exception other than a broken
    contract is a *tool error* (a failure whose text starts ``tool error:``). Both carry the report
    outcome as the ``ksentinel.outcome`` property, and every row what was sent, judged and not tested
    (``ksentinel.cases``, and ``cases`` in the details).
    """
    outcome = yield
    fuzzer = item.stash.get(_FUZZER, None)
    alias = _subtest_id(item)
    if fuzzer is None or call.when != "call" or alias is None:
        return  # not the schemathesis-parametrized test
    report: pytest.TestReport = outcome.get_result()
    verdicts = item.stash.setdefault(_VERDICTS, {})
    raised = call.excinfo.value if call.excinfo is not None else None
    if alias != item.nodeid:  # a subtest: one operation
        if not hasattr(item.config, "workerinput"):  # xdist wants a worker's reports named after the item
            report.nodeid = alias
        label = alias.rsplit("[", 1)[-1].rstrip("]")
        subject = fuzzer.subjects.get(label, alias)
        tally = fuzzer.tally(subject)
        broken = fuzzer.broken.get(subject)
        verdict = action_verdict(tally, broken=broken, raised=raised, crash=fuzzer.crashes.get(label))
        verdicts[subject] = verdict.outcome
        report.user_properties += [(KIND, "action"), (SUBJECT, subject)]
        _apply(report, verdict, tally, item)
        report.user_properties.append((NODEID, alias))
        if broken is not None:  # the broken rules and the exchange, not Hypothesis's internals
            report.longrepr = broken.render()
        # details recorded for this operation must not follow the next one
        item.user_properties[:] = [p for p in item.user_properties if p[0] != DETAILS]
        return
    report.user_properties = [p for p in report.user_properties if p[0] != DETAILS]
    report.user_properties += [(KIND, "action"), (SUBJECT, "all actions")]
    summary = fuzzer.summary(verdicts)
    counted = set(verdicts.values())
    total = Tally(
        sent=sum(t.sent for t in fuzzer.tallies.values()),
        judged=sum(t.judged for t in fuzzer.tallies.values()),
    )
    for tally in fuzzer.tallies.values():
        total.not_tested.update(tally.not_tested)
    if raised is not None and not verdicts:  # the test died before any action ran
        verdict = action_verdict(total, broken=None, raised=raised)
    elif "failed" in counted:
        failed = [s for s, o in verdicts.items() if o == "failed"]
        verdict = ActionVerdict("failed", f"contracts broken by {', '.join(failed)} ({summary})", {})
    elif "error" in counted:
        errors = [s for s, o in verdicts.items() if o == "error"]
        verdict = ActionVerdict("error", f"tool error: could not judge {', '.join(errors)} ({summary})", {})
    elif "passed" not in counted:
        verdict = ActionVerdict("not_tested", f"{NOT_TESTED}no action could be tested ({summary})", {})
    else:
        verdict = ActionVerdict("passed", summary, {})
    cases = total.as_dict()
    if fuzzer.not_fuzzed:  # the JSON: "cases": {..., "not_fuzzed": {"service.action": "reason", ...}}
        cases["not_fuzzed"] = dict(fuzzer.not_fuzzed)
    _apply(report, ActionVerdict(verdict.outcome, verdict.message, cases), total, item)
    if fuzzer.not_fuzzed:  # what default-deny fuzzing left out, and why (each is its own not-tested row too)
        report.user_properties.append((NOT_FUZZED, not_fuzzed_text(fuzzer.not_fuzzed)))
    if verdicts:  # each action has its own row: this one sums them up, it is not one more check
        report.user_properties.append((SUMMARY, redact(verdict.message)))
    # JUnit takes a test case's properties from the item (its teardown report)
    item.user_properties += [
        p for p in report.user_properties if p[0] in (OUTCOME, CASES, NOT_FUZZED, SUMMARY)
    ]


def not_fuzzed_text(left_out: dict[str, str]) -> str:
    """``not fuzzed: 3 actions; <reason>: a, b; <reason>: c`` (the ``ksentinel.not_fuzzed`` property)."""
    by_reason: dict[str, list[str]] = {}
    for subject, why in sorted(left_out.items()):
        by_reason.setdefault(why, []).append(subject)
    parts = [f"{why}: {', '.join(subjects)}" for why, subjects in by_reason.items()]
    return f"not fuzzed: {len(left_out)} actions; " + "; ".join(parts)


def _apply(report: pytest.TestReport, verdict: ActionVerdict, tally: Tally, item: pytest.Item) -> None:
    """Make ``report`` say ``verdict``: pytest's outcome, the failure or skip text, the properties."""
    details: dict[str, Any] = {}
    for name, value in report.user_properties:
        if name == DETAILS and isinstance(value, str):
            with contextlib.suppress(ValueError):
                details.update(json.loads(value))
    details["cases"] = verdict.cases
    message = redact(verdict.message)
    report.user_properties = [p for p in report.user_properties if p[0] not in (DETAILS, OUTCOME, CASES)]
    report.user_properties += [(DETAILS, redact(json.dumps(details, default=str))), (CASES, tally.text())]
    if verdict.outcome == "error":  # the verdict first, then what was raised (its traceback), if anything
        text = "\n".join(f"E   {line}" for line in message.splitlines())
        raised = redact(str(report.longrepr)) if report.failed and report.longrepr else ""
        report.outcome, report.longrepr = "failed", f"{text}\n\n{raised}".strip()
        report.user_properties.append((OUTCOME, "error"))
    elif verdict.outcome == "not_tested":
        _, line, _ = item.location
        report.outcome = "skipped"
        report.longrepr = (str(item.path), (line or 0) + 1, f"Skipped: {message}")
        report.user_properties.append((OUTCOME, "not_tested"))
    elif verdict.outcome == "failed":
        report.outcome = "failed"
        report.longrepr = report.longrepr or message
    elif verdict.outcome == "passed" and report.skipped:
        report.outcome, report.longrepr = "passed", None

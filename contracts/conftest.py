"""The contract suite. Fixtures come from ksentinel's pytest plugin (``ksentinel.pytest_plugin``).

Run it with ``ksentinel contract`` (which adds the report, JUnit and exit codes), or directly:
``pytest contracts --ksentinel-url URL --ksentinel-partner-id N`` with KSENTINEL_ADMIN_SECRET set.
Without a target, the embedded reference platform is started for the session.

The schemathesis part (``test_schema.py``) gets its fixtures here: the target's schema loaded into
schemathesis and a :class:`~ksentinel.contract.fuzz_runner.Fuzzer` that sends generated cases
safely (objects it did not create are never changed) and deletes what it created at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ksentinel.contract.fuzz_runner import Fuzzer, fuzz_session
from ksentinel.contract.scope import load_scope
from ksentinel.pytest_plugin import DETAILS as PREFIX

SUITE = Path(__file__).resolve().parent
DETAILS, KIND, SUBJECT = f"{PREFIX}.details", f"{PREFIX}.kind", f"{PREFIX}.subject"
_FUZZER = pytest.StashKey[Fuzzer]()
_FAILED_ACTIONS = pytest.StashKey[list[str]]()


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
    # schemathesis 4.32 names each operation's subtest by rewriting the test node's private
    # `_nodeid`, which pytest 9 no longer has; give the node one (the hook below reports with it)
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    return ksentinel_fuzzer.schema


@pytest.fixture
def ksentinel_fuzz(
    request: pytest.FixtureRequest, ksentinel_fuzzer: Fuzzer, ksentinel_record
) -> Iterator[Fuzzer]:
    """The fuzzer, with its failures attached to the running check's report details."""
    ksentinel_fuzzer.on_failure = lambda broken: ksentinel_record(**broken.details())
    request.node.stash[_FUZZER] = ksentinel_fuzzer
    yield ksentinel_fuzzer
    ksentinel_fuzzer.on_failure = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """One report row per fuzzed action: schemathesis runs them as subtests of one test item."""
    outcome = yield
    fuzzer = item.stash.get(_FUZZER, None)
    if fuzzer is None or call.when != "call" or not hasattr(item, "_nodeid"):
        return  # not the schemathesis-parametrized test
    report: pytest.TestReport = outcome.get_result()
    alias = str(item._nodeid)
    failed = item.stash.setdefault(_FAILED_ACTIONS, [])
    if alias != item.nodeid:  # a subtest: one operation
        report.nodeid = alias
        subject = fuzzer.subjects.get(alias.rsplit("[", 1)[-1].rstrip("]"), alias)
        report.user_properties += [(KIND, "action"), (SUBJECT, subject)]
        if report.failed:
            failed.append(subject)
            broken = fuzzer.broken.get(subject)
            if broken is not None:  # the broken rules and the exchange, not Hypothesis's internals
                report.longrepr = broken.render()
        # details recorded for this operation must not follow the next one
        item.user_properties[:] = [p for p in item.user_properties if p[0] != DETAILS]
        return
    report.user_properties = [p for p in report.user_properties if p[0] != DETAILS]
    report.user_properties += [(KIND, "action"), (SUBJECT, "all actions")]
    if failed and report.passed:
        report.outcome = "failed"
        report.longrepr = f"contracts broken by {', '.join(failed)} ({fuzzer.summary()})"

"""The contract suite's JUnit XML, finished: each check counted once.

pytest writes the file (``--junitxml``); the fuzzed actions are subtests of one test item, so that
item is one more test case, and one more failure whenever an action fails. :func:`fold_summaries`
takes every test case marked as a summary (the ``ksentinel.summary`` property: a row that sums up
other rows) out of its testsuite, lowers the suite's ``tests``/``failures``/``errors``/``skipped``
counts accordingly, and keeps what it said as testsuite properties (``ksentinel.summary``, the run's
``ksentinel.cases`` and ``ksentinel.not_fuzzed``). A summary whose actions never ran (the test died
first) is not marked and stays the one test case that says so.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ksentinel.pytest_plugin import DETAILS, SUMMARY

#: per-case properties that say nothing at the suite's level
_CASE_ONLY = frozenset({f"{DETAILS}.outcome", f"{DETAILS}.kind", f"{DETAILS}.subject"})
_COUNTED = {"failure": "failures", "error": "errors", "skipped": "skipped"}


def fold_summaries(path: Path) -> int:
    """Fold the summary test cases of the JUnit file at ``path`` into suite properties; how many."""
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError):  # not written whole (the run was killed): left as it is
        return 0
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    folded = 0
    for suite in suites:
        for case in suite.findall("testcase"):
            properties = [(p.get("name") or "", p.get("value") or "") for p in case.iter("property")]
            if not any(name == SUMMARY for name, _ in properties):
                continue
            suite.remove(case)
            folded += 1
            _lower(suite, "tests")
            for tag, count in _COUNTED.items():
                if case.find(tag) is not None:
                    _lower(suite, count)
            _suite_properties(suite).extend(
                ET.Element("property", name=name, value=value)
                for name, value in properties
                if name not in _CASE_ONLY
            )
    if folded:
        tree.write(path, encoding="utf-8", xml_declaration=True)
    return folded


def _lower(suite: ET.Element, attribute: str) -> None:
    value = suite.get(attribute)
    if value is not None and value.isdigit():
        suite.set(attribute, str(max(0, int(value) - 1)))


def _suite_properties(suite: ET.Element) -> ET.Element:
    found = suite.find("properties")
    if found is None:
        found = ET.Element("properties")
        suite.insert(0, found)
    return found

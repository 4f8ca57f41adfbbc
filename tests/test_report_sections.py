"""The run report's probe and contract sections: index lags, advisory findings, kept apart from failures."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from ksentinel.flows import StepResult
from ksentinel.kaltura import ks as ks_lib
from ksentinel.kaltura.redact import mask_ks
from ksentinel.probe.once import PassResult
from ksentinel.probe.run import Outcome
from ksentinel.report import CheckResult, ContractSection, RunReport, write_report
from ksentinel.report.probe_section import probe_section
from ksentinel.report.render import render_html


def _report(**sections: object) -> RunReport:
    return RunReport(title="t", target="embedded", started="now", **sections)  # type: ignore[arg-type]


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_probe_section_shows_index_lag_per_flow_and_per_target() -> None:
    now = time.time()
    steps = [StepResult("list", "list.seed", 0.1, True)]
    result = PassResult(
        [
            Outcome("ref", "list", "success", 2.0, steps, finished_at=now, index_lags=[0.5, 1.5, 1.0]),
            Outcome("ref", "upload", "success", 3.0, [], finished_at=now, index_lags=[2.5]),
            Outcome("ref", "session", "success", 0.2, [], finished_at=now),
            Outcome("other", "list", "failure", 1.0, [], finished_at=now, reason="broken"),
        ]
    )
    section = probe_section(result)
    flows = {(f["target"], f["flow"]): f for f in section["flows"]}
    assert flows[("ref", "list")]["index_lag"] == {"count": 3, "median": 1.0, "max": 1.5}
    assert flows[("ref", "upload")]["index_lag"] == {"count": 1, "median": 2.5, "max": 2.5}
    assert flows[("ref", "session")]["index_lag"] is None
    assert section["index_lags"] == [{"target": "ref", "count": 4, "median": 1.25, "max": 2.5}]

    html = render_html(_report(probe=section))
    text = _text(html)
    assert 'id="probe-index-lag"' in html
    assert "ref: median 1.25 s , max 2.50 s over 4 writes" in text
    assert "median 1.00 s max 1.50 s, 3 writes" in text


def test_probe_section_without_lags_has_no_lag_column() -> None:
    section = probe_section(PassResult([Outcome("ref", "session", "success", 0.2, [])]))
    assert section["index_lags"] == []
    html = render_html(_report(probe=section))
    assert "index lag" not in html and 'id="probe-index-lag"' not in html


def _advisory(ks: str) -> CheckResult:
    return CheckResult(
        kind="security",
        subject="ks.never_echoed",
        name="test_ks_values_never_come_back_in_responses",
        outcome="advisory",
        message=f"the server echoes a refused KS in INVALID_KS (1 answer): {ks}",
        findings=[
            {
                "request": "baseEntry.list with a forged KS",
                "code": "INVALID_KS",
                "where": "body",
                "masked_ks": mask_ks(ks),
            },
            {"request": "leaked raw", "code": "INVALID_KS", "where": "header X-Me", "masked_ks": ks},
        ],
    )


def test_an_advisory_is_shown_apart_from_failures_and_skips_and_keeps_the_verdict(tmp_path: Path) -> None:
    ks = ks_lib.build_v1("x" * 32, 101, "someone", 2, 600)
    section = ContractSection(
        "quick",
        [
            _advisory(ks),
            CheckResult("security", "ks.forged", "test_forged", "passed"),
            CheckResult("security", "partners.isolated", "test_peer", "skipped", message="Skipped: no peer"),
            CheckResult("flow", "list", "test_list", "passed", index_lags=[0.5, 1.5, 1.0]),
            CheckResult("flow", "upload", "test_upload", "passed", index_lags=[2.0]),
        ],
    )
    assert section.ok and section.counts()["advisory"] == 1 and section.counts()["skipped"] == 1
    assert section.index_lags() == [
        {"subject": "list", "name": "test_list", "count": 3, "median": 1.0, "max": 1.5},
        {"subject": "upload", "name": "test_upload", "count": 1, "median": 2.0, "max": 2.0},
    ]
    report = _report(contract=section)
    assert report.verdict == "PASS"
    html_path = write_report(report, tmp_path / "contract.html")
    html = html_path.read_text()
    written = html + html_path.with_suffix(".json").read_text()
    assert ks not in written, "the KS itself never reaches the report"
    # the advisory is outside the collapsed "kept" block, with its own badge and its evidence
    security = html[html.index("<h3>security</h3>") :]
    kept_at = security.index("<details><summary>")
    advisory_at = security.index('<span class="badge advisory">advisory</span>')
    assert advisory_at < kept_at
    assert 'class="badge skipped">skipped' in security[kept_at:]
    assert "baseEntry.list with a forged KS" in security[:kept_at] and mask_ks(ks) in security[:kept_at]
    assert 'id="advisory-count"' in html and "1 advisory finding" in html
    assert 'id="contract-index-lag"' in html
    data = json.loads(html_path.with_suffix(".json").read_text())
    results = {r["subject"]: r for r in data["contract"]["results"]}
    assert results["ks.never_echoed"]["outcome"] == "advisory"
    assert results["ks.never_echoed"]["findings"][0]["masked_ks"] == mask_ks(ks)
    assert results["list"]["index_lags"] == [0.5, 1.5, 1.0]
    assert data["verdict"] == "PASS"


def test_without_advisories_or_lags_the_contract_section_says_nothing_of_them() -> None:
    section = ContractSection("quick", [CheckResult("flow", "session", "test_session", "passed")])
    html = render_html(_report(contract=section))
    body = html[html.index("<body>") :]
    assert "advisory" not in body and 'id="contract-index-lag"' not in body

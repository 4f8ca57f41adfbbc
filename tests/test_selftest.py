"""The fault matrix (``ksentinel selftest``): every fault of the catalogue is caught by every part
named for it, the clean platform raises nothing, and a catalogue entry without a detector fails.

The full matrix runs once (about two minutes) through the real command in a subprocess. Its alert
part needs ``promtool`` (Debian's ``prometheus``): without it the matrix runs without the alert part
and the alert assertions skip, unless ``KSENTINEL_REQUIRE_SYSTEM_DEPS=1``, which makes them fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ksentinel.cli import main
from ksentinel.errors import ConfigError
from ksentinel.reference import faults as fault_lib
from ksentinel.reference.faults import CATALOGUE, Fault
from ksentinel.report.model import RunReport
from ksentinel.report.render import render_html
from ksentinel.selftest import parts as part_lib
from ksentinel.selftest.matrix import CLEAN, PARTS, Cell, Matrix, Row
from ksentinel.selftest.run import run_matrix
from tests.helpers import system_binary

MATRIX_TIMEOUT = 900
SOAK_PASSES = 2


def _promtool() -> str | None:
    return shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").is_file() else None)


def _require_promtool() -> None:
    system_binary("promtool", "prometheus")


@dataclass
class MatrixRun:
    proc: subprocess.CompletedProcess[str]
    report: dict[str, Any]
    parts: tuple[str, ...]

    def row(self, fault: str) -> dict[str, Any]:
        return next(r for r in self.report["rows"] if r["fault"] == fault)

    @property
    def output(self) -> str:
        return self.proc.stdout[-6000:] + self.proc.stderr[-4000:]


@pytest.fixture(scope="module")
def full_matrix(tmp_path_factory: pytest.TempPathFactory) -> MatrixRun:
    """``ksentinel selftest --report`` over the whole catalogue (without the alert part when no promtool)."""
    if not _promtool() and os.environ.get("KSENTINEL_REQUIRE_SYSTEM_DEPS") == "1":
        pytest.fail("promtool not found; KSENTINEL_REQUIRE_SYSTEM_DEPS=1 requires it")
    parts = PARTS if _promtool() else tuple(p for p in PARTS if p != "alert")
    tmp = tmp_path_factory.mktemp("selftest")
    report = tmp / "out" / "selftest.html"  # --report DIR writes DIR/selftest.html and DIR/selftest.json
    command = [sys.executable, "-m", "ksentinel.cli", "selftest", "--report", str(report.parent)]
    command += ["--soak", str(SOAK_PASSES)]  # the default 20 passes are measured on demand (docs/selftest.md)
    if parts != PARTS:
        command += [arg for part in parts for arg in ("--part", part)]
    keep = ("KSENTINEL_REQUIRE_SYSTEM_DEPS", "KSENTINEL_PROMTOOL")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_") or k in keep}
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=MATRIX_TIMEOUT, env=env, cwd=tmp, check=False
    )
    twin = report.with_suffix(".json")
    data = json.loads(twin.read_text())["matrix"] if twin.exists() else {}
    return MatrixRun(proc, data, parts)


@pytest.mark.slow
@pytest.mark.timeout(MATRIX_TIMEOUT + 60)
def test_the_full_matrix_passes_and_its_score_counts_every_named_part(full_matrix: MatrixRun) -> None:
    assert full_matrix.proc.returncode == 0, full_matrix.output
    report = full_matrix.report
    assert report["ok"] is True
    assert report["parts"] == list(full_matrix.parts)
    assert report["problems"] == []
    expected = sum(len([p for p in f.detected_by if p in full_matrix.parts]) for f in CATALOGUE.values())
    assert report["score"] == f"{expected}/{expected}"
    assert [r["fault"] for r in report["rows"]] == [CLEAN, *CATALOGUE]


@pytest.mark.slow
@pytest.mark.timeout(MATRIX_TIMEOUT + 60)
def test_the_clean_soak_runs_every_flow_on_the_realistic_platform_without_a_failure(
    full_matrix: MatrixRun,
) -> None:
    from ksentinel.flows import all_flows

    soak = full_matrix.report["soak"]
    flows = sorted(all_flows())
    assert sorted(soak["flows"]) == flows
    assert soak["passes"] == soak["passes_done"] == SOAK_PASSES
    assert soak["runs"] == soak["expected_runs"] == SOAK_PASSES * len(flows)
    assert soak["failures"] == [] and soak["state"] == "PASS", (soak, full_matrix.output)
    assert "clean soak: PASS" in full_matrix.proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(MATRIX_TIMEOUT + 60)
@pytest.mark.parametrize("fault", sorted(CATALOGUE))
def test_each_fault_is_caught_by_every_part_named_for_it(full_matrix: MatrixRun, fault: str) -> None:
    row = full_matrix.row(fault)
    assert row["summary"] == CATALOGUE[fault].summary
    for part in full_matrix.parts:
        cell = row["cells"][part]
        if part in CATALOGUE[fault].detected_by:
            assert cell["expected"] is True
            assert cell["caught"] is True and cell["state"] == "caught", (part, cell, full_matrix.output)
            assert cell["detail"], (part, cell)
        else:
            assert cell == {
                "expected": False,
                "caught": None,
                "detail": "",
                "state": "-",
                "seconds": 0.0,
                "evidence": [],
            }


#: fault -> (kind, subject, rule) of a contract the contract part must report broken (None: any).
CONTRACT_RULES = {
    "schema-drift": ("action", None, "response_schema_conformance"),
    # only reads drift: caught by contracts/test_reads.py (the fuzzer's get/list return no entry)
    "schema-drift-reads": ("action", "baseEntry.get", "response_schema_conformance"),
    "wrong-error-code": ("flow", "delete", "delete.gone"),
    "http-500": (None, None, None),
    "stale-cache": ("caching", "cache", "cache.write_fresh"),
    "cache-leak": ("caching", "cache", "cache.partner_isolated"),
    "cache-user-leak": ("caching", "cache", "cache.user_isolated"),
    "ks-expiry-ignored": ("security", "ks.expired", None),
    "ks-signature-ignored": ("security", "ks.tampered", None),
    "pager-duplicates": ("flow", "list", "list.total_count"),
    "upload-corrupt": ("flow", "upload", "upload.content_match"),
}


def test_every_fault_the_contract_catches_has_its_expected_rule() -> None:
    assert set(CONTRACT_RULES) == {n for n, f in CATALOGUE.items() if "contract" in f.detected_by}


@pytest.mark.slow
@pytest.mark.timeout(MATRIX_TIMEOUT)
def test_drift_only_in_reads_is_caught_by_the_contract_part_and_the_clean_platform_stays_quiet(
    tmp_path: Path,
) -> None:
    """The one row through the real command, quicker than the full matrix: the fuzzer's own get/list
    answers hold no entry, so only the reads of an entry the run created (contracts/test_reads.py) see it."""
    report = tmp_path / "out" / "selftest.html"
    command = [sys.executable, "-m", "ksentinel.cli", "selftest", "--fault", "schema-drift-reads"]
    command += ["--part", "contract", "--soak", "0", "--report", str(report.parent)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=MATRIX_TIMEOUT, env=env, cwd=tmp_path, check=False
    )
    output = proc.stdout[-4000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, output
    rows = {r["fault"]: r for r in json.loads(report.with_suffix(".json").read_text())["matrix"]["rows"]}
    assert rows[CLEAN]["cells"]["contract"]["state"] == "quiet", output
    cell = rows["schema-drift-reads"]["cells"]["contract"]
    assert cell["state"] == "caught", output
    kind, subject, rule = CONTRACT_RULES["schema-drift-reads"]
    assert f"{kind}/{subject}/{rule}" in cell["evidence"], cell
    reads = {"baseEntry.get", "baseEntry.list", "media.get", "media.list"}
    assert {e.split("/")[1] for e in cell["evidence"]} == reads, cell  # and nothing else broke


@pytest.mark.slow
@pytest.mark.timeout(MATRIX_TIMEOUT + 60)
@pytest.mark.parametrize("fault", sorted(CONTRACT_RULES))
def test_the_contract_part_breaks_the_rule_named_for_the_fault(full_matrix: MatrixRun, fault: str) -> None:
    evidence = full_matrix.row(fault)["cells"]["contract"]["evidence"]
    assert evidence, full_matrix.output
    kind, subject, rule = CONTRACT_RULES[fault]
    matching = [
        item
        for item in (e.split("/", 2) for e in evidence)
        if (kind is None or item[0] == kind)
        and (subject is None or item[1] == subject)
        and (rule is None or rule in item[2])
    ]
    assert matching, f"{fault}: expected a broken {kind}/{subject}/{rule}, got {evidence}"


#: fault -> the alert that must fire when the probe's observations are replayed through the rules.
ALERTS = {
    "http-500": "KalturaFlowFailing",
    "wrong-error-code": "KalturaFlowFailing",
    "stale-cache": "KalturaCacheStaleReads",
    "pager-duplicates": "KalturaFlowFailing",
    "upload-corrupt": "KalturaFlowFailing",
    "cache-user-leak": "KalturaFlowFailing",
}


def test_every_fault_an_alert_catches_names_its_alert() -> None:
    assert set(ALERTS) == {n for n, f in CATALOGUE.items() if "alert" in f.detected_by}


@pytest.mark.slow
@pytest.mark.timeout(MATRIX_TIMEOUT + 60)
@pytest.mark.parametrize("fault", sorted(ALERTS))
def test_the_alert_named_for_the_fault_fires(full_matrix: MatrixRun, fault: str) -> None:
    _require_promtool()
    evidence = full_matrix.row(fault)["cells"]["alert"]["evidence"]
    assert ALERTS[fault] in evidence, (fault, evidence, full_matrix.output)


@pytest.mark.slow
@pytest.mark.timeout(MATRIX_TIMEOUT + 60)
def test_the_clean_platform_raises_nothing_anywhere(full_matrix: MatrixRun) -> None:
    row = full_matrix.row(CLEAN)
    assert set(row["cells"]) == set(full_matrix.parts)
    for part, cell in row["cells"].items():
        assert cell["expected"] is False
        assert cell["caught"] is False and cell["state"] == "quiet", (part, cell, full_matrix.output)


@pytest.mark.slow
@pytest.mark.timeout(MATRIX_TIMEOUT + 60)
def test_the_printed_table_has_a_row_per_fault_and_the_verdict(full_matrix: MatrixRun) -> None:
    lines = full_matrix.proc.stdout.splitlines()
    header = lines[0].split()
    assert header == ["FAULT", *full_matrix.parts]
    for fault in [CLEAN, *CATALOGUE]:
        row = next(line.split() for line in lines if line.split()[:1] == [fault])
        marks = dict(zip(full_matrix.parts, row[1:], strict=True))
        if fault == CLEAN:
            assert set(marks.values()) == {"quiet"}
        else:
            for part, mark in marks.items():
                assert mark == ("caught" if part in CATALOGUE[fault].detected_by else "-"), (fault, part)
    assert any(line.startswith("fault matrix: PASS: score ") for line in lines), full_matrix.proc.stdout
    # progress goes to stderr, one line per cell that ran
    assert full_matrix.proc.stderr.count(": caught in ") == sum(
        len([p for p in f.detected_by if p in full_matrix.parts]) for f in CATALOGUE.values()
    )


@pytest.mark.slow
@pytest.mark.timeout(MATRIX_TIMEOUT + 60)
def test_the_alert_part_pages_on_http_500_with_the_real_promtool(full_matrix: MatrixRun) -> None:
    _require_promtool()
    cell = full_matrix.row("http-500")["cells"]["alert"]
    assert cell["caught"] is True
    assert "KalturaFlowErrorBudgetBurn [page,ticket]" in cell["detail"], cell
    assert "none of" in full_matrix.row(CLEAN)["cells"]["alert"]["detail"]


# --- the catalogue itself -------------------------------------------------------------------------


def test_a_fault_without_a_detector_fails_the_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(fault_lib.CATALOGUE, "fake-undetected", Fault("fake-undetected", "a new defect", ()))
    lines: list[str] = []
    matrix = run_matrix(faults=["fake-undetected"], include_clean=False, progress=lines.append)
    assert not matrix.ok
    assert matrix.problems == ["fake-undetected: no detector: its detected_by is empty"]
    assert lines == ["fake-undetected: not run: no detector: its detected_by is empty"]
    table = matrix.render_table()
    assert "fake-undetected" in table and "FAIL" in table and "catalogue problems:" in table
    assert matrix.as_dict()["ok"] is False


def test_a_fault_naming_an_unknown_part_fails_the_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Fault("fake-telepathic", "caught by a part that does not exist", ("contract", "telepathy"))
    monkeypatch.setitem(fault_lib.CATALOGUE, fake.name, fake)
    matrix = run_matrix(faults=[fake.name], include_clean=False)
    assert not matrix.ok
    assert len(matrix.problems) == 1 and "unknown part 'telepathy'" in matrix.problems[0]
    assert all(not cell.ran for cell in matrix.cells()), "a broken catalogue entry is not run at all"


def test_every_catalogue_fault_names_known_parts() -> None:
    from ksentinel.selftest.run import catalogue_problem

    assert {name: catalogue_problem(f.detected_by) for name, f in CATALOGUE.items()} == {
        name: "" for name in CATALOGUE
    }


def test_unknown_fault_or_part_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown fault 'nope'"):
        run_matrix(faults=["nope"])
    with pytest.raises(ConfigError, match="unknown part 'nope'"):
        run_matrix(parts=["nope"])
    runner = CliRunner()
    result = runner.invoke(main, ["selftest", "--fault", "nope"])
    assert result.exit_code == 2
    assert "unknown fault 'nope'" in result.output
    result = runner.invoke(main, ["selftest", "--part", "nope"])
    assert result.exit_code == 2


# --- the table and the report ---------------------------------------------------------------------


def _matrix(states: dict[str, dict[str, bool | None]]) -> Matrix:
    """A matrix from ``{fault: {part: caught}}``: a part listed is expected (for a fault) and ran."""
    matrix = Matrix()
    for fault, cells in states.items():
        summary = CATALOGUE[fault].summary if fault in CATALOGUE else "no fault"
        row = Row(fault, summary)
        for part in PARTS:
            if part in cells:
                row.cells[part] = Cell(fault, part, fault != CLEAN, cells[part], f"{part} says so", 1.0)
            else:
                row.cells[part] = Cell(fault, part, False, None, ran=False)
        matrix.rows.append(row)
    return matrix


def test_the_table_has_every_fault_as_a_row_and_marks_each_cell() -> None:
    states: dict[str, dict[str, bool | None]] = {CLEAN: dict.fromkeys(PARTS, False)}
    states.update({name: dict.fromkeys(f.detected_by, True) for name, f in CATALOGUE.items()})
    matrix = _matrix(states)
    expected = sum(len(f.detected_by) for f in CATALOGUE.values())
    assert matrix.ok and matrix.score == f"{expected}/{expected}"
    table = matrix.render_table()
    lines = table.splitlines()
    assert lines[0].split() == ["FAULT", *PARTS]
    for name, fault in CATALOGUE.items():
        row = next(line.split() for line in lines if line.split()[:1] == [name])
        assert row[1:] == ["caught" if p in fault.detected_by else "-" for p in PARTS]
    assert "fault matrix: PASS" in table


def test_a_miss_an_alarm_and_a_broken_part_each_fail_the_matrix() -> None:
    missed = _matrix({CLEAN: dict.fromkeys(PARTS, False), "slow-list": {"load": True, "probe": False}})
    assert not missed.ok and missed.score == "1/2"
    assert next(
        line for line in missed.render_table().splitlines() if line.startswith("slow-list")
    ).split() == [
        "slow-list",
        "-",
        "caught",
        "MISSED",
        "-",
    ]
    alarm = _matrix({CLEAN: {"contract": False, "load": True, "probe": False, "alert": False}})
    assert not alarm.ok
    assert "ALARM" in alarm.render_table() and "1 alarms on the clean platform" in alarm.render_table()
    broken = _matrix({"http-500": {"contract": None}})
    assert not broken.ok and "ERROR" in broken.render_table()


def test_a_skipped_part_is_shown_and_not_counted() -> None:
    matrix = _matrix({"http-500": {"contract": True}})
    matrix.rows[0].cells["alert"] = Cell(
        "http-500", "alert", True, None, "not run (promtool not found)", ran=False
    )
    assert matrix.ok and matrix.score == "1/1"
    assert "skipped" in matrix.render_table() and "not run (promtool not found)" in matrix.render_table()


def test_the_report_shape_is_what_the_html_report_reads() -> None:
    matrix = _matrix({CLEAN: dict.fromkeys(PARTS, False), "cache-leak": {"contract": True}})
    data = json.loads(json.dumps(matrix.as_dict()))
    assert data["ok"] is True and data["score"] == "1/1" and data["parts"] == list(PARTS)
    row = data["rows"][1]
    assert row["fault"] == "cache-leak" and row["summary"] == CATALOGUE["cache-leak"].summary
    assert row["cells"]["contract"] == {
        "expected": True,
        "caught": True,
        "detail": "contract says so",
        "state": "caught",
        "seconds": 1.0,
        "evidence": [],
    }
    assert row["cells"]["load"]["state"] == "-"
    html = render_html(RunReport(title="selftest", target="-", started="-", matrix=data))
    table = html[html.index('id="matrix-table"') :]
    assert 'badge passed">caught<' in table and 'badge passed">quiet<' in table
    assert "cache-leak" in table and CATALOGUE["cache-leak"].summary in table


# --- the alert part's replay ----------------------------------------------------------------------


def _observation(failing_every: int) -> part_lib.ProbeObservation:
    """Two passes of two flows; ``upload`` fails in pass ``failing_every`` (0: never)."""
    passes = []
    runs: dict[tuple[str, ...], float] = {}
    for number in (1, 2):
        for flow in ("session", "upload"):
            result = "failure" if flow == "upload" and number == failing_every else "success"
            for r in ("success", "failure", "error"):
                runs.setdefault(("ref", flow, r), 0)
            runs[("ref", flow, result)] += 1
        passes.append(
            {
                "runs": dict(runs),
                "success": {("ref", "session"): 1, ("ref", "upload"): 0 if number == failing_every else 1},
                "duration": {("ref", "session"): 0.01, ("ref", "upload"): 0.3},
                "cache": {("ref", "hit"): 2 * number, ("ref", "miss"): 10 * number, ("ref", "unknown"): 0},
                "stale": {("ref",): 0},
            }
        )
    return part_lib.ProbeObservation(passes=passes)


def test_the_replay_cycles_the_passes_once_a_minute() -> None:
    import yaml

    text = part_lib.replay_tests(_observation(failing_every=2), ["KalturaFlowFailing"], 4)
    doc = yaml.safe_load(text)
    assert doc["rule_files"] == ["rules.yml"] and doc["evaluation_interval"] == "1m"
    (test,) = doc["tests"]
    series = {s["series"]: s["values"] for s in test["input_series"]}
    labels = 'instance="ksentinel-selftest",job="ksentinel-probe"'
    assert (
        series[f'ksentinel_probe_runs_total{{target="ref",flow="upload",result="failure",{labels}}}']
        == "0 0 1 1 2"
    )
    assert (
        series[f'ksentinel_probe_runs_total{{target="ref",flow="upload",result="success",{labels}}}']
        == "0 1 1 2 2"
    )
    assert series[f'ksentinel_probe_success{{target="ref",flow="upload",{labels}}}'] == "0 1 0 1 0"
    assert series[f'ksentinel_cache_lookups_total{{target="ref",result="hit",{labels}}}'] == "0 2 4 6 8"
    assert test["alert_rule_test"] == [
        {"eval_time": "4m", "alertname": "KalturaFlowFailing", "exp_alerts": []}
    ]


def test_promtool_failures_are_read_as_fired_alerts() -> None:
    text = """Unit Testing:  replay.yml
  FAILED:
    alertname: KalturaFlowFailing, time: 6h20m,
        exp:[],
        got:[
            0:
              Labels:{alertname="KalturaFlowFailing", flow="upload", severity="page", target="ref"}
              Annotations:{summary="Flow upload on ref is failing."}
            ]
    alertname: KalturaCacheStaleReads, time: 6h20m,
        exp:[],
        got:[
            0:
              Labels:{alertname="KalturaCacheStaleReads", severity="ticket", target="ref"}
            ]
"""
    assert part_lib.fired_alerts(text) == {
        "KalturaFlowFailing": {"severities": {"page"}, "flows": {"upload"}, "targets": {"ref"}},
        "KalturaCacheStaleReads": {"severities": {"ticket"}, "flows": set(), "targets": {"ref"}},
    }


@pytest.mark.slow
def test_the_alert_part_fires_only_on_a_failing_replay() -> None:
    _require_promtool()
    objectives = part_lib.default_objectives()
    quiet = part_lib.alert_part(_observation(failing_every=0), objectives)
    assert quiet.caught is False and quiet.ran, quiet
    failing = part_lib.alert_part(_observation(failing_every=1), objectives)
    assert failing.caught is True, failing
    assert "KalturaFlowErrorBudgetBurn [page,ticket] on 1 flows" in failing.detail


def test_without_promtool_the_alert_part_is_skipped_unless_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(part_lib, "find_promtool", lambda: None)
    monkeypatch.delenv("KSENTINEL_REQUIRE_SYSTEM_DEPS", raising=False)
    objectives = part_lib.default_objectives()
    skipped = part_lib.alert_part(_observation(failing_every=1), objectives)
    assert skipped.caught is None and not skipped.ran and "promtool not found" in skipped.detail
    monkeypatch.setenv("KSENTINEL_REQUIRE_SYSTEM_DEPS", "1")
    required = part_lib.alert_part(_observation(failing_every=1), objectives)
    assert required.caught is None and required.ran, "required and missing is an error of the matrix"


@pytest.mark.slow
def test_a_soak_on_a_failing_platform_fails_and_names_the_runs() -> None:
    from ksentinel.selftest.soak import run_soak

    with part_lib.isolated_config() as config:
        soak = run_soak(config, passes=1, faults=("wrong-error-code",))
    assert soak.state == "FAIL" and not soak.ok
    assert soak.passes_done == 1 and soak.runs == len(soak.flows)
    assert any("delete" in failure for failure in soak.failures), soak.failures
    matrix = Matrix(parts=PARTS, soak=soak)
    assert not matrix.ok
    assert "clean soak: FAIL" in matrix.render_table()


def test_a_soak_that_did_not_run_every_pass_is_not_tested_never_passed() -> None:
    from ksentinel.selftest.soak import Soak

    short = Soak(passes=20, flows=("session", "upload"), runs=6, passes_done=3)
    assert short.state == "not tested" and not short.ok
    assert "only 6 of 40 runs" in short.summary()
    broken = Soak(passes=20, flows=("session",), problem="the platform could not be soaked: refused")
    assert broken.state == "not tested" and "refused" in broken.summary()
    assert not Matrix(parts=PARTS, soak=short).ok
    done = Soak(passes=2, flows=("session", "upload"), runs=4, passes_done=2)
    assert done.state == "PASS" and Matrix(parts=PARTS, soak=done).ok
    html = render_html(
        RunReport(title="t", target="x", started="now", matrix=Matrix(parts=PARTS, soak=short).as_dict())
    )
    assert "Clean soak" in html and "not tested" in html

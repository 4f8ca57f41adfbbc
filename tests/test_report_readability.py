"""The report is readable where it matters (issue 15, point 7).

Per-step charts draw at most the 6 slowest steps and one "other" series, in colours told apart also
by colour-blind readers, each named in a legend; missed objectives come first in the SLO table, which
says how many; a failed flow, caching or security check shows the exchange that proves it (no KS, no
secret); failure texts name their rule once; JUnit counts each fuzzed action once. The report is
checked where people read it, in headless Chromium, on failures of a real run with injected faults.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from ksentinel.contract.junit import fold_summaries
from ksentinel.kaltura import ks as ks_lib
from ksentinel.kaltura.recorder import KEPT, MAX_BODY, Recorder, describe_body, evidence
from ksentinel.kaltura.redact import looks_like_ks, register_secret
from ksentinel.kaltura.transport import STEP_LABEL, Headers, HttpRequest, HttpResponse, TransportTimeout
from ksentinel.load.runner import LoadOutcome
from ksentinel.load.verdict import SloRow
from ksentinel.report import CheckResult, ContractSection, RunReport, write_report
from ksentinel.report.charts import MAX_SERIES, OTHER_STYLE, PALETTE, load_charts
from ksentinel.report.load_section import load_section
from ksentinel.report.render import _ENV, render_html
from tests.browser import open_page
from tests.conftest import start_reference
from tests.helpers import target_env
from tests.test_contract_cli import run_contract

SVG = "{http://www.w3.org/2000/svg}"
FAULTS = ("upload-corrupt", "stale-cache", "ks-expiry-ignored", "wrong-error-code")
_TOKEN = re.compile(r"[A-Za-z0-9+/_%-]{40,}={0,2}")


# --- charts -----------------------------------------------------------------------------------------


def summary_with_steps(count: int, points: int = 6) -> dict[str, Any]:
    """A load summary of ``count`` steps; step ``i`` is slower (p95 ``i`` ms) and busier the higher ``i``."""
    names = [f"step{i:02d}.call" for i in range(count)]
    timeline = [
        {
            "t": float(k + 1),
            "steps": {
                n: {"requests": 10 + i, "rps": 1.0 + i, "p95": (i + 1) / 1000 + k / 10_000}
                for i, n in enumerate(names)
                if not (i == 0 and k == 2)  # the fastest step made no request in the third interval
            },
        }
        for k in range(points)
    ]
    steps = {n: {"latency": {"p95": (i + 1) / 1000}} for i, n in enumerate(names)}
    return {"steps": steps, "timeline": timeline}


def drawn(svg: str) -> tuple[list[str], list[str], list[str]]:
    """(series names, legend names, series stroke colours) of one chart."""
    root = ET.fromstring(svg)
    paths = [p for p in root.iter(f"{SVG}path") if p.get("class") == "series"]
    legend = [g for g in root.iter(f"{SVG}g") if g.get("class") == "legend"]
    names = [p.findtext(f"{SVG}title") or "" for p in paths]
    return names, [g.findtext(f"{SVG}title") or "" for g in legend], [p.get("stroke") or "" for p in paths]


def test_per_step_charts_draw_the_six_slowest_and_one_other_series_named_in_the_legend() -> None:
    throughput, latency = load_charts(summary_with_steps(12))
    slowest = [f"step{i:02d}.call" for i in range(11, 5, -1)]  # slowest first
    for svg, other in ((throughput, "other (6 steps, sum)"), (latency, "other (6 steps, max p95)")):
        names, legend, colours = drawn(svg)
        assert len(names) == MAX_SERIES + 1 == 7
        assert names == legend == [*slowest, other]
        assert len(set(colours)) == len(colours), "every series has its own colour"
        assert colours[-1] == OTHER_STYLE[0]
    assert "other: the rest summed" in throughput and "other: the highest p95 of the rest" in latency
    assert "the 6 slowest of 12 steps" in latency
    # the same step, the same colour in both charts
    t_names, _, t_colours = drawn(throughput)
    l_names, _, l_colours = drawn(latency)
    assert t_names[:-1] == l_names[:-1] and t_colours == l_colours
    # six steps or fewer: each its own series, no "other"
    names, legend, _ = drawn(load_charts(summary_with_steps(4))[1])
    assert names == legend and len(names) == 4 and not any(n.startswith("other") for n in names)


def test_the_other_series_is_the_sum_of_throughput_and_the_highest_p95_of_the_rest() -> None:
    summary = summary_with_steps(8)
    throughput, latency = load_charts(summary)
    rest = ["step00.call", "step01.call"]  # the two fastest
    first = summary["timeline"][0]["steps"]
    desc_t = ET.fromstring(throughput).findtext(f"{SVG}desc") or ""
    desc_l = ET.fromstring(latency).findtext(f"{SVG}desc") or ""
    top_rps = max(sum(p["steps"].get(s, {}).get("rps", 0) for s in rest) for p in summary["timeline"])
    assert f"other (2 steps, sum): max {top_rps:g} req/s" in desc_t
    top_p95 = max(first[s]["p95"] for s in rest) * 1000 + 0.5  # step01 at the last interval
    assert f"other (2 steps, max p95): max {round(top_p95, 3):g} ms" in desc_l


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _lab(rgb: list[float]) -> tuple[float, float, float]:
    r, g, b = rgb
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


#: Machado, Oliveira and Fernandes (2009), severity 1.0, on linear RGB
VISION = {
    "normal": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "protanopia": (
        (0.152286, 1.052583, -0.204868),
        (0.114503, 0.786281, 0.099216),
        (-0.003882, -0.048116, 1.051998),
    ),
    "deuteranopia": (
        (0.367322, 0.860646, -0.227968),
        (0.280085, 0.672501, 0.047413),
        (-0.011820, 0.042940, 0.968881),
    ),
    "tritanopia": (
        (1.255528, -0.076749, -0.178779),
        (-0.078411, 0.930809, 0.147602),
        (0.004733, 0.691367, 0.303900),
    ),
}


def seen(colour: str, vision: str) -> tuple[float, float, float]:
    rgb = [_linear(int(colour[i : i + 2], 16)) for i in (1, 3, 5)]
    matrix = VISION[vision]
    return _lab([min(1.0, max(0.0, sum(m * c for m, c in zip(row, rgb, strict=True)))) for row in matrix])


@pytest.mark.parametrize("vision", sorted(VISION))
def test_chart_colours_are_told_apart_also_by_colour_blind_readers(vision: str) -> None:
    colours = [*PALETTE, OTHER_STYLE[0]]
    closest = min(
        (math.dist(seen(a, vision), seen(b, vision)), a, b) for a, b in itertools.combinations(colours, 2)
    )
    assert closest[0] >= 15, f"{closest[1]} and {closest[2]} look alike with {vision} (dE {closest[0]:.1f})"


# --- the SLO table ----------------------------------------------------------------------------------


def slo_rows() -> list[SloRow]:
    return [
        SloRow("error_ratio", "all", 0.01, 0.0, "met", "ratio"),
        SloRow("p95", "browse.list", 0.5, 0.9, "missed", "s"),
        SloRow("p95", "browse.get", 0.2, None, "no data", "s"),
        SloRow("p95", "upload.chunk", 1.0, 0.4, "met", "s"),
        SloRow("p99", "browse.list", 1.0, 1.5, "missed", "s"),
    ]


def test_missed_objectives_come_first_and_the_table_says_how_many() -> None:
    load = load_section(LoadOutcome(1, "smoke", "run-1", rows=slo_rows(), summary={}), Path("."))
    html = _ENV.get_template("_load.html.j2").render(load=load)
    table = re.search(r'<table id="slo-table">.*?</table>', html, re.S)
    assert table is not None
    order = re.findall(
        r'<tr class="slo-([a-z-]+)"[^>]*>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>', table.group(0)
    )
    assert order == [
        ("missed", "p95", "browse.list"),  # missed first, in the verdict's order
        ("missed", "p99", "browse.list"),
        ("met", "error_ratio", "all"),
        ("met", "p95", "upload.chunk"),
        ("no-data", "p95", "browse.get"),
    ]
    caption = re.search(r'<caption id="slo-missed"[^>]*>(.*?)</caption>', table.group(0), re.S)
    assert caption and caption.group(1).startswith("2 of 5 objectives missed")


# --- failure texts ------------------------------------------------------------------------------------


def _repeats_a_rule(text: str) -> bool:
    """``rule: rule:`` or ``rule: AssertionError: rule:``: a failure text that names its rule twice."""
    return re.search(r"\b([A-Za-z_][\w.]+): (?:AssertionError: )?\1:", text) is not None


def test_a_failure_names_each_of_its_rules_once() -> None:
    single = CheckResult(
        "flow",
        "upload",
        "test_flow[upload]",
        "failed",
        rule="upload.content_match",
        message="upload.content_match: stored content differs (sha256 mismatch)",
    )
    assert single.problem_lines() == [("upload.content_match", "stored content differs (sha256 mismatch)")]
    assert single.headline() == "upload.content_match: stored content differs (sha256 mismatch)"
    legacy = CheckResult(
        "caching",
        "cache",
        "test_cache_flow",
        "failed",
        rule="cache.write_fresh",
        message="AssertionError: cache.write_fresh: served stale",
    )
    assert legacy.headline() == "cache.write_fresh: served stale"
    several = CheckResult(
        "action",
        "media.get",
        "t",
        "failed",
        rule="no_internal_error, response_schema_conformance",
        message="no_internal_error: answered HTTP 500\nresponse_schema_conformance: not an entry",
    )
    assert several.problem_lines() == [
        ("no_internal_error", "answered HTTP 500"),
        ("response_schema_conformance", "not an entry"),
    ]
    unnamed = CheckResult(
        "security", "ks.expired", "test_expired_ks_is_refused", "failed", message="accepted"
    )
    assert unnamed.headline() == "test_expired_ks_is_refused: accepted"
    html = render_html(
        RunReport("t", "x", "now", contract=ContractSection("quick", [single, legacy, several]))
    )
    text = re.sub(r"<[^>]+>", "", html)
    assert not _repeats_a_rule(text) and text.count("response_schema_conformance") == 1


def test_a_summary_row_is_shown_but_not_counted() -> None:
    rows = [
        CheckResult(
            "action", "media.get", "t[a]", "failed", rule="no_internal_error", message="no_internal_error: x"
        ),
        CheckResult("action", "media.list", "t[b]", "passed"),
        CheckResult(
            "action",
            "all actions",
            "test_action",
            "failed",
            message="contracts broken by media.get",
            summary=True,
        ),
    ]
    section = ContractSection("quick", rows)
    assert section.counts()["failed"] == 1 and section.counts()["passed"] == 1
    html = render_html(RunReport("t", "x", "now", contract=section))
    assert '<p class="kind-summary"><b>all actions</b>: contracts broken by media.get' in html
    assert html.count('<tr class="row-failed">') == 1


# --- the exchange recorder ------------------------------------------------------------------------------


class Answering:
    """A transport that answers every request with ``body`` (or raises ``error``)."""

    backs_off = True

    def __init__(self, body: bytes = b'{"ok": true}', content_type: str = "application/json") -> None:
        self.body, self.content_type, self.error = body, content_type, None

    def send(self, request: HttpRequest) -> HttpResponse:
        if self.error is not None:
            raise self.error
        headers = Headers({"Content-Type": self.content_type, "X-Kaltura": "cached-dispatcher,abc,0"})
        return HttpResponse(200, headers, self.body, 0.01)


def test_the_recorder_keeps_the_last_exchanges_redacted_and_bounded() -> None:
    secret = "s3cr3t-admin-secret-0123456789"
    register_secret(secret)
    ks = ks_lib.build("x" * 32, 101, "admin", 2, 3600, "", version=2)
    inner = Answering(json.dumps({"echo": ks, "objects": []}).encode())
    recorder = Recorder(inner)
    assert recorder.backs_off
    body = json.dumps({"ks": ks, "secret": secret, "session": "not-a-ks-but-named-ks", "0": {"ks": "short"}})
    recorder.send(
        HttpRequest(
            "POST",
            f"http://h/api_v3/service/x/action/get/ks/{ks}",
            {"Content-Type": "application/json"},
            body.encode(),
        )
    )
    form = f"ks={ks}&entryId=0_a&secret={secret}".encode()
    token = STEP_LABEL.set("upload.chunk")
    try:
        recorder.send(
            HttpRequest("POST", "http://h/a", {"Content-Type": "application/x-www-form-urlencoded"}, form)
        )
    finally:
        STEP_LABEL.reset(token)
    kept = recorder.since(0)
    dumped = json.dumps([e.as_details() for e in kept])
    assert (
        ks not in dumped
        and secret not in dumped
        and not any(looks_like_ks(t) for t in _TOKEN.findall(dumped))
    )
    assert "KS*" in dumped and '"0": {"ks": "***' in kept[0].request["body"]
    assert kept[1].step == "upload.chunk" and kept[1].as_details()["request"]["step"] == "upload.chunk"
    assert kept[0].response["headers"] == {"x-kaltura": "cached-dispatcher,abc,0"}
    # bounded: the oldest go first; a transport error is an exchange without an answer
    for _ in range(KEPT):
        recorder.send(HttpRequest("GET", "http://h/b"))
    inner.error = TransportTimeout("GET http://h/c: no complete answer within 1s")
    with pytest.raises(TransportTimeout):
        recorder.send(HttpRequest("GET", "http://h/c"))
    assert len(recorder.since(0)) == KEPT and recorder.since(0)[-1].response == {
        "error": "TIMEOUT: GET http://h/c: no complete answer within 1s"
    }
    assert recorder.since(recorder.mark()) == []


def test_bodies_are_cut_and_binary_ones_described() -> None:
    assert describe_body(b"\x00\x01\xff" * 100, "video/mp4") == "<300 bytes of video/mp4>"
    assert (
        describe_body(b"--b\r\n", "multipart/form-data; boundary=b") == "<multipart/form-data body, 5 bytes>"
    )
    long = describe_body(b"a" * 50_000, "text/plain")
    assert (
        long.startswith("a" * MAX_BODY)
        and long.endswith("(50000 bytes in all)")
        and len(long) < MAX_BODY + 40
    )
    assert describe_body(b"", "application/json") == ""


def test_the_evidence_is_the_failed_steps_last_exchange_never_the_clean_up() -> None:
    recorder = Recorder(Answering())
    for step in ("upload.token_add", "upload.content_match", "upload.content_match", "upload.cleanup"):
        token = STEP_LABEL.set(step)
        try:
            recorder.send(HttpRequest("GET", f"http://h/{step}"))
        finally:
            STEP_LABEL.reset(token)
    kept = recorder.since(0)
    assert evidence(kept, "upload.content_match") is kept[2]
    assert evidence(kept, "upload.wait_ready") is kept[2], (
        "a step without requests: the last one before clean-up"
    )
    assert evidence([], "x") is None


# --- JUnit ------------------------------------------------------------------------------------------------

_JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">
<testsuite name="pytest" errors="0" failures="2" skipped="0" tests="3" time="1.0">
<testcase classname="test_schema" name="test_action" time="1"><failure message="contracts broken by a">x</failure>
<properties><property name="ksentinel.outcome" value="failed"/><property name="ksentinel.cases" value="sent 4"/>
<property name="ksentinel.summary" value="contracts broken by a (2 actions: 1 passed, 1 failed)"/></properties></testcase>
<testcase classname="test_schema" name="test_action[a]" time="1"><failure message="E   rule: why">x</failure></testcase>
<testcase classname="test_schema" name="test_action[b]" time="1"/>
</testsuite></testsuites>"""


def test_junit_counts_each_action_once(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(_JUNIT)
    assert fold_summaries(path) == 1
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    assert [c.get("name") for c in suite.iter("testcase")] == ["test_action[a]", "test_action[b]"]
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert props == {
        "ksentinel.cases": "sent 4",
        "ksentinel.summary": "contracts broken by a (2 actions: 1 passed, 1 failed)",
    }
    assert fold_summaries(path) == 0
    (tmp_path / "cut.xml").write_text(_JUNIT[:200])
    assert fold_summaries(tmp_path / "cut.xml") == 0  # a file not written whole stays as it is


# --- in the browser: hand-made load data, then real failures --------------------------------------------


def test_charts_and_slo_table_read_well_in_headless_chromium(tmp_path: Path) -> None:
    summary = {**summary_with_steps(12), "totals": {"requests": 900, "failures": 0, "rps": 30.0}}
    outcome = LoadOutcome(1, "smoke", "run-1", rows=slo_rows(), summary=summary)
    report = RunReport("ksentinel load", "embedded", "now", load=load_section(outcome, tmp_path))
    html = write_report(report, tmp_path / "report.html")
    with open_page(html) as opened:
        page = opened.page
        charts = page.locator("figure.load-chart svg.chart")
        assert charts.count() == 2
        for index in range(2):
            chart = charts.nth(index)
            series = chart.locator("path.series")
            assert 1 < series.count() <= 7
            names = [series.nth(i).locator("title").text_content() for i in range(series.count())]
            legend = chart.locator("g.legend")
            assert legend.count() == series.count()
            assert [legend.nth(i).locator("text").text_content() for i in range(legend.count())] == names
            assert all(legend.nth(i).is_visible() for i in range(legend.count()))
            strokes = [
                series.nth(i).evaluate("e => getComputedStyle(e).stroke") for i in range(series.count())
            ]
            assert len(set(strokes)) == len(strokes), strokes
            assert names[-1].startswith("other (6 steps, ")
        rows = page.locator("#slo-table tbody > tr")
        classes = [rows.nth(i).get_attribute("class") for i in range(rows.count())]
        assert classes == ["slo-missed", "slo-missed", "slo-met", "slo-met", "slo-no-data"]
        assert page.locator("#slo-missed").inner_text().startswith("2 of 5 objectives missed")
        assert opened.problems == []


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``ksentinel contract`` against a platform with faults a flow, the cache, a security check and
    fuzzing each catch; the secrets it holds, to look for in everything written."""
    tmp = tmp_path_factory.mktemp("faulty")
    with start_reference(tmp / "ref", faults=FAULTS) as ref:
        proc, out = run_contract(tmp, "--profile", "quick", env=target_env(ref))
        secrets = [ref.p1.admin_secret, ref.p1.user_secret, ref.p2.admin_secret, ref.p2.user_secret]
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, out, secrets


def test_failed_flow_caching_and_security_checks_carry_their_exchange(faulty_run: Any) -> None:
    proc, out, secrets = faulty_run
    results = json.loads((out / "contract.json").read_text())["contract"]["results"]
    broken = {(r["kind"], r["subject"]): r for r in results if r["outcome"] == "failed"}
    for key in (("flow", "upload"), ("flow", "delete"), ("caching", "cache"), ("security", "ks.expired")):
        assert key in broken, sorted(broken)
        request, response = broken[key]["request"], broken[key]["response"]
        assert request and request["method"] in ("GET", "POST") and request["url"], key
        assert response and response["status"] == 200, key
    # the exchange proves it: the stale name came from the cache; the deleted entry's wrong code
    cache = broken[("caching", "cache")]
    assert (
        cache["request"]["step"] == "cache.write_fresh"
        and "ksentinel cache before" in cache["response"]["body"]
    )
    assert cache["response"]["headers"]["x-kaltura"].startswith("cached-dispatcher")
    assert "INTERNAL_SERVERL_ERROR" in broken[("flow", "delete")]["response"]["body"]
    assert broken[("security", "ks.expired")]["request"]["body"].count('"ks": "KS*') == 1
    written = "".join(p.read_text(errors="replace") for p in out.iterdir()) + proc.stdout + proc.stderr
    assert not any(secret in written for secret in secrets)
    assert not any(looks_like_ks(token) for token in _TOKEN.findall(written)), "a KS in the artefacts"


def test_failure_texts_name_their_rule_once_and_junit_counts_each_action_once(faulty_run: Any) -> None:
    proc, out, _ = faulty_run
    results = json.loads((out / "contract.json").read_text())["contract"]["results"]
    checks = [r for r in results if not r.get("summary")]
    assert [r["subject"] for r in results if r.get("summary")] == ["all actions"]
    broken = [line for line in proc.stdout.splitlines() if line.startswith("  BROKEN ")]
    assert len(broken) == sum(1 for r in checks if r["outcome"] == "failed") >= 8
    assert not any(_repeats_a_rule(line) or "AssertionError" in line for line in broken), broken
    assert "  BROKEN flow upload: upload.content_match: stored content differs" in proc.stdout
    assert "all actions" not in "\n".join(broken)
    assert f"{sum(1 for r in checks if r['outcome'] == 'failed')} failed" in proc.stdout
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    cases = list(suite.iter("testcase"))
    assert len(cases) == int(suite.get("tests") or 0) == len(checks)
    failures = [c.find("failure") for c in cases if c.find("failure") is not None]
    assert (
        len(failures) == int(suite.get("failures") or 0) == sum(1 for r in checks if r["outcome"] == "failed")
    )
    assert "test_action" not in {c.get("name") for c in cases}, "the umbrella of the fuzzed actions"
    for failure in failures:
        message = failure.get("message") or ""  # what broke first, then the exchange, never source code
        assert message.startswith("E   ") and not _repeats_a_rule(message) and "def test_" not in message
    upload = next(f for c in cases if c.get("name") == "test_flow[upload]" for f in c.iter("failure"))
    assert "request: GET " in (upload.get("message") or "") and "(step upload.content_match)" in (
        upload.get("message") or ""
    )
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert (props.get("ksentinel.summary") or "").startswith("contracts broken by ")


def test_a_failed_flow_shows_its_request_and_response_in_headless_chromium(faulty_run: Any) -> None:
    _, out, secrets = faulty_run
    with open_page(out / "contract.html") as opened:
        page = opened.page
        assert page.locator("#verdict").inner_text().startswith("FAIL")
        row = page.locator("tr.row-failed", has=page.locator("td", has_text="test_flow[delete]"))
        assert row.count() == 1
        request = row.locator("details.exchange-request")
        response = row.locator("details.exchange-response")
        assert request.get_attribute("open") is not None and response.get_attribute("open") is not None
        assert request.locator("summary").inner_text().startswith("request: POST http")
        assert "(step delete.gone)" in request.inner_text()
        shown = request.locator("pre").inner_text()
        assert re.search(r'"ks": "KS\*[0-9a-f]{6}"', shown), shown  # the KS masked, its fingerprint kept
        assert response.is_visible() and "INTERNAL_SERVERL_ERROR" in response.locator("pre").inner_text()
        assert response.locator("summary").inner_text().startswith("response: HTTP 200")
        problem = row.locator("div.problem").first.inner_text()
        assert problem.startswith("delete.gone: ") and not _repeats_a_rule(problem)
        text = page.locator("body").inner_text()
        assert not any(secret in text for secret in secrets)
        assert not any(looks_like_ks(token) for token in _TOKEN.findall(text))
        summary = page.locator("p.kind-summary")
        assert summary.count() == 1 and summary.inner_text().startswith("all actions: contracts broken by")
        assert opened.problems == []

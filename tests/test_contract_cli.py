"""``ksentinel contract`` end to end: clean platform, the fault matrix, bad targets, artefacts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import Reference, start_reference
from tests.helpers import target_env

REPO = Path(__file__).resolve().parents[1]
CONTRACT_TIMEOUT = 240

# One fault through the CLI, its JUnit and its HTML report; every fault's broken rule is checked by
# the fault matrix (tests/test_selftest.py, CONTRACT_RULES).
EXPECTED = {"upload-corrupt": ("flow", "upload", "upload.content_match")}


def run_contract(
    tmp: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp / "out"
    command = [
        sys.executable,
        "-m",
        "ksentinel.cli",
        "contract",
        "--suite",
        str(REPO / "contracts"),
        "--report",
        str(out),
        "--junit",
        str(out / "junit.xml"),
        *args,
    ]
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=CONTRACT_TIMEOUT,
        env={**clean_env, **(env or {})},
        cwd=tmp,
    )
    return proc, out


def results(out: Path) -> list[dict]:
    return json.loads((out / "contract.json").read_text())["contract"]["results"]


def test_clean_platform_keeps_every_contract_and_artefacts_are_clean(
    tmp_path: Path, fresh_reference: Reference
) -> None:
    proc, out = run_contract(tmp_path, "--profile", "ci", env=target_env(fresh_reference))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    got = results(out)
    kinds = {r["kind"] for r in got}
    assert {"flow", "caching", "security"} <= kinds
    assert all(r["outcome"] in ("passed", "skipped") for r in got)
    # this platform masks a refused KS: the echo check passes, with nothing to advise
    echo = next(r for r in got if r["subject"] == "ks.never_echoed")
    assert echo["outcome"] == "passed" and not echo.get("findings")
    # JUnit XML is well-formed xunit2 with one testcase per check (a summary row is not one)
    root = ET.parse(out / "junit.xml").getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    cases = [case for suite in suites for case in suite.iter("testcase")]
    checks = [r for r in got if not r.get("summary")]
    assert len(cases) == len(checks) and all(case.get("classname") and case.get("name") for case in cases)
    # the HTML report is one self-contained file
    html = (out / "contract.html").read_text()
    assert 'id="verdict"' in html and "PASS" in html
    # a step that cannot check anything with a handful of entries says so, it is not counted as kept
    listing = next(r for r in got if r["kind"] == "flow" and r["subject"] == "list")
    clamp = next(s for s in listing["steps"] if s["name"] == "list.page_size_clamp")
    assert clamp["tested"] is False and "clamp needs more than 500" in clamp["reason"], clamp
    assert "not tested here: list.page_size_clamp" in html
    assert any(case.find(".//property[@name='ksentinel.not_tested_steps']") is not None for case in cases)
    for external in ("<script", "<link", 'src="http', "@import", "url("):
        assert external not in html
    # no secret or KS anywhere in what the run wrote or printed
    secrets = [
        fresh_reference.p1.admin_secret,
        fresh_reference.p1.user_secret,
        fresh_reference.p2.admin_secret,
    ]
    written = "".join(p.read_text(errors="replace") for p in out.iterdir()) + proc.stdout + proc.stderr
    for secret in secrets:
        assert secret not in written
    assert "djJ8" not in written, "a KS v2 leaked into the artefacts"
    # and the run cleaned up after itself
    store = fresh_reference.server.platform.store
    assert store.all_entries() == []


@pytest.mark.parametrize("fault", sorted(EXPECTED))
def test_fault_matrix_each_fault_breaks_a_named_contract(fault: str, tmp_path: Path) -> None:
    with start_reference(tmp_path / "ref", faults=(fault,)) as ref:
        proc, out = run_contract(tmp_path, "--profile", "quick", env=target_env(ref))
    assert proc.returncode == 1, f"fault {fault} was not caught:\n{proc.stdout[-3000:]}"
    kind, subject, rule = EXPECTED[fault]
    broken = [r for r in results(out) if r["outcome"] in ("failed", "error")]
    assert broken
    matching = [
        r
        for r in broken
        if (kind is None or r["kind"] == kind)
        and (subject is None or r["subject"] == subject)
        and (rule is None or rule in (r.get("rule") or "") + (r.get("message") or ""))
    ]
    assert matching, (
        f"{fault}: expected a broken {kind}/{subject}/{rule}, got {[(r['kind'], r['subject'], r.get('rule')) for r in broken]}"
    )
    html = (out / "contract.html").read_text()
    assert "FAIL" in html and matching[0]["subject"] in html


# `ksentinel contract` with a target of ksentinel.toml, only the upload flow's check selected
_UPLOAD_CONTRACT = """
import json, sys
from pathlib import Path

from ksentinel.config import load_config, resolve_target
from ksentinel.contract.runner import run_contract

config = Path(sys.argv[1])
target = resolve_target(load_config(config), target="slow").target
outcome = run_contract(
    target, profile="quick", suite=Path(sys.argv[2]), extra_args=("-k", "test_flow and upload"), config_path=config
)
print(json.dumps({"exit": outcome.exit_code, "results": [vars(r) for r in outcome.section.results]}))
"""


def test_the_upload_contract_waits_for_the_conversion_at_most_the_targets_ready_timeout(
    tmp_path: Path,
) -> None:
    with start_reference(tmp_path / "slow", ready_after=3.0) as ref:
        config = tmp_path / "ksentinel.toml"
        config.write_text(
            f"""
[targets.slow]
url = "{ref.url}"
partner_id = {ref.p1.id}
admin_secret_env = "REF_SECRET"
ready_timeout = 0.5
"""
        )
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
        proc = subprocess.run(
            [sys.executable, "-c", _UPLOAD_CONTRACT, str(config), str(REPO / "contracts")],
            capture_output=True,
            text=True,
            timeout=CONTRACT_TIMEOUT,
            env={**clean_env, "REF_SECRET": ref.p1.admin_secret},
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        outcome = json.loads(proc.stdout.strip().splitlines()[-1])
        assert outcome["exit"] == 1, outcome
        (check,) = outcome["results"]
        assert (check["subject"], check["outcome"], check["rule"]) == (
            "upload",
            "failed",
            "upload.wait_ready",
        )
        assert re.search(
            r"entry \S+ not READY after 0\.5 s \(ready_timeout\); last status PRECONVERT \(1\)",
            check["message"],
        ), check["message"]
        assert ref.server.platform.store.all_entries() == [], "the entry is deleted after the failure"


def test_unreachable_url_exits_2_with_one_line(tmp_path: Path) -> None:
    proc, _ = run_contract(
        tmp_path,
        "--url",
        "http://127.0.0.1:9",
        "--partner-id",
        "101",
        env={"KSENTINEL_ADMIN_SECRET": "x" * 32},
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ksentinel: error:")]
    assert len(errors) == 1 and "cannot reach" in errors[0]
    assert "Traceback" not in proc.stderr


def test_not_a_kaltura_api_exits_2(tmp_path: Path) -> None:
    import http.server
    import threading

    class Html(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._html()

        def do_POST(self) -> None:
            self._html()

        def _html(self) -> None:
            body = b"<html><body>welcome to nginx</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Html)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        proc, _ = run_contract(
            tmp_path,
            "--url",
            f"http://127.0.0.1:{server.server_port}",
            "--partner-id",
            "101",
            env={"KSENTINEL_ADMIN_SECRET": "x" * 32},
        )
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 2
    assert "does not answer like a Kaltura API" in proc.stderr and "Traceback" not in proc.stderr


def test_wrong_secret_exits_2(tmp_path: Path, reference: Reference) -> None:
    proc, _ = run_contract(tmp_path, env=target_env(reference, admin_secret="0" * 32))
    assert proc.returncode == 2
    assert "refused our admin KS" in proc.stderr and "0" * 32 not in proc.stderr


def test_deep_run_leaves_nothing_and_touches_nothing_it_did_not_create(
    tmp_path: Path, fresh_reference: Reference
) -> None:
    import httpx

    from ksentinel.kaltura.api import KalturaApi
    from tests.helpers import admin_ks, target_env, upload_entry

    admin = admin_ks(fresh_reference.p1, "someone-else")
    with httpx.Client(timeout=10) as http:
        seeded = [
            upload_entry(http, fresh_reference.url, admin, os.urandom(2000), name=f"precious {i}")
            for i in range(2)
        ]
    with KalturaApi(fresh_reference.url, ks=admin) as api:
        seeded.append(
            api.call("baseEntry", "add", entry={"objectType": "KalturaBaseEntry", "name": "precious draft"})
        )
        seeded_token = api.call("uploadToken", "add")
        # the uploads turn READY after the platform's "transcoding" delay, at the next request: that
        # change is the platform's own, so the snapshot is taken once it has happened
        store = fresh_reference.server.platform.store
        deadline = time.monotonic() + 10
        while any(e["status"] == 1 for e in store.all_entries()) and time.monotonic() < deadline:
            time.sleep(0.1)
            api.call("system", "ping")
    before = {e["id"]: (e["name"], e["updated_at"], e["status"]) for e in store.all_entries()}

    proc, _ = run_contract(tmp_path, "--profile", "deep", env=target_env(fresh_reference))
    assert proc.returncode == 0, proc.stdout[-3000:]

    after = {e["id"]: (e["name"], e["updated_at"], e["status"]) for e in store.all_entries()}
    assert after == {k: v for k, v in before.items() if k in after} and set(after) == set(before), (
        "the run changed or left entries"
    )
    token = store.get_token(fresh_reference.p1.id, seeded_token["id"])
    assert token is not None and token["status"] == 0
    leftovers = [t for t in store.all_tokens() if t["id"] != seeded_token["id"] and t["status"] not in (3, 5)]
    assert leftovers == [], "the run left open upload tokens"


def _junit_case(out: Path, name: str) -> ET.Element:
    root = ET.parse(out / "junit.xml").getroot()
    return next(case for case in root.iter("testcase") if case.get("name") == name)


def test_a_refused_ks_echoed_in_invalid_ks_is_advisory_unless_strict(tmp_path: Path) -> None:
    from ksentinel.kaltura.redact import looks_like_ks
    from ksentinel.reference.realism import Realism

    name = "test_ks_values_never_come_back_in_responses"
    with start_reference(tmp_path / "ref", realism=Realism.off(echo_invalid_ks=True)) as ref:
        proc, out = run_contract(tmp_path, "--profile", "quick", env=target_env(ref))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        echo = next(r for r in results(out) if r["subject"] == "ks.never_echoed")
        assert echo["outcome"] == "advisory", echo
        assert echo["message"].startswith("the server echoes a refused KS in INVALID_KS")
        assert {f["code"] for f in echo["findings"]} == {"INVALID_KS"}
        assert {f["where"] for f in echo["findings"]} == {"body"}
        assert "baseEntry.list with a KS signed with another secret" in {
            f["request"] for f in echo["findings"]
        }
        assert all(f["masked_ks"].startswith("KS*") for f in echo["findings"])
        # JUnit: a skipped case whose reason starts "advisory:", and the finding as a property
        case = _junit_case(out, name)
        skipped = case.find("skipped")
        assert skipped is not None and skipped.get("message", "").startswith("advisory: the server echoes")
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert properties["ksentinel.advisory"].startswith("the server echoes a refused KS")
        # the report keeps it apart from PASS/FAIL/skipped, and the terminal names it
        html = (out / "contract.html").read_text()
        assert "PASS" in html and '<span class="badge advisory">advisory</span>' in html
        assert "ADVISORY security ks.never_echoed" in proc.stdout
        # the list flow waited for its writes to be listed: its index lag is in the JSON and in JUnit
        listed = next(r for r in results(out) if r["kind"] == "flow" and r["subject"] == "list")
        assert listed["index_lags"] and all(lag >= 0 for lag in listed["index_lags"])
        lag = {p.get("name"): p.get("value") for p in _junit_case(out, "test_flow[list]").iter("property")}
        assert re.fullmatch(r"\d+ writes?: median \d+\.\d{3} s, max \d+\.\d{3} s", lag["ksentinel.index_lag"])
        written = "".join(p.read_text(errors="replace") for p in out.iterdir()) + proc.stdout + proc.stderr
        assert "djJ8" not in written and not any(looks_like_ks(word) for word in written.split())
        secrets = [ref.p1.admin_secret, ref.p1.user_secret, ref.p2.admin_secret]
        assert not any(secret in written for secret in secrets)

        # [contract] strict_ks_echo = true (here through $KSENTINEL_CONFIG) makes it a broken contract
        strict = tmp_path / "conf" / "strict.toml"
        strict.parent.mkdir()
        strict.write_text("[contract]\nstrict_ks_echo = true\n")
        proc, out = run_contract(
            tmp_path, "--profile", "quick", env={**target_env(ref), "KSENTINEL_CONFIG": str(strict)}
        )
    assert proc.returncode == 1, proc.stdout[-3000:]
    broken = [r for r in results(out) if r["outcome"] in ("failed", "error")]
    assert [(r["subject"], r["rule"]) for r in broken] == [("ks.never_echoed", "strict_ks_echo")]
    assert broken[0]["findings"] and "strict_ks_echo = true" in broken[0]["message"]
    assert _junit_case(out, name).find("failure") is not None


def test_a_misspelt_contract_key_exits_2_with_one_line(tmp_path: Path, reference: Reference) -> None:
    (tmp_path / "ksentinel.toml").write_text("[contract]\nstrict_ks_eco = true\n")
    proc, out = run_contract(tmp_path, "--profile", "quick", env=target_env(reference))
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ksentinel: error:")]
    assert errors == [
        "ksentinel: error: ksentinel.toml: contract.strict_ks_eco: unknown key; did you mean 'strict_ks_echo'?"
    ]
    assert not (out / "junit.xml").exists()


_NO_WORKAROUND = """# the upstream crash ksentinel works around, back on: for the test of its containment
from ksentinel.contract import schemathesis_support

schemathesis_support.BINARY_WORKAROUND = False
"""


def test_a_schemathesis_crash_is_a_tool_error_of_its_action_and_the_run_goes_on(tmp_path: Path) -> None:
    """Issue 12: schemathesis 4.32.5's coverage phase crashed on one operation and every action's verdict
    went with it (``BROKEN action all actions``). Now that operation is a tool error, the others are judged,
    and a run that could not judge everything exits 2; with the workaround the same target is green."""
    from tests.test_contract_schema import reference_serving, schema_with_extra_actions

    (tmp_path / "ksentinel.toml").write_text(
        '[contract]\ninclude = ["baseEntry.get", "media.bulkUploadAdd", "system.ping"]\n'
        'fuzz_include = ["media.bulkUploadAdd"]\n'  # never fuzzed by default unless named (issue 14)
    )
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "ksentinel_no_binary_workaround.py").write_text(_NO_WORKAROUND)
    crash_env = {"PYTEST_ADDOPTS": "-p ksentinel_no_binary_workaround", "PYTHONPATH": str(plugins)}
    with reference_serving(tmp_path / "ref", schema_with_extra_actions(tmp_path / "schema.xml")) as ref:
        proc, out = run_contract(tmp_path, "--profile", "ci", env={**target_env(ref), **crash_env})
        assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-2000:]
        label = "POST /api_v3/service/media/action/bulkUploadAdd"
        line = next(line for line in proc.stdout.splitlines() if "TOOL ERROR" in line)
        assert line.startswith("  TOOL ERROR action media.bulkUploadAdd: schemathesis ")
        assert (
            f"crashed deriving the coverage cases of {label}: ValueError: Unsupported type: 'Binary'" in line
        )
        assert "BROKEN" not in proc.stdout
        got = {r["subject"]: r for r in results(out)}
        assert got["media.bulkUploadAdd"]["outcome"] == "error"
        assert got["media.bulkUploadAdd"]["message"].startswith("tool error: schemathesis ")
        for subject in ("baseEntry.get", "system.ping"):  # the run went on: judged, requests sent
            assert got[subject]["outcome"] == "passed" and got[subject]["cases"]["judged"] > 0
        assert got["all actions"]["outcome"] == "error"
        assert {r["outcome"] for r in got.values() if r["kind"] != "action"} <= {
            "passed",
            "skipped",
            "advisory",
        }
        case = next(
            c for c in ET.parse(out / "junit.xml").getroot().iter("testcase") if label in c.get("name", "")
        )
        failure = case.find("failure")
        assert failure is not None  # the failure text is the verdict, as for a broken contract: "E   ..."
        assert failure.get("message", "").removeprefix("E").lstrip().startswith("tool error: schemathesis ")
        assert {p.get("name"): p.get("value") for p in case.iter("property")}["ksentinel.outcome"] == "error"
        html = (out / "contract.html").read_text()
        assert '<span class="badge error">tool error</span>' in html and "FAIL" in html

        # the workaround (the default): the same target keeps its contract, the action it lacks is listed
        proc, out = run_contract(tmp_path, "--profile", "ci", env=target_env(ref))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    got = {r["subject"]: r for r in results(out)}
    assert got["media.bulkUploadAdd"]["outcome"] == "not_tested"
    assert got["media.bulkUploadAdd"]["cases"]["sent"] == 1
    lines = proc.stdout.splitlines()
    at = lines.index("  NOT TESTED (1): not available on this target (SERVICE_FORBIDDEN)")
    assert lines[at + 1] == "    media.bulkUploadAdd"
    assert "TOOL ERROR" not in proc.stdout
    html = (out / "contract.html").read_text()
    assert '<span class="badge not_tested">1 not tested</span>' in html and "PASS" in html

"""``ksentinel contract --profile ci`` against a target serving the real Kaltura schema (issue 12).

``ksentinel serve --schema FILE`` serves the real 22.15.0 ``api_schema.php`` (884 actions; 76 of them in
the suite's scope) and answers SERVICE_FORBIDDEN for the actions it lists but does not implement. The
run must be green, judge every action the platform offers (requests really sent: a proxy counts them)
and list every other one as not tested, with the reason. Its wall time is measured by
``benchmarks/contract_runtime.py`` (goal: 60 s on 2 cores), not here.

The schema file is read from ``shared/data/`` beside the repository (or ``$KSENTINEL_KALTURA_SCHEMA``),
never copied into the project; without it the test is skipped with the reason.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ksentinel.config import load_config
from ksentinel.contract.scope import load_scope
from ksentinel.reference.process import ReferenceProcess
from ksentinel.schema.openapi import to_openapi
from ksentinel.schema.xml import parse_schema
from tests.helpers import real_schema_path
from tests.test_contract_cli import REPO, results, run_contract
from tests.test_contract_schema import CountingProxy

# what the reference platform implements among the in-scope actions: these must be judged
IMPLEMENTED = {
    "baseEntry.get",
    "baseEntry.list",
    "baseEntry.add",
    "baseEntry.delete",
    "media.add",
    "media.get",
    "media.list",
    "media.update",
    "session.start",
    "session.end",
    "system.ping",
    "uploadToken.add",
    "uploadToken.upload",
    "uploadToken.delete",
}
NOT_AVAILABLE = "not tested: not available on this target (SERVICE_FORBIDDEN)"


@pytest.fixture(scope="module")
def real_schema() -> Path:
    path = real_schema_path()
    return path


def in_scope_actions(schema_file: Path) -> set[str]:
    """The operationIds of the suite's scope (contracts/scope.toml) in the real schema."""
    scope = load_scope(load_config(None), REPO / "contracts")
    document = to_openapi(parse_schema(schema_file.read_bytes()), scope=scope)
    return {item["post"]["operationId"] for item in document["paths"].values()}


def test_the_ci_profile_judges_the_real_schema_and_lists_what_the_target_lacks(
    tmp_path: Path, real_schema: Path
) -> None:
    admin, peer = secrets.token_hex(16), secrets.token_hex(16)
    partners = f"101:{admin}:{secrets.token_hex(16)},102:{peer}:{secrets.token_hex(16)}"
    with (
        ReferenceProcess(
            tmp_path / "ref",
            env={"KSENTINEL_REF_PARTNERS": partners},
            ready_after=0.2,
            extra_args=("--schema", str(real_schema)),
        ) as ref,
        CountingProxy(ref.url) as proxy,
    ):
        proc, out = run_contract(
            tmp_path,
            "--profile",
            "ci",
            "--url",
            proxy.url,
            "--partner-id",
            "101",
            env={
                "KSENTINEL_ADMIN_SECRET": admin,
                "KSENTINEL_PEER_PARTNER_ID": "102",
                "KSENTINEL_PEER_ADMIN_SECRET": peer,
            },
        )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    got = results(out)
    assert not [r for r in got if r["outcome"] in ("failed", "error")], proc.stdout[-4000:]
    fuzzed = {r["subject"]: r for r in got if r["name"].startswith("test_action[")}
    assert set(fuzzed) == in_scope_actions(real_schema)  # 76 actions, each with its own verdict
    judged, not_available = set(), set()
    for subject, result in fuzzed.items():
        cases = result["cases"]
        if result["outcome"] == "passed":
            # requests really reached the server (a proxy counted them) and their answers were judged
            assert cases["judged"] > 0 and proxy.sent(subject) >= cases["sent"] > 0, (subject, cases)
            judged.add(subject)
        else:
            assert result["outcome"] == "not_tested", (subject, result["outcome"])
            reason = result["message"].removeprefix("not tested: ")
            assert result["message"].startswith("not tested: ") and reason, (subject, result["message"])
            assert cases["judged"] == 0 and proxy.sent(subject) == cases["sent"], (subject, cases)
            if result["message"] == NOT_AVAILABLE:
                assert cases["sent"] == 1 and cases["reasons"]["answered SERVICE_FORBIDDEN"] == 1
                not_available.add(subject)
    assert judged >= IMPLEMENTED
    # default-deny fuzzing (issue 14): bulk uploads and conversions are never sent unless named one by one
    for subject in ("media.bulkUploadAdd", "media.convert", "baseEntry.exportToCsv"):
        assert fuzzed[subject]["outcome"] == "not_tested" and fuzzed[subject]["cases"]["sent"] == 0, subject
        assert "never fuzzed by default" in fuzzed[subject]["message"], subject
    assert not_available  # reads the target does not offer are still sent once
    # the guard never sends these (they change objects they do not name by an id)
    for subject in ("baseEntry.bulkDelete", "baseEntry.flag", "media.flag"):
        assert fuzzed[subject]["outcome"] == "not_tested" and fuzzed[subject]["cases"]["sent"] == 0
    # the terminal lists what the target lacks, under one line with the reason
    lines = proc.stdout.splitlines()
    at = lines.index(f"  NOT TESTED ({len(not_available)}): {NOT_AVAILABLE.removeprefix('not tested: ')}")
    listed = []
    for line in lines[at + 1 :]:
        if not line.startswith("    "):
            break
        listed += [name.strip() for name in line.split(",") if name.strip()]
    assert listed == sorted(not_available)
    assert "TOOL ERROR" not in proc.stdout and "BROKEN" not in proc.stdout
    # JUnit: a skipped test case saying why for each action not tested
    cases = {c.get("name"): c for c in ET.parse(out / "junit.xml").getroot().iter("testcase")}
    skipped = {
        name: case.find("skipped").get("message")  # type: ignore[union-attr]
        for name, case in cases.items()
        if name and name.startswith("test_action[") and case.find("skipped") is not None
    }
    assert len(skipped) == len(fuzzed) - len(judged)
    assert list(skipped.values()).count(NOT_AVAILABLE) == len(not_available)

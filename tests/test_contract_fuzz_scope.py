"""Default-deny fuzzing: reads and add/delete pairs by default, everything else only when included,
exports/uploads/batch jobs only when named one by one, reads only on a production target; the report
lists what was left out and why."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from ksentinel.config import Config
from ksentinel.contract.fuzz_scope import FuzzPolicy, decisions, is_read, mark_not_fuzzed, policy_for
from ksentinel.contract.scope import load_scope
from ksentinel.schema.openapi import to_openapi
from ksentinel.schema.scope import Scope
from ksentinel.schema.xml import parse_schema
from tests.conftest import Reference
from tests.helpers import real_schema_path, target_env
from tests.test_contract_cli import results, run_contract

NEVER = (
    "baseEntry.exportToCsv",
    "media.exportToCsv",
    "media.bulkUploadAdd",
    "baseEntry.upload",
    "media.upload",
    "baseEntry.export",
)
READS = ("baseEntry.get", "baseEntry.list", "baseEntry.count", "media.get", "media.list", "system.ping")


@pytest.fixture(scope="module")
def real_document() -> dict:
    path = real_schema_path()
    return to_openapi(parse_schema(path.read_bytes()))


def test_the_default_scope_over_the_real_schema_fuzzes_reads_and_pairs_only(real_document) -> None:
    left_out = decisions(real_document, FuzzPolicy())
    for subject in NEVER:
        assert left_out[subject] and "never fuzzed by default" in left_out[subject], subject
    for subject in READS:
        assert left_out[subject] is None, (subject, left_out[subject])
    # the add/delete pairs (the guard puts the run's own objects in them)
    for subject in ("media.add", "media.delete", "uploadToken.add", "uploadToken.delete", "category.add"):
        assert left_out[subject] is None, subject
    # everything else that changes state is left out, with a reason
    for subject in (
        "media.update",
        "baseEntry.update",
        "media.approveReplace",
        "session.end",
        "category.update",
    ):
        assert left_out[subject] and "fuzz_include" in left_out[subject], subject
    assert "baseEntry.flag" in left_out and "moderation" in (left_out["baseEntry.flag"] or "")
    fuzzed = [s for s, why in left_out.items() if why is None]
    assert all(is_read(s.rsplit(".", 1)[1]) or s.rsplit(".", 1)[1] in ("add", "delete") for s in fuzzed)
    assert len(fuzzed) < len(left_out)


def test_an_explicit_include_enables_one_action(real_document) -> None:
    policy = FuzzPolicy(include=("category.update", "media.convert"))
    left_out = decisions(real_document, policy)
    assert left_out["category.update"] is None and left_out["media.convert"] is None
    assert left_out["media.update"] is not None  # others stay out
    # the [contract] key, through the scope loader
    scope = load_scope(Config(contract={"include": ["media.*"], "fuzz_include": ["media.update"]}))
    assert isinstance(scope, Scope) and decisions(real_document, policy_for(scope))["media.update"] is None


def test_a_wildcard_include_never_enables_a_never_by_default_action(real_document) -> None:
    left_out = decisions(real_document, FuzzPolicy(include=("media.*", "baseEntry.*", "*.exportToCsv", "*")))
    for subject in NEVER:
        assert left_out[subject] is not None, subject
    assert left_out["media.update"] is None  # a wildcard enables an ordinary write
    named = decisions(real_document, FuzzPolicy(include=("media.exportToCsv",)))
    assert named["media.exportToCsv"] is None and named["baseEntry.exportToCsv"] is not None


def test_a_production_target_fuzzes_reads_only(real_document) -> None:
    production = policy_for(
        Scope(fuzz_include=("media.update", "media.exportToCsv")), SimpleNamespace(environment="production")
    )
    assert production.read_only
    left_out = decisions(real_document, production)
    assert all(left_out[s] is None for s in READS)
    for subject in ("media.add", "media.delete", "media.update", "media.exportToCsv"):
        assert left_out[subject] == "production target: reads only", subject
    assert not policy_for(None, SimpleNamespace()).read_only  # a target without the setting: a test target


def test_marked_operations_carry_their_reason(real_document) -> None:
    document = json.loads(json.dumps(real_document))
    marked = mark_not_fuzzed(document, FuzzPolicy())
    operation = document["paths"]["/api_v3/service/media/action/exportToCsv"]["post"]
    assert operation["x-ksentinel-not-fuzzed"] == marked["media.exportToCsv"]
    assert "x-ksentinel-not-fuzzed" not in document["paths"]["/api_v3/service/media/action/list"]["post"]


@pytest.mark.timeout(300)
def test_the_report_lists_the_actions_left_out_and_why(tmp_path: Path, fresh_reference: Reference) -> None:
    config = tmp_path / "ksentinel.toml"
    config.write_text(
        '[contract]\ninclude = ["baseEntry.*", "media.*", "uploadToken.*"]\nfuzz_include = ["media.update"]\n'
    )
    proc, out = run_contract(
        tmp_path, "--profile", "quick", env={**target_env(fresh_reference), "KSENTINEL_CONFIG": str(config)}
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    got = {r["subject"]: r for r in results(out) if r["kind"] == "action"}
    upload = got["uploadToken.upload"]
    assert upload["outcome"] == "not_tested" and "never fuzzed by default" in upload["message"]
    assert upload["cases"]["sent"] == 0
    update = got["baseEntry.update"]
    assert update["outcome"] == "not_tested" and "fuzz_include" in update["message"]
    assert update["cases"]["sent"] == 0
    assert got["media.update"]["outcome"] == "passed" and got["media.list"]["outcome"] == "passed"
    summary = got["all actions"]
    assert set(summary["cases"]["not_fuzzed"]) == {
        "uploadToken.upload",
        "baseEntry.update",
        "baseEntry.addContent",
        "baseEntry.addFromUploadedFile",
        "media.addContent",
    }
    root = ET.parse(out / "junit.xml").getroot()
    props = [p.get("value") or "" for p in root.iter("property") if p.get("name") == "ksentinel.not_fuzzed"]
    assert props and props[0].startswith("not fuzzed: 5 actions;") and "uploadToken.upload" in props[0]
    assert "not fuzzed by default" in proc.stdout or "never fuzzed by default" in proc.stdout

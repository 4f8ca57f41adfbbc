"""``ksentinel check-traffic FILE``: exit codes, one-line errors, the artefacts, and no secret in any of it.

The HAR files are recorded from a reference platform over loopback (tests/test_traffic_units.py
``record``); the command itself sends nothing (it only fetches a schema when no ``--schema`` is given).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ksentinel.kaltura import ks as ks_lib
from ksentinel.reference.realism import Realism
from tests.conftest import start_reference
from tests.helpers import admin_ks, upload_entry
from tests.test_traffic_units import body_of, har, record, set_body, synthetic


@dataclass
class Recorded:
    """A recorded HAR and the values that must never show up in ksentinel's output."""

    folder: Path
    schema: Path
    entries: list[dict[str, Any]]
    sensitive: list[str]

    def write(self, name: str, entries: list[dict[str, Any]] | None = None) -> Path:
        path = self.folder / name
        path.write_text(json.dumps(har(*(self.entries if entries is None else entries))))
        return path


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    folder = tmp_path_factory.mktemp("check-traffic")
    realism = Realism.off(echo_invalid_ks=True)
    with start_reference(folder / "ref", realism=realism) as ref, httpx.Client(timeout=10.0) as http:
        ks = admin_ks(ref.p1, "har-admin")
        forged = ks_lib.build("e" * 32, ref.p1.id, "intruder", 2, 3600, "")
        entry_id = upload_entry(http, ref.url, ks, b"har")["id"]
        api = ref.url + "/api_v3/service"
        mr = {
            "format": 1,
            "ks": ks,
            "1:service": "session",
            "1:action": "start",
            "1:secret": ref.p1.admin_secret,
        }
        mr.update({"1:partnerId": 101, "2:service": "media", "2:action": "list", "2:ks": "{1:result}"})
        entries = [
            record(http.get(ref.url + "/api_v3/api_schema.php")),
            record(http.post(f"{api}/media/action/get", json={"format": 1, "ks": ks, "entryId": entry_id})),
            record(http.post(f"{api}/baseEntry/action/list", data={"format": 2, "ks": ks})),
            record(http.post(f"{api}/multirequest", data=mr)),
            record(
                http.get(
                    ref.url + "/api_v3/index.php",
                    params={"service": "system", "action": "ping", "format": 9, "callback": "cb"},
                )
            ),
            record(
                http.get(f"{api}/media/action/get", params={"format": 1, "ks": ks, "entryId": "0_gone"})
            ),  # KS in URL
            record(
                http.post(f"{api}/media/action/list", data={"format": 1, "ks": forged})
            ),  # INVALID_KS echoes it
            record(
                http.post(
                    f"{api}/session/action/start",
                    data={"format": 1, "secret": ref.p1.admin_secret, "partnerId": 101},
                )
            ),
            synthetic(
                ref.url + "/p/101/sp/10100/playManifest/entryId/0_a/format/url",
                "x",
                method="GET",
                mime="text/plain",
            ),
        ]
        schema = folder / "schema.xml"
        schema.write_bytes(http.get(ref.url + "/api_v3/api_schema.php").content)
        yield Recorded(folder, schema, entries, [ks, forged, ref.p1.admin_secret, ref.p1.user_secret])


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    return subprocess.run(
        [sys.executable, "-m", "ksentinel.cli", "check-traffic", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def assert_no_secret(recorded: Recorded, *texts: str) -> None:
    for text in texts:
        for value in recorded.sensitive:
            assert value not in text
            assert value.replace("/", "\\/") not in text


def test_clean_traffic_passes_with_every_artefact(recorded: Recorded, tmp_path: Path) -> None:
    path = recorded.write("clean.har")
    junit, as_json, folder = tmp_path / "j.xml", tmp_path / "o.json", tmp_path / "r"
    report = folder / "traffic.html"  # --report DIR writes DIR/traffic.html and DIR/traffic.json
    proc = run(
        path,
        "--schema",
        recorded.schema,
        "--junit",
        junit,
        "--json",
        as_json,
        "--report",
        folder,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    head = proc.stdout.splitlines()[0]
    assert (
        "7 /api_v3 exchanges (8 calls)" in head
        and "0 failed" in head
        and "2 advisory" in head
        and "2 other entries skipped" in head
    )
    assert "ADVISORY #6 GET /api_v3/service/media/action/get: KS sent in the URL" in proc.stdout
    assert (
        "ADVISORY #7 POST /api_v3/service/media/action/list: the KS the request carried came back"
        in proc.stdout
    )
    assert "verdict: PASS" in proc.stdout
    outcome = json.loads(as_json.read_text())
    assert outcome["verdict"] == "PASS" and outcome["counts"]["failed"] == 0
    assert [e["index"] for e in outcome["exchanges"]] == [2, 3, 4, 5, 6, 7, 8]
    assert outcome["exchanges"][2]["calls"][1]["label"] == "media.list"
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "0" and int(suite.get("tests") or 0) == 8  # the multirequest is two cases
    assert any(p.get("name") == "ksentinel.advisory" for p in suite.iter("property"))
    html = report.read_text()
    assert 'id="traffic"' in html and "PASS" in html and "#7 POST /api_v3/service/media/action/list" in html
    texts = [
        proc.stdout,
        proc.stderr,
        junit.read_text(),
        as_json.read_text(),
        html,
        report.with_suffix(".json").read_text(),
    ]
    assert_no_secret(recorded, *texts)


def test_a_broken_answer_fails_naming_the_exchange_and_the_path(recorded: Recorded, tmp_path: Path) -> None:
    entries = [dict(e) for e in recorded.entries]
    entries[1] = json.loads(json.dumps(entries[1]))
    set_body(entries[1], body_of(entries[1]).replace('"createdAt":', '"createdAt":"2024-01-01","_was":', 1))
    path = recorded.write("broken.har", entries)
    junit, report = tmp_path / "j.xml", tmp_path / "r" / "traffic.html"
    proc = run(path, "--schema", recorded.schema, "--junit", junit, "--report", report.parent, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (
        "FAILED #2 POST /api_v3/service/media/action/get media.get: $.createdAt: '2024-01-01' is not of type integer"
        in proc.stdout
    )
    assert "verdict: FAIL" in proc.stdout
    failures = [f.get("message") for f in ET.parse(junit).getroot().iter("failure")]
    assert failures == ["$.createdAt: '2024-01-01' is not of type integer"]
    html = report.read_text()
    assert "$.createdAt" in html and "FAIL" in html
    assert_no_secret(recorded, proc.stdout, proc.stderr, junit.read_text(), html)


def test_without_schema_the_embedded_platform_gives_it(recorded: Recorded, tmp_path: Path) -> None:
    proc = run(recorded.write("clean.har"), "--report", tmp_path / "t", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "schema embedded http://127.0.0.1:" in proc.stdout


def test_default_report_location(recorded: Recorded, tmp_path: Path) -> None:
    proc = run(recorded.write("clean.har"), "--schema", recorded.schema, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reports = list((tmp_path / "reports").glob("*/traffic.html"))
    assert len(reports) == 1 and f"report: reports/{reports[0].parent.name}/traffic.html" in proc.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        ('{"entries": []}', "not a HAR file (no log.entries list)"),
        (json.dumps(har(synthetic("http://k/p/1/playManifest/x", "x", method="GET"))), "not tested: "),
    ],
    ids=["missing", "not-json", "not-har", "no-api-exchange"],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "in.har"
    if content is not None:
        path.write_text(content)
    proc = run(path, "--schema", tmp_path / "unused.xml", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "reports").exists()


def test_nothing_judged_is_not_tested_never_pass(recorded: Recorded, tmp_path: Path) -> None:
    entries = [json.loads(json.dumps(e)) for e in recorded.entries[1:3]]
    for entry in entries:
        del entry["response"]["content"]["text"]  # exported without content
    as_json = tmp_path / "o.json"
    proc = run(
        recorded.write("empty.har", entries), "--schema", recorded.schema, "--json", as_json, cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().startswith("ksentinel: not tested: none of the 2 /api_v3 exchanges")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert (
        "verdict: NOT TESTED" in proc.stdout and "NOT JUDGED (2): response body not recorded" in proc.stdout
    )
    assert json.loads(as_json.read_text())["verdict"] == "NOT TESTED"


def test_unreadable_schema_is_one_line(recorded: Recorded, tmp_path: Path) -> None:
    bad = tmp_path / "schema.xml"
    bad.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><xml/>')
    for schema in (bad, tmp_path / "missing.xml"):
        proc = run(recorded.write("clean.har"), "--schema", schema, cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr

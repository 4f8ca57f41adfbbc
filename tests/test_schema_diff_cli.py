"""``ksentinel schema diff`` invoked as a command: exit codes, the table, JSON, JUnit, the HTML report,
the ignore file, ``--scope``, URL and ``target:NAME`` sources (a loopback server), bad inputs as one
line and exit 2, and ``ksentinel schema`` converting as it did before it became a group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ksentinel.cli import main
from tests.helpers import real_schema_path
from tests.hostile import closed_port
from tests.test_schema_diff import BASE, MISSING_KS, NAME, UPDATE_STATUS, VERSION, edit

ENV = {"KSENTINEL_CONFIG": "", "KSENTINEL_TARGET": "", "KSENTINEL_URL": ""}
#: two breaking changes (one of them inherited), one warning, one info
NEW = edit(
    BASE,
    (UPDATE_STATUS, ""),
    (NAME, ""),
    (VERSION, VERSION.replace('default="-1"', 'default="0"')),
    (MISSING_KS, MISSING_KS + '    <error name="INVALID_KS" code="INVALID_KS" message="Invalid KS"/>\n'),
)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[str, str]:
    old, new = tmp_path / "old.xml", tmp_path / "new.xml"
    old.write_text(BASE, encoding="utf-8")
    new.write_text(NEW, encoding="utf-8")
    return str(old), str(new)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["schema", "diff", *args], env=ENV)


def test_no_change_exits_0(pair: tuple[str, str]) -> None:
    result = run(pair[0], pair[0])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "no changes"
    assert result.stdout.splitlines()[1].endswith(
        "0 breaking, 0 warning, 0 info, 0 ignored; fail on breaking: PASS"
    )


def test_a_breaking_change_exits_1_with_the_table(pair: tuple[str, str]) -> None:
    result = run(*pair)
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[:3] for line in lines[1:-1]] == [
        ["breaking", "property-removed", "KalturaBaseEntry.name"],
        ["breaking", "action-removed", "media.updateStatus"],
        ["warning", "parameter-default-changed", "baseEntry.get.version"],
        ["info", "error-code-added", "INVALID_KS"],
    ]
    assert lines[1].endswith("inherited by KalturaMediaEntry, KalturaPlayableEntry")
    assert lines[-1] == (
        f"schema diff: API 22.15.0 ({pair[0]}) -> API 22.15.0 ({pair[1]}): 2 breaking, 1 warning, 1 info, "
        "0 ignored; fail on breaking: FAIL"
    )
    assert result.stderr == ""


@pytest.mark.parametrize(("fail_on", "code"), [("breaking", 1), ("warning", 1), ("info", 1), ("never", 0)])
def test_fail_on_picks_the_severity(pair: tuple[str, str], fail_on: str, code: int) -> None:
    assert run(*pair, "--fail-on", fail_on).exit_code == code


def test_a_warning_fails_only_from_fail_on_warning(tmp_path: Path, pair: tuple[str, str]) -> None:
    warning = tmp_path / "warning.xml"
    warning.write_text(
        edit(BASE, (VERSION, VERSION.replace('default="-1"', 'default="0"'))), encoding="utf-8"
    )
    assert run(pair[0], str(warning)).exit_code == 0
    assert run(pair[0], str(warning), "--fail-on", "warning").exit_code == 1
    assert run(pair[0], str(warning), "--fail-on", "info").exit_code == 1


def test_json_is_the_rows_on_stdout_and_the_summary_on_stderr(pair: tuple[str, str]) -> None:
    result = run(*pair, "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [
        (c["rule"], c["severity"], c["place"], c["old"], c["new"], c["failing"]) for c in data["changes"]
    ] == [
        ("property-removed", "breaking", "KalturaBaseEntry.name", "string", None, True),
        (
            "action-removed",
            "breaking",
            "media.updateStatus",
            "(entryId: string, status: string (KalturaEntryStatus)) -> void",
            None,
            True,
        ),
        ("parameter-default-changed", "warning", "baseEntry.get.version", "default -1", "default 0", False),
        ("error-code-added", "info", "INVALID_KS", None, "Invalid KS", False),
    ]
    assert data["changes"][0]["affected"] == ["KalturaMediaEntry", "KalturaPlayableEntry"]
    assert data["counts"] == {"breaking": 2, "warning": 1, "info": 1, "ignored": 0, "total": 4}
    assert (data["verdict"], data["fail_on"], data["old"]["source"]) == ("FAIL", "breaking", pair[0])
    assert result.stderr.startswith("schema diff: API 22.15.0") and result.stderr.count("\n") == 1


def test_junit_has_one_failing_case_per_breaking_change(tmp_path: Path, pair: tuple[str, str]) -> None:
    out = tmp_path / "reports" / "junit.xml"
    result = run(*pair, "--format", "junit", "--output", str(out))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [result.stdout.splitlines()[0], f"junit: {out}"]
    suite = ET.parse(out).getroot()
    assert (suite.tag, suite.get("tests"), suite.get("failures"), suite.get("errors")) == (
        "testsuite",
        "2",
        "2",
        "0",
    )
    assert [(c.get("classname"), c.get("name")) for c in suite.iter("testcase")] == [
        ("schema_diff.property-removed", "KalturaBaseEntry.name"),
        ("schema_diff.action-removed", "media.updateStatus"),
    ]
    assert all(c.find("failure") is not None for c in suite.iter("testcase"))


def test_junit_without_breaking_changes_is_one_passing_case(pair: tuple[str, str]) -> None:
    result = run(pair[0], pair[0], "--format", "junit")
    assert result.exit_code == 0
    suite = ET.fromstring(result.stdout)
    assert (suite.get("tests"), suite.get("failures")) == ("1", "0")
    assert [c.get("name") for c in suite.iter("testcase")] == ["no breaking change"]


def test_the_ignore_file_accepts_changes_and_reports_stale_entries(
    tmp_path: Path, pair: tuple[str, str]
) -> None:
    ignore = tmp_path / "ignore.toml"
    ignore.write_text(
        '[[ignore]]\nrule = "action-removed"\nplace = "media.updateStatus"\nreason = "batch only (OPS-1)"\n'
        '[[ignore]]\nrule = "property-removed"\nplace = "kalturabaseentry.name"\nreason = "moved to a plugin"\n'
        '[[ignore]]\nrule = "enum-removed"\nplace = "KalturaGone"\nreason = "gone in 21.x"\n',
        encoding="utf-8",
    )
    result = run(*pair, "--ignore-file", str(ignore))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[:3] for line in lines[1:-1]] == [
        ["warning", "parameter-default-changed", "baseEntry.get.version"],
        ["warning", "stale-ignore", "KalturaGone"],
        ["info", "error-code-added", "INVALID_KS"],
        ["ignored", "property-removed", "KalturaBaseEntry.name"],
        ["ignored", "action-removed", "media.updateStatus"],
    ]
    assert lines[2].endswith("reason: gone in 21.x")
    assert lines[5].endswith("ignored: batch only (OPS-1)")
    assert "0 breaking, 2 warning, 1 info, 2 ignored; fail on breaking: PASS" in lines[-1]
    # a stale entry is a warning: it fails from --fail-on warning
    assert run(*pair, "--ignore-file", str(ignore), "--fail-on", "warning").exit_code == 1
    suite = ET.fromstring(run(*pair, "--ignore-file", str(ignore), "--format", "junit").stdout)
    assert [(c.get("name"), [child.tag for child in c]) for c in suite.iter("testcase")] == [
        ("KalturaBaseEntry.name", ["skipped"]),
        ("media.updateStatus", ["skipped"]),
        ("no breaking change", []),
    ]


def test_a_bad_ignore_file_is_one_line_and_exit_2(tmp_path: Path, pair: tuple[str, str]) -> None:
    ignore = tmp_path / "ignore.yaml"
    ignore.write_text("ignore:\n  - rule: action-removed\n    place: media.updateStatus\n", encoding="utf-8")
    result = run(*pair, "--ignore-file", str(ignore))
    assert result.exit_code == 2
    assert result.stderr == (
        f"ksentinel: error: {ignore}: ignore entry 1: reason is missing or empty (say why the change is accepted)\n"
    )


def test_the_html_report_has_the_schema_diff_section(tmp_path: Path, pair: tuple[str, str]) -> None:
    result = run(*pair, "--report", str(tmp_path / "reports"))
    report = tmp_path / "reports" / "schema-diff.html"
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == f"report: {report}"
    html = report.read_text(encoding="utf-8")
    assert '<section id="schema-diff">' in html
    assert "FAIL — ksentinel schema diff" in html
    assert 'id="schema-diff-attention"' in html and "media.updateStatus" in html
    assert "inherited by KalturaMediaEntry, KalturaPlayableEntry" in html
    twin = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    assert twin["verdict"] == "FAIL"
    assert [c["place"] for c in twin["schema_diff"]["attention"]] == [
        "KalturaBaseEntry.name",
        "media.updateStatus",
        "baseEntry.get.version",
    ]
    assert [c["place"] for c in twin["schema_diff"]["others"]] == ["INVALID_KS"]
    assert run(pair[0], pair[0], "--report", str(tmp_path / "same")).exit_code == 0
    assert "PASS — ksentinel schema diff" in (tmp_path / "same" / "schema-diff.html").read_text(
        encoding="utf-8"
    )
    (tmp_path / "taken").write_text("a file", encoding="utf-8")
    taken = run(*pair, "--report", str(tmp_path / "taken"))
    assert taken.exit_code == 2
    assert f"{tmp_path / 'taken'}' is a file" in taken.stderr  # click's own check of a DIR


def test_scope_restricts_to_the_contract_actions(
    tmp_path: Path, pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "ksentinel.toml"
    config.write_text('[contract]\ninclude = ["baseEntry.*"]\n', encoding="utf-8")
    result = run(*pair, "--scope", "--config", str(config), "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [c["place"] for c in data["changes"]] == [
        "KalturaBaseEntry.name",
        "baseEntry.get.version",
        "INVALID_KS",
    ]
    assert data["scope"] == "include baseEntry.*"
    # without an include/exclude anywhere, --scope says so and compares everything
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "ksentinel.toml").write_text("", encoding="utf-8")
    monkeypatch.chdir(bare)
    result = run(*pair, "--scope")
    assert result.exit_code == 1
    assert "no [contract] include/exclude is defined, comparing everything" in result.stderr
    assert len(result.stdout.splitlines()) == 6


# ---------------------------------------------------------------------------- URL and target sources


@pytest.fixture
def schema_server() -> Iterator[str]:
    """A loopback server answering ``/api_v3/api_schema.php`` with the new schema, anything else 404."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/api_v3/api_schema.php":
                self.send_error(404)
                return
            body = NEW.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_url_is_read_from_its_api_schema_php(schema_server: str, pair: tuple[str, str]) -> None:
    result = run(pair[0], schema_server, "--format", "json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["new"] == {"source": f"{schema_server}/api_v3/api_schema.php", "api_version": "22.15.0"}
    assert data["counts"]["breaking"] == 2


def test_target_name_reads_that_targets_live_schema(
    tmp_path: Path, schema_server: str, pair: tuple[str, str]
) -> None:
    config = tmp_path / "ksentinel.toml"
    config.write_text(f'[targets.staging]\nurl = "{schema_server}"\npartner_id = 101\n', encoding="utf-8")
    result = run(pair[0], "target:staging", "--config", str(config), "--format", "json")
    assert result.exit_code == 1, result.output
    assert (
        json.loads(result.stdout)["new"]["source"] == f"target:staging {schema_server}/api_v3/api_schema.php"
    )
    unknown = run(pair[0], "target:stagin", "--config", str(config))
    assert unknown.exit_code == 2
    assert unknown.stderr.startswith("ksentinel: error: NEW target:stagin: ")
    assert "staging" in unknown.stderr and unknown.stderr.count("\n") == 1


def test_config_before_the_subcommand_reaches_target_names(
    tmp_path: Path, schema_server: str, pair: tuple[str, str]
) -> None:
    config = tmp_path / "ksentinel.toml"
    config.write_text(f'[targets.staging]\nurl = "{schema_server}"\npartner_id = 101\n', encoding="utf-8")
    result = CliRunner().invoke(
        main,
        ["--config", str(config), "schema", "diff", pair[0], "target:staging", "--format", "json"],
        env=ENV,
    )
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["new"]["source"].startswith("target:staging http://127.0.0.1:")


def bad_inputs(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """argument -> the expected one-line message after ``ksentinel: error: NEW <argument>: ``."""
    (tmp_path / "text.xml").write_text("KalturaClient.xml was not found", encoding="utf-8")
    (tmp_path / "page.xml").write_text("<!DOCTYPE html><html><body>login</body></html>", encoding="utf-8")
    (tmp_path / "other.xml").write_text("<feed/>", encoding="utf-8")
    (tmp_path / "empty.xml").write_text("", encoding="utf-8")
    (tmp_path / "folder").mkdir()
    port = closed_port()
    return {
        str(
            tmp_path / "missing.xml"
        ): "no such file (give a schema XML file, an http(s):// URL or target:NAME)",
        str(tmp_path / "folder"): "not a file (give a schema XML file, an http(s):// URL or target:NAME)",
        str(tmp_path / "text.xml"): "schema XML rejected: not well-formed (syntax error: line 1, column 0)",
        str(tmp_path / "page.xml"): "not a Kaltura schema: the document is an HTML page",
        str(tmp_path / "other.xml"): "not a Kaltura schema: the root element is <feed>, expected <xml>",
        str(tmp_path / "empty.xml"): "schema rejected: the document is empty",
        f"http://127.0.0.1:{port}": f"cannot reach http://127.0.0.1:{port}/api_v3/api_schema.php",
        "target:": "target: needs a name, as in target:staging (a [targets.NAME] of ksentinel.toml)",
    }


def test_bad_inputs_are_one_line_and_exit_2(tmp_path: Path, pair: tuple[str, str]) -> None:
    for argument, expected in bad_inputs(tmp_path).items():
        result = run(pair[0], argument)
        assert result.exit_code == 2, (argument, result.output)
        assert result.stderr.startswith(f"ksentinel: error: NEW {argument}: {expected}"), result.stderr
        assert result.stderr.count("\n") == 1 and result.stdout == ""
    result = run(str(tmp_path / "missing.xml"), pair[1])
    assert result.stderr == (
        f"ksentinel: error: OLD {tmp_path / 'missing.xml'}: no such file (give a schema XML file, an http(s):// "
        "URL or target:NAME)\n"
    )


def test_a_bad_input_in_a_real_process_is_one_line_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad.xml").write_text("not xml", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    proc = subprocess.run(
        [sys.executable, "-m", "ksentinel.cli", "schema", "diff", "missing.xml", "bad.xml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "ksentinel: error: OLD missing.xml: no such file (give a schema XML file, an http(s):// URL or target:NAME)\n"
    )
    assert proc.stdout == ""


def test_an_unknown_option_value_is_a_usage_error(pair: tuple[str, str]) -> None:
    assert run(*pair, "--fail-on", "sometimes").exit_code == 2
    assert run(*pair, "--format", "xml").exit_code == 2
    assert run(pair[0]).exit_code == 2


def test_the_real_schema_diffed_with_itself_passes() -> None:
    real = str(real_schema_path())
    result = run(real, real, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["changes"], data["old"]["api_version"], data["verdict"]) == ([], "22.15.0", "PASS")


# ---------------------------------------------------------------- `ksentinel schema` still converts


def test_schema_without_a_subcommand_still_writes_openapi(tmp_path: Path, pair: tuple[str, str]) -> None:
    out = tmp_path / "openapi.json"
    result = CliRunner().invoke(main, ["schema", "-o", str(out), "--all", "--source", pair[0]], env=ENV)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"schema: wrote {out} (API 22.15.0: 6 actions of 4 services")
    assert json.loads(out.read_text())["openapi"].startswith("3.1")
    bad = CliRunner().invoke(
        main, ["schema", "-o", str(out), "--all", "--source", str(tmp_path / "nope.xml")], env=ENV
    )
    assert bad.exit_code == 2
    assert bad.stderr.startswith("ksentinel: error: no schema file at")


def test_schema_help_lists_diff() -> None:
    result = CliRunner().invoke(main, ["schema", "--help"], env=ENV)
    assert result.exit_code == 0
    assert "diff  List the changes between two Kaltura API schemas" in result.stdout
    assert "--source URL|FILE" in result.stdout


def test_the_docs_ci_example_uses_only_real_options(
    tmp_path: Path, pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GitHub Actions step of docs/schema-diff.md parses, and its command runs (files for targets)."""
    import re
    import shlex

    import yaml

    doc = (Path(__file__).parents[1] / "docs" / "schema-diff.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(      - name: Breaking API changes.*?)```", doc, re.DOTALL)
    assert block is not None
    steps = yaml.safe_load(textwrap.dedent(block.group(1)))
    args = shlex.split(steps[0]["run"])
    assert args[:3] == ["ksentinel", "schema", "diff"]
    (tmp_path / "schema-diff-ignore.toml").write_text(
        '[[ignore]]\nrule = "action-removed"\nplace = "media.updateStatus"\nreason = "batch only"\n',
        encoding="utf-8",
    )
    args = [
        pair[0] if a == "target:production" else pair[1] if a == "target:staging" else a for a in args[3:]
    ]
    args = [a for a in args if a != "--scope"]  # needs a [contract] scope; tested above
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 1, result.output  # KalturaBaseEntry.name is still breaking
    assert (tmp_path / "reports" / "schema-diff" / "junit.xml").is_file()
    assert (tmp_path / "reports" / "schema-diff" / "schema-diff.html").is_file()
    assert steps[1]["with"]["path"] == "reports/schema-diff/"

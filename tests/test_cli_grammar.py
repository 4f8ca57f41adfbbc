"""One command-line grammar (issue 15, point 6).

``--report DIR`` everywhere (the old spellings warn and still work), ``--config``/``--debug`` after
the subcommand too, one-line usage errors, ``--target-name``, a refused session that blames the partner
id or the secret as the answer tells, ``config show`` with a missing secret and every ``[slo]`` value,
and the pruning of ``reports/``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from ksentinel.cli import main
from ksentinel.cli_target import ReportRequest
from ksentinel.config import Config, ReportsConfig, load_config
from ksentinel.errors import ConfigError, KalturaApiError
from ksentinel.flows.preflight import blame
from ksentinel.flows.sessions import Credentials, Sessions
from ksentinel.report.retention import STAMP_FORMAT, new_run_folder, prune
from tests.conftest import Reference
from tests.test_traffic_units import har, synthetic

REPO = Path(__file__).resolve().parents[1]
UNWRITABLE = "/proc/no-such-dir"
USAGE_LINE = re.compile(r"ksentinel: error: \S.* \(see 'ksentinel( [a-z-]+)* --help'\)\n\Z")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    return {**env, **extra}


def run(
    *args: str | Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    module: str = "ksentinel.cli",
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else clean_env(),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    """A runner in an empty folder with no KSENTINEL_* variable leaking in."""
    for name in list(os.environ):
        if name.startswith("KSENTINEL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield CliRunner()


def ref_env(ref: Reference, *, admin_secret: str | None = None) -> dict[str, str]:
    return {"KSENTINEL_ADMIN_SECRET": admin_secret or ref.p1.admin_secret}


# --- --report DIR and the old spellings ----------------------------------------------------------------


def _har_file(folder: Path, url: str = "http://127.0.0.1:9") -> Path:
    path = folder / "traffic.har"
    path.write_text(json.dumps(har(synthetic(f"{url}/api_v3/service/system/action/ping", "true"))))
    return path


@pytest.mark.parametrize(
    ("args", "option", "folder", "note"),
    [
        (
            ("contract", "--report", f"{UNWRITABLE}/r.html"),
            "--report",
            UNWRITABLE,
            "--report FILE.html is deprecated and goes in the next release: --report names a folder now "
            "(writes DIR/contract.html)",
        ),
        (
            ("load", "--html", f"{UNWRITABLE}/l.html"),
            "--html",
            UNWRITABLE,
            "--html FILE is deprecated and goes in the next release: use --report DIR (writes DIR/load.html)",
        ),
        (
            ("demo", "--out", f"{UNWRITABLE}/demo"),
            "--out",
            f"{UNWRITABLE}/demo",
            "--out DIR is deprecated and goes in the next release: use --report DIR (writes DIR/index.html)",
        ),
        (
            ("selftest", "--fault", "schema-drift", "--report", f"{UNWRITABLE}/s.html"),
            "--report",
            UNWRITABLE,
            "--report FILE.html is deprecated and goes in the next release: --report names a folder now "
            "(writes DIR/selftest.html)",
        ),
        (
            ("check-traffic", "{har}", "--report", f"{UNWRITABLE}/t.html"),
            "--report",
            UNWRITABLE,
            "--report FILE.html is deprecated and goes in the next release: --report names a folder now "
            "(writes DIR/traffic.html)",
        ),
    ],
)
def test_each_old_report_spelling_still_names_the_report_and_warns(
    tmp_path: Path, args: tuple[str, ...], option: str, folder: str, note: str
) -> None:
    har_path = _har_file(tmp_path)
    proc = run(*(arg.format(har=har_path) for arg in args), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [
        f"ksentinel: warning: {note}",
        f"ksentinel: error: {option}: cannot create {folder}: No such file or directory",
    ]
    assert proc.stdout == ""  # the path was taken as given, before anything ran


@pytest.mark.parametrize(
    "args",
    [
        ("contract", "--report", f"{UNWRITABLE}/out"),
        ("load", "--report", f"{UNWRITABLE}/out"),
        ("demo", "--report", f"{UNWRITABLE}/out"),
        ("selftest", "--fault", "schema-drift", "--report", f"{UNWRITABLE}/out"),
        ("check-traffic", "{har}", "--report", f"{UNWRITABLE}/out"),
    ],
)
def test_report_dir_is_a_folder_on_every_command_that_writes_a_report(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    har_path = _har_file(tmp_path)
    proc = run(*(arg.format(har=har_path) for arg in args), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert (
        proc.stderr
        == f"ksentinel: error: --report: cannot create {UNWRITABLE}/out: No such file or directory\n"
    )


def test_report_request_names_the_file_inside_the_folder(tmp_path: Path) -> None:
    assert ReportRequest("contract", folder=tmp_path / "a").html() == tmp_path / "a" / "contract.html"
    assert (tmp_path / "a").is_dir()
    legacy = tmp_path / "b" / "mine.html"
    assert ReportRequest("load", file=legacy, option="--html").html() == legacy
    assert legacy.parent.is_dir()


def test_report_and_its_old_spelling_together_is_a_usage_error(cli: CliRunner) -> None:
    result = cli.invoke(main, ["load", "--report", "a", "--html", "b.html"])
    assert result.exit_code == 2
    assert result.stderr == (
        "ksentinel: error: give --report DIR or --html, not both (--html is deprecated) "
        "(see 'ksentinel load --help')\n"
    )


@pytest.mark.slow
def test_contract_with_the_old_report_file_still_writes_it(tmp_path: Path, reference: Reference) -> None:
    report = tmp_path / "out" / "mine.html"
    env = clean_env(**ref_env(reference), KSENTINEL_PEER_PARTNER_ID=str(reference.p2.id))
    env["KSENTINEL_PEER_ADMIN_SECRET"] = reference.p2.admin_secret
    proc = run(
        "contract",
        "--profile",
        "quick",
        "--url",
        reference.url,
        "--partner-id",
        str(reference.p1.id),
        "--target-name",
        "ref-eu",
        "--report",
        report,
        cwd=tmp_path,
        env=env,
        timeout=240,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert proc.stderr.startswith("ksentinel: warning: --report FILE.html is deprecated")
    assert f"report: {report}" in proc.stdout
    assert report.is_file() and report.with_suffix(".json").is_file()
    assert json.loads(report.with_suffix(".json").read_text())["target"].startswith("ref-eu ")
    assert not (tmp_path / "reports").exists()  # a chosen report never touches reports/


# --- --config and --debug at every level ---------------------------------------------------------------


def _bad_slo(folder: Path) -> Path:
    path = folder / "bad.toml"
    path.write_text("[slo]\neror_ratio = 0.1\n")
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["dashboards", "build", "--config", "{bad}", "--out", "out"],
        ["dashboards", "--config", "{bad}", "build", "--out", "out"],
        ["--config", "{bad}", "dashboards", "build", "--out", "out"],
        ["dashboards", "lint", "--config", "{bad}"],
        ["config", "show", "--config", "{bad}"],
        ["--config", "{bad}", "config", "show"],
        ["config", "--config", "{bad}", "show"],
    ],
)
def test_config_after_the_subcommand_means_the_same_as_before(
    cli: CliRunner, tmp_path: Path, args: list[str]
) -> None:
    bad = _bad_slo(tmp_path)
    result = cli.invoke(main, [arg.format(bad=bad) for arg in args])
    assert result.exit_code == 2, result.output
    assert (
        result.stderr
        == f"ksentinel: error: {bad.name}: slo.eror_ratio: unknown key; did you mean 'error_ratio'?\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["contract", "--config", "{missing}"],
        ["--config", "{missing}", "contract"],
        ["probe", "run", "--config", "{missing}"],
        ["probe", "--config", "{missing}", "run"],
        ["--config", "{missing}", "serve", "--port", "0"],
        ["serve", "--port", "0", "--config", "{missing}"],
        ["sweep", "--config", "{missing}"],
    ],
)
def test_config_reaches_every_command_from_any_level(cli: CliRunner, tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "nowhere.toml"
    result = cli.invoke(main, [arg.format(missing=missing) for arg in args])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"ksentinel: error: --config {missing}: no such file\n"


@pytest.mark.parametrize(
    "args",
    [
        ["probe", "run", "--flow", "session", "--debug"],
        ["--debug", "probe", "run", "--flow", "session"],
        ["probe", "--debug", "run", "--flow", "session"],
    ],
)
def test_debug_after_the_subcommand_means_the_same_as_before(tmp_path: Path, args: list[str]) -> None:
    proc = run(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert " DEBUG " in proc.stderr


def test_without_debug_there_are_no_debug_logs(tmp_path: Path) -> None:
    proc = run("probe", "run", "--flow", "session", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert " DEBUG " not in proc.stderr


def _all_commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*path, name))
        else:
            yield (*path, name)


def test_every_command_and_group_lists_config_and_debug_in_its_help(cli: CliRunner) -> None:
    paths = list(_all_commands(main))
    assert ("contract",) in paths and ("dashboards", "build") in paths and ("probe", "run") in paths
    for path in paths:
        result = cli.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "--config FILE" in result.output and "--debug" in result.output, path


# --- usage errors: one line, exit 2 --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "what", "where"),
    [
        (
            ["contract", "--profile", "nope"],
            "Invalid value for '--profile': 'nope' is not one of",
            "contract",
        ),
        (
            ["contract", "--profle", "ci"],
            "No such option '--profle'. (Did you mean one of: '--profile'",
            "contract",
        ),
        (["dashbords", "build"], "No such command 'dashbords'. Did you mean 'dashboards'?", ""),
        (["check-traffic"], "Missing argument 'FILE'.", "check-traffic"),
        (["probe", "run", "--timeout"], "Option '--timeout' requires an argument.", "probe run"),
        (["probe", "nope"], "No such command 'nope'.", "probe"),
        (
            ["dashboards", "push"],
            "Missing option '--grafana-url' (env var: 'KSENTINEL_GRAFANA_URL').",
            "dashboards push",
        ),
        (["dashboards", "build", "--bogus"], "No such option '--bogus'.", "dashboards build"),
        (
            ["config", "show", "--partner-id", "x"],
            "Invalid value for '--partner-id' (env var: 'KSENTINEL_PARTNER_ID'): 'x' is not a valid integer.",
            "config show",
        ),
        (["load", "--users", "0"], "Invalid value for '--users'", "load"),
        (["selftest", "--part", "nope"], "Invalid value for '--part'", "selftest"),
        (["demo", "--skip", "nope"], "Invalid value for '--skip'", "demo"),
        (["serve", "--port", "99999"], "Invalid value for '--port'", "serve"),
        (["sweep", "--dry-run=yes"], "Option '--dry-run' does not take a value.", "sweep"),
        (["schema", "--bogus"], "No such option '--bogus'.", "schema"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(cli: CliRunner, args: list[str], what: str, where: str) -> None:
    result = cli.invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert USAGE_LINE.match(result.stderr), result.stderr
    assert result.stderr.startswith(f"ksentinel: error: {what}"), result.stderr
    assert result.stderr.endswith(f"(see '{' '.join(['ksentinel', *where.split()])} --help')\n")


@pytest.mark.parametrize(
    ("module", "args", "expected"),
    [
        (
            "ksentinel.load",
            ["--bogus"],
            "ksentinel: error: No such option '--bogus'. (see 'ksentinel load --help')",
        ),
        (
            "ksentinel.probe",
            ["run", "--flow"],
            "ksentinel: error: Option '--flow' requires an argument. (see 'ksentinel probe run --help')",
        ),
        (
            "ksentinel.cli",
            ["contract", "--workers", "99"],
            "ksentinel: error: Invalid value for '-n' / '--workers'",
        ),
    ],
)
def test_usage_errors_of_the_commands_that_run_on_their_own(
    tmp_path: Path, module: str, args: list[str], expected: str
) -> None:
    proc = run(*args, cwd=tmp_path, module=module)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(expected), proc.stderr


def test_help_stays_as_it_is(cli: CliRunner) -> None:
    result = cli.invoke(main, ["contract", "--help"])
    assert result.exit_code == 0 and result.output.startswith("Usage: ksentinel contract [OPTIONS]")
    bare = cli.invoke(main, ["probe"])  # a group without its command: its help, as before
    assert "Commands:" in bare.output and "ksentinel: error" not in bare.output


# --- --target-name -------------------------------------------------------------------------------------


def test_target_name_names_the_adhoc_target(cli: CliRunner) -> None:
    args = ["config", "show", "--url", "https://k.example.com", "--partner-id", "7"]
    env = {"KSENTINEL_ADMIN_SECRET": "adhoc-admin-5ecret-0123456789"}
    shown = cli.invoke(main, [*args, "--target-name", "eu-west.1"], env=env)
    assert shown.exit_code == 0, shown.output
    row = next(line for line in shown.output.splitlines() if line.startswith("target "))
    assert row.split()[1] == "eu-west.1" and row.endswith("named by flag --target-name)")
    by_env = cli.invoke(main, args, env={**env, "KSENTINEL_TARGET_NAME": "from-env"})
    assert "from-env" in by_env.output
    default = cli.invoke(main, args, env=env)
    assert (
        next(line for line in default.output.splitlines() if line.startswith("target ")).split()[1] == "adhoc"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--url", "https://k.example.com", "--partner-id", "7", "--target-name", 'eu"1'],
            "--target-name: expected a name of letters, digits, '_', '-' and '.' that starts with a letter",
        ),
        (
            ["--url", "https://k.example.com", "--partner-id", "7", "--target-name", "1st"],
            "--target-name: expected a name of letters",
        ),
        (["--target-name", "eu"], "--target-name names an ad-hoc target: add --url URL --partner-id N"),
    ],
)
def test_a_bad_target_name_is_one_line(cli: CliRunner, args: list[str], message: str) -> None:
    result = cli.invoke(main, ["config", "show", *args], env={"KSENTINEL_ADMIN_SECRET": "x" * 24})
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"ksentinel: error: {message}") and result.stderr.count("\n") == 1


def test_target_name_is_the_probe_run_target(cli: CliRunner, reference: Reference) -> None:
    args = ["probe", "run", "--flow", "session", "--url", reference.url, "--partner-id", str(reference.p1.id)]
    result = cli.invoke(main, [*args, "--target-name", "ref-eu"], env=ref_env(reference))
    assert result.exit_code == 0, result.output
    assert any(line.startswith("ref-eu ") for line in result.stdout.splitlines()), result.stdout
    refused = cli.invoke(main, ["probe", "run", "--target-name", "ref-eu"], env=ref_env(reference))
    assert refused.exit_code == 2
    assert refused.stderr.startswith("ksentinel: error: --target-name names an ad-hoc target")


def test_target_name_reaches_the_probes_metric_labels(tmp_path: Path, reference: Reference) -> None:
    (tmp_path / "ksentinel.toml").write_text('[probes]\nflows = ["session"]\ninterval = 5\ntimeout = 3\n')
    command = [sys.executable, "-m", "ksentinel.cli", "probe", "serve", "--listen", "127.0.0.1:0"]
    command += ["--url", reference.url, "--partner-id", str(reference.p1.id), "--target-name", "eu-staging"]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=clean_env(**ref_env(reference)),
    )
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "probe serve stopped before listening"
            found = re.search(r"listening on (http://\S+)", line)
            url = found.group(1) if found else None
        assert url, "no listening line"
        success: list[dict[str, str]] = []
        while not success and time.monotonic() < deadline:
            text = httpx.get(f"{url}/metrics", timeout=5).text
            success = [
                sample.labels
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "ksentinel_probe_success"
            ]
            time.sleep(0.2)
        assert success == [{"target": "eu-staging", "flow": "session"}], text[-2000:]
        assert 'target="adhoc"' not in text
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


# --- a refused session names the partner id or the secret ----------------------------------------------


@pytest.mark.parametrize(
    ("command", "partner", "secret", "blamed", "spared"),
    [
        (["probe", "run", "--flow", "session"], 999, None, "does not know partner 999", "admin secret right"),
        (["contract"], 999, None, "does not know partner 999", "admin secret right"),
        (
            ["probe", "run", "--flow", "session"],
            None,
            "0" * 32,
            "is the admin secret right?",
            "partner id right",
        ),
        (["contract"], None, "0" * 32, "is the admin secret right?", "partner id right"),
    ],
)
def test_a_refused_session_blames_what_the_answer_names(
    cli: CliRunner,
    reference: Reference,
    command: list[str],
    partner: int | None,
    secret: str | None,
    blamed: str,
    spared: str,
) -> None:
    partner_id = str(partner or reference.p1.id)
    args = [*command, "--url", reference.url, "--partner-id", partner_id]
    result = cli.invoke(main, args, env=ref_env(reference, admin_secret=secret))
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("ksentinel: error:")]
    assert len(errors) == 1, result.stderr
    assert f"refused our admin KS for partner {partner_id}" in errors[0]
    assert blamed in errors[0] and spared not in errors[0], errors[0]
    if partner is not None:
        assert "is the partner id right?" in errors[0]
        assert "SERVICE_FORBIDDEN_CONTENT_BLOCKED" in errors[0]
    else:
        assert "START_SESSION_ERROR" in errors[0] and "0" * 32 not in result.stderr


class _Answers:
    """A KalturaApi stand-in whose session.start answers ``code`` (None: a KS)."""

    base_url = "http://kaltura.invalid"

    def __init__(self, code: str | None) -> None:
        self.code = code
        self.calls: list[tuple[str, str]] = []

    def with_ks(self, ks: str | None) -> _Answers:
        return self

    def call(self, service: str, action: str, **params: Any) -> Any:
        self.calls.append((service, action))
        if action == "start" and self.code is not None:
            raise KalturaApiError(self.code, "refused")
        return "a-ks" if action == "start" else None


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("SERVICE_FORBIDDEN_CONTENT_BLOCKED", "is the partner id right?"),
        ("INVALID_PARTNER_ID", "is the partner id right?"),
        ("START_SESSION_ERROR", "is the admin secret right?"),
        ("INTERNAL_SERVERL_ERROR", "is the partner id or the admin secret right?"),
        (None, "is ks_version right"),
    ],
)
def test_blame_says_partner_id_or_secret_when_the_answer_does_not_tell(
    code: str | None, expected: str
) -> None:
    api = _Answers(code)
    sessions = Sessions(Credentials(4242, "a-secret-0123456789abcdef"))
    assert expected in blame(api, sessions)  # type: ignore[arg-type]
    if code is None:
        assert ("session", "end") in api.calls  # the KS session.start gave is ended


# --- config show -----------------------------------------------------------------------------------------

PROJECT = """
[targets.stage]
url = "https://stage.example.com"
partner_id = 5
admin_secret_env = "GRAMMAR_STAGE_SECRET"

[slo]
error_ratio = 0.05

[slo.steps."browse.list"]
p95 = 0.3

[slo.flows.upload]
availability = 0.995

[reports]
keep = 3
"""


def _row(output: str, key: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if line.strip().startswith(key + " "))


def test_config_show_names_a_missing_secret_and_exits_1(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "ksentinel.toml").write_text(PROJECT)
    result = cli.invoke(main, ["config", "show", "--target", "stage"])
    assert result.exit_code == 1, result.output
    assert "admin_secret       (missing: set GRAMMAR_STAGE_SECRET)" in result.stdout
    assert result.stderr == (
        "ksentinel: config show: the target needs secrets that are not set: $GRAMMAR_STAGE_SECRET\n"
    )
    present = cli.invoke(
        main, ["config", "show", "--target", "stage"], env={"GRAMMAR_STAGE_SECRET": "s" * 24}
    )
    assert present.exit_code == 0 and "missing" not in present.output
    assert "s" * 24 not in present.output


def test_config_show_prints_every_slo_value_and_where_it_comes_from(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "ksentinel.toml").write_text(PROJECT)
    out = cli.invoke(main, ["config", "show"], env={"GRAMMAR_STAGE_SECRET": "s" * 24}).stdout
    assert "[slo] (every objective, defaults included)" in out
    assert _row(out, "error_ratio") == ["error_ratio", "0.05", "(ksentinel.toml)"]
    assert _row(out, "min_throughput") == ["min_throughput", "0/s", "(default)"]
    assert _row(out, "default_step.p95") == ["default_step.p95", "0.5s", "(default)"]
    assert _row(out, 'steps."browse.list".p95') == ['steps."browse.list".p95', "0.3s", "(ksentinel.toml)"]
    assert _row(out, 'steps."browse.list".p99') == [
        'steps."browse.list".p99',
        "1s",
        "(as",
        "slo.default_step)",
    ]
    assert _row(out, 'steps."upload.chunk".p95') == ['steps."upload.chunk".p95', "1s", "(default)"]
    assert _row(out, "default_flow.window") == ["default_flow.window", "30d", "(default)"]
    assert _row(out, "flows.upload.availability") == [
        "flows.upload.availability",
        "0.995",
        "(ksentinel.toml)",
    ]
    assert _row(out, "flows.upload.latency_seconds")[-2:] == ["(as", "slo.default_flow)"]
    assert _row(out, "keep") == ["keep", "3", "(ksentinel.toml)"]


def test_config_show_without_a_file_shows_the_default_objectives(cli: CliRunner) -> None:
    result = cli.invoke(main, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert _row(result.stdout, "error_ratio") == ["error_ratio", "0.01", "(default)"]
    assert _row(result.stdout, "keep") == ["keep", "20", "(default)"]


# --- reports/ retention ----------------------------------------------------------------------------------


def _stamp(days_ago: int) -> str:
    return time.strftime(STAMP_FORMAT, time.localtime(time.time() - days_ago * 86400))


def test_prune_keeps_the_newest_timestamped_folders_and_nothing_else_is_touched(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    old = [root / _stamp(days) for days in (5, 4, 3, 2)]
    for folder in old:
        (folder / "x").mkdir(parents=True)
    (root / "notes").mkdir()
    (root / "20200101-000000.html").write_text("a file with a timestamp name")
    (root / "2020010-000000").mkdir()  # not the pattern
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "20190101-000000").symlink_to(elsewhere)
    removed = prune(root, 2)
    assert sorted(removed) == sorted(old[:2])
    assert {p.name for p in root.iterdir()} == {
        old[2].name,
        old[3].name,
        "notes",
        "20200101-000000.html",
        "2020010-000000",
        "20190101-000000",
    }
    assert elsewhere.is_dir()
    assert prune(root, 0) == [] and prune(root, 1, spare=old[2]) == [old[3]]
    assert old[2].is_dir()


def test_new_run_folder_counts_itself_among_the_kept(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    stamps = [_stamp(days) for days in (3, 2, 1)]
    for stamp in stamps:
        (root / stamp).mkdir(parents=True)
    folder = new_run_folder(keep=2, root=root)
    assert sorted(p.name for p in root.iterdir()) == sorted([stamps[-1], folder.name])


def test_the_default_report_folder_is_pruned_by_reports_keep(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for days in (4, 3, 2, 1):
        (tmp_path / "reports" / _stamp(days)).mkdir(parents=True)
    config = Config(reports=ReportsConfig(keep=2))
    html = ReportRequest("contract").html(config)
    assert html.name == "contract.html" and html.parent.parent == Path("reports")
    assert len(list((tmp_path / "reports").iterdir())) == 2
    ReportRequest("load", folder=tmp_path / "reports").html(Config(reports=ReportsConfig(keep=1)))
    assert len(list((tmp_path / "reports").iterdir())) == 2, "a chosen --report DIR never prunes"
    never = Config(reports=ReportsConfig(keep=0))
    for offset in range(2):
        (tmp_path / "reports" / _stamp(9 + offset)).mkdir()
    before = set((tmp_path / "reports").iterdir())
    made = ReportRequest("contract").html(never).parent  # this second's folder: new, or the first one's
    after = set((tmp_path / "reports").iterdir())
    assert len(before) == 4 and before <= after and after - before <= {made}, "keep = 0 never prunes"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[reports]\nkep = 3\n", "reports.kep: unknown key; did you mean 'keep'?"),
        ("[reports]\nkeep = -1\n", "reports.keep: expected an integer >= 0, got -1"),
        ('[reports]\nkeep = "5"\n', 'reports.keep: expected an integer >= 0, got "5"'),
        ("[report]\nkeep = 5\n", "report: unknown section; did you mean 'reports'?"),
    ],
)
def test_reports_keep_is_validated(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "ksentinel.toml"
    path.write_text(table)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path}: {message}"


def test_check_traffic_prunes_the_default_reports_folder(tmp_path: Path, reference: Reference) -> None:
    schema = tmp_path / "schema.xml"
    schema.write_bytes(httpx.get(f"{reference.url}/api_v3/api_schema.php", timeout=10).content)
    har_path = _har_file(tmp_path, reference.url)
    (tmp_path / "ksentinel.toml").write_text("[reports]\nkeep = 2\n")
    reports = tmp_path / "reports"
    stamps = [_stamp(days) for days in (3, 2, 1)]
    for stamp in stamps:
        (reports / stamp).mkdir(parents=True)
    (reports / "mine").mkdir()
    proc = run("check-traffic", har_path, "--schema", schema, cwd=tmp_path)
    assert "report:" in proc.stdout, proc.stdout + proc.stderr
    written = Path(re.search(r"report: (\S+)", proc.stdout).group(1))  # type: ignore[union-attr]
    assert written.name == "traffic.html" and written.parent.parent == Path("reports")
    assert sorted(p.name for p in reports.iterdir()) == sorted([stamps[-1], written.parent.name, "mine"])

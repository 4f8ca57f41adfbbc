"""``ksentinel probe run --once``: the table, exit 0/1/2, clean-up, and the click group's shape."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ksentinel.probe.command import probe_group
from ksentinel.reference.realism import Realism
from tests.conftest import Reference, start_reference


@pytest.fixture
def stale_reference(tmp_path: Path) -> Iterator[Reference]:
    with start_reference(tmp_path / "stale", faults=("stale-cache",)) as ref:
        yield ref


def _env(ref: Reference) -> dict[str, str]:
    return {
        "KSENTINEL_ADMIN_SECRET": ref.p1.admin_secret,
        "KSENTINEL_USER_SECRET": ref.p1.user_secret,
        "KSENTINEL_PEER_PARTNER_ID": str(ref.p2.id),
        "KSENTINEL_PEER_ADMIN_SECRET": ref.p2.admin_secret,
        "KSENTINEL_CONFIG": "",
        "KSENTINEL_TARGET": "",
    }


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ksentinel.toml found walking up


def _invoke(args: list[str], env: dict[str, str], cwd: Path) -> click.testing.Result:
    return CliRunner().invoke(probe_group, args, env=env, catch_exceptions=False)


def test_the_group_has_serve_and_run() -> None:
    assert isinstance(probe_group, click.Group) and probe_group.name == "probe"
    assert set(probe_group.commands) == {"serve", "run"}
    params = {p.name for p in probe_group.commands["run"].params}
    assert {
        "target_config",
        "target_name",
        "target_url",
        "target_partner_id",
        "flows",
        "timeout",
        "once",
    } <= params


def test_one_pass_prints_flows_and_steps_and_exits_0(fresh_reference: Reference, tmp_path: Path) -> None:
    ref = fresh_reference
    result = _invoke(["run", "--once", "--url", ref.url, "--partner-id", str(ref.p1.id)], _env(ref), tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TARGET", "FLOW", "STEP", "RESULT", "DURATION", "INDEX", "LAG"]
    for flow in ("session", "upload", "list", "delete", "cache"):
        assert any(line.split()[:3] == ["adhoc", flow, "SUCCESS"] for line in lines), flow
    flow_rows = {line.split()[1]: line for line in lines if line.startswith("adhoc ")}
    assert re.search(r"median \d+\.\d\ds, max \d+\.\d\ds \(\d+ writes?\)$", flow_rows["list"])
    assert "median" not in flow_rows["session"]  # the session flow writes nothing it lists
    assert any(line.split()[:2] == ["upload.chunk", "x2"] for line in lines)
    assert "probe: 5 of 5 flows succeeded" in result.stdout
    assert ref.server.platform.store.all_entries() == [], "every run cleaned up"


def test_the_index_lag_of_each_flow_is_named(tmp_path: Path) -> None:
    with start_reference(tmp_path / "lag", realism=Realism.off(index_lag=0.4, index_lag_jitter=0.0)) as ref:
        args = ["run", "--url", ref.url, "--partner-id", "101", "--flow", "list", "--flow", "session"]
        result = _invoke(args, _env(ref), tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[-2:] == ["INDEX", "LAG"]
    row = next(line for line in lines if line.split()[:2] == ["adhoc", "list"])
    found = re.search(r"median (\d+\.\d+)s, max (\d+\.\d+)s \((\d+) writes?\)$", row)
    assert found, row
    # the platform shows a write in list/count 0.4 s after it: never sooner (a lower bound, not a speed)
    assert float(found[1]) >= 0.35 and float(found[2]) >= float(found[1]) and int(found[3]) >= 1


def test_a_stale_cache_fails_the_cache_flow_only_and_exits_1(
    stale_reference: Reference, tmp_path: Path
) -> None:
    ref = stale_reference
    args = ["run", "--url", ref.url, "--partner-id", "101", "--flow", "session", "--flow", "cache"]
    result = _invoke(args, _env(ref), tmp_path)
    assert result.exit_code == 1, result.output
    assert any(line.split()[:3] == ["adhoc", "session", "SUCCESS"] for line in result.stdout.splitlines())
    assert any(line.split()[:3] == ["adhoc", "cache", "FAILURE"] for line in result.stdout.splitlines())
    assert "cache.write_fresh        FAILED" in result.stdout
    assert "adhoc/cache at cache.write_fresh: a read after an update served the stale name" in result.stdout
    assert ref.server.platform.store.all_entries() == []


def test_a_run_over_its_timeout_is_an_error_that_cleans_up(tmp_path: Path) -> None:
    with start_reference(tmp_path / "slow", faults=("slow-list",)) as ref:
        args = ["run", "--url", ref.url, "--partner-id", "101", "--flow", "list", "--timeout", "0.5"]
        result = _invoke(args, _env(ref), tmp_path)
        assert result.exit_code == 1, result.output
        assert "list.first_page  TIMEOUT" in result.stdout
        assert "adhoc/list at list.first_page [TIMEOUT]: timed out after 0.5s" in result.stdout
        assert ref.server.platform.store.all_entries() == []


def test_the_upload_waits_for_the_conversion_at_most_the_targets_ready_timeout(tmp_path: Path) -> None:
    with start_reference(tmp_path / "slow", ready_after=3.0) as ref:
        (tmp_path / "ksentinel.toml").write_text(
            f"""
[targets.slow]
url = "{ref.url}"
partner_id = {ref.p1.id}
admin_secret_env = "REF_SECRET"
ready_timeout = 0.5
"""
        )
        args = ["run", "--config", str(tmp_path / "ksentinel.toml"), "--target", "slow", "--flow", "upload"]
        result = CliRunner().invoke(
            probe_group, args, env={"REF_SECRET": ref.p1.admin_secret, "KSENTINEL_URL": ""}
        )
        assert result.exit_code == 1, result.output
        assert any(line.split()[:3] == ["slow", "upload", "FAILURE"] for line in result.stdout.splitlines())
        assert any(line.split()[:2] == ["upload.wait_ready", "FAILED"] for line in result.stdout.splitlines())
        assert re.search(
            r"slow/upload at upload\.wait_ready: entry \S+ not READY after 0\.5 s \(ready_timeout\); "
            r"last status PRECONVERT \(1\)",
            result.stdout,
        ), result.stdout
        assert ref.server.platform.store.all_entries() == [], "the entry is deleted after the failure"


def test_schedule_from_a_config_file(fresh_reference: Reference, tmp_path: Path) -> None:
    ref = fresh_reference
    (tmp_path / "ksentinel.toml").write_text(
        f"""
[targets.ref]
url = "{ref.url}"
partner_id = {ref.p1.id}
admin_secret_env = "REF_SECRET"

[probes]
targets = ["ref"]
flows = ["session", "delete"]
interval = 30
"""
    )
    runner = CliRunner()
    result = runner.invoke(
        probe_group,
        ["run", "--config", str(tmp_path / "ksentinel.toml")],
        env={"REF_SECRET": ref.p1.admin_secret, "KSENTINEL_TARGET": "", "KSENTINEL_URL": ""},
    )
    assert result.exit_code == 0, result.output
    flows = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("ref ")]
    assert flows == ["session", "delete"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["run", "--flow", "uplod"],
            "ksentinel: error: --flow: unknown flow 'uplod'; did you mean 'upload'?",
        ),
        (
            ["run", "--url", "http://127.0.0.1:9", "--partner-id", "101"],
            "ksentinel: error: cannot reach http://127.0.0.1:9: CONNECTION:",
        ),
        (
            ["run", "--fault", "stale-cache", "--url", "http://127.0.0.1:9", "--partner-id", "101"],
            "ksentinel: error: --fault only applies to the embedded reference platform (no target given)",
        ),
        (
            ["serve", "--listen", "nowhere"],
            'ksentinel: error: --listen: expected HOST:PORT (e.g. 127.0.0.1:9464), got "nowhere"',
        ),
    ],
)
def test_usage_and_target_errors_exit_2_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    env = {
        "KSENTINEL_ADMIN_SECRET": "not-a-real-secret-123456",
        "KSENTINEL_CONFIG": "",
        "KSENTINEL_TARGET": "",
    }
    result = _invoke(args, env, tmp_path)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr

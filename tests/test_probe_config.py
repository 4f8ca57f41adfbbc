"""The probe schedule: bad files give one line each, good ones give the pairs and targets expected."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ksentinel.cli_target import TargetSelection
from ksentinel.errors import ConfigError
from ksentinel.probe.config import DEFAULT_FLOWS, Pair, load_probe_config
from ksentinel.probe.targets import choose_targets

DATA = Path(__file__).parent / "data" / "probes"
EXAMPLE = Path(__file__).parents[1] / "probes" / "probes.toml"
FLOWS = "browse, cache, delete, list, multirequest, session, upload"

BAD_FILES = [
    ("unknown_key.toml", "probes.intervall: unknown key; did you mean 'interval'?"),
    ("unknown_flow.toml", "probes.flows: unknown flow 'uplaod'; did you mean 'upload'?"),
    ("unknown_target.toml", "probes.targets: unknown target 'stagin'; did you mean 'staging'?"),
    ("timeout_not_below_interval.toml", "probes.timeout: 10s must be shorter than the interval (10s)"),
    ("interval_too_short.toml", "probes.interval: expected 1 to 86400 seconds, got 0.5"),
    ("interval_not_number.toml", 'probes.interval: expected a number of seconds, got "1m"'),
    ("bad_jitter.toml", "probes.jitter: expected a number from 0 to 0.5, got 0.9"),
    ("negative_timeout.toml", "probes.timeout: expected a number of seconds > 0, got -1"),
    ("row_unknown_key.toml", "probes.schedule[1].flow: unknown key; did you mean 'flows'?"),
    ("row_timeout.toml", "probes.schedule[1].timeout: 8s must be shorter than the interval (5s)"),
    (
        "inherited_timeout.toml",
        "probes.timeout (used by probes.schedule[1]): 20s must be shorter than the interval (10s)",
    ),
    ("duplicate_pair.toml", "probes.schedule[2]: flow 'session' is already scheduled by row 1"),
    ("flows_not_array.toml", 'probes.flows: expected an array of flow names, got "session"'),
    ("no_flows.toml", f"probes.flows: expected at least one flow (known flows: {FLOWS})"),
    ("flow_twice.toml", "probes.flows: flow 'session' is listed twice"),
    (
        "schedule_not_array.toml",
        "probes.schedule: expected an array of tables ([[probes.schedule]]), got a table",
    ),
    ("bad_listen.toml", 'probes.listen: expected HOST:PORT (e.g. 127.0.0.1:9464), got "localhost"'),
    ("bad_upload_bytes.toml", "probes.upload_bytes: expected an integer from 1024 to 67108864, got 10"),
    ("probes_not_table.toml", "probes: expected a table, got 3"),
    ("standalone_unknown_key.toml", "timout: unknown key; did you mean 'timeout'?"),
    (
        "standalone_unknown_target.toml",
        "targets: unknown target 'staging' (known targets: none) "
        "(targets come from ksentinel.toml, and none was found)",
    ),
]


@pytest.mark.parametrize(("name", "expected"), BAD_FILES, ids=[name for name, _ in BAD_FILES])
def test_bad_probe_file_is_one_line(name: str, expected: str, tmp_path: Path) -> None:
    path = DATA / name
    with pytest.raises(ConfigError) as info:
        load_probe_config(path, cwd=tmp_path, environ={})
    assert str(info.value) == f"{path}: {expected}"
    assert "\n" not in str(info.value)


def test_every_bad_probe_file_has_a_case() -> None:
    assert {p.name for p in DATA.glob("*.toml")} == {name for name, _ in BAD_FILES}


def test_invalid_toml_in_a_probes_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "probes.toml"
    path.write_text("interval = = 3\n")
    with pytest.raises(ConfigError) as info:
        load_probe_config(path, cwd=tmp_path, environ={})
    assert str(info.value).startswith(f"{path}: not valid TOML: ") and "\n" not in str(info.value)


def test_no_configuration_gives_the_default_flows(tmp_path: Path) -> None:
    probes = load_probe_config(cwd=tmp_path, environ={})
    pairs = probes.pairs(["embedded"], override=True)
    assert [p.flow for p in pairs] == list(DEFAULT_FLOWS)
    assert {(p.interval, p.timeout) for p in pairs} == {(60.0, 30.0)}


def test_the_shipped_example_is_valid(tmp_path: Path) -> None:
    probes = load_probe_config(EXAMPLE, cwd=tmp_path, environ={})
    assert probes.pairs(["embedded"], override=True) == [
        Pair("embedded", "session", 30.0, 10.0),
        Pair("embedded", "cache", 30.0, 10.0),
        Pair("embedded", "upload", 120.0, 90.0),
        Pair("embedded", "list", 300.0, 30.0),
        Pair("embedded", "delete", 300.0, 30.0),
    ]
    assert probes.listen == "127.0.0.1:9464"
    assert probes.options.upload_bytes == 262144


def _project(tmp_path: Path, probes: str) -> Path:
    (tmp_path / "ksentinel.toml").write_text(
        """
[targets.staging]
url = "https://staging.example.com"
partner_id = 11
admin_secret_env = "STAGING_SECRET"

[targets.production]
url = "https://production.example.com"
partner_id = 22
admin_secret_env = "PRODUCTION_SECRET"
"""
        + probes
    )
    return tmp_path


ENV = {"STAGING_SECRET": "staging-secret-0123456789", "PRODUCTION_SECRET": "prod-secret-0123456789"}


def test_rows_targets_and_derived_timeout(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        """
[probes]
targets = ["staging"]
flows = ["session"]
interval = 10

[[probes.schedule]]
flows = ["session", "cache"]

[[probes.schedule]]
targets = ["production"]
flows = ["upload"]
interval = 120
timeout = 100
""",
    )
    probes = load_probe_config(cwd=project, environ=ENV)
    choice = choose_targets(probes, TargetSelection(), ENV)
    assert [t.name for t in choice.targets if t] == ["staging", "production"]
    assert choice.override is False
    assert probes.pairs(["staging", "production"], override=choice.override) == [
        Pair("staging", "session", 10.0, 8.0),
        Pair("staging", "cache", 10.0, 8.0),
        Pair("production", "upload", 120.0, 100.0),
    ]
    secret = choice.targets[1].admin_secret  # type: ignore[union-attr]
    assert secret is not None and secret.reveal() == ENV["PRODUCTION_SECRET"]


def test_a_target_flag_replaces_the_schedules_targets(tmp_path: Path) -> None:
    project = _project(tmp_path, '[probes]\ntargets = ["staging", "production"]\nflows = ["session"]\n')
    probes = load_probe_config(cwd=project, environ=ENV)
    choice = choose_targets(probes, TargetSelection(target="production"), ENV)
    assert [t.name for t in choice.targets if t] == ["production"] and choice.override
    assert [(p.target, p.flow) for p in probes.pairs(["production"], override=True)] == [
        ("production", "session")
    ]


def test_no_target_anywhere_means_the_embedded_platform(tmp_path: Path) -> None:
    probes = load_probe_config(cwd=tmp_path, environ={})
    assert choose_targets(probes, TargetSelection(), {}).targets == (None,)


def test_a_missing_secret_is_named(tmp_path: Path) -> None:
    project = _project(tmp_path, '[probes]\ntargets = ["production"]\n')
    probes = load_probe_config(cwd=project, environ={})
    with pytest.raises(ConfigError, match=r"\$PRODUCTION_SECRET, which is not set"):
        choose_targets(probes, TargetSelection(), {})


def test_a_standalone_file_takes_targets_from_ksentinel_toml(tmp_path: Path) -> None:
    project = _project(tmp_path, "")
    standalone = project / "probes" / "probes.toml"
    standalone.parent.mkdir()
    shutil.copy(EXAMPLE, standalone)
    text = standalone.read_text().replace('# targets = ["staging", "production"]', 'targets = ["staging"]')
    standalone.write_text(text)
    probes = load_probe_config(Path("probes/probes.toml"), cwd=project, environ=ENV)
    assert probes.targets == ("staging",)
    assert probes.config.path == project / "ksentinel.toml"
    # the same file through $KSENTINEL_CONFIG
    again = load_probe_config(cwd=project, environ={**ENV, "KSENTINEL_CONFIG": "probes/probes.toml"})
    assert again.targets == ("staging",)

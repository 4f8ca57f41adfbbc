"""ksentinel.toml, KSENTINEL_* variables and flags: validation, precedence, secrets, ``config show``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ksentinel.cli import main
from ksentinel.cli_target import TargetSelection, config_group, render_config_show, target_options
from ksentinel.config import Config, Secret, Target, load_config, resolve_target
from ksentinel.errors import ConfigError
from ksentinel.kaltura.redact import mask_secret, redact

DATA = Path(__file__).parent / "data" / "config"
STAGING_ADMIN = "staging-admin-5ecret-0123456789"
STAGING_USER = "staging-user-5ecret-0123456789"
PROD_ADMIN = "prod-admin-5ecret-0123456789"
PROD_PEER = "prod-peer-5ecret-0123456789"
ADHOC_ADMIN = "adhoc-admin-5ecret-0123456789"
STAGING_ENV = {"STAGING_ADMIN_SECRET": STAGING_ADMIN, "STAGING_USER_SECRET": STAGING_USER}
PROD_ENV = {"PROD_ADMIN_SECRET": PROD_ADMIN, "PROD_PEER_ADMIN_SECRET": PROD_PEER}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder whose ksentinel.toml is ``valid.toml``."""
    shutil.copy(DATA / "valid.toml", tmp_path / "ksentinel.toml")
    return tmp_path


@pytest.fixture
def config(project: Path) -> Config:
    return load_config(cwd=project, environ={})


# --- bad files: one file per case, one line each (blackbox_exporter's config_test.go) ---------------

BAD_FILES = [
    ("unknown_section.toml", "slos: unknown section; did you mean 'slo'?"),
    ("unknown_key.toml", "targets.staging.partner: unknown key; did you mean 'partner_id'?"),
    ("wrong_type.toml", 'targets.staging.partner_id: expected an integer, got "abc"'),
    (
        "inline_secret.toml",
        "targets.staging.admin_secret: secrets are never read from ksentinel.toml; name the environment "
        "variable that holds it with admin_secret_env (or a file with admin_secret_file)",
    ),
    (
        "bad_url.toml",
        'targets.staging.url: expected an http:// or https:// URL, got "ftp://files.example.com"',
    ),
    ("url_with_credentials.toml", "targets.staging.url: the URL must not carry credentials (user:password@)"),
    ("bad_ks_version.toml", "targets.staging.ks_version: expected 1 or 2, got 3"),
    ("bad_timeout.toml", "targets.staging.timeout: expected a number of seconds > 0, got 0"),
    ("bad_ready_timeout.toml", "targets.staging.ready_timeout: expected a number of seconds > 0, got -5"),
    ("missing_url.toml", "targets.staging: missing required key 'url'"),
    (
        "bad_env_name.toml",
        'targets.staging.admin_secret_env: expected an environment variable name, got "my secret"',
    ),
    ("env_and_file.toml", "targets.staging: set either admin_secret_env or admin_secret_file, not both"),
    ("unknown_default_target.toml", "default_target: unknown target 'stagin'; did you mean 'staging'?"),
    ("targets_not_table.toml", 'targets: expected a table, got "staging"'),
    ("section_not_table.toml", "slo: expected a table, got 3"),
    (
        "bad_target_name.toml",
        "targets.\"my target\": a target name uses only letters, digits, '-', '_' and '.'",
    ),
]


@pytest.mark.parametrize(("name", "expected"), BAD_FILES, ids=[name for name, _ in BAD_FILES])
def test_bad_file_is_one_line_config_error(name: str, expected: str) -> None:
    path = DATA / name
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value) == f"{path}: {expected}"


def test_every_bad_file_has_a_case() -> None:
    files = {p.name for p in DATA.glob("*.toml")} - {"valid.toml", "invalid_toml.toml"}
    assert files == {name for name, _ in BAD_FILES}


def test_invalid_toml_names_file_and_line() -> None:
    path = DATA / "invalid_toml.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert message.startswith(f"{path}: not valid TOML: ") and "line 1" in message and "\n" not in message


def test_inline_secret_and_url_password_never_appear_in_the_message() -> None:
    for name, secret in (
        ("inline_secret.toml", "0123456789abcdef"),
        ("url_with_credentials.toml", "hunter22"),
    ):
        with pytest.raises(ConfigError) as info:
            load_config(DATA / name, environ={})
        assert secret not in str(info.value)


def test_valid_multi_target_file(config: Config, project: Path) -> None:
    assert config.path == project / "ksentinel.toml"
    assert sorted(config.targets) == ["filed", "prod", "staging"]
    assert config.default_target == "staging"
    staging = config.targets["staging"]
    assert staging.url == "https://staging.example.com"  # trailing slash dropped
    assert (staging.partner_id, staging.timeout, staging.ks_version) == (1001, 10.0, 1)
    assert staging.ready_timeout == 120.0
    assert staging.admin_secret_env == "STAGING_ADMIN_SECRET"
    prod = config.targets["prod"]
    assert (prod.peer_partner_id, prod.timeout, prod.ks_version) == (2003, 30.0, 2)
    assert prod.ready_timeout == 300.0  # a real Kaltura converts in seconds to minutes
    assert prod.user_secret_env == "KSENTINEL_USER_SECRET"
    assert config.targets["filed"].admin_secret_file == project / "filed-admin.secret"
    assert config.slo == {"error_ratio": 0.05}  # a valid [slo]: config show prints it
    assert config.probes == {"interval": "30s"}
    assert config.contract == {} and config.load == {} and config.dashboards == {}


# --- finding the file ------------------------------------------------------------------------------


def test_walks_up_from_a_nested_directory(project: Path) -> None:
    nested = project / "a" / "b" / "c"
    nested.mkdir(parents=True)
    config = load_config(cwd=nested, environ={})
    assert config.path == project / "ksentinel.toml"
    assert config.source == f"found walking up from {nested}"


def test_explicit_path_beats_env_beats_walk_up(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text('[targets.other]\nurl = "https://other.example.com"\npartner_id = 7\n')
    env = {"KSENTINEL_CONFIG": str(other)}
    from_env = load_config(cwd=project, environ=env)
    assert (from_env.path, from_env.source, list(from_env.targets)) == (
        other,
        "env KSENTINEL_CONFIG",
        ["other"],
    )
    flag = load_config(Path("ksentinel.toml"), cwd=project, environ=env)
    assert (flag.path, flag.source) == (project / "ksentinel.toml", "flag --config")


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--config .*nope\.toml: no such file$"):
        load_config(Path("nope.toml"), cwd=tmp_path, environ={})
    with pytest.raises(ConfigError, match=r"^env KSENTINEL_CONFIG .*gone\.toml: no such file$"):
        load_config(cwd=tmp_path, environ={"KSENTINEL_CONFIG": "gone.toml"})


def test_no_file_and_no_target_means_embedded(tmp_path: Path) -> None:
    config = load_config(cwd=tmp_path, environ={})
    assert config.path is None and config.targets == {}
    resolved = resolve_target(config, environ={})
    assert resolved.embedded and resolved.target is None
    assert "default_target" in resolved.sources["target"]


def test_file_without_default_target_means_embedded(tmp_path: Path) -> None:
    (tmp_path / "ksentinel.toml").write_text('[targets.a]\nurl = "https://a.example.com"\npartner_id = 1\n')
    assert resolve_target(load_config(cwd=tmp_path, environ={}), environ={}).embedded


# --- resolution errors -----------------------------------------------------------------------------

RESOLVE_ERRORS = [
    (
        "missing admin secret",
        {"target": "staging"},
        {},
        "target 'staging' needs the admin secret in $STAGING_ADMIN_SECRET, which is not set",
    ),
    (
        "missing user secret the file names",
        {"target": "staging"},
        {"STAGING_ADMIN_SECRET": STAGING_ADMIN},
        "target 'staging' needs the user secret in $STAGING_USER_SECRET, which is not set",
    ),
    (
        "missing peer secret",
        {"target": "prod"},
        {"PROD_ADMIN_SECRET": PROD_ADMIN},
        "target 'prod' needs the peer admin secret in $PROD_PEER_ADMIN_SECRET, which is not set",
    ),
    (
        "url flag without partner id",
        {"url": "https://x.example.com"},
        {},
        "--url needs a partner id: add --partner-id N (or set KSENTINEL_PARTNER_ID), "
        "or pick a configured target with --target",
    ),
    (
        "url env without partner id",
        {},
        {"KSENTINEL_URL": "https://x.example.com"},
        "$KSENTINEL_URL needs a partner id: add --partner-id N (or set KSENTINEL_PARTNER_ID), "
        "or pick a configured target with --target",
    ),
    (
        "bad url flag",
        {"url": "ftp://x.example.com", "partner_id": 5},
        {},
        '--url: expected an http:// or https:// URL, got "ftp://x.example.com"',
    ),
    (
        "bad partner id env",
        {},
        {"KSENTINEL_URL": "https://x.example.com", "KSENTINEL_PARTNER_ID": "abc"},
        'env KSENTINEL_PARTNER_ID: expected an integer, got "abc"',
    ),
    (
        "bad ks version env",
        {"target": "prod"},
        {**PROD_ENV, "KSENTINEL_KS_VERSION": "3"},
        "env KSENTINEL_KS_VERSION: expected 1 or 2, got 3",
    ),
    (
        "bad timeout env",
        {"target": "prod"},
        {**PROD_ENV, "KSENTINEL_TIMEOUT": "soon"},
        'env KSENTINEL_TIMEOUT: expected a number of seconds > 0, got "soon"',
    ),
    (
        "bad ready timeout env",
        {"target": "prod"},
        {**PROD_ENV, "KSENTINEL_READY_TIMEOUT": "0"},
        "env KSENTINEL_READY_TIMEOUT: expected a number of seconds > 0, got 0",
    ),
    (
        "ad-hoc without admin secret",
        {"url": "https://x.example.com", "partner_id": 5},
        {},
        "the ad-hoc target needs the admin secret in $KSENTINEL_ADMIN_SECRET, which is not set",
    ),
]


@pytest.mark.parametrize(
    ("flags", "environ", "expected"),
    [case[1:] for case in RESOLVE_ERRORS],
    ids=[case[0] for case in RESOLVE_ERRORS],
)
def test_resolution_error_is_one_line(
    config: Config, flags: dict[str, object], environ: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_target(config, environ=environ, **flags)  # type: ignore[arg-type]
    assert str(info.value) == expected


def test_unknown_target_suggests_a_name(config: Config) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_target(config, target="stagng", environ=STAGING_ENV)
    assert str(info.value) == f"--target: unknown target 'stagng'; did you mean 'staging'? ({config.path})"
    with pytest.raises(ConfigError) as info:
        resolve_target(config, environ={"KSENTINEL_TARGET": "qa"})
    assert str(info.value) == (
        f"env KSENTINEL_TARGET: unknown target 'qa' (known targets: filed, prod, staging) ({config.path})"
    )


def test_partner_id_without_url_or_target(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--partner-id needs a target: add --url URL"):
        resolve_target(load_config(cwd=tmp_path, environ={}), partner_id=5, environ={})


def test_unreadable_secret_file(config: Config, project: Path) -> None:
    path = project / "filed-admin.secret"
    with pytest.raises(ConfigError) as info:
        resolve_target(config, target="filed", environ={})
    assert str(info.value) == (
        f"target 'filed' reads the admin secret from {path}, which cannot be read: No such file or directory"
    )
    path.write_text("\n")
    with pytest.raises(ConfigError, match=r"which is empty$"):
        resolve_target(config, target="filed", environ={})


# --- precedence: flag > env > file > default ------------------------------------------------------

FILE = "ksentinel.toml [targets.staging]"


@pytest.mark.parametrize(
    ("flags", "environ", "key", "value", "source"),
    [
        ({}, {}, "url", "https://staging.example.com", FILE),
        (
            {},
            {"KSENTINEL_URL": "https://env.example.com"},
            "url",
            "https://env.example.com",
            "env KSENTINEL_URL",
        ),
        (
            {"url": "https://flag.example.com"},
            {"KSENTINEL_URL": "https://env.example.com"},
            "url",
            "https://flag.example.com",
            "flag --url",
        ),
        ({}, {}, "partner_id", 1001, FILE),
        ({}, {"KSENTINEL_PARTNER_ID": "77"}, "partner_id", 77, "env KSENTINEL_PARTNER_ID"),
        ({"partner_id": 88}, {"KSENTINEL_PARTNER_ID": "77"}, "partner_id", 88, "flag --partner-id"),
        ({}, {}, "timeout", 10.0, FILE),
        ({}, {"KSENTINEL_TIMEOUT": "2.5"}, "timeout", 2.5, "env KSENTINEL_TIMEOUT"),
        ({}, {}, "ready_timeout", 120.0, FILE),
        ({}, {"KSENTINEL_READY_TIMEOUT": "45"}, "ready_timeout", 45.0, "env KSENTINEL_READY_TIMEOUT"),
        ({}, {}, "ks_version", 1, FILE),
        ({}, {"KSENTINEL_KS_VERSION": "2"}, "ks_version", 2, "env KSENTINEL_KS_VERSION"),
        ({}, {}, "peer_partner_id", None, "default"),
        ({}, {"KSENTINEL_PEER_PARTNER_ID": "1002"}, "peer_partner_id", 1002, "env KSENTINEL_PEER_PARTNER_ID"),
    ],
)
def test_precedence(
    config: Config, flags: dict[str, object], environ: dict[str, str], key: str, value: object, source: str
) -> None:
    env = {**STAGING_ENV, "KSENTINEL_PEER_ADMIN_SECRET": "peer-5ecret-0123456789", **environ}
    resolved = resolve_target(config, target="staging", environ=env, **flags)  # type: ignore[arg-type]
    assert resolved.target is not None
    assert getattr(resolved.target, key) == value
    assert resolved.sources[key] == source


def test_defaults_for_values_the_file_leaves_out(config: Config) -> None:
    resolved = resolve_target(config, target="prod", environ=PROD_ENV)
    target = resolved.target
    assert target is not None
    assert (target.timeout, target.ready_timeout, target.ks_version) == (30.0, 300.0, 2)
    assert resolved.sources["timeout"] == resolved.sources["ks_version"] == "default"
    assert resolved.sources["ready_timeout"] == "default"
    assert target.user_secret is None
    assert resolved.sources["user_secret"] == "$KSENTINEL_USER_SECRET not set"
    assert target.peer_admin_secret is not None and target.peer_admin_secret.reveal() == PROD_PEER
    assert resolved.sources["peer_admin_secret"] == "env PROD_PEER_ADMIN_SECRET"


@pytest.mark.parametrize(
    ("flags", "environ", "name", "source"),
    [
        ({}, {}, "staging", "ksentinel.toml default_target"),
        ({}, {"KSENTINEL_TARGET": "prod"}, "prod", "env KSENTINEL_TARGET"),
        ({"target": "staging"}, {"KSENTINEL_TARGET": "prod"}, "staging", "flag --target"),
    ],
)
def test_target_name_precedence(
    config: Config, flags: dict[str, str], environ: dict[str, str], name: str, source: str
) -> None:
    resolved = resolve_target(config, environ={**STAGING_ENV, **PROD_ENV, **environ}, **flags)
    assert resolved.target is not None and resolved.target.name == name
    assert resolved.sources["target"] == source


def test_url_with_target_overrides_only_the_url(config: Config) -> None:
    resolved = resolve_target(config, target="staging", url="http://127.0.0.1:9000/", environ=STAGING_ENV)
    target = resolved.target
    assert target is not None
    assert (target.name, target.url, target.partner_id) == ("staging", "http://127.0.0.1:9000", 1001)
    assert (resolved.sources["url"], resolved.sources["partner_id"]) == ("flag --url", FILE)


def test_adhoc_target_from_env_ignores_default_target(config: Config) -> None:
    env = {
        "KSENTINEL_URL": "http://127.0.0.1:8080",
        "KSENTINEL_PARTNER_ID": "101",
        "KSENTINEL_ADMIN_SECRET": ADHOC_ADMIN,
        "KSENTINEL_PEER_PARTNER_ID": "102",
        "KSENTINEL_PEER_ADMIN_SECRET": "adhoc-peer-5ecret-0123",
    }
    resolved = resolve_target(config, environ=env)
    target = resolved.target
    assert target is not None and not resolved.embedded
    assert (target.name, target.url, target.partner_id, target.peer_partner_id) == (
        "adhoc",
        "http://127.0.0.1:8080",
        101,
        102,
    )
    assert target.admin_secret is not None and target.admin_secret.reveal() == ADHOC_ADMIN
    assert target.peer_admin_secret is not None
    assert target.user_secret is None
    assert resolved.sources["admin_secret"] == "env KSENTINEL_ADMIN_SECRET"
    assert resolved.sources["partner_id"] == "env KSENTINEL_PARTNER_ID"
    assert (target.ready_timeout, resolved.sources["ready_timeout"]) == (300.0, "default")
    with_bound = resolve_target(config, environ={**env, "KSENTINEL_READY_TIMEOUT": "0.5"})
    assert with_bound.target is not None and with_bound.target.ready_timeout == 0.5
    assert with_bound.sources["ready_timeout"] == "env KSENTINEL_READY_TIMEOUT"


def test_secret_from_file(config: Config, project: Path) -> None:
    path = project / "filed-admin.secret"
    path.write_text("filed-admin-5ecret-0123456789\n")
    resolved = resolve_target(config, target="filed", environ={"KSENTINEL_ADMIN_SECRET": "ignored-5ecret"})
    assert resolved.target is not None and resolved.target.admin_secret is not None
    assert resolved.target.admin_secret.reveal() == "filed-admin-5ecret-0123456789"
    assert resolved.sources["admin_secret"] == f"file {path}"


def test_require_secrets_false_allows_a_missing_admin_secret(config: Config) -> None:
    resolved = resolve_target(config, target="staging", environ={}, require_secrets=False)
    assert resolved.target is not None
    assert resolved.target.admin_secret is None and resolved.target.user_secret is None
    assert resolved.sources["admin_secret"] == "$STAGING_ADMIN_SECRET not set"


# --- secrets ---------------------------------------------------------------------------------------


def test_secret_is_masked_and_registered() -> None:
    secret = Secret(STAGING_ADMIN)
    assert secret.reveal() == STAGING_ADMIN
    for text in (
        str(secret),
        repr(secret),
        f"{secret}",
        repr(Target("t", "https://x", 1, admin_secret=secret)),
    ):
        assert STAGING_ADMIN not in text
    assert str(secret) == mask_secret(STAGING_ADMIN)
    assert redact(f"oops {STAGING_ADMIN}") == f"oops {mask_secret(STAGING_ADMIN)}"
    assert secret == Secret(STAGING_ADMIN) and secret != Secret(STAGING_USER)


def test_secrets_read_from_env_are_registered(config: Config) -> None:
    resolve_target(config, target="staging", environ=STAGING_ENV)
    assert STAGING_ADMIN not in redact(f"{STAGING_ADMIN} {STAGING_USER}")
    assert STAGING_USER not in redact(f"{STAGING_ADMIN} {STAGING_USER}")


def test_for_reference() -> None:
    target = Target.for_reference(
        "http://127.0.0.1:5000/", 101, "ref-admin-5ecret", "ref-user-5ecret", 102, "ref-peer-5ecret"
    )
    assert target.embedded and target.name == "embedded"
    assert target.url == "http://127.0.0.1:5000"
    assert target.admin_secret == Secret("ref-admin-5ecret")
    assert target.peer_partner_id == 102 and target.peer_admin_secret is not None
    assert "ref-admin-5ecret" not in repr(target)
    # its conversion takes seconds: a minute bounds the wait, not a real Kaltura's five
    assert target.ready_timeout == 60.0


# --- the CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, project: Path) -> Iterator[CliRunner]:
    """A runner in the project folder with no KSENTINEL_* or target secret variables leaking in."""
    import os

    for name in list(os.environ):
        if name.startswith(("KSENTINEL_", "STAGING_", "PROD_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(project)
    main.add_command(config_group)
    yield CliRunner()


def test_config_show_masks_secrets_and_names_sources(cli: CliRunner, project: Path) -> None:
    env = {
        **STAGING_ENV,
        "KSENTINEL_TARGET": "staging",
        "KSENTINEL_URL": "https://override.example.com",
        "KSENTINEL_READY_TIMEOUT": "90",
    }
    result = cli.invoke(main, ["config", "show", "--partner-id", "4242"], env=env)
    assert result.exit_code == 0, result.output
    out = result.output
    assert STAGING_ADMIN not in out and STAGING_USER not in out
    assert mask_secret(STAGING_ADMIN) in out and mask_secret(STAGING_USER) in out
    expected_rows = [
        ("config file", str(project / "ksentinel.toml"), f"found walking up from {project}"),
        ("target", "staging", "env KSENTINEL_TARGET"),
        ("url", "https://override.example.com", "env KSENTINEL_URL"),
        ("partner_id", "4242", "flag --partner-id"),
        ("admin_secret", mask_secret(STAGING_ADMIN), "env STAGING_ADMIN_SECRET"),
        ("user_secret", mask_secret(STAGING_USER), "env STAGING_USER_SECRET"),
        ("timeout", "10.0", FILE),
        ("ready_timeout", "90.0", "env KSENTINEL_READY_TIMEOUT"),
        ("ks_version", "1", FILE),
        ("peer_partner_id", "-", "default"),
    ]
    lines = out.splitlines()
    for key, value, source in expected_rows:
        row = next(line for line in lines if line.startswith(key + " "))
        assert value in row and row.endswith(f"({source})"), row
    assert "targets in file: filed, prod, staging (default_target: staging)" in out
    assert "other sections: [slo], [probes]" in out


def test_config_show_names_where_ready_timeout_comes_from(cli: CliRunner) -> None:
    def row(args: list[str], env: dict[str, str]) -> str:
        result = cli.invoke(main, ["config", "show", *args], env=env)
        assert result.exit_code == 0, result.output
        return next(line for line in result.output.splitlines() if line.startswith("ready_timeout "))

    assert row(["--target", "staging"], STAGING_ENV).split() == [
        "ready_timeout",
        "120.0",
        "(ksentinel.toml",
        "[targets.staging])",
    ]
    assert row(["--target", "prod"], PROD_ENV).split() == ["ready_timeout", "300.0", "(default)"]
    env = {**PROD_ENV, "KSENTINEL_READY_TIMEOUT": "7.5"}
    assert row(["--target", "prod"], env).split() == [
        "ready_timeout",
        "7.5",
        "(env",
        "KSENTINEL_READY_TIMEOUT)",
    ]


def test_config_show_embedded_when_nothing_is_selected(cli: CliRunner, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "ksentinel.toml").write_text("")
    result = cli.invoke(main, ["config", "show", "--config", str(empty / "ksentinel.toml")])
    assert result.exit_code == 0, result.output
    assert "embedded reference platform" in result.output


def test_render_config_show_without_a_file(tmp_path: Path) -> None:
    config = load_config(cwd=tmp_path, environ={})
    text = render_config_show(config, resolve_target(config, environ={}))
    assert text.splitlines()[0].split("  ")[1].strip() == "none found"
    assert "embedded reference platform" in text


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--target", "stagng"], {}, "--target: unknown target 'stagng'; did you mean 'staging'?"),
        (["--url", "https://x.example.com"], {}, "--url needs a partner id"),
        ([], {"KSENTINEL_URL": "https://x.example.com"}, "$KSENTINEL_URL needs a partner id"),
    ],
)
def test_config_error_exits_2_with_one_line(
    cli: CliRunner, args: list[str], env: dict[str, str], expected: str
) -> None:
    result = cli.invoke(main, ["config", "show", *args], env=env)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"ksentinel: error: {expected}")


def test_config_show_names_a_missing_secret_instead_of_failing(cli: CliRunner) -> None:
    result = cli.invoke(main, ["config", "show", "--target", "prod"])
    assert result.exit_code == 1, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("admin_secret "))
    assert "(missing: set PROD_ADMIN_SECRET)" in row
    assert result.stderr.count("\n") == 1 and "$PROD_ADMIN_SECRET" in result.stderr


def test_bad_config_file_through_the_cli(cli: CliRunner) -> None:
    result = cli.invoke(main, ["config", "show", "--config", str(DATA / "wrong_type.toml")])
    assert result.exit_code == 2
    assert result.stderr == (
        f'ksentinel: error: {DATA / "wrong_type.toml"}: targets.staging.partner_id: expected an integer, got "abc"\n'
    )


def test_help_shows_the_environment_variables(cli: CliRunner) -> None:
    result = cli.invoke(main, ["config", "show", "--help"])
    assert result.exit_code == 0
    for name in ("KSENTINEL_CONFIG", "KSENTINEL_TARGET", "KSENTINEL_URL", "KSENTINEL_PARTNER_ID"):
        assert name in result.output


def test_target_options_keep_only_flags(cli: CliRunner) -> None:
    seen: list[TargetSelection] = []

    @click.command()
    @target_options
    def probe(selection: TargetSelection) -> None:
        seen.append(selection)

    result = cli.invoke(probe, ["--url", "https://flag.example.com"], env={"KSENTINEL_PARTNER_ID": "9"})
    assert result.exit_code == 0, result.output
    assert seen == [TargetSelection(url="https://flag.example.com")]


# --- [contract] strict_ks_echo -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"strict_ks_eco": True},
            "ksentinel.toml: contract.strict_ks_eco: unknown key; did you mean 'strict_ks_echo'?",
        ),
        (
            {"strict_ks_echo": "yes"},
            'ksentinel.toml: contract.strict_ks_echo: expected true or false, got "yes"',
        ),
        ({"strict_ks_echo": 1}, "ksentinel.toml: contract.strict_ks_echo: expected true or false, got 1"),
        ({"includes": ["a.b"]}, "ksentinel.toml: contract.includes: unknown key; did you mean 'include'?"),
    ],
)
def test_contract_settings_are_validated_with_one_line(table: dict, message: str) -> None:
    from ksentinel.contract.scope import load_scope
    from ksentinel.contract.settings import contract_settings

    config = Config(contract=table)
    with pytest.raises(ConfigError) as info:
        contract_settings(config)
    assert str(info.value) == message
    with pytest.raises(ConfigError):  # the scope, read from the same section, refuses it too
        load_scope(config)


def test_strict_ks_echo_is_off_unless_set(project: Path) -> None:
    from ksentinel.contract.scope import load_scope
    from ksentinel.contract.settings import contract_settings

    assert contract_settings(Config()).strict_ks_echo is False
    (project / "ksentinel.toml").write_text(
        (project / "ksentinel.toml").read_text()
        + '\n[contract]\nstrict_ks_echo = true\ninclude = ["media.*"]\n'
    )
    config = load_config(cwd=project, environ={})
    assert contract_settings(config).strict_ks_echo is True
    scope = load_scope(config)
    assert scope is not None and scope.include == ("media.*",)

"""Where each suite comes from: ``--suite``, the working directory's copy, the shipped one (``ksentinel.suites``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ksentinel.cli import main
from ksentinel.errors import ConfigError
from ksentinel.suites import SUITES, copy_suites, find_suite, shipped_suite

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(SUITES))
def test_the_shipped_suite_is_found_from_anywhere(name: str, tmp_path: Path) -> None:
    found = find_suite(name, cwd=tmp_path)
    assert found.shipped
    assert found.path == shipped_suite(name)
    assert SUITES[name].holds(found.path)


@pytest.mark.parametrize("name", list(SUITES))
def test_the_working_directory_copy_wins(name: str, tmp_path: Path) -> None:
    copy_suites(tmp_path, (name,))
    found = find_suite(name, cwd=tmp_path)
    assert not found.shipped
    assert found.path == (tmp_path / name).resolve()


def test_a_folder_without_the_marker_is_not_a_suite(tmp_path: Path) -> None:
    (tmp_path / "dashboards" / "build").mkdir(parents=True)  # only build output: not the team's suite
    assert find_suite("dashboards", cwd=tmp_path).shipped
    with pytest.raises(ConfigError, match=r"--suite .*: not a load suite \(no locustfile.py in it\)"):
        find_suite("load", tmp_path / "dashboards")


def test_copy_leaves_build_output_and_bytecode_behind(tmp_path: Path) -> None:
    written = copy_suites(tmp_path)
    assert [p.name for p in written] == list(SUITES)
    copied = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert not [p for p in copied if "__pycache__" in p or p.endswith(".pyc") or "/build/" in p]
    assert {"contracts/conftest.py", "load/profiles.toml", "dashboards/rules/tests/probe.yml"} <= copied


def test_init_refuses_to_overwrite_and_force_replaces(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["init", str(tmp_path / "team")])
    assert first.exit_code == 0, first.output
    edited = tmp_path / "team" / "load" / "profiles.toml"
    edited.write_text("# the team's own profiles\n")
    config = tmp_path / "team" / "ksentinel.toml"
    config.write_text("# the team's config\n")

    again = runner.invoke(main, ["init", str(tmp_path / "team")])
    assert again.exit_code == 2
    assert "exists: ksentinel init does not overwrite a suite (--force replaces it)" in again.output
    assert edited.read_text() == "# the team's own profiles\n"

    forced = runner.invoke(main, ["init", "--force", str(tmp_path / "team")])
    assert forced.exit_code == 0, forced.output
    assert edited.read_text() == (shipped_suite("load") / "profiles.toml").read_text()  # type: ignore[operator]
    assert config.read_text() == "# the team's config\n", "an existing ksentinel.toml is never replaced"


def test_the_starter_config_loads(tmp_path: Path) -> None:
    from ksentinel.config import load_config

    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    config = load_config(tmp_path / "ksentinel.toml")
    assert config.targets == {}


def test_init_into_a_file_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(main, ["init", str(blocker)])
    assert result.exit_code == 2
    assert "exists and is not a folder" in result.output or "is a file" in result.output

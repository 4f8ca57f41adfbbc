"""The ``[reference]`` section and the ``serve`` flags that set how realistic the reference platform is."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ksentinel.config import load_config
from ksentinel.embedded import open_target
from ksentinel.errors import ConfigError
from ksentinel.reference.process import ReferenceProcess
from ksentinel.reference.realism import REALISM_KEYS, Realism, ReferenceSettings, reference_settings


def test_realism_is_on_by_default_and_off_turns_every_behaviour_down() -> None:
    on, off = Realism(), Realism.off()
    assert on.index_lag > 0 and on.sniff_media and on.download_redirect and on.echo_invalid_ks
    assert on.cache_extra_fields and on.final_chunk_wait == 45.0
    for key in REALISM_KEYS:
        assert getattr(off, key) in (0, 0.0, False), key
    assert ReferenceSettings().ready_after == 2.0


def test_the_section_overrides_single_behaviours_and_realism_false_starts_from_off() -> None:
    settings = reference_settings({"index_lag": 3, "download_redirect": False, "ready_after": 0.5})
    assert settings.realism.index_lag == 3.0 and settings.realism.download_redirect is False
    assert settings.realism.sniff_media is True and settings.ready_after == 0.5
    plain = reference_settings({"realism": False, "sniff_media": True})
    assert plain.realism == dataclasses.replace(Realism.off(), sniff_media=True)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"index_lagg": 1}, "reference.index_lagg: unknown key; did you mean 'index_lag'?"),
        ({"index_lag": -1}, "reference.index_lag: expected a number from 0 to 600, got -1"),
        ({"index_lag_jitter": 2}, "reference.index_lag_jitter: expected a number from 0 to 1, got 2"),
        ({"sniff_media": "yes"}, 'reference.sniff_media: expected true or false, got "yes"'),
        ({"realism": 1}, "reference.realism: expected true or false, got 1"),
        ({"ready_after": True}, "reference.ready_after: expected a number from 0 to 3600, got true"),
    ],
)
def test_bad_values_are_one_line_errors_that_name_the_key(table: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        reference_settings(table)
    assert str(caught.value) == message


def test_the_file_section_reaches_the_embedded_platform(tmp_path: Path) -> None:
    (tmp_path / "ksentinel.toml").write_text("[reference]\nrealism = false\nready_after = 0.1\n")
    config = load_config(cwd=tmp_path, environ={})
    assert dict(config.reference) == {"realism": False, "ready_after": 0.1}
    with open_target(None, config=config) as target:
        assert target.url.startswith("http://127.0.0.1:")
    (tmp_path / "ksentinel.toml").write_text("[reference]\nindex_lag = 'soon'\n")
    bad = load_config(cwd=tmp_path, environ={})
    with (
        pytest.raises(ConfigError, match=r"reference\.index_lag: expected a number"),
        open_target(None, config=bad),
    ):
        pass


def test_serve_says_what_is_realistic_and_flags_win_over_the_file(tmp_path: Path) -> None:
    (tmp_path / "ksentinel.toml").write_text("[reference]\nindex_lag = 5\n")
    config_flag = ("--config", str(tmp_path / "ksentinel.toml"))
    with ReferenceProcess(tmp_path / "a", extra_args=config_flag) as server:
        banner = "\n".join(server.banner)
    assert "realism: index lag 5s ±50%" in banner and "downloads redirected" in banner
    flags = (*config_flag, "--index-lag", "0", "--no-download-redirect", "--no-echo-invalid-ks")
    with ReferenceProcess(tmp_path / "b", extra_args=flags) as server:
        banner = "\n".join(server.banner)
    assert "no index lag" in banner and "downloads direct" in banner and "INVALID_KS masks" in banner
    with ReferenceProcess(tmp_path / "c", extra_args=("--realism", "off")) as server:
        banner = "\n".join(server.banner)
    assert "no index lag" in banner and "final chunk never waits" in banner

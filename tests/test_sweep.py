"""``ksentinel sweep`` removes exactly ksentinel's leftovers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ksentinel.errors import ConfigError
from ksentinel.flows.sweep import parse_age, sweep
from ksentinel.kaltura.api import KalturaApi
from tests.conftest import Reference
from tests.helpers import admin_ks


def seed(api: KalturaApi) -> dict[str, str]:
    def entry(name: str, tags: str) -> str:
        return api.call(
            "baseEntry", "add", entry={"objectType": "KalturaBaseEntry", "name": name, "tags": tags}
        )["id"]

    return {
        "run_a": entry("left by run a", "ksentinel,ksentinel-runa"),
        "run_b": entry("left by run b", "ksentinel,ksentinel-runb"),
        "user": entry("a user's entry", "holiday,ksentinelish"),
        "token_a": api.call(
            "uploadToken",
            "add",
            uploadToken={"objectType": "KalturaUploadToken", "fileName": "ksentinel-runa.mp4"},
        )["id"],
        "user_token": api.call(
            "uploadToken", "add", uploadToken={"objectType": "KalturaUploadToken", "fileName": "movie.mp4"}
        )["id"],
    }


def test_sweep_by_tag_then_everything_ksentinel(fresh_reference: Reference) -> None:
    with KalturaApi(fresh_reference.url, ks=admin_ks(fresh_reference.p1)) as api:
        ids = seed(api)
        assert sweep(api, older_than=3600).entries == [], "--older-than must spare fresh objects"
        dry = sweep(api, run_tag="runa", dry_run=True)
        assert dry.entries == [ids["run_a"]] and dry.tokens == [ids["token_a"]]
        first = sweep(api, run_tag="runa")
        assert first.entries == [ids["run_a"]] and first.tokens == [ids["token_a"]]
        second = sweep(api)
        assert second.entries == [ids["run_b"]] and second.tokens == []
    store = fresh_reference.server.platform.store
    assert {e["id"] for e in store.all_entries()} == {ids["user"]}
    assert store.get_token(101, ids["user_token"])["status"] == 0


def test_sweep_command(tmp_path, fresh_reference: Reference) -> None:
    with KalturaApi(fresh_reference.url, ks=admin_ks(fresh_reference.p1)) as api:
        ids = seed(api)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    env.update(KSENTINEL_ADMIN_SECRET=fresh_reference.p1.admin_secret)
    proc = subprocess.run(
        [sys.executable, "-m", "ksentinel.cli", "sweep", "--url", fresh_reference.url, "--partner-id", "101"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "removed 2 entries and 1 upload tokens" in proc.stdout
    assert ids["run_a"] in proc.stdout and ids["user"] not in proc.stdout


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("0", 0)]
)
def test_parse_age(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


def test_bad_age() -> None:
    with pytest.raises(ConfigError, match="bad age"):
        parse_age("yesterday")

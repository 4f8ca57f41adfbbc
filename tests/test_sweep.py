"""``ksentinel sweep`` removes exactly ksentinel's leftovers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ksentinel.errors import ConfigError
from ksentinel.flows import sweep as sweep_module
from ksentinel.flows.sweep import parse_age, sweep
from ksentinel.kaltura.api import KalturaApi
from ksentinel.reference.services import entries as ref_entries
from ksentinel.reference.services import upload_token as ref_tokens
from tests.conftest import Reference
from tests.helpers import admin_ks

PARTNER = 101
HOURS_AGO = 2 * 3600  # older than the command's default --older-than 1h
CLOSED, TIMED_OUT = 3, 4


def add_entry(api: KalturaApi, name: str, tags: str) -> str:
    return api.call("baseEntry", "add", entry={"objectType": "KalturaBaseEntry", "name": name, "tags": tags})[
        "id"
    ]


def add_token(api: KalturaApi, file_name: str) -> str:
    token = {"objectType": "KalturaUploadToken", "fileName": file_name}
    return api.call("uploadToken", "add", uploadToken=token)["id"]


def closed_token(api: KalturaApi, file_name: str, tags: str) -> tuple[str, str]:
    """A token whose content an entry took (CLOSED, as a finished upload flow leaves it), and that entry."""
    token_id = add_token(api, file_name)
    api.upload_chunk(token_id, b"not really a movie", resume=False, final_chunk=True, filename=file_name)
    entry = api.call(
        "baseEntry",
        "addFromUploadedFile",
        entry={"objectType": "KalturaBaseEntry", "name": "closed", "tags": tags},
        uploadTokenId=token_id,
    )
    return token_id, entry["id"]


def backdate(
    ref: Reference, *, entries: tuple[str, ...] = (), tokens: tuple[str, ...] = (), ago: int
) -> None:
    """Make objects look ``ago`` seconds old (createdAt is read-only on the API)."""
    store = ref.server.platform.store
    when = int(time.time()) - ago
    for entry_id in entries:
        assert store.update_entry(PARTNER, entry_id, {"created_at": when}) is not None
    for token_id in tokens:
        assert store.update_token(PARTNER, token_id, {"created_at": when}) is not None


def live_entries(ref: Reference) -> set[str]:
    return {e["id"] for e in ref.server.platform.store.all_entries(PARTNER)}


def live_tokens(ref: Reference) -> dict[str, int]:
    return {t["id"]: t["status"] for t in ref.server.platform.store.all_tokens(PARTNER) if t["status"] != 5}


def seed(api: KalturaApi) -> dict[str, str]:
    return {
        "run_a": add_entry(api, "left by run a", "ksentinel,ksentinel-runa"),
        "run_b": add_entry(api, "left by run b", "ksentinel,ksentinel-runb"),
        "user": add_entry(api, "a user's entry", "holiday,ksentinelish"),
        "token_a": add_token(api, "ksentinel-runa.mp4"),
        "user_token": add_token(api, "movie.mp4"),
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


def test_closed_and_timed_out_tokens_are_removed(fresh_reference: Reference) -> None:
    ref = fresh_reference
    with KalturaApi(ref.url, ks=admin_ks(ref.p1)) as api:
        closed, closed_entry = closed_token(api, "ksentinel-closed.mp4", "ksentinel,ksentinel-closed")
        timed_out = add_token(api, "ksentinel-timedout.mp4")
        user_closed, user_entry = closed_token(api, "holiday.mp4", "holiday")
        ref.server.platform.store.update_token(PARTNER, timed_out, {"status": TIMED_OUT})
        assert live_tokens(ref) == {closed: CLOSED, timed_out: TIMED_OUT, user_closed: CLOSED}
        result = sweep(api)
    assert sorted(result.tokens) == sorted([closed, timed_out]) and not result.errors
    assert live_tokens(ref) == {user_closed: CLOSED}, "an untagged closed token stays"
    assert result.entries == [closed_entry] and user_entry in live_entries(ref)


def _run(args: list[str], cwd: Path, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "ksentinel.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )


def test_sweep_command_spares_the_last_hour_and_untagged_objects(
    tmp_path: Path, fresh_reference: Reference
) -> None:
    ref = fresh_reference
    with KalturaApi(ref.url, ks=admin_ks(ref.p1)) as api:
        ids = seed(api)
        closed, closed_entry = closed_token(api, "ksentinel-runc.mp4", "ksentinel,ksentinel-runc")
        fresh_entry = add_entry(api, "a probe's entry in use", "ksentinel,ksentinel-probe")
        fresh_token = add_token(api, "ksentinel-probe.mp4")
    old_entries = (ids["run_a"], ids["run_b"], ids["user"], closed_entry)
    backdate(ref, entries=old_entries, tokens=(ids["token_a"], ids["user_token"], closed), ago=HOURS_AGO)
    proc = _run(
        ["sweep", "--url", ref.url, "--partner-id", "101"],
        tmp_path,
        KSENTINEL_ADMIN_SECRET=ref.p1.admin_secret,
    )
    assert proc.returncode == 0, proc.stderr
    assert "removed 3 entries and 2 upload tokens" in proc.stdout
    assert ids["run_a"] in proc.stdout and ids["user"] not in proc.stdout
    # the untagged entry and token of the same age, and the tagged objects of the last hour, are left
    assert live_entries(ref) == {ids["user"], fresh_entry}
    assert set(live_tokens(ref)) == {ids["user_token"], fresh_token}


def test_sweep_refuses_to_run_without_a_target(tmp_path: Path) -> None:
    (tmp_path / "ksentinel.toml").write_text(
        '[targets.staging]\nurl = "https://staging.example.com"\npartner_id = 1\n'
    )
    started = time.monotonic()
    proc = _run(["sweep"], tmp_path, KSENTINEL_ADMIN_SECRET="not-used")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ksentinel: error: sweep needs a target"), proc.stderr
    assert "--target" in lines[0] and "embedded" in lines[0]
    assert proc.stdout == "" and "removed" not in proc.stderr
    assert time.monotonic() - started < 30


class Recorder:
    """Stands in for the admin client and keeps every list call's pager."""

    def __init__(self, api: KalturaApi) -> None:
        self.api = api
        self.lists: list[tuple[str, int, int]] = []

    def call(self, service: str, action: str, **params: Any) -> Any:
        if action == "list":
            pager = params["pager"]
            self.lists.append((service, int(pager["pageIndex"]), int(pager["pageSize"])))
        return self.api.call(service, action, **params)


def test_sweep_pages_past_the_match_limit_by_cursor(
    fresh_reference: Reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A platform refusing offsets from 10 (as Kaltura from 10,000) and pages of 3: more than 10 tagged
    entries and tokens are all swept, and no list call ever asks for an offset past the limit."""
    limit = 10
    for module in (ref_entries, ref_tokens):
        monkeypatch.setattr(module, "MAX_MATCHES", limit)
    monkeypatch.setattr(sweep_module, "MAX_MATCHES", limit, raising=False)  # the sweep's own bound
    monkeypatch.setattr(sweep_module, "PAGE", 3)
    ref = fresh_reference
    now = int(time.time())
    store = ref.server.platform.store
    tagged, untagged, tagged_tokens, untagged_tokens = [], [], [], []
    with KalturaApi(ref.url, ks=admin_ks(ref.p1)) as api:
        for i in range(24):
            tagged.append(add_entry(api, f"left {i}", f"ksentinel,ksentinel-run{i}"))
            tagged_tokens.append(add_token(api, f"ksentinel-run{i}.mp4"))
            if i % 6 == 0:
                untagged.append(add_entry(api, f"user {i}", "holiday,ksentinelish"))
                untagged_tokens.append(add_token(api, f"movie{i}.mp4"))
        # distinct seconds, but five entries and tokens share one (more than a page)
        for i, (entry_id, token_id) in enumerate(zip(tagged, tagged_tokens, strict=True)):
            when = now - HOURS_AGO - (100 if 5 <= i < 10 else 200 + i * 7)
            store.update_entry(PARTNER, entry_id, {"created_at": when})
            store.update_token(PARTNER, token_id, {"created_at": when})
        for i, (entry_id, token_id) in enumerate(zip(untagged, untagged_tokens, strict=True)):
            store.update_entry(PARTNER, entry_id, {"created_at": now - HOURS_AGO - 201 - i * 40})
            store.update_token(PARTNER, token_id, {"created_at": now - HOURS_AGO - 201 - i * 40})
        fresh = add_entry(api, "in use", "ksentinel,ksentinel-probe")
        fresh_token = add_token(api, "ksentinel-probe.mp4")
        recorder = Recorder(api)
        result = sweep(recorder, older_than=3600)  # type: ignore[arg-type]
    assert not result.errors and not result.incomplete, (result.errors, result.incomplete)
    assert sorted(result.entries) == sorted(tagged)
    assert sorted(result.tokens) == sorted(tagged_tokens)
    assert live_entries(ref) == {*untagged, fresh}
    assert set(live_tokens(ref)) == {*untagged_tokens, fresh_token}
    assert recorder.lists, "the sweep lists"
    for service, index, size in recorder.lists:
        assert size == 3 and (index - 1) * size < limit, (service, index, size)


def test_dry_run_reports_what_it_could_not_see(
    fresh_reference: Reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dry run deletes nothing, so tokens past the limit stay out of sight: it says so, not "done"."""
    for module in (ref_tokens, sweep_module):
        monkeypatch.setattr(module, "MAX_MATCHES", 6)
    monkeypatch.setattr(sweep_module, "PAGE", 3)
    with KalturaApi(fresh_reference.url, ks=admin_ks(fresh_reference.p1)) as api:
        tokens = [add_token(api, f"ksentinel-dry{i}.mp4") for i in range(8)]
        result = sweep(api, dry_run=True)
    assert len(result.tokens) == 6 and set(result.tokens) < set(tokens)
    assert len(result.incomplete) == 1 and "upload tokens" in result.incomplete[0]
    assert set(live_tokens(fresh_reference)) == set(tokens)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("0", 0)]
)
def test_parse_age(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


def test_bad_age() -> None:
    with pytest.raises(ConfigError, match="bad age"):
        parse_age("yesterday")

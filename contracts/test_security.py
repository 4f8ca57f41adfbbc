"""Sessions and partners stay apart; bad sessions are refused; secrets never come back."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest

from ksentinel.errors import KalturaApiError
from ksentinel.flows import Sessions
from ksentinel.kaltura import ks as ks_lib
from ksentinel.kaltura.api import ApiResponse, KalturaApi
from ksentinel.kaltura.redact import mask_ks
from ksentinel.pytest_plugin import is_production

COUNT_FILTER = {"objectType": "KalturaBaseEntryFilter", "idEqual": "0_ksentinel"}


def security(subject: str) -> pytest.MarkDecorator:
    return pytest.mark.ksentinel("security", subject)


def refused(response: ApiResponse, code: str = "INVALID_KS") -> bool:
    return response.error is not None and response.error.code == code


def _tampered_v1(sessions: Sessions) -> str:
    """A correctly signed USER KS whose type was changed to ADMIN after signing."""
    c = sessions.credentials
    token = ks_lib.build_v1(c.admin_secret, c.partner_id, "ksentinel-tamper", 0, 600)
    sig, info = base64.b64decode(token).split(b"|", 1)
    fields = info.split(b";")
    fields[3] = b"2"
    return base64.b64encode(sig + b"|" + b";".join(fields)).decode()


def _flipped_v2(sessions: Sessions) -> str:
    c = sessions.credentials
    token = ks_lib.build_v2(c.admin_secret, c.partner_id, "ksentinel-tamper", 2, 600)
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[-5] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode()


def _forged(sessions: Sessions) -> str:
    c = sessions.credentials
    return ks_lib.build_v1("ksentinel-wrong-secret-" + "x" * 16, c.partner_id, "ksentinel-forger", 2, 600)


@pytest.fixture
def created_entry(kaltura_api: KalturaApi, ksentinel_run_id: str, ksentinel_target) -> Iterator[dict]:
    if is_production(ksentinel_target):
        pytest.skip("not run on a production target: it creates an entry (reads only there)")
    entry = kaltura_api.call(
        "baseEntry",
        "add",
        entry={
            "objectType": "KalturaBaseEntry",
            "name": "ksentinel security",
            "tags": f"ksentinel,ksentinel-{ksentinel_run_id}",
        },
    )
    yield entry
    with contextlib.suppress(KalturaApiError):
        kaltura_api.call("baseEntry", "delete", entryId=entry["id"])


@security("ks.tampered")
@pytest.mark.parametrize("make", [_tampered_v1, _flipped_v2], ids=["v1-fields-changed", "v2-bytes-flipped"])
def test_tampered_ks_is_refused(kaltura_api: KalturaApi, ksentinel_sessions: Sessions, make) -> None:
    response = kaltura_api.with_ks(make(ksentinel_sessions)).call_raw("session", "get")
    assert refused(response), f"a tampered KS was accepted: {response!r}"


@security("ks.forged")
def test_ks_signed_with_another_secret_is_refused(
    kaltura_api: KalturaApi, ksentinel_sessions: Sessions
) -> None:
    response = kaltura_api.with_ks(_forged(ksentinel_sessions)).call_raw(
        "baseEntry", "count", filter=COUNT_FILTER
    )
    assert refused(response), f"a KS signed with a wrong secret was accepted: {response!r}"


@security("ks.expired")
def test_expired_ks_is_refused(kaltura_api: KalturaApi, ksentinel_sessions: Sessions) -> None:
    response = kaltura_api.with_ks(ksentinel_sessions.expired_admin()).call_raw(
        "baseEntry", "count", filter=COUNT_FILTER
    )
    assert refused(response), f"an expired KS was accepted: {response!r}"


@security("ks.ended")
def test_ended_ks_is_refused(kaltura_api: KalturaApi, ksentinel_credentials) -> None:
    c = ksentinel_credentials
    ks = kaltura_api.with_ks(None).call(
        "session",
        "start",
        secret=c.admin_secret,
        partnerId=c.partner_id,
        type=2,
        userId="ksentinel-ended",
        expiry=300,
    )
    ended = kaltura_api.with_ks(ks)
    ended.call("session", "end")
    response = ended.call_raw("baseEntry", "count", filter=COUNT_FILTER)
    assert refused(response), f"an ended KS was still accepted: {response!r}"


@security("ks.missing")
def test_no_success_without_a_ks(kaltura_api: KalturaApi, ksentinel_target) -> None:
    anonymous = kaltura_api.with_ks(None)
    # a write too, except on production (a server that wrongly accepted it would get a stray token)
    write = () if is_production(ksentinel_target) else (("uploadToken", "add"),)
    for service, action in (("baseEntry", "list"), *write, ("media", "count")):
        response = anonymous.call_raw(service, action)
        assert response.error is not None, f"{service}.{action} succeeded without a KS"


@security("roles.user_vs_admin")
def test_user_session_cannot_do_what_needs_admin(
    kaltura_api: KalturaApi, ksentinel_sessions: Sessions, created_entry: dict
) -> None:
    user = kaltura_api.with_ks(ksentinel_sessions.user("ksentinel-plain-user"))
    assert refused(user.call_raw("session", "get"), "SERVICE_FORBIDDEN"), "a USER KS may call session.get"
    changed = user.call_raw(
        "baseEntry",
        "update",
        entryId=created_entry["id"],
        baseEntry={"objectType": "KalturaBaseEntry", "name": "hijacked"},
    )
    assert changed.error is not None, "a USER KS changed an entry it does not own"
    deleted = user.call_raw("baseEntry", "delete", entryId=created_entry["id"])
    assert deleted.error is not None, "a USER KS deleted an entry it does not own"
    assert kaltura_api.call("baseEntry", "get", entryId=created_entry["id"])["name"] == "ksentinel security"


@security("partners.isolated")
def test_other_partner_can_neither_read_nor_change_our_entries(
    kaltura_api: KalturaApi, ksentinel_sessions: Sessions, created_entry: dict
) -> None:
    peer_ks = ksentinel_sessions.peer_admin()
    if peer_ks is None:
        pytest.skip("no peer partner: set KSENTINEL_PEER_PARTNER_ID and KSENTINEL_PEER_ADMIN_SECRET")
    peer = kaltura_api.with_ks(peer_ks)
    entry_id = created_entry["id"]
    assert peer.call_raw("baseEntry", "get", entryId=entry_id).error is not None, (
        "another partner read our entry"
    )
    listed = peer.call_raw(
        "baseEntry",
        "list",
        filter={"objectType": "KalturaBaseEntryFilter", "idIn": entry_id, "statusIn": "-2,-1,0,1,2,4,5,6,7"},
    )
    assert listed.error is not None or not (listed.result or {}).get("objects"), (
        "another partner listed our entry"
    )
    assert (
        peer.call_raw(
            "baseEntry", "update", entryId=entry_id, baseEntry={"objectType": "KalturaBaseEntry", "name": "x"}
        ).error
        is not None
    )
    assert peer.call_raw("baseEntry", "delete", entryId=entry_id).error is not None, (
        "another partner deleted our entry"
    )
    assert kaltura_api.call("baseEntry", "get", entryId=entry_id)["name"] == "ksentinel security"


@dataclass(frozen=True)
class LeakProbe:
    """One request of the leak checks: what it was, the KS it carried (None: none), the answer."""

    what: str
    sent_ks: str | None
    response: ApiResponse

    @property
    def code(self) -> str:
        return self.response.error.code if self.response.error else f"HTTP {self.response.status} ok"


@pytest.fixture(scope="module")
def leak_probes(
    kaltura_api: KalturaApi, ksentinel_sessions: Sessions, ksentinel_credentials
) -> list[LeakProbe]:
    """Requests whose answers must not carry secrets or KS values: refused sessions, errors, bad secrets."""
    c = ksentinel_credentials
    probes: list[LeakProbe] = []
    for what, token in (
        ("baseEntry.list with a tampered v1 KS", _tampered_v1(ksentinel_sessions)),
        ("baseEntry.list with a v2 KS with flipped bytes", _flipped_v2(ksentinel_sessions)),
        ("baseEntry.list with a KS signed with another secret", _forged(ksentinel_sessions)),
        ("baseEntry.list with an expired KS", ksentinel_sessions.expired_admin()),
    ):
        probes.append(LeakProbe(what, token, kaltura_api.with_ks(token).call_raw("baseEntry", "list")))
    admin = ksentinel_sessions.admin()
    as_admin = kaltura_api.with_ks(admin)
    probes.append(
        LeakProbe(
            "baseEntry.get of a missing entry",
            admin,
            as_admin.call_raw("baseEntry", "get", entryId="0_ksnothere"),
        )
    )
    probes.append(
        LeakProbe("session.get of 'not-a-ks'", admin, as_admin.call_raw("session", "get", session="not-a-ks"))
    )
    wrong = kaltura_api.with_ks(None).call_raw(
        "session", "start", secret=c.admin_secret + "x", partnerId=c.partner_id, type=2
    )
    probes.append(LeakProbe("session.start with a wrong secret", None, wrong))
    return probes


def _found_in(value: str, response: ApiResponse) -> list[str]:
    """Where ``value`` (as is, JSON-escaped or URL-encoded) is in the answer: ``body``, ``header NAME``."""
    forms = {value, value.replace("/", "\\/"), quote(value, safe="")}
    body = response.body.decode("utf-8", "replace")
    places = ["body"] if any(form in body for form in forms) else []
    places += [
        f"header {name}" for name, header in response.headers.items() if any(f in header for f in forms)
    ]
    return places


@security("secrets.never_returned")
def test_partner_secrets_never_appear_in_responses(
    leak_probes: list[LeakProbe], ksentinel_credentials
) -> None:
    c = ksentinel_credentials
    secrets = [s for s in (c.admin_secret, c.user_secret, c.peer_admin_secret) if s]
    leaks = [
        f"{probe.what} ({probe.code}): in the {place}"
        for probe in leak_probes
        for secret in secrets
        for place in _found_in(secret, probe.response)
    ]
    assert not leaks, f"a partner secret came back in a response: {'; '.join(leaks)}"


@security("ks.never_echoed")
def test_ks_values_never_come_back_in_responses(
    leak_probes: list[LeakProbe], ksentinel_contract_settings, ksentinel_advise, ksentinel_record
) -> None:
    """A refused KS echoed in INVALID_KS is advisory (the real Kaltura does it); any other KS is a leak.

    Kaltura's INVALID_KS for an unparsable or forged KS carries the KS string itself (KSID): harmless
    for a KS the server refused, but it copies session strings into logs and proxies, so it is reported
    as an advisory finding, or fails with ``[contract] strict_ks_echo = true``. A KS the server did not
    refuse (a valid session) coming back in an answer is always a failure.
    """
    ours = {probe.sent_ks for probe in leak_probes if probe.sent_ks}
    echoes: list[dict[str, str]] = []
    leaks: list[str] = []
    for probe in leak_probes:
        for ks in sorted(ours):
            for place in _found_in(ks, probe.response):
                refused_ks = ks == probe.sent_ks and refused(probe.response)
                evidence = {
                    "request": probe.what,
                    "code": probe.code,
                    "where": place,
                    "masked_ks": mask_ks(ks),
                }
                if refused_ks:
                    echoes.append(evidence)
                else:
                    leaks.append(f"{probe.what} ({probe.code}): {mask_ks(ks)} in the {place}")
    assert not leaks, f"a KS the server did not refuse came back in a response: {'; '.join(leaks)}"
    if not echoes:
        return
    listed = "; ".join(f"{e['request']} ({e['code']}, {e['where']}: {e['masked_ks']})" for e in echoes)
    answers = f"{len(echoes)} answer{'s' if len(echoes) != 1 else ''}"
    reason = (
        f"the server echoes a refused KS in INVALID_KS ({answers}): "
        f"{listed}; the real Kaltura does (KSID), but it copies session strings into logs and proxies"
    )
    if ksentinel_contract_settings.strict_ks_echo:
        ksentinel_record(rule="strict_ks_echo", findings=echoes)
        pytest.fail(f"{reason} ([contract] strict_ks_echo = true)", pytrace=False)
    pytest.skip(
        ksentinel_advise(f"{reason}; set [contract] strict_ks_echo = true to fail on it", findings=echoes)
    )

"""KS v1/v2 against the official Python client, in both directions."""

from __future__ import annotations

import base64
import time

import pytest
from KalturaClient.Client import KalturaClient

from ksentinel.errors import KsError
from ksentinel.kaltura import ks

SECRET = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"


def _official_v1(user: str, type_: int, privileges: str) -> str:
    return KalturaClient.generateSession(SECRET, user, type_, 101, 3600, privileges).decode()


def _official_v2(user: str, type_: int, privileges: str) -> str:
    return KalturaClient.generateSessionV2(SECRET, user, type_, 101, 3600, privileges).decode()


@pytest.mark.parametrize(
    ("user", "type_", "privileges"),
    [
        ("", 0, ""),
        ("alice@example.com", 2, "edit:*,list:*"),
        ("bob", 0, "*,sview:0_abc/0_def,disableentitlement"),
    ],
)
def test_v1_from_official_client_verifies_and_rebuilds_byte_for_byte(user, type_, privileges):
    token = _official_v1(user, type_, privileges)
    info = ks.verify(token, [SECRET])
    assert (info.version, info.partner_id, info.type, info.user_id, info.privileges) == (
        1,
        101,
        type_,
        user,
        privileges,
    )
    assert abs(info.valid_until - (time.time() + 3600)) < 5
    rebuilt = ks.build_v1(
        SECRET, 101, user, type_, privileges=privileges, valid_until=info.valid_until, rand=info.rand
    )
    assert rebuilt == token


@pytest.mark.parametrize(
    ("user", "type_", "privileges"),
    [
        ("", 0, ""),
        ("alice@example.com", 2, "edit:*,list:*"),
        ("bob smith", 0, "*,sview:0_abc,disableentitlement"),
    ],
)
def test_v2_from_official_client_verifies_and_rebuilds_byte_for_byte(user, type_, privileges):
    token = _official_v2(user, type_, privileges)
    info = ks.verify(token, [SECRET])
    assert (info.version, info.partner_id, info.type, info.user_id, info.privileges) == (
        2,
        101,
        type_,
        user,
        privileges,
    )
    rebuilt = ks.build_v2(
        SECRET,
        101,
        user,
        type_,
        privileges=privileges,
        valid_until=info.valid_until,
        random_bytes=ks.random_from_v2(token, SECRET),
    )
    assert rebuilt == token


def test_our_v2_decrypts_the_way_the_official_client_encrypts():
    # the other direction: decrypt ours with the official client's own primitives (pycryptodome)
    from Crypto.Cipher import AES

    token = ks.build_v2(SECRET, 101, "carol", 2, 600, "list:*")
    raw = base64.urlsafe_b64decode(token)
    assert raw.startswith(b"v2|101|")
    cipher = AES.new(KalturaClient.hash(SECRET.encode())[:16], AES.MODE_CBC, b"\0" * 16)
    plain = cipher.decrypt(raw[len(b"v2|101|") :]).rstrip(b"\0")
    assert plain[:20] == KalturaClient.hash(plain[20:])
    assert b"_u=carol" in plain and b"list=%2A" in plain


def test_our_v1_signature_is_the_official_hash():
    token = ks.build_v1(SECRET, 101, "dave", 2, privileges="list:*", valid_until=2_000_000_000, rand=7)
    decoded = base64.b64decode(token)
    sig, info = decoded.split(b"|", 1)
    assert info == b"101;101;2000000000;2;7;dave;list:*"
    assert sig == KalturaClient.hash(SECRET.encode() + info).hex().encode()


@pytest.mark.parametrize("builder", [ks.build_v1, ks.build_v2])
def test_wrong_secret_is_refused(builder):
    token = builder(SECRET, 101, "u", 2)
    with pytest.raises(KsError) as err:
        ks.verify(token, [OTHER])
    assert err.value.reason == "INVALID_STR"
    assert ks.verify(token, [OTHER, SECRET]).user_id == "u"


@pytest.mark.parametrize("builder", [ks.build_v1, ks.build_v2])
def test_tampered_ks_is_refused(builder):
    token = builder(SECRET, 101, "u", 2)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[-3] ^= 0x01
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(KsError):
        ks.verify(tampered, [SECRET])


@pytest.mark.parametrize(
    "garbage", ["", "not a ks", "djJ8", "djJ8MTAxfA==", base64.b64encode(b"x" * 50).decode()]
)
def test_garbage_is_invalid_str(garbage):
    with pytest.raises(KsError) as err:
        ks.verify(garbage, [SECRET])
    assert err.value.reason == "INVALID_STR"


def test_expiry_and_privileges():
    info = ks.verify(ks.build_v2(SECRET, 101, "u", 0, -10, "edit:0_a/0_b,*"), [SECRET])
    assert info.expired()
    assert info.has_privilege("edit", "0_b") and not info.has_privilege("edit", "0_c")
    assert info.has_privilege("all") and not info.is_admin
    assert not ks.verify(ks.build_v1(SECRET, 101, "u", 2, 60), [SECRET]).expired()

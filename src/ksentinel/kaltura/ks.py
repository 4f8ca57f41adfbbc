"""Build, decode and verify Kaltura sessions (KS), v1 and v2. Pure functions, no I/O.

Wire format (kaltura-api-v3.md section 3):

* v1: ``base64(sha1_hex(secret + info) + "|" + info)`` where ``info`` is
  ``partnerId;partnerId;validUntil;type;rand;userId;privileges[;masterPartnerId;additionalData]``.
* v2: ``base64url("v2|{partnerId}|" + AES-128-CBC(sha1(R + fields) + R + fields))`` with the key
  ``sha1(secret)[:16]``, a zero IV, zero padding, R = 16 random bytes and ``fields`` the URL-encoded
  privileges followed by ``_e`` (validUntil), ``_t`` (type) and ``_u`` (user).

What :func:`build_v1` and :func:`build_v2` produce is byte-for-byte what the official Python client's
``generateSession`` and ``generateSessionV2`` produce for the same time, random part and arguments.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from urllib.parse import parse_qsl, urlencode

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ksentinel.errors import KsError

RANDOM_SIZE = 16
BLOCK = 16
_ZERO_IV = b"\0" * BLOCK
_V2_RESERVED = {
    "_e": "valid_until",
    "_t": "type",
    "_u": "user_id",
    "_m": "master_partner_id",
    "_d": "additional_data",
}


class SessionType(IntEnum):
    """``KalturaSessionType``."""

    USER = 0
    ADMIN = 2


class KsFailure:
    """The server's KS failure names and their numeric codes (``Invalid KS "..", Error "-5,EXPIRED"``)."""

    INVALID_STR = -1
    INVALID_PARTNER = -2
    INVALID_USER = -3
    INVALID_TYPE = -4
    EXPIRED = -5
    LOGOUT = -6
    INVALID_LKS = -7
    EXCEEDED_ACTIONS_LIMIT = -8
    EXCEEDED_RESTRICTED_IP = -9
    LKS_DISABLED = -10
    EXCEEDED_RESTRICTED_URI = -11

    @classmethod
    def code(cls, name: str) -> int:
        return int(getattr(cls, name, -1))


@dataclass(frozen=True)
class KsInfo:
    """The fields of a decoded KS."""

    version: int
    partner_id: int
    valid_until: int
    type: int
    user_id: str = ""
    privileges: str = ""
    rand: str = ""
    master_partner_id: str = ""
    additional_data: str = ""
    raw_fields: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def is_admin(self) -> bool:
        """Any type >= 1 is treated as admin by the server."""
        return self.type >= 1

    def privilege_map(self) -> dict[str, list[str]]:
        """Privileges as ``{name: [values]}`` (``edit:a/b`` gives ``{"edit": ["a", "b"]}``)."""
        result: dict[str, list[str]] = {}
        for item in self.privileges.split(","):
            item = item.strip()
            if not item:
                continue
            if item == "*":
                item = "all:*"
            name, _, value = item.partition(":")
            result.setdefault(name, []).extend(v for v in value.split("/") if v)
        return result

    def has_privilege(self, name: str, value: str | None = None) -> bool:
        values = self.privilege_map().get(name)
        if values is None:
            return False
        return value is None or value in values or "*" in values

    def expired(self, now: float | None = None) -> bool:
        return self.valid_until <= int(time.time() if now is None else now)


@dataclass(frozen=True)
class KsEnvelope:
    """A KS decoded without any secret: its version, partner and the still-signed payload."""

    version: int
    partner_id: int
    payload: bytes
    text: str


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def _to_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _b64decode_any(text: str) -> bytes:
    raw = text.strip().replace("-", "+").replace("_", "/")
    raw += "=" * (-len(raw) % 4)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KsError("INVALID_STR", "KS is not valid base64") from exc


def build_v1(
    secret: str,
    partner_id: int,
    user_id: str = "",
    type: int = SessionType.USER,
    expiry: int = 86400,
    privileges: str = "",
    *,
    now: float | None = None,
    valid_until: int | None = None,
    rand: int | str | None = None,
    extra_fields: Iterable[str] = (),
) -> str:
    """A KS v1 signed with ``secret`` (the partner's admin secret).

    ``valid_until`` wins over ``now + expiry``; ``rand`` defaults to a random int as the official client
    writes; ``extra_fields`` appends masterPartnerId / additionalData as the server does.
    """
    until = valid_until if valid_until is not None else int(time.time() if now is None else now) + expiry
    rand_value = random.randint(0, 0x10000) if rand is None else rand
    fields = [partner_id, partner_id, until, int(type), rand_value, user_id, privileges, *extra_fields]
    info = b";".join(_to_bytes(x) for x in fields)
    signature = binascii.hexlify(_sha1(secret.encode("utf-8") + info))
    return base64.b64encode(signature + b"|" + info).decode("ascii")


def _v2_fields(user_id: str, type: int, valid_until: int, privileges: str, extra: dict[str, str]) -> bytes:
    fields: dict[str, str] = {}
    for privilege in privileges.split(","):
        privilege = privilege.strip()
        if not privilege:
            continue
        if privilege == "*":
            privilege = "all:*"
        name, sep, value = privilege.partition(":")
        fields[name] = value if sep else ""
    fields["_e"] = str(valid_until)
    fields["_t"] = str(int(type))
    fields["_u"] = str(user_id)
    fields.update(extra)
    return urlencode(fields).encode("utf-8")


def _aes(secret: str) -> Cipher[modes.CBC]:
    return Cipher(algorithms.AES(_sha1(secret.encode("utf-8"))[:16]), modes.CBC(_ZERO_IV))


def build_v2(
    secret: str,
    partner_id: int,
    user_id: str = "",
    type: int = SessionType.USER,
    expiry: int = 86400,
    privileges: str = "",
    *,
    now: float | None = None,
    valid_until: int | None = None,
    random_bytes: bytes | None = None,
    master_partner_id: str | None = None,
    additional_data: str | None = None,
) -> str:
    """A KS v2 encrypted with ``secret`` (the partner's admin secret)."""
    until = valid_until if valid_until is not None else int(time.time() if now is None else now) + expiry
    extra: dict[str, str] = {}
    if master_partner_id is not None:
        extra["_m"] = master_partner_id
    if additional_data is not None:
        extra["_d"] = additional_data
    body = (random_bytes if random_bytes is not None else os.urandom(RANDOM_SIZE)) + _v2_fields(
        user_id, type, until, privileges, extra
    )
    message = _sha1(body) + body
    if len(message) % BLOCK:
        message += b"\0" * (BLOCK - len(message) % BLOCK)
    encryptor = _aes(secret).encryptor()
    encrypted = encryptor.update(message) + encryptor.finalize()
    return base64.urlsafe_b64encode(f"v2|{partner_id}|".encode() + encrypted).decode("ascii")


def build(
    secret: str,
    partner_id: int,
    user_id: str = "",
    type: int = SessionType.USER,
    expiry: int = 86400,
    privileges: str = "",
    *,
    version: int = 2,
    now: float | None = None,
) -> str:
    """A KS of the given ``version`` (1 or 2)."""
    if version == 1:
        return build_v1(secret, partner_id, user_id, type, expiry, privileges, now=now)
    if version == 2:
        return build_v2(secret, partner_id, user_id, type, expiry, privileges, now=now)
    raise ValueError(f"unknown KS version {version}")


def decode(ks: str) -> KsEnvelope:
    """Split a KS into version, partner and payload without verifying it (raises ``KsError``)."""
    if not ks or not isinstance(ks, str):
        raise KsError("INVALID_STR", "empty KS")
    data = _b64decode_any(ks)
    if data.startswith(b"v2|"):
        head, sep, payload = data[3:].partition(b"|")
        if not sep or not head.isdigit():
            raise KsError("INVALID_STR", "malformed KS v2 header")
        return KsEnvelope(2, int(head), payload, ks)
    sig, sep, info = data.partition(b"|")
    if not sep or len(sig) != 40:
        raise KsError("INVALID_STR", "malformed KS v1")
    first = info.split(b";", 1)[0]
    try:
        partner = int(first)
    except ValueError as exc:
        raise KsError("INVALID_STR", "malformed KS v1 partner") from exc
    return KsEnvelope(1, partner, data, ks)


def _parse_v1(envelope: KsEnvelope, secrets: Iterable[str]) -> KsInfo:
    sig, _, info = envelope.payload.partition(b"|")
    for secret in secrets:
        expected = binascii.hexlify(_sha1(secret.encode("utf-8") + info))
        if hmac.compare_digest(expected, sig.lower()):
            break
    else:
        raise KsError("INVALID_STR", "KS signature does not match")
    parts = info.decode("utf-8", "replace").split(";")
    if len(parts) < 3:
        raise KsError("INVALID_STR", "KS v1 has too few fields")
    parts += [""] * (9 - len(parts))
    try:
        valid_until = int(parts[2])
        ks_type = int(parts[3] or 0)
    except ValueError as exc:
        raise KsError("INVALID_STR", "KS v1 has a non-numeric field") from exc
    return KsInfo(
        version=1,
        partner_id=envelope.partner_id,
        valid_until=valid_until,
        type=ks_type,
        rand=parts[4],
        user_id=parts[5],
        privileges=parts[6],
        master_partner_id=parts[7],
        additional_data=";".join(parts[8:]) if len(parts) > 9 else parts[8],
    )


def _parse_v2(envelope: KsEnvelope, secrets: Iterable[str]) -> KsInfo:
    payload = envelope.payload
    if not payload or len(payload) % BLOCK:
        raise KsError("INVALID_STR", "KS v2 payload is not a whole number of blocks")
    for secret in secrets:
        decryptor = _aes(secret).decryptor()
        plain = (decryptor.update(payload) + decryptor.finalize()).rstrip(b"\0")
        if len(plain) > 20 and hmac.compare_digest(plain[:20], _sha1(plain[20:])):
            break
    else:
        raise KsError("INVALID_STR", "KS signature does not match")
    fields_text = plain[20 + RANDOM_SIZE :].decode("utf-8", "replace")
    pairs = parse_qsl(fields_text, keep_blank_values=True)
    values: dict[str, str] = {}
    privileges: list[str] = []
    for name, value in pairs:
        if name in _V2_RESERVED:
            values[_V2_RESERVED[name]] = value
        elif name == "all" and value == "*":
            privileges.append("*")
        else:
            privileges.append(f"{name}:{value}" if value else name)
    try:
        valid_until = int(values.get("valid_until", "0"))
        ks_type = int(values.get("type", "0") or 0)
    except ValueError as exc:
        raise KsError("INVALID_STR", "KS v2 has a non-numeric field") from exc
    return KsInfo(
        version=2,
        partner_id=envelope.partner_id,
        valid_until=valid_until,
        type=ks_type,
        user_id=values.get("user_id", ""),
        privileges=",".join(privileges),
        rand=binascii.hexlify(plain[20 : 20 + RANDOM_SIZE]).decode(),
        master_partner_id=values.get("master_partner_id", ""),
        additional_data=values.get("additional_data", ""),
        raw_fields=tuple(pairs),
    )


def verify(ks: str | KsEnvelope, secrets: Iterable[str]) -> KsInfo:
    """Decode ``ks`` and check its signature against any of ``secrets`` (the partner's admin secrets).

    Raises ``KsError("INVALID_STR")`` for an undecodable KS or a signature that no secret matches.
    Expiry is *not* checked here (the server checks it later, see :meth:`KsInfo.expired`).
    """
    envelope = decode(ks) if isinstance(ks, str) else ks
    secrets = [s for s in secrets if s]
    if not secrets:
        raise KsError("INVALID_STR", "no secret to verify the KS with")
    return _parse_v1(envelope, secrets) if envelope.version == 1 else _parse_v2(envelope, secrets)


def random_from_v2(ks: str, secret: str) -> bytes:
    """The 16 random bytes inside a KS v2 (used to rebuild a KS byte-for-byte in tests)."""
    envelope = decode(ks)
    if envelope.version != 2:
        raise KsError("INVALID_STR", "not a KS v2")
    decryptor = _aes(secret).decryptor()
    plain = (decryptor.update(envelope.payload) + decryptor.finalize()).rstrip(b"\0")
    return plain[20 : 20 + RANDOM_SIZE]

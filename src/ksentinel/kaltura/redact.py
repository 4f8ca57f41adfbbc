"""The one place that hides secrets and KS values.

Two mechanisms, used together by logs, reports, metrics and exception messages:

* secrets (admin and user secrets, tokens) are *registered* as soon as ksentinel reads them, and
  every registered value is replaced wherever it appears;
* KS values are *recognised* by shape (base64 that decodes to a v1 ``<sha1 hex>|...`` or a
  ``v2|<partner>|...`` envelope), also when URL-encoded, so even a KS minted by someone else is
  masked.

A masked value keeps a short, stable fingerprint (``KS*a1b2c3``) so two log lines about the same
session can still be correlated without revealing it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

MIN_SECRET_LENGTH = 6
MAX_SLASHES = 24
SENSITIVE_KEYS = frozenset(
    {"ks", "secret", "adminsecret", "usersecret", "admin_secret", "user_secret", "password", "token"}
)

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_secret_pattern: re.Pattern[str] | None = None

# base64 (standard or URL-safe), possibly URL-encoded; a KS is at least ~60 characters.
_KS_CANDIDATE = re.compile(r"(?:[A-Za-z0-9+/_\-]|%2[BbFf]|%3[Dd]){40,}(?:=|%3[Dd]){0,2}")
_V1_HEAD = re.compile(rb"^[0-9a-f]{40}\|")


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:6]


def mask_secret(value: str) -> str:
    """The masked form of a secret."""
    return f"***{_fingerprint(value)}"


def mask_ks(value: str) -> str:
    """The masked form of a KS."""
    return f"KS*{_fingerprint(value)}"


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that :func:`redact` replaces it from now on (short values are ignored).

    For secrets only: a KS is recognised by its shape, so registering every KS a long run mints
    would only grow the pattern (and recompile it) without masking anything more.
    """
    global _secrets, _secret_pattern
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets = _secrets | {value}
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def registered_secrets() -> int:
    """How many secrets :func:`redact` masks by value (KS values are masked by shape, never registered)."""
    return len(_secrets)


def forget_secrets() -> None:
    """Drop every registered secret (tests use this to isolate themselves)."""
    global _secrets, _secret_pattern
    with _lock:
        _secrets = frozenset()
        _secret_pattern = None


def looks_like_ks(candidate: str) -> bool:
    """True when ``candidate`` decodes like a KS v1 or v2 envelope."""
    text = unquote(candidate) if "%" in candidate else candidate
    raw = text.replace("-", "+").replace("_", "/")
    raw += "=" * (-len(raw) % 4)
    try:
        decoded = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return False
    return decoded.startswith(b"v2|") or bool(_V1_HEAD.match(decoded))


def redact(text: str) -> str:
    """``text`` with every registered secret and every KS masked."""
    if not text:
        return text
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(lambda m: mask_secret(m.group(0)), text)
    return _KS_CANDIDATE.sub(lambda m: _mask_ks_in(m.group(0)), text)


def _mask_ks_in(candidate: str) -> str:
    """Mask the KS inside ``candidate``; base64 may contain ``/``, so a KS in a URL path
    (``/ks/<KS>/format/1``) arrives glued to its neighbours and is searched between slashes."""
    if looks_like_ks(candidate):
        return mask_ks(candidate)
    slashes = [i for i, ch in enumerate(candidate) if ch == "/"][:MAX_SLASHES]
    starts = [0, *(i + 1 for i in slashes)]
    ends = [*slashes, len(candidate)]
    for start in starts:
        for end in reversed(ends):
            if end - start >= 40 and looks_like_ks(candidate[start:end]):
                rest = _mask_ks_in(candidate[end:]) if end < len(candidate) else ""
                return candidate[:start] + mask_ks(candidate[start:end]) + rest
    return candidate


def redact_value(key: str, value: Any) -> Any:
    """Mask ``value`` when ``key`` names a secret or a KS; redact it as text otherwise."""
    if key.lower().split(":")[-1] in SENSITIVE_KEYS and isinstance(value, str) and value:
        return mask_ks(value) if looks_like_ks(value) else mask_secret(value)
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return redact_mapping(value)
    if isinstance(value, list | tuple):
        return [redact_value(key, item) for item in value]
    return value


def redact_mapping(params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` (request parameters, JSON bodies) that is safe to show."""
    return {key: redact_value(str(key), value) for key, value in params.items()}


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message of every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Attach :class:`RedactingFilter` to every handler of ``logger`` (the root logger by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())

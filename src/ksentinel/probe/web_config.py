"""TLS and authentication for the exporter: Prometheus' web configuration file (``--web.config.file``).

The file is the one every Prometheus exporter reads (exporter-toolkit's ``docs/web-configuration.md``,
blackbox_exporter's ``--web.config.file``), so the same file and the same Prometheus scrape settings
work here::

    tls_server_config:
      cert_file: server.crt            # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional: mutual TLS
      client_ca_file: clients-ca.crt
      min_version: TLS12
    http_server_config:
      headers:
        X-Content-Type-Options: nosniff
    basic_auth_users:
      prometheus: $2y$10$...           # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')
    rate_limit:                        # optional: a token bucket over all requests (429 beyond)
      interval: 100ms
      burst: 20
    ksentinel_bearer_token_file: token # ksentinel's extension: also accept "Authorization: Bearer"

What differs from exporter-toolkit (Go's TLS is not Python's): ``cipher_suites``,
``curve_preferences`` and ``client_allowed_sans`` are refused with a one-line error rather than
ignored (a restriction that is silently dropped is worse than none), as are the client auth types
OpenSSL cannot express (``RequestClientCert``, ``RequireAnyClientCert``). ``http2`` is accepted and
ignored: the exporter speaks HTTP/1.1. The file is read at start and again when it (or a file it
names) changes, checked at most once a second on a request: a renewed certificate is served from the
next TLS handshake on, new users and tokens apply at once. A changed file that is invalid is
logged in one line and the previous configuration stays; switching TLS on or off needs a restart.

Every problem at start is one line naming the file and the key (``ConfigError``: exit 2).
Secrets (hashes, passwords, tokens) never appear in messages or logs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import ssl
import tempfile
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from ksentinel.config.values import did_you_mean
from ksentinel.errors import ConfigError
from ksentinel.probe.http import Request, Response

log = logging.getLogger(__name__)

#: ksentinel's extension key: a file holding one bearer token (whitespace around it is ignored).
BEARER_TOKEN_FILE_KEY = "ksentinel_bearer_token_file"
TOP_KEYS = (
    "tls_server_config",
    "http_server_config",
    "basic_auth_users",
    "rate_limit",
    BEARER_TOKEN_FILE_KEY,
)
TLS_KEYS = (
    "cert",
    "key",
    "client_ca",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
)
#: exporter-toolkit keys that Python's ssl module cannot honour as Go does: refused, never ignored
TLS_UNSUPPORTED = {
    "cipher_suites": "Go cipher suite names have no exact OpenSSL equivalent here",
    "curve_preferences": "Python's ssl module sets one curve, not a preference list",
    "client_allowed_sans": "client certificate SAN matching is not implemented; use a dedicated client CA",
}
HTTP_KEYS = ("http2", "headers")
RATE_KEYS = ("interval", "burst")
#: the headers exporter-toolkit lets a web config set, with their allowed values (None: any)
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
CLIENT_AUTH_UNSUPPORTED = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
_BCRYPT = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
BCRYPT_MAX_PASSWORD = 72
AUTH_CACHE_SIZE = 256
RELOAD_CHECK = 1.0


@dataclass(frozen=True)
class TlsSettings:
    cert_file: Path | None
    key_file: Path | None
    cert: str | None
    key: str | None = field(repr=False)
    client_ca_file: Path | None
    client_ca: str | None
    client_auth_type: str
    min_version: str
    max_version: str
    prefer_server_cipher_suites: bool

    def files(self) -> tuple[Path, ...]:
        return tuple(p for p in (self.cert_file, self.key_file, self.client_ca_file) if p is not None)


@dataclass(frozen=True)
class RateLimit:
    interval: float  # seconds per token
    burst: int


@dataclass(frozen=True)
class WebConfig:
    """A validated web configuration file; :meth:`ssl_context` is None without TLS."""

    source: Path
    tls: TlsSettings | None = None
    headers: dict[str, str] = field(default_factory=dict)
    users: dict[str, bytes] = field(default_factory=dict, repr=False)  # username -> bcrypt hash
    bearer_token_file: Path | None = None
    bearer_token: bytes | None = field(default=None, repr=False)
    rate_limit: RateLimit | None = None

    @property
    def auth_required(self) -> bool:
        return bool(self.users) or self.bearer_token is not None

    def ssl_context(self) -> ssl.SSLContext | None:
        return None if self.tls is None else _ssl_context(self.tls, self.source)

    def files(self) -> tuple[Path, ...]:
        """Every file the configuration depends on (for change detection)."""
        tls_files = self.tls.files() if self.tls is not None else ()
        token = (self.bearer_token_file,) if self.bearer_token_file is not None else ()
        return (self.source, *tls_files, *token)

    def describe(self) -> str:
        """What the file switches on, for the startup banner (no secrets)."""
        parts = []
        if self.tls is not None:
            parts.append(
                "TLS" + (" with client certificates" if self.tls.client_auth_type != "NoClientCert" else "")
            )
        if self.users:
            parts.append(f"basic auth ({len(self.users)} user{'s' if len(self.users) != 1 else ''})")
        if self.bearer_token is not None:
            parts.append("bearer token")
        if self.rate_limit is not None:
            parts.append("rate limit")
        return ", ".join(parts) or "nothing (no TLS, no authentication)"


# --- loading ------------------------------------------------------------------------------------


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    """Read and validate ``path``; every problem is a one-line ``ConfigError`` naming the key."""
    source = Path(path)
    name = str(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read the web configuration file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{name}: not valid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    _mapping(name, "", data)
    _known(name, "", data, TOP_KEYS)
    base = source.parent
    tls = _tls(name, base, data.get("tls_server_config"))
    headers = _http(name, data.get("http_server_config"))
    users = _users(name, data.get("basic_auth_users"))
    rate = _rate(name, data.get("rate_limit"))
    token_file, token = _bearer(name, base, data.get(BEARER_TOKEN_FILE_KEY))
    config = WebConfig(source, tls, headers, users, token_file, token, rate)
    if tls is not None:
        _ssl_context(tls, source)  # certificate, key and CA load now, or the error is one line now
    return config


def _mapping(name: str, key: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{name}: {key or 'the file'}: expected a mapping of names to values")
    return value


def _known(name: str, prefix: str, table: Mapping[str, object], known: tuple[str, ...]) -> None:
    for key in table:
        if key not in known:
            detail = did_you_mean(key, known, otherwise=f"; known keys: {', '.join(known)}")
            raise ConfigError(f"{name}: {prefix}{_shown(key)}: unknown key{detail}")


def _shown(text: str) -> str:
    return text[:60].replace("\n", " ").replace("\r", " ")


def _string(name: str, key: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name}: {key}: expected a non-empty string")
    return value


def _path(name: str, key: str, base: Path, value: object) -> Path:
    path = Path(_string(name, key, value))
    return path if path.is_absolute() else base / path


def _tls(name: str, base: Path, raw: object) -> TlsSettings | None:
    if raw is None:
        return None
    table = _mapping(name, "tls_server_config", raw)
    _known(name, "tls_server_config.", table, TLS_KEYS)
    for key, why in TLS_UNSUPPORTED.items():
        if table.get(key) not in (None, []):
            raise ConfigError(f"{name}: tls_server_config.{key}: not supported by ksentinel probe ({why})")
    enabling = ("cert", "key", "client_ca", "cert_file", "key_file", "client_ca_file", "client_auth_type")
    if not any(table.get(k) not in (None, "") for k in enabling):
        return None  # exporter-toolkit: a TLS section without any of these is plain HTTP

    def one(inline: str, file: str, what: str) -> tuple[str | None, Path | None]:
        text, path = table.get(inline), table.get(file)
        if text not in (None, "") and path not in (None, ""):
            raise ConfigError(f"{name}: tls_server_config: set {inline} or {file}, not both")
        if text not in (None, ""):
            return _string(name, f"tls_server_config.{inline}", text), None
        if path not in (None, ""):
            return None, _path(name, f"tls_server_config.{file}", base, path)
        if what:
            raise ConfigError(f"{name}: tls_server_config: missing one of {inline} or {file} ({what})")
        return None, None

    cert, cert_file = one("cert", "cert_file", "the server certificate")
    key, key_file = one("key", "key_file", "the server's private key")
    client_ca, client_ca_file = one("client_ca", "client_ca_file", "")
    auth = table.get("client_auth_type") or "NoClientCert"
    if auth in CLIENT_AUTH_UNSUPPORTED:
        raise ConfigError(
            f"{name}: tls_server_config.client_auth_type: {auth} is not supported by ksentinel probe "
            "(OpenSSL verifies what it requests); use RequireAndVerifyClientCert"
        )
    if auth not in CLIENT_AUTH:
        raise ConfigError(
            f"{name}: tls_server_config.client_auth_type: invalid '{_shown(str(auth))}' "
            f"(one of {', '.join(CLIENT_AUTH)})"
        )
    if (client_ca or client_ca_file) and auth == "NoClientCert":
        raise ConfigError(
            f"{name}: tls_server_config: a client CA is configured without client_auth_type "
            "(RequireAndVerifyClientCert or VerifyClientCertIfGiven)"
        )
    versions = {}
    for key_name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        version = table.get(key_name) or default
        if version not in TLS_VERSIONS:
            raise ConfigError(
                f"{name}: tls_server_config.{key_name}: unknown TLS version '{_shown(str(version))}' "
                f"(one of {', '.join(TLS_VERSIONS)})"
            )
        versions[key_name] = version
    if TLS_VERSIONS[versions["min_version"]] > TLS_VERSIONS[versions["max_version"]]:
        raise ConfigError(f"{name}: tls_server_config: min_version is above max_version")
    prefer = table.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise ConfigError(f"{name}: tls_server_config.prefer_server_cipher_suites: expected true or false")
    return TlsSettings(
        cert_file,
        key_file,
        cert,
        key,
        client_ca_file,
        client_ca,
        auth,
        versions["min_version"],
        versions["max_version"],
        prefer,
    )


def _http(name: str, raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    table = _mapping(name, "http_server_config", raw)
    _known(name, "http_server_config.", table, HTTP_KEYS)
    if "http2" in table and not isinstance(table["http2"], bool):
        raise ConfigError(f"{name}: http_server_config.http2: expected true or false")
    raw_headers = table.get("headers")
    if raw_headers is None:
        return {}
    headers = _mapping(name, "http_server_config.headers", raw_headers)
    out = {}
    for header, value in headers.items():
        if header not in HEADERS:
            raise ConfigError(
                f"{name}: http_server_config.headers: HTTP header '{_shown(header)}' can not be configured "
                f"(one of {', '.join(HEADERS)})"
            )
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise ConfigError(f"{name}: http_server_config.headers.{header}: expected a one-line string")
        allowed = HEADERS[header]
        if allowed is not None and value not in allowed:
            raise ConfigError(
                f"{name}: http_server_config.headers.{header}: invalid value '{_shown(value)}' "
                f"(one of {', '.join(allowed)})"
            )
        if value:  # blank: unset, as in exporter-toolkit
            out[header] = value
    return out


def _users(name: str, raw: object) -> dict[str, bytes]:
    if raw is None:
        return {}
    table = _mapping(name, "basic_auth_users", raw)
    users = {}
    for user, hashed in table.items():
        if not user or ":" in user or any(ord(c) < 32 for c in user):
            raise ConfigError(f"{name}: basic_auth_users: invalid user name '{_shown(user)}'")
        match = _BCRYPT.match(hashed) if isinstance(hashed, str) else None
        if match is None or not 4 <= int(match.group(1)) <= 31:
            # the value is a secret: never shown
            raise ConfigError(
                f"{name}: basic_auth_users.{_shown(user)}: not a bcrypt hash "
                "(make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')"
            )
        users[user] = hashed.encode("ascii")
    return users


def parse_duration(text: str) -> float:
    """A Go duration (``1s``, ``250ms``, ``1m30s``, ``0``) in seconds; ValueError if it is not one."""
    text = text.strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise ValueError(text)
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not text:
        raise ValueError(text)
    return total


def _rate(name: str, raw: object) -> RateLimit | None:
    if raw is None:
        return None
    table = _mapping(name, "rate_limit", raw)
    _known(name, "rate_limit.", table, RATE_KEYS)
    interval_raw = table.get("interval", "0")
    try:
        interval = parse_duration(str(interval_raw)) if not isinstance(interval_raw, bool) else -1.0
    except ValueError:
        interval = -1.0
    if interval < 0:
        raise ConfigError(
            f"{name}: rate_limit.interval: expected a duration such as 1s or 100ms, got '{_shown(str(interval_raw))}'"
        )
    if interval == 0:
        return None  # "set to 0 to disable rate limiter"
    burst = table.get("burst")
    if not isinstance(burst, int) or isinstance(burst, bool) or burst < 1:
        raise ConfigError(f"{name}: rate_limit.burst: expected a whole number of at least 1")
    return RateLimit(interval, burst)


def _bearer(name: str, base: Path, raw: object) -> tuple[Path | None, bytes | None]:
    if raw is None:
        return None, None
    path = _path(name, BEARER_TOKEN_FILE_KEY, base, raw)
    try:
        token = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(
            f"{name}: {BEARER_TOKEN_FILE_KEY}: cannot read {path}: {exc.strerror or exc}"
        ) from None
    if not token:
        raise ConfigError(f"{name}: {BEARER_TOKEN_FILE_KEY}: {path} is empty")
    if any(c < 0x21 or c > 0x7E for c in token):
        raise ConfigError(
            f"{name}: {BEARER_TOKEN_FILE_KEY}: the token in {path} must be one line of printable ASCII"
        )
    return path, token


def _ssl_context(tls: TlsSettings, source: Path) -> ssl.SSLContext:
    name = str(source)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.minimum_version = TLS_VERSIONS[tls.min_version]
        context.maximum_version = TLS_VERSIONS[tls.max_version]
    except (ValueError, ssl.SSLError) as exc:
        raise ConfigError(f"{name}: tls_server_config: TLS versions not available here: {exc}") from None
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])
    with _pem_files(tls) as (cert_file, key_file):
        try:
            context.load_cert_chain(cert_file, key_file)
        except FileNotFoundError as exc:
            raise ConfigError(
                f"{name}: tls_server_config: cannot read {exc.filename}: {exc.strerror}"
            ) from None
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"{name}: tls_server_config: cannot load the certificate and key "
                f"({getattr(exc, 'reason', None) or exc.strerror or 'not a matching PEM certificate and key'})"
            ) from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if context.verify_mode != ssl.CERT_NONE:
        try:
            if tls.client_ca_file is not None:
                context.load_verify_locations(cafile=str(tls.client_ca_file))
            elif tls.client_ca is not None:
                context.load_verify_locations(cadata=tls.client_ca)
            else:  # as Go does without ClientCAs: the system's roots
                context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        except FileNotFoundError as exc:
            raise ConfigError(
                f"{name}: tls_server_config.client_ca_file: cannot read {exc.filename}"
            ) from None
        except (ssl.SSLError, OSError, ValueError):
            raise ConfigError(f"{name}: tls_server_config: the client CA is not a PEM certificate") from None
    return context


@contextlib.contextmanager
def _pem_files(tls: TlsSettings) -> Iterator[tuple[str, str]]:
    """The certificate and key as file names; inline PEM goes to private temporary files, removed at once."""
    made: list[str] = []
    try:

        def file_of(path: Path | None, text: str | None) -> str:
            if path is not None:
                return str(path)
            fd, temp = tempfile.mkstemp(prefix="ksentinel-web-", suffix=".pem")
            made.append(temp)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text or "")
            return temp

        yield file_of(tls.cert_file, tls.cert), file_of(tls.key_file, tls.key)
    finally:
        for temp in made:
            with contextlib.suppress(OSError):
                os.unlink(temp)


# --- serving --------------------------------------------------------------------------------------


class WebGuard:
    """Applies a :class:`WebConfig` to every request: rate limit, then authentication.

    ``await guard(request)`` returns None to let the request through, else the refusal (401 with
    ``WWW-Authenticate``, 429 beyond the rate limit). Basic auth checks bcrypt as exporter-toolkit
    does: an unknown user is checked against a dummy hash (no user enumeration by timing), one
    check at a time in a worker thread (bcrypt costs ~70 ms at cost 10; the event loop keeps
    serving), and results are cached under a keyed digest of user, hash and password (no
    password is kept) so that Prometheus' scrapes cost one check, not one per scrape.
    """

    def __init__(self, config: WebConfig, *, clock: Any = time.monotonic) -> None:
        self.config = config
        self.context = config.ssl_context()
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._bcrypt_lock: asyncio.Lock | None = None
        self._dummy: bytes | None = None
        self._tokens = float(config.rate_limit.burst) if config.rate_limit else 0.0
        self._refilled = clock()
        self._checked = clock()
        self._stamps = _stamps(config.files())
        self._reload_error = ""

    @property
    def headers(self) -> dict[str, str]:
        return self.config.headers

    async def __call__(self, request: Request) -> Response | None:
        self._maybe_reload()
        config = self.config
        if config.rate_limit is not None and not self._take(config.rate_limit):
            return Response.text(429, "Too Many Requests")
        if not config.auth_required:
            return None
        if await self._authorized(request.headers.get("authorization", "")):
            return None
        response = Response.text(401, "Unauthorized")
        schemes = [
            s for s, on in (("Basic", bool(config.users)), ("Bearer", config.bearer_token is not None)) if on
        ]
        response.headers["WWW-Authenticate"] = ", ".join(schemes)
        return response

    # rate limit: a token bucket of ``burst`` tokens, one more every ``interval`` seconds
    def _take(self, rate: RateLimit) -> bool:
        now = self._clock()
        self._tokens = min(float(rate.burst), self._tokens + (now - self._refilled) / rate.interval)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    async def _authorized(self, header: str) -> bool:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        scheme = scheme.lower()
        config = self.config
        if scheme == "bearer" and config.bearer_token is not None:
            return _same(value.encode("utf-8", "surrogateescape"), config.bearer_token)
        if scheme == "basic" and config.users:
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return False
            user, sep, password = decoded.partition(":")
            return bool(sep) and await self._check_basic(user, password)
        return False

    async def _check_basic(self, user: str, password: str) -> bool:
        hashed = None
        for name, candidate in self.config.users.items():  # every name compared: no early exit
            if _same(name.encode("utf-8"), user.encode("utf-8", "surrogateescape")):
                hashed = candidate
        known = hashed is not None
        if hashed is None:
            hashed = await self._dummy_hash()
        secret = password.encode("utf-8", "surrogateescape")
        cache_key = hmac.new(
            self._key, b"\0".join((user.encode("utf-8", "surrogateescape"), hashed, secret)), hashlib.sha256
        ).digest()
        cached = self._cache.get(cache_key)
        if cached is not None:
            self._cache.move_to_end(cache_key)
        else:
            if self._bcrypt_lock is None:
                self._bcrypt_lock = asyncio.Lock()
            async with self._bcrypt_lock:
                cached = self._cache.get(cache_key)
                if cached is None:
                    cached = await asyncio.to_thread(_bcrypt_ok, secret, hashed)
                    self._cache[cache_key] = cached
                    while len(self._cache) > AUTH_CACHE_SIZE:
                        self._cache.popitem(last=False)
        return known and cached

    async def _dummy_hash(self) -> bytes:
        if self._dummy is None:
            cost = min((int(h[4:6]) for h in self.config.users.values()), default=10)
            self._dummy = await asyncio.to_thread(
                bcrypt.hashpw, secrets.token_bytes(16), bcrypt.gensalt(cost)
            )
        return self._dummy

    # reload: the file and the files it names, when their modification times change
    def _maybe_reload(self) -> None:
        now = self._clock()
        if now - self._checked < RELOAD_CHECK:
            return
        self._checked = now
        stamps = _stamps(self.config.files())
        if stamps == self._stamps:
            return
        self._stamps = stamps
        try:
            fresh = load_web_config(self.config.source)
        except ConfigError as exc:
            self._warn_reload(f"web configuration not reloaded, the previous one stays: {exc}")
            return
        if (fresh.tls is None) != (self.config.tls is None):
            self._warn_reload(
                f"{fresh.source}: switching TLS on or off needs a restart; the previous configuration stays"
            )
            return
        self._stamps = _stamps(fresh.files())
        if fresh.tls is not None and self.context is not None:
            try:
                # new handshakes use the renewed certificate and key; settings need a restart
                with _pem_files(fresh.tls) as (cert_file, key_file):
                    self.context.load_cert_chain(cert_file, key_file)
            except (ssl.SSLError, OSError):
                self._warn_reload(
                    f"{fresh.source}: the renewed certificate and key did not load; kept the old ones"
                )
                return
            if _tls_settings_changed(fresh.tls, self.config.tls):
                log.warning(
                    "%s: TLS settings other than the certificate and key apply after a restart", fresh.source
                )
        if fresh.rate_limit != self.config.rate_limit:
            self._tokens = float(fresh.rate_limit.burst) if fresh.rate_limit else 0.0
        self.config = fresh
        self._cache.clear()
        self._dummy = None
        self._reload_error = ""
        log.warning("%s: web configuration reloaded (%s)", fresh.source, fresh.describe())

    def _warn_reload(self, message: str) -> None:
        if message != self._reload_error:
            self._reload_error = message
            log.error("%s", message)


def _tls_settings_changed(new: TlsSettings, old: TlsSettings | None) -> bool:
    if old is None:
        return True
    keep = (
        "client_ca_file",
        "client_ca",
        "client_auth_type",
        "min_version",
        "max_version",
        "prefer_server_cipher_suites",
    )
    return any(getattr(new, k) != getattr(old, k) for k in keep)


def _stamps(files: tuple[Path, ...]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in files:
        try:
            st = path.stat()
            out.append((str(path), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(path), -1, -1))
    return tuple(out)


def _same(given: bytes, expected: bytes) -> bool:
    """Constant-time equality that does not reveal the expected length either."""
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected).digest())


def _bcrypt_ok(password: bytes, hashed: bytes) -> bool:
    if len(password) > BCRYPT_MAX_PASSWORD:  # bcrypt only ever hashed 72 bytes; bcrypt 5 refuses more
        return False
    try:
        return bool(bcrypt.checkpw(password, hashed))
    except ValueError:
        return False

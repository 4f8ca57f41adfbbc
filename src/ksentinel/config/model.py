"""The configuration's data: :class:`Config`, :class:`TargetConfig`, :class:`Target` and :class:`Secret`."""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ksentinel.kaltura.redact import mask_secret, register_secret

CONFIG_FILENAME = "ksentinel.toml"
DEFAULT_ADMIN_SECRET_ENV = "KSENTINEL_ADMIN_SECRET"
DEFAULT_USER_SECRET_ENV = "KSENTINEL_USER_SECRET"
DEFAULT_PEER_ADMIN_SECRET_ENV = "KSENTINEL_PEER_ADMIN_SECRET"
DEFAULT_TIMEOUT = 30.0
DEFAULT_READY_TIMEOUT = 300.0
REFERENCE_READY_TIMEOUT = 60.0
DEFAULT_KS_VERSION = 2
ADHOC_TARGET = "adhoc"
EMBEDDED_TARGET = "embedded"
#: How many timestamped run folders ``reports/`` keeps (``[reports] keep``; 0 = never prune).
DEFAULT_REPORTS_KEEP = 20

#: What a target is (docs/production.md): ``production`` runs read-only probes and contract checks
#: (unless ``allow_writes``) and refuses ``ksentinel load`` without ``--allow-production``.
PRODUCTION, STAGING, TEST = "production", "staging", "test"
ENVIRONMENTS = (PRODUCTION, STAGING, TEST)
#: A ``[targets.NAME]`` or ``--url`` target without ``environment``; the embedded platform is ``test``.
DEFAULT_ENVIRONMENT = STAGING
REFERENCE_ENVIRONMENT = TEST
#: Requests per second a staging or production target gets without ``max_rps`` (``None`` = no cap,
#: the default of ``test`` targets and of staging targets on a loopback address).
DEFAULT_MAX_RPS = 10.0
MAX_RPS_LIMIT = 100_000.0
UNLIMITED = "unlimited"

ENV_CONFIG = "KSENTINEL_CONFIG"
ENV_TARGET = "KSENTINEL_TARGET"
ENV_URL = "KSENTINEL_URL"
ENV_PARTNER_ID = "KSENTINEL_PARTNER_ID"
ENV_PEER_PARTNER_ID = "KSENTINEL_PEER_PARTNER_ID"
ENV_TIMEOUT = "KSENTINEL_TIMEOUT"
ENV_READY_TIMEOUT = "KSENTINEL_READY_TIMEOUT"
ENV_KS_VERSION = "KSENTINEL_KS_VERSION"
ENV_ENVIRONMENT = "KSENTINEL_ENVIRONMENT"
ENV_ALLOW_WRITES = "KSENTINEL_ALLOW_WRITES"
ENV_MAX_RPS = "KSENTINEL_MAX_RPS"
ENV_TARGET_NAME = "KSENTINEL_TARGET_NAME"

OPAQUE_SECTIONS = ("slo", "contract", "load", "probes", "dashboards", "reference")
TOP_LEVEL_KEYS = ("targets", "default_target", "reports", *OPAQUE_SECTIONS)
REPORTS_KEYS = ("keep",)
TARGET_KEYS = (
    "url",
    "partner_id",
    "admin_secret_env",
    "user_secret_env",
    "peer_partner_id",
    "peer_admin_secret_env",
    "timeout",
    "ready_timeout",
    "ks_version",
    "environment",
    "allow_writes",
    "max_rps",
    "admin_secret_file",
    "user_secret_file",
    "peer_admin_secret_file",
)
# (sources key, label in messages, env-name key, file key)
SECRET_FIELDS = (
    ("admin_secret", "admin secret", "admin_secret_env", "admin_secret_file"),
    ("user_secret", "user secret", "user_secret_env", "user_secret_file"),
    ("peer_admin_secret", "peer admin secret", "peer_admin_secret_env", "peer_admin_secret_file"),
)
ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
TARGET_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+\Z")
#: ``--target-name``: it becomes the ``target`` label of every probe series, so a plain name
ADHOC_NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}\Z")


class Secret:
    """A secret value: masked in ``repr``/``str``/f-strings, the value only through :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("a Secret needs a non-empty string")
        register_secret(value)
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return mask_secret(self._value)

    def __repr__(self) -> str:
        return f"Secret({mask_secret(self._value)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))


@dataclass(frozen=True)
class TargetConfig:
    """One validated ``[targets.NAME]`` table; ``explicit`` holds the keys the file sets."""

    name: str
    url: str
    partner_id: int
    admin_secret_env: str = DEFAULT_ADMIN_SECRET_ENV
    user_secret_env: str = DEFAULT_USER_SECRET_ENV
    peer_partner_id: int | None = None
    peer_admin_secret_env: str = DEFAULT_PEER_ADMIN_SECRET_ENV
    timeout: float = DEFAULT_TIMEOUT
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    ks_version: int = DEFAULT_KS_VERSION
    environment: str = DEFAULT_ENVIRONMENT
    allow_writes: bool = False
    #: ``None`` = "unlimited" when ``max_rps`` is in ``explicit``, else the environment's default
    max_rps: float | None = None
    admin_secret_file: Path | None = None
    user_secret_file: Path | None = None
    peer_admin_secret_file: Path | None = None
    explicit: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ReportsConfig:
    """The validated ``[reports]`` table; ``explicit`` holds the keys the file sets."""

    #: timestamped run folders ``reports/`` keeps; older ones are removed (0 = never)
    keep: int = DEFAULT_REPORTS_KEEP
    explicit: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Config:
    """A loaded ``ksentinel.toml`` (or the empty configuration when there is none).

    ``source`` says how the file was found (or where it was looked for); the opaque sections are the
    raw tables, ``{}`` when absent, validated by the parts that use them.
    """

    path: Path | None = None
    source: str = ""
    targets: Mapping[str, TargetConfig] = field(default_factory=dict)
    default_target: str | None = None
    reports: ReportsConfig = field(default_factory=ReportsConfig)
    slo: Mapping[str, Any] = field(default_factory=dict)
    contract: Mapping[str, Any] = field(default_factory=dict)
    load: Mapping[str, Any] = field(default_factory=dict)
    probes: Mapping[str, Any] = field(default_factory=dict)
    dashboards: Mapping[str, Any] = field(default_factory=dict)
    reference: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How the file is named in sources and messages."""
        return self.path.name if self.path else CONFIG_FILENAME


@dataclass(frozen=True)
class Target:
    """Everything a driver needs to talk to one platform."""

    name: str
    url: str
    partner_id: int
    admin_secret: Secret | None = None
    user_secret: Secret | None = None
    peer_partner_id: int | None = None
    peer_admin_secret: Secret | None = None
    timeout: float = DEFAULT_TIMEOUT
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    ks_version: int = DEFAULT_KS_VERSION
    embedded: bool = False
    #: ``production``, ``staging`` or ``test`` (:data:`ENVIRONMENTS`); what runs may do there
    environment: str = REFERENCE_ENVIRONMENT
    #: on ``production`` only: let probes (and contract checks) run flows that write
    allow_writes: bool = False
    #: requests per second this process sends the target through the HTTP seam (``None`` = no cap)
    max_rps: float | None = None
    #: an ad-hoc ``--url`` target (its name is ``adhoc`` unless ``--target-name`` gives one)
    adhoc: bool = False

    @property
    def production(self) -> bool:
        return self.environment == PRODUCTION

    @property
    def writes_allowed(self) -> bool:
        """Flows that create, change or delete objects may run: not production, or ``allow_writes``."""
        return self.environment != PRODUCTION or self.allow_writes

    @classmethod
    def for_reference(
        cls,
        url: str,
        partner_id: int,
        admin_secret: str | Secret,
        user_secret: str | Secret | None = None,
        peer_partner_id: int | None = None,
        peer_admin_secret: str | Secret | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ready_timeout: float = REFERENCE_READY_TIMEOUT,
        ks_version: int = DEFAULT_KS_VERSION,
    ) -> Target:
        """The target for an embedded reference platform the CLI has just started.

        Its conversion takes seconds (``ready_after``, 2 s by default), so ``ready_timeout`` is a minute
        rather than a real Kaltura's five: a broken conversion must not hang a demo for long. It is a
        ``test`` target without a request-rate cap.
        """
        return cls(
            name=EMBEDDED_TARGET,
            url=url.rstrip("/"),
            partner_id=partner_id,
            admin_secret=_as_secret(admin_secret),
            user_secret=_as_secret(user_secret),
            peer_partner_id=peer_partner_id,
            peer_admin_secret=_as_secret(peer_admin_secret),
            timeout=timeout,
            ready_timeout=ready_timeout,
            ks_version=ks_version,
            embedded=True,
        )


@dataclass(frozen=True)
class ResolvedTarget:
    """The chosen target (``None`` when the embedded platform is to be used) and where each value
    came from (``flag --url``, ``env KSENTINEL_URL``, ``ksentinel.toml [targets.staging]``, ...)."""

    target: Target | None
    sources: Mapping[str, str]
    #: secrets the target needs that are not set (``require_secrets=False`` only): key -> the
    #: environment variable to set (``{"admin_secret": "KSENTINEL_ADMIN_SECRET"}``)
    missing: Mapping[str, str] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return self.target is None


def default_max_rps(environment: str, url: str) -> float | None:
    """The cap a target gets without ``max_rps``: none for ``test`` targets and for a ``staging``
    target on a loopback address (a platform on this machine), :data:`DEFAULT_MAX_RPS` otherwise
    (a ``production`` target on loopback is most likely a tunnel to the real thing)."""
    if environment == TEST or (environment == STAGING and is_loopback(url)):
        return None
    return DEFAULT_MAX_RPS


def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _as_secret(value: str | Secret | None) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    return Secret(value)

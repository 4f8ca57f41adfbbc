"""Sessions for flows: KS built locally from the partner's secret, reused and refreshed before expiry.

Building a KS locally costs no API call, so a probe or a load user does not hammer ``session.start``
(the session flow exercises that action on purpose). A KS is refreshed when less than a quarter of
its lifetime is left.

Because a KS is built locally, a wrong secret or partner id shows only when the target refuses it
(``INVALID_KS``), or refuses ``session.start`` (``START_SESSION_ERROR``; an unknown or blocked partner:
``SERVICE_FORBIDDEN_CONTENT_BLOCKED``). :meth:`Sessions.refused` tells such a configuration error
from a platform that refuses a valid session, and :class:`SessionError` carries it: a run that
cannot start a session tested nothing, so it is an error of the run, not a failure of the API.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ksentinel.errors import ConfigError, KsentinelError
from ksentinel.kaltura import ks as ks_lib
from ksentinel.kaltura.redact import mask_ks, mask_secret, register_secret
from ksentinel.kaltura.transport import TransportTimeout

if TYPE_CHECKING:
    from ksentinel.config import Target
    from ksentinel.kaltura.api import KalturaApi

ADMIN, USER = 2, 0
DEFAULT_EXPIRY = 3600
MAX_POOLED = 64
#: What a Kaltura server answers when it will not start a session: a KS it does not accept, a
#: wrong secret for ``session.start``, an unknown (or blocked) partner.
SESSION_CODES = frozenset({"INVALID_KS", "START_SESSION_ERROR", "SERVICE_FORBIDDEN_CONTENT_BLOCKED"})
#: What a Kaltura answers when the partner id names no (active) partner (kaltura/server's
#: ``kPermissionManager`` refuses before the action runs; user and partner services say INVALID_PARTNER_ID).
UNKNOWN_PARTNER_CODES = frozenset({"SERVICE_FORBIDDEN_CONTENT_BLOCKED", "INVALID_PARTNER_ID"})
#: What it answers ``session.start`` with a secret that is not the partner's (``SessionService::startAction``).
WRONG_SECRET_CODES = frozenset({"START_SESSION_ERROR"})


def which_is_wrong(code: str, secret: str = "admin secret") -> str:
    """The question a refused ``session.start`` asks of the configuration, by its error code."""
    if code in UNKNOWN_PARTNER_CODES:
        return "is the partner id right?"
    if code in WRONG_SECRET_CODES:
        return f"is the {secret} right?"
    return f"is the partner id or the {secret} right?"


class SessionError(ConfigError):
    """The target refuses to start a session with the configured credentials (secret or partner id).

    ``code`` is the Kaltura code the flow met (``INVALID_KS``, ``START_SESSION_ERROR``,
    ``SERVICE_FORBIDDEN_CONTENT_BLOCKED``); ``step`` the step that met it.
    """

    def __init__(self, message: str, *, code: str, step: str = "") -> None:
        self.code = code
        self.step = step
        super().__init__(message)


@dataclass(frozen=True)
class Credentials:
    """What flows may use to open sessions; secrets never leave this object except as KS."""

    partner_id: int
    admin_secret: str
    user_secret: str | None = None
    peer_partner_id: int | None = None
    peer_admin_secret: str | None = None
    ks_version: int = 2

    def __post_init__(self) -> None:
        for secret in (self.admin_secret, self.user_secret, self.peer_admin_secret):
            register_secret(secret)

    @property
    def has_peer(self) -> bool:
        return self.peer_partner_id is not None and bool(self.peer_admin_secret)

    def __repr__(self) -> str:
        return f"Credentials(partner_id={self.partner_id}, admin_secret={mask_secret(self.admin_secret)}, peer={self.peer_partner_id})"


def credentials_of(target: Target) -> Credentials:
    """The credentials of a resolved target; a one-line ``ConfigError`` when it has no admin secret."""
    if target.admin_secret is None:
        raise ConfigError(f"target {target.name!r} has no admin secret (set KSENTINEL_ADMIN_SECRET)")
    return Credentials(
        target.partner_id,
        target.admin_secret.reveal(),
        target.user_secret.reveal() if target.user_secret else None,
        target.peer_partner_id,
        target.peer_admin_secret.reveal() if target.peer_admin_secret else None,
        target.ks_version,
    )


class Sessions:
    """A small thread-safe pool of KS keyed by (partner, user, type, privileges)."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        expiry: int = DEFAULT_EXPIRY,
        user_prefix: str = "ksentinel",
        track: bool = False,
        max_pooled: int = MAX_POOLED,
    ) -> None:
        self.credentials = credentials
        #: the pool keeps this many KS, the most recently used (however many users flows invent)
        self.max_pooled = max_pooled
        self.expiry = expiry
        self.user_prefix = user_prefix
        self._pool: dict[tuple[int, str, int, str], tuple[str, float]] = {}
        self._lock = threading.Lock()
        #: with ``track``, every KS handed out (a bounded run such as the contract suite ends them all
        #: with :meth:`end_all`); a long-running probe does not track
        self.track = track
        self._issued: dict[str, float] = {}

    def _get(self, partner_id: int, secret: str, user: str, session_type: int, privileges: str) -> str:
        key = (partner_id, user, session_type, privileges)
        now = time.time()
        with self._lock:
            cached = self._pool.get(key)
            if cached and cached[1] - now > self.expiry / 4:
                self._pool[key] = self._pool.pop(key)  # most recently used last
                return cached[0]
            token = ks_lib.build(
                secret,
                partner_id,
                user,
                session_type,
                self.expiry,
                privileges,
                version=self.credentials.ks_version,
                now=now,
            )
            self._pool.pop(key, None)
            self._pool[key] = (token, now + self.expiry)
            if self.track:
                self._issued[token] = now + self.expiry
            while len(self._pool) > self.max_pooled:  # the least recently used go first
                self._pool.pop(next(iter(self._pool)))
            return token

    def admin(self, user: str | None = None, privileges: str = "") -> str:
        """An ADMIN KS of the primary partner."""
        c = self.credentials
        return self._get(c.partner_id, c.admin_secret, user or f"{self.user_prefix}-admin", ADMIN, privileges)

    def user(self, user: str | None = None, privileges: str = "") -> str:
        """A USER KS of the primary partner (signed with the admin secret, as the server signs them)."""
        c = self.credentials
        return self._get(c.partner_id, c.admin_secret, user or f"{self.user_prefix}-user", USER, privileges)

    def peer_admin(self, user: str | None = None, privileges: str = "") -> str | None:
        """An ADMIN KS of the second partner, or None when no peer is configured."""
        c = self.credentials
        if not c.has_peer:
            return None
        assert c.peer_partner_id is not None and c.peer_admin_secret is not None
        return self._get(
            c.peer_partner_id, c.peer_admin_secret, user or f"{self.user_prefix}-admin", ADMIN, privileges
        )

    def refused(self, api: KalturaApi) -> str | None:
        """Why the target refuses the configured credentials, or None when it does not (or cannot tell).

        Called after a flow met one of :data:`SESSION_CODES`. For the partner, then the peer partner
        when one is configured, two ways of starting a session are tried: ``session.start`` with the
        secret, and a call (``baseEntry.count`` of nothing) with an ADMIN KS built locally from it. Only
        when both are refused with a session code is the configuration wrong; one refused alone means
        the platform refuses a valid session (a failure of the API, not of the configuration), and any
        other answer (an HTTP error, no answer) proves nothing.
        """
        c = self.credentials
        partners: list[tuple[str, int, str, Callable[[], str | None]]] = [
            ("admin secret", c.partner_id, c.admin_secret, self.admin)
        ]
        if c.has_peer:
            assert c.peer_partner_id is not None and c.peer_admin_secret is not None
            partners.append(("peer admin secret", c.peer_partner_id, c.peer_admin_secret, self.peer_admin))
        for what, partner_id, secret, local_ks in partners:
            started = _refusal(
                api.with_ks(None).call,
                "session",
                "start",
                secret=secret,
                partnerId=partner_id,
                type=ADMIN,
                userId=f"{self.user_prefix}-session-check",
                expiry=60,
            )
            if started is None:
                continue
            built = _refusal(
                api.with_ks(local_ks()).call,
                "baseEntry",
                "count",
                filter={"objectType": "KalturaBaseEntryFilter", "idEqual": "0_session_check"},
            )
            if built is None:
                continue
            return (
                f"partner {partner_id} refuses the configured {what}: session.start answered {started} "
                f"and a KS signed with it got {built}; {which_is_wrong(started, what)}"
            )
        return None

    def issued(self) -> list[str]:
        """Every KS handed out since this pool was made (``track=True`` only) that has not expired."""
        now = time.time()
        with self._lock:
            return [token for token, until in self._issued.items() if until > now]

    def end_all(self, api: KalturaApi) -> list[str]:
        """``session.end`` with every KS this pool handed out (``track=True``) and has not ended yet
        (:meth:`issued`; expired ones need nothing); returns what could not be ended. ``api`` sends the
        KS in the body; one without a partner id ends the peer partner's KSs too."""
        problems = []
        tokens = self.issued()
        for number, token in enumerate(tokens):
            try:
                answer = api.with_ks(token).call_raw("session", "end")
            except TransportTimeout as exc:  # a target that hangs: the others would wait as long
                problems.append(f"{mask_ks(token)}: {exc}; {len(tokens) - number - 1} more not ended")
                break
            except KsentinelError as exc:
                problems.append(f"{mask_ks(token)}: {exc}")
                continue
            if answer.error is not None and answer.error.code != "INVALID_KS":
                problems.append(f"{mask_ks(token)}: {answer.error.code}")
                continue
            with self._lock:
                self._issued.pop(token, None)
                for key, (pooled, _) in list(self._pool.items()):
                    if pooled == token:  # never handed out again
                        del self._pool[key]
        return problems

    def expired_admin(self) -> str:
        """A correctly signed ADMIN KS that expired a minute ago (for security checks)."""
        c = self.credentials
        return ks_lib.build(
            c.admin_secret, c.partner_id, f"{self.user_prefix}-expired", ADMIN, -60, version=c.ks_version
        )


def _refusal(call: Callable[..., Any], service: str, action: str, **params: Any) -> str | None:
    """The session code a call was refused with; None when it worked or failed for another reason."""
    try:
        call(service, action, **params)
    except KsentinelError as exc:
        code = str(getattr(exc, "code", "") or "")
        return code if code in SESSION_CODES else None
    return None

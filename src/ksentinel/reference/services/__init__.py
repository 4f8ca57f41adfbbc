"""Action handlers of the reference platform, one module per service family.

Handlers are registered with :func:`action`; the dispatcher looks them up by (service id, action).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ksentinel.kaltura.ks import KsInfo
from ksentinel.reference.platform import Platform


@dataclass(frozen=True)
class Caller:
    """Who is calling: the partner and what their KS says (partner 0 and no KS when anonymous)."""

    partner_id: int
    ks: str | None = None
    info: KsInfo | None = None

    @property
    def is_admin(self) -> bool:
        return self.info is not None and self.info.is_admin

    @property
    def user_id(self) -> str:
        return self.info.user_id if self.info else ""

    def may(self, privilege: str, value: str | None = None) -> bool:
        return self.info is not None and self.info.has_privilege(privilege, value)


@dataclass
class Call:
    """One action call: the platform, the caller and the request's base URL."""

    platform: Platform
    caller: Caller
    base_url: str
    service: str
    action: str


Handler = Callable[..., Any]


@dataclass(frozen=True)
class Registration:
    handler: Handler
    cacheable: bool
    writes: bool


HANDLERS: dict[tuple[str, str], Registration] = {}


def action(
    service: str, name: str, *, cacheable: bool = False, writes: bool = False
) -> Callable[[Handler], Handler]:
    """Register ``handler(call, **arguments)`` for ``service.name``."""

    def register(handler: Handler) -> Handler:
        key = (service.lower(), name.lower())
        if key in HANDLERS:
            raise RuntimeError(f"{service}.{name} is registered twice")
        HANDLERS[key] = Registration(handler, cacheable, writes)
        return handler

    return register


def load_all() -> dict[tuple[str, str], Registration]:
    """Import every service module (registration happens on import)."""
    from ksentinel.reference.services import entries, session, system, upload_token  # noqa: F401

    return HANDLERS

"""The target as ``KSENTINEL_*`` variables, for the child processes that test it.

``ksentinel contract`` runs pytest (and its xdist workers) and ``ksentinel load`` runs Locust in other
processes; they resolve the same target from these variables as a plain ``pytest contracts/`` or
``locust -f load/locustfile.py`` would. Secrets travel only in the environment of those children.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ksentinel.config.model import Target
from ksentinel.config.values import Invalid, as_adhoc_name

__all__ = ["TARGET_ENV", "target_environment"]

TARGET_ENV = (
    "KSENTINEL_URL",
    "KSENTINEL_PARTNER_ID",
    "KSENTINEL_ADMIN_SECRET",
    "KSENTINEL_USER_SECRET",
    "KSENTINEL_PEER_PARTNER_ID",
    "KSENTINEL_PEER_ADMIN_SECRET",
    "KSENTINEL_TARGET",
    "KSENTINEL_CONFIG",
    "KSENTINEL_KS_VERSION",
    "KSENTINEL_TIMEOUT",
    "KSENTINEL_READY_TIMEOUT",
    "KSENTINEL_ENVIRONMENT",
    "KSENTINEL_ALLOW_WRITES",
    "KSENTINEL_MAX_RPS",
    "KSENTINEL_TARGET_NAME",
)


@contextlib.contextmanager
def target_environment(target: Target) -> Iterator[None]:
    """Expose ``target`` to the pytest run (and its xdist workers) through KSENTINEL_* variables."""
    saved = {name: os.environ.get(name) for name in TARGET_ENV}
    values = {
        "KSENTINEL_URL": target.url,
        "KSENTINEL_PARTNER_ID": str(target.partner_id),
        "KSENTINEL_ADMIN_SECRET": target.admin_secret.reveal() if target.admin_secret else None,
        "KSENTINEL_USER_SECRET": target.user_secret.reveal() if target.user_secret else None,
        "KSENTINEL_PEER_PARTNER_ID": str(target.peer_partner_id) if target.peer_partner_id else None,
        "KSENTINEL_PEER_ADMIN_SECRET": target.peer_admin_secret.reveal()
        if target.peer_admin_secret
        else None,
        "KSENTINEL_KS_VERSION": str(target.ks_version),
        "KSENTINEL_TIMEOUT": str(target.timeout),
        "KSENTINEL_READY_TIMEOUT": str(target.ready_timeout),
        # the workers see an ad-hoc URL target: it must keep this target's environment, write
        # permission and rate cap, or a production target would be fuzzed as staging
        "KSENTINEL_ENVIRONMENT": target.environment,
        "KSENTINEL_ALLOW_WRITES": "true" if target.allow_writes else "false",
        "KSENTINEL_MAX_RPS": "unlimited" if target.max_rps is None else str(target.max_rps),
        # the children see a --url target: it keeps this target's name (its metric labels, the report)
        "KSENTINEL_TARGET_NAME": _child_name(target.name),
    }
    try:
        for name in TARGET_ENV:
            os.environ.pop(name, None)
        for name, value in values.items():
            if value is not None:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _child_name(name: str) -> str | None:
    """``name`` when it can name the children's ad-hoc target, else None (they call it ``adhoc``)."""
    try:
        return as_adhoc_name(name, "target name")
    except Invalid:
        return None

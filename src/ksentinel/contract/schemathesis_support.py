"""schemathesis over a Kaltura target: its own schema, the KS auth and the generation budget.

* :func:`load_schema` fetches ``/api_v3/api_schema.php`` from the target, parses it, applies the
  contract scope and converts it to OpenAPI (``format=1``, the ``ks`` API key in the query string),
  then loads it into schemathesis with the settings of a contract profile.
* :class:`KsAuth` puts the suite's ADMIN KS (``Sessions.admin()``) into the query string of every
  generated case and mints a fresh one when the target answers ``INVALID_KS``: Kaltura reports a
  dead session in the body of an HTTP 200, so schemathesis's status-based re-authentication never
  fires (:func:`call_with_ks_refresh` does the replay).
* :class:`CoverageBudget` keeps the coverage phase (which derives hundreds of cases from each big
  Kaltura object) within the profile's time: a few cases per scenario and per action.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import schemathesis
from schemathesis.generation.meta import TestPhase

from ksentinel.contract.kaltura_checks import answer_of
from ksentinel.flows import Sessions
from ksentinel.schema.fetch import fetch_schema
from ksentinel.schema.openapi import to_openapi
from ksentinel.schema.xml import parse_schema

if TYPE_CHECKING:
    from schemathesis import BaseSchema, Case, HookContext, Response

    from ksentinel.config import Target
    from ksentinel.contract.profiles import ContractProfile
    from ksentinel.schema.scope import Scope


@dataclass(frozen=True)
class FuzzBudget:
    """How much a profile generates per action, beyond its ``max_examples`` for the fuzzing phase."""

    coverage_cases: int  # coverage-phase cases kept per action
    coverage_per_scenario: int  # ... and per (mode, scenario, parameter location)
    shrink: bool  # minimise failing examples (costs many requests)
    stateful_examples: int  # state-machine runs
    stateful_steps: int  # steps per run


BUDGETS = {
    "quick": FuzzBudget(8, 1, False, 0, 0),
    "ci": FuzzBudget(20, 2, False, 0, 0),
    "deep": FuzzBudget(80, 6, True, 25, 8),
}


def budget_for(profile: ContractProfile) -> FuzzBudget:
    known = BUDGETS.get(profile.name)
    if known is not None:
        return known
    scale = max(1, profile.max_examples // 6)
    return FuzzBudget(8 * scale, scale, False, 20 if profile.stateful else 0, 8)


# ---- the schema ------------------------------------------------------------------------------------
def openapi_document(target: Target, scope: Scope | None) -> dict[str, Any]:
    """The target's own API schema, scoped, as OpenAPI 3.1 with the target as its server."""
    raw = fetch_schema(target.url, timeout=target.timeout)
    return to_openapi(parse_schema(raw), scope=scope, server_url=target.url)


def schemathesis_config(base_url: str, profile: ContractProfile, *, timeout: float) -> schemathesis.Config:
    """schemathesis settings for a profile: phases, examples, no health checks, no example database."""
    phases = set(profile.phases)
    budget = budget_for(profile)
    return schemathesis.Config.from_dict(
        {
            "base-url": base_url.rstrip("/"),
            "suppress-health-check": ["all"],
            "request-timeout": timeout,
            # the response format is transport, not input: never fuzzed
            "parameters": {"query.format": "1"},
            "generation": {
                "max-examples": profile.max_examples,
                # Kaltura reads UTF-8 text: lone surrogates cannot even be encoded in it (PHP's
                # json_decode drops such a body), so they exercise nothing on a real server
                "codec": "utf-8",
                "no-shrink": not budget.shrink,
                "database": "none",
            },
            "phases": {
                "examples": {"enabled": "examples" in phases},
                # Kaltura takes GET and POST alike; other verbs say nothing about the contract
                "coverage": {"enabled": "coverage" in phases, "unexpected-methods": []},
                "fuzzing": {"enabled": "fuzzing" in phases},
                "stateful": {"enabled": profile.stateful, "max-steps": max(budget.stateful_steps, 2)},
            },
        }
    )


def load_schema(
    target: Target,
    scope: Scope | None,
    *,
    profile: ContractProfile | None = None,
    auth: KsAuth | None = None,
    document: dict[str, Any] | None = None,
) -> BaseSchema:
    """The schemathesis schema of ``target`` (its ``api_schema.php``, scoped), with the KS auth.

    ``auth`` defaults to one built from the target's admin secret; ``document`` skips the download.
    """
    from ksentinel.contract.profiles import get_profile

    chosen = profile or get_profile("ci")
    document = document if document is not None else openapi_document(target, scope)
    schema = schemathesis.openapi.from_dict(
        document, config=schemathesis_config(target.url, chosen, timeout=target.timeout)
    )
    CoverageBudget(budget_for(chosen)).install(schema)
    if auth is None:
        from ksentinel.contract.runner import credentials_of

        auth = KsAuth(Sessions(credentials_of(target)))
    auth.install(schema)
    return schema


# ---- the KS -------------------------------------------------------------------------------------------
class KsAuth:
    """The ADMIN KS of generated cases: ``Sessions.admin()``, replaced after ``INVALID_KS``."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions
        self._lock = threading.Lock()
        self._issued: set[str] = set()
        self.refreshes = 0

    def current(self) -> str:
        token = self._sessions.admin()
        self._issued.add(token)
        return token

    def issued(self, token: str | None) -> bool:
        """Whether ``token`` is a KS this auth handed out (not a throwaway or a generated one)."""
        return token is not None and token in self._issued

    def refresh(self, stale: str) -> str:
        """A fresh KS in place of ``stale`` (one refresh for concurrent callers holding the same KS)."""
        with self._lock:
            if self._sessions.admin() == stale:
                old = self._sessions
                self._sessions = Sessions(old.credentials, expiry=old.expiry, user_prefix=old.user_prefix)
                self.refreshes += 1
        return self.current()

    def install(self, schema: BaseSchema) -> None:
        """Register as the schema's auth provider (``ks`` in the query string, as the scheme says)."""
        auth = self

        class KalturaSessionAuth:
            def get(self, case: Case, context: schemathesis.AuthContext) -> str:
                return auth.current()

            def set(self, case: Case, data: str, context: schemathesis.AuthContext) -> None:
                case.query = {**(case.query or {}), "ks": data}

        schema.auth(refresh_interval=None)(KalturaSessionAuth)


def call_with_ks_refresh(case: Case, auth: KsAuth, **kwargs: Any) -> Response:
    """``case.call()``; when our KS comes back ``INVALID_KS``, refresh it and send the case once more."""
    response = case.call(**kwargs)
    sent = (case.query or {}).get("ks")
    if isinstance(sent, str) and auth.issued(sent) and answer_of(response).code == "INVALID_KS":
        fresh = auth.refresh(sent)
        if fresh != sent:
            case.query = {**case.query, "ks": fresh}
            response = case.call(**kwargs)
    return response


_OUTSIDE_BODY = frozenset({"QUERY", "HEADER", "PATH", "COOKIE"})


# ---- the coverage phase ----------------------------------------------------------------------------
class CoverageBudget:
    """A ``filter_case`` hook that keeps the first few coverage cases of each scenario and action."""

    def __init__(self, budget: FuzzBudget) -> None:
        self.budget = budget
        self.per_action: Counter[str] = Counter()
        self.per_scenario: Counter[tuple[str, ...]] = Counter()
        self._lock = threading.Lock()

    def install(self, schema: BaseSchema) -> None:
        budget = self

        def filter_case(context: HookContext, case: Case) -> bool:
            return budget.admits(case)

        schema.hook("filter_case")(filter_case)

    def admits(self, case: Case) -> bool:
        meta = case.meta
        if meta is None or meta.phase.name != TestPhase.COVERAGE:
            return True
        data = meta.phase.data
        location = getattr(data.parameter_location, "name", "")
        if location == "QUERY" and data.parameter == "format":
            return False  # the format is forced to JSON anyway: these would repeat the positive case
        key = (case.operation.label, meta.generation.mode.value, str(getattr(data, "scenario", "")), location)
        # body cases come first and are many; the few about the query (a missing KS) and the
        # request's shape come last and are only bounded per scenario
        counted = location not in _OUTSIDE_BODY
        with self._lock:
            if counted and self.per_action[case.operation.label] >= self.budget.coverage_cases:
                return False
            if self.per_scenario[key] >= self.budget.coverage_per_scenario:
                return False
            self.per_action[case.operation.label] += counted
            self.per_scenario[key] += 1
        return True

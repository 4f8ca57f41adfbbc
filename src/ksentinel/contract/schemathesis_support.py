"""schemathesis over a Kaltura target: its own schema, the KS auth and the generation budget.

* :func:`load_schema` fetches ``/api_v3/api_schema.php`` from the target, parses it, applies the
  contract scope and converts it to OpenAPI (``format=1``, the ``ks`` API key), then loads it into
  schemathesis with the settings of a contract profile.
* :class:`KsAuth` puts the fuzzing KS (a short-lived ADMIN KS of its own user, with an
  ``actionslimit``: :func:`fuzz_ks_expiry`, :func:`fuzz_privileges`) into the *body* of every
  generated case, never its URL (:mod:`ksentinel.contract.ks_placement`), mints a fresh one when the
  target answers ``INVALID_KS`` (Kaltura reports a dead session in the body of an HTTP 200, so
  schemathesis's status-based re-authentication never fires: :func:`call_with_ks_refresh` does the
  replay), and ends every KS it handed out at the end of the run (:meth:`KsAuth.end`).
* :class:`CoverageBudget` keeps the coverage phase (which derives tens of thousands of cases from each
  big Kaltura object: 51,676 for ``baseEntry.add`` of the 22.15.0 schema, 18 s) within the profile's
  time: it reads a bounded number of cases per generation mode and keeps a few per scenario and per
  action. It also contains the phase: when schemathesis crashes while deriving one operation's cases,
  the crash is recorded (:attr:`CoverageBudget.crashes`, a tool error of that action) and the other
  operations are built as usual.
* :func:`schemathesis_document` works around an upstream crash: see :data:`BINARY_WORKAROUND`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import schemathesis
from schemathesis.generation.meta import TestPhase
from schemathesis.specs.openapi.schemas import OpenApiSchema

from ksentinel.contract.fuzz_scope import not_fuzzed_reason
from ksentinel.contract.kaltura_checks import answer_of
from ksentinel.contract.ks_placement import assert_no_ks_in_url, ks_of, move_ks_to_body, put_ks
from ksentinel.errors import KsentinelError
from ksentinel.flows import Sessions
from ksentinel.kaltura.redact import mask_ks, redact
from ksentinel.schema.fetch import fetch_schema
from ksentinel.schema.openapi import to_openapi
from ksentinel.schema.xml import parse_schema

if TYPE_CHECKING:
    from schemathesis import APIOperation, BaseSchema, Case, GenerationMode, Response

    from ksentinel.config import Target
    from ksentinel.contract.profiles import ContractProfile
    from ksentinel.kaltura.api import KalturaApi
    from ksentinel.schema.scope import Scope


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FuzzBudget:
    """How much a profile generates per action, beyond its ``max_examples`` for the fuzzing phase."""

    coverage_cases: int  # coverage-phase cases kept per action
    coverage_per_scenario: int  # ... and per (mode, scenario, parameter location)
    shrink: bool  # minimise failing examples (costs many requests)
    stateful_examples: int  # state-machine runs
    stateful_steps: int  # steps per run
    coverage_scan: int  # coverage-phase cases read per action and generation mode, kept or not


BUDGETS = {
    "quick": FuzzBudget(8, 1, False, 0, 0, 40),
    "ci": FuzzBudget(20, 2, False, 0, 0, 80),
    "deep": FuzzBudget(80, 6, True, 25, 8, 400),
}


def budget_for(profile: ContractProfile) -> FuzzBudget:
    known = BUDGETS.get(profile.name)
    if known is not None:
        return known
    scale = max(1, profile.max_examples // 6)
    return FuzzBudget(8 * scale, scale, False, 20 if profile.stateful else 0, 8, 40 * scale)


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
        schemathesis_document(document),
        config=schemathesis_config(target.url, chosen, timeout=target.timeout),
    )
    CoverageBudget(budget_for(chosen)).install(schema)
    if auth is None:
        from ksentinel.flows.sessions import credentials_of

        auth = KsAuth(Sessions(credentials_of(target)))
    auth.install(schema)
    return schema


# ---- the KS -------------------------------------------------------------------------------------------
#: the user id of the fuzzing KS (a user of its own, so the KS is told apart from the flows' ones)
FUZZ_USER = "ksentinel-fuzz"
#: the fuzzing KS is good for the run's expected length and this much more (seconds)
FUZZ_KS_MARGIN = 120
#: ... and never less than this
FUZZ_KS_MIN_EXPIRY = 180


def fuzz_ks_expiry(profile: ContractProfile) -> int:
    """Seconds the fuzzing KS lives: the profile's time budget plus a margin (4 minutes for quick);
    a longer run gets a fresh KS before it runs out (``Sessions`` refreshes at a quarter left)."""
    return max(FUZZ_KS_MIN_EXPIRY, int(profile.time_budget) + FUZZ_KS_MARGIN)


def fuzz_call_budget(profile: ContractProfile, operations: int) -> int:
    """An upper bound of the calls the fuzzer makes with one KS: per operation its coverage cases and
    scenarios, its examples and fuzzing examples, the probe without a KS, a replay after a refresh;
    plus the stateful steps; twice that as a margin (the ``actionslimit`` of :func:`fuzz_privileges`)."""
    budget = budget_for(profile)
    per_operation = budget.coverage_cases + 12 * budget.coverage_per_scenario + 3 * profile.max_examples + 4
    stateful = budget.stateful_examples * budget.stateful_steps if profile.stateful else 0
    return 2 * (max(1, operations) * per_operation + stateful) + 100


def fuzz_privileges(profile: ContractProfile, operations: int) -> str:
    """The fuzzing KS's privilege limits: ``actionslimit:N``, N sized to the run's call budget.

    A real Kaltura refuses the KS (``INVALID_KS``, EXCEEDED_ACTIONS_LIMIT) after N calls: a leaked fuzzing
    KS is worth at most what the run left of N, and is ended at the end of the run anyway. Should a run
    ever need more, :class:`KsAuth` mints a fresh KS (the same limits) on that ``INVALID_KS``. The
    reference platform records the privilege but does not count calls (docs/contracts.md)."""
    return f"actionslimit:{fuzz_call_budget(profile, operations)}"


class KsAuth:
    """The ADMIN KS of generated cases: ``Sessions.admin()``, replaced after ``INVALID_KS``.

    ``user`` and ``privileges`` make it a KS of its own (the fuzzing KS: :data:`FUZZ_USER`,
    :func:`fuzz_privileges`); every KS it handed out is ended by :meth:`end` at the end of the run."""

    def __init__(self, sessions: Sessions, *, user: str | None = None, privileges: str = "") -> None:
        self._sessions = sessions
        self.user = user
        self.privileges = privileges
        self._lock = threading.Lock()
        self._issued: set[str] = set()
        self._order: list[str] = []
        self.refreshes = 0

    def _admin(self) -> str:
        return self._sessions.admin(self.user, self.privileges)

    def current(self) -> str:
        token = self._admin()
        with self._lock:
            if token not in self._issued:
                self._issued.add(token)
                self._order.append(token)
        return token

    def issued(self, token: object) -> bool:
        """Whether ``token`` is a KS this auth handed out (not a throwaway or a generated one)."""
        return isinstance(token, str) and token in self._issued

    def tokens(self) -> list[str]:
        """Every KS this auth handed out, oldest first."""
        with self._lock:
            return list(self._order)

    def refresh(self, stale: str) -> str:
        """A fresh KS in place of ``stale`` (one refresh for concurrent callers holding the same KS)."""
        with self._lock:
            if self._admin() == stale:
                old = self._sessions
                self._sessions = Sessions(old.credentials, expiry=old.expiry, user_prefix=old.user_prefix)
                self.refreshes += 1
        return self.current()

    def end(self, api: KalturaApi) -> list[str]:
        """``session.end`` with every KS this auth handed out (the KS in the body, as always); returns
        what could not be ended (a KS already refused, ended or expired is fine)."""
        return end_sessions(api, self.tokens())

    def install(self, schema: BaseSchema) -> None:
        """Register as the schema's auth provider: the KS goes into the body of every case, never into
        its URL (:mod:`ksentinel.contract.ks_placement`)."""
        auth = self

        class KalturaSessionAuth:
            def get(self, case: Case, context: schemathesis.AuthContext) -> str:
                return auth.current()

            def set(self, case: Case, data: str, context: schemathesis.AuthContext) -> None:
                put_ks(case, data)

        schema.auth(refresh_interval=None)(KalturaSessionAuth)


def end_sessions(api: KalturaApi, tokens: list[str]) -> list[str]:
    """``session.end`` with each KS of ``tokens`` (sent in the body by ``api``); what could not be ended."""
    problems = []
    for token in dict.fromkeys(tokens):
        try:
            answer = api.with_ks(token).call_raw("session", "end")
        except (KsentinelError, OSError) as exc:
            problems.append(f"{mask_ks(token)}: {redact(str(exc))[:200]}")
            continue
        if answer.error is not None and answer.error.code != "INVALID_KS":
            problems.append(f"{mask_ks(token)}: {answer.error.code}")
    for problem in problems:
        logger.warning("could not end a KS of the contract run: %s", problem)
    return problems


def call_with_ks_refresh(case: Case, auth: KsAuth, **kwargs: Any) -> Response:
    """``case.call()`` with the KS in the body (never in the URL); when our KS comes back
    ``INVALID_KS``, refresh it and send the case once more."""
    move_ks_to_body(case)
    assert_no_ks_in_url(case)
    response = case.call(**kwargs)
    sent = ks_of(case)
    if isinstance(sent, str) and auth.issued(sent) and answer_of(response).code == "INVALID_KS":
        fresh = auth.refresh(sent)
        if fresh != sent:
            put_ks(case, fresh)
            assert_no_ks_in_url(case)
            response = case.call(**kwargs)
    return response


_OUTSIDE_BODY = frozenset({"QUERY", "HEADER", "PATH", "COOKIE"})


def describe_error(exc: BaseException) -> str:
    """``TypeName: first line (at module.py:123 in function)`` of an exception (of the first one in a
    group; the frame it was raised in), masked."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        parts = Path(last.filename).parts
        short = "/".join(
            parts[parts.index("site-packages") + 1 :] if "site-packages" in parts else parts[-2:]
        )
        where = f" (at {short}:{last.lineno} in {last.name})"
    return redact(f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ") + where)[:500]


# ---- an upstream crash -------------------------------------------------------------------------------
#: schemathesis 4.32.5 crashes with ``ValueError: Unsupported type: 'Binary'`` on ``format: binary``
#: strings: it makes a ``Binary`` of the bytes it generates for one and, where a ``oneOf`` or a filter
#: must judge the value around it, hands it to a jsonschema-rs validator that knows no such type. On
#: the 22.15.0 schema that breaks the coverage phase of ``media.bulkUploadAdd`` (the multipart file part
#: beside a ``json`` part holding a ``oneOf``; ``_generate_around_conditionals`` in
#: ``specs/openapi/coverage/_schema.py``) and, now and then, the fuzzing phase of ``baseEntry.addContent``
#: and ``media.addContent`` (``KalturaUploadedFileResource.fileData`` inside the ``resource`` union; a
#: Hypothesis filter). The family of schemathesis#3547, #3999, #4520; no release fixes these paths yet.
#: The documents schemathesis loads spell such strings the OpenAPI 3.1 way instead,
#: ``contentMediaType: application/octet-stream``: schemathesis still sends a multipart part so spelled
#: as a file (with a filename), and never makes a ``Binary`` of it. Lift it (set this to False) once a
#: schemathesis release derives those operations' cases without it:
#: ``test_a_coverage_phase_crash_stays_with_its_operation_and_the_workaround_avoids_it`` in
#: ``tests/test_contract_schema.py`` fails, saying so, when the crash is gone.
BINARY_WORKAROUND = True


def schemathesis_document(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document as schemathesis gets it: ``document`` with every ``format: binary`` string
    spelled ``contentMediaType: application/octet-stream`` (:data:`BINARY_WORKAROUND`). ``document``
    itself is not changed; what the rewrite does not touch is shared, not copied."""
    return _without_binary(document) if BINARY_WORKAROUND else document


def _without_binary(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("format") == "binary" and value.get("type") == "string":
            out = {k: v for k, v in value.items() if k != "format"}
            out["contentMediaType"] = "application/octet-stream"
            return out
        changed = {k: new for k, v in value.items() if (new := _without_binary(v)) is not v}
        return {**value, **changed} if changed else value
    if isinstance(value, list):
        items = [_without_binary(v) for v in value]
        return items if any(new is not old for new, old in zip(items, value, strict=True)) else value
    return value


# ---- the coverage phase ----------------------------------------------------------------------------
class CoverageBudget:
    """The coverage phase of each operation, bounded and contained.

    schemathesis derives an operation's coverage cases when it builds the operation's test, before any
    test runs, and derives all of them (tens of thousands for a big Kaltura object) even when a
    ``filter_case`` hook keeps twenty. So the schema reads them itself (:meth:`cases`): per generation
    mode (positive first, then negative, so each gets its share) at most ``coverage_scan`` cases, and it
    keeps the first few of each scenario and action (:meth:`admits`). The cases of each block come in
    schemathesis's order (the body's scenarios first, the query's and the request shape's last), so a
    big operation's last scenarios may go unread; a small one's are all read.

    An exception while deriving an operation's cases ends that operation's coverage phase, not the run:
    :attr:`crashes` records it by operation label (``POST /api_v3/...``), the operation keeps the cases
    derived before and its other phases, and the suite reports the action as a tool error.
    """

    def __init__(self, budget: FuzzBudget) -> None:
        self.budget = budget
        self.per_action: Counter[str] = Counter()
        self.per_scenario: Counter[tuple[str, ...]] = Counter()
        self.crashes: dict[str, str] = {}
        self._lock = threading.Lock()

    def install(self, schema: BaseSchema) -> None:
        """Let ``schema`` (and the clones schemathesis makes of it) read coverage cases through this."""
        if not isinstance(schema, OpenApiSchema):
            raise TypeError(f"not an OpenAPI schema: {type(schema).__name__}")
        schema.__class__ = type("KalturaOpenApiSchema", (_BudgetedSchema,), {"coverage_budget": self})

    def cases(
        self,
        operation: APIOperation,
        modes: list[GenerationMode],
        derive: Callable[[list[GenerationMode]], Iterator[Case]],
    ) -> Iterator[Case]:
        """The coverage cases of ``operation`` that the budget keeps, read mode by mode from ``derive``."""
        label = operation.label
        if not_fuzzed_reason(operation.definition.raw) is not None:
            # left out of fuzzing: one case tells the fuzzer to report it (and sends nothing)
            with contextlib.suppress(Exception):  # an upstream crash: the examples phase reports it
                yield from itertools.islice(derive(sorted(modes, key=lambda m: m.is_negative)[:1]), 1)
            return
        for mode in sorted(modes, key=lambda m: m.is_negative):
            read = 0
            upstream = iter(derive([mode]))
            while read < self.budget.coverage_scan and not self.full(label):
                try:
                    case = next(upstream)
                except StopIteration:
                    break
                except Exception as exc:  # an upstream bug: this operation's coverage phase ends here
                    crash = (
                        f"schemathesis {version('schemathesis')} crashed deriving the coverage cases of "
                        f"{label}: {describe_error(exc)}"
                    )
                    with self._lock:
                        self.crashes.setdefault(label, crash)
                    return
                read += 1
                if self.admits(case):
                    yield case

    def full(self, label: str) -> bool:
        return self.per_action[label] >= self.budget.coverage_cases

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


class _BudgetedSchema(OpenApiSchema):
    """An OpenAPI schema whose coverage cases go through its class's :class:`CoverageBudget`."""

    coverage_budget: CoverageBudget

    def iter_coverage_cases(
        self, operation: APIOperation, *, generation_modes: list[GenerationMode], **kwargs: Any
    ) -> Iterator[Case]:
        def derive(modes: list[GenerationMode]) -> Iterator[Case]:
            return OpenApiSchema.iter_coverage_cases(self, operation, generation_modes=modes, **kwargs)

        return self.coverage_budget.cases(operation, list(generation_modes), derive)

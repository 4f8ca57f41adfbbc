"""A fuzzed case from generation to verdict, and the deep profile's stateful sequences.

:meth:`Fuzzer.run` is what each schemathesis-generated test does: make the case safe
(:class:`~ksentinel.contract.fuzz_safety.FuzzGuard`), send it with the suite's KS (refreshed on
``INVALID_KS``), remember what it created, and judge the answer with the Kaltura checks; once per
action that needs a session it also sends the request without the KS. The first
broken contract of an action is *sticky*: every later example of that action fails the same way
without another request, so Hypothesis's replay of the failing example agrees with the first run
even when the target misbehaves only sometimes (one call in five answering HTTP 500).

Every action ends with an honest verdict (:func:`action_verdict`): *passed* only when requests were
sent and their answers judged; *not tested*, with the reason, when none was (the guard refused every
case, or the target does not offer the action: ``SERVICE_FORBIDDEN``, ``ACTION_DOES_NOT_EXISTS``,
``SERVICE_DOES_NOT_EXISTS``, ``FEATURE_FORBIDDEN``); *failed* for a broken contract; *tool error* when
ksentinel or schemathesis could not generate, send or judge its cases. :class:`Tally` counts, per
action, the cases sent, judged and not tested, and why.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
import unittest
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import hypothesis
from schemathesis.errors import FailureGroup, NoLinksFound

from ksentinel.contract.fuzz_safety import (
    FuzzGuard,
    ObjectPool,
    delete_params,
    remove_created,
    seed_factory,
)
from ksentinel.contract.fuzz_scope import mark_not_fuzzed, policy_for
from ksentinel.contract.kaltura_checks import (
    KALTURA_CHECKS,
    answer_of,
    by_rule,
    negative_data_rejected_with_validation_code,
    rule_of,
    subject_of,
)
from ksentinel.contract.ks_placement import drop_ks, has_ks, ks_of, move_ks_to_body
from ksentinel.contract.schemathesis_support import (
    FUZZ_USER,
    KsAuth,
    call_with_ks_refresh,
    describe_error,
    end_sessions,
    fuzz_ks_expiry,
    fuzz_privileges,
    load_schema,
    openapi_document,
)
from ksentinel.errors import KsentinelError
from ksentinel.flows.core import TAG
from ksentinel.flows.sweep import sweep
from ksentinel.kaltura import ks as ks_lib
from ksentinel.kaltura.redact import redact
from ksentinel.kaltura.transport import TransportError

if TYPE_CHECKING:
    from schemathesis import BaseSchema, Case, CheckFunction, Response

    from ksentinel.config import Target
    from ksentinel.contract.profiles import ContractProfile
    from ksentinel.contract.schemathesis_support import FuzzBudget
    from ksentinel.flows import Credentials, Sessions
    from ksentinel.kaltura.api import KalturaApi
    from ksentinel.schema.scope import Scope

logger = logging.getLogger(__name__)

MAX_BODY = 2000
SEEDS_PER_KIND = 2
THROWAWAY_EXPIRY = 120  # one session.end call: ended by it, or at the end of the run
SWEEP_ATTEMPTS = 3
#: what a Kaltura answers for an action it does not offer to this partner, whatever the input
NOT_AVAILABLE = frozenset({"SERVICE_FORBIDDEN", "ACTION_DOES_NOT_EXISTS", "SERVICE_DOES_NOT_EXISTS"})
#: ... and for a feature the partner lacks, which may hang on the input: the action counts as not
#: available after this many such answers and no other
FEATURE_FORBIDDEN, FEATURE_FORBIDDEN_ANSWERS = "FEATURE_FORBIDDEN", 3
NOT_TESTED = "not tested: "
TOOL_ERROR = "tool error: "


class ContractBroken(AssertionError):
    """Kaltura checks failed for one action; the message holds one line per broken rule."""

    def __init__(self, subject: str, lines: Sequence[str], request: dict[str, Any], response: dict[str, Any]):
        self.subject = subject
        self.lines = list(lines)
        self.rules = list(dict.fromkeys(rule_of(line) for line in self.lines))
        self.request = request
        self.response = response
        super().__init__("\n".join(self.lines))

    def again(self) -> ContractBroken:
        return ContractBroken(self.subject, self.lines, self.request, self.response)

    def render(self) -> str:
        """A short failure text: the broken rules (pytest's ``E`` lines), then the exchange."""
        lines = [f"E   {line}" for line in self.lines]
        lines.append(f"    request: {self.request.get('method')} {self.request.get('url')}")
        if self.request.get("body"):
            lines.append(f"    request body: {_cut(str(self.request['body']))}")
        lines.append(
            f"    response: HTTP {self.response.get('status')} {_cut(str(self.response.get('body', '')))}"
        )
        return "\n".join(lines)

    def details(self) -> dict[str, Any]:
        """What the report shows for the failure (the pytest plugin redacts it once more)."""
        return {"rule": ", ".join(self.rules), "request": self.request, "response": self.response}


def _cut(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def describe_exchange(response: Response) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request and the response of one call as report details (bodies cut, secrets masked)."""
    request = response.request
    body = request.body
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    sent = {"method": request.method, "url": redact(str(request.url)), "body": redact(text[:MAX_BODY])}
    answer = response.content.decode("utf-8", "replace")
    received = {
        "status": response.status_code,
        "content_type": ",".join(response.headers.get("content-type", [])),
        "body": redact(answer[:MAX_BODY]),
    }
    return sent, received


@dataclass
class Tally:
    """What became of one action's cases."""

    sent: int = 0  # requests sent (the probe without a KS included)
    judged: int = 0  # answers the Kaltura checks judged as the action's
    not_tested: Counter[str] = field(default_factory=Counter)  # cases neither sent nor judged, by reason
    not_available: str | None = None  # the code the target refuses the action with
    refusals: int = 0  # not-available answers so far
    answered: bool = False  # the target answered otherwise at least once

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "judged": self.judged,
            "not_tested": sum(self.not_tested.values()),
            "reasons": dict(self.not_tested),
        }

    def text(self) -> str:
        """``sent 14, judged 14, not tested 2 (why: 2)`` (a JUnit property)."""
        line = f"sent {self.sent}, judged {self.judged}, not tested {sum(self.not_tested.values())}"
        if self.not_tested:
            line += " (" + "; ".join(f"{why}: {n}" for why, n in self.not_tested.most_common()) + ")"
        return line

    def reason(self) -> str:
        """Why nothing was judged, or ``""``."""
        if self.not_available:
            return f"not available on this target ({self.not_available})"
        if self.not_tested:
            return self.not_tested.most_common(1)[0][0]
        return "no case was generated" if not self.sent else "no answer was judged"


class NotTested(unittest.SkipTest):
    """Ends an action's cases early: none of the rest could be tested either (Hypothesis, schemathesis
    and pytest all take a ``SkipTest`` as "skip this test", at once)."""

    def __init__(self, reason: str) -> None:
        super().__init__(NOT_TESTED + reason)


@dataclass(frozen=True)
class ActionVerdict:
    """One action's outcome for the report: ``passed``, ``failed``, ``error`` (a tool error: ksentinel
    or schemathesis could not generate, send or judge its cases) or ``not_tested``; ``message`` says
    why, ``cases`` what was sent, judged and not tested."""

    outcome: str
    message: str
    cases: dict[str, Any]


def action_verdict(
    tally: Tally,
    *,
    broken: ContractBroken | None,
    raised: BaseException | None,
    crash: str | None = None,
) -> ActionVerdict:
    """The verdict of one action from what happened to its cases: ``raised`` is what its test raised
    (None when it ended normally), ``crash`` an upstream crash while its cases were derived."""
    cases = tally.as_dict()
    skipped = raised is not None and isinstance(raised, (unittest.SkipTest, *_skip_exceptions()))
    if broken is not None:
        return ActionVerdict("failed", "\n".join(broken.lines), cases)
    if raised is not None and not skipped and _generator_gave_up(raised) and tally.judged > 0:
        # schemathesis rejected a schema it derived itself (a mutation of ours) part-way through: the
        # cases it did make were sent and judged; the rest were never generated. Honest verdict: the
        # judged cases stand, and the report says how the run was cut short.
        tally.not_tested[f"upstream generator stopped: {describe_error(raised)}"[:200]] += 1
        cases = tally.as_dict()
    elif raised is not None and not skipped:
        return ActionVerdict("error", TOOL_ERROR + describe_error(raised), cases)
    if crash is not None:
        return ActionVerdict("error", f"{TOOL_ERROR}{crash}; its other cases ran", cases)
    if tally.judged == 0 or tally.not_available:
        reason = tally.reason()
        if skipped and not (tally.not_available or tally.not_tested):  # skipped by someone else
            reason = str(raised).removeprefix("Skipped: ").removeprefix(NOT_TESTED).strip() or reason
        return ActionVerdict("not_tested", NOT_TESTED + reason, cases)
    return ActionVerdict("passed", "", cases)


def _generator_gave_up(error: BaseException) -> bool:
    """schemathesis could not build a strategy for a schema it derived (``InvalidSchema`` from its
    ``generation`` package, e.g. "Cannot generate an array with 1 demanded elements" in 4.32.5)."""
    try:
        from schemathesis.core.errors import InvalidSchema
    except ImportError:  # pragma: no cover - another schemathesis layout
        return False
    if not isinstance(error, InvalidSchema):
        return False
    frames = traceback.extract_tb(error.__traceback__)
    return any("schemathesis/generation/" in frame.filename.replace("\\", "/") for frame in frames)


def _skip_exceptions() -> tuple[type[BaseException], ...]:
    """pytest's skip exception (``pytest.skip``), when pytest is loaded."""
    outcomes = sys.modules.get("_pytest.outcomes")
    return (outcomes.Skipped,) if outcomes is not None else ()


def _fail(broken: ContractBroken) -> None:
    """The one place a broken contract is raised: Hypothesis tells failures apart by where they are
    raised, so a sticky repeat and the first failure count as the same bug."""
    raise broken


class Fuzzer:
    """Runs generated cases against the target under the Kaltura checks, safely."""

    def __init__(
        self,
        schema: BaseSchema,
        guard: FuzzGuard,
        auth: KsAuth,
        *,
        checks: Sequence[CheckFunction] = KALTURA_CHECKS,
    ) -> None:
        self.schema = schema
        self.guard = guard
        self.auth = auth
        self.checks = list(checks)
        self.broken: dict[str, ContractBroken] = {}
        self.tallies: dict[str, Tally] = {}
        self._probed: set[str] = set()
        self.on_failure: Callable[[ContractBroken], None] | None = None
        #: in-scope actions left out of fuzzing, with the reason (``fuzz_scope``)
        self.not_fuzzed: dict[str, str] = {}
        paths = schema.raw_schema.get("paths") or {}
        self.subjects = {
            f"POST {path}": str(item["post"].get("operationId", path))
            for path, item in paths.items()
            if isinstance(item, dict) and "post" in item
        }

    @property
    def crashes(self) -> Mapping[str, str]:
        """Upstream crashes while deriving an operation's coverage cases, by operation label
        (:class:`~ksentinel.contract.schemathesis_support.CoverageBudget`)."""
        budget = getattr(self.schema, "coverage_budget", None)
        return budget.crashes if budget is not None else {}

    def tally(self, subject: str) -> Tally:
        found = self.tallies.get(subject)
        if found is None:
            found = self.tallies[subject] = Tally()
        return found

    def run(self, case: Case) -> None:
        """Prepare, send and judge one generated case (the body of the schemathesis test).

        Raises :class:`NotTested` when none of the action's cases can be tested: the guard refuses
        every case of it, or the target does not offer it (:meth:`_not_available`)."""
        subject = subject_of(case)
        move_ks_to_body(case)  # schemathesis's own KS scenarios (a broken or missing KS) go in the body too
        if subject in self.broken:
            _fail(self.broken[subject].again())
        tally = self.tally(subject)
        if tally.not_available:
            raise NotTested(tally.reason())
        refused = self.guard.refusal(case.operation)
        if refused is not None:
            tally.not_tested[refused] += 1
            raise NotTested(refused)
        reason = self.guard.prepare(case)
        if reason is not None:
            tally.not_tested[reason] += 1
            return
        response = self.call(case)
        if self._not_available(case, response, tally):
            raise NotTested(tally.reason())
        self.validate(case, response)
        self._probe_without_ks(case, subject)

    def _not_available(self, case: Case, response: Response, tally: Tally) -> bool:
        """Whether the answer says the target does not offer the action (then it is judged only as an
        answer, never as the action's: its envelope, no internal error, no secret); True once the
        action counts as not available.

        Only an answer to our own session tells: Kaltura checks the KS before the service, so a
        generated KS gets INVALID_KS from any action, and a missing one SERVICE_FORBIDDEN."""
        code = answer_of(response).code
        ks = ks_of(case)
        sessionless = case.operation.definition.raw.get("x-kaltura-session-required") != "always"
        ours = self.auth.issued(ks) or (ks is None and sessionless)
        if not ours and code not in NOT_AVAILABLE - {"SERVICE_FORBIDDEN"}:
            return False
        if tally.answered or code not in NOT_AVAILABLE | {FEATURE_FORBIDDEN}:
            tally.answered = True
            return False
        checks = [c for c in self.checks if c is not negative_data_rejected_with_validation_code]
        self.validate(case, response, checks=checks, judged=False)
        tally.refusals += 1
        tally.not_tested[f"answered {code}"] += 1
        if code != FEATURE_FORBIDDEN or tally.refusals >= FEATURE_FORBIDDEN_ANSWERS:
            tally.not_available = code
            return True
        return False

    def _probe_without_ks(self, case: Case, subject: str) -> None:
        """Once per action that always needs a session: the same (safe) request without the KS,
        which must fail (``no_success_without_ks``); schemathesis never drops the KS on its own."""
        operation = case.operation.definition.raw
        if operation.get("x-kaltura-session-required") != "always" or subject in self._probed:
            return
        if not has_ks(case) or (case.meta is not None and case.meta.generation.mode.is_negative):
            return
        self._probed.add(subject)
        anonymous = case.derive()
        drop_ks(anonymous)
        self.validate(anonymous, self.call(anonymous))

    def call(self, case: Case, **kwargs: Any) -> Response:
        self.tally(subject_of(case)).sent += 1
        response = call_with_ks_refresh(case, self.auth, **kwargs)
        self.guard.record(case, response)
        return response

    def validate(
        self,
        case: Case,
        response: Response,
        *,
        checks: Sequence[CheckFunction] | None = None,
        judged: bool = True,
    ) -> None:
        """The Kaltura checks on one answer; raises :class:`ContractBroken` (and remembers it)."""
        if judged:
            self.tally(subject_of(case)).judged += 1
        try:
            case.validate_response(response, checks=list(checks) if checks is not None else self.checks)
        except FailureGroup as group:
            lines = by_rule([" ".join(str(getattr(f, "message", f)).split()) for f in group.exceptions])
            broken = ContractBroken(subject_of(case), lines, *describe_exchange(response))
        else:
            return
        # raised outside the except block, so it carries no context and a sticky repeat is the same bug
        self.broken.setdefault(broken.subject, broken)
        if self.on_failure is not None:
            self.on_failure(broken)
        _fail(broken)

    def summary(self, verdicts: Mapping[str, str] | None = None) -> str:
        """``76 actions: 25 passed, 51 not tested; 412 calls, 380 answers judged`` (``verdicts``: the
        outcome of each action)."""
        tallies = self.tallies.values()
        calls = f"{sum(t.sent for t in tallies)} calls, {sum(t.judged for t in tallies)} answers judged"
        if not verdicts:
            return f"{len(self.tallies)} actions, {calls}"
        counted = Counter(verdicts.values())
        labels = {"passed": "passed", "failed": "failed", "error": "tool error", "not_tested": "not tested"}
        parts = [f"{counted[o]} {label}" for o, label in labels.items() if counted[o]]
        return f"{len(verdicts)} actions: {', '.join(parts)}; {calls}"

    # ---- stateful (deep profile) ---------------------------------------------------------------
    def run_stateful(self, budget: FuzzBudget) -> str | None:
        """Sequences through the ``add`` -> ``get``/``update``/``delete`` links, under the same checks
        and the same safety rules; raises :class:`ContractBroken` for the first broken contract, and
        returns why nothing ran when the scope holds no linked actions.

        A live server's state changes between runs, so Hypothesis could not replay a failing
        sequence; failures are collected instead and raised once the machine has finished."""
        fuzzer = self
        failed: list[ContractBroken] = []
        try:
            base = self.schema.as_state_machine()
        except NoLinksFound:
            return "no add -> get/update/delete links among the in-scope actions"

        class KalturaStateMachine(base):  # type: ignore[valid-type, misc]
            def before_call(self, case: Case) -> None:
                if fuzzer.guard.prepare(case) is not None:
                    hypothesis.reject()

            def call(self, case: Case, **kwargs: Any) -> Response:
                return fuzzer.call(case, **kwargs)

            def validate_response(self, response: Response, case: Case, *args: Any, **kwargs: Any) -> None:
                try:
                    fuzzer.validate(case, response)
                except ContractBroken as exc:
                    failed.append(exc)

        settings = hypothesis.settings(
            max_examples=budget.stateful_examples,
            stateful_step_count=budget.stateful_steps,
            deadline=None,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        report, self.on_failure = self.on_failure, None
        try:
            KalturaStateMachine.run(settings=settings)
        finally:
            self.on_failure = report
        if failed:
            if report is not None:
                report(failed[0])
            _fail(failed[0].again())
        return None


# ---- one run ----------------------------------------------------------------------------------------
def throwaway_ks(credentials: Credentials, privileges: str = "") -> str:
    """A fresh ADMIN KS for one call that may end it (session.end); never the suite's own."""
    c = credentials
    return ks_lib.build(
        c.admin_secret,
        c.partner_id,
        "ksentinel-throwaway",
        2,
        THROWAWAY_EXPIRY,
        privileges,
        version=c.ks_version,
    )


@contextlib.contextmanager
def fuzz_session(
    target: Target,
    scope: Scope | None,
    *,
    profile: ContractProfile,
    sessions: Sessions,
    api: KalturaApi,
    run_tag: str,
) -> Iterator[Fuzzer]:
    """A :class:`Fuzzer` for ``target``: the pool seeded with tagged objects before, and every object
    the run created deleted after (also when the run fails), then a sweep of ``run_tag`` as a net.

    Generated cases carry a KS of their own (:func:`fuzz_auth`): short-lived, limited to the run's call
    budget, in the request body. It, and every throwaway KS handed to a fuzzed ``session.end``, is ended
    at the end, also when the run fails or is interrupted."""
    document = openapi_document(target, scope)
    not_fuzzed = mark_not_fuzzed(document, policy_for(scope, target))
    auth = fuzz_auth(sessions.credentials, profile, document)
    schema = load_schema(target, scope, profile=profile, auth=auth, document=document)
    tags, prefix = f"{TAG},{TAG}-{run_tag}", f"{TAG}-{run_tag}"
    pool = ObjectPool(seed_factory(api, tags=tags, file_prefix=prefix))
    throwaways: list[str] = []

    def throwaway() -> str:
        token = throwaway_ks(sessions.credentials, auth.privileges)
        throwaways.append(token)
        return token

    guard = FuzzGuard(document, pool, tags=tags, file_prefix=prefix, throwaway_ks=throwaway)
    try:
        for wanted in ("entry", "uploadtoken"):
            for _ in range(SEEDS_PER_KIND):
                made = pool.factory(wanted) if pool.factory else None
                if made is not None:
                    pool.add(made)
        fuzzer = Fuzzer(schema, guard, auth)
        fuzzer.not_fuzzed = not_fuzzed
        yield fuzzer
    finally:
        remove_created(api, pool, delete_params(document))
        for attempt in range(1, SWEEP_ATTEMPTS + 1):
            try:
                sweep(api, run_tag=run_tag)
                break
            except (KsentinelError, TransportError) as exc:
                if attempt == SWEEP_ATTEMPTS:
                    logger.warning("sweep of %s after fuzzing failed: %s", run_tag, exc)
        auth.end(api)
        end_sessions(api, throwaways)


def fuzz_auth(credentials: Credentials, profile: ContractProfile, document: Mapping[str, Any]) -> KsAuth:
    """The fuzzing KS: an ADMIN KS of its own user (:data:`FUZZ_USER`) that lives the profile's time
    budget plus a margin (:func:`fuzz_ks_expiry`) and carries ``actionslimit`` sized to the run's call
    budget (:func:`fuzz_privileges`)."""
    from ksentinel.flows import Sessions

    operations = sum(
        1 for item in (document.get("paths") or {}).values() if isinstance(item, dict) and "post" in item
    )
    return KsAuth(
        Sessions(credentials, expiry=fuzz_ks_expiry(profile)),
        user=FUZZ_USER,
        privileges=fuzz_privileges(profile, operations),
    )

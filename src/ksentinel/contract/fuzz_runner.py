"""A fuzzed case from generation to verdict, and the deep profile's stateful sequences.

:meth:`Fuzzer.run` is what each schemathesis-generated test does: make the case safe
(:class:`~ksentinel.contract.fuzz_safety.FuzzGuard`), send it with the suite's KS (refreshed on
``INVALID_KS``), remember what it created, and judge the answer with the Kaltura checks; once per
action that needs a session it also sends the request without the KS. The first
broken contract of an action is *sticky*: every later example of that action fails the same way
without another request, so Hypothesis's replay of the failing example agrees with the first run
even when the target misbehaves only sometimes (one call in five answering HTTP 500).
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
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
from ksentinel.contract.kaltura_checks import KALTURA_CHECKS, by_rule, rule_of, subject_of
from ksentinel.contract.schemathesis_support import (
    KsAuth,
    call_with_ks_refresh,
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
THROWAWAY_EXPIRY = 600
SWEEP_ATTEMPTS = 3


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
        self.sent: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.skip_reasons: dict[str, str] = {}
        self._probed: set[str] = set()
        self.on_failure: Callable[[ContractBroken], None] | None = None
        paths = schema.raw_schema.get("paths") or {}
        self.subjects = {
            f"POST {path}": str(item["post"].get("operationId", path))
            for path, item in paths.items()
            if isinstance(item, dict) and "post" in item
        }

    def run(self, case: Case) -> None:
        """Prepare, send and judge one generated case (the body of the schemathesis test)."""
        subject = subject_of(case)
        if subject in self.broken:
            _fail(self.broken[subject].again())
        reason = self.guard.prepare(case)
        if reason is not None:
            self.skipped[subject] += 1
            self.skip_reasons.setdefault(subject, reason)
            return
        response = self.call(case)
        self.validate(case, response)
        self._probe_without_ks(case, subject)

    def _probe_without_ks(self, case: Case, subject: str) -> None:
        """Once per action that always needs a session: the same (safe) request without the KS,
        which must fail (``no_success_without_ks``); schemathesis never drops the KS on its own."""
        operation = case.operation.definition.raw
        if operation.get("x-kaltura-session-required") != "always" or subject in self._probed:
            return
        query = dict(case.query or {})
        if not query.pop("ks", None) or (case.meta is not None and case.meta.generation.mode.is_negative):
            return
        self._probed.add(subject)
        anonymous = case.derive(query=query)
        self.validate(anonymous, self.call(anonymous))

    def call(self, case: Case, **kwargs: Any) -> Response:
        response = call_with_ks_refresh(case, self.auth, **kwargs)
        self.guard.record(case, response)
        self.sent[subject_of(case)] += 1
        return response

    def validate(self, case: Case, response: Response) -> None:
        """The Kaltura checks on one answer; raises :class:`ContractBroken` (and remembers it)."""
        try:
            case.validate_response(response, checks=self.checks)
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

    def summary(self) -> str:
        actions = len(set(self.sent) | set(self.skipped))
        text = f"{actions} actions, {sum(self.sent.values())} calls"
        if self.skipped:
            text += f", {sum(self.skipped.values())} cases not sent to keep existing objects safe"
        return text

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
def throwaway_ks(credentials: Credentials) -> str:
    """A fresh ADMIN KS for one call that may end it (session.end); never the suite's own."""
    c = credentials
    return ks_lib.build(
        c.admin_secret, c.partner_id, "ksentinel-throwaway", 2, THROWAWAY_EXPIRY, version=c.ks_version
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
    the run created deleted after (also when the run fails), then a sweep of ``run_tag`` as a net."""
    auth = KsAuth(sessions)
    document = openapi_document(target, scope)
    schema = load_schema(target, scope, profile=profile, auth=auth, document=document)
    tags, prefix = f"{TAG},{TAG}-{run_tag}", f"{TAG}-{run_tag}"
    pool = ObjectPool(seed_factory(api, tags=tags, file_prefix=prefix))
    guard = FuzzGuard(
        document, pool, tags=tags, file_prefix=prefix, throwaway_ks=lambda: throwaway_ks(sessions.credentials)
    )
    try:
        for wanted in ("entry", "uploadtoken"):
            for _ in range(SEEDS_PER_KIND):
                made = pool.factory(wanted) if pool.factory else None
                if made is not None:
                    pool.add(made)
        yield Fuzzer(schema, guard, auth)
    finally:
        remove_created(api, pool, delete_params(document))
        for attempt in range(1, SWEEP_ATTEMPTS + 1):
            try:
                sweep(api, run_tag=run_tag)
                break
            except (KsentinelError, TransportError) as exc:
                if attempt == SWEEP_ATTEMPTS:
                    logger.warning("sweep of %s after fuzzing failed: %s", run_tag, exc)

"""Where a generated case carries its KS: in the request body, never in the URL.

A KS in a query string ends up in every access log, CDN and proxy log on the way. Kaltura reads its
parameters from the body for any method (docs/kaltura-api-v3.md section 1), as the client core
(:mod:`ksentinel.kaltura.api`) sends them, so the contract suite's generated cases do the same:

* a JSON body (an object): its ``ks`` key;
* a ``multipart/form-data`` body: the ``ks`` key of its ``json`` part when that part is a JSON object
  (Kaltura, and the reference platform, then read the parameters from that part only and ignore the
  other text fields), else a ``ks`` form field (read when there is no such ``json`` part);
* no body (an action without parameters): a JSON body ``{"ks": ...}``;
* a body that cannot carry one (a negative case's JSON array, string or number): no KS at all. Kaltura
  ignores such a body anyway, so the request is judged as one without a session.

The OpenAPI document keeps its ``apiKey``-in-query scheme (schemathesis builds its KS scenarios from
it, a missing or a broken KS among them); :func:`move_ks_to_body` moves whatever schemathesis put in the
query into the body before a case is sent, and :func:`assert_no_ks_in_url` refuses to send one that
still has it (a tool error, never a request).

Readers (:func:`ks_of`) also look at the query string, so a case built by hand with a query KS is
understood the same way (and moved before it is sent).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from schemathesis.core import NotSet

if TYPE_CHECKING:
    from schemathesis import Case

KS = "ks"
_JSON = "application/json"
_ABSENT = object()


class KsInUrl(RuntimeError):
    """A case about to be sent still carries a KS in its query string (a ksentinel bug)."""


def _is_multipart(case: Case) -> bool:
    return (case.media_type or "").startswith("multipart/")


def _json_part(body: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """The ``json`` part of a multipart body as an object (None when it is not one), and whether it was bytes."""
    part = body.get("json")
    as_bytes = isinstance(part, bytes)
    if as_bytes:
        part = part.decode("utf-8", "replace")
    if isinstance(part, str):
        try:
            decoded = json.loads(part)
        except ValueError:
            return None, as_bytes
        return (decoded if isinstance(decoded, dict) else None), as_bytes
    return None, as_bytes


def _body_ks(case: Case) -> Any:
    body = case.body
    if not isinstance(body, dict):
        return _ABSENT
    if _is_multipart(case):
        part, _ = _json_part(body)
        if part is not None and KS in part:
            return part[KS]
    return body.get(KS, _ABSENT)


def ks_of(case: Case) -> Any:
    """The KS ``case`` carries (in its body, else in its query string), or None when it has none."""
    found = _body_ks(case)
    if found is not _ABSENT:
        return found
    query = case.query if isinstance(case.query, dict) else {}
    return query.get(KS)


def has_ks(case: Case) -> bool:
    return ks_of(case) not in (None, "")


def put_ks(case: Case, value: Any) -> bool:
    """Put ``value`` as the KS of ``case``, in its body (see the module docs); never in the query.

    Returns False when the body cannot carry one (a JSON body that is not an object): the case then
    carries no KS at all."""
    _drop_query_ks(case)
    body = case.body
    if isinstance(body, NotSet) or body is None:
        case.body = {KS: value}
        if case.media_type is None:
            case.media_type = _JSON
        return True
    if not isinstance(body, dict):
        return False
    if _is_multipart(case):
        part, as_bytes = _json_part(body)
        if part is not None:
            text = json.dumps({**part, KS: value})
            case.body = {k: v for k, v in body.items() if k != KS}
            case.body["json"] = text.encode() if as_bytes else text
            return True
    case.body = {**body, KS: value}
    return True


def drop_ks(case: Case) -> None:
    """No KS anywhere in ``case`` (its body, its ``json`` part, its query string)."""
    _drop_query_ks(case)
    body = case.body
    if not isinstance(body, dict):
        return
    if _is_multipart(case):
        part, as_bytes = _json_part(body)
        if part is not None and KS in part:
            text = json.dumps({k: v for k, v in part.items() if k != KS})
            body = {**body, "json": text.encode() if as_bytes else text}
    case.body = {k: v for k, v in body.items() if k != KS}


def move_ks_to_body(case: Case) -> None:
    """The KS schemathesis left in the query string (its own KS scenarios: a broken or generated one)
    goes into the body, unless the body already carries one (ours, from the auth provider), which wins."""
    query = case.query if isinstance(case.query, dict) else None
    if not query or KS not in query:
        return
    value = query[KS]
    _drop_query_ks(case)
    if _body_ks(case) is _ABSENT and value is not None:
        put_ks(case, value)


def assert_no_ks_in_url(case: Case) -> None:
    """Raise :class:`KsInUrl` when ``case`` would send a KS in its URL."""
    query = case.query if isinstance(case.query, dict) else {}
    if any(str(name).lower() == KS for name in query):
        raise KsInUrl(f"{case.operation.label}: a KS in the query string (it must travel in the body)")


def _drop_query_ks(case: Case) -> None:
    if isinstance(case.query, dict) and any(str(name).lower() == KS for name in case.query):
        case.query = {k: v for k, v in case.query.items() if str(k).lower() != KS}

"""Fuzzing a production partner without harming it.

* **Guarded operations** never reach an object the run did not create. An operation is guarded when
  the scope marks it destructive (``Scope.is_destructive``: delete, update, ...) or when it names an
  existing object by id without being a read (``addContent(entryId)``, ``upload(uploadTokenId)``,
  ``addFromUploadedFile(uploadTokenId)``). Before such a case is sent, every id parameter is
  replaced by the id of an object this run created (:class:`ObjectPool`, seeded at the start of the
  run and refilled on demand); a case whose id cannot be replaced is not sent at all.
* **Session-ending operations** (destructive ``session.*`` actions without an id, i.e.
  ``session.end``) only ever end a throwaway KS minted for that one call (short-lived, and ended
  again at the end of the run: a case whose request shape the server does not read, such as a
  malformed content type, answers without having seen the KS).
* **Everything a fuzzed add-like call creates** is recorded from its response and deleted at the
  end of the run (:func:`remove_created`); add bodies carry ``tags = ksentinel,ksentinel-<run>``
  (upload tokens a ``fileName`` starting ``ksentinel-<run>``) so ``ksentinel sweep`` finds
  whatever a crashed run left behind.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ksentinel.contract.fuzz_scope import not_fuzzed_reason
from ksentinel.contract.ks_placement import has_ks, move_ks_to_body, put_ks
from ksentinel.contract.negative import request_params, request_schema
from ksentinel.errors import KalturaApiError
from ksentinel.kaltura.transport import TransportError

if TYPE_CHECKING:
    from schemathesis import APIOperation, Case, Response

    from ksentinel.kaltura.api import KalturaApi

logger = logging.getLogger(__name__)

ID_PARAM = re.compile(r"^(id|[a-z][A-Za-z0-9]*Id)$")
READ_ACTION = re.compile(r"^(get|list|count|search)($|[A-Z])")
ADD_LIKE = re.compile(r"^(add|clone)($|[A-Z])")
_PATH = re.compile(r"^/api_v3/service/([^/]+)/action/([^/]+)$")
_REF = "#/components/schemas/"
CLEANUP_ATTEMPTS = 3


def kind_of(class_name: str) -> str:
    """The pool key of a class: ``KalturaMediaEntry`` -> ``mediaentry``."""
    name = class_name[len("Kaltura") :] if class_name.startswith("Kaltura") else class_name
    return name.lower()


# ---- the objects this run created ------------------------------------------------------------------
@dataclass
class Created:
    object_id: str
    kind: str  # kind_of(objectType)
    service_id: str  # the service whose add-like action created it
    alive: bool = True


class ObjectPool:
    """Every object this run created, and which of them may still stand in for a generated id.

    ``factory(wanted)`` creates a fresh object of a kind ending with ``wanted`` (``entry``,
    ``uploadtoken``) when none is alive, or returns None when it cannot.
    """

    def __init__(self, factory: Callable[[str], Created | None] | None = None) -> None:
        self.factory = factory
        self._objects: dict[str, Created] = {}
        self._lock = threading.Lock()
        self._turn = itertools.count()

    def add(self, created: Created) -> None:
        with self._lock:
            self._objects.setdefault(created.object_id, created)

    def owns(self, object_id: object) -> bool:
        if isinstance(object_id, bool) or not isinstance(object_id, str | int):
            return False
        return str(object_id) in self._objects

    def retire(self, object_id: str) -> None:
        """The object is gone (deleted by a fuzzed call); keep it for the final clean-up only."""
        with self._lock:
            if object_id in self._objects:
                self._objects[object_id].alive = False

    def created(self) -> list[Created]:
        with self._lock:
            return list(self._objects.values())

    def pick(self, wanted: str, service_id: str | None = None) -> str | None:
        """An alive object whose kind ends with ``wanted`` (or, with ``service_id``, that this
        service created), taking turns; a new one from the factory when there is none."""
        with self._lock:
            candidates = [
                c
                for c in self._objects.values()
                if c.alive and (c.service_id == service_id if service_id else c.kind.endswith(wanted))
            ]
            if candidates:
                return candidates[next(self._turn) % len(candidates)].object_id
        if self.factory is None or service_id:
            return None
        made = self.factory(wanted)
        if made is None:
            return None
        self.add(made)
        return made.object_id


# ---- what an operation may touch --------------------------------------------------------------------
@dataclass(frozen=True)
class OperationRisk:
    subject: str
    service_id: str
    action: str
    destructive: bool
    references: tuple[str, ...]  # id parameters that name existing objects
    creates: bool

    @property
    def guarded(self) -> bool:
        return self.destructive or (bool(self.references) and not READ_ACTION.match(self.action))

    @property
    def ends_session(self) -> bool:
        return self.destructive and self.service_id == "session" and not self.references


class FuzzGuard:
    """Makes each generated case safe to send (:meth:`prepare`) and learns from answers (:meth:`record`)."""

    def __init__(
        self,
        document: Mapping[str, Any],
        pool: ObjectPool,
        *,
        tags: str,
        file_prefix: str,
        throwaway_ks: Callable[[], str],
    ) -> None:
        self.document = document
        self.components: Mapping[str, Any] = (document.get("components") or {}).get("schemas") or {}
        self.pool = pool
        self.tags = tags
        self.file_prefix = file_prefix
        self.throwaway_ks = throwaway_ks
        self.created_kinds = self._created_kinds()
        self._risks: dict[str, OperationRisk] = {}

    # ---- classification ------------------------------------------------------------------------
    def _created_kinds(self) -> set[str]:
        kinds = set()
        for path, item in (self.document.get("paths") or {}).items():
            match = _PATH.match(path)
            if match and ADD_LIKE.match(match.group(2)):
                for ref in _refs((item.get("post") or {}).get("responses", {}).get("200", {})):
                    kinds.add(kind_of(ref))
        return kinds

    def risk(self, operation: APIOperation) -> OperationRisk:
        cached = self._risks.get(operation.label)
        if cached is None:
            cached = self._risks[operation.label] = self._classify(operation)
        return cached

    def _classify(self, operation: APIOperation) -> OperationRisk:
        raw = operation.definition.raw
        match = _PATH.match(operation.path)
        service_id, action = (match.group(1), match.group(2)) if match else ("", "")
        destructive = bool(raw.get("x-kaltura-destructive"))
        schema, _ = request_schema(raw)
        references = tuple(
            name
            for name, declared in (schema.get("properties") or {}).items()
            if ID_PARAM.match(name)
            and declared.get("type") in ("string", "integer")
            and (destructive or self._names_created_kind(name))
        )
        return OperationRisk(
            str(raw.get("operationId") or operation.label),
            service_id,
            action,
            destructive,
            references,
            bool(ADD_LIKE.match(action)),
        )

    def _names_created_kind(self, param: str) -> bool:
        wanted = param[:-2].lower()
        return param == "id" or any(kind.endswith(wanted) for kind in self.created_kinds)

    # ---- before a case is sent -----------------------------------------------------------------
    def refusal(self, operation: APIOperation) -> str | None:
        """Why no case of ``operation`` can ever be sent (whatever was generated), or None: it is not
        fuzzed (:mod:`ksentinel.contract.fuzz_scope`), or the guard cannot make it safe."""
        left_out = not_fuzzed_reason(operation.definition.raw)
        if left_out is not None:
            return left_out
        risk = self.risk(operation)
        if risk.guarded and not risk.ends_session and not risk.references:
            return f"{risk.subject} changes existing state and names no object this run could provide"
        return None

    def prepare(self, case: Case) -> str | None:
        """Edit ``case`` in place so it is safe to send; returns why it must not be sent, or None."""
        risk = self.risk(case.operation)
        move_ks_to_body(case)  # a KS never travels in the URL (ks_placement)
        left_out = not_fuzzed_reason(case.operation.definition.raw)
        if left_out is not None:
            return left_out
        if not isinstance(case.query, dict) or case.query.get("format") != "1":
            # the response format is transport, not input (stateful runs fuzz it): always JSON
            case.query = {**(case.query if isinstance(case.query, dict) else {}), "format": "1"}
        params, _ = request_params(case)
        schema, _ = request_schema(case.operation.definition.raw)
        if risk.creates and isinstance(params, dict) and self._tag(params, schema):
            _write_params(case, params)
        if risk.ends_session:
            if has_ks(case):
                put_ks(case, self.throwaway_ks())
            return None
        if not risk.guarded:
            return None
        refused = self.refusal(case.operation)
        if refused is not None:
            return refused
        if not isinstance(params, dict):
            return None if params in ({}, None) else f"{risk.subject} body is not an object"
        changed = False
        for name in risk.references:
            value = params.get(name)
            if value is None or self.pool.owns(value):
                continue
            if isinstance(value, bool) or not isinstance(value, str | int):
                return (
                    f"{name} of {risk.subject} is not an id this run could replace ({type(value).__name__})"
                )
            stand_in: str | int | None = self.pool.pick(
                name[:-2].lower(), risk.service_id if name == "id" else None
            )
            if (
                stand_in is not None
                and (schema.get("properties") or {}).get(name, {}).get("type") == "integer"
            ):
                # an int-typed id gets an int (Kaltura would cast "0_abc" to 0, some other object)
                stand_in = int(stand_in) if str(stand_in).isdigit() else None
            if stand_in is None:
                return f"no object created by this run can stand in for {name} of {risk.subject}"
            params[name] = stand_in
            changed = True
        if changed:
            _write_params(case, params)
        return None

    def _tag(self, params: dict[str, Any], schema: Mapping[str, Any]) -> bool:
        declared = schema.get("properties") or {}
        changed = False
        for name, value in params.items():
            if not isinstance(value, dict):
                continue
            # the class Kaltura builds: the one objectType names, else the declared one
            sent = value.get("objectType")
            refs = _refs(declared.get(name) or {})
            class_name = (
                sent if isinstance(sent, str) and self._properties(sent) else (refs[0] if refs else "")
            )
            props = self._properties(class_name)
            if "tags" in props and (value.get("tags") is None or isinstance(value.get("tags"), str)):
                value["tags"] = self.tags
                changed = True
            file_name = value.get("fileName")
            if (
                "UploadToken" in class_name
                and "fileName" in props
                and (file_name is None or isinstance(file_name, str))
            ):
                value["fileName"] = f"{self.file_prefix}.bin"
                changed = True
        return changed

    def _properties(self, class_name: str) -> Mapping[str, Any]:
        component = self.components.get(f"{class_name}.exact") or self.components.get(class_name) or {}
        return component.get("properties") or {}

    # ---- after an answer -----------------------------------------------------------------------
    def record(self, case: Case, response: Response) -> None:
        """Remember what a call created; retire pool objects a call deleted or found gone."""
        risk = self.risk(case.operation)
        if response.status_code != 200:
            return
        try:
            body = json.loads(response.content)
        except ValueError:
            return
        failed = isinstance(body, dict) and body.get("objectType") == "KalturaAPIException"
        if risk.creates and isinstance(body, dict) and not failed and isinstance(body.get("id"), str | int):
            self.pool.add(Created(str(body["id"]), kind_of(str(body.get("objectType", ""))), risk.service_id))
        if not risk.references:
            return
        params, _ = request_params(case)
        if not isinstance(params, dict):
            return
        args = body.get("args") if failed and isinstance(body, dict) else None
        named = {str(v) for v in args.values()} if isinstance(args, dict) else set()
        not_found = failed and str(body.get("code", "")).endswith("_NOT_FOUND")  # type: ignore[union-attr]
        for name in risk.references:
            value = params.get(name)
            if not self.pool.owns(value):
                continue
            # deleted by this call, or reported missing by name (not some other object it mentions)
            if (not failed and risk.action.startswith("delete")) or (not_found and str(value) in named):
                self.pool.retire(str(value))


def _refs(schema: Any) -> list[str]:
    """Class names a schema fragment refers to (``$ref``s into the components), in order."""
    found: list[str] = []
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF):
            found.append(ref[len(_REF) :])
        for value in schema.values():
            found += _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            found += _refs(value)
    return [name for name in found if name != "KalturaAPIException"]


def _write_params(case: Case, params: dict[str, Any]) -> None:
    """Put edited parameters back where the case keeps them (the JSON body or its ``json`` part)."""
    body = case.body
    if (case.media_type or "").startswith("multipart/") and isinstance(body, dict):
        part = body.get("json")
        text = json.dumps(params)
        case.body = {**body, "json": text.encode() if isinstance(part, bytes) else text}
    else:
        case.body = params


# ---- clean-up ---------------------------------------------------------------------------------------
def delete_params(document: Mapping[str, Any]) -> dict[str, str]:
    """For each service with a ``delete`` action, the parameter that names the object to delete."""
    found = {}
    for path, item in (document.get("paths") or {}).items():
        match = _PATH.match(path)
        if not match or match.group(2) != "delete":
            continue
        schema, _ = request_schema(item.get("post") or {})
        names = [n for n in schema.get("required") or () if ID_PARAM.match(n)]
        if names:
            found[match.group(1)] = names[0]
    return found


def call_with_retries(api: KalturaApi, service: str, action: str, **params: Any) -> Any:
    """One call, repeated (up to :data:`CLEANUP_ATTEMPTS` times) while the target answers 5xx or
    the connection fails; API errors are raised at once."""
    for attempt in range(1, CLEANUP_ATTEMPTS + 1):
        try:
            return api.call(service, action, **params)
        except KalturaApiError as exc:
            if not (exc.http_status or 0) >= 500 or attempt == CLEANUP_ATTEMPTS:
                raise
        except TransportError:
            if attempt == CLEANUP_ATTEMPTS:
                raise
    return None  # pragma: no cover


def remove_created(api: KalturaApi, pool: ObjectPool, deleters: Mapping[str, str]) -> list[str]:
    """Delete every object in ``pool``; returns what could not be removed (already gone is fine)."""
    problems = []
    for created in pool.created():  # retired ones too: deleting them again costs a NOT_FOUND at most
        service = created.service_id if created.service_id in deleters else _fallback(created, deleters)
        if service is None:
            problems.append(f"{created.kind} {created.object_id}: no delete action to remove it")
            continue
        try:
            call_with_retries(api, service, "delete", **{deleters[service]: created.object_id})
        except KalturaApiError as exc:
            if not exc.code.endswith("_NOT_FOUND"):
                problems.append(f"{created.kind} {created.object_id}: {exc.code}")
        except TransportError as exc:
            problems.append(f"{created.kind} {created.object_id}: {exc}")
    for problem in problems:
        logger.warning("clean-up: %s", problem)
    return problems


def _fallback(created: Created, deleters: Mapping[str, str]) -> str | None:
    """Entries made by media.add can be deleted by baseEntry.delete and the other way round."""
    if created.kind.endswith("entry"):
        return next((s for s in ("baseentry", "media") if s in deleters), None)
    return None


# ---- seeds ------------------------------------------------------------------------------------------
def seed_factory(api: KalturaApi, *, tags: str, file_prefix: str) -> Callable[[str], Created | None]:
    """Makes the tagged objects destructive cases act on: a media entry for ``...entryId``, an upload
    token for ``uploadTokenId``; None for kinds it cannot make (those cases are not sent)."""
    numbers = itertools.count(1)

    def make(wanted: str) -> Created | None:
        number = next(numbers)
        try:
            if wanted and "mediaentry".endswith(wanted):
                entry = call_with_retries(
                    api,
                    "media",
                    "add",
                    entry={
                        "objectType": "KalturaMediaEntry",
                        "name": f"ksentinel fuzz seed {number}",
                        "mediaType": 1,
                        "tags": tags,
                    },
                )
                return Created(
                    str(entry["id"]), kind_of(str(entry.get("objectType", "KalturaMediaEntry"))), "media"
                )
            if wanted and "uploadtoken".endswith(wanted):
                token = call_with_retries(
                    api,
                    "uploadToken",
                    "add",
                    uploadToken={
                        "objectType": "KalturaUploadToken",
                        "fileName": f"{file_prefix}-seed-{number}.bin",
                    },
                )
                return Created(str(token["id"]), "uploadtoken", "uploadtoken")
        except (KalturaApiError, TransportError, KeyError, TypeError) as exc:
            logger.warning("could not create a %s for the fuzzing pool: %s", wanted, exc)
        return None

    return make

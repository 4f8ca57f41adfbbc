"""One API call from parameters to result, in the order Kaltura's dispatcher checks things.

service/action lookup -> KS signature (stage 1) -> arguments -> KS expiry and logout (stage 2)
-> permissions -> response cache -> the action's handler. Multirequests run each sub-call through
the same path and resolve ``{N:result:...}`` back-references between them.

With a served schema file (``serve --schema FILE``), an action the file lists but the reference does
not implement is refused with ``SERVICE_FORBIDDEN`` after the KS checks, as for a partner without that
plugin; what the file does not list either stays ``SERVICE_DOES_NOT_EXISTS`` / ``ACTION_DOES_NOT_EXISTS``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ksentinel.kaltura import ks as ks_lib
from ksentinel.kaltura.redact import mask_ks
from ksentinel.reference import faults as fault_lib
from ksentinel.reference.apidef import SCHEMA
from ksentinel.reference.cache import DEFAULT_TTL, CachedResponse, CallerIdentity, cache_key
from ksentinel.reference.codec import Decoder, parse_int
from ksentinel.reference.errors import ApiException
from ksentinel.reference.platform import Platform
from ksentinel.reference.request import UploadedFile
from ksentinel.reference.schema_xml import ServedSchema, load_served_schema
from ksentinel.reference.serialize import plain
from ksentinel.reference.services import HANDLERS, Call, Caller, load_all
from ksentinel.reference.store import ks_hash

log = logging.getLogger(__name__)

# actions a request without a KS may call (NO_SESSION_ROLE)
ANONYMOUS_ACTIONS = frozenset(
    {
        ("session", "start"),
        ("session", "end"),
        ("session", "startwidgetsession"),
        ("system", "ping"),
        ("baseentry", "get"),
        ("media", "get"),
    }
)
USER_FORBIDDEN = frozenset({("session", "get")})
_BACK_REFERENCE = re.compile(r"\{([0-9]+):result:?(.*)?\}")
# Decoding and verifying a KS (base64, AES, SHA-1) and hashing it for the logout check cost more than
# the rest of a cached read, and clients send the same KS again and again: remember the answers of
# these pure functions (failures raise, so they are never remembered; the secrets are part of the
# key, so another platform or partner never reuses a verification).
_ks_decode = functools.lru_cache(maxsize=4096)(ks_lib.decode)
_ks_verify = functools.lru_cache(maxsize=4096)(ks_lib.verify)
_ks_hash = functools.lru_cache(maxsize=4096)(ks_hash)

load_all()
_DECODER = Decoder(SCHEMA)


@dataclass
class Outcome:
    """What one call produced: a plain result or an error, plus cache information."""

    value: Any
    error: ApiException | None = None
    cache_key: str | None = None
    cache_partner: int | None = None
    cache_ttl: float = 0.0
    wrote_partner: int | None = None
    service_label: str = ""
    cached: CachedResponse | None = None


def _invalid_ks(ksid: str) -> ApiException:
    """The server's quirk: whatever failed, the error says ``-1,INVALID_STR`` and KSID names the failure."""
    return ApiException("INVALID_KS", ksid, ks_lib.KsFailure.INVALID_STR, "INVALID_STR")


def refused_ksid(platform: Platform, ks: str) -> str:
    """KSID of a stage-1 ``INVALID_KS``: the KS as sent (realism ``echo_invalid_ks``) or its mask.

    The real server echoes it: ``kCurrentContext::initKsPartnerUser`` (alpha/apps/kaltura/lib/
    kCurrentContext.class.php) throws ``kCoreException::INVALID_KS`` with the KS string as its data when
    ``kSessionUtils::crackKs`` fails, and ``KalturaFrontController`` turns it into ``INVALID_KS`` with
    that data as KSID.
    """
    return ks if platform.config.realism.echo_invalid_ks else mask_ks(ks)


def authenticate(platform: Platform, ks: str | None) -> Caller:
    """Stage 1: decode the KS and check its signature against the partner's admin secrets."""
    if not ks:
        return Caller(partner_id=0)
    try:
        envelope = _ks_decode(ks)
    except ks_lib.KsError as exc:
        raise _invalid_ks(refused_ksid(platform, ks)) from exc
    partner = platform.partners.get(envelope.partner_id)
    if partner is None:
        raise _invalid_ks(refused_ksid(platform, ks))
    try:
        info = _ks_verify(envelope, tuple(partner.admin_secrets))
    except ks_lib.KsError as exc:
        if not platform.has("ks-signature-ignored"):
            raise _invalid_ks(refused_ksid(platform, ks)) from exc
        info = _unverified(platform, envelope)
    return Caller(partner_id=envelope.partner_id, ks=ks, info=info)


def _unverified(platform: Platform, envelope: ks_lib.KsEnvelope) -> ks_lib.KsInfo:
    """The ``ks-signature-ignored`` fault: read a v1 KS's fields without checking who signed it."""
    if envelope.version == 1:
        info = envelope.payload.partition(b"|")[2].decode("utf-8", "replace").split(";") + [""] * 9
        return ks_lib.KsInfo(
            1, envelope.partner_id, parse_int(info[2]), parse_int(info[3]), info[5], info[6], info[4]
        )
    raise _invalid_ks(refused_ksid(platform, envelope.text))


def check_session(platform: Platform, caller: Caller) -> None:
    """Stage 2: expiry and logout."""
    if caller.info is None or caller.ks is None:
        return
    if caller.info.expired() and not platform.has("ks-expiry-ignored"):
        raise _invalid_ks("EXPIRED")
    if _ks_hash(caller.ks) in platform.ended:
        raise _invalid_ks("LOGOUT")


def _refuse_unimplemented(
    platform: Platform, params: Mapping[str, Any], service_name: str, action_name: str
) -> str | None:
    """For a call the reference cannot answer: ``SERVICE_FORBIDDEN`` if the served schema file lists it.

    Raised after the KS checks (a forged or expired KS still gets ``INVALID_KS``), as the real server
    refuses a service of a plugin the partner does not have (``KalturaBaseService::initService``).
    Returns the file's id of the service when the file knows the service but not the action.
    """
    path = platform.config.schema_file
    if path is None:
        return None
    served = load_served_schema(path)
    declared = served.declares(service_name, action_name)
    if declared is None:
        known = served.service(service_name)
        return known.id if known is not None else None
    service_def, action_def = declared
    caller = authenticate(platform, str(params.get("ks") or "") or None)
    check_session(platform, caller)
    raise ApiException("SERVICE_FORBIDDEN", f"{service_def.id}->{action_def.name}")


def _validate_as_served(
    platform: Platform,
    service_id: str,
    action_name: str,
    params: Mapping[str, Any],
    files: Mapping[str, UploadedFile],
) -> None:
    """With a served schema file, validate the call against the file's declaration of the action.

    The file declares more than the reference implements (hundreds of filter and entry properties,
    many of them enums): the real server validates every one of them (``INVALID_ENUM_VALUE``,
    ``PROPERTY_VALIDATION_*``), so a bad value in a property the reference would ignore is refused here
    as it is there. The reference's own decoding of what it implements follows.
    """
    path = platform.config.schema_file
    if path is None:
        return
    served = load_served_schema(path)
    declared = served.declares(service_id, action_name)
    if declared is None:
        return
    try:
        _served_decoder(served).arguments(declared[1], params, files)
    except ApiException:
        raise
    except Exception:  # a shape the served declaration cannot decode: leave it to the reference's own
        log.debug("served-schema validation of %s.%s skipped", service_id, action_name, exc_info=True)


_SERVED_DECODERS: dict[Any, Decoder] = {}


def _served_decoder(served: ServedSchema) -> Decoder:
    """One decoder per served schema file (built on first use; the schema is immutable)."""
    decoder = _SERVED_DECODERS.get(served.path)
    if decoder is None or decoder.schema is not served.schema:
        decoder = _SERVED_DECODERS[served.path] = Decoder(served.schema)
    return decoder


def check_permission(caller: Caller, service_id: str, action_name: str) -> None:
    key = (service_id, action_name.lower())
    label = f"{service_id}->{action_name}"
    if caller.info is None:
        if key not in ANONYMOUS_ACTIONS:
            raise ApiException("SERVICE_FORBIDDEN", label)
    elif not caller.is_admin and key in USER_FORBIDDEN:
        raise ApiException("SERVICE_FORBIDDEN", label)


def call_action(
    platform: Platform,
    params: Mapping[str, Any],
    files: Mapping[str, UploadedFile],
    *,
    base_url: str,
    fmt: int,
    use_cache: bool = True,
    lookup: Callable[[str], CachedResponse | None] | None = None,
) -> Outcome:
    """Run one (non-multi) call; API errors come back in ``Outcome.error``, never raised."""
    service_name = str(params.get("service") or "")
    action_name = str(params.get("action") or "")
    outcome = Outcome(None, service_label=f"{service_name.lower()}->{action_name}")
    platform.advance_clock()
    try:
        if not service_name:
            raise ApiException("SERVICE_NOT_SPECIFIED")
        service = SCHEMA.service(service_name)
        found = SCHEMA.action(service.id, action_name) if service is not None else None
        registration = HANDLERS.get((service.id, action_name.lower())) if service is not None else None
        if found is None or registration is None:
            service_id = _refuse_unimplemented(platform, params, service_name, action_name)
            service_id = service_id or (service.id if service is not None else None)
            if service_id is None:
                raise ApiException("SERVICE_DOES_NOT_EXISTS", service_name)
            raise ApiException("ACTION_DOES_NOT_EXISTS", action_name, service_id)
        _, action_def = found
        caller = authenticate(platform, str(params.get("ks") or "") or None)
        _validate_as_served(platform, service.id, action_def.name, params, files)
        arguments = _DECODER.arguments(action_def, params, files)
        check_session(platform, caller)
        check_permission(caller, service.id, action_def.name)
        call = Call(platform, caller, base_url, service.id, action_def.name)
        if registration.cacheable and caller.info is not None:
            identity = CallerIdentity(
                caller.partner_id, caller.user_id, caller.info.type, caller.info.privileges
            )
            outcome.cache_key = cache_key(
                service.id,
                action_def.name,
                dict(params),
                identity,
                fmt,
                include_partner=not platform.has("cache-leak"),
                include_user=not platform.has("cache-user-leak"),
            )
            outcome.cache_partner = caller.partner_id
            if use_cache and lookup is not None:
                outcome.cached = lookup(outcome.cache_key)
                if outcome.cached is not None:
                    return outcome
            outcome.cache_ttl = DEFAULT_TTL if use_cache else 0.0
        result = registration.handler(call, **arguments)
        if registration.writes and caller.partner_id:
            outcome.wrote_partner = caller.partner_id
        value = plain(result, SCHEMA)
        if fault_lib.drifts(platform.faults, action_def.name):
            value = fault_lib.drift(value)
        outcome.value = value
    except ApiException as exc:
        outcome.error = exc
        outcome.value = plain(exc, SCHEMA)
        outcome.cache_key = None
    return outcome


def needs_worker_thread(platform: Platform, service: Any, action: Any, params: Mapping[str, Any]) -> bool:
    """Whether a call may hold a final upload chunk back (realism ``final_chunk_wait``).

    Such a call sleeps while it waits for the chunks before it, so the app runs it in a worker thread,
    never on the event loop that has to receive those chunks.
    """
    if platform.config.realism.final_chunk_wait <= 0:
        return False

    def is_upload(service: Any, action: Any) -> bool:
        return str(service or "").lower() == "uploadtoken" and str(action or "").lower() == "upload"

    if str(service or "").lower() == "multirequest":
        return any(
            is_upload(sub.get("service"), sub.get("action"))
            for sub in params.values()
            if isinstance(sub, Mapping)
        )
    return is_upload(service, action)


# ---- multirequest ---------------------------------------------------------------------------------
def _resolve_path(value: Any, path: list[str]) -> Any:
    for step in path:
        if step == "_all" and isinstance(value, list):
            return None
        if isinstance(value, list):
            value = value[int(step)] if step.isdigit() and int(step) < len(value) else None
        elif isinstance(value, Mapping):
            if value.get("objectType") == "KalturaAPIException":
                return None
            value = value.get(step)
        else:
            return None
    return value


def _resolve_all(value: Any, path: list[str]) -> str | None:
    if "_all" not in path:
        return None
    index = path.index("_all")
    items = _resolve_path(value, path[:index])
    if not isinstance(items, list):
        return ""
    return "".join(f"{_resolve_path(item, path[index + 1 :])}," for item in items)


def substitute(value: Any, results: list[Any]) -> Any:
    """Replace ``{N:result:path}`` in string values (one reference per value, as the server does)."""
    if isinstance(value, dict):
        return {k: substitute(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, results) for v in value]
    if not isinstance(value, str) or ":result" not in value:
        return value
    match = _BACK_REFERENCE.search(value)
    if match is None:
        return value
    index = int(match.group(1)) - 1
    path = [p for p in (match.group(2) or "").split(":") if p]
    replacement: Any = ""
    if 0 <= index < len(results):
        result = results[index]
        joined = _resolve_all(result, path)
        if joined is not None:
            replacement = joined
        else:
            resolved = _resolve_path(result, path) if path else result
            replacement = (
                resolved
                if isinstance(resolved, str | int | float) and not isinstance(resolved, bool)
                else (("1" if resolved else "0") if isinstance(resolved, bool) else "")
            )
    return value[: match.start()] + str(replacement) + value[match.end() :]


def sub_requests(
    params: Mapping[str, Any], files: Mapping[str, UploadedFile]
) -> list[tuple[dict[str, Any], dict[str, UploadedFile]]]:
    """The numbered sub-requests of a multirequest, in order, with their files."""
    numbered = sorted(int(k) for k in params if str(k).isdigit() and isinstance(params[k], Mapping))
    if not numbered:
        return []
    requests: list[tuple[dict[str, Any], dict[str, UploadedFile]]] = []
    for index in range(min(1, numbered[0]), numbered[-1] + 1):
        sub = params.get(str(index))
        if not isinstance(sub, Mapping) or "service" not in sub or "action" not in sub:
            break
        sub = dict(sub)
        sub.pop("format", None)
        for inherited in ("ks", "partnerId", "clientTag"):
            if inherited not in sub and inherited in params:
                sub[inherited] = params[inherited]
        sub_files = {
            name.split(":", 1)[1]: f for name, f in files.items() if name.split(":", 1)[0] == str(index)
        }
        requests.append((sub, sub_files))
        if len(requests) >= 500:
            break
    return requests


def call_multirequest(
    platform: Platform,
    params: Mapping[str, Any],
    files: Mapping[str, UploadedFile],
    *,
    base_url: str,
    fmt: int,
) -> tuple[list[Any], set[int]]:
    """Results of every sub-request (errors in place) and the partners that wrote."""
    results: list[Any] = []
    wrote: set[int] = set()
    for sub, sub_files in sub_requests(params, files):
        sub = substitute(sub, results)
        outcome = call_action(platform, sub, sub_files, base_url=base_url, fmt=fmt, use_cache=False)
        results.append(outcome.value)
        if outcome.wrote_partner:
            wrote.add(outcome.wrote_partner)
            if not platform.has("stale-cache"):
                platform.cache.invalidate_partner(outcome.wrote_partner)
    return results, wrote

"""The Locust transport: :class:`~ksentinel.kaltura.transport.Transport` over a FastHttpUser's client.

Every HTTP call is one Locust request event, named after the flow step it belongs to
(:data:`~ksentinel.kaltura.transport.STEP_LABEL`, e.g. ``upload.chunk``), and judged like this:

* no HTTP answer (refused, reset, timed out): a failure ``CONNECTION`` / ``TIMEOUT``, and the flow
  sees the matching ``TransportError``;
* an HTTP error status: a failure ``HTTP_<status>``;
* HTTP 200 with a ``KalturaAPIException`` (looked for only when the body contains that word): a
  failure carrying the API's code, *unless the flow expected it*. Flows provoke some errors on
  purpose (``session.reuse_after_end`` wants ``INVALID_KS``), so the verdict waits until the flow
  shows what it made of the error: the step fails with that code -> failure; the flow carries on ->
  success. During clean-up (``<flow>.cleanup``) an object that is already gone is a success;
* otherwise a success.

A step that fails without a failed request (a broken invariant, a :class:`FlowFailure`) is reported
as one ``CHECK`` event under the step's name (:meth:`LocustTransport.on_step` is the flow context's
step listener). Response times are Locust's (ms); in the open model the first request of a flow
also carries the flow's start lag (:attr:`LocustTransport.lag`), so queueing is not hidden.

This module does not import Locust: ``client`` is duck-typed (``FastHttpSession.request`` with
``catch_response=True`` returns a response whose ``request_meta`` we fire ourselves).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ksentinel.errors import KalturaApiError
from ksentinel.flows.core import StepResult
from ksentinel.kaltura.transport import (
    STEP_LABEL,
    Headers,
    HttpRequest,
    HttpResponse,
    TransportConnectionError,
    TransportTimeout,
)
from ksentinel.kaltura.wire import API_EXCEPTION, decode_response
from ksentinel.load.failures import CHECK, GONE, LoadFailure

CHECK_TYPE = "CHECK"
FLOW_TYPE = "FLOW"
_MARKER = API_EXCEPTION.encode()
_ACTION = re.compile(r"/service/([A-Za-z0-9_]+)(?:/action/([A-Za-z0-9_]+))?")


@dataclass
class _Held:
    """An API error whose verdict waits for the flow's reaction."""

    label: str
    code: str
    meta: dict[str, Any]


class LocustTransport:
    """One Locust request event per HTTP call; see the module docstring for the verdicts."""

    def __init__(self, client: Any, request_event: Any) -> None:
        self.client = client
        self._fire: Callable[..., Any] = request_event.fire
        self.lag = 0.0
        #: True while a flow runs: its API errors wait for the flow's verdict (see the module doc)
        self.in_flow = False
        self._held: _Held | None = None
        self._failed: set[str] = set()

    # --- Transport -------------------------------------------------------------------------------

    def send(self, request: HttpRequest) -> HttpResponse:
        if self._held is not None:  # the flow made another call after the error: it expected it
            self._release(failed=False)
        label = STEP_LABEL.get() or fallback_label(request.url)
        response = self.client.request(
            request.method,
            request.url,
            name=label,
            data=request.body,
            headers=dict(request.headers),
            catch_response=True,
            allow_redirects=False,
        )
        meta: dict[str, Any] = response.request_meta
        if self.lag:
            meta["response_time"] += self.lag * 1000.0
            self.lag = 0.0
        status = int(response.status_code or 0)
        if status == 0:
            error = meta.get("exception")
            timeout = isinstance(error, TimeoutError) or "timeout" in type(error).__name__.lower()
            failure = TransportTimeout if timeout else TransportConnectionError
            self._report(meta, LoadFailure(failure.code, type(error).__name__), label)
            raise failure(f"{request.method} {request.url}: {type(error).__name__}: {error}")
        body = _content(response)
        headers = Headers(response.headers.items() if response.headers is not None else ())
        result = HttpResponse(status, headers, body, meta["response_time"] / 1000.0)
        if status >= 300:
            self._report(meta, LoadFailure(f"HTTP_{status}"), label)
        elif _MARKER in body and (code := api_error_code(result)) is not None:
            if label.endswith(".cleanup"):
                self._report(meta, None if code in GONE else LoadFailure(code), label)
            elif not self.in_flow:
                self._report(meta, LoadFailure(code), label)
            else:
                meta["exception"] = None
                self._held = _Held(label, code, meta)
        else:
            meta["exception"] = None
            self._fire(**meta)
        return result

    # --- the flow's side ----------------------------------------------------------------------------

    def on_step(self, result: StepResult) -> None:
        """Step listener: settle a held API error, report a failed step no request reported."""
        held = self._held
        if held is not None:
            self._release(failed=not result.ok and held.code == result.code and held.label == result.name)
        if not result.ok and result.name not in self._failed:
            self._fire(
                request_type=CHECK_TYPE,
                name=result.name,
                response_time=result.duration * 1000.0,
                response_length=0,
                response=None,
                context={},
                exception=LoadFailure(result.code or CHECK, result.reason),
                start_time=time.time() - result.duration,
                url="",
            )
        self._failed.clear()

    def flow_done(self) -> None:
        """After a flow (or when a user stops mid-flow): an error still held was expected."""
        if self._held is not None:
            self._release(failed=False)
        self._failed.clear()
        self.lag = 0.0

    # --- helpers -------------------------------------------------------------------------------------

    def _release(self, *, failed: bool) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._report(held.meta, LoadFailure(held.code) if failed else None, held.label)

    def _report(self, meta: dict[str, Any], failure: LoadFailure | None, label: str) -> None:
        meta["exception"] = failure
        if failure is not None:
            self._failed.add(label)
        self._fire(**meta)


def api_error_code(response: HttpResponse) -> str | None:
    """The code of the ``KalturaAPIException`` a 200 answer carries at its top level, if any."""
    try:
        decode_response(response.status, response.headers, response.body, format=0)
    except KalturaApiError as exc:
        return exc.code
    return None


def fallback_label(url: str) -> str:
    """A request name for calls made outside any flow step: ``api.<service>.<action>``."""
    match = _ACTION.search(url)
    if match is None:
        return "api.download" if "/playManifest/" in url else "api.other"
    service, action = match.group(1), match.group(2) or "request"
    return f"api.{service.lower()}.{action.lower()}"


def _content(response: Any) -> bytes:
    try:
        content = response.content
    except Exception:  # a body that could not be read: the status still tells what happened
        return b""
    return content or b""

"""The bounded set of error codes ksentinel reports as metric labels (anything else is ``OTHER``).

One list for the probe's ``ksentinel_api_errors_total{code}`` and the load run's
``ksentinel_load_failures_total{code}``: transport failures, HTTP statuses, a response that is not
Kaltura's, and the ``KalturaAPIException`` codes the flows can meet.

Throttling has codes of its own (:data:`THROTTLE_CODES`): ``ACTION_BLOCKED`` (Kaltura refused the
call before running it: the partner is blocked or over its rate limit), ``HTTP_429`` (Too Many
Requests) and ``HTTP_503_RETRY_AFTER`` (503 Service Unavailable *with* ``Retry-After``: the server
asks to be called again later, unlike a bare ``HTTP_503``). The API client backs off from them
(:mod:`ksentinel.kaltura.api`, docs/production.md).
"""

from __future__ import annotations

OTHER = "OTHER"
ACTION_BLOCKED = "ACTION_BLOCKED"
HTTP_429 = "HTTP_429"
HTTP_503_RETRY_AFTER = "HTTP_503_RETRY_AFTER"
#: The answers that say "slow down": the client backs off from them (reads; writes only when the
#: answer proves the action did not run).
THROTTLE_CODES: frozenset[str] = frozenset({ACTION_BLOCKED, HTTP_429, HTTP_503_RETRY_AFTER})

#: The ``code`` label values; anything else is ``OTHER``.
ERROR_CODES: frozenset[str] = frozenset(
    {
        # transport (ksentinel.kaltura.transport); TIMEOUT also when the probe's own timeout passed
        "TIMEOUT",
        "CONNECTION",
        "PROTOCOL",
        "TOO_LARGE",
        "TRANSPORT",
        # HTTP statuses
        *(f"HTTP_{status}" for status in (400, 401, 403, 404, 405, 408, 413, 429, 500, 502, 503, 504)),
        *(f"HTTP_{status}" for status in (301, 302, 303, 307, 308)),  # a redirect without Location
        # throttling: Kaltura's rate limit, and a 503 that says when to come back (Retry-After)
        ACTION_BLOCKED,
        HTTP_503_RETRY_AFTER,
        # downloads: more than 5 redirects, or one to a URL that is not http(s)
        "TOO_MANY_REDIRECTS",
        "BAD_REDIRECT",
        # an answer that is not a Kaltura answer at all (garbage, HTML, truncated JSON)
        "KSENTINEL_BAD_RESPONSE",
        # KalturaAPIException codes of the actions the flows call
        "INVALID_KS",
        "MISSING_KS",
        "EXPIRED_KS",
        "SERVICE_FORBIDDEN",
        "SERVICE_FORBIDDEN_CONTENT_BLOCKED",
        "PARTNER_ACCESS_FORBIDDEN",
        "START_SESSION_ERROR",
        "ENTRY_ID_NOT_FOUND",
        "ENTRY_ALREADY_WITH_CONTENT",
        "ENTRY_TYPE_NOT_SUPPORTED",
        "RESOURCE_TYPE_NOT_SUPPORTED",
        "UPLOAD_ERROR",
        "UPLOAD_TOKEN_NOT_FOUND",
        "UPLOAD_TOKEN_INVALID_STATUS_FOR_UPLOAD",
        "UPLOAD_TOKEN_INVALID_STATUS_FOR_ADD_ENTRY",
        "UPLOAD_TOKEN_CANNOT_RESUME",
        "UPLOAD_TOKEN_CANNOT_MATCH_EXPECTED_SIZE",
        "UPLOAD_TOKEN_MISSING_FILE_SIZE",
        "QUERY_EXCEEDED_MAX_MATCHES_ALLOWED",
        "MISSING_MANDATORY_PARAMETER",
        "INVALID_PARAMETER_CHAR",
        "INVALID_ENUM_VALUE",
        "PROPERTY_VALIDATION_CANNOT_BE_NULL",
        "PROPERTY_VALIDATION_NOT_UPDATABLE",
        "SERVICE_DOES_NOT_EXISTS",
        "ACTION_DOES_NOT_EXISTS",
        "INTERNAL_SERVERL_ERROR",
        "UNKNOWN_ERROR",
    }
)


def bounded_code(code: str | None) -> str:
    """``code`` when it is one of :data:`ERROR_CODES`, else ``OTHER``."""
    return code if code in ERROR_CODES else OTHER

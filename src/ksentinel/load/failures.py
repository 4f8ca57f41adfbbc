"""What a failed request or step is reported as: :class:`LoadFailure` and its bounded ``code``.

Locust files each failure under ``repr(exception)``, so :class:`LoadFailure`'s repr is the code
followed by a short, scrubbed detail (no KS, secret or entry id): ``HTTP_500``,
``ENTRY_ID_NOT_FOUND``, ``CHECK: the nocache list differs from the cached one``. The same code,
bounded by :func:`bounded_code`, is the ``code`` label of ``ksentinel_load_failures_total``.
"""

from __future__ import annotations

import re

from ksentinel.kaltura.codes import ERROR_CODES
from ksentinel.kaltura.redact import redact

#: A broken flow invariant without an API error code.
CHECK = "CHECK"
OTHER = "OTHER"
#: Codes an API error during clean-up may have without being a failure (already gone).
GONE = frozenset({"ENTRY_ID_NOT_FOUND", "UPLOAD_TOKEN_NOT_FOUND"})

#: The label values ``code`` may take; anything else is ``OTHER``.
KNOWN_CODES = ERROR_CODES | {CHECK}

_CODE = re.compile(r"^([A-Z][A-Z0-9_]{1,63})(?::|$)")
# entry ids (0_abc12345), upload token ids (0_<32 hex>), long hex and digits runs
_IDS = re.compile(r"\b\d+_[0-9a-z]{6,}\b|\b[0-9a-f]{16,}\b|\b\d{5,}\b")
MAX_DETAIL = 120


class LoadFailure(Exception):
    """A failed request, step or flow as Locust records it (``repr`` = ``CODE[: detail]``)."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code or CHECK
        self.detail = scrub(detail)
        super().__init__(self.code)

    def __repr__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code

    __str__ = __repr__


def scrub(text: str) -> str:
    """``text`` as one short line without secrets, KS, entry ids or other unbounded values."""
    line = " ".join(redact(text or "").split())
    line = _IDS.sub("<id>", line)
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 3] + "..."


def code_of_error(error: str) -> str:
    """The code at the start of a Locust error string (``"HTTP_500"`` of ``"HTTP_500: ..."``)."""
    match = _CODE.match(error.strip())
    return match.group(1) if match else OTHER


def bounded_code(code: str) -> str:
    """``code`` when it is one of :data:`KNOWN_CODES`, else ``OTHER`` (a metric label value)."""
    return code if code in KNOWN_CODES else OTHER

"""The exceptions ksentinel raises, one tree for every part.

    KsentinelError
     ├── ConfigError        bad configuration or command-line input (exit 2)
     ├── TargetError        the target cannot be reached or does not speak Kaltura (exit 2)
     ├── KsError            a KS that cannot be parsed or verified locally
     ├── KalturaApiError    the API answered with a KalturaAPIException (or an HTTP error)
     └── FlowFailure        a flow step broke one of its invariants

Every message is passed through :func:`ksentinel.kaltura.redact.redact` so that a secret or a KS
can never reach a log line, a report or a traceback through an exception.
"""

from __future__ import annotations

from collections.abc import Mapping


def _redact(text: str) -> str:
    from ksentinel.kaltura.redact import redact  # local import: redact imports nothing from here

    return redact(text)


class KsentinelError(Exception):
    """Root of every error ksentinel raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(_redact(message))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(KsentinelError):
    """Bad configuration, flags or input files."""


class TargetError(KsentinelError):
    """The target is unreachable, too slow, or does not answer like a Kaltura API."""


class KsError(KsentinelError):
    """A KS that cannot be decoded or whose signature or fields are wrong.

    ``reason`` is the server's failure name (``INVALID_STR``, ``EXPIRED``, ...).
    """

    def __init__(self, reason: str, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(message or reason)


class KalturaApiError(KsentinelError):
    """A ``KalturaAPIException`` from the API, or an HTTP-level failure mapped to one.

    ``code`` is Kaltura's string code (``ENTRY_ID_NOT_FOUND``); HTTP failures use ``HTTP_<status>``.
    """

    def __init__(
        self,
        code: str,
        message: str,
        args: Mapping[str, str] | None = None,
        *,
        http_status: int | None = None,
    ) -> None:
        self.code = code
        self.error_args: dict[str, str] = {k: _redact(str(v)) for k, v in (args or {}).items()}
        self.http_status = http_status
        super().__init__(f"{code}: {message}")

    @property
    def message(self) -> str:
        text = super().message
        prefix = f"{self.code}: "
        return text[len(prefix) :] if text.startswith(prefix) else text

    def __repr__(self) -> str:
        return f"KalturaApiError(code={self.code!r}, message={self.message!r}, args={self.error_args!r})"


class FlowFailure(KsentinelError):
    """A flow step failed: ``step`` is its stable dotted name, ``reason`` says which rule broke."""

    def __init__(self, step: str, reason: str, *, code: str | None = None) -> None:
        self.step = step
        self.reason = _redact(reason)
        self.code = code
        super().__init__(f"{step}: {reason}")

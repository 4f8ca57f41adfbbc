"""``KalturaAPIException`` as the reference platform raises it.

Messages come from the error catalogue of the platform's schema (``apidef.ERRORS``) with
``@ARG@`` placeholders filled in; an argument the code does not supply becomes ``N/A`` as on the
real server.
"""

from __future__ import annotations

from collections.abc import Mapping


class ApiException(Exception):
    """An API error: serialized as a ``KalturaAPIException`` inside HTTP 200."""

    def __init__(
        self, code: str, args: Mapping[str, object] | None = None, *, message: str | None = None
    ) -> None:
        from ksentinel.reference.apidef import SCHEMA

        self.code = code
        error = SCHEMA.errors.get(code)
        names = error.parameters if error else tuple((args or {}).keys())
        self.error_args: dict[str, str] = {name: str((args or {}).get(name, "N/A")) for name in names}
        if message is None:
            message = error.message if error else code
            for name, value in self.error_args.items():
                message = message.replace(f"@{name}@", value)
        self.message = message
        super().__init__(f"{code}: {message}")

"""``KalturaAPIException`` as the reference platform raises it.

``ApiException(code, *values)``: the values fill the error's parameters in the order the error
catalogue (``apidef.SCHEMA.errors``) declares them, and the message template's ``@NAME@``
placeholders with them; a parameter without a value becomes ``N/A`` as on the real server.
"""

from __future__ import annotations


class ApiException(Exception):
    """An API error: serialized as a ``KalturaAPIException`` inside HTTP 200."""

    def __init__(self, code: str, *values: object) -> None:
        from ksentinel.reference.apidef import SCHEMA

        self.code = code
        error = SCHEMA.errors.get(code)
        names = error.parameters if error else tuple(f"ARG{i}" for i in range(len(values)))
        self.error_args: dict[str, str] = {
            name: str(values[i]) if i < len(values) else "N/A" for i, name in enumerate(names)
        }
        message = error.message if error else code
        for name, value in self.error_args.items():
            message = message.replace(f"@{name}@", value)
        self.message = message
        super().__init__(f"{code}: {message}")

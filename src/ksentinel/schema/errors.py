"""The schema pipeline's error: a schema document (file or server answer) that cannot be used.

ConfigError
 └── SchemaError   not XML, hostile XML (DTD, entities), too large, or not a Kaltura schema
"""

from __future__ import annotations

from ksentinel.errors import ConfigError


class SchemaError(ConfigError):
    """A Kaltura API schema that was rejected; the message is one line saying why."""

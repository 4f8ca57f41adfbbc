"""Download a target's API schema (``GET {url}/api_v3/api_schema.php``), capped in size and time."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ksentinel.errors import ConfigError, TargetError
from ksentinel.schema.xml import MAX_SCHEMA_BYTES

if TYPE_CHECKING:
    from ksentinel.kaltura.transport import Transport

logger = logging.getLogger(__name__)

SCHEMA_PATH = "/api_v3/api_schema.php"


def schema_url(url: str) -> str:
    """``{url}/api_v3/api_schema.php``, unless ``url`` already names the schema."""
    url = url.strip()
    if not url.lower().startswith(("http://", "https://")):
        raise ConfigError(f"{url[:100]!r} is not an http(s) URL")
    base = url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    return base if base.endswith(SCHEMA_PATH) else base + SCHEMA_PATH


def fetch_schema(
    url: str,
    *,
    timeout: float,
    transport: Transport | None = None,
    max_bytes: int = MAX_SCHEMA_BYTES,
) -> bytes:
    """The schema document a Kaltura server publishes; raises TargetError with a one-line reason."""
    # httpx only when a schema is fetched: converting a file needs none of it
    from ksentinel.kaltura.transport import HttpRequest, HttpxTransport, ResponseTooLarge, TransportError

    target = schema_url(url)
    owned = transport is None
    sender: Transport = HttpxTransport(max_body_bytes=max_bytes) if transport is None else transport
    request = HttpRequest("GET", target, headers={"Accept": "text/xml"}, timeout=timeout)
    try:
        response = sender.send(request)
    except ResponseTooLarge:
        raise TargetError(f"{target} sent a schema over {max_bytes} bytes") from None
    except TransportError as exc:
        detail = exc.message.split(f"GET {target}: ", 1)[-1]
        raise TargetError(f"cannot reach {target}: {detail}") from None
    finally:
        if owned and isinstance(sender, HttpxTransport):
            sender.close()
    if response.status != 200:
        raise TargetError(f"{target} did not answer with a Kaltura schema (HTTP {response.status})")
    body = response.body
    if len(body) > max_bytes:
        raise TargetError(f"{target} sent a schema over {max_bytes} bytes")
    if not body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        text = body.strip()[:60].decode("utf-8", "replace")
        snippet = repr(text.splitlines()[0]) if text else "an empty body"
        raise TargetError(f"{target} did not answer with a Kaltura schema (HTTP 200, {snippet})")
    logger.debug("fetched %s: %d bytes in %.3fs", target, len(body), response.elapsed)
    return body

"""The response cache in front of read actions (Kaltura's kApiCache, reduced to what matters).

The key is an MD5 of the call's parameters without ``ks``/``kalsig``/``clientTag``/``nocache``,
plus what the KS says about the caller (partner, user, session type, privileges) and the response
format, so partners, users and privileges never share an entry. Writes invalidate every entry of
the writing partner, and so does a status change of its entries (a "transcoding" entry becoming
READY, applied by ``Platform.advance_clock`` before each request), so reads never go stale.

A hit is marked ``X-Kaltura: cached-dispatcher,<key>,0``, or (realism ``cache_extra_fields``)
``cached-with-extra-fields,<key>,0`` for the keys :func:`hit_marker` picks; see the function.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

DEFAULT_TTL = 600.0
IGNORED_PARAMS = frozenset({"ks", "kalsig", "clientTag", "nocache", "callback", "apiVersion"})


@dataclass(frozen=True)
class CachedResponse:
    body: bytes
    content_type: str
    expires_at: float
    partner_id: int


@dataclass(frozen=True)
class CallerIdentity:
    partner_id: int
    user_id: str
    session_type: int | None
    privileges: str


def cache_key(
    service: str,
    action: str,
    params: dict[str, Any],
    caller: CallerIdentity,
    fmt: int,
    *,
    include_partner: bool = True,
    include_user: bool = True,
) -> str:
    """The cache key of a call (``include_partner=False`` is the ``cache-leak`` fault,
    ``include_user=False`` the ``cache-user-leak`` fault)."""
    material = {
        "service": service.lower(),
        "action": action.lower(),
        "format": fmt,
        "params": {k: v for k, v in params.items() if k not in IGNORED_PARAMS},
        "caller": [
            caller.partner_id if include_partner else "*",
            caller.user_id if include_user else "*",
            caller.session_type,
            caller.privileges,
        ],
        "v": 14,
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.md5(text.encode()).hexdigest()


def has_extra_fields(key: str) -> bool:
    """Whether hits on ``key`` are marked ``cached-with-extra-fields``: keys whose first hex digit is odd.

    kaltura/server (``alpha/apps/kaltura/lib/cache/kApiCache.php``, ``checkCacheInternal``) marks a hit
    ``cached-with-extra-fields`` when the cached answer depends on "extra fields" of the request (user
    agent, referrer, country, IP...) that a previous miss recorded for that key (``addExtraFields`` /
    ``storeExtraFields``). Which keys those are depends on the actions and partner configuration, not
    on anything a client can see; the reference has no such fields, so it stands in with a fixed half
    of the keys: the same call always gets the same marker, and a handful of different calls (even plain
    repeated gets) meet both.
    """
    return int(key[:1] or "0", 16) % 2 == 1


def hit_marker(key: str, *, extra_fields: bool) -> str:
    """The ``X-Kaltura`` value of a cache hit on ``key`` (``extra_fields``: realism ``cache_extra_fields``)."""
    kind = "cached-with-extra-fields" if extra_fields and has_extra_fields(key) else "cached-dispatcher"
    return f"{kind},{key},0"


class ResponseCache:
    """A bounded LRU of serialized responses, invalidated per partner."""

    def __init__(self, max_entries: int = 10_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._items: OrderedDict[str, CachedResponse] = OrderedDict()
        self._by_partner: dict[int, set[str]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0

    def get(self, key: str, now: float | None = None) -> CachedResponse | None:
        now = time.time() if now is None else now
        with self._lock:
            item = self._items.get(key)
            if item is None or item.expires_at <= now:
                if item is not None:
                    self._drop(key)
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item

    def put(self, key: str, body: bytes, content_type: str, partner_id: int, ttl: float) -> None:
        if ttl <= 0 or len(body) > self.max_bytes // 4:
            return
        with self._lock:
            if key in self._items:
                self._drop(key)
            self._items[key] = CachedResponse(body, content_type, time.time() + ttl, partner_id)
            self._by_partner.setdefault(partner_id, set()).add(key)
            self._bytes += len(body)
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                oldest = next(iter(self._items))
                self._drop(oldest)

    def invalidate_partner(self, partner_id: int) -> int:
        with self._lock:
            keys = self._by_partner.pop(partner_id, set())
            for key in keys:
                self._drop(key, keep_index=True)
            return len(keys)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._by_partner.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def _drop(self, key: str, keep_index: bool = False) -> None:
        item = self._items.pop(key, None)
        if item is None:
            return
        self._bytes -= len(item.body)
        if not keep_index:
            keys = self._by_partner.get(item.partner_id)
            if keys is not None:
                keys.discard(key)

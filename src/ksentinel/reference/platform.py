"""The running platform: configuration and state shared by every request."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ksentinel.reference.cache import ResponseCache
from ksentinel.reference.faults import parse_faults
from ksentinel.reference.partners import Partner, load_partners
from ksentinel.reference.realism import Realism
from ksentinel.reference.store import Store, index_delay

DEFAULT_MAX_CHUNK_BYTES = 64 * 1024 * 1024


@dataclass
class PlatformConfig:
    data_dir: Path
    ready_after: float = 2.0  # seconds of "conversion": PRECONVERT before READY / ERROR_CONVERTING
    faults: tuple[str, ...] = ()
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES
    host_name: str = "ksentinel-reference"
    realism: Realism = field(default_factory=Realism)
    schema_file: Path | None = None  # serve this Kaltura schema XML (actions it adds: SERVICE_FORBIDDEN)


@dataclass
class Platform:
    """Everything a request handler may touch."""

    config: PlatformConfig
    partners: dict[int, Partner]
    partners_source: str
    store: Store
    cache: ResponseCache
    faults: frozenset[str]
    ended: set[str] = field(default_factory=set)
    _request_counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, config: PlatformConfig, environ: dict[str, str] | None = None) -> Platform:
        faults = parse_faults(list(config.faults))
        partners, source = load_partners(config.data_dir, environ)
        store = Store(config.data_dir)
        return cls(config, partners, source, store, ResponseCache(), faults, ended=store.ended_sessions())

    def close(self) -> None:
        self.store.close()

    def has(self, fault: str) -> bool:
        return fault in self.faults

    def advance_clock(self) -> None:
        """Apply due time-driven changes and drop the changed partners' cached answers.

        Conversions that are done (PRECONVERT -> READY or ERROR_CONVERTING; the status change reaches
        the search index after ``realism.index_lag`` like any write), then writes whose search-index lag
        has passed (a bounded batch per call). Called before every request and before the cache lookup,
        so a cached read never hides an applied change; the common case is one float comparison. Under
        the ``stale-cache`` fault an index change does not invalidate either (it is a write's effect).
        """
        due = self.store.next_transition_at()
        if due is None or due > time.time():
            return
        realism = self.config.realism
        for partner_id in self.store.promote_ready(
            index_delay=lambda: index_delay(realism.index_lag, realism.index_lag_jitter)
        ):
            self.cache.invalidate_partner(partner_id)
        indexed = self.store.apply_index()
        if not self.has("stale-cache"):
            for partner_id in indexed:
                self.cache.invalidate_partner(partner_id)

    def next_request_number(self) -> int:
        with self._lock:
            return next(self._request_counter)

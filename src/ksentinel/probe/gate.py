"""A gate per partner of a platform: most flows share it, a few need the partner to themselves.

The cache flow checks that a repeated read is a cache hit, but any write by the same partner (the
upload or list flow of the same probe, a moment later) invalidates the partner's cached answers,
as Kaltura's cache does. So runs of :data:`EXCLUSIVE_FLOWS` wait until no other run uses the
target and keep the others out while they run; the rest share the target freely. Waiters are
served first come, first served, so an exclusive run is never starved by a stream of shared ones.
Release is synchronous: it happens in the callback of a run's finished thread.
"""

from __future__ import annotations

import asyncio
from collections import deque

#: Flows whose checks a concurrent write on the same partner would disturb.
EXCLUSIVE_FLOWS = frozenset({"cache"})


class Gate:
    def __init__(self) -> None:
        self._shared = 0
        self._exclusive = False
        self._waiters: deque[tuple[bool, asyncio.Future[None]]] = deque()

    def _free_for(self, exclusive: bool) -> bool:
        return not self._exclusive and (self._shared == 0 if exclusive else True)

    def _take(self, exclusive: bool) -> None:
        if exclusive:
            self._exclusive = True
        else:
            self._shared += 1

    async def acquire(self, exclusive: bool) -> None:
        if not self._waiters and self._free_for(exclusive):
            self._take(exclusive)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((exclusive, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted just as we were cancelled
                self.release(exclusive)
            else:
                self._wake()
            raise

    def release(self, exclusive: bool) -> None:
        if exclusive:
            self._exclusive = False
        else:
            self._shared -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            exclusive, waiter = self._waiters[0]
            if waiter.done():  # cancelled while waiting
                self._waiters.popleft()
                continue
            if not self._free_for(exclusive):
                return
            self._waiters.popleft()
            self._take(exclusive)
            waiter.set_result(None)

"""Client-side rate limits: token buckets for requests and tokens per minute.

Each bucket refills continuously at ``per_minute / 60`` per second and holds at most one
second's worth (so a run starts at the limit's pace instead of with a minute's burst); a
request larger than that capacity waits until the bucket is full, then goes alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """``await bucket.take(n)`` waits until ``n`` units are available, then spends them."""

    def __init__(self, per_minute: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self._level = self.capacity
        self._clock = clock
        self._stamp = clock()
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self, n: float = 1.0) -> None:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:  # a backend may serve several loops
            self._lock, self._loop = asyncio.Lock(), loop
        async with self._lock:  # first come, first served
            need = min(n, self.capacity)
            self._refill()
            while self._level < need:
                await asyncio.sleep((need - self._level) / self.rate)
                self._refill()
            self._level -= n  # may go below zero: a large request borrows from the future

"""Replicas of one served model (vLLM or SGLang behind no load balancer): which one to ask.

Each request goes to the healthy replica with the fewest requests in flight (ties: the one
that has been sent the fewest). A replica that refuses a connection is taken out at once; one
that fails ``eject_after`` requests in a row (5xx, 429, timeouts, dropped connections) is
taken out too. Out means skipped for a cool-down that doubles with each ejection (from
``cooldown_s`` up to ``max_cooldown_s``); after it the replica gets requests again, and one
success makes it healthy. When every replica is out, the one whose cool-down ends first is
asked anyway: the caller's retry back-off then paces the attempts, as with a single server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Fleet", "Replica"]


@dataclass(slots=True)
class Replica:
    url: str
    in_flight: int = 0
    sent: int = 0
    answered: int = 0
    failed: int = 0
    failing_in_a_row: int = 0
    ejections: int = 0
    out_until: float = 0.0

    def record(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "answered": self.answered,
            "failed_attempts": self.failed,
            "ejections": self.ejections,
        }


class Fleet:
    def __init__(
        self,
        urls: Sequence[str],
        *,
        eject_after: int = 3,
        cooldown_s: float = 2.0,
        max_cooldown_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.replicas = [Replica(u.rstrip("/")) for u in urls]
        self.eject_after = eject_after
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self._clock = clock

    def __len__(self) -> int:
        return len(self.replicas)

    def acquire(self) -> Replica:
        """The replica the next attempt goes to; pair with ``release``."""
        if len(self.replicas) == 1:
            chosen = self.replicas[0]
        else:
            now = self._clock()
            healthy = [r for r in self.replicas if r.out_until <= now]
            if healthy:
                chosen = min(healthy, key=lambda r: (r.in_flight, r.sent))
            else:
                chosen = min(self.replicas, key=lambda r: r.out_until)
        chosen.in_flight += 1
        chosen.sent += 1
        return chosen

    def release(self, replica: Replica, *, ok: bool, refused: bool = False) -> None:
        """Count an attempt's outcome. ``ok`` is any answer the server meant to give (a 200,
        or a 4xx that retrying cannot fix); ``refused`` is a connection the replica refused."""
        replica.in_flight -= 1
        if ok:
            replica.answered += 1
            replica.failing_in_a_row = 0
            return
        replica.failed += 1
        replica.failing_in_a_row += 1
        if len(self.replicas) > 1 and (refused or replica.failing_in_a_row >= self.eject_after):
            cooldown = min(self.max_cooldown_s, self.cooldown_s * 2**replica.ejections)
            replica.ejections += 1
            replica.failing_in_a_row = 0
            replica.out_until = self._clock() + cooldown

    def another_is_healthy(self, than: Replica) -> bool:
        now = self._clock()
        return any(r is not than and r.out_until <= now for r in self.replicas)

    def record(self) -> dict[str, Any]:
        return {r.url: r.record() for r in self.replicas}

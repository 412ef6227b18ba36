"""Run a backend on requests and collect what it reports, for the backend tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from heldout.backends import Generation, Request


def collect(
    backend: Any,
    requests: list[Request],
    then: Callable[[list[Generation]], None] | None = None,
) -> list[Generation]:
    """Every result in arrival order, then the backend closed; ``then(results)`` runs after
    each result arrives (to kill a server or an actor mid-run)."""
    out: list[Generation] = []

    def on_result(g: Generation) -> None:
        out.append(g)
        if then is not None:
            then(out)

    async def go() -> None:
        try:
            await backend.generate(requests, on_result)
        finally:
            await backend.close()

    asyncio.run(go())
    return out

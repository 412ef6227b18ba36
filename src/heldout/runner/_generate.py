"""Generation with caching and per-sample persistence: nothing finished is ever lost."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from heldout.backends import Backend, Generation, Request, ResponseCache, cache_key

__all__ = ["GenerationSink", "generate"]

Progress = Callable[[int, int], None]


class GenerationSink:
    """Appends each generation to a JSONL file as it arrives (flushed line by line)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: IO[str] = path.open("a", encoding="utf-8")

    def write(self, role: str, dataset: str, gen: Generation, blob: str | None = None) -> None:
        """One line: model, dataset and the generation's fields (``blob``: its JSON object)."""
        if blob is None:
            blob = json.dumps(gen.to_json(), ensure_ascii=False)
        head = json.dumps({"model": role, "dataset": dataset}, ensure_ascii=False)
        self._fh.write(head[:-1] + ", " + blob[1:] + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def generate(
    backend: Backend,
    requests: Sequence[Request],
    *,
    role: str,
    dataset: str,
    cache: ResponseCache | None,
    sink: GenerationSink,
    refresh: bool = False,
    progress: Progress | None = None,
) -> dict[str, Generation]:
    """Outputs for every request: from the cache when present, else from the backend.

    Each new result is committed to the cache and appended to the sink before the next one
    is handled, so an interruption at any point loses no finished response.
    """
    identity = json.dumps(
        backend.identity(), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    keys = {r.sample_id: cache_key(identity, r) for r in requests}
    found = cache.get_many(keys.values()) if cache is not None and not refresh else {}
    out: dict[str, Generation] = {}
    total = len(requests)
    missing = []
    for r in requests:
        hit = found.get(keys[r.sample_id])
        if hit is not None:
            hit.sample_id = r.sample_id
            out[r.sample_id] = hit
            sink.write(role, dataset, hit)
        else:
            missing.append(r)
    if progress:
        progress(len(out), total)

    last = [0.0]

    def on_result(gen: Generation) -> None:
        blob = json.dumps(gen.to_json(), ensure_ascii=False)  # serialised once, stored twice
        if cache is not None:
            cache.put(keys[gen.sample_id], gen, blob)
        sink.write(role, dataset, gen, blob)
        out[gen.sample_id] = gen
        if progress:  # throttled: redrawing a progress bar per response costs throughput
            now = time.monotonic()
            if now - last[0] >= 0.05 or len(out) == total:
                last[0] = now
                progress(len(out), total)

    if missing:
        asyncio.run(_drive(backend, missing, on_result))
    return out


async def _drive(backend: Backend, requests: Sequence[Request], on_result: Any) -> None:
    try:
        await backend.generate(requests, on_result)
    finally:
        await backend.close()

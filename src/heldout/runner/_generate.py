"""Generation with caching and per-sample persistence: nothing finished is ever lost.

Persistence is a *group commit*: results that finish in the same event-loop iteration are
written to the SQLite cache in one transaction and appended to the JSONL file together, in a
callback that runs before the loop waits on the network again. A result is therefore on disk
within the loop iteration it arrived in (or within ``FLUSH_AFTER_S`` for a backend that
computes without yielding), never held back for later requests; one transaction per iteration
instead of one per response is what keeps the request phase close to a bare client's rate.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from heldout._redact import redact
from heldout.backends import Backend, Generation, Request, ResponseCache, cache_key

__all__ = ["FLUSH_AFTER_S", "GenerationSink", "generate_async"]

Progress = Callable[[int, int], None]

FLUSH_AFTER_S = 0.05
"""Longest a finished result waits for its group commit when the backend does not yield."""


class GenerationSink:
    """Appends generations to a JSONL file as they arrive (flushed after every write call)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: IO[str] = path.open("a", encoding="utf-8")
        self._heads: dict[tuple[str, str], str] = {}

    def line(self, role: str, dataset: str, gen: Generation, blob: str | None = None) -> str:
        """One JSONL line: model, dataset and the generation's fields (``blob``: its JSON)."""
        if blob is None:
            blob = json.dumps(gen.to_json(), ensure_ascii=False)
        head = self._heads.get((role, dataset))
        if head is None:  # serialised once per model and dataset, not once per line
            head = json.dumps({"model": role, "dataset": dataset}, ensure_ascii=False)[:-1]
            self._heads[(role, dataset)] = head
        return head + ", " + blob[1:] + "\n"

    def write_lines(self, lines: Sequence[str]) -> None:
        """Append lines made by :meth:`line`, then flush them to the operating system."""
        self._fh.write("".join(lines))
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


async def generate_async(
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

    Each new result is committed to the cache and appended to the sink in the event-loop
    iteration it arrives in (a group commit, see the module docstring), so an interruption
    loses no response that finished before the loop last waited on the network.
    """
    identity = json.dumps(
        backend.identity(), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    # cache keys (a hash of each prompt) only when there is a cache to read or write
    keys = {r.sample_id: cache_key(identity, r) for r in requests} if cache is not None else {}
    found = cache.get_many(keys.values()) if cache is not None and not refresh else {}
    out: dict[str, Generation] = {}
    total = len(requests)
    missing = []
    hits = []
    for r in requests:
        hit = found.get(keys[r.sample_id]) if found else None
        if hit is not None:
            hit.sample_id = r.sample_id
            out[r.sample_id] = hit
            hits.append(sink.line(role, dataset, hit))
        else:
            missing.append(r)
    if hits:
        sink.write_lines(hits)
    if progress:
        progress(len(out), total)

    pending: list[tuple[Generation, str]] = []
    first_pending = [0.0]
    last_progress = [0.0]

    def flush() -> None:
        if not pending:
            return
        batch = pending[:]
        pending.clear()
        if cache is not None:
            cache.put_many((keys[gen.sample_id], gen, blob) for gen, blob in batch)
        sink.write_lines([sink.line(role, dataset, gen, blob) for gen, blob in batch])
        if progress:  # throttled: redrawing a progress bar per response costs throughput
            now = time.monotonic()
            if now - last_progress[0] >= 0.05 or len(out) == total:
                last_progress[0] = now
                progress(len(out), total)

    secrets = tuple(getattr(backend, "secrets", ()))

    def on_result(gen: Generation) -> None:
        # nothing a backend returns is stored before credentials are taken out of it
        if gen.error is not None:
            gen.error = redact(gen.error, secrets)
        if secrets and gen.text is not None and any(k in gen.text for k in secrets):
            gen.text = redact(gen.text, secrets)
        blob = json.dumps(gen.to_json(), ensure_ascii=False)  # serialised once, stored twice
        out[gen.sample_id] = gen
        pending.append((gen, blob))
        now = time.monotonic()
        if len(pending) == 1:
            first_pending[0] = now
            asyncio.get_running_loop().call_soon(flush)
        elif now - first_pending[0] >= FLUSH_AFTER_S:
            flush()

    if missing:
        await _drive(backend, missing, on_result, flush)
    return out


async def _drive(
    backend: Backend,
    requests: Sequence[Request],
    on_result: Callable[[Generation], None],
    flush: Callable[[], None],
) -> None:
    try:
        await backend.generate(requests, on_result)
    finally:
        flush()
        await backend.close()

"""generate_async(): group commit puts every finished result on disk before the loop waits again."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from heldout.backends import Generation, OnResult, Request, ResponseCache
from heldout.runner import GenerationSink, generate_async
from heldout.runner._generate import FLUSH_AFTER_S


def _on_disk(tmp_path: Path) -> tuple[set[str], set[str]]:
    """Sample ids committed to the cache (read through a second connection) and in the JSONL."""
    db = sqlite3.connect(tmp_path / "cache.sqlite")
    try:
        cached = {row[0] for row in db.execute("SELECT sample_id FROM responses")}
    finally:
        db.close()
    lines = (tmp_path / "g.jsonl").read_text().splitlines()
    return cached, {json.loads(x)["sample_id"] for x in lines}


class _Probe:
    """A backend that records what was on disk at chosen moments of its own run."""

    def __init__(self, tmp_path: Path, *, yields: bool) -> None:
        self.tmp_path = tmp_path
        self.yields = yields
        self.seen: list[tuple[set[str], set[str]]] = []

    def identity(self) -> dict[str, Any]:
        return {"backend": "probe"}

    async def generate(self, requests: Sequence[Request], on_result: OnResult) -> None:
        for r in requests:
            on_result(Generation(r.sample_id, f"out {r.sample_id}"))
            if self.yields:  # like a network backend: wait for the next response
                await asyncio.sleep(0.01)
            else:  # like a compute-bound backend that never yields
                time.sleep(FLUSH_AFTER_S * 1.5)
            self.seen.append(_on_disk(self.tmp_path))

    async def close(self) -> None:
        return None


def _run(tmp_path: Path, backend: _Probe, n: int = 4) -> dict[str, Generation]:
    cache = ResponseCache(tmp_path / "cache.sqlite")
    sink = GenerationSink(tmp_path / "g.jsonl")
    try:
        return asyncio.run(
            generate_async(
                backend,
                [Request(f"s{i}", f"prompt {i}") for i in range(n)],
                role="base",
                dataset="gold",
                cache=cache,
                sink=sink,
            )
        )
    finally:
        sink.close()
        cache.close()


def test_result_is_committed_before_the_backend_waits_again(tmp_path: Path) -> None:
    probe = _Probe(tmp_path, yields=True)
    out = _run(tmp_path, probe)
    assert len(out) == 4
    for i, (cached, lines) in enumerate(probe.seen):
        want = {f"s{j}" for j in range(i + 1)}
        assert cached == want
        assert lines == want


def test_a_backend_that_never_yields_is_flushed_by_time(tmp_path: Path) -> None:
    probe = _Probe(tmp_path, yields=False)
    _run(tmp_path, probe)
    # result i is flushed when result i+1 arrives more than FLUSH_AFTER_S later
    for i, (cached, lines) in enumerate(probe.seen[1:], start=1):
        want = {f"s{j}" for j in range(i)}
        assert want <= cached
        assert want <= lines
    cached, lines = _on_disk(tmp_path)
    assert cached == lines == {f"s{i}" for i in range(4)}  # and everything at the end


def test_put_many_is_one_committed_transaction_and_skips_failures(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.sqlite")
    cache.put_many(
        [
            ("k1", Generation("a", "x"), None),
            ("k2", Generation("b", None, error="HTTP 500"), None),
            ("k3", Generation("c", "z"), json.dumps(Generation("c", "z").to_json())),
        ]
    )
    other = sqlite3.connect(tmp_path / "cache.sqlite")  # visible to another connection
    assert sorted(r[0] for r in other.execute("SELECT key FROM responses")) == ["k1", "k3"]
    other.close()
    got = cache.get_many(["k1", "k2", "k3"])
    assert got["k3"].text == "z"
    assert got["k3"].cached
    assert "k2" not in got
    cache.close()

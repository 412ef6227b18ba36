"""SQLite response cache: a rerun makes zero calls, an interrupted run resumes.

Keys hash everything that determines an output: the backend identity (backend, model,
adapter, sampling parameters) and the rendered prompt (plus requested label choices). Every
successful response is committed as it arrives (WAL mode; the runner commits the responses
that finish in one event-loop iteration together), so a Ctrl-C or ``kill -9`` loses nothing
that finished. Failures are not cached: a rerun retries them.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from heldout.backends._base import Generation, Request
from heldout.errors import HeldoutError

__all__ = ["ResponseCache", "cache_key"]


def cache_key(identity: Mapping[str, Any] | str, request: Request) -> str:
    """sha256 of the backend identity (a mapping, or its canonical JSON when the caller has
    it already), the rendered prompt, the requested label choices and, for lm-eval requests,
    what else shapes the answer (log-likelihood continuation, stop strings, max tokens)."""
    if not isinstance(identity, str):
        identity = json.dumps(identity, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(identity.encode())
    digest.update(b"\x00" + request.prompt.encode())
    digest.update(b"\x00" + json.dumps(request.choices).encode())
    extra = request.overrides()
    if extra:  # lm-eval requests only: plain requests keep their keys
        digest.update(b"\x00" + json.dumps(extra, sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()


class ResponseCache:
    """A persistent map from cache key to :class:`Generation`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                "key TEXT PRIMARY KEY, sample_id TEXT, generation TEXT NOT NULL, created REAL)"
            )
            self._db.execute("SELECT count(*) FROM responses LIMIT 1").fetchone()
        except sqlite3.DatabaseError as exc:
            raise HeldoutError(
                f"the response cache {path} is damaged ({exc}); move it aside (mv {path} "
                f"{path}.broken) and rerun: the cache only saves repeated requests, so nothing "
                "but time is lost (or run with --no-cache)"
            ) from None

    def get_many(self, keys: Iterable[str]) -> dict[str, Generation]:
        out: dict[str, Generation] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, generation FROM responses WHERE key IN ({marks})",
                chunk,
            )
            for key, blob in rows:
                gen = Generation.from_json(json.loads(blob))
                gen.cached = True
                out[key] = gen
        return out

    def put_many(self, items: Iterable[tuple[str, Generation, str | None]]) -> None:
        """Store successful generations in one transaction, committed before returning.
        Each item is (key, generation, its JSON or None); failures are skipped."""
        now = time.time()
        rows = [
            (
                key,
                gen.sample_id,
                blob if blob is not None else json.dumps(gen.to_json(), ensure_ascii=False),
                now,
            )
            for key, gen, blob in items
            if gen.ok
        ]
        if not rows:
            return
        self._db.execute("BEGIN")  # one transaction for the group (autocommit otherwise)
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO responses (key, sample_id, generation, created) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._db.close()

"""The A/B event store: one SQLite file (WAL) with requests, outcomes, splits and decisions.

:meth:`EventStore.commit` writes rows in one transaction on the caller's thread. The proxy does
not wait for it: it appends each event to the store's journal (:mod:`heldout.ab._journal`)
before answering, and commits the journal's lines in groups (≤ 50 ms) after the response, so a
``kill -9`` of the proxy loses no acknowledged event (the journal line, like a WAL commit with
``synchronous=NORMAL``, survives the process; a power cut may lose the last ones, as it would
a database's). Opening a store replays what a crashed proxy's journal holds; reading one
through the proxy's own store object commits the journal first. WAL checkpoints run in a
background thread (:meth:`EventStore.start`) so no commit waits on one.

Splits (``ab ramp``, ``ab rollback``) are rows with a timestamp: the history of the live
treatment share, read by the proxy every 100 ms, so a ramp or rollback needs no restart.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heldout.ab._journal import MARK_KEY, Journal, recover
from heldout.errors import HeldoutError

__all__ = ["REQUEST_COLUMNS", "EventStore", "Split"]

REQUEST_COLUMNS = (
    "id", "ts", "unit", "arm", "stage", "upstream", "model", "status", "error", "latency_ms",
    "prompt_tokens", "completion_tokens", "cost", "stream", "prompt",
)  # fmt: skip
OUTCOME_COLUMNS = ("ts", "request_id", "unit", "arm", "stage", "name", "value")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS requests (id TEXT PRIMARY KEY, ts REAL, unit TEXT, arm TEXT, "
    "stage REAL, upstream TEXT, model TEXT, status INTEGER, error TEXT, latency_ms REAL, "
    "prompt_tokens INTEGER, completion_tokens INTEGER, cost REAL, stream INTEGER, prompt TEXT)",
    "CREATE TABLE IF NOT EXISTS outcomes (ts REAL, request_id TEXT, unit TEXT, arm TEXT, "
    "stage REAL, name TEXT, value REAL)",
    "CREATE TABLE IF NOT EXISTS splits (ts REAL, share REAL, action TEXT, reason TEXT)",
    "CREATE TABLE IF NOT EXISTS decisions (ts REAL, stage REAL, decision TEXT, body TEXT)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
)
_INSERT_REQUEST = f"INSERT OR REPLACE INTO requests VALUES ({','.join('?' * len(REQUEST_COLUMNS))})"
_INSERT_OUTCOME = f"INSERT INTO outcomes VALUES ({','.join('?' * len(OUTCOME_COLUMNS))})"
_CHECKPOINT_S = 0.5
_OWNER_BUSY_MS = 10


@dataclass(frozen=True, slots=True)
class Split:
    ts: float
    share: float
    action: str  # start | ramp | rollback | set
    reason: str


class EventStore:
    """Open (or create) the store at ``path``; ``start()`` moves WAL checkpoints to a thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self._db = self._connect()
            for stmt in _SCHEMA:
                self._db.execute(stmt)
            self._db.execute("SELECT count(*) FROM requests LIMIT 1").fetchone()
        except sqlite3.DatabaseError as exc:
            raise HeldoutError(
                f"the event store {path} is damaged or not an event store ({exc}); move it "
                f"aside (mv {path} {path}.broken) and point 'store:' at a new file"
            ) from None
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.journal: Journal | None = None
        self.replayed = recover(self)

    def open_journal(self) -> Journal:
        """Become the store's one writer (the proxy): events are appended to the journal
        before they are acknowledged and committed after; see :mod:`heldout.ab._journal`."""
        if self.journal is None:
            self.journal = Journal(self)
            with self._lock:  # a commit that finds the store locked waits 10 ms, not 30 s,
                self._db.execute(f"PRAGMA busy_timeout={_OWNER_BUSY_MS}")  # and tries later
        return self.journal

    def close_journal(self) -> None:
        """Commit what the journal holds and give it up."""
        if self.journal is not None:
            journal, self.journal = self.journal, None
            journal.close()

    def _sync(self) -> None:
        """Before a read: commit the journal's acknowledged events (the proxy's own store)."""
        if self.journal is not None:
            self.journal.flush()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    # -- writing ------------------------------------------------------------------------
    def start(self) -> None:
        """Hand WAL checkpoints to a background thread, so a commit never waits on one.

        The proxy commits its journal's lines on its event loop, after the responses they
        belong to (one transaction per ≤ 50 ms; a hand-off to a writer thread and back cost
        ~165 µs and contended the GIL). What could stall such a commit, and the requests that
        arrive meanwhile, is SQLite's automatic checkpoint (copying the WAL into the database,
        with an fsync): with ``start()`` it runs here, ``PASSIVE``, every 0.5 s.
        """
        if self._thread is None:
            with self._lock:
                self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._halt.clear()
            self._thread = threading.Thread(target=self._checkpoints, name="ab-wal", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._halt.set()
            self._thread.join()
            self._thread = None
            with self._lock:
                self._db.execute("PRAGMA wal_autocheckpoint=1000")

    def _checkpoints(self) -> None:
        db = self._connect()
        try:
            while not self._halt.wait(_CHECKPOINT_S):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:  # busy or locked by a reader: the next tick tries again
                    continue
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            db.close()

    def commit(
        self,
        requests: Sequence[Sequence[Any]] = (),
        outcomes: Sequence[Sequence[Any]] = (),
        *,
        mark: str | None = None,
    ) -> None:
        """Write request rows (:data:`REQUEST_COLUMNS` order) and outcome rows
        (:data:`OUTCOME_COLUMNS` order) in one transaction; durable against a crash of this
        process once it returns (WAL, ``synchronous=NORMAL``). ``mark``: the journal position
        these rows take the store to, written in the same transaction."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                if requests:
                    self._db.executemany(_INSERT_REQUEST, requests)
                if outcomes:
                    self._db.executemany(_INSERT_OUTCOME, outcomes)
                if mark is not None:
                    self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (MARK_KEY, mark))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def add_requests(self, rows: Sequence[Sequence[Any]]) -> None:
        """Commit request rows (:data:`REQUEST_COLUMNS` order) now."""
        self.commit(requests=rows)

    def add_outcomes(self, rows: Sequence[Sequence[Any]]) -> None:
        """Commit outcome rows (:data:`OUTCOME_COLUMNS` order) now."""
        self.commit(outcomes=rows)

    # -- splits, decisions, meta (rare: written directly) --------------------------------
    def splits(self) -> list[Split]:
        with self._lock:
            rows = self._db.execute(
                "SELECT ts, share, action, reason FROM splits ORDER BY ts, rowid"
            ).fetchall()
        return [Split(float(t), float(s), str(a), str(r or "")) for t, s, a, r in rows]

    def current_split(self) -> Split | None:
        with self._lock:
            row = self._db.execute(
                "SELECT ts, share, action, reason FROM splits ORDER BY ts DESC, rowid DESC LIMIT 1"
            ).fetchone()
        return None if row is None else Split(float(row[0]), float(row[1]), row[2], row[3] or "")

    def set_split(self, share: float, action: str, reason: str = "") -> Split:
        if not 0 <= share <= 1:
            raise HeldoutError(f"a treatment share is in [0, 1], got {share}")
        split = Split(time.time(), share, action, reason)
        with self._lock:
            self._db.execute(
                "INSERT INTO splits VALUES (?,?,?,?)", (split.ts, share, action, reason)
            )
        return split

    def add_decision(self, stage: float, decision: str, body: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO decisions VALUES (?,?,?,?)", (time.time(), stage, decision, body)
            )

    def decisions(self) -> list[tuple[float, float, str, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT ts, stage, decision, body FROM decisions ORDER BY ts, rowid"
            ).fetchall()
        return [(float(t), float(s), str(d), str(b)) for t, s, d, b in rows]

    def meta(self) -> dict[str, str]:
        with self._lock:
            return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, items: dict[str, str]) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", items.items())

    def request_arm(self, request_id: str) -> tuple[str, str, float] | None:
        """(unit, arm, stage) of a logged request."""
        self._sync()
        with self._lock:
            row = self._db.execute(
                "SELECT unit, arm, stage FROM requests WHERE id = ?", (request_id,)
            ).fetchone()
        return None if row is None else (row[0], row[1], float(row[2]))

    def table(self, name: str, columns: Iterable[str]) -> dict[str, list[Any]]:
        """A table's columns as lists (for the analysis)."""
        self._sync()
        cols = list(columns)
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(cols)} FROM {name}").fetchall()
        return {c: [r[i] for r in rows] for i, c in enumerate(cols)}

    def counts(self) -> dict[str, int]:
        self._sync()
        with self._lock:
            return {
                t: int(self._db.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                for t in ("requests", "outcomes", "splits", "decisions")
            }

    def close(self) -> None:
        self.close_journal()
        self.stop()
        with self._lock:
            self._db.close()

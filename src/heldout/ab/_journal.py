"""The proxy's journal: acknowledged events on disk before they reach the SQLite tables.

The proxy answers a request once its event is *appended* to ``<store>.heldout-journal`` (one
``write(2)`` of one JSON line), not once a SQLite transaction commits: the commit (~0.1 ms, the
largest part of the proxy's own work) runs after the response is sent, one transaction for the
events of up to 50 ms. A ``kill -9`` between the two loses nothing: the line is in the
operating system's page cache, as a WAL commit with ``synchronous=NORMAL`` would be, and the
next opener of the store replays it.

Exactly once: each SQLite transaction that takes journal lines also writes, in ``meta``, the
journal's id and the byte offset up to which its lines are in the tables. Replay starts from
that offset (from the header when the ids differ: a new journal) and ignores a last line
without its newline (a write cut short was never acknowledged). The journal is truncated and
given a new id when it is fully committed and past 64 MiB, and whenever an owner opens it.

One writer: the proxy holds an exclusive ``flock`` on the journal for its lifetime (the
operating system drops it even after ``kill -9``), so a second ``heldout ab serve`` on the same
store is refused, and another process opening the store (``heldout ab analyze``) replays the
journal only when no live proxy holds it — a live one commits its own lines within 50 ms.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from heldout.errors import HeldoutError

if TYPE_CHECKING:
    from heldout.ab._store import EventStore

__all__ = ["Journal", "journal_path", "recover"]

_MAGIC = b"heldout-ab-journal 1 "
_ROTATE_BYTES = 64 * 1024**2
MARK_KEY = "journal"


def journal_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".heldout-journal")


def _lock(fd: int) -> bool:
    """Take the exclusive lock without waiting; False when another process (or another open
    of the file in this one) holds it. Without ``fcntl`` (not POSIX) there is no lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _header(data: bytes) -> tuple[str, int] | None:
    """The journal's id and where its lines start; None for an empty or cut-short header."""
    end = data.find(b"\n")
    if end < 0:
        return None
    if not data.startswith(_MAGIC):
        raise HeldoutError(
            "is not a heldout journal (its first line should start with "
            f"{_MAGIC.decode().strip()!r})"
        )
    return data[len(_MAGIC) : end].split(b" ")[0].decode("ascii", "replace"), end + 1


def _replay(store: EventStore, path: Path, fd: int) -> int:
    """Commit the lines past the store's mark; the number of events replayed."""
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0) if size else b""
    try:
        head = _header(data)
    except HeldoutError as exc:
        raise HeldoutError(
            f"{path} {exc}; move it aside if it is not the event store's journal"
        ) from None
    if head is None:
        return 0
    jid, start = head
    mark = store.meta().get(MARK_KEY, "")
    mark_id, _, mark_at = mark.partition(" ")
    if mark_id == jid and mark_at.isdigit():
        start = max(start, int(mark_at))
    end = data.rfind(b"\n", start) + 1  # a last line without its newline was never acked
    if end <= start:
        return 0
    requests: list[tuple[Any, ...]] = []
    outcomes: list[tuple[Any, ...]] = []
    at = start
    for line in data[start : end - 1].split(b"\n"):
        try:
            kind, row = json.loads(line)
            (requests if kind == "r" else outcomes).append(tuple(row))
        except (ValueError, TypeError):
            raise HeldoutError(
                f"{path}: the line at byte {at} is not a journal record; move the journal "
                "aside (the events in it that are not in the store yet are lost) and reopen"
            ) from None
        at += len(line) + 1
    store.commit(requests, outcomes, mark=f"{jid} {end}")
    return len(requests) + len(outcomes)


def recover(store: EventStore) -> int:
    """Replay a journal that no live proxy holds (after a crash); the events replayed."""
    path = journal_path(store.path)
    if not path.is_file():
        return 0
    fd = os.open(path, os.O_RDONLY)
    try:
        if not _lock(fd):
            return 0  # a live proxy owns it and commits its own lines
        return _replay(store, path, fd)
    finally:
        os.close(fd)  # and the lock with it


class Journal:
    """The proxy's side: replay what a crash left, then append and commit in groups.

    :meth:`append` runs on the event loop before a response is sent; :meth:`flush` right
    after (and from any thread that reads the store, so a reader sees every acknowledged
    event). A flush that fails (a busy or full disk) keeps its rows for the next one: they are
    in the journal already.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.path = journal_path(store.path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for _ in range(50):  # another process may be replaying it this instant
                if _lock(self._fd):
                    break
                time.sleep(0.05)
            else:
                head = os.pread(self._fd, 200, 0).split(b"\n")[0].decode("ascii", "replace")
                holder = head.partition(" pid ")[2] or "?"
                raise HeldoutError(
                    f"another heldout ab serve (pid {holder}) is writing to {store.path} "
                    f"(it holds {self.path}): stop it, or give this proxy its own 'store:'"
                )
            _replay(store, self.path, self._fd)
            self._restart()
        except BaseException:
            os.close(self._fd)
            raise
        self._lock = threading.Lock()  # the file's end and the rows not yet committed
        self._commit_lock = threading.Lock()
        self._requests: list[tuple[Any, ...]] = []
        self._outcomes: list[tuple[Any, ...]] = []

    def _restart(self) -> None:
        """Empty the journal under a new id (everything in it is committed)."""
        os.ftruncate(self._fd, 0)
        self._id = uuid.uuid4().hex
        header = _MAGIC + f"{self._id} pid {os.getpid()}\n".encode()
        os.write(self._fd, header)
        self._size = len(header)

    @property
    def pending(self) -> int:
        return len(self._requests) + len(self._outcomes)

    def append(
        self, requests: Sequence[tuple[Any, ...]] = (), outcomes: Sequence[tuple[Any, ...]] = ()
    ) -> None:
        """Write the rows to the journal (durable against a crash of this process when it
        returns); they reach the tables at the next :meth:`flush`."""
        lines = [json.dumps(["r", r], separators=(",", ":")) for r in requests]
        lines += [json.dumps(["o", o], separators=(",", ":")) for o in outcomes]
        data = ("\n".join(lines) + "\n").encode()
        with self._lock:
            written = os.write(self._fd, data)
            if written != len(data):  # a full disk mid-line: cut it back, nothing acked
                os.ftruncate(self._fd, self._size)
                raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes)")
            self._size += written
            self._requests.extend(requests)
            self._outcomes.extend(outcomes)

    def flush(self, *, wait: bool = True) -> bool:
        """Commit the appended rows with the journal's mark, in one transaction; False when
        ``wait`` is off and another thread's flush is running (it may not take these rows).

        Flushes run one at a time (their marks must reach the store in order), but an
        :meth:`append` waits only for the hand-over of the rows, never for the commit.
        """
        if not self._commit_lock.acquire(blocking=wait):
            return False
        try:
            with self._lock:
                if not self._requests and not self._outcomes:
                    return True
                requests, outcomes, size = self._requests, self._outcomes, self._size
                self._requests, self._outcomes = [], []
            try:
                self.store.commit(requests, outcomes, mark=f"{self._id} {size}")
            except BaseException:  # the rows go back, ahead of any appended meanwhile
                with self._lock:
                    self._requests[:0] = requests
                    self._outcomes[:0] = outcomes
                raise
            with self._lock:
                if self._size > _ROTATE_BYTES and not self._requests and not self._outcomes:
                    self._restart()
            return True
        finally:
            self._commit_lock.release()

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            self.flush()
            with self._commit_lock, self._lock:
                self._restart()
        except sqlite3.Error:  # the store is locked or broken: the rows wait in the journal
            pass  # for the next opener to replay
        finally:
            os.close(self._fd)
            self._fd = -1

"""The event store's journal: what the proxy acknowledged reaches the tables exactly once,
after a crash at any point, and a live proxy's journal is never replayed by another process."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from heldout.ab import _journal
from heldout.ab._journal import Journal, journal_path
from heldout.ab._store import EventStore
from heldout.errors import HeldoutError

HOSTILE = 'u\n"},{"x":1}\r\n\u2028<script>\x00'


def _request(i: int, unit: str = "u") -> tuple[Any, ...]:
    return (f"r{i}", 1.7e9 + i / 3, f"{unit}{i}", "treatment", 0.1, "http://127.0.0.1:1/v1",
            "lora", 200, None, 0.1 + i / 7, i, 2 * i, i * 1e-7 / 3, 0, None)  # fmt: skip


def _outcome(i: int) -> tuple[Any, ...]:
    return (1.7e9 + i, f"r{i}", f"u{i}", "treatment", 0.1, "resolved", float(i % 2))


def _crash(store: EventStore) -> None:
    """What kill -9 leaves: the journal's bytes on disk, nothing flushed, the lock gone."""
    assert store.journal is not None
    os.close(store.journal._fd)
    store.journal = None


@dataclass
class Owned:
    path: Path
    store: EventStore
    journal: Journal


@pytest.fixture
def owned(tmp_path: Path) -> Owned:
    """A store with its journal open, as the proxy holds it."""
    store = EventStore(tmp_path / "events.sqlite")
    return Owned(store.path, store, store.open_journal())


def _table(path: Path, name: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT * FROM {name} ORDER BY rowid").fetchall()


def test_a_crash_before_the_commit_loses_nothing_and_replays_exactly_once(owned: Owned) -> None:
    path, store, journal = owned.path, owned.store, owned.journal
    rows = [_request(i, HOSTILE) for i in range(50)]
    for i, row in enumerate(rows):
        journal.append(requests=[row], outcomes=[_outcome(i)])
    journal.flush()  # the first 50 reach the tables
    more = [_request(i) for i in range(50, 80)]
    journal.append(requests=more, outcomes=[_outcome(i) for i in range(50, 80)])
    _crash(store)
    assert len(_table(path, "requests")) == 50  # the last 30 are only in the journal

    again = EventStore(path)
    assert again.replayed == 60
    assert _table(path, "requests") == [tuple(r) for r in rows + more]  # values exact
    assert len(_table(path, "outcomes")) == 80
    for _ in range(3):  # reopening replays nothing twice (outcomes have no key to dedupe on)
        assert EventStore(path).replayed == 0
    assert len(_table(path, "outcomes")) == 80


def test_a_write_cut_short_is_ignored_and_a_damaged_journal_named(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    store = EventStore(path)
    store.open_journal().append(requests=[_request(1), _request(2)])
    _crash(store)
    with journal_path(path).open("ab") as fh:  # a third line torn mid-write: never acked
        fh.write(json.dumps(["r", list(_request(3))]).encode()[:40])
    assert EventStore(path).replayed == 2
    assert [r[0] for r in _table(path, "requests")] == ["r1", "r2"]

    other = tmp_path / "b.sqlite"
    store = EventStore(other)
    store.open_journal().append(requests=[_request(1)])
    _crash(store)
    with journal_path(other).open("ab") as fh:
        fh.write(b"{not json}\n")
    with pytest.raises(HeldoutError, match=r"b\.sqlite\.heldout-journal: the line at byte \d+"):
        EventStore(other)
    journal_path(other).write_bytes(b"PK\x03\x04 some zip\n")
    with pytest.raises(HeldoutError, match="is not a heldout journal"):
        EventStore(other)


def test_a_live_journal_is_not_replayed_by_another_opener_and_a_second_writer_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.sqlite"
    owner = EventStore(path)
    journal = owner.open_journal()
    journal.append(requests=[_request(i) for i in range(10)])
    reader = EventStore(path)  # e.g. heldout ab analyze while the proxy runs
    assert reader.replayed == 0
    assert _table(path, "requests") == []
    assert len(owner.table("requests", ["id"])["id"]) == 10  # the owner's read commits first
    assert len(_table(path, "requests")) == 10
    monkeypatch.setattr(_journal.time, "sleep", lambda s: None)
    with pytest.raises(
        HeldoutError, match=rf"another heldout ab serve \(pid {os.getpid()}\) is writing to"
    ):
        EventStore(path).open_journal()
    owner.close()
    assert EventStore(path).open_journal() is not None  # free again once the owner closes


def test_a_fully_committed_journal_is_emptied_past_its_size_limit(
    owned: Owned, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_journal, "_ROTATE_BYTES", 2000)
    path, store, journal = owned.path, owned.store, owned.journal
    sizes = []
    for i in range(40):
        journal.append(requests=[_request(i)], outcomes=[_outcome(i)])
        if i % 3 == 0:
            journal.flush()
        sizes.append(journal_path(path).stat().st_size)
    assert max(sizes) < 2000 + 1000
    assert sizes.count(min(sizes)) >= 2  # emptied more than once
    _crash(store)  # rows of the last groups are only in the (new) journal
    EventStore(path)
    assert [r[0] for r in _table(path, "requests")] == [f"r{i}" for i in range(40)]
    assert len(_table(path, "outcomes")) == 40


def test_a_locked_store_keeps_the_rows_in_the_journal_until_it_can_commit(owned: Owned) -> None:
    path, journal = owned.path, owned.journal
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the store
    journal.append(requests=[_request(1)])
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        journal.flush()
    assert journal.pending == 1
    blocker.execute("COMMIT")
    journal.flush()
    assert journal.pending == 0
    assert [r[0] for r in _table(path, "requests")] == ["r1"]


def test_a_short_write_is_cut_back_and_not_acknowledged(
    owned: Owned, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, store, journal = owned.path, owned.store, owned.journal
    journal.append(requests=[_request(1)])
    size = journal_path(path).stat().st_size
    real = os.write

    def half(fd: int, data: bytes) -> int:  # a disk that fills up mid-line
        return real(fd, data[: len(data) // 2])

    monkeypatch.setattr(_journal.os, "write", half)
    with pytest.raises(OSError, match="short write"):
        journal.append(requests=[_request(2)])
    monkeypatch.setattr(_journal.os, "write", real)
    assert journal_path(path).stat().st_size == size
    journal.append(requests=[_request(3)])
    _crash(store)
    EventStore(path)
    assert [r[0] for r in _table(path, "requests")] == ["r1", "r3"]


def test_an_append_does_not_wait_for_another_threads_commit(
    owned: Owned, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, store, journal = owned.path, owned.store, owned.journal
    real, entered, release = store.commit, threading.Event(), threading.Event()

    def slow(*args: Any, **kwargs: Any) -> None:  # a reader's flush stuck on a busy disk
        entered.set()
        release.wait(10)
        real(*args, **kwargs)

    monkeypatch.setattr(store, "commit", slow)
    journal.append(requests=[_request(1)])
    reader = threading.Thread(target=journal.flush)
    reader.start()
    assert entered.wait(10)
    started = time.perf_counter()
    journal.append(requests=[_request(2)], outcomes=[_outcome(2)])  # the loop's next event
    assert time.perf_counter() - started < 1.0
    assert journal.flush(wait=False) is False  # the loop does not queue behind it either
    release.set()
    reader.join(10)
    monkeypatch.setattr(store, "commit", real)
    assert journal.pending == 2
    assert journal.flush(wait=False) is True
    assert [r[0] for r in _table(path, "requests")] == ["r1", "r2"]
    _crash(store)
    assert EventStore(path).replayed == 0  # the marks reached the store in order

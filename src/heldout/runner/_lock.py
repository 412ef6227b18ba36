"""One `heldout run` per project at a time: a second one would send every request twice."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from heldout.errors import HeldoutError

__all__ = ["project_lock"]


@contextmanager
def project_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (``.heldout/run.lock``) for the run; refuse at
    once, naming the process that holds it, when another run has it. The lock is the
    operating system's (flock): it goes with the process, even after kill -9."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as before
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "a process"
            raise HeldoutError(
                f"another heldout run is running on this project ({holder}; lock {path}): "
                "wait for it to finish or stop it, then rerun (two runs would send every "
                "request twice)"
            ) from None
        fh.seek(0)
        fh.truncate()
        started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        fh.write(f"pid {os.getpid()}, started {started}")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()

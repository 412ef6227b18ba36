"""Progress: rich bars on a terminal; in a CI log, plain lines at a steady pace.

The plain form prints when a model starts on a dataset (with what came from the cache), then
every 10% of it or every 10 seconds, whichever comes first, and when it finishes; the other
stages print one line as they start. A CI job thus never sits silent for long, and each
line is complete on its own (no carriage returns, no cursor movement).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.table import Column
from rich.text import Text

__all__ = ["PlainLines", "clock", "progress_for"]

#: (label, done, total): what a progress display is fed.
Update = Callable[[str, int, int], None]


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    m, sec = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


class _RateColumn(ProgressColumn):
    """Responses per second over rich's recent window ("–" until there is one)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(
            "   –  /s" if speed is None else f"{speed:>6,.0f}/s", style="progress.data.speed"
        )


class _TimeColumn(ProgressColumn):
    """Elapsed<remaining, as tqdm prints it ("03:12<01:05")."""

    def render(self, task: Task) -> Text:
        left = 0.0 if task.finished else task.time_remaining
        return Text(f"{clock(task.elapsed)}<{clock(left)}", style="progress.remaining")


@contextmanager
def _bars(console: Console, width: int) -> Iterator[Update]:
    """Rich progress bars, one per label: count, rate, elapsed and remaining time. Work done
    when a bar appears (cache hits) is not counted in its rate."""
    with Progress(
        TextColumn(
            "{task.description}",
            table_column=Column(width=width, no_wrap=True, overflow="ellipsis"),
        ),
        BarColumn(bar_width=None),
        TextColumn("{task.completed:>6,}/{task.total:<6,}"),
        _RateColumn(),
        _TimeColumn(),
        console=console,
    ) as progress:
        tasks: dict[str, Any] = {}

        def update(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=total, completed=done)
            else:
                progress.update(tasks[label], completed=done, total=total)

        yield update


@dataclass
class _Line:
    start: float
    start_done: int
    last_print: float
    last_done: int


class PlainLines:
    """Plain progress lines for logs: at a start, every ``step`` of the total or ``every_s``
    seconds, and at the end. ``clock`` is injectable for tests."""

    def __init__(
        self,
        write: Callable[[str], None],
        *,
        already: str = "already done",
        step: float = 0.1,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write = write
        self.already = already
        self.step = step
        self.every_s = every_s
        self.clock = clock
        self._lines: dict[str, _Line] = {}

    def stage(self, text: str) -> None:
        self.write(text)

    def __call__(self, label: str, done: int, total: int) -> None:
        now = self.clock()
        line = self._lines.get(label)
        if line is None:
            self._lines[label] = _Line(now, done, now, done)
            cached = f", {done:,} {self.already}" if done else ""
            self.write(f"{label}: {total:,} to do{cached}")
            if done >= total:
                self.write(f"{label}: done {done:,}/{total:,} (all {self.already})")
            return
        finished = done >= total
        if finished and line.last_done >= total:
            return
        stride = max(1, int(total * self.step))
        due = done - line.last_done >= stride or now - line.last_print >= self.every_s
        if not (due or finished):
            return
        line.last_print, line.last_done = now, done
        elapsed = now - line.start
        rate = (done - line.start_done) / elapsed if elapsed > 0 else 0.0
        share = f" ({done / total:.0%})" if total else ""
        if finished:
            self.write(f"{label}: done {done:,}/{total:,} in {clock(elapsed)} ({rate:,.1f}/s)")
            return
        left = (total - done) / rate if rate > 0 else None
        self.write(
            f"{label}: {done:,}/{total:,}{share}, {rate:,.1f}/s, {clock(elapsed)} elapsed, "
            f"~{clock(left)} left"
        )


@contextmanager
def progress_for(
    console: Console, width: int = 30, *, already: str = "already done"
) -> Iterator[tuple[Update, Callable[[str], None]]]:
    """(update, stage) callbacks: bars on a terminal (stages are not shown there), plain lines
    in a log; ``already`` names the work done before a line starts ("from the cache")."""
    if console.is_terminal:
        with _bars(console, width) as update:
            yield update, lambda text: None
        return
    plain = PlainLines(
        lambda text: console.print(text, highlight=False, markup=False, soft_wrap=True),
        already=already,
    )
    yield plain, plain.stage

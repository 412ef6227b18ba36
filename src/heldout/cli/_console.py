"""What every command shares: the two consoles, error exits, tables that never cut a value,
and ``--json`` output.

On a terminal, rich fits the window; elsewhere (a CI log, a pipe) lines are as wide as
``COLUMNS`` or 160 characters, and no table column is ever cut with an ellipsis: a value too
long for its column wraps onto the next line instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from heldout.errors import HeldoutError

__all__ = [
    "DEFAULT_PLAN",
    "INTERRUPTED",
    "JsonOpt",
    "PlanOpt",
    "err",
    "fail",
    "guard",
    "out",
    "print_json",
    "row",
    "table",
]

T = TypeVar("T")


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    width = None if tty or os.environ.get("COLUMNS") else 160
    return Console(stderr=stderr, width=width, soft_wrap=False)


out = _console(False)
err = _console(True)

#: What an interrupted command had finished, for the interruption message.
INTERRUPTED = [""]

PlanOpt = Annotated[Path, typer.Option("--plan", "-p", help="Plan file.")]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print JSON (its schema: 'heldout schema NAME') instead."),
]
DEFAULT_PLAN = Path("heldout.yaml")


def table(*columns: str, title: str | None = None) -> Table:
    """A table whose cells wrap (fold) instead of being cut: numbers, names and test names
    are always printed whole."""
    t = Table(title=title)
    for name in columns:
        t.add_column(name, overflow="fold")
    return t


def row(t: Table, *cells: str | Text) -> None:
    """Add a row of plain text (a metric named ``recall[pii]`` is not rich markup)."""
    t.add_row(*(c if isinstance(c, Text) else Text(c) for c in cells))


def guard(fn: Callable[[], T]) -> T:
    """Run ``fn``; a HeldoutError becomes a clear message and exit code 2."""
    try:
        return fn()
    except HeldoutError as exc:
        fail(str(exc), 2)


def fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def print_json(model: BaseModel) -> None:
    """One JSON document on stdout (nothing else is printed there)."""
    sys.stdout.write(model.model_dump_json(indent=2) + "\n")
    sys.stdout.flush()

"""The iterations of a fine-tune as ``heldout history`` shows them: each new candidate
against the previous one, paired on the same frozen gold set, and whether the last several
brought a significant gain ("when several iterations in a row bring no gain, the problem is
usually data quality, not model size")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heldout.errors import HeldoutError
from heldout.results._compare_runs import compare_runs
from heldout.results._store import load_run
from heldout.stats import Comparison

__all__ = ["Iteration", "iterations", "stalled"]


@dataclass(frozen=True, slots=True)
class Iteration:
    previous: str  # run id
    run: str
    candidate: str  # what changed: the new candidate's identity, short
    comparison: Comparison | None  # None when the two cannot be paired (reason)
    reason: str | None = None

    @property
    def gain(self) -> bool:
        return self.comparison is not None and self.comparison.real_gain


def _identity(folder: Path) -> str | None:
    try:
        run = load_run(folder)
    except HeldoutError:
        return None
    if run.smoke is not None:
        return None
    cand = next((m for m in run.models if m.role == "candidate"), None)
    if cand is None:
        return None
    ident = cand.identity
    keys = ("model", "adapter", "revision", "path", "name")
    return " ".join(f"{k}={ident[k]}" for k in keys if ident.get(k)) or str(ident)[:80]


def iterations(rows: Sequence[Mapping[str, Any]]) -> list[Iteration]:
    """Consecutive full runs (in store order) whose candidate changed, each compared with the
    previous candidate (runs of the same candidate again are not a new iteration)."""
    out: list[Iteration] = []
    prev: tuple[str, Path, str] | None = None
    for r in rows:
        if r.get("verdict") in ("smoke", "baseline"):
            continue
        folder = Path(str(r["folder"]))
        ident = _identity(folder)
        if ident is None:
            continue
        if prev is not None and ident != prev[2]:
            try:
                c: Comparison | None = compare_runs(prev[1], folder)
                why = None
            except HeldoutError as exc:
                c, why = None, str(exc)
            out.append(Iteration(prev[0], str(r["run_id"]), ident, c, why))
        prev = (str(r["run_id"]), folder, ident)
    return out


def stalled(its: Sequence[Iteration], k: int = 3) -> int:
    """How many of the latest iterations in a row brought no significant gain (0 if the
    last did); a message is due at ``k`` or more."""
    n = 0
    for it in reversed(its):
        if it.comparison is None or it.gain:
            break
        n += 1
    return n if n >= k else 0

"""The run store: a small SQLite index of every run next to the plan (``.heldout/runs.sqlite``).

It indexes; ``results.json`` in each run folder stays the source of truth.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from heldout.errors import HeldoutError
from heldout.results._model import RunResult

__all__ = ["RunStore", "load_run"]


class RunStore:
    """Index of runs: id, plan, time, verdict, primary delta, folder."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            with sqlite3.connect(path) as db:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, plan_name TEXT, "
                    "created_at TEXT, verdict TEXT, metric TEXT, base REAL, candidate REAL, "
                    "delta REAL, delta_low REAL, delta_high REAL, gates TEXT, folder TEXT)"
                )
                db.execute("SELECT count(*) FROM runs").fetchone()
        except sqlite3.DatabaseError as exc:
            raise HeldoutError(
                f"the run store {path} is damaged ({exc}); move it aside (mv {path} "
                f"{path}.broken): the runs themselves are in their folders, only the index "
                "of 'heldout history' is lost"
            ) from None

    def add(self, result: RunResult, folder: Path) -> None:
        primary = next((c for c in result.comparisons if c.primary), None)
        gates = ", ".join(f"{g.name}: {g.status}" for g in result.gates)
        with sqlite3.connect(self.path) as db:
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    result.run_id,
                    result.plan_name,
                    result.created_at,
                    result.verdict.status,
                    result.primary_metric,
                    primary.base.estimate if primary else None,
                    primary.other.estimate if primary else None,
                    primary.delta.estimate if primary else None,
                    primary.delta.low if primary else None,
                    primary.delta.high if primary else None,
                    gates,
                    str(folder),
                ),
            )

    def add_baseline(
        self,
        *,
        run_id: str,
        plan_name: str,
        created_at: str,
        metric: str,
        value: float,
        low: float,
        high: float,
        folder: Path,
    ) -> None:
        """A ``heldout baseline`` measurement: verdict "baseline", the base model's score on
        the gold set with the chosen prompt (its CI in the delta columns' place is not a
        delta, so those stay empty)."""
        with sqlite3.connect(self.path) as db:
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, plan_name, created_at, "baseline", metric, value, None, None, None,
                 None, f"baseline CI [{low:.4f}, {high:.4f}]", str(folder)),
            )  # fmt: skip

    def list(self, plan_name: str | None = None) -> list[dict[str, Any]]:
        with sqlite3.connect(self.path) as db:
            db.row_factory = sqlite3.Row
            if plan_name is None:
                rows = db.execute("SELECT * FROM runs ORDER BY created_at, run_id")
            else:
                rows = db.execute(
                    "SELECT * FROM runs WHERE plan_name = ? ORDER BY created_at, run_id",
                    (plan_name,),
                )
            return [dict(r) for r in rows]

    def folder(self, run: str) -> Path:
        """A run's folder from its id (or a unique id prefix)."""
        matches = [r for r in self.list() if r["run_id"].startswith(run)]
        if len(matches) != 1:
            known = ", ".join(r["run_id"] for r in self.list()[-10:]) or "(none)"
            what = "no run" if not matches else f"{len(matches)} runs"
            raise HeldoutError(f"{what} match {run!r}; recent runs: {known}")
        return Path(matches[0]["folder"])


def load_run(folder: Path) -> RunResult:
    """Read a run's ``results.json`` (any schema version this heldout understands)."""
    path = folder / "results.json"
    if not path.is_file():
        raise HeldoutError(f"{path}: no results.json; is this a heldout run folder?")
    try:
        return RunResult.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise HeldoutError(f"{path}: unreadable results ({exc})") from None

"""Per-sample rows (id, model, output, scores, flags) as JSONL and Parquet, and reading them back.

One row per (dataset, sample, model). ``scores`` holds every metric's per-sample value;
``flags`` marks what a reviewer looks for first: ``regression`` (base right, this model
wrong on the primary metric), ``fix`` (the reverse), ``unparseable`` and ``failed``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from heldout.data import jsonl_lines

__all__ = ["read_samples", "write_samples"]


def write_samples(folder: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write ``samples.jsonl`` and ``samples.parquet`` (scores flattened to columns).

    The Parquet table is built column by column from the rows (pyarrow converts each list
    in C): no second JSON pass and no pandas import (a third of a second of every run).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    dumps = json.JSONEncoder(ensure_ascii=False).encode
    with (folder / "samples.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(dumps(row) + "\n" for row in rows)
    metrics = sorted({m for r in rows for m in r["scores"]})
    text_columns = ["dataset", "id", "model", "input", "output", "error"]
    columns: dict[str, Any] = {c: pa.array([r[c] for r in rows], pa.string()) for c in text_columns}
    columns["target"] = pa.array([dumps(r["target"]) for r in rows], pa.string())
    columns["flags"] = pa.array([list(r["flags"]) for r in rows], pa.list_(pa.string()))
    for m in metrics:
        columns[f"score_{m}"] = pa.array([r["scores"].get(m) for r in rows], pa.float64())
    order = ["dataset", "id", "model", "input", "target", "output", "error", "flags"]
    table = pa.table({c: columns[c] for c in order + [f"score_{m}" for m in metrics]})
    pq.write_table(table, folder / "samples.parquet")


def read_samples(folder: Path) -> list[dict[str, Any]]:
    """Rows of a stored run's ``samples.jsonl``."""
    path = folder / "samples.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in jsonl_lines(path.read_text(encoding="utf-8"))]


def flag_rows(
    rows: Iterable[dict[str, Any]], primary: str, higher_is_better: Mapping[str, bool]
) -> None:
    """Set ``regression``/``fix`` flags relative to the base model, in place: the sample's
    score on the dataset's metric (the primary metric on the gold set) got worse or better.
    For binary metrics that is "base right, this model wrong" and the reverse."""
    rows = list(rows)
    base = {(r["dataset"], r["id"]): r for r in rows if r["model"] == "base"}
    for r in rows:
        if r["model"] == "base":
            continue
        b = base.get((r["dataset"], r["id"]))
        if b is None:
            continue
        metric = primary if r["dataset"] == "gold" else next(iter(r["scores"]), None)
        if metric is None or metric not in r["scores"] or metric not in b["scores"]:
            continue
        sign = 1.0 if higher_is_better.get(metric, True) else -1.0
        change = sign * (r["scores"][metric] - b["scores"][metric])
        if change < 0:
            r["flags"].append("regression")
        elif change > 0:
            r["flags"].append("fix")

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


#: From this many rows, samples.parquet is built from columns (~30% faster at 600k rows,
#: but pyarrow then imports pandas, a quarter of a second that small runs should not pay).
COLUMNS_FROM = 50_000
_TEXT = ("dataset", "id", "model", "input", "target", "output", "error")


def write_samples(folder: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write ``samples.jsonl`` and ``samples.parquet`` (scores flattened to columns)."""
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    with (folder / "samples.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(dumps(row) + "\n" for row in rows)
    metrics = sorted({m for r in rows for m in r["scores"]})
    if len(rows) >= COLUMNS_FROM:
        _parquet_from_columns(folder, rows, metrics, dumps)
    else:
        _parquet_via_json(folder, rows, metrics, dumps)


def _parquet_from_columns(
    folder: Path, rows: Sequence[Mapping[str, Any]], metrics: list[str], dumps: Any
) -> None:
    """Each column converted by pyarrow in C: no second JSON pass."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = [
        pa.array([dumps(r[c]) if c == "target" else r[c] for r in rows], pa.string()) for c in _TEXT
    ]
    arrays.append(pa.array([list(r["flags"]) for r in rows], pa.list_(pa.string())))
    arrays += [pa.array([r["scores"].get(m) for r in rows], pa.float64()) for m in metrics]
    names = [*_TEXT, "flags", *(f"score_{m}" for m in metrics)]
    pq.write_table(pa.Table.from_arrays(arrays, names=names), folder / "samples.parquet")


def _parquet_via_json(
    folder: Path, rows: Sequence[Mapping[str, Any]], metrics: list[str], dumps: Any
) -> None:
    """pyarrow's JSON reader on a flat JSONL with an explicit schema: no per-value Python
    conversion, which would import pandas when installed."""
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    schema = pa.schema(
        [pa.field(c, pa.string()) for c in _TEXT]
        + [pa.field("flags", pa.list_(pa.string()))]
        + [pa.field(f"score_{m}", pa.float64()) for m in metrics]
    )
    flat = folder / "samples.flat.jsonl.tmp"
    longest = 0
    with flat.open("w", encoding="utf-8") as fh:
        for r in rows:
            record: dict[str, Any] = {c: r[c] for c in _TEXT}
            record["target"] = dumps(r["target"])
            record["flags"] = list(r["flags"])
            for m in metrics:
                record[f"score_{m}"] = r["scores"].get(m)
            line = dumps(record) + "\n"
            longest = max(longest, 4 * len(line))  # ≥ its UTF-8 bytes, without encoding it
            fh.write(line)
    try:
        if rows:
            table = pj.read_json(
                flat,
                read_options=pj.ReadOptions(block_size=max(1 << 20, 2 * longest)),
                parse_options=pj.ParseOptions(explicit_schema=schema),
            )
        else:
            table = schema.empty_table()
        pq.write_table(table, folder / "samples.parquet")
    finally:
        flat.unlink(missing_ok=True)


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

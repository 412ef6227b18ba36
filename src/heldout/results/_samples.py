"""Per-sample rows (id, model, output, scores, flags) as JSONL and Parquet, and reading them back.

One row per (dataset, sample, model). ``scores`` holds every metric's per-sample value;
``flags`` marks what a reviewer looks for first: ``regression`` (base right, this model
wrong on the primary metric), ``fix`` (the reverse), ``unparseable``, ``failed`` and
``truncated`` (cut off at the token limit: ``finish_reason: length``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from heldout.data import jsonl_lines
from heldout.results._table import FLAGS, SampleBlock, SampleTable, flag_names

__all__ = ["read_samples", "write_samples"]


#: From this many rows, samples.parquet is built from columns (~30% faster at 600k rows,
#: but pyarrow then imports pandas, a quarter of a second that small runs should not pay).
COLUMNS_FROM = 50_000
_TEXT = ("dataset", "id", "model", "input", "target", "output", "error")
_quote = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses: C when built


def write_samples(folder: Path, rows: SampleTable | Sequence[Mapping[str, Any]]) -> None:
    """Write ``samples.jsonl`` and ``samples.parquet`` (scores flattened to columns)."""
    table = rows if isinstance(rows, SampleTable) else SampleTable.from_rows(rows)
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    targets = [_text(b.targets, dumps) for b in table.blocks]
    with (folder / "samples.jsonl").open("w", encoding="utf-8") as fh:
        for block, encoded in zip(table.blocks, targets, strict=True):
            fh.writelines(_jsonl(block, encoded, dumps))
    metrics = table.metrics()
    if len(table) >= COLUMNS_FROM:
        _parquet_from_columns(folder, table, targets, metrics)
    else:
        _parquet_via_json(folder, table, metrics, dumps)


def _text(values: Sequence[Any], dumps: Any) -> list[str]:
    """Each value as JSON; strings (and None) through the C string encoder."""
    return [_quote(v) if isinstance(v, str) else "null" if v is None else dumps(v) for v in values]


def _numbers(values: NDArray[np.float64]) -> list[str]:
    """Floats as ``json`` writes them: ``repr``, and NaN / Infinity / -Infinity."""
    out = list(map(float.__repr__, values.tolist()))
    for i in np.flatnonzero(~np.isfinite(values)).tolist():
        v = float(values[i])
        out[i] = "NaN" if v != v else "Infinity" if v > 0 else "-Infinity"
    return out


def _jsonl(block: SampleBlock, targets: list[str], dumps: Any) -> Iterator[str]:
    """The block's lines, each what ``dumps(block.row(i))`` writes, built from columns
    encoded one at a time (no row becomes a dict)."""
    start = f'{{"dataset": {dumps(block.dataset)}, "id": '
    model = f', "model": {dumps(block.model)}, "input": '
    scores: list[list[str | None]] = []
    for m, values in block.scores.items():
        key = f"{dumps(m)}: "
        gone = block.missing.get(m)
        encoded: list[str | None] = [key + x for x in _numbers(values)]
        if gone is not None:
            encoded = [None if g else x for x, g in zip(encoded, gone.tolist(), strict=True)]
        scores.append(encoded)
    joined: Iterable[str]
    if not scores:
        joined = [""] * len(block)
    elif block.missing:
        joined = (
            ", ".join(x for x in parts if x is not None) for parts in zip(*scores, strict=True)
        )
    else:
        joined = map(", ".join, zip(*scores, strict=True))
    flags: Iterable[str]
    if block.flag_lists is not None:
        flags = map(dumps, block.flag_lists)
    else:
        by_code = [dumps(flag_names(c)) for c in range(1 << len(FLAGS))]
        flags = [by_code[c] for c in block.codes.tolist()]
    metadata = [
        "{}" if not m else dumps(m if isinstance(m, dict) else dict(m)) for m in block.metadata
    ]
    for id_, inp, target, out, err, meta, sc, fl in zip(
        _text(block.ids, dumps),
        _text(block.inputs, dumps),
        targets,
        _text(block.outputs, dumps),
        _text(block.errors, dumps),
        metadata,
        joined,
        flags,
        strict=True,
    ):
        yield (
            f'{start}{id_}{model}{inp}, "target": {target}, "output": {out}, "error": {err}, '
            f'"metadata": {meta}, "scores": {{{sc}}}, "flags": {fl}}}\n'
        )


def _parquet_from_columns(
    folder: Path, table: SampleTable, targets: list[list[str]], metrics: list[str]
) -> None:
    """Each column converted by pyarrow in C from the blocks' columns: no row is built."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    blocks = table.blocks
    columns: dict[str, list[Any]] = {
        "dataset": [b.dataset for b in blocks for _ in range(len(b))],
        "id": [x for b in blocks for x in b.ids],
        "model": [b.model for b in blocks for _ in range(len(b))],
        "input": [x for b in blocks for x in b.inputs],
        "target": [x for t in targets for x in t],
        "output": [x for b in blocks for x in b.outputs],
        "error": [x for b in blocks for x in b.errors],
    }
    arrays = [pa.array(columns[c], pa.string()) for c in _TEXT]
    arrays.append(
        pa.array([b.flags(i) for b in blocks for i in range(len(b))], pa.list_(pa.string()))
    )
    for m in metrics:
        values = np.concatenate([b.scores.get(m, np.zeros(len(b))) for b in blocks])
        null = np.concatenate(
            [b.missing.get(m, np.full(len(b), m not in b.scores)) for b in blocks]
        )
        arrays.append(pa.array(values, pa.float64(), mask=null if null.any() else None))
    names = [*_TEXT, "flags", *(f"score_{m}" for m in metrics)]
    pq.write_table(pa.Table.from_arrays(arrays, names=names), folder / "samples.parquet")


def _parquet_via_json(folder: Path, table: SampleTable, metrics: list[str], dumps: Any) -> None:
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
        for r in table.rows():
            record: dict[str, Any] = {c: r[c] for c in _TEXT}
            record["target"] = dumps(r["target"])
            record["flags"] = r["flags"]
            for m in metrics:
                record[f"score_{m}"] = r["scores"].get(m)
            line = dumps(record) + "\n"
            longest = max(longest, 4 * len(line))  # ≥ its UTF-8 bytes, without encoding it
            fh.write(line)
    try:
        if len(table):
            arrow = pj.read_json(
                flat,
                read_options=pj.ReadOptions(block_size=max(1 << 20, 2 * longest)),
                parse_options=pj.ParseOptions(explicit_schema=schema),
            )
        else:
            arrow = schema.empty_table()
        pq.write_table(arrow, folder / "samples.parquet")
    finally:
        flat.unlink(missing_ok=True)


def read_samples(folder: Path) -> list[dict[str, Any]]:
    """Rows of a stored run's ``samples.jsonl``."""
    path = folder / "samples.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in jsonl_lines(path.read_text(encoding="utf-8"))]

"""Streaming readers for JSONL, CSV and Parquet that report every problem with its location.

Each reader yields ``(where, record)``: ``where`` is ``file:line`` (``file:row N`` for
Parquet) where ``record`` is a ``dict`` or a :class:`Problem`
for a row that could not be read (bad UTF-8, malformed JSON ...). Nothing is skipped silently:
blank JSONL lines carry no data and are the only thing passed over.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from heldout._json import load_json
from heldout.errors import DataError, Problem

__all__ = ["FORMATS", "detect_format", "iter_records", "jsonl_lines"]

FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
Record = dict[str, Any] | Problem


def detect_format(path: Path) -> str:
    """Format from the file extension; an unknown one raises listing the supported ones."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            [
                Problem(
                    str(path),
                    f"unsupported extension {path.suffix!r}; use one of "
                    f"{', '.join(sorted(FORMATS))}",
                )
            ]
        )
    return fmt


def iter_records(path: Path, fmt: str | None = None) -> Iterator[tuple[str, Record]]:
    """Yield ``(where, record)``; file-level problems raise :class:`DataError`. ``fmt``
    (jsonl, csv, tsv, parquet) overrides the format the extension names: the file read is
    always exactly ``path``."""
    fmt = fmt or detect_format(path)
    if not path.is_file():
        raise DataError(
            [Problem(str(path), "file not found; check the path (relative to the plan)")]
        )
    if path.stat().st_size == 0:
        raise DataError([Problem(str(path), "file is empty; write the samples into it")])
    if fmt == "jsonl":
        yield from _iter_jsonl(path)
    elif fmt in ("csv", "tsv"):
        yield from _iter_csv(path, delimiter="\t" if fmt == "tsv" else ",")
    else:
        yield from _iter_parquet(path)


def jsonl_lines(text: str) -> list[str]:
    """The lines of JSONL text: split on "\\n" only. ``str.splitlines`` also splits on
    U+2028, U+2029, U+0085 and other separators, which JSON strings may hold raw."""
    return [line for line in text.split("\n") if line.strip()]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; write null or a number")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r} in one object")
        obj[key] = value
    return obj


def _parse_json_line(text: str) -> Any:
    return load_json(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)


def _iter_jsonl(path: Path) -> Iterator[tuple[str, Record]]:
    where = str(path)
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield (
                    f"{where}:{lineno}",
                    Problem(
                        f"{where}:{lineno}",
                        f"invalid UTF-8 at byte {exc.start} of the line; re-save the file as UTF-8",
                    ),
                )
                continue
            if not text.strip():
                continue
            try:
                value = _parse_json_line(text)
            except json.JSONDecodeError as exc:
                yield (
                    f"{where}:{lineno}",
                    Problem(
                        f"{where}:{lineno}",
                        f"malformed JSON at column {exc.colno}: {exc.msg}; each line must be one "
                        "JSON object",
                    ),
                )
                continue
            except ValueError as exc:
                yield (
                    f"{where}:{lineno}",
                    Problem(f"{where}:{lineno}", f"malformed JSON: {exc}; keep one of each key"),
                )
                continue
            if not isinstance(value, dict):
                yield (
                    f"{where}:{lineno}",
                    Problem(
                        f"{where}:{lineno}",
                        f"expected a JSON object per line, got {type(value).__name__}",
                    ),
                )
                continue
            yield f"{where}:{lineno}", value


def _iter_csv(path: Path, *, delimiter: str) -> Iterator[tuple[str, Record]]:
    where = str(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            [Problem(f"{where}:{line}", "invalid UTF-8; re-save the file as UTF-8")]
        ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError(
            [
                Problem(
                    f"{where}:{line}",
                    "NUL byte in a CSV file (a binary or UTF-16 file?); re-save it as UTF-8 text",
                )
            ]
        )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError([Problem(where, "file has no header row")]) from None
    except csv.Error as exc:
        raise DataError([Problem(f"{where}:1", f"malformed CSV header: {exc}")]) from None
    if len(set(header)) != len(header) or any(not h.strip() for h in header):
        raise DataError(
            [
                Problem(
                    f"{where}:1",
                    f"header has empty or repeated column names: {header}; use unique names",
                )
            ]
        )
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield (
                f"{where}:{reader.line_num}",
                Problem(f"{where}:{reader.line_num}", f"malformed CSV: {exc}"),
            )
            return
        line = reader.line_num
        if not row:
            continue
        if len(row) != len(header):
            yield (
                f"{where}:{line}",
                Problem(
                    f"{where}:{line}",
                    f"row has {len(row)} fields but the header has {len(header)}; quote fields "
                    "that contain the delimiter",
                ),
            )
            continue
        yield f"{where}:{line}", dict(zip(header, row, strict=True))


def _iter_parquet(path: Path) -> Iterator[tuple[str, Record]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            [
                Problem(
                    str(path),
                    f"not a readable Parquet file: {exc}; re-export it "
                    "(pandas.DataFrame.to_parquet)",
                )
            ]
        ) from None
    row = 0
    for batch in pf.iter_batches(batch_size=8192):
        for rec in batch.to_pylist():
            row += 1
            yield f"{path}:row {row}", rec

"""Load a gold set into :class:`Sample` objects, checking its integrity.

Every problem found (missing or duplicate ids, missing fields, wrong types, unreadable rows)
is collected, up to ``max_problems``, and raised together in one :class:`DataError` naming
file, line and field. Nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from heldout.data._readers import iter_records
from heldout.data._sample import FieldMap, Sample
from heldout.errors import DataError, Problem

__all__ = ["iter_samples", "load_samples"]

MAX_PROBLEMS = 50


class _Collector:
    def __init__(self, source: str, cap: int) -> None:
        self.source = source
        self.cap = cap
        self.problems: list[Problem] = []
        self.more = 0

    def add(self, problem: Problem) -> None:
        if len(self.problems) < self.cap:
            self.problems.append(problem)
        else:
            self.more += 1

    def raise_if_any(self) -> None:
        if self.problems:
            raise DataError(self.problems, source=self.source, more=self.more)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _to_sample(where: str, rec: dict[str, Any], fields: FieldMap, out: _Collector) -> Sample | None:
    ok = True
    raw_id = rec.get(fields.id_field)
    sample_id = ""
    if fields.id_field not in rec:
        out.add(
            Problem(
                f"{where}: field {fields.id_field!r}",
                "missing sample id; give every row a unique id (or set task.id_field)",
            )
        )
        ok = False
    elif isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        out.add(
            Problem(
                f"{where}: field {fields.id_field!r}",
                f"id must be a string or integer, got {_type_name(raw_id)}",
            )
        )
        ok = False
    else:
        sample_id = str(raw_id).strip()
        if not sample_id:
            out.add(
                Problem(
                    f"{where}: field {fields.id_field!r}", "id is empty; give every row a unique id"
                )
            )
            ok = False

    text = rec.get(fields.input_field)
    if fields.input_field not in rec:
        out.add(
            Problem(
                f"{where}: field {fields.input_field!r}",
                "missing input; give every row the model input (or set task.input_field)",
            )
        )
        ok = False
    elif not isinstance(text, str):
        out.add(
            Problem(
                f"{where}: field {fields.input_field!r}",
                f"input must be a string, got {_type_name(text)}",
            )
        )
        ok = False
    elif not text.strip():
        out.add(
            Problem(
                f"{where}: field {fields.input_field!r}",
                "input is empty; give it the text the model sees, or remove the row",
            )
        )
        ok = False

    target = rec.get(fields.target_field)
    if fields.require_target and (fields.target_field not in rec or target is None):
        out.add(
            Problem(
                f"{where}: field {fields.target_field!r}",
                "missing target (the gold set needs a reference for every sample)",
            )
        )
        ok = False

    metadata: dict[str, Any] = {}
    nested = rec.get("metadata")
    if nested is not None and "metadata" not in (fields.id_field, fields.input_field):
        if isinstance(nested, dict):
            metadata.update(nested)
        else:
            out.add(
                Problem(
                    f"{where}: field 'metadata'",
                    f"metadata must be an object, got {_type_name(nested)}",
                )
            )
            ok = False
    taken = {fields.id_field, fields.input_field, fields.target_field, "metadata"}
    for key, value in rec.items():
        if key in taken:
            continue
        if key in metadata:
            out.add(
                Problem(
                    f"{where}: field {key!r}",
                    "appears both at top level and inside 'metadata'; keep one",
                )
            )
            ok = False
        metadata[key] = value
    if not ok:
        return None
    return Sample(id=sample_id, input=str(text), target=target, metadata=metadata)


def iter_samples(
    path: str | Path, fields: FieldMap | None = None, *, max_problems: int = MAX_PROBLEMS
) -> Iterator[Sample]:
    """Stream valid samples; raise :class:`DataError` with every problem when exhausted.

    Consumers must not treat the stream as complete until it ends without raising.
    """
    path = Path(path)
    fields = fields or FieldMap()
    out = _Collector(str(path), max_problems)
    first_seen: dict[str, str] = {}
    count = 0
    for where, rec in iter_records(path):
        if isinstance(rec, Problem):
            out.add(rec)
            continue
        sample = _to_sample(where, rec, fields, out)
        if sample is None:
            continue
        previous = first_seen.get(sample.id)
        if previous is not None:
            out.add(
                Problem(
                    f"{where}: field {fields.id_field!r}",
                    f"duplicate id {sample.id!r} (first at {previous}); ids must be unique",
                )
            )
            continue
        first_seen[sample.id] = where
        count += 1
        yield sample
    if count == 0 and not out.problems:
        out.add(
            Problem(
                str(path),
                "no samples found (the file has only blank lines); write one sample per line",
            )
        )
    out.raise_if_any()


def load_samples(
    path: str | Path, fields: FieldMap | None = None, *, max_problems: int = MAX_PROBLEMS
) -> list[Sample]:
    """Load and check a whole gold set; raises one :class:`DataError` listing all problems."""
    return list(iter_samples(path, fields, max_problems=max_problems))

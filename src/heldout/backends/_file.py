"""Precomputed predictions keyed by sample id, including the outputs of lm-evaluation-harness
(``samples_*.jsonl`` from ``--log_samples``) and Inspect AI logs (``.eval`` zip or ``.json``).

Formats read (each checked against the projects' documented layouts):

- ``jsonl`` / ``csv`` / ``parquet``: one row per sample with ``id_field`` and ``output_field``,
  optionally ``confidence_field`` (the probability of the model's own answer) and
  ``probabilities_field`` (``{label: p}``; a JSON string in CSV) for calibration;
- ``lm-eval``: one JSON object per line with ``doc_id``, ``doc``, ``resps`` and
  ``filtered_resps``; the id is ``doc_id`` (or ``doc.<id_field>`` when ``id_field`` names a
  field of ``doc``), the output the first filtered response;
- ``inspect``: an EvalLog with ``samples`` (each ``id``, ``epoch``, ``output.completion`` or
  ``output.choices[0].message.content``), as ``.json`` or as an ``.eval`` zip holding
  ``samples/<id>_epoch_<n>.json``. Only epoch 1 is used.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heldout._json import load_json
from heldout.backends._base import Generation, OnResult, Request
from heldout.data import iter_records
from heldout.errors import DataError, Problem
from heldout.plan import FileModel

__all__ = ["FileBackend", "Prediction", "read_predictions"]


@dataclass(frozen=True, slots=True)
class Prediction:
    """One precomputed output, with the probabilities the file gave for it."""

    text: str
    confidence: float | None = None
    probabilities: dict[str, float] | None = None


def _probability(value: Any, what: str) -> tuple[float | None, str | None]:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None, f"{what} must be a number in [0, 1], got {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        return None, f"{what} must be a number in [0, 1], got {value!r}"
    if math.isnan(value):
        return None, f"{what} must be a number in [0, 1], got NaN"
    return float(value), None


def _probabilities(value: Any, field: str) -> tuple[dict[str, float] | None, str | None]:
    if isinstance(value, str):
        try:
            value = load_json(value)
        except ValueError:
            return None, f"{field} must be an object {{label: probability}}, got {value!r:.60}"
    if not isinstance(value, dict) or not value:
        return None, f"{field} must be an object {{label: probability}}, got {value!r:.60}"
    out: dict[str, float] = {}
    for label, p in value.items():
        prob, problem = _probability(p, f"{field}[{label!r}]")
        if problem:
            return None, problem
        out[str(label)] = float(prob or 0.0)
    total = sum(out.values())
    if abs(total - 1.0) > 1e-3:
        return None, f"{field} must sum to 1 (got {total:.4g}); normalise them or drop the field"
    return out, None


def _text_of(value: Any) -> str | None:
    while isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, str):
        return value
    return None


def _inspect_output(sample: dict[str, Any]) -> str | None:
    output = sample.get("output") or {}
    if isinstance(output.get("completion"), str) and output["completion"]:
        return str(output["completion"])
    choices = output.get("choices") or []
    if choices:
        content = (choices[0].get("message") or {}).get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return None


def _iter_inspect(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        if path.suffix == ".eval":
            with zipfile.ZipFile(path) as zf:
                for name in sorted(zf.namelist()):
                    if name.startswith("samples/") and name.endswith(".json"):
                        sample = load_json(zf.read(name))
                        if isinstance(sample, dict):
                            yield f"{path}!{name}", sample
            return
        log = load_json(path.read_text(encoding="utf-8"))
    except (zipfile.BadZipFile, ValueError, UnicodeDecodeError, OSError) as exc:
        raise DataError(
            [
                Problem(
                    str(path),
                    f"not a readable Inspect log ({type(exc).__name__}: {exc}); write it with "
                    "'inspect eval ... --log-format json' or pass the .eval file Inspect wrote",
                )
            ]
        ) from None
    samples = log.get("samples") if isinstance(log, dict) else None
    for i, sample in enumerate(samples or []):
        if isinstance(sample, dict):
            yield f"{path}:samples[{i}]", sample


def read_predictions(spec: FileModel, path: Path) -> dict[str, Prediction]:
    """Outputs by sample id; every unreadable row and duplicate id is reported together."""
    fmt: str = spec.format
    if fmt == "auto":
        if path.suffix == ".eval" or (path.suffix == ".json" and path.is_file()):
            fmt = "inspect"
        elif path.name.startswith("samples_") and path.suffix == ".jsonl":
            fmt = "lm-eval"
        else:
            fmt = {".csv": "csv", ".parquet": "parquet"}.get(path.suffix, "jsonl")
    if not path.is_file():
        raise DataError([Problem(str(path), "predictions file not found")])
    problems: list[Problem] = []
    out: dict[str, Prediction] = {}

    def add(where: str, sid: Any, text: str | None, rec: dict[str, Any] | None = None) -> None:
        if sid is None or isinstance(sid, bool) or not isinstance(sid, str | int):
            problems.append(
                Problem(
                    where,
                    f"no usable sample id (got {sid!r}); give every row its sample's id (id_field)",
                )
            )
        elif text is None:
            problems.append(
                Problem(
                    where,
                    f"no output text for sample {sid!r}; give every row the output as text "
                    "(output_field)",
                )
            )
        elif str(sid) in out:
            problems.append(Problem(where, f"duplicate id {sid!r}; keep one line per sample"))
        else:
            conf = probs = None
            if rec is not None and rec.get(spec.confidence_field) not in (None, ""):
                conf, problem = _probability(rec[spec.confidence_field], spec.confidence_field)
                if problem:
                    problems.append(Problem(where, problem))
            if rec is not None and rec.get(spec.probabilities_field) not in (None, ""):
                probs, problem = _probabilities(
                    rec[spec.probabilities_field], spec.probabilities_field
                )
                if problem:
                    problems.append(Problem(where, problem))
            out[str(sid)] = Prediction(text, conf, probs)

    if fmt == "inspect":
        for where, sample in _iter_inspect(path):
            if sample.get("epoch", 1) != 1:
                continue
            add(where, sample.get("id"), _inspect_output(sample))
    else:
        for where, rec in iter_records(path, "jsonl" if fmt == "lm-eval" else None):
            if isinstance(rec, Problem):
                problems.append(rec)
                continue
            if fmt == "lm-eval":
                doc = rec.get("doc") or {}
                sid = doc.get(spec.id_field) if spec.id_field in doc else rec.get("doc_id")
                add(where, sid, _text_of(rec.get("filtered_resps", rec.get("resps"))))
            else:
                value = rec.get(spec.output_field)
                # structured outputs (a list of spans, a JSON object) as their JSON text
                if isinstance(value, list | dict):
                    value = json.dumps(value, ensure_ascii=False)
                text = value if isinstance(value, str) else None
                add(where, rec.get(spec.id_field), text, rec)
    if problems:
        raise DataError(problems[:50], source=str(path), more=max(0, len(problems) - 50))
    return out


class FileBackend:
    """Serves precomputed outputs (and the file's confidences and label probabilities); a
    sample with no prediction fails with a clear error."""

    def __init__(self, spec: FileModel, *, root: Path) -> None:
        self.spec = spec
        self.path = (root / spec.path).resolve()
        self._outputs: dict[str, Prediction] | None = None

    def identity(self) -> dict[str, Any]:
        from heldout.plan import sha256_file

        digest = sha256_file(self.path) if self.path.is_file() else None
        return {"backend": "file", "path": str(self.path), "sha256": digest}

    async def generate(self, requests: Sequence[Request], on_result: OnResult) -> None:
        if self._outputs is None:
            self._outputs = read_predictions(self.spec, self.path)
        for req in requests:
            pred = self._outputs.get(req.sample_id)
            if pred is None:
                on_result(
                    Generation(
                        req.sample_id,
                        None,
                        f"no prediction for sample {req.sample_id!r} in {self.path}",
                    )
                )
            else:
                lp = None
                if pred.probabilities is not None and req.choices:
                    lp = {
                        lab: math.log(p) if p > 0 else -math.inf
                        for lab, p in pred.probabilities.items()
                    }
                on_result(
                    Generation(
                        req.sample_id, pred.text, choice_logprobs=lp, confidence=pred.confidence
                    )
                )

    async def close(self) -> None:
        return None

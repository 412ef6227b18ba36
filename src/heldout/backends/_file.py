"""Precomputed predictions keyed by sample id, including the outputs of lm-evaluation-harness
(``samples_*.jsonl`` from ``--log_samples``) and Inspect AI logs (``.eval`` zip or ``.json``).

Formats read (each checked against the projects' documented layouts):

- ``jsonl`` / ``csv`` / ``parquet``: one row per sample with ``id_field`` and ``output_field``,
  optionally ``confidence_field`` (the probability of the model's own answer) and
  ``probabilities_field`` (``{label: p}``; a JSON string in CSV) for calibration;
- ``lm-eval``: one JSON object per line with ``doc_id``, ``doc``, ``resps`` and
  ``filtered_resps``; the id is ``doc_id`` (or ``doc.<id_field>`` when ``id_field`` names a
  field of ``doc``), the output the first filtered response. A task with several filters
  writes one line per document and ``filter``: ``filter`` in the plan picks one;
- ``inspect``: an EvalLog with ``samples`` (each ``id``, ``epoch``, ``output.completion`` or
  ``output.choices[0].message.content``, and ``error`` when Inspect failed on it), as
  ``.json`` or as an ``.eval`` zip holding ``samples/<id>_epoch_<n>.json`` (Inspect writes
  those zstd-compressed). Read with ``inspect_ai.log.read_eval_log`` when Inspect is
  installed, else by this module (``zstandard`` for the compressed entries). ``epoch`` in
  the plan picks the epoch (default 1), and the run record says how many the log held.

A gold sample without a prediction, or one Inspect errored on, stops the run with its ids
(``missing: error``, the default), is scored as wrong (``missing: wrong``) or is left out of
every comparison (``missing: skip-pair``); either way it is counted. A file is read afresh
by every run (the response cache is not used for it), so these counts are never lost.
"""

from __future__ import annotations

import json
import math
import struct
import zipfile
import zlib
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
    """One precomputed output, with the probabilities the file gave for it; ``error`` when
    the peer tool failed on the sample (its message)."""

    text: str
    confidence: float | None = None
    probabilities: dict[str, float] | None = None
    error: str | None = None
    #: The peer tool's own score of this output (lm-eval's metric value, Inspect's first
    #: scorer as a number), kept to cross-check heldout's scorer.
    peer_score: float | None = None
    peer_metric: str | None = None


@dataclass(slots=True)
class Predictions:
    """A predictions file as read: outputs by sample id, and what the reader noticed."""

    by_id: dict[str, Prediction]
    notes: list[str]


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


_ZSTD = 93  # the ZIP compression method id of Zstandard (Inspect's .eval entries)


def _zip_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bytes:
    """An entry's bytes; Zstandard entries (which zipfile cannot read before Python 3.14)
    are decompressed with ``zstandard`` and checked against the entry's CRC."""
    if info.compress_type != _ZSTD:
        return zf.read(info)
    try:
        import zstandard
    except ImportError:
        raise DataError(
            [
                Problem(
                    str(path),
                    "this Inspect log's entries are Zstandard-compressed; install "
                    "'heldout[inspect]' (Inspect's own reader) or 'zstandard'",
                )
            ]
        ) from None
    with path.open("rb") as fh:
        fh.seek(info.header_offset)
        header = fh.read(30)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"no local header for {info.filename}")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        fh.seek(info.header_offset + 30 + name_len + extra_len)
        data = fh.read(info.compress_size)
    out = zstandard.ZstdDecompressor().decompress(data, max_output_size=max(info.file_size, 1))
    if zlib.crc32(out) != info.CRC:
        raise zipfile.BadZipFile(f"CRC mismatch in {info.filename}")
    return bytes(out)


def _unreadable(path: Path, exc: BaseException) -> DataError:
    return DataError(
        [
            Problem(
                str(path),
                f"not a readable Inspect log ({type(exc).__name__}: {exc}); pass the .eval or "
                ".json file 'inspect eval' wrote (inspect log convert can rewrite it)",
            )
        ]
    )


def _iter_inspect(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The log's samples as plain data, by Inspect's reader when installed."""
    try:
        from inspect_ai.log import read_eval_log
    except ImportError:
        yield from _iter_inspect_own(path)
        return
    try:
        log = read_eval_log(str(path))
    except Exception as exc:  # any failure of the peer's reader is bad input, not a bug
        raise _unreadable(path, exc) from None
    for i, sample in enumerate(log.samples or []):
        yield f"{path}:samples[{i}]", sample.model_dump(mode="json")


def _iter_inspect_own(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        if path.suffix == ".eval":
            with zipfile.ZipFile(path) as zf:
                for info in sorted(zf.infolist(), key=lambda i: i.filename):
                    name = info.filename
                    if name.startswith("samples/") and name.endswith(".json"):
                        sample = load_json(_zip_entry(zf, info, path))
                        if isinstance(sample, dict):
                            yield f"{path}!{name}", sample
            return
        log = load_json(path.read_text(encoding="utf-8"))
    except (
        zipfile.BadZipFile,
        ValueError,
        UnicodeDecodeError,
        OSError,
        NotImplementedError,
    ) as exc:
        raise _unreadable(path, exc) from None
    samples = log.get("samples") if isinstance(log, dict) else None
    for i, sample in enumerate(samples or []):
        if isinstance(sample, dict):
            yield f"{path}:samples[{i}]", sample


#: Inspect's letter grades as numbers (as ``inspect_ai.scorer.value_to_float`` maps them).
_GRADES = {"C": 1.0, "I": 0.0, "P": 0.5, "N": 0.0}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        return _GRADES.get(value.strip().upper())
    return None


def _inspect_score(sample: dict[str, Any]) -> tuple[str, float] | None:
    """Inspect's first scorer's value on the sample, as a number."""
    scores = sample.get("scores")
    if not isinstance(scores, dict) or not scores:
        return None
    name, score = next(iter(scores.items()))
    value = _number(score.get("value") if isinstance(score, dict) else None)
    return None if value is None else (f"inspect {name}", value)


def _lm_eval_score(row: dict[str, Any]) -> tuple[str, float] | None:
    """lm-eval's first per-sample metric on the line (its ``metrics`` names them)."""
    names = row.get("metrics")
    for name in names if isinstance(names, list) else []:
        value = _number(row.get(name))
        if value is not None:
            return f"lm-eval {name}", value
    return None


def _inspect_error(sample: dict[str, Any]) -> str | None:
    error = sample.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or "error")
    return str(error) if error else None


def read_predictions(spec: FileModel, path: Path) -> Predictions:
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
    notes: list[str] = []
    out: dict[str, Prediction] = {}

    def add(
        where: str,
        sid: Any,
        text: str | None,
        rec: dict[str, Any] | None = None,
        error: str | None = None,
        peer: tuple[str, float] | None = None,
    ) -> None:
        if sid is None or isinstance(sid, bool) or not isinstance(sid, str | int):
            problems.append(
                Problem(
                    where,
                    f"no usable sample id (got {sid!r}); give every row its sample's id (id_field)",
                )
            )
        elif error is not None and str(sid) not in out:
            out[str(sid)] = Prediction("", error=error)
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
            out[str(sid)] = Prediction(
                text, conf, probs, peer_score=peer[1] if peer else None,
                peer_metric=peer[0] if peer else None,
            )  # fmt: skip

    if fmt == "inspect":
        epochs: set[int] = set()
        for where, sample in _iter_inspect(path):
            epoch = sample.get("epoch", 1)
            epochs.add(epoch if isinstance(epoch, int) else 1)
            if epoch != spec.epoch:
                continue
            add(
                where, sample.get("id"), _inspect_output(sample), error=_inspect_error(sample),
                peer=_inspect_score(sample),
            )  # fmt: skip
        if epochs and spec.epoch not in epochs:
            found = ", ".join(str(e) for e in sorted(epochs))
            problems.append(
                Problem(
                    str(path),
                    f"no epoch {spec.epoch} in this log (epochs {found}); set epoch to one of them",
                )
            )
        elif len(epochs) > 1:
            notes.append(
                f"the Inspect log holds {len(epochs)} epochs; epoch {spec.epoch} is used "
                "(set 'epoch' for another)"
            )
    elif fmt == "lm-eval":
        records = list(iter_records(path, "jsonl"))
        problems += [r for _, r in records if isinstance(r, Problem)]
        rows = [(w, r) for w, r in records if isinstance(r, dict)]
        filters = sorted({str(r["filter"]) for _, r in rows if r.get("filter") is not None})
        if spec.filter is not None and spec.filter not in filters:
            problems.append(
                Problem(
                    str(path),
                    f"no lines with filter {spec.filter!r}; the file has "
                    f"{', '.join(map(repr, filters)) or 'no filter field'}",
                )
            )
        elif spec.filter is None and len(filters) > 1:
            problems.append(
                Problem(
                    str(path),
                    f"lines for {len(filters)} filters ("
                    f"{', '.join(map(repr, filters))}): one line per document and filter; "
                    "set 'filter' in the model to the one to use",
                )
            )
        chosen = spec.filter if spec.filter is not None else (filters[0] if filters else None)
        if spec.filter is not None and filters:
            notes.append(f"lm-eval filter {chosen!r} used (the file has {', '.join(filters)})")
        for where, row in rows:
            if chosen is not None and row.get("filter") not in (None, chosen):
                continue
            doc = row.get("doc") or {}
            sid = doc.get(spec.id_field) if spec.id_field in doc else row.get("doc_id")
            add(
                where, sid, _text_of(row.get("filtered_resps", row.get("resps"))),
                peer=_lm_eval_score(row),
            )  # fmt: skip
    else:
        for where, rec in iter_records(path, None):
            if isinstance(rec, Problem):
                problems.append(rec)
                continue
            value = rec.get(spec.output_field)
            # structured outputs (a list of spans, a JSON object) as their JSON text
            if isinstance(value, list | dict):
                value = json.dumps(value, ensure_ascii=False)
            text = value if isinstance(value, str) else None
            add(where, rec.get(spec.id_field), text, rec)
    if problems:
        raise DataError(problems[:50], source=str(path), more=max(0, len(problems) - 50))
    return Predictions(out, notes)


class FileBackend:
    """Serves precomputed outputs (and the file's confidences and label probabilities).

    A requested sample the file lacks, or one the peer tool errored on, is named: with
    ``missing: error`` the run stops listing them (nothing was requested from a model, so
    there is nothing to retry); with ``missing: wrong`` it is scored as an empty (wrong)
    output, with ``skip-pair`` marked so the run leaves it out; both are counted in
    ``record``, whose ``warnings`` the run reports.
    """

    def __init__(self, spec: FileModel, *, root: Path) -> None:
        self.spec = spec
        self.path = (root / spec.path).resolve()
        self._outputs: Predictions | None = None
        self.record: dict[str, Any] = {}

    def identity(self) -> dict[str, Any]:
        from heldout.plan import sha256_file

        digest = sha256_file(self.path) if self.path.is_file() else None
        return {"backend": "file", "path": str(self.path), "sha256": digest}

    def loglikelihood_support(self) -> str | None:
        """Why this backend cannot score log-likelihood requests (None: it can)."""
        return "a predictions file holds answers, not log-probabilities of given text"

    async def generate(self, requests: Sequence[Request], on_result: OnResult) -> None:
        if self._outputs is None:
            self._outputs = read_predictions(self.spec, self.path)
            if self._outputs.notes:  # which epoch or filter was read: the reader must know
                self.record.setdefault("warnings", []).extend(self._outputs.notes)
        by_id = self._outputs.by_id
        missing = [r.sample_id for r in requests if r.sample_id not in by_id]
        errored = {
            r.sample_id: by_id[r.sample_id].error
            for r in requests
            if r.sample_id in by_id and by_id[r.sample_id].error is not None
        }
        if (missing or errored) and self.spec.missing == "error":
            raise DataError(
                [Problem(str(self.path), _missing_message(missing, errored, len(requests)))]
            )
        if missing or errored:
            policy = self.spec.missing
            what = "scored_wrong" if policy == "wrong" else "skipped"
            counts = self.record.setdefault(what, {"missing": 0, "errored": 0})
            counts["missing"] += len(missing)
            counts["errored"] += len(errored)
            consequence = (
                "scored as wrong (missing: wrong)"
                if policy == "wrong"
                else "left out of every comparison, for all models (missing: skip-pair)"
            )
            self.record.setdefault("warnings", []).append(
                f"{_missing_message(missing, errored, len(requests), fix=False)}: {consequence}"
            )
        for req in requests:
            pred = by_id.get(req.sample_id)
            if pred is None or pred.error is not None:
                mark = {"skip_pair": True} if self.spec.missing == "skip-pair" else {}
                on_result(Generation(req.sample_id, "", extra=mark))
                continue
            lp = None
            if pred.probabilities is not None and req.choices:
                lp = {
                    lab: math.log(p) if p > 0 else -math.inf
                    for lab, p in pred.probabilities.items()
                }
            extra = (
                {"peer_score": pred.peer_score, "peer_metric": pred.peer_metric}
                if pred.peer_score is not None
                else {}
            )
            on_result(
                Generation(
                    req.sample_id, pred.text, choice_logprobs=lp, confidence=pred.confidence,
                    extra=extra,
                )
            )  # fmt: skip

    async def close(self) -> None:
        return None


def _missing_message(
    missing: list[str], errored: dict[str, str | None], total: int, *, fix: bool = True
) -> str:
    parts = []
    if missing:
        first = ", ".join(repr(m) for m in missing[:5])
        parts.append(f"no prediction for {len(missing)} of {total} samples (first ids {first})")
    if errored:
        first = "; ".join(f"{k!r}: {v}" for k, v in list(errored.items())[:3])
        parts.append(f"the peer tool errored on {len(errored)} of {total} samples ({first})")
    text = " and ".join(parts)
    if fix:
        text += (
            "; add them to the file (rerun them in the tool that wrote it), or set "
            "missing: wrong on this model to score them as wrong and count them"
        )
    return text

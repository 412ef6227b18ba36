"""Structured output: valid JSON, schema validity, per-field correctness and field P/R/F1.

"First try" is the default: the raw output must parse. ``extract_json`` (plan option) takes the
first JSON object or array from fenced or chatty output instead, and results say which was used.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from heldout._json import load_json
from heldout.errors import MetricInputError
from heldout.metrics._inputs import check_aligned
from heldout.metrics._registry import MetricOptions, MetricResult, SufficientStats, metric

__all__ = ["extract_first_json", "fields_equal", "parse_output"]

_NOT_JSON = object()
_DECODER = json.JSONDecoder()


def extract_first_json(text: str) -> Any:
    """The first JSON object or array embedded in ``text``; raises ValueError if none."""
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                value, _ = _DECODER.raw_decode(text, i)
            except json.JSONDecodeError:
                continue
            return value
    raise ValueError("no JSON object found")


def parse_output(text: Any, *, extract: bool) -> Any:
    """Parsed JSON of one output, or the sentinel ``_NOT_JSON`` when it does not parse."""
    if not isinstance(text, str):
        raise MetricInputError(f"prediction is {type(text).__name__}, not a string")
    try:
        return extract_first_json(text) if extract else load_json(text)
    except ValueError:
        return _NOT_JSON


def _parse_all(y_true: Sequence[Any], y_pred: Sequence[Any], options: MetricOptions) -> list[Any]:
    check_aligned(y_true, y_pred, "structured metrics")
    return [parse_output(p, extract=options.extract_json) for p in y_pred]


def _target(t: Any, i: int) -> Mapping[str, Any]:
    if isinstance(t, str):
        try:
            t = load_json(t)
        except ValueError:
            raise MetricInputError(f"target {i} is a string that is not JSON: {t[:60]!r}") from None
    if not isinstance(t, dict):
        raise MetricInputError(f"target {i} must be a JSON object, got {type(t).__name__}")
    return t


def fields_equal(expected: Any, got: Any, rule: Mapping[str, Any] | None = None) -> bool:
    """Compare one field: ``exact`` (default), ``normalized`` strings, or ``numeric`` tolerance."""
    mode = (rule or {}).get("match", "exact")
    if mode == "exact":
        return bool(expected == got and type(expected) is type(got))
    if mode == "normalized":
        return isinstance(got, str) and " ".join(str(expected).casefold().split()) == " ".join(
            got.casefold().split()
        )
    if mode == "numeric":
        if isinstance(got, bool) or not isinstance(got, int | float):
            return False
        tol = float((rule or {}).get("tolerance", 0.0))
        return math.isclose(float(expected), float(got), abs_tol=tol, rel_tol=0.0)
    raise MetricInputError(f"unknown field match {mode!r}; known: exact, normalized, numeric")


@metric("json_valid_rate", shapes=["structured"], higher_is_better=True, binary=True)
def json_valid_rate(
    y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions
) -> MetricResult:
    """Share of outputs that parse as JSON."""
    parsed = _parse_all(y_true, y_pred, options)
    values = np.array([p is not _NOT_JSON for p in parsed], dtype=np.float64)
    return MetricResult("json_valid_rate", float(values.mean()), values)


@metric("schema_valid_rate", shapes=["structured"], higher_is_better=True, binary=True)
def schema_valid_rate(
    y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions
) -> MetricResult:
    """Share of outputs that parse and satisfy the plan's JSON Schema."""
    import jsonschema

    if options.schema is None:
        raise MetricInputError("schema_valid_rate needs a JSON Schema (task.schema in the plan)")
    schema = dict(options.schema)
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise MetricInputError(f"invalid JSON Schema: {exc.message}") from None
    validator = cls(schema)
    parsed = _parse_all(y_true, y_pred, options)
    values = np.array(
        [p is not _NOT_JSON and validator.is_valid(p) for p in parsed], dtype=np.float64
    )
    return MetricResult("schema_valid_rate", float(values.mean()), values)


@metric("field_accuracy", shapes=["structured"], higher_is_better=True)
def field_accuracy(
    y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions
) -> MetricResult:
    """Per sample, the share of target fields reproduced correctly (invalid output: 0)."""
    parsed = _parse_all(y_true, y_pred, options)
    rules: Mapping[str, Any] = options.extra.get("fields", {})
    values = np.zeros(len(parsed), dtype=np.float64)
    per_field: dict[str, list[int]] = {}
    for i, (t, p) in enumerate(zip(y_true, parsed, strict=True)):
        target = _target(t, i)
        if not target:
            raise MetricInputError(f"target {i} has no fields to compare")
        ok = 0
        for key, expected in target.items():
            hit = (
                isinstance(p, dict) and key in p and fields_equal(expected, p[key], rules.get(key))
            )
            ok += hit
            per_field.setdefault(key, [0, 0])
            per_field[key][0] += hit
            per_field[key][1] += 1
        values[i] = ok / len(target)
    details = {"per_field_accuracy": {k: c / n for k, (c, n) in sorted(per_field.items())}}
    return MetricResult("field_accuracy", float(values.mean()), values, details)


@metric("field_f1", shapes=["structured"], higher_is_better=True, mean_of_samples=False)
def field_f1(
    y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions
) -> MetricResult:
    """Micro F1 over non-null fields: predicted fields that are right vs target fields found.

    Suited to optional fields: emitting a field the target lacks costs precision, missing one
    costs recall. Per-sample values are each sample's own F1 (1 when both are empty).
    """
    parsed = _parse_all(y_true, y_pred, options)
    rules: Mapping[str, Any] = options.extra.get("fields", {})
    values = np.zeros(len(parsed), dtype=np.float64)
    counts = np.zeros((len(parsed), 3), dtype=np.float64)
    tp_all = pred_all = true_all = 0
    for i, (t, p) in enumerate(zip(y_true, parsed, strict=True)):
        target = {k: v for k, v in _target(t, i).items() if v is not None}
        pred = {k: v for k, v in p.items() if v is not None} if isinstance(p, dict) else {}
        tp = sum(k in pred and fields_equal(v, pred[k], rules.get(k)) for k, v in target.items())
        tp_all += tp
        pred_all += len(pred)
        true_all += len(target)
        denom = len(pred) + len(target)
        values[i] = 1.0 if denom == 0 else 2 * tp / denom
        counts[i] = (tp, len(pred), len(target))
    total = pred_all + true_all
    aggregate = 1.0 if total == 0 else 2 * tp_all / total
    details = {"tp": tp_all, "predicted": pred_all, "expected": true_all}

    def from_sums(sums: Any) -> Any:
        tp, den = sums[:, 0], sums[:, 1] + sums[:, 2]
        return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 1.0)

    stats = SufficientStats(3, from_sums, rows=counts)
    return MetricResult("field_f1", aggregate, values, details, sufficient=stats)

"""Extraction / NER: span-set precision, recall and F1 on exact (type, span) matches.

Spans are given as offsets ``{"type": "PER", "start": 0, "end": 3}`` (end exclusive) or as
``{"type": "PER", "text": "Ana"}`` / ``["PER", "Ana"]`` pairs. Predictions are the model's JSON
output (a list of spans); output that does not parse is counted as unparseable and predicts
no spans. Scores are micro-averaged over the corpus, per type and overall, as seqeval does.
``options.extra["match"] = "partial"`` counts overlapping offsets (or, for text spans, one text
containing the other) of the same type as a match, each gold span matched at most once.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from heldout.errors import MetricInputError
from heldout.metrics._inputs import check_aligned
from heldout.metrics._registry import MetricOptions, MetricResult, SufficientStats, metric

__all__ = ["Span", "parse_spans", "span_scores"]


@dataclass(frozen=True, slots=True)
class Span:
    """A typed span: offsets (``start``, ``end``) or normalised ``text``."""

    type: str
    start: int | None = None
    end: int | None = None
    text: str | None = None

    def overlaps(self, other: Span) -> bool:
        if self.type != other.type:
            return False
        if (
            self.start is not None
            and self.end is not None
            and other.start is not None
            and other.end is not None
        ):
            return self.start < other.end and other.start < self.end
        a, b = (self.text or "").casefold(), (other.text or "").casefold()
        return bool(a and b) and (a in b or b in a)


def _span(item: Any, where: str) -> Span:
    if isinstance(item, list | tuple) and len(item) == 2 and all(isinstance(x, str) for x in item):
        return Span(type=item[0], text=" ".join(item[1].split()))
    if isinstance(item, dict) and isinstance(item.get("type"), str):
        if "start" in item or "end" in item:
            start, end = item.get("start"), item.get("end")
            if (
                isinstance(start, int)
                and isinstance(end, int)
                and not isinstance(start, bool)
                and 0 <= start < end
            ):
                return Span(type=item["type"], start=start, end=end)
            raise ValueError(f"{where}: offsets must be integers with 0 <= start < end: {item}")
        if isinstance(item.get("text"), str):
            return Span(type=item["type"], text=" ".join(item["text"].split()))
    raise ValueError(
        f"{where}: a span is {{'type', 'start', 'end'}}, {{'type', 'text'}} or [type, text], "
        f"got {item!r}"
    )


def parse_spans(value: Any, where: str = "spans") -> frozenset[Span]:
    """Spans from a list (or a JSON string holding one); raises ValueError when malformed."""
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, dict) and isinstance(value.get("entities"), list):
        value = value["entities"]
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected a list of spans, got {type(value).__name__}")
    return frozenset(_span(item, f"{where}[{i}]") for i, item in enumerate(value))


def _matches(gold: frozenset[Span], pred: frozenset[Span], partial: bool) -> list[Span]:
    """Gold spans matched by a prediction (each gold and each prediction used once)."""
    if not partial:
        return list(gold & pred)
    matched: list[Span] = []
    free = set(pred)
    for g in sorted(gold, key=lambda s: (s.type, s.start or 0, s.text or "")):
        hit = next((p for p in sorted(free, key=repr) if g.overlaps(p)), None)
        if hit is not None:
            free.discard(hit)
            matched.append(g)
    return matched


@dataclass(frozen=True, slots=True)
class _Counts:
    per_sample_f1: np.ndarray[Any, np.dtype[np.float64]]
    per_sample_counts: np.ndarray[Any, np.dtype[np.float64]]  # (n, 3): tp, predicted, gold
    tp: dict[str, int]
    n_pred: dict[str, int]
    n_gold: dict[str, int]
    n_unparseable: int


def _f1(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 0.0
    return p, r, f


def span_scores(y_true: Sequence[Any], y_pred: Sequence[Any], options: MetricOptions) -> _Counts:
    """Count true positives, predicted and gold spans per type across the corpus."""
    check_aligned(y_true, y_pred, "extraction metrics")
    mode = options.extra.get("match", "exact")
    if mode not in ("exact", "partial"):
        raise MetricInputError(f"unknown span match {mode!r}; known: exact, partial")
    tp: dict[str, int] = defaultdict(int)
    n_pred: dict[str, int] = defaultdict(int)
    n_gold: dict[str, int] = defaultdict(int)
    values = np.zeros(len(y_true), dtype=np.float64)
    counts = np.zeros((len(y_true), 3), dtype=np.float64)
    unparseable = 0
    for i, (t, p) in enumerate(zip(y_true, y_pred, strict=True)):
        try:
            gold = parse_spans(t, f"target {i}")
        except ValueError as exc:
            raise MetricInputError(str(exc)) from None
        if not isinstance(p, str | list):
            raise MetricInputError(f"prediction {i} is {type(p).__name__}, not text or a list")
        try:
            pred = parse_spans(p, f"prediction {i}")
        except ValueError:
            pred = frozenset()
            unparseable += 1
        matched = _matches(gold, pred, mode == "partial")
        for s in matched:
            tp[s.type] += 1
        for s in pred:
            n_pred[s.type] += 1
        for s in gold:
            n_gold[s.type] += 1
        denom = len(pred) + len(gold)
        values[i] = 1.0 if denom == 0 else 2 * len(matched) / denom
        counts[i] = (len(matched), len(pred), len(gold))
    return _Counts(values, counts, dict(tp), dict(n_pred), dict(n_gold), unparseable)


def counts_sufficient(counts: np.ndarray[Any, np.dtype[np.float64]], index: int) -> Any:
    """Micro precision (0), recall (1) or F1 (2) as a function of summed per-sample
    (tp, predicted, expected) counts."""

    def from_sums(sums: np.ndarray[Any, np.dtype[np.float64]]) -> Any:
        tp, pred, gold = sums[:, 0], sums[:, 1], sums[:, 2]
        if index == 0:
            num, den = tp, pred
        elif index == 1:
            num, den = tp, gold
        else:
            num, den = 2 * tp, pred + gold
        return np.asarray(np.where(den > 0, num / np.where(den > 0, den, 1), 0.0))

    return SufficientStats(3, from_sums, rows=counts)


def _details(c: _Counts) -> dict[str, Any]:
    types = sorted(set(c.n_pred) | set(c.n_gold))
    per_type = {}
    for t in types:
        p, r, f = _f1(c.tp.get(t, 0), c.n_pred.get(t, 0), c.n_gold.get(t, 0))
        per_type[t] = {"precision": p, "recall": r, "f1": f, "support": c.n_gold.get(t, 0)}
    return {"per_type": per_type, "n_unparseable": c.n_unparseable}


def _overall(c: _Counts) -> tuple[float, float, float]:
    return _f1(sum(c.tp.values()), sum(c.n_pred.values()), sum(c.n_gold.values()))


def _register(name: str, index: int, doc: str) -> None:
    def fn(y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions) -> MetricResult:
        counts = span_scores(y_true, y_pred, options)
        return MetricResult(
            name,
            _overall(counts)[index],
            counts.per_sample_f1,
            _details(counts),
            sufficient=counts_sufficient(counts.per_sample_counts, index),
        )

    fn.__doc__ = doc
    metric(name, shapes=["extraction"], higher_is_better=True, mean_of_samples=False)(fn)


_register("span_precision", 0, "Micro precision of predicted (type, span) pairs.")
_register("span_recall", 1, "Micro recall of gold (type, span) pairs.")
_register("span_f1", 2, "Micro F1 of (type, span) pairs (per-sample values: each sample's F1).")

"""Extraction / NER: span precision, recall and F1 under nervaluate's four matching schemes.

Spans are given as offsets ``{"type": "PER", "start": 0, "end": 3}`` (end exclusive) or as
``{"type": "PER", "text": "Ana"}`` / ``["PER", "Ana"]`` pairs. Predictions are the model's JSON
output (a list of spans); output that does not parse is counted as unparseable and predicts
no spans. Each sample's spans are counted as nervaluate counts them (correct, incorrect,
partial, missed, spurious) under ``task.span_match``: ``strict`` (boundaries and type, the
default: seqeval's entity-level scores), ``exact`` (boundaries only), ``partial`` (overlap
earns half) or ``type`` (overlap with the right type). Scores are micro-averaged over the
corpus, per type and overall; ``span_macro_f1`` averages the per-type F1 and
``span_untyped_f1`` ignores types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from heldout._json import load_json
from heldout.errors import MetricInputError
from heldout.metrics._inputs import check_aligned
from heldout.metrics._memo import shared
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
        value = load_json(value)
    if isinstance(value, dict) and isinstance(value.get("entities"), list):
        value = value["entities"]
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected a list of spans, got {type(value).__name__}")
    return frozenset(_span(item, f"{where}[{i}]") for i, item in enumerate(value))


SCHEMES = ("strict", "exact", "partial", "type")
_COLUMNS = ("correct", "incorrect", "partial", "missed", "spurious")


def _ordered(spans: frozenset[Span]) -> list[Span]:
    return sorted(spans, key=lambda s: (s.start or 0, s.end or 0, s.text or "", s.type))


def _same_bounds(a: Span, b: Span) -> bool:
    if a.start is not None and b.start is not None:
        return a.start == b.start and a.end == b.end
    return (
        a.start is None
        and b.start is None
        and (a.text or "").casefold() == (b.text or "").casefold()
    )


def _overlaps(pred: Span, gold: Span) -> bool:
    """nervaluate's sufficient overlap (≥ 1% of the gold span; any type); text spans overlap
    when one contains the other."""
    if (
        pred.start is not None
        and pred.end is not None
        and gold.start is not None
        and gold.end is not None
    ):
        shared = min(pred.end, gold.end) - max(pred.start, gold.start)
        return shared > 0 and shared / (gold.end - gold.start) >= 0.01
    if pred.start is None and gold.start is None:
        a, b = (pred.text or "").casefold(), (gold.text or "").casefold()
        return bool(a and b) and (a in b or b in a)
    return False


def _distance(pred: Span, gold: Span) -> int:
    if pred.start is not None and gold.start is not None:
        return abs(pred.start - gold.start) + abs((pred.end or 0) - (gold.end or 0))
    return 0 if _same_bounds(pred, gold) else 1


def scheme_counts(gold: frozenset[Span], pred: frozenset[Span], scheme: str) -> tuple[int, ...]:
    """(correct, incorrect, partial, missed, spurious) of one sample; see :func:`_counts`."""
    return _counts(_ordered(gold), _ordered(pred), scheme)


def _counts(golds: Sequence[Span], preds: Sequence[Span], scheme: str) -> tuple[int, ...]:
    """(correct, incorrect, partial, missed, spurious) of one sample under a matching scheme,
    exactly as nervaluate's strategies count them (predictions and gold spans in offset
    order; each gold span used once):

    - ``strict``: same boundaries and type; an overlapping prediction otherwise is incorrect;
    - ``exact``: same boundaries, any type;
    - ``partial``: same boundaries correct, overlap partial (half credit), any type;
    - ``type``: overlap and same type (the closest boundaries win), else incorrect.
    """
    matched: set[int] = set()
    cor = inc = par = spu = 0
    for p in preds:
        hit = near = None
        best = None
        for j, g in enumerate(golds):
            if j in matched:
                continue
            if scheme == "type":
                if _overlaps(p, g):
                    if p.type == g.type:
                        d = _distance(p, g)
                        if best is None or d < best:
                            hit, best = j, d
                    elif near is None:
                        near = j
                continue
            exact = _same_bounds(p, g) and (scheme != "strict" or p.type == g.type)
            if scheme == "partial":
                if _overlaps(p, g) or _same_bounds(p, g):
                    if _same_bounds(p, g):
                        hit = j
                        break
                    if near is None:
                        near = j
                continue
            if exact:
                hit = j
                break
            if near is None and _overlaps(p, g):
                near = j
        if hit is not None:
            cor += 1
            matched.add(hit)
        elif near is not None:
            matched.add(near)
            if scheme == "partial":
                par += 1
            else:
                inc += 1
        else:
            spu += 1
    return cor, inc, par, len(golds) - len(matched), spu


def prf(counts: np.ndarray[Any, np.dtype[np.float64]]) -> tuple[Any, Any, Any]:
    """Precision, recall and F1 from summed (correct, incorrect, partial, missed, spurious):
    nervaluate's (COR + PAR/2) / ACT and / POS (partial is 0 except in that scheme)."""
    cor, inc, par, mis, spu = (counts[..., j] for j in range(5))
    credit = cor + 0.5 * par
    actual, possible = cor + inc + par + spu, cor + inc + par + mis
    p = np.where(actual > 0, credit / np.where(actual > 0, actual, 1), 0.0)
    r = np.where(possible > 0, credit / np.where(possible > 0, possible, 1), 0.0)
    f = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0.0)
    return p, r, f


@dataclass(frozen=True, slots=True)
class _Counts:
    per_sample: np.ndarray[Any, np.dtype[np.float64]]  # (n, 5) overall counts per sample
    by_type: dict[str, np.ndarray[Any, np.dtype[np.float64]]]  # type → (n, 5)
    scheme: str
    n_unparseable: int


def span_scores(y_true: Sequence[Any], y_pred: Sequence[Any], options: MetricOptions) -> _Counts:
    """Count each sample's span outcomes under ``options.extra["span_match"]`` (default
    ``strict``), overall and per type (a type's counts use only spans of that type, as
    nervaluate's per-tag results)."""
    check_aligned(y_true, y_pred, "extraction metrics")
    scheme = str(options.extra.get("span_match", "strict"))
    if scheme not in SCHEMES:
        raise MetricInputError(f"unknown span match {scheme!r}; known: {', '.join(SCHEMES)}")
    return shared((y_true, y_pred), ("spans", scheme), lambda: _count(y_true, y_pred, scheme))


def _parsed_targets(y_true: Sequence[Any]) -> list[tuple[Span, ...]]:
    out = []
    for i, t in enumerate(y_true):
        try:
            out.append(tuple(_ordered(parse_spans(t, f"target {i}"))))
        except ValueError as exc:
            raise MetricInputError(str(exc)) from None
    return out


def _parsed_predictions(y_pred: Sequence[Any]) -> tuple[list[tuple[Span, ...]], int]:
    out: list[tuple[Span, ...]] = []
    unparseable = 0
    for i, p in enumerate(y_pred):
        if not isinstance(p, str | list):
            raise MetricInputError(f"prediction {i} is {type(p).__name__}, not text or a list")
        try:
            out.append(tuple(_ordered(parse_spans(p, f"prediction {i}"))))
        except ValueError:
            out.append(())
            unparseable += 1
    return out, unparseable


def _count(y_true: Sequence[Any], y_pred: Sequence[Any], scheme: str) -> _Counts:
    # parsed once per sequence: every scheme and every model scored on the targets share it
    golds = shared((y_true,), "span-targets", lambda: _parsed_targets(y_true))
    preds, unparseable = shared((y_pred,), "span-predictions", lambda: _parsed_predictions(y_pred))
    types = sorted({s.type for spans in (*golds, *preds) for s in spans})
    n = len(golds)
    overall = np.zeros((n, 5), dtype=np.float64)
    by_type = {t: np.zeros((n, 5), dtype=np.float64) for t in types}
    for i, (gold, pred) in enumerate(zip(golds, preds, strict=True)):
        overall[i] = counts = _counts(gold, pred, scheme)
        here = {s.type for s in gold} | {s.type for s in pred}
        if len(here) == 1:  # one type: its spans are all of them
            by_type[here.pop()][i] = counts
            continue
        for t in here:
            keep_g = [s for s in gold if s.type == t]
            keep_p = [s for s in pred if s.type == t]
            by_type[t][i] = _counts(keep_g, keep_p, scheme)
    for array in (overall, *by_type.values()):  # shared by the span metrics: never mutated
        array.setflags(write=False)
    return _Counts(overall, by_type, scheme, unparseable)


def _per_sample(counts: np.ndarray[Any, np.dtype[np.float64]], index: int) -> Any:
    """Each sample's own precision (0), recall (1) or F1 (2); 1.0 when it has neither gold
    nor predicted spans (nothing to find, nothing claimed)."""
    values = prf(counts)[index]
    empty = counts.sum(axis=1) == 0
    return np.where(empty, 1.0, values).astype(np.float64)


def counts_sufficient(counts: np.ndarray[Any, np.dtype[np.float64]], index: int) -> Any:
    """Precision (0), recall (1) or F1 (2) as a function of summed per-sample counts."""

    def from_sums(sums: np.ndarray[Any, np.dtype[np.float64]]) -> Any:
        return np.asarray(prf(sums)[index], dtype=np.float64)

    return SufficientStats(5, from_sums, rows=counts)


def macro_sufficient(c: _Counts) -> SufficientStats:
    """Macro F1 over types: per-type counts side by side, (n, 5·T)."""
    types = sorted(c.by_type)
    rows = np.concatenate([c.by_type[t] for t in types], axis=1) if types else np.zeros((0, 0))
    k = len(types)

    def from_sums(sums: np.ndarray[Any, np.dtype[np.float64]]) -> Any:
        if k == 0:
            return np.zeros(sums.shape[0])
        per_type = prf(sums.reshape(sums.shape[0], k, 5))[2]
        return np.asarray(per_type.mean(axis=1), dtype=np.float64)

    return SufficientStats(
        5 * k, from_sums, rows=rows if k else np.zeros((c.per_sample.shape[0], 0))
    )


def _details(c: _Counts) -> dict[str, Any]:
    per_type = {}
    for t, rows in sorted(c.by_type.items()):
        total = rows.sum(axis=0)
        p, r, f = (float(x) for x in prf(total))
        per_type[t] = {
            "precision": p,
            "recall": r,
            "f1": f,
            "support": int(total[0] + total[1] + total[2] + total[3]),
            **{name: int(v) for name, v in zip(_COLUMNS, total, strict=True)},
        }
    total = c.per_sample.sum(axis=0)
    counts = {name: int(v) for name, v in zip(_COLUMNS, total, strict=True)}
    counts["tp"] = counts["correct"]
    counts["fp"] = counts["incorrect"] + counts["partial"] + counts["spurious"]
    counts["fn"] = counts["incorrect"] + counts["partial"] + counts["missed"]
    return {
        "scheme": c.scheme,
        "per_type": per_type,
        "counts": counts,
        "n_unparseable": c.n_unparseable,
    }


def _result(name: str, counts: _Counts, stats: SufficientStats, index: int) -> MetricResult:
    """The metric on every sample, from its sufficient statistics; per-sample values are each
    sample's own precision (0), recall (1) or F1 (2)."""
    every = np.arange(counts.per_sample.shape[0])[None, :]
    value = float(stats.fn(stats.sums(every))[0])
    per_sample = _per_sample(counts.per_sample, index)
    return MetricResult(name, value, per_sample, _details(counts), sufficient=stats)


def _register(name: str, index: int, doc: str) -> None:
    def fn(y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions) -> MetricResult:
        counts = span_scores(y_true, y_pred, options)
        return _result(name, counts, counts_sufficient(counts.per_sample, index), index)

    fn.__doc__ = doc
    metric(name, shapes=["extraction"], higher_is_better=True, mean_of_samples=False)(fn)


@metric("span_macro_f1", shapes=["extraction"], higher_is_better=True, mean_of_samples=False)
def span_macro_f1(
    y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions
) -> MetricResult:
    """Mean over span types of each type's F1 (types seen in gold or predictions)."""
    counts = span_scores(y_true, y_pred, options)
    return _result("span_macro_f1", counts, macro_sufficient(counts), 2)


@metric("span_untyped_f1", shapes=["extraction"], higher_is_better=True, mean_of_samples=False)
def span_untyped_f1(
    y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions
) -> MetricResult:
    """Micro F1 of span boundaries, type ignored (nervaluate's 'exact' scheme)."""
    untyped = replace(options, extra={**options.extra, "span_match": "exact"})
    counts = span_scores(y_true, y_pred, untyped)
    return _result("span_untyped_f1", counts, counts_sufficient(counts.per_sample, 2), 2)


_register("span_precision", 0, "Micro precision of predicted spans (per-sample: its precision).")
_register("span_recall", 1, "Micro recall of gold spans (per-sample: its recall).")
_register("span_f1", 2, "Micro F1 of spans under task.span_match (per-sample: its F1).")

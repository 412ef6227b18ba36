"""A panel of judges: one score per response from several, how much the judges agree, and
whether a judge favours a model of its own family.

Scores are arrays over samples with NaN where a judge gave no usable reply. ``mean``
averages the judges that replied; ``majority`` takes the most common score, a tie going to
the median of the replies. Self-preference is measured, not assumed: for a judge that shares
a declared family with a judged model M, per sample
``(judge's score of M − the other judges' score of M) − (the same for the other models)``,
so a judge that is merely stricter or more lenient than the panel on everything shows no
gap; its mean is reported with a paired t interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from heldout.judge._agreement import criterion_agreement
from heldout.judge._rubric import Criterion
from heldout.stats import Interval, paired_t_interval

__all__ = [
    "SelfPreference",
    "aggregate_scores",
    "inter_judge",
    "pairwise_self_preference",
    "self_preference",
]

F64 = npt.NDArray[np.float64]


def _nanmean(stack: F64) -> F64:
    """Column means over the non-NaN values (NaN where a column has none), silently."""
    replied = ~np.isnan(stack)
    count = replied.sum(axis=0)
    sums = np.where(replied, stack, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(count > 0, sums / np.maximum(count, 1), np.nan))


def aggregate_scores(per_judge: Sequence[F64], how: Literal["mean", "majority"]) -> F64:
    """One score per sample from the judges' arrays (NaN where none replied)."""
    stack = np.vstack([np.asarray(a, dtype=np.float64) for a in per_judge])
    if stack.shape[0] == 1:
        return np.asarray(stack[0], dtype=np.float64)
    replied = ~np.isnan(stack)
    out = np.full(stack.shape[1], np.nan)
    any_reply = replied.any(axis=0)
    if how == "mean":
        return _nanmean(stack)
    for i in np.flatnonzero(any_reply):
        values = stack[replied[:, i], i]
        uniq, counts = np.unique(values, return_counts=True)
        best = np.flatnonzero(counts == counts.max())
        out[i] = uniq[best[0]] if best.size == 1 else float(np.median(values))
    return out


def inter_judge(
    criterion: Criterion, per_judge: Sequence[F64], names: Sequence[str]
) -> dict[str, Any]:
    """Exact agreement and quadratic kappa of every pair of judges on one criterion, and
    their means (what the panel's agreement with itself is)."""
    pairs = [
        (f"{names[i]} / {names[j]}",
         criterion_agreement(criterion, a, b, min_agreement=0.0, rule="exact"))
        for (i, a), (j, b) in combinations(enumerate(per_judge), 2)
    ]  # fmt: skip
    exact = [p.exact for _, p in pairs if not math.isnan(p.exact)]
    kappa = [p.kappa for _, p in pairs if not math.isnan(p.kappa)]
    return {
        "exact": float(np.mean(exact)) if exact else None,
        "kappa": float(np.mean(kappa)) if kappa else None,
        "pairs": [
            {
                "judges": who,
                "n": p.n,
                "exact": p.exact,
                "within_one": p.within_one,
                "kappa": p.kappa,
            }
            for who, p in pairs
        ],
    }


@dataclass(frozen=True, slots=True)
class SelfPreference:
    """A judge sharing a family with a judged model, and the gap the panel measured."""

    judge: str
    model: str
    family: str
    gap: Interval | None  # in ``unit``; None with one judge
    n: int
    unit: str = "overall rubric score, 0–1"

    def describe(self) -> str:
        head = f"judge {self.judge} shares the family {self.family!r} with the {self.model}"
        if self.gap is None:
            return (
                f"{head}: self-preference cannot be measured with one judge; add a judge of "
                "another family to judge.panel"
            )
        g = self.gap
        return (
            f"{head}: it rates the {self.model} {g.estimate:+.3f} ({self.unit}) above the rest "
            f"of the panel, relative to the other models [{g.low:+.3f}, {g.high:+.3f}], "
            f"n={self.n}"
        )

    @property
    def significant(self) -> bool:
        return self.gap is not None and self.gap.low > 0


def self_preference(
    judge: str,
    family: str,
    model: str,
    scores: Mapping[str, Mapping[str, F64]],
    confidence: float,
) -> SelfPreference:
    """``scores[judge][model]`` — each judge's overall score of each judged model, aligned by
    sample — gives the gap of ``judge`` for ``model`` against the other judges and models."""
    others = [j for j in scores if j != judge]
    if not others:
        return SelfPreference(judge, model, family, None, 0)
    mine = scores[judge]
    rest = {m: _nanmean(np.vstack([scores[j][m] for j in others])) for m in mine}
    models = [m for m in mine if m != model]
    own = mine[model] - rest[model]
    other = _nanmean(np.vstack([mine[m] - rest[m] for m in models]))
    diff = own - other
    diff = diff[~np.isnan(diff)]
    if diff.size < 2:
        return SelfPreference(judge, model, family, None, int(diff.size))
    return SelfPreference(judge, model, family, paired_t_interval(diff, confidence), int(diff.size))


def pairwise_self_preference(
    judge: str,
    family: str,
    model: str,
    values: Mapping[str, F64],
    confidence: float,
) -> SelfPreference:
    """``values[judge]``: each judge's per-sample preference for the candidate (1, ½, 0; NaN
    when it gave none); the gap is how much more ``judge`` prefers ``model`` (candidate or
    base) than the rest of the panel does, per sample."""
    unit = "pairwise preference, 0–1"
    others = [j for j in values if j != judge]
    if not others:
        return SelfPreference(judge, model, family, None, 0, unit)
    sign = 1.0 if model == "candidate" else -1.0
    diff = sign * (values[judge] - _nanmean(np.vstack([values[j] for j in others])))
    diff = diff[~np.isnan(diff)]
    if diff.size < 2:
        return SelfPreference(judge, model, family, None, int(diff.size), unit)
    gap = paired_t_interval(diff, confidence)
    return SelfPreference(judge, model, family, gap, int(diff.size), unit)

"""The rubric judge against people, per criterion, and judges against each other.

Human rubric labels are a JSONL file, one rated response per line::

    {"id": "g17", "model": "candidate", "scores": {"accuracy": 4, "tone": 5}}

(``model`` is base, candidate or reference; a line may rate only some criteria). Per
criterion, the judge's score (a panel's aggregate, rounded half up) is set against the human
one: exact agreement, agreement within one point, and Cohen's kappa with quadratic weights
over the criterion's whole scale (:func:`weighted_kappa`, equal to scikit-learn's
``cohen_kappa_score(weights="quadratic", labels=scale)``). A criterion is trusted when its
agreement (``exact`` or ``within_one``, the plan's ``agreement``) reaches ``min_agreement``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from heldout._json import load_json
from heldout.errors import DataError, Problem
from heldout.judge._rubric import Criterion

__all__ = [
    "HUMAN_MODELS",
    "CriterionAgreement",
    "criterion_agreement",
    "labelled",
    "read_human_scores",
    "rounded",
    "weighted_kappa",
]

HUMAN_MODELS = ("base", "candidate", "reference")

#: (model, sample id) → criterion → score
HumanScores = dict[tuple[str, str], dict[str, int]]


def rounded(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Half-up rounding (a panel's mean of 3.5 reads as 4, never banker's 4 and 2 for 2.5)."""
    return np.floor(np.asarray(values, dtype=np.float64) + 0.5)


def weighted_kappa(a: Sequence[int], b: Sequence[int], low: int, high: int) -> float:
    """Cohen's kappa with quadratic weights of two raters' integer scores on ``low..high``;
    NaN when it is undefined (both raters gave one and the same score throughout)."""
    if len(a) != len(b) or not a:
        raise ValueError("kappa needs two equally long, non-empty score lists")
    k = high - low + 1
    x = np.asarray(a, dtype=np.intp) - low
    y = np.asarray(b, dtype=np.intp) - low
    if x.min() < 0 or y.min() < 0 or x.max() >= k or y.max() >= k:
        raise ValueError(f"scores must lie on the scale {low}..{high}")
    observed = np.zeros((k, k))
    np.add.at(observed, (x, y), 1.0)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / len(a)
    idx = np.arange(k)
    weights = (idx[:, None] - idx[None, :]) ** 2
    denominator = float((weights * expected).sum())
    if denominator == 0:
        return float("nan")
    return 1.0 - float((weights * observed).sum()) / denominator


@dataclass(frozen=True, slots=True)
class CriterionAgreement:
    """One criterion: the judge against another rater (people, or a second judge)."""

    criterion: str
    n: int
    exact: float
    within_one: float
    kappa: float
    min_agreement: float
    rule: Literal["exact", "within_one"] = "exact"

    @property
    def agreement(self) -> float:
        return self.exact if self.rule == "exact" else self.within_one

    @property
    def trusted(self) -> bool:
        return self.n > 0 and self.agreement >= self.min_agreement


def criterion_agreement(
    criterion: Criterion,
    ours: npt.ArrayLike,
    theirs: npt.ArrayLike,
    *,
    min_agreement: float,
    rule: Literal["exact", "within_one"],
) -> CriterionAgreement:
    """Agreement of two raters' scores of the same responses (NaN pairs left out)."""
    a, b = rounded(ours), rounded(theirs)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep].astype(np.intp), b[keep].astype(np.intp)
    n = int(a.size)
    if n == 0:
        nan = float("nan")
        return CriterionAgreement(criterion.name, 0, nan, nan, nan, min_agreement, rule)
    return CriterionAgreement(
        criterion=criterion.name,
        n=n,
        exact=float(np.mean(a == b)),
        within_one=float(np.mean(np.abs(a - b) <= 1)),
        kappa=weighted_kappa(a.tolist(), b.tolist(), criterion.low, criterion.high),
        min_agreement=min_agreement,
        rule=rule,
    )


def read_human_scores(path: Path, criteria: Sequence[Criterion]) -> HumanScores:
    """Human rubric labels (module docstring), each line checked against the rubric; every
    problem is reported with its line."""
    by_name = {c.name: c for c in criteria}
    out: HumanScores = {}
    problems: list[Problem] = []
    shape = '{"id": ..., "model": "candidate", "scores": {"<criterion>": <integer>, ...}}'
    for no, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{no}"
        try:
            row = load_json(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(where, f"malformed JSON: {exc.msg}"))
            continue
        if not isinstance(row, dict) or not isinstance(row.get("id"), str | int):
            problems.append(Problem(where, f"needs {shape}, got {line.strip()[:80]}"))
            continue
        model = row.get("model", "candidate")
        scores = row.get("scores")
        if model not in HUMAN_MODELS:
            problems.append(Problem(where, f"model: base, candidate or reference, got {model!r}"))
            continue
        if not isinstance(scores, dict) or not scores:
            problems.append(Problem(where, f"scores: needs {shape}"))
            continue
        good: dict[str, int] = {}
        for name, value in scores.items():
            c = by_name.get(str(name))
            if c is None:
                known = ", ".join(by_name)
                problems.append(Problem(where, f"unknown criterion {name!r} (rubric: {known})"))
            elif (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value != int(value)
                or not c.low <= value <= c.high
            ):
                problems.append(
                    Problem(where, f"{name}: {value!r} is not an integer on {c.low}..{c.high}")
                )
            else:
                good[c.name] = int(value)
        key = (str(model), str(row["id"]))
        if key in out:
            problems.append(Problem(where, f"duplicate rating of {model} on id {row['id']!r}"))
        out[key] = good
    if problems:
        raise DataError(problems, source=f"{path} (judge.human_scores)")
    return out


def labelled(human: Mapping[tuple[str, str], Mapping[str, int]], criterion: str) -> int:
    """How many human ratings a criterion has."""
    return sum(criterion in s for s in human.values())

"""Pairwise judging with a position swap, its bias checks and agreement with human labels.

Every sample is judged twice, candidate first and base first. The two verdicts agree → that
outcome; they disagree → a tie that is also counted as *position-inconsistent*; either
unparseable → the sample is left out and counted. The candidate's win rate counts a tie as
half a win, with a Student t interval over samples and an exact sign test on the decisive
ones. Bias checks: how often the judge picks the first position among its decisive
judgments, and how often the longer response wins among decisive samples (both with exact
binomial tests against 1/2). Human labels (``candidate``/``base``/``tie`` per id) give the
raw agreement and Cohen's kappa; below ``min_agreement`` the judge is reported as not
trusted.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heldout._json import load_json
from heldout.errors import DataError, Problem
from heldout.stats._intervals import Interval, paired_t_interval
from heldout.stats._special import binom_half_cdf

__all__ = [
    "OUTCOMES",
    "HumanAgreement",
    "JudgeSummary",
    "cohen_kappa",
    "combine",
    "read_human_labels",
    "summarize",
]

OUTCOMES = ("candidate", "base", "tie")


def combine(candidate_first: str | None, base_first: str | None) -> str | None:
    """One sample's outcome from its two verdicts ('A'/'B'/'tie' per order); 'inconsistent'
    when they disagree, None when either is missing."""
    if candidate_first is None or base_first is None:
        return None
    one = {"A": "candidate", "B": "base", "tie": "tie"}[candidate_first]
    two = {"A": "base", "B": "candidate", "tie": "tie"}[base_first]
    return one if one == two else "inconsistent"


def _binomial_p(k: int, n: int) -> float:
    """Two-sided exact binomial test of k successes in n against 1/2."""
    return 1.0 if n == 0 else min(1.0, 2 * binom_half_cdf(min(k, n - k), n))


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two raters' labels (1 when both use one identical label)."""
    if len(a) != len(b) or not a:
        raise ValueError("kappa needs two equally long, non-empty label lists")
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in ca) / (n * n)
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


@dataclass(frozen=True, slots=True)
class HumanAgreement:
    n: int
    agreement: float
    kappa: float
    min_agreement: float

    @property
    def trusted(self) -> bool:
        return self.agreement >= self.min_agreement


@dataclass(frozen=True, slots=True)
class JudgeSummary:
    """Candidate vs base as the judge saw it, with the checks that say whether to believe it."""

    n: int
    candidate_wins: int
    base_wins: int
    ties: int
    inconsistent: int
    unparseable: int
    win_rate: Interval
    sign_test_p: float
    first_position_rate: float | None
    first_position_p: float
    longer_wins_rate: float | None
    longer_wins_p: float
    human: HumanAgreement | None

    @property
    def trusted(self) -> bool | None:
        """None when no human labels were given."""
        return None if self.human is None else self.human.trusted


def summarize(
    outcomes: Mapping[str, str | None],
    verdicts: Mapping[str, tuple[str | None, str | None]],
    lengths: Mapping[str, tuple[int, int]],
    human: Mapping[str, str] | None,
    *,
    min_agreement: float,
    confidence: float,
) -> JudgeSummary:
    """``outcomes`` per sample id (from :func:`combine`), the raw ``verdicts`` (candidate
    first, base first), ``lengths`` (candidate, base) in characters, optional human labels."""
    parsed = {k: v for k, v in outcomes.items() if v is not None}
    counts = Counter("tie" if v == "inconsistent" else v for v in parsed.values())
    wins, losses, ties = counts["candidate"], counts["base"], counts["tie"]
    scores = np.array(
        [{"candidate": 1.0, "base": 0.0}.get(v, 0.5) for v in parsed.values()], dtype=np.float64
    )
    nan = float("nan")
    if scores.size >= 2:
        win_rate = paired_t_interval(scores, confidence)
    else:
        est = float(scores.mean()) if scores.size else nan
        win_rate = Interval(est, nan, nan, confidence, "paired-t")
    firsts = [v for pair in verdicts.values() for v in pair if v in ("A", "B")]
    n_first = sum(v == "A" for v in firsts)
    longer = [
        (lengths[k][0] > lengths[k][1]) == (v == "candidate")
        for k, v in parsed.items()
        if v in ("candidate", "base") and lengths[k][0] != lengths[k][1]
    ]
    agreement = None
    if human:
        pairs = [
            (human[k], "tie" if v == "inconsistent" else v) for k, v in parsed.items() if k in human
        ]
        if pairs:
            h, j = (list(x) for x in zip(*pairs, strict=True))
            agreement = HumanAgreement(
                n=len(pairs),
                agreement=sum(x == y for x, y in pairs) / len(pairs),
                kappa=cohen_kappa(h, j),
                min_agreement=min_agreement,
            )
    return JudgeSummary(
        n=len(parsed),
        candidate_wins=wins,
        base_wins=losses,
        ties=ties,
        inconsistent=sum(v == "inconsistent" for v in parsed.values()),
        unparseable=len(outcomes) - len(parsed),
        win_rate=win_rate,
        sign_test_p=_binomial_p(wins, wins + losses),
        first_position_rate=n_first / len(firsts) if firsts else None,
        first_position_p=_binomial_p(n_first, len(firsts)),
        longer_wins_rate=sum(longer) / len(longer) if longer else None,
        longer_wins_p=_binomial_p(sum(longer), len(longer)),
        human=agreement,
    )


def read_human_labels(path: Path) -> dict[str, str]:
    """``{"id": ..., "winner": "candidate" | "base" | "tie"}`` per line; every problem is
    reported with its line."""
    labels: dict[str, str] = {}
    problems: list[Problem] = []
    for no, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{no}"
        try:
            row = load_json(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(where, f"malformed JSON: {exc.msg}"))
            continue
        sid, winner = (row.get("id"), row.get("winner")) if isinstance(row, dict) else (None, None)
        if not isinstance(sid, str | int) or winner not in OUTCOMES:
            problems.append(
                Problem(
                    where,
                    'needs {"id": ..., "winner": "candidate" | "base" | "tie"}, got '
                    f"{line.strip()[:80]}",
                )
            )
            continue
        if str(sid) in labels:
            problems.append(Problem(where, f"duplicate id {sid!r}"))
        labels[str(sid)] = str(winner)
    if problems:
        raise DataError(problems, source=f"{path} (judge.human_labels)")
    return labels

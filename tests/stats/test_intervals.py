"""Closed-form intervals and tests against statsmodels and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from heldout.errors import HeldoutError
from heldout.stats import (
    holm,
    mcnemar_exact,
    paired_proportion_interval,
    paired_t_interval,
    wilson_interval,
)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (72, 100), (951, 1000)])
def test_wilson_matches_statsmodels(k: int, n: int) -> None:
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    w = wilson_interval(k, n)
    assert (w.low, w.high) == pytest.approx((lo, hi), abs=1e-12)
    assert w.estimate == k / n


@pytest.mark.parametrize("seed", range(6))
def test_mcnemar_matches_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    base = rng.random(n) < 0.6
    cand = np.where(rng.random(n) < 0.7, base, rng.random(n) < 0.8)
    ours = mcnemar_exact(base.tolist(), cand.tolist())
    table = [
        [int(np.sum(base & cand)), int(np.sum(base & ~cand))],
        [int(np.sum(~base & cand)), int(np.sum(~base & ~cand))],
    ]
    ref = sm_mcnemar(table, exact=True)
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-12)
    assert (ours.fixed, ours.broken) == (table[1][0], table[0][1])


def test_holm_matches_statsmodels() -> None:
    p = [0.01, 0.04, 0.03, 0.2, 0.001]
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))
    assert holm([]) == []


def test_paired_t_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random(40), rng.random(40)
    ours = paired_t_interval(b - a, 0.9)
    ci = sps.ttest_rel(b, a).confidence_interval(0.9)
    assert (ours.low, ours.high) == pytest.approx((ci.low, ci.high), abs=1e-12)


@pytest.mark.parametrize(
    ("fixed", "broken", "n"), [(10, 3, 30), (0, 0, 30), (40, 25, 200), (5, 0, 12)]
)
def test_tango_bounds_are_where_the_score_test_rejects(fixed: int, broken: int, n: int) -> None:
    """At each finite bound the score statistic equals ±z (interval = non-rejected deltas)."""
    ci = paired_proportion_interval(fixed, broken, n)
    z = sps.norm.ppf(0.975)

    def score(d: float) -> float:
        a, b = 2 * n, -fixed - broken + (2 * n - fixed + broken) * d
        c = -broken * d * (1 - d)
        p21 = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
        return (fixed - broken - n * d) / math.sqrt(n * (2 * p21 + d * (1 - d)))

    assert ci.low < ci.estimate < ci.high or fixed == broken == 0
    if ci.low > -1:
        assert score(ci.low) == pytest.approx(z, abs=1e-6)
    if ci.high < 1:
        assert score(ci.high) == pytest.approx(-z, abs=1e-6)
    # no discordant pairs: closed form -z²/(n+z²)
    if fixed == broken == 0:
        assert ci.low == pytest.approx(-(z**2) / (n + z**2), abs=1e-9)


def test_bad_inputs() -> None:
    with pytest.raises(HeldoutError, match="invalid paired counts"):
        paired_proportion_interval(20, 20, 30)
    with pytest.raises(HeldoutError, match="needs n > 0"):
        wilson_interval(0, 0)
    with pytest.raises(HeldoutError, match="confidence must be in"):
        wilson_interval(1, 2, confidence=1.5)

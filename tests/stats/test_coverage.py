"""Proof of honesty by simulation with known ground truth (seeded, so deterministic)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from heldout.stats import (
    mcnemar_exact,
    paired_proportion_interval,
    paired_t_interval,
    power_of,
    samples_needed,
    sign_flip_test,
)

pytestmark = pytest.mark.slow
SIMS = 5000


@pytest.mark.parametrize("n", [30, 100, 1000])
@pytest.mark.parametrize(
    ("p_fixed", "p_broken"), [(0.2, 0.1), (0.1, 0.1), (0.25, 0.1), (0.12, 0.08)]
)
def test_binary_delta_coverage(n: int, p_fixed: float, p_broken: float) -> None:
    rng = np.random.default_rng(n)
    counts = rng.multinomial(n, [p_fixed, p_broken, 1 - p_fixed - p_broken], size=SIMS)
    truth = p_fixed - p_broken
    cache: dict[tuple[int, int], tuple[float, float]] = {}
    hits = 0
    for f, b, _ in counts:
        key = (int(f), int(b))
        if key not in cache:
            ci = paired_proportion_interval(*key, n)
            cache[key] = (ci.low, ci.high)
        lo, hi = cache[key]
        hits += lo <= truth <= hi
    assert 0.94 <= hits / SIMS <= 0.96


def test_binary_coverage_is_conservative_not_liberal_when_discordance_is_rare() -> None:
    """With ~6 discordant pairs in 30 the discrete interval over-covers; it never undercovers."""
    rng = np.random.default_rng(1)
    counts = rng.multinomial(30, [0.15, 0.05, 0.8], size=SIMS)
    hits = 0
    for f, b, _ in counts:
        ci = paired_proportion_interval(int(f), int(b), 30)
        hits += ci.low <= 0.1 <= ci.high
    assert 0.94 <= hits / SIMS <= 0.97


def _realistic_scores(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """Per-sample scores like token F1 / ROUGE: point masses at 0 and 1 plus a continuum."""
    u = rng.random(n)
    base = np.where(u < 0.3, 0.0, np.where(u < 0.6, 1.0, rng.beta(2, 2, n)))
    same = rng.random(n) < 0.25
    cand = np.where(same, base, np.clip(base + rng.normal(0.08, 0.25, n), 0.0, 1.0))
    return base, cand


@pytest.mark.parametrize("n", [30, 100, 1000])
def test_continuous_delta_coverage(n: int) -> None:
    big_b, big_c = _realistic_scores(np.random.default_rng(99), 4_000_000)
    truth = float((big_c - big_b).mean())
    rng = np.random.default_rng(n + 1)
    hits = 0
    for _ in range(SIMS):
        b, c = _realistic_scores(rng, n)
        ci = paired_t_interval(c - b)
        hits += ci.low <= truth <= ci.high
    assert 0.94 <= hits / SIMS <= 0.96


def test_mcnemar_p_values_are_valid_under_the_null() -> None:
    """Exact McNemar is discrete, so its p-values are super-uniform: never anti-conservative."""
    rng = np.random.default_rng(3)
    ps = []
    for _ in range(3000):
        both = rng.random(200) < 0.7
        discordant = rng.random(200) < 0.2
        up = rng.random(200) < 0.5  # fixed and broken equally likely: no true difference
        base = np.where(discordant, ~up, both)
        cand = np.where(discordant, up, both)
        ps.append(mcnemar_exact(base, cand).p_value)
    p = np.array(ps)
    for alpha in (0.01, 0.05, 0.1):
        assert np.mean(p <= alpha) <= alpha + 0.01
    # one-sided KS: p-values are not stochastically smaller than uniform
    assert sps.kstest(p, "uniform", alternative="greater").pvalue > 0.01


def test_sign_flip_p_values_are_uniform_under_the_null() -> None:
    rng = np.random.default_rng(4)
    ps = [sign_flip_test(rng.normal(0, 1, 40), 999, rng) for _ in range(1500)]
    assert sps.kstest(ps, "uniform").pvalue > 0.01


@pytest.mark.parametrize(("base_rate", "lift", "discordance"), [(0.7, 0.1, 0.2), (0.5, 0.05, 0.15)])
def test_power_estimate_matches_simulation(
    base_rate: float, lift: float, discordance: float
) -> None:
    """At the n the formula asks for, the Tango interval excludes 0 about 80% of the time."""
    n = samples_needed(base_rate, lift, discordance=discordance).n
    p_fixed = (discordance + lift) / 2
    p_broken = (discordance - lift) / 2
    rng = np.random.default_rng(5)
    counts = rng.multinomial(n, [p_fixed, p_broken, 1 - discordance], size=4000)
    cache: dict[tuple[int, int], bool] = {}
    detected = 0
    for f, b, _ in counts:
        key = (int(f), int(b))
        if key not in cache:
            cache[key] = paired_proportion_interval(*key, n).low > 0
        detected += cache[key]
    assert abs(detected / 4000 - power_of(n, base_rate, lift, discordance=discordance)) <= 0.02
    assert abs(detected / 4000 - 0.8) <= 0.02

"""The paired bootstrap against scipy.stats.bootstrap, and the paired comparison API."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import f1_score

from heldout.errors import HeldoutError
from heldout.metrics import MetricOptions, get_metric
from heldout.stats import (
    StatsOptions,
    align_ids,
    bootstrap_mean_delta,
    compare,
    sign_flip_test,
)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_mean_delta_matches_scipy(method: str) -> None:
    rng = np.random.default_rng(0)
    base = rng.beta(2, 5, 80)
    cand = np.clip(base + rng.normal(0.05, 0.1, 80), 0, 1)
    opts = StatsOptions(resamples=40_000, seed=1, bootstrap=method)  # type: ignore[arg-type]
    ours = bootstrap_mean_delta(base, cand, opts)
    ref = sps.bootstrap(
        (base, cand),
        lambda a, b, axis: np.mean(b - a, axis=axis),
        paired=True,
        n_resamples=40_000,
        method="BCa" if method == "bca" else "percentile",
        random_state=np.random.default_rng(2),
    ).confidence_interval
    assert ours.low == pytest.approx(ref.low, abs=3e-3)
    assert ours.high == pytest.approx(ref.high, abs=3e-3)


def test_binary_multinomial_shortcut_matches_index_resampling() -> None:
    rng = np.random.default_rng(4)
    base = (rng.random(300) < 0.6).astype(float)
    cand = np.where(rng.random(300) < 0.8, base, (rng.random(300) < 0.75).astype(float))
    opts = StatsOptions(resamples=40_000, seed=3, bootstrap="percentile")
    fast = bootstrap_mean_delta(base, cand, opts)
    ref = sps.bootstrap(
        (base, cand),
        lambda a, b, axis: np.mean(b - a, axis=axis),
        paired=True,
        n_resamples=40_000,
        method="percentile",
        random_state=np.random.default_rng(5),
    ).confidence_interval
    assert fast.low == pytest.approx(ref.low, abs=4e-3)
    assert fast.high == pytest.approx(ref.high, abs=4e-3)


def test_speed_goal_binary_100k_is_vectorised() -> None:
    """10,000 resamples of a 100,000-sample binary comparison (benchmark: benchmarks/)."""
    rng = np.random.default_rng(0)
    base = (rng.random(100_000) < 0.7).astype(float)
    cand = (rng.random(100_000) < 0.72).astype(float)
    start = time.perf_counter()
    ci = bootstrap_mean_delta(base, cand, StatsOptions(resamples=10_000))
    assert time.perf_counter() - start < 30  # generous: a correctness guard, not a benchmark
    assert ci.low < cand.mean() - base.mean() < ci.high


def test_macro_f1_comparison_matches_scipy_bootstrap() -> None:
    rng = np.random.default_rng(7)
    labels = ("a", "b", "c")
    n = 120
    y = [labels[i] for i in rng.integers(0, 3, n)]
    base_pred = [t if rng.random() < 0.6 else labels[rng.integers(0, 3)] for t in y]
    cand_pred = [t if rng.random() < 0.75 else labels[rng.integers(0, 3)] for t in y]
    spec = get_metric("macro_f1")
    opts = MetricOptions(labels=labels)
    base, cand = spec(y, base_pred, options=opts), spec(y, cand_pred, options=opts)
    cmp = compare(base, cand, spec, StatsOptions(resamples=20_000, seed=0, bootstrap="bca"))
    assert cmp.test == "paired-bootstrap"
    assert cmp.delta.method == "bootstrap-bca"
    codes = {lab: i for i, lab in enumerate(labels)}
    t = np.array([codes[v] for v in y])
    bp = np.array([codes[v] for v in base_pred])
    cp = np.array([codes[v] for v in cand_pred])

    def stat(tt: np.ndarray, bb: np.ndarray, cc: np.ndarray) -> float:  # type: ignore[type-arg]
        return float(
            f1_score(tt, cc, average="macro", labels=[0, 1, 2], zero_division=0)
            - f1_score(tt, bb, average="macro", labels=[0, 1, 2], zero_division=0)
        )

    ref = sps.bootstrap(
        (t, bp, cp),
        stat,
        paired=True,
        vectorized=False,
        n_resamples=3000,
        method="BCa",
        random_state=np.random.default_rng(1),
    ).confidence_interval
    assert cmp.delta.estimate == pytest.approx(stat(t, bp, cp), abs=1e-12)
    assert cmp.delta.low == pytest.approx(ref.low, abs=0.02)
    assert cmp.delta.high == pytest.approx(ref.high, abs=0.02)


def test_binary_comparison_uses_score_interval_and_mcnemar() -> None:
    spec = get_metric("exact_match")
    y = ["a"] * 100
    base = spec(y, ["a"] * 60 + ["x"] * 40)
    cand = spec(y, ["a"] * 50 + ["x"] * 10 + ["a"] * 35 + ["x"] * 5)
    cmp = compare(base, cand, spec, StatsOptions())
    assert (cmp.fixed, cmp.broken) == (35, 10)
    assert cmp.delta.estimate == pytest.approx(0.25)
    assert cmp.delta.method == "tango-score"
    assert cmp.test == "mcnemar-exact"
    assert cmp.real_gain
    assert cmp.base.method == "wilson"


def test_continuous_comparison_uses_t_and_sign_flip() -> None:
    spec = get_metric("token_f1")
    y = ["the quick brown fox"] * 40
    rng = np.random.default_rng(0)
    words = ["the", "quick", "brown", "fox", "dog"]
    bp = [" ".join(rng.choice(words, 3)) for _ in y]
    cp = [" ".join(rng.choice(words[:4], 3)) for _ in y]
    cmp = compare(spec(y, bp), spec(y, cp), spec, StatsOptions(resamples=2000))
    assert cmp.delta.method == "paired-t"
    assert cmp.test == "sign-flip-permutation"


def test_sign_flip_matches_scipy_permutation_test() -> None:
    rng = np.random.default_rng(2)
    for n in (8, 14):  # exact enumeration on both sides
        d = rng.normal(0.3, 1, n)
        ref = sps.permutation_test(
            (d,),
            lambda x, axis: np.mean(x, axis=axis),
            permutation_type="samples",
            n_resamples=np.inf,
        ).pvalue
        assert sign_flip_test(d, 1000, rng) == pytest.approx(ref, abs=1e-12)
    d = rng.normal(0.2, 1, 60)
    ref = sps.permutation_test(
        (d,),
        lambda x, axis: np.mean(x, axis=axis),
        permutation_type="samples",
        n_resamples=20_000,
        random_state=np.random.default_rng(0),
    ).pvalue
    assert sign_flip_test(d, 20_000, np.random.default_rng(1)) == pytest.approx(ref, abs=0.01)


def test_alignment_errors_are_explicit() -> None:
    assert align_ids(["b", "a"], ["a", "b"]).tolist() == [1, 0]
    with pytest.raises(HeldoutError, match=r"1 id\(s\) missing from the second set: \['c'\]"):
        align_ids(["a", "c"], ["a", "b"])
    with pytest.raises(HeldoutError, match=r"duplicate ids in the first set: \['a'\]"):
        align_ids(["a", "a"], ["a", "a"])


def test_same_seed_same_interval() -> None:
    spec = get_metric("macro_f1")
    y = ["a", "b"] * 30
    opts = MetricOptions(labels=("a", "b"))
    b = spec(y, ["a"] * 60, options=opts)
    c = spec(y, y[:50] + ["a"] * 10, options=opts)
    one = compare(b, c, spec, StatsOptions(resamples=2000, seed=5))
    two = compare(b, c, spec, StatsOptions(resamples=2000, seed=5))
    assert one == two
    assert one.seed == 5


def test_slices_worst_first_and_tiny_flagged() -> None:
    from heldout.stats import compare_slices

    spec = get_metric("accuracy")
    y = ["a"] * 50
    base = spec(y, ["a"] * 50)
    cand = spec(y, ["a"] * 20 + ["b"] * 15 + ["a"] * 15)
    meta = [{"lang": "en"}] * 20 + [{"lang": "fr"}] * 25 + [{"lang": "de"}] * 5
    out = compare_slices(meta, ["lang"], base, cand, spec, StatsOptions(), min_size=10)
    assert [(s.value, s.comparison.n, s.tiny) for s in out] == [
        ("fr", 25, False),
        ("de", 5, True),
        ("en", 20, False),
    ]
    assert out[0].comparison.delta.estimate == pytest.approx(-15 / 25)


def test_reference_ceiling() -> None:
    from heldout.stats import reference_ceiling

    spec = get_metric("accuracy")
    y = ["a"] * 200
    base = spec(y, ["a"] * 100 + ["b"] * 100)  # 0.5
    cand = spec(y, ["a"] * 160 + ["b"] * 40)  # 0.8
    ref = spec(y, ["a"] * 180 + ["b"] * 20)  # 0.9
    ceiling = reference_ceiling(base, cand, ref, spec, StatsOptions(resamples=2000))
    assert ceiling.share_of_reference.estimate == pytest.approx(0.8 / 0.9)
    assert ceiling.gap_closed.estimate == pytest.approx(0.3 / 0.4)
    assert ceiling.gap_closed.low < 0.75 < ceiling.gap_closed.high
    assert ceiling.gap_is_real

"""The paired bootstrap against scipy.stats.bootstrap, and the paired comparison API."""

from __future__ import annotations

import time
import warnings

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


def _codes_data(
    seed: int, n: int
) -> tuple[list[str], list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    labels = ("a", "b", "c")
    y = [labels[i] for i in rng.integers(0, 3, n)]
    base_pred = [t if rng.random() < 0.6 else labels[rng.integers(0, 3)] for t in y]
    cand_pred = [t if rng.random() < 0.75 else labels[rng.integers(0, 3)] for t in y]
    codes = {lab: i for i, lab in enumerate(labels)}
    arrays = (np.array([codes[v] for v in x]) for x in (y, base_pred, cand_pred))
    return (y, base_pred, cand_pred, *arrays)  # type: ignore[return-value]


def _sk_delta(tt: np.ndarray, bb: np.ndarray, cc: np.ndarray) -> float:  # type: ignore[type-arg]
    return float(
        f1_score(tt, cc, average="macro", labels=[0, 1, 2], zero_division=0)
        - f1_score(tt, bb, average="macro", labels=[0, 1, 2], zero_division=0)
    )


def test_macro_f1_comparison_is_a_jackknife_t_interval() -> None:
    """Oracle: scikit-learn's macro F1 on every leave-one-out set, Efron's jackknife SE and
    scipy's Student t; the p-value is the t test the interval inverts."""
    y, base_pred, cand_pred, t, bp, cp = _codes_data(7, 120)
    spec = get_metric("macro_f1")
    opts = MetricOptions(labels=("a", "b", "c"))
    base, cand = spec(y, base_pred, options=opts), spec(y, cand_pred, options=opts)
    cmp = compare(base, cand, spec, StatsOptions(resamples=2_000, seed=0))
    assert cmp.test == cmp.delta.method == "jackknife-t"
    n = len(y)
    loo = np.array([_sk_delta(*(np.delete(a, i) for a in (t, bp, cp))) for i in range(n)])
    se = float(np.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2)))
    est = _sk_delta(t, bp, cp)
    half = sps.t.ppf(0.975, n - 1) * se
    assert cmp.delta.estimate == pytest.approx(est, abs=1e-12)
    assert cmp.delta.low == pytest.approx(est - half, abs=1e-10)
    assert cmp.delta.high == pytest.approx(est + half, abs=1e-10)
    assert cmp.p_value == pytest.approx(2 * sps.t.sf(abs(est) / se, n - 1), rel=1e-9)
    assert (cmp.p_value < 0.05) == cmp.delta.excludes(0.0)


def test_f1_jackknife_from_sufficient_statistics_at_large_n() -> None:
    """Above the index jackknife's size limit, F1 metrics still get the jackknife, from their
    confusion counts in O(n): equal to scikit-learn's macro F1 on every leave-one-out set."""
    from heldout.stats._bootstrap import JACKKNIFE_MAX_N

    n = JACKKNIFE_MAX_N + 100
    y, base_pred, cand_pred, t, bp, cp = _codes_data(3, n)
    spec = get_metric("macro_f1")
    opts = MetricOptions(labels=("a", "b", "c"))
    base, cand = spec(y, base_pred, options=opts), spec(y, cand_pred, options=opts)
    cmp = compare(base, cand, spec, StatsOptions(resamples=500, seed=1))
    assert cmp.test == "jackknife-t"
    # leave-one-out values only depend on the left-out sample's (true, base, cand) labels
    loo = np.empty(n)
    cache: dict[tuple[int, int, int], float] = {}
    for i in range(n):
        key = (int(t[i]), int(bp[i]), int(cp[i]))
        if key not in cache:
            cache[key] = _sk_delta(*(np.delete(a, i) for a in (t, bp, cp)))
        loo[i] = cache[key]
    se = float(np.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2)))
    half = sps.t.ppf(0.975, n - 1) * se
    assert (cmp.delta.high - cmp.delta.low) / 2 == pytest.approx(half, rel=1e-9)


def test_plugin_metric_without_sufficient_statistics_uses_the_bootstrap_se() -> None:
    """A metric that only gives a resampler, above the jackknife's size limit: the SE is the
    bootstrap's (oracle: the standard error scipy.stats.bootstrap reports)."""
    from heldout.metrics import MetricResult
    from heldout.stats._bootstrap import JACKKNIFE_MAX_N

    n = JACKKNIFE_MAX_N + 500
    rng = np.random.default_rng(3)
    b_hits, c_hits = rng.random(n) < 0.6, rng.random(n) < 0.7
    spec = get_metric("macro_f1")  # any non-mean spec; the results below carry the statistic

    def result(hits: np.ndarray) -> MetricResult:  # type: ignore[type-arg]
        values = hits.astype(float)
        return MetricResult(
            "ratio", float(values.mean()), values, resampler=lambda idx: values[idx].mean(axis=1)
        )

    cmp = compare(result(b_hits), result(c_hits), spec, StatsOptions(resamples=4_000, seed=1))
    assert cmp.test == "bootstrap-se-t"
    diff = c_hits.astype(float) - b_hits.astype(float)
    ref = sps.bootstrap(
        (diff,), np.mean, n_resamples=4_000, random_state=np.random.default_rng(2)
    ).standard_error
    half = (cmp.delta.high - cmp.delta.low) / 2
    assert half / sps.t.ppf(0.975, n - 1) == pytest.approx(ref, rel=0.05)
    assert (cmp.p_value < 0.05) == cmp.delta.excludes(0.0)


def test_bca_matches_scipy_on_the_same_replicates_ties_included() -> None:
    """Same generator, same index matrix: heldout's BCa equals scipy's, including the
    mid-rank bias correction on tied replicates (a small discrete F1 has many ties)."""
    from heldout.stats._bootstrap import bca_interval, bootstrap_distribution
    from heldout.stats._bootstrap import jackknife_acceleration as accel

    def acc_delta(tt: np.ndarray, bb: np.ndarray, cc: np.ndarray) -> float:  # type: ignore[type-arg]
        return float(np.sum(cc == tt) - np.sum(bb == tt)) / tt.size

    def near_perfect_f1(tt: np.ndarray, bb: np.ndarray, cc: np.ndarray) -> float:  # type: ignore[type-arg]
        return float(f1_score(tt, tt, average="macro", labels=[0, 1, 2], zero_division=0))

    cases = ((0, 20, _sk_delta), (1, 30, acc_delta), (2, 12, acc_delta), (4, 25, near_perfect_f1))
    for seed, n, fn in cases:
        _, _, _, t, bp, cp = _codes_data(seed, n)
        rows = np.arange(n)

        def stat(idx: np.ndarray, fn=fn, t=t, bp=bp, cp=cp) -> np.ndarray:  # type: ignore[no-untyped-def, type-arg]
            return np.array([fn(t[r], bp[r], cp[r]) for r in np.atleast_2d(idx)])

        observed = fn(t, bp, cp)
        reps = bootstrap_distribution(stat, n, 999, np.random.default_rng(seed))
        if fn is acc_delta:
            assert np.mean(reps == observed) > 0.05  # ties are really there
        ours = bca_interval(reps, observed, 0.95, acceleration=accel(stat, rows))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns (and returns NaN) when degenerate
            ref = sps.bootstrap(
                (rows,),
                lambda i, fn=fn, t=t, bp=bp, cp=cp: fn(t[i], bp[i], cp[i]),
                vectorized=False,
                n_resamples=999,
                method="BCa",
                random_state=np.random.default_rng(seed),
            ).confidence_interval
        if fn is near_perfect_f1:
            # every leave-one-out F1 is 1.0: scipy's acceleration is 0/0 and its interval NaN;
            # heldout takes a = 0. Most replicates tie at 1.0, a few lose a class (F1 2/3):
            # the old strict-below rule gave [0.667, 0.667], which excludes the estimate.
            assert np.isnan(ref.low)
            assert np.mean(reps == 1.0) > 0.9
            assert np.any(reps < 1.0)
            assert ours.high == 1.0
        else:
            assert (ours.low, ours.high) == pytest.approx((ref.low, ref.high), abs=1e-12)
        assert ours.low <= observed <= ours.high


def test_bca_degenerate_replicates() -> None:
    """All replicates equal: scipy returns NaN; heldout returns the point, named as such."""
    from heldout.stats._bootstrap import bca_interval

    iv = bca_interval(np.ones(500), 1.0, 0.95, acceleration=0.0)
    assert (iv.low, iv.high, iv.method) == (1.0, 1.0, "bootstrap-degenerate")
    # one replicate off the mass of ties: still finite, and the estimate stays inside
    reps = np.r_[np.ones(499), 0.9]
    iv = bca_interval(reps, 1.0, 0.95, acceleration=0.0)
    assert iv.low <= 1.0 <= iv.high


def test_perfect_macro_f1_candidate_gets_success() -> None:
    """The reported defect: a perfect candidate's macro F1 of 1.0 got [0.667, 0.667] and
    no_gain. Its interval must hold its own estimate, and the verdict must be success."""
    from heldout.verdict import decide

    rng = np.random.default_rng(11)
    labels = ("a", "b", "c")
    y = [labels[i] for i in rng.integers(0, 3, 200)]
    base_pred = [t if rng.random() < 0.6 else "nonsense" for t in y]
    spec = get_metric("macro_f1")
    opts = MetricOptions(labels=labels)
    base, cand = spec(y, base_pred, options=opts), spec(y, list(y), options=opts)
    cmp = compare(base, cand, spec, StatsOptions(resamples=2000))
    assert cmp.candidate.estimate == 1.0
    assert cmp.candidate.low <= 1.0 <= cmp.candidate.high
    assert cmp.real_gain
    assert decide(cmp, baseline=0.5, success_threshold=0.9).status == "success"


def test_binary_comparison_uses_score_interval_and_its_test() -> None:
    from statsmodels.stats.contingency_tables import mcnemar

    spec = get_metric("exact_match")
    y = ["a"] * 100
    base = spec(y, ["a"] * 60 + ["x"] * 40)
    cand = spec(y, ["a"] * 50 + ["x"] * 10 + ["a"] * 35 + ["x"] * 5)
    cmp = compare(base, cand, spec, StatsOptions())
    assert (cmp.fixed, cmp.broken) == (35, 10)
    assert cmp.delta.estimate == pytest.approx(0.25)
    assert cmp.delta.method == "tango-score"
    assert cmp.test == "mcnemar-score"
    table = [[50, 10], [35, 5]]  # rows: base right/wrong; columns: candidate right/wrong
    assert cmp.p_value == pytest.approx(mcnemar(table, exact=False, correction=False).pvalue)
    assert cmp.real_gain
    assert cmp.base.method == "wilson"


def test_reported_disagreement_9_fixed_2_broken() -> None:
    """9 fixed / 2 broken of 100: exact McNemar says p = 0.065 while the score interval
    excludes 0; the printed test is now the one the interval inverts."""
    spec = get_metric("exact_match")
    y = ["a"] * 100
    base = spec(y, ["x"] * 9 + ["a"] * 2 + ["a"] * 89)
    cand = spec(y, ["a"] * 9 + ["x"] * 2 + ["a"] * 89)
    cmp = compare(base, cand, spec, StatsOptions())
    assert (cmp.fixed, cmp.broken) == (9, 2)
    assert cmp.delta.excludes(0.0) == (cmp.p_value < 0.05)


@pytest.mark.parametrize("fixed", range(16))
def test_binary_p_and_interval_never_disagree(fixed: int) -> None:
    from heldout.stats import paired_proportion_interval
    from heldout.stats._intervals import mcnemar_score_p

    for broken in range(16):
        for n in (fixed + broken + 1, 40, 200):
            ci = paired_proportion_interval(fixed, broken, n)
            p = mcnemar_score_p(fixed, broken)
            if abs(p - 0.05) > 1e-9:
                assert ci.excludes(0.0) == (p < 0.05), (fixed, broken, n, p, ci)


def test_continuous_comparison_uses_the_paired_t_test() -> None:
    spec = get_metric("token_f1")
    y = ["the quick brown fox"] * 40
    rng = np.random.default_rng(0)
    words = ["the", "quick", "brown", "fox", "dog"]
    bp = [" ".join(rng.choice(words, 3)) for _ in y]
    cp = [" ".join(rng.choice(words[:4], 3)) for _ in y]
    b, c = spec(y, bp), spec(y, cp)
    cmp = compare(b, c, spec, StatsOptions(resamples=2000))
    assert cmp.delta.method == "paired-t"
    assert cmp.test == "paired-t"
    assert cmp.p_value == pytest.approx(sps.ttest_rel(c.per_sample, b.per_sample).pvalue)


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


def test_small_random_sets_never_exclude_their_own_estimate() -> None:
    """The reported defect: at n = 20 the candidate's macro-F1 interval excluded its own
    estimate 82 times in 300 random data sets. Every interval must hold its estimate."""
    spec = get_metric("macro_f1")
    opts = MetricOptions(labels=("a", "b", "c"))
    outside = 0
    for seed in range(300):
        y, base_pred, cand_pred, *_ = _codes_data(seed, 20)
        cmp = compare(
            spec(y, base_pred, options=opts),
            spec(y, cand_pred, options=opts),
            spec,
            StatsOptions(resamples=500),
        )
        for iv in (cmp.base, cmp.candidate, cmp.delta):
            outside += not iv.low <= iv.estimate <= iv.high
    assert outside == 0


def test_micro_f1_without_unparseable_output_is_compared_as_the_accuracy_it_is() -> None:
    """The reported defect: on the starter example micro F1 (there equal to accuracy) printed
    p = 0.0006 beside accuracy's 0.031. One number, one interval, one p-value."""
    y, base_pred, cand_pred, *_ = _codes_data(5, 60)
    opts = MetricOptions(labels=("a", "b", "c"))
    acc, micro = get_metric("accuracy"), get_metric("micro_f1")
    a = compare(acc(y, base_pred, options=opts), acc(y, cand_pred, options=opts), acc, OPTS_S)
    m = compare(micro(y, base_pred, options=opts), micro(y, cand_pred, options=opts), micro, OPTS_S)
    assert (m.test, m.p_value, m.delta.low, m.delta.high) == (
        a.test,
        a.p_value,
        a.delta.low,
        a.delta.high,
    )
    assert m.candidate.method == "wilson"
    # with an unparseable answer micro F1 is no longer accuracy: the jackknife-t again
    chatty = [*cand_pred[:-1], "no idea"]
    m2 = compare(micro(y, base_pred, options=opts), micro(y, chatty, options=opts), micro, OPTS_S)
    assert m2.test == "jackknife-t"


OPTS_S = StatsOptions(resamples=500)

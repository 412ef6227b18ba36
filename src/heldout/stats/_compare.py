"""Paired comparison of two models' metric results on the same samples.

The interval for candidate − base is chosen for the shape of the per-sample scores, and the
p-value always comes from the test that interval inverts (a CI that excludes 0 never sits
beside p > alpha). The choice is recorded in ``Interval.method`` and ``Comparison.test``:

- binary scores of a mean metric (accuracy, exact match, schema validity): Tango's score
  interval for paired proportions and the score test it inverts (McNemar without continuity
  correction), with the flip counts (fixed, broken);
- continuous scores of a mean metric (token F1, ROUGE): paired t interval and paired t test;
- metrics that are not means of per-sample values (macro F1, span F1): a t interval with the
  jackknife standard error of the recomputed metric (n ≤ 2,000; bootstrap SE above) and the
  t test with that SE.

Coverage of each, by simulation through this function, is in docs/statistics.md
(``tests/stats/test_simulation.py`` reproduces it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from heldout.errors import HeldoutError
from heldout.metrics import MetricResult, MetricSpec
from heldout.stats._bootstrap import (
    BootstrapMethod,
    Statistic,
    bca_interval,
    bootstrap_distribution,
    jackknife_se,
    jackknife_values,
    mean_acceleration,
)
from heldout.stats._intervals import (
    Interval,
    mcnemar_score_p,
    paired_proportion_interval,
    paired_t_interval,
    t_test_p,
    wilson_interval,
)
from heldout.stats._special import t_ppf

__all__ = ["Comparison", "StatsOptions", "align_ids", "compare", "score_interval"]


@dataclass(frozen=True, slots=True)
class StatsOptions:
    """Confidence level, bootstrap resamples and the seed every draw derives from."""

    confidence: float = 0.95
    resamples: int = 10_000
    seed: int = 0
    bootstrap: BootstrapMethod = "bca"

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Candidate vs base on one metric, paired by sample."""

    metric: str
    n: int
    higher_is_better: bool
    base: Interval
    candidate: Interval
    delta: Interval
    p_value: float
    test: str
    fixed: int | None = None
    broken: int | None = None
    seed: int = 0
    resamples: int = 0

    @property
    def improvement(self) -> Interval:
        """The delta oriented so that positive means better."""
        if self.higher_is_better:
            return self.delta
        d = self.delta
        return Interval(-d.estimate, -d.high, -d.low, d.confidence, d.method)

    @property
    def real_gain(self) -> bool:
        return self.improvement.low > 0

    @property
    def real_loss(self) -> bool:
        return self.improvement.high < 0


def align_ids(ids_a: Sequence[str], ids_b: Sequence[str]) -> npt.NDArray[np.intp]:
    """Positions in ``ids_b`` of each id of ``ids_a``; missing or duplicate ids are errors."""
    problems = []
    for name, ids in (("first", ids_a), ("second", ids_b)):
        counts: dict[str, int] = {}
        for sid in ids:
            counts[sid] = counts.get(sid, 0) + 1
        dups = sorted(sid for sid, c in counts.items() if c > 1)
        if dups:
            problems.append(f"duplicate ids in the {name} set: {dups[:5]}")
    index = {sid: k for k, sid in enumerate(ids_b)}
    missing_b = [i for i in ids_a if i not in index]
    set_a = set(ids_a)
    missing_a = [i for i in ids_b if i not in set_a]
    if missing_b:
        problems.append(f"{len(missing_b)} id(s) missing from the second set: {missing_b[:5]}")
    if missing_a:
        problems.append(f"{len(missing_a)} id(s) missing from the first set: {missing_a[:5]}")
    if problems:
        raise HeldoutError(
            "paired comparison needs the same sample ids on both sides; "
            + "; ".join(problems)
            + ". Rerun the missing samples or fix the ids: nothing is dropped silently."
        )
    return np.fromiter((index[i] for i in ids_a), dtype=np.intp, count=len(ids_a))


ScoreKind = Literal["binary", "mean", "recomputed"]


def _kind(result: MetricResult, spec: MetricSpec, rows: npt.NDArray[np.intp]) -> ScoreKind:
    """How one model's scores on ``rows`` are compared: a mean of 0/1 values, a mean of other
    values, or a metric recomputed from resampled samples. A recomputed metric counts as a
    mean when it equals the mean of its per-sample values on the whole set and on every
    leave-one-out set (micro F1 with no unparseable output *is* accuracy): then it gets that
    mean's interval and test, so two names for one number never disagree."""
    v = result.per_sample[rows]
    mean = spec.mean_of_samples and not result.recomputed
    if not mean and v.size >= 3:
        loo = result.leave_one_out(rows)
        if loo is not None:
            whole = float(result.resample(rows[None, :])[0])
            mean_loo = (v.sum() - v) / (v.size - 1)
            mean = abs(whole - float(v.mean())) < 1e-12 and bool(
                np.allclose(loo, mean_loo, rtol=0, atol=1e-12)
            )
    if not mean:
        return "recomputed"
    return "binary" if bool(np.all((v == 0.0) | (v == 1.0))) else "mean"


def _rows(n: int, rows: npt.NDArray[np.intp] | None) -> npt.NDArray[np.intp]:
    return np.arange(n, dtype=np.intp) if rows is None else rows


def _clip(iv: Interval, bounds: tuple[float, float] | None) -> Interval:
    if bounds is None or not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        return iv
    lo, hi = bounds
    return Interval(iv.estimate, max(lo, iv.low), min(hi, iv.high), iv.confidence, iv.method)


def _delta_bounds(bounds: tuple[float, float] | None) -> tuple[float, float] | None:
    return None if bounds is None else (bounds[0] - bounds[1], bounds[1] - bounds[0])


@dataclass(frozen=True, slots=True)
class _Resampled:
    """A t interval whose standard error comes from resampling, and the t test it inverts."""

    interval: Interval
    p_value: float
    resamples: int


def resampling_t(
    statistic: Statistic,
    rows: npt.NDArray[np.intp],
    n_all: int,
    options: StatsOptions,
    leave_one_out: Callable[[npt.NDArray[np.intp]], npt.NDArray[np.float64] | None] | None = None,
) -> _Resampled:
    """Interval and p-value for a metric that is not a mean of per-sample values (F1-type).

    estimate ± t_{n−1} · SE, and the two-sided t test of 0 with the same SE, so the interval
    excludes 0 exactly when p < 1 − confidence. The SE is the jackknife's for n ≤
    ``JACKKNIFE_MAX_N`` (deterministic; it keeps 94–96% coverage from n = 30 where the
    percentile and BCa bootstraps cover ~92%, see docs/statistics.md), and the bootstrap
    standard deviation of ``options.resamples`` paired resamples above that. A metric with
    sufficient statistics (``leave_one_out``) gets the jackknife at any n, in O(n).
    """
    n = int(rows.size)
    estimate = float(statistic(rows[None, :])[0])
    level = options.confidence
    if n < 2:
        nan = float("nan")
        return _Resampled(Interval(estimate, nan, nan, level, "none"), float("nan"), 0)
    loo = leave_one_out(rows) if leave_one_out is not None else None
    if loo is None:
        loo = jackknife_values(statistic, rows)
    if loo is not None:
        se, method, b = jackknife_se(loo[np.isfinite(loo)]), "jackknife-t", 0
    else:
        reps = bootstrap_distribution(statistic, n_all, options.resamples, options.rng(), rows)
        finite = reps[np.isfinite(reps)]
        se = float(finite.std(ddof=1)) if finite.size > 1 else float("nan")
        method, b = "bootstrap-se-t", options.resamples
    half = t_ppf(n - 1, 0.5 + level / 2) * se
    return _Resampled(
        Interval(estimate, estimate - half, estimate + half, level, method),
        t_test_p(estimate, se, n - 1),
        b,
    )


def score_interval(
    result: MetricResult,
    spec: MetricSpec,
    options: StatsOptions,
    rows: npt.NDArray[np.intp] | None = None,
) -> Interval:
    """Interval for one model's aggregate (on ``rows`` if given), within the metric's bounds."""
    r = _rows(result.per_sample.size, rows)
    if r.size == 0:
        raise HeldoutError(f"{spec.name}: no samples to score")
    return _score_interval(result, spec, options, r, _kind(result, spec, r))


def _score_interval(
    result: MetricResult,
    spec: MetricSpec,
    options: StatsOptions,
    r: npt.NDArray[np.intp],
    kind: ScoreKind,
) -> Interval:
    estimate = float(result.resample(r[None, :])[0])
    if kind == "binary":
        w = wilson_interval(int(result.per_sample[r].sum()), r.size, options.confidence)
        return Interval(estimate, w.low, w.high, w.confidence, w.method)
    if kind == "mean":
        if r.size < 2:
            return Interval(estimate, float("nan"), float("nan"), options.confidence, "none")
        t = paired_t_interval(result.per_sample[r], options.confidence)
        return _clip(Interval(estimate, t.low, t.high, t.confidence, "t"), spec.bounds)
    iv = resampling_t(
        result.resample, r, result.per_sample.size, options, result.leave_one_out
    ).interval
    return _clip(iv, spec.bounds)


def compare(
    base: MetricResult,
    cand: MetricResult,
    spec: MetricSpec,
    options: StatsOptions,
    rows: npt.NDArray[np.intp] | None = None,
) -> Comparison:
    """Compare candidate with base on the same samples (already aligned by id).

    ``rows`` restricts the comparison to a subset (a slice); indices refer to both results.
    The p-value always comes from the test the delta's interval inverts: the interval excludes
    0 exactly when p < 1 − confidence.
    """
    n_all = base.per_sample.size
    if cand.per_sample.size != n_all:
        raise HeldoutError(
            f"{spec.name}: base has {n_all} samples, candidate {cand.per_sample.size}; "
            "align them by id first (heldout.stats.align_ids)"
        )
    r = _rows(n_all, rows)
    n = int(r.size)
    if n == 0:
        raise HeldoutError(f"{spec.name}: no samples to compare")
    kinds = (_kind(base, spec, r), _kind(cand, spec, r))
    b_int = _score_interval(base, spec, options, r, kinds[0])
    c_int = _score_interval(cand, spec, options, r, kinds[1])
    observed = c_int.estimate - b_int.estimate
    common = {
        "metric": spec.name,
        "n": n,
        "higher_is_better": spec.higher_is_better,
        "base": b_int,
        "candidate": c_int,
        "seed": options.seed,
    }
    if kinds == ("binary", "binary"):
        b, c = base.per_sample[r] == 1.0, cand.per_sample[r] == 1.0
        fixed, broken = int(np.sum(~b & c)), int(np.sum(b & ~c))
        delta = paired_proportion_interval(fixed, broken, n, options.confidence)
        return Comparison(
            **common,  # type: ignore[arg-type]
            delta=delta,
            p_value=mcnemar_score_p(fixed, broken),
            test="mcnemar-score",
            fixed=fixed,
            broken=broken,
        )
    if "recomputed" not in kinds:
        diff = cand.per_sample[r] - base.per_sample[r]
        if n < 2:
            nan = float("nan")
            delta = Interval(observed, nan, nan, options.confidence, "none")
            p = nan
        else:
            delta = paired_t_interval(diff, options.confidence)
            p = t_test_p(float(diff.mean()), float(diff.std(ddof=1)) / math.sqrt(n), n - 1)
        return Comparison(
            **common,  # type: ignore[arg-type]
            delta=_clip(delta, _delta_bounds(spec.bounds)),
            p_value=p,
            test="paired-t",
        )

    def stat(idx: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        return cand.resample(idx) - base.resample(idx)

    def loo(rows: npt.NDArray[np.intp]) -> npt.NDArray[np.float64] | None:
        c, b = cand.leave_one_out(rows), base.leave_one_out(rows)
        return None if c is None or b is None else c - b

    res = resampling_t(stat, r, n_all, options, loo)
    return Comparison(
        **common,  # type: ignore[arg-type]
        delta=_clip(res.interval, _delta_bounds(spec.bounds)),
        p_value=res.p_value,
        test=res.interval.method,
        resamples=res.resamples,
    )


def bootstrap_mean_delta(
    base: npt.NDArray[np.float64],
    cand: npt.NDArray[np.float64],
    options: StatsOptions,
) -> Interval:
    """Paired bootstrap interval of mean(cand) − mean(base) (percentile or BCa).

    Binary scores are resampled through the multinomial of the four outcome cells
    (both right, fixed, broken, both wrong), which is the same distribution as resampling
    indices and costs nothing in n: 10,000 resamples of 100,000 pairs take milliseconds.
    """
    n = base.size
    diff = cand - base
    observed = float(diff.mean())
    rng = options.rng()
    binary = bool(np.all((base == 0) | (base == 1)) and np.all((cand == 0) | (cand == 1)))
    if binary:
        fixed = int(np.sum((base == 0) & (cand == 1)))
        broken = int(np.sum((base == 1) & (cand == 0)))
        counts = rng.multinomial(
            n, [fixed / n, broken / n, 1 - (fixed + broken) / n], size=options.resamples
        )
        reps = (counts[:, 0] - counts[:, 1]) / n
    else:
        reps = bootstrap_distribution(lambda idx: diff[idx].mean(axis=1), n, options.resamples, rng)
    return bca_interval(
        reps.astype(np.float64),
        observed,
        options.confidence,
        acceleration=mean_acceleration(diff),
        method=options.bootstrap,
    )

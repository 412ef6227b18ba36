"""A/B statistics on per-unit metrics: the effect of treatment over control with a
fixed-horizon interval and an always-valid confidence sequence, ratio metrics by the delta
method, CUPED, and the sample-ratio-mismatch check.

Metrics are per unit (a user's requests are correlated, so the unit — not the request — is
the sample): a mean or a proportion of per-unit values, or a ratio of per-unit sums (cost
per request = Σ cost / Σ requests) whose variance comes from the delta method.

- **Fixed horizon**: Welch's unequal-variance t interval and test, absolute (treatment −
  control) or relative ((treatment − control) / control, delta method). Valid once, at the
  planned sample size.
- **Sequential**: the asymptotic confidence sequence of Waudby-Smith et al. (2023, eq. 9),
  with its tuning parameter ρ set for an expected sample size (default 5,000 units), and the
  always-valid p-value (eq. 155): checking it every day does not inflate false positives.
- **CUPED**: a pre-period covariate x reduces variance: y − θ·x with θ = cov(y, x) / var(x)
  pooled over both arms.
- **SRM**: Pearson's chi-square of the units per arm against the configured split.

These are the formulas of GrowthBook's gbstats (frequentist engine, ``SequentialTwoSidedTTest``,
``RatioStatistic``, ``RegressionAdjustedStatistic``, ``check_srm``), written here for numpy
arrays; the tests check every number against gbstats itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from heldout.stats import Interval

__all__ = [
    "Effect",
    "Summary",
    "cuped",
    "effect",
    "mean_summary",
    "proportion_summary",
    "ratio_summary",
    "sequential",
    "srm_p_value",
]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Summary:
    """One arm's metric: units, mean, variance of a unit's value, and the mean before any
    CUPED adjustment (the relative effect's denominator)."""

    n: int
    mean: float
    variance: float
    unadjusted_mean: float


def mean_summary(values: npt.ArrayLike) -> Summary:
    v = np.asarray(values, dtype=np.float64)
    var = float(v.var(ddof=1)) if v.size > 1 else 0.0
    m = float(v.mean()) if v.size else 0.0
    return Summary(int(v.size), m, var, m)


def proportion_summary(values: npt.ArrayLike) -> Summary:
    """A per-unit 0/1 outcome (resolved, escalated): variance p(1 − p)."""
    v = np.asarray(values, dtype=np.float64)
    p = float(v.mean()) if v.size else 0.0
    return Summary(int(v.size), p, p * (1 - p), p)


def ratio_summary(numerator: npt.ArrayLike, denominator: npt.ArrayLike) -> Summary:
    """Σ numerator / Σ denominator over units, with the delta-method variance of a unit."""
    m = np.asarray(numerator, dtype=np.float64)
    d = np.asarray(denominator, dtype=np.float64)
    n = int(m.size)
    if n == 0 or d.sum() == 0:
        return Summary(n, 0.0, 0.0, 0.0)
    mm, md = float(m.mean()), float(d.mean())
    if n <= 1:
        return Summary(n, mm / md, 0.0, mm / md)
    vm, vd = float(m.var(ddof=1)), float(d.var(ddof=1))
    cov = float(((m - mm) * (d - md)).sum() / (n - 1))
    var = vm / md**2 - 2 * cov * mm / md**3 + mm**2 * vd / md**4
    ratio = float(m.sum() / d.sum())
    return Summary(n, ratio, var, ratio)


def cuped(
    post_a: npt.ArrayLike, pre_a: npt.ArrayLike, post_b: npt.ArrayLike, pre_b: npt.ArrayLike
) -> tuple[Summary, Summary, float]:
    """Both arms adjusted by a pre-period covariate, and the pooled θ."""
    ya, xa = np.asarray(post_a, np.float64), np.asarray(pre_a, np.float64)
    yb, xb = np.asarray(post_b, np.float64), np.asarray(pre_b, np.float64)
    y, x = np.concatenate([ya, yb]), np.concatenate([xa, xb])
    vx = float(x.var(ddof=1)) if x.size > 1 else 0.0
    vy = float(y.var(ddof=1)) if y.size > 1 else 0.0
    theta = 0.0
    if vx > 0 and vy > 0:
        theta = float(((x - x.mean()) * (y - y.mean())).sum() / (x.size - 1)) / vx

    def adjusted(yy: F64, xx: F64) -> Summary:
        n = int(yy.size)
        if n <= 1:
            m = float(yy.mean()) if n else 0.0
            return Summary(n, m - theta * (float(xx.mean()) if n else 0.0), 0.0, m)
        cov = float(((yy - yy.mean()) * (xx - xx.mean())).sum() / (n - 1))
        var = float(yy.var(ddof=1)) + theta**2 * float(xx.var(ddof=1)) - 2 * theta * cov
        return Summary(n, float(yy.mean()) - theta * float(xx.mean()), var, float(yy.mean()))

    return adjusted(ya, xa), adjusted(yb, xb), theta


@dataclass(frozen=True, slots=True)
class Effect:
    """Treatment over control on one metric."""

    estimate: float
    relative: bool
    fixed: Interval  # Welch t, valid at the planned n
    p_value: float
    sequential: Interval  # always valid (confidence sequence)
    p_sequential: float
    control: Summary
    treatment: Summary


def _variance(a: Summary, b: Summary, relative: bool) -> float:
    if relative:
        ma, mb = a.unadjusted_mean, b.unadjusted_mean  # delta method on the raw means
        return b.variance / (ma**2 * b.n) + a.variance * mb**2 / (ma**4 * a.n)
    return b.variance / b.n + a.variance / a.n


def effect(
    control: Summary,
    treatment: Summary,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    tuning: float = 5000.0,
) -> Effect:
    """The effect with both intervals (module docstring); ``tuning`` is the sample size the
    confidence sequence is tightest at (gbstats' ``sequential_tuning_parameter``)."""
    a, b = control, treatment
    nan = float("nan")
    conf = 1 - alpha
    if a.n < 2 or b.n < 2 or (relative and a.unadjusted_mean == 0):
        none = Interval(nan, nan, nan, conf, "none")
        return Effect(nan, relative, none, nan, none, nan, a, b)
    est = (b.mean - a.mean) / a.unadjusted_mean if relative else b.mean - a.mean
    var = _variance(a, b, relative)
    se = math.sqrt(var) if var > 0 else 0.0
    va, vb = a.variance / a.n, b.variance / b.n
    denom = vb**2 / (b.n - 1) + va**2 / (a.n - 1)
    dof = (va + vb) ** 2 / denom if denom > 0 else float(a.n + b.n - 2)
    if se == 0:
        fixed = Interval(est, est, est, conf, "welch-t")
        p = 1.0 if est == 0 else 0.0
    else:
        half = float(sps.t.ppf(1 - alpha / 2, dof)) * se
        fixed = Interval(est, est - half, est + half, conf, "welch-t")
        p = float(2 * sps.t.sf(abs(est / se), dof))
    seq, p_seq = sequential(est, var, a.n + b.n, alpha=alpha, tuning=tuning)
    return Effect(est, relative, fixed, p, seq, p_seq, a, b)


def sequential(
    est: float, var: float, n_total: int, *, alpha: float = 0.05, tuning: float = 5000.0
) -> tuple[Interval, float]:
    """The always-valid interval and p-value of an estimate with variance ``var`` (of the
    estimate) after ``n_total`` units: Waudby-Smith et al. (2023) eq. 9 and eq. 155."""
    conf = 1 - alpha
    rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning)
    var = max(var, 0.0)  # a constant metric's delta-method variance can round below 0
    s2 = var * n_total
    width = math.sqrt(s2) * math.sqrt(
        2
        * (n_total * rho**2 + 1)
        * math.log(math.sqrt(n_total * rho**2 + 1) / alpha)
        / (n_total * rho) ** 2
    )
    seq = Interval(est, est - width, est + width, conf, "confidence-sequence")
    if var > 0:
        st2 = est**2 * n_total / var
        tr = n_total * rho**2 + 1
        log_e = rho**2 * st2 / (2 * tr) - 0.5 * math.log(tr)
        p_seq = min(1.0, math.exp(-log_e)) if log_e < 700 else 0.0
    else:
        p_seq = 1.0 if est == 0 else 0.0
    return seq, p_seq


def srm_p_value(units: Sequence[int], weights: Sequence[float]) -> float:
    """Pearson chi-square p-value of units per arm against the configured split."""
    total = sum(units)
    if not total:
        return 1.0
    w = sum(weights)
    x = sum(
        (o - wi / w * total) ** 2 / (wi / w * total)
        for o, wi in zip(units, weights, strict=True)
        if wi > 0
    )
    return float(sps.chi2.sf(x, len(units) - 1))

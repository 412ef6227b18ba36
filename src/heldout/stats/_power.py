"""Power: samples needed for a lift, or the lift n can detect, for each kind of metric.

Binary metrics (below) use the exact power of the paired score test; continuous and F1-type
metrics the paired t test (end of the module); :func:`assess_power` picks one.

Gold-set comparisons are paired, so the sample size depends on how often the two models
disagree (the discordant share ψ = P(fixed) + P(broken)), not only on the two accuracies.
The decision heldout makes is "the score interval of the paired difference excludes 0 on the
good side", which is exactly the asymptotic McNemar test (the Tango interval excludes 0 iff
|fixed − broken| / √(fixed + broken) > z). Its power is computed *exactly* here, summing the
multinomial probabilities of (fixed, broken) over the rejection region, for n ≤ 1000; above
that Connor's (1987) normal approximation is used,

    n = (z_{α/2} √ψ + z_β √(ψ − δ²))² / δ²,

which is also the starting point of the exact search. Before a run ψ is unknown; by default it
is taken as if the models erred independently, ψ = p(1 − q) + q(1 − p) with q = p + δ.
Fine-tunes of one base model usually agree more than that, so the default errs on the side of
more samples; pass the discordance measured on a pilot run to be exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heldout.errors import HeldoutError
from heldout.stats._special import log_factorials, norm_cdf, norm_ppf, t_ppf

__all__ = [
    "DEFAULT_GUARD_DISCORDANCE",
    "EXACT_MAX_N",
    "PowerAssessment",
    "PowerResult",
    "assess_power",
    "detectable_lift",
    "noninferiority_pass_chance",
    "noninferiority_samples_needed",
    "paired_t_detectable_lift",
    "paired_t_power",
    "paired_t_samples_needed",
    "power_of",
    "resolvable_margin",
    "samples_needed",
]

EXACT_MAX_N = 1000


@dataclass(frozen=True, slots=True)
class PowerResult:
    """What a power calculation assumed and found."""

    base_rate: float
    lift: float
    n: int
    power: float
    alpha: float
    discordance: float
    method: str


def _discordance(p: float, lift: float, discordance: float | None) -> float:
    q = p + lift
    if discordance is None:
        return p * (1 - q) + q * (1 - p)
    if not abs(lift) <= discordance <= 1:
        raise HeldoutError(
            f"discordance must be between |lift| ({abs(lift)}) and 1, got {discordance}"
        )
    return discordance


def _check(p: float, lift: float, alpha: float, power: float) -> None:
    if not 0 <= p <= 1:
        raise HeldoutError(f"base rate must be in [0, 1], got {p}")
    if lift <= 0 or p + lift > 1:
        raise HeldoutError(f"lift must be > 0 and base rate + lift ≤ 1, got {p} + {lift}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise HeldoutError("alpha and power must be in (0, 1)")


def _connor_n(psi: float, lift: float, alpha: float, power: float) -> float:
    za = -norm_ppf(alpha / 2)
    zb = norm_ppf(power)
    return float((za * math.sqrt(psi) + zb * math.sqrt(max(psi - lift * lift, 0.0))) ** 2 / lift**2)


def _connor_power(n: int, psi: float, lift: float, alpha: float) -> float:
    za = -norm_ppf(alpha / 2)
    rest = math.sqrt(max(psi - lift * lift, 1e-12))
    return float(norm_cdf((lift * math.sqrt(n) - za * math.sqrt(psi)) / rest))


def _exact_power(n: int, psi: float, lift: float, alpha: float) -> float:
    """P(fixed − broken > z √(fixed + broken)) under Multinomial(n; p_fixed, p_broken, rest).

    Only (fixed, broken) cells within 12 standard deviations of their means are summed: the
    probability left out is below 1e-30.
    """
    p_fixed, p_broken = (psi + lift) / 2, (psi - lift) / 2
    rest = 1.0 - psi
    z = -norm_ppf(alpha / 2)

    def window(p: float) -> npt.NDArray[np.int64]:
        mu, sd = n * p, math.sqrt(max(n * p * (1 - p), 0.0))
        lo, hi = max(0, math.floor(mu - 12 * sd - 1)), min(n, math.ceil(mu + 12 * sd + 1))
        return np.arange(lo, hi + 1)

    f = window(p_fixed)[:, None]
    b = window(p_broken)[None, :]
    valid = f + b <= n
    reject = valid & (f - b > z * np.sqrt(np.maximum(f + b, 1)))
    if not reject.any():
        return 0.0
    ff, bb = np.broadcast_to(f, reject.shape)[reject], np.broadcast_to(b, reject.shape)[reject]
    with np.errstate(divide="ignore"):
        lf = log_factorials(n)
        logp = (
            lf[n]
            - lf[ff]
            - lf[bb]
            - lf[n - ff - bb]
            + ff * np.log(p_fixed)
            + bb * np.log(p_broken if p_broken > 0 else 1e-300)
            + (n - ff - bb) * np.log(rest if rest > 0 else 1e-300)
        )
    if p_broken == 0:
        logp = np.where(bb > 0, -np.inf, logp)
    if rest == 0:
        logp = np.where(n - ff - bb > 0, -np.inf, logp)
    return float(min(1.0, np.exp(logp).sum()))


def power_of(
    n: int, base_rate: float, lift: float, *, alpha: float = 0.05, discordance: float | None = None
) -> float:
    """Probability that ``n`` paired samples show a lift (interval excludes 0 on the good side)."""
    _check(base_rate, lift, alpha, 0.5)
    if n < 1:
        raise HeldoutError("n must be ≥ 1")
    psi = _discordance(base_rate, lift, discordance)
    if n <= EXACT_MAX_N:
        return _exact_power(n, psi, lift, alpha)
    return _connor_power(n, psi, lift, alpha)


def samples_needed(
    base_rate: float,
    lift: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    discordance: float | None = None,
) -> PowerResult:
    """Smallest paired n whose power to detect ``lift`` over ``base_rate`` reaches ``power``."""
    _check(base_rate, lift, alpha, power)
    psi = _discordance(base_rate, lift, discordance)
    approx = max(2, math.ceil(_connor_n(psi, lift, alpha, power)))
    if approx > EXACT_MAX_N:
        got = _connor_power(approx, psi, lift, alpha)
        return PowerResult(base_rate, lift, approx, got, alpha, psi, "connor-approximation")
    lo, hi = max(1, approx // 2), approx
    while _exact_power(hi, psi, lift, alpha) < power:
        lo, hi = hi, hi * 2
        if hi > 4 * EXACT_MAX_N:
            raise HeldoutError("power target not reachable within 16,000 samples")
    while lo + 1 < hi:  # power is close to monotone in n; bisection then a local check
        mid = (lo + hi) // 2
        if _exact_power(mid, psi, lift, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return PowerResult(base_rate, lift, hi, _exact_power(hi, psi, lift, alpha), alpha, psi, "exact")


def detectable_lift(
    n: int,
    base_rate: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    discordance: float | None = None,
) -> float:
    """Smallest lift over ``base_rate`` that ``n`` paired samples detect with ``power``.

    Returns ``inf`` when even the largest possible lift is not detectable.
    """
    if n < 1:
        raise HeldoutError("n must be ≥ 1")
    top = 1.0 - base_rate
    if top <= 0:
        raise HeldoutError("base rate 1 leaves no room for a lift")

    def gap(lift: float) -> float:
        d = discordance if discordance is not None and discordance >= lift else None
        return power_of(n, base_rate, lift, alpha=alpha, discordance=d) - power

    if gap(top) < 0:
        return float("inf")
    from heldout.stats._intervals import bisect

    return float(bisect(gap, 1e-6, top, tol=1e-6))


# --- continuous and F1-type metrics: the paired t test -------------------------------------


def paired_t_power(n: int, lift: float, sd: float, *, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t test (what heldout's paired-t and jackknife-t
    intervals invert) to detect a mean paired difference ``lift`` with per-sample SD ``sd``:
    exact, from the noncentral t distribution (oracle: statsmodels' ``TTestPower``)."""
    if n < 2:
        raise HeldoutError("a paired t test needs n ≥ 2")
    if not sd > 0 or not math.isfinite(sd):
        raise HeldoutError(f"the SD of paired differences must be > 0, got {sd}")
    if not 0 < alpha < 1:
        raise HeldoutError("alpha must be in (0, 1)")
    # scipy.special's noncentral t CDF: the values of scipy.stats.nct (to 1e-16 on a grid of
    # df, noncentrality and alpha) without the 0.7 s import of scipy.stats
    from scipy.special import nctdtr

    df = n - 1
    crit = t_ppf(df, 1 - alpha / 2)
    nc = abs(lift) / sd * math.sqrt(n)
    return float((1.0 - nctdtr(df, nc, crit)) + nctdtr(df, nc, -crit))


def paired_t_samples_needed(
    lift: float, sd: float, *, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Smallest n whose paired t test detects ``lift`` with ``power`` (see paired_t_power)."""
    if lift <= 0:
        raise HeldoutError(f"lift must be > 0, got {lift}")
    if not 0 < power < 1:
        raise HeldoutError("power must be in (0, 1)")
    za, zb = -norm_ppf(alpha / 2), norm_ppf(power)
    n = max(2, math.floor(((za + zb) * sd / lift) ** 2))
    while paired_t_power(n, lift, sd, alpha=alpha) < power:
        n += 1
    while n > 2 and paired_t_power(n - 1, lift, sd, alpha=alpha) >= power:
        n -= 1
    return n


def paired_t_detectable_lift(
    n: int, sd: float, *, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest mean paired difference that ``n`` samples detect with ``power``."""
    from heldout.stats._intervals import bisect

    # the normal approximation (z_α/2 + z_β)·sd/√n, doubled, brackets the root (and keeps the
    # noncentral t away from the huge noncentralities where scipy returns NaN)
    top = 2.0 * (-norm_ppf(alpha / 2) + norm_ppf(power) + 1.0) * sd / math.sqrt(n) + 1e-9 * sd
    return float(
        bisect(
            lambda d: paired_t_power(n, d, sd, alpha=alpha) - power, 1e-9 * sd, top, tol=1e-9 * sd
        )
    )


@dataclass(frozen=True, slots=True)
class PowerAssessment:
    """Can ``n`` samples detect ``lift``? What was assumed, and where the assumption came from.

    ``validate``, ``run`` and ``heldout power`` all call :func:`assess_power`; they differ only
    where ``source`` does (the plan's assumption, or what the run measured), and say so.
    """

    kind: str  # "binary" | "continuous" | "resampled"
    n: int
    lift: float
    n_needed: int | None
    detectable_lift: float | None
    power_at_n: float | None
    method: str
    assumption: str
    source: str
    note: str = ""
    discordance: float | None = None
    paired_sd: float | None = None

    @property
    def underpowered(self) -> bool:
        return self.n_needed is not None and self.n < self.n_needed

    def describe(self) -> str:
        if self.n_needed is None:
            return f"power not checked: {self.note}"
        can = (
            f"can detect ~{self.detectable_lift:.4g}"
            if self.detectable_lift is not None and math.isfinite(self.detectable_lift)
            else "cannot detect any lift"
        )
        return (
            f"{self.n_needed:,} samples needed to detect +{self.lift:g} ({self.method}; "
            f"{self.assumption}, {self.source}); n={self.n:,} {can}"
        )


def assess_power(
    kind: str,
    *,
    n: int,
    lift: float,
    alpha: float,
    power: float,
    base_rate: float | None = None,
    discordance: float | None = None,
    paired_sd: float | None = None,
    source: str = "plan",
) -> PowerAssessment:
    """One power answer for every metric kind.

    - ``binary`` (accuracy, exact match, schema validity): exact power of the paired score
      test with ``discordance`` (default: independent errors at ``base_rate``);
    - ``continuous`` (token F1, ROUGE): paired t with ``paired_sd``, the SD of per-sample
      differences candidate − base (declared in the plan, or measured in a run);
    - ``resampled`` (macro F1, span F1): paired t with the *effective* per-sample SD,
      SE(delta) · √n, from the jackknife (measured) or declared as ``paired_sd``.
    """
    if kind == "binary":
        if base_rate is None:
            raise HeldoutError("binary power needs the base rate")
        lift_b = min(lift, 1 - base_rate)
        d = discordance if discordance is not None and discordance >= lift_b else None
        need = samples_needed(base_rate, lift_b, alpha=alpha, power=power, discordance=d)
        can = detectable_lift(n, base_rate, alpha=alpha, power=power, discordance=d)
        got = power_of(n, base_rate, lift_b, alpha=alpha, discordance=d)
        what = (
            f"discordance {need.discordance:.3f}"
            if d is not None
            else f"discordance {need.discordance:.3f} (independent errors at {base_rate:g})"
        )
        method = "exact paired score test" if need.method == "exact" else need.method
        return PowerAssessment(
            kind,
            n,
            lift,
            need.n,
            can,
            got,
            method,
            what,
            source if d is not None else "plan",
            discordance=need.discordance,
        )
    if paired_sd is None:
        return PowerAssessment(
            kind,
            n,
            lift,
            None,
            None,
            None,
            "paired t",
            "no SD of paired differences",
            source,
            note="declare stats.paired_sd (the SD of per-sample candidate − base differences, "
            "from a pilot run) or read it from a run's power section",
        )
    label = "SD of paired differences" if kind == "continuous" else "effective SD (SE·√n)"
    return PowerAssessment(
        kind,
        n,
        lift,
        paired_t_samples_needed(lift, paired_sd, alpha=alpha, power=power),
        paired_t_detectable_lift(n, paired_sd, alpha=alpha, power=power) if n >= 2 else None,
        paired_t_power(n, lift, paired_sd, alpha=alpha) if n >= 2 else None,
        "paired t (noncentral t)",
        f"{label} {paired_sd:.4g}",
        source,
        paired_sd=paired_sd,
    )


# --- guardrails: can a non-inferiority gate resolve? ---------------------------------------

#: The share of prompts on which base and candidate are assumed to disagree when nothing got
#: worse, for resolvability before any run (fine-tunes of one base agree on most prompts).
DEFAULT_GUARD_DISCORDANCE = 0.1
#: Above this many samples the pass chance uses the normal approximation (exact is O(n log n)
#: Tango intervals; at 5,000 the two agree to about 0.005).
NONINFERIORITY_EXACT_MAX_N = 5_000


def noninferiority_pass_chance(
    n: int,
    margin: float,
    *,
    discordance: float = DEFAULT_GUARD_DISCORDANCE,
    true_change: float = 0.0,
    confidence: float = 0.95,
) -> float:
    """Chance that a binary guardrail of ``n`` paired samples *passes* (Tango lower bound above
    −margin) when the true change is ``true_change``: exact, summing the multinomial of
    (fixed, broken) over the pass region. At ``true_change = 0`` it is the chance that a
    candidate that broke nothing is not left ``unresolved``."""
    from heldout.stats._intervals import paired_proportion_interval

    if n < 1 or not 0 <= margin < 1:
        raise HeldoutError("n must be ≥ 1 and the margin in [0, 1)")
    if not abs(true_change) <= discordance <= 1:
        raise HeldoutError("discordance must be between |true_change| and 1")
    if n > NONINFERIORITY_EXACT_MAX_N:  # normal approximation of the one-sided score test
        z = -norm_ppf((1 - confidence) / 2)
        se = math.sqrt(max(discordance - true_change**2, 1e-12) / n)
        return norm_cdf((true_change + margin) / se - z)
    p_fixed, p_broken = (discordance + true_change) / 2, (discordance - true_change) / 2
    lf = log_factorials(n)
    total = 0.0
    sd = math.sqrt(n * discordance)
    top = min(n, math.ceil(n * discordance + 12 * sd + 2))
    for k in range(top + 1):  # k discordant pairs, f of them fixed
        log_k = lf[n] - lf[k] - lf[n - k] + k * math.log(discordance)
        log_k += (
            (n - k) * math.log1p(-discordance) if discordance < 1 else (0 if k == n else -np.inf)
        )
        if not math.isfinite(log_k) or log_k < -80:
            continue
        f = np.arange(k + 1)
        with np.errstate(divide="ignore"):
            lp = lf[k] - lf[f] - lf[k - f]
            lp = (
                lp + f * math.log(p_fixed / discordance)
                if p_fixed > 0
                else np.where(f == 0, lp, -np.inf)
            )
            lp = (
                lp + (k - f) * math.log(p_broken / discordance)
                if p_broken > 0
                else np.where(f == k, lp, -np.inf)
            )

        # the lower bound grows with f (k fixed): pass iff f ≥ the first passing f
        def passes(x: int, k: int = k) -> bool:
            return paired_proportion_interval(x, k - x, n, confidence).low > -margin

        if not passes(k):
            continue
        lo, hi = -1, k  # passes(hi) holds; find the first passing f by bisection
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if passes(mid) else (mid, hi)
        total += float(np.exp(log_k + lp[hi:]).sum())
    return min(1.0, total)


def noninferiority_samples_needed(
    margin: float,
    *,
    discordance: float = DEFAULT_GUARD_DISCORDANCE,
    confidence: float = 0.95,
    power: float = 0.8,
) -> int:
    """Paired samples for an ``power`` chance to pass at zero true change (normal
    approximation of the one-sided score test: n = (z_{α/2} + z_β)² ψ / margin²)."""
    if not 0 < margin < 1:
        raise HeldoutError("the margin must be in (0, 1) to be resolvable")
    z = _z_sum(confidence, power)
    return max(2, math.ceil(z * z * discordance / margin**2))


def _z_sum(confidence: float, power: float) -> float:
    """z of the one-sided test at (1 − confidence)/2 plus z of the power."""
    return -norm_ppf((1 - confidence) / 2) + norm_ppf(power)


def resolvable_margin(
    n: int,
    *,
    discordance: float = DEFAULT_GUARD_DISCORDANCE,
    confidence: float = 0.95,
    power: float = 0.8,
) -> float:
    """The smallest margin ``n`` paired samples pass with ``power`` chance at zero change."""
    if n < 1:
        raise HeldoutError("n must be ≥ 1")
    return float(_z_sum(confidence, power) * math.sqrt(discordance / n))

"""Power for paired binary comparisons: samples needed for a lift, or the lift n can detect.

Gold-set comparisons are paired, so the sample size depends on how often the two models
disagree (the discordant share ψ = P(fixed) + P(broken)), not only on the two accuracies.
Connor (1987) gives, for a two-sided test at level α with power 1 − β and lift δ:

    n = (z_{α/2} √ψ + z_β √(ψ − δ²))² / δ²

Before a run ψ is unknown; by default it is taken as if the models erred independently,
ψ = p(1 − q) + q(1 − p) with q = p + δ. Fine-tunes of one base model usually agree more than
that, so the default errs on the side of more samples; pass the discordance measured on a
pilot run (or a previous iteration) to be exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize
from scipy import stats as sps

from heldout.errors import HeldoutError

__all__ = ["PowerResult", "detectable_lift", "power_of", "samples_needed"]


@dataclass(frozen=True, slots=True)
class PowerResult:
    """What a power calculation assumed and found."""

    base_rate: float
    lift: float
    n: int
    power: float
    alpha: float
    discordance: float


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


def samples_needed(
    base_rate: float,
    lift: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    discordance: float | None = None,
) -> PowerResult:
    """Paired samples needed to detect ``lift`` over ``base_rate`` (two-sided ``alpha``)."""
    _check(base_rate, lift, alpha, power)
    psi = _discordance(base_rate, lift, discordance)
    za = sps.norm.ppf(1 - alpha / 2)
    zb = sps.norm.ppf(power)
    n = (za * math.sqrt(psi) + zb * math.sqrt(max(psi - lift * lift, 0.0))) ** 2 / lift**2
    return PowerResult(base_rate, lift, math.ceil(n), power, alpha, psi)


def power_of(
    n: int, base_rate: float, lift: float, *, alpha: float = 0.05, discordance: float | None = None
) -> float:
    """Power of a paired test with ``n`` samples to detect ``lift`` (Connor's approximation)."""
    _check(base_rate, lift, alpha, 0.5)
    psi = _discordance(base_rate, lift, discordance)
    za = sps.norm.ppf(1 - alpha / 2)
    rest = math.sqrt(max(psi - lift * lift, 1e-12))
    return float(sps.norm.cdf((lift * math.sqrt(n) - za * math.sqrt(psi)) / rest))


def detectable_lift(
    n: int,
    base_rate: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    discordance: float | None = None,
) -> float:
    """Smallest lift over ``base_rate`` that ``n`` paired samples detect with ``power``."""
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
    return float(optimize.brentq(gap, 1e-9, top, xtol=1e-7))

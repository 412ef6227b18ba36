"""The length-controlled win rate (as AlpacaEval 2): what the judge's preference would be if
the two responses were equally long.

Each sample's outcome y (1 candidate wins, 0 base wins, ½ tie) is regressed on the length
difference, ``logit P(y) = θ + φ·tanh(Δ/σ)`` with Δ the candidate's length minus the base's
in characters and σ its standard deviation (AlpacaEval's normalisation). It is a fractional
logit (quasi-binomial; ties are ½), fitted by Newton's method, with the robust (HC0) sandwich
covariance that such a model needs. The length-controlled win rate is σ(θ), the win rate at
Δ = 0, with a delta-method interval on the logit scale; it equals statsmodels'
``GLM(y, X, family=Binomial()).fit(cov_type="HC0")``. When length alone decides every verdict
the fit has no finite solution and the rate is reported as not estimable, with that reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heldout.stats import Interval
from heldout.stats._special import norm_ppf

__all__ = ["LengthControlled", "length_controlled"]


@dataclass(frozen=True, slots=True)
class LengthControlled:
    """The raw win rate beside the one at equal length, and the length effect."""

    n: int
    raw: float
    win_rate: Interval | None  # None when not estimable (see ``reason``)
    slope: float | None  # φ: the logit change from Δ = 0 to a typical (1 σ) length gap
    slope_p: float | None
    reason: str | None = None


def _sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * x)), dtype=np.float64)


def fit_fractional_logit(
    y: npt.NDArray[np.float64], x: npt.NDArray[np.float64], iterations: int = 100
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    """Coefficients and HC0 covariance of logit E[y] = X β; None when no finite MLE exists."""
    beta = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = _sigmoid(x @ beta)
        w = p * (1 - p)
        hessian = x.T @ (x * w[:, None])
        try:
            step = np.linalg.solve(hessian, x.T @ (y - p))
        except np.linalg.LinAlgError:
            return None
        beta = beta + step
        if not np.all(np.isfinite(beta)) or np.max(np.abs(beta)) > 30:
            return None
        if np.max(np.abs(step)) < 1e-10:
            break
    else:
        return None
    p = _sigmoid(x @ beta)
    w = p * (1 - p)
    bread = np.linalg.inv(x.T @ (x * w[:, None]))
    resid = (y - p)[:, None] * x
    meat = resid.T @ resid
    return beta, bread @ meat @ bread


def length_controlled(
    outcomes: npt.ArrayLike, length_diff: npt.ArrayLike, confidence: float
) -> LengthControlled:
    """``outcomes`` per sample (1, ½, 0 for the candidate), ``length_diff`` candidate − base."""
    y = np.asarray(outcomes, dtype=np.float64)
    d = np.asarray(length_diff, dtype=np.float64)
    n = int(y.size)
    raw = float(y.mean()) if n else float("nan")
    if n < 3:
        return LengthControlled(n, raw, None, None, None, f"{n} judged sample(s): too few")
    if np.all(y == y[0]) and y[0] in (0.0, 1.0):
        return LengthControlled(
            n, raw, None, None, None, "one side won every sample: nothing to control for"
        )
    sd = float(d.std(ddof=1))
    has_length = sd > 0
    x = np.ones((n, 2 if has_length else 1))
    if has_length:
        x[:, 1] = np.tanh(d / sd)
    fit = fit_fractional_logit(y, x)
    if fit is None:
        return LengthControlled(
            n, raw, None, None, None,
            "the length difference decides (nearly) every verdict: no finite fit, so the "
            "win rate at equal length is not estimable; the judge rewards length",
        )  # fmt: skip
    beta, cov = fit
    z = norm_ppf(0.5 + confidence / 2)
    se = math.sqrt(max(float(cov[0, 0]), 0.0))
    lo, hi = beta[0] - z * se, beta[0] + z * se
    est, low, high = (float(v) for v in _sigmoid(np.array([beta[0], lo, hi])))
    slope = slope_p = None
    if has_length:
        slope = float(beta[1])
        se1 = math.sqrt(max(float(cov[1, 1]), 0.0))
        slope_p = math.erfc(abs(slope) / se1 / math.sqrt(2)) if se1 > 0 else 0.0
    return LengthControlled(
        n, raw, Interval(est, low, high, confidence, "fractional-logit-hc0"), slope, slope_p
    )

"""Vectorised paired bootstrap: percentile and BCa intervals from one shared index matrix.

Every draw comes from an explicit ``numpy.random.Generator``. Base and candidate are always
resampled with the *same* indices, so the interval is for the paired difference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np
import numpy.typing as npt

from heldout.errors import HeldoutError
from heldout.stats._intervals import Interval
from heldout.stats._special import norm_cdf, norm_ppf

__all__ = [
    "BootstrapMethod",
    "bca_interval",
    "bootstrap_distribution",
    "bootstrap_p_value",
    "iter_index_chunks",
    "jackknife_se",
    "jackknife_values",
]

BootstrapMethod = Literal["bca", "percentile"]
Statistic = Callable[[npt.NDArray[np.intp]], npt.NDArray[np.float64]]
_CHUNK_ELEMENTS = 2_000_000
#: Above this many samples the jackknife for BCa's acceleration is skipped for non-mean
#: statistics (it costs n evaluations of the statistic) and the percentile interval is used.
JACKKNIFE_MAX_N = 2_000


def iter_index_chunks(
    n: int, resamples: int, rng: np.random.Generator, rows: npt.NDArray[np.intp] | None = None
) -> Iterator[npt.NDArray[np.intp]]:
    """Yield (b, m) index matrices, b rows at a time, drawing ``m`` of ``rows`` (default all
    ``n``) with replacement; memory stays bounded whatever n and resamples are."""
    m = n if rows is None else rows.size
    per_chunk = max(1, _CHUNK_ELEMENTS // max(m, 1))
    done = 0
    while done < resamples:
        b = min(per_chunk, resamples - done)
        draw = rng.integers(0, m, size=(b, m))
        yield draw if rows is None else rows[draw]
        done += b


def bootstrap_distribution(
    statistic: Statistic,
    n: int,
    resamples: int,
    rng: np.random.Generator,
    rows: npt.NDArray[np.intp] | None = None,
) -> npt.NDArray[np.float64]:
    """Bootstrap replicates of ``statistic`` (which maps (b, m) indices → (b,) values)."""
    if resamples < 1:
        raise HeldoutError("resamples must be ≥ 1")
    parts = [statistic(chunk) for chunk in iter_index_chunks(n, resamples, rng, rows)]
    return np.concatenate(parts).astype(np.float64)


def jackknife_acceleration(statistic: Statistic, rows: npt.NDArray[np.intp]) -> float | None:
    """BCa acceleration from a leave-one-out jackknife; None when n is too large."""
    loo = jackknife_values(statistic, rows)
    return None if loo is None else acceleration_from_jackknife(loo)


def acceleration_from_jackknife(loo: npt.NDArray[np.float64]) -> float:
    """BCa acceleration a = Σd³ / (6 (Σd²)^1.5), d = mean(loo) − loo."""
    diff = loo.mean() - loo
    denom = 6.0 * float(np.sum(diff**2)) ** 1.5
    return float(np.sum(diff**3) / denom) if denom > 0 else 0.0


def mean_acceleration(values: npt.NDArray[np.float64]) -> float:
    """BCa acceleration of a mean, in closed form from the jackknife identity."""
    d = values - values.mean()
    denom = 6.0 * float(np.sum(d**2)) ** 1.5
    return float(np.sum(d**3) / denom) if denom > 0 else 0.0


def _share_below(replicates: npt.NDArray[np.float64], value: float) -> float:
    """Mid-rank share of replicates below ``value``: (#below + #equal / 2) / B, as
    ``scipy.stats.bootstrap`` computes BCa's bias correction (ties count half)."""
    below = float(np.count_nonzero(replicates < value))
    equal = float(np.count_nonzero(replicates == value))
    return (below + equal / 2) / replicates.size


def bca_interval(
    replicates: npt.NDArray[np.float64],
    observed: float,
    confidence: float,
    *,
    acceleration: float | None,
    method: BootstrapMethod = "bca",
) -> Interval:
    """Percentile or BCa interval from bootstrap replicates.

    BCa follows Efron (1987) exactly as ``scipy.stats.bootstrap(method="BCa")`` does, ties
    included: z0 = Φ⁻¹((#below + #equal/2) / B). When ``acceleration`` is None (jackknife too
    costly) the percentile interval is returned and says so in ``method``. When every
    replicate equals the estimate (scipy returns NaN) the interval is the point itself and
    ``method`` says ``bootstrap-degenerate``.
    """
    alpha = (1 - confidence) / 2
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return Interval(observed, float("nan"), float("nan"), confidence, "bootstrap-undefined")
    if bool(np.all(finite == finite[0])):
        v = float(finite[0])
        return Interval(observed, v, v, confidence, "bootstrap-degenerate")
    if method == "percentile" or acceleration is None:
        lo, hi = np.quantile(finite, [alpha, 1 - alpha])
        return Interval(observed, float(lo), float(hi), confidence, "bootstrap-percentile")
    z0 = norm_ppf(_share_below(finite, observed))
    if not np.isfinite(z0):  # the estimate lies outside every replicate: no bias correction
        lo, hi = np.quantile(finite, [alpha, 1 - alpha])
        return Interval(observed, float(lo), float(hi), confidence, "bootstrap-percentile")
    adj = [
        norm_cdf(z0 + (z0 + za) / (1 - acceleration * (z0 + za)))
        for za in (norm_ppf(alpha), norm_ppf(1 - alpha))
    ]
    lo, hi = np.quantile(finite, adj)
    return Interval(observed, float(lo), float(hi), confidence, "bootstrap-bca")


def bootstrap_p_value(
    replicates: npt.NDArray[np.float64],
    observed: float,
    *,
    acceleration: float | None,
    null: float = 0.0,
) -> float:
    """Two-sided p-value of ``null`` that inverts :func:`bca_interval` (percentile when
    ``acceleration`` is None): the largest 1 − confidence whose interval still holds ``null``.
    So the interval excludes ``null`` exactly when p < 1 − confidence."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0 or bool(np.all(finite == finite[0])):
        return 1.0 if finite.size == 0 or finite[0] == null else 0.0
    share_null = _share_below(finite, null)
    if share_null in (0.0, 1.0):
        return 1.0 / (finite.size + 1)
    z_null = norm_ppf(share_null)
    z0 = 0.0
    if acceleration is not None:
        z0 = norm_ppf(_share_below(finite, observed))
        if not np.isfinite(z0):
            z0, acceleration = 0.0, 0.0
    a = acceleration or 0.0
    w = z_null - z0
    za = w / (1 + a * w) - z0
    tail = norm_cdf(za)
    return max(min(1.0, 2 * min(tail, 1 - tail)), 1.0 / (finite.size + 1))


def jackknife_values(
    statistic: Statistic, rows: npt.NDArray[np.intp]
) -> npt.NDArray[np.float64] | None:
    """The statistic with each of ``rows`` left out in turn; None above JACKKNIFE_MAX_N."""
    m = rows.size
    if m > JACKKNIFE_MAX_N or m < 3:
        return None
    loo = np.empty(m, dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // m)
    for start in range(0, m, step):
        stop = min(m, start + step)
        block = np.ones((stop - start, m), dtype=bool)
        block[np.arange(stop - start), np.arange(start, stop)] = False
        idx = np.broadcast_to(rows, block.shape)[block].reshape(stop - start, m - 1)
        loo[start:stop] = statistic(idx)
    return loo


def jackknife_se(loo: npt.NDArray[np.float64]) -> float:
    """Jackknife standard error from leave-one-out values (Efron & Stein)."""
    m = loo.size
    return float(np.sqrt((m - 1) / m * np.sum((loo - loo.mean()) ** 2)))

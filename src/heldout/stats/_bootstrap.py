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

__all__ = ["BootstrapMethod", "bca_interval", "bootstrap_distribution", "iter_index_chunks"]

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
    m = rows.size
    if m > JACKKNIFE_MAX_N or m < 3:
        return None
    loo = np.empty(m, dtype=np.float64)
    keep = ~np.eye(m, dtype=bool)
    step = max(1, _CHUNK_ELEMENTS // m)
    for start in range(0, m, step):
        block = keep[start : start + step]
        idx = np.broadcast_to(rows, block.shape)[block].reshape(block.shape[0], m - 1)
        loo[start : start + step] = statistic(idx)
    diff = loo.mean() - loo
    denom = 6.0 * float(np.sum(diff**2)) ** 1.5
    return float(np.sum(diff**3) / denom) if denom > 0 else 0.0


def mean_acceleration(values: npt.NDArray[np.float64]) -> float:
    """BCa acceleration of a mean, in closed form from the jackknife identity."""
    d = values - values.mean()
    denom = 6.0 * float(np.sum(d**2)) ** 1.5
    return float(np.sum(d**3) / denom) if denom > 0 else 0.0


def bca_interval(
    replicates: npt.NDArray[np.float64],
    observed: float,
    confidence: float,
    *,
    acceleration: float | None,
    method: BootstrapMethod = "bca",
) -> Interval:
    """Percentile or BCa interval from bootstrap replicates.

    BCa follows Efron (1987) as ``scipy.stats.bootstrap`` does; when ``acceleration`` is None
    (jackknife too costly) the percentile interval is returned and says so in ``method``.
    """
    alpha = (1 - confidence) / 2
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return Interval(observed, float("nan"), float("nan"), confidence, "bootstrap-undefined")
    if method == "percentile" or acceleration is None:
        lo, hi = np.quantile(finite, [alpha, 1 - alpha])
        return Interval(observed, float(lo), float(hi), confidence, "bootstrap-percentile")
    share = float(np.mean(finite < observed))
    if share in (0.0, 1.0):  # degenerate (e.g. all replicates equal): fall back honestly
        lo, hi = np.quantile(finite, [alpha, 1 - alpha])
        return Interval(observed, float(lo), float(hi), confidence, "bootstrap-percentile")
    z0 = norm_ppf(share)
    adj = [
        norm_cdf(z0 + (z0 + za) / (1 - acceleration * (z0 + za)))
        for za in (norm_ppf(alpha), norm_ppf(1 - alpha))
    ]
    lo, hi = np.quantile(finite, adj)
    return Interval(observed, float(lo), float(hi), confidence, "bootstrap-bca")

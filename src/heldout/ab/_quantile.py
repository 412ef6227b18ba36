"""Latency quantiles (p50, p95, p99) of treatment vs control, with a unit bootstrap.

A user's requests are correlated (one slow network, one long conversation), so the bootstrap
resamples units, not requests: each replicate gives every unit a Poisson(1) weight (the
Poisson bootstrap) and recomputes the quantile of the pooled request latencies with those
weights. To make that fast on millions of requests, each unit's latencies are counted once
into a fine grid of bins around the quantile (edges at pooled quantiles, so each bin holds
about the same number of requests) and a replicate is one sparse product of its weights with
that unit × bin matrix; the quantile is interpolated inside its bin. The point estimate is
the exact quantile of the requests.

The bootstrap gives the fixed-horizon percentile interval and the variance of the estimate;
the always-valid interval is the confidence sequence with that variance.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import sparse

from heldout.ab._stats import Effect, Summary, sequential
from heldout.stats import Interval

__all__ = ["quantile_effect"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
GRID = 256


def _boot(
    lat: F64, unit: I64, n_units: int, edges: F64, q: float, reps: int, rng: np.random.Generator
) -> F64:
    """``reps`` bootstrap quantiles of one arm."""
    g = edges.size - 1
    bins = np.searchsorted(edges, lat, side="right")  # 0 below, 1..g inside, g+1 at/above top
    bins = np.minimum(bins, g + 1)
    h = sparse.csr_matrix(
        (np.ones(lat.size), (unit, bins)), shape=(n_units, g + 2), dtype=np.float64
    ).T.tocsr()  # bins × units
    out = np.empty(reps)
    chunk = max(1, min(reps, 20_000_000 // max(n_units, 1)))
    for start in range(0, reps, chunk):
        k = min(chunk, reps - start)
        w = rng.poisson(1.0, size=(n_units, k)).astype(np.float64)
        counts = np.asarray(h @ w).T  # k × bins
        cum = np.cumsum(counts, axis=1)
        total = cum[:, -1]
        target = q * total
        idx = np.array(
            [np.searchsorted(c, t, side="left") for c, t in zip(cum, target, strict=True)]
        )
        for j in range(k):
            i = int(idx[j])
            if total[j] == 0:
                out[start + j] = math.nan
            elif i == 0:
                out[start + j] = edges[0]
            elif i > g:
                out[start + j] = edges[-1]
            else:
                below = cum[j, i - 1]
                inside = counts[j, i]
                frac = (target[j] - below) / inside if inside > 0 else 0.5
                out[start + j] = edges[i - 1] + frac * (edges[i] - edges[i - 1])
    return out


def quantile_effect(
    control: tuple[F64, I64],
    treatment: tuple[F64, I64],
    q: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    tuning: float = 5000.0,
    reps: int = 400,
    seed: int = 0,
) -> Effect:
    """Treatment − control (or relative) of the ``q`` quantile of request latencies. Each arm
    is (latencies, unit index 0..U−1 per request)."""
    (lc, uc), (lt, ut) = control, treatment
    nc, nt = (int(u.max()) + 1 if u.size else 0 for u in (uc, ut))
    conf = 1 - alpha
    nan = math.nan
    if nc < 2 or nt < 2:
        none = Interval(nan, nan, nan, conf, "none")
        empty = Summary(nc, nan, nan, nan)
        return Effect(nan, relative, none, nan, none, nan, empty, Summary(nt, nan, nan, nan))
    qc, qt = float(np.quantile(lc, q)), float(np.quantile(lt, q))
    pooled = np.concatenate([lc, lt])
    w = min(0.5, max(0.02, 8 * math.sqrt(q * (1 - q) / (nc + nt))))
    probs = np.linspace(max(0.0, q - w), min(1.0, q + w), GRID + 1)
    edges = np.unique(np.quantile(pooled, probs))
    if edges.size < 2:
        edges = np.array([edges[0], edges[0] + 1e-9])
    rng = np.random.default_rng(seed)
    bc = _boot(lc, uc, nc, edges, q, reps, rng)
    bt = _boot(lt, ut, nt, edges, q, reps, rng)
    if relative:
        est = (qt - qc) / qc if qc else nan
        diff = (bt - bc) / bc
    else:
        est = qt - qc
        diff = bt - bc
    diff = diff[np.isfinite(diff)]
    var = float(diff.var(ddof=1)) if diff.size > 1 else 0.0
    lo, hi = (float(x) for x in np.quantile(diff, [alpha / 2, 1 - alpha / 2]))
    fixed = Interval(est, min(lo, est), max(hi, est), conf, "unit-bootstrap")
    se = math.sqrt(var)
    from scipy.stats import norm

    p = float(2 * norm.sf(abs(est) / se)) if se > 0 else (1.0 if est == 0 else 0.0)
    seq, p_seq = sequential(est, var, nc + nt, alpha=alpha, tuning=tuning)
    return Effect(
        est,
        relative,
        fixed,
        p,
        seq,
        p_seq,
        Summary(nc, qc, float(bc.var(ddof=1)), qc),
        Summary(nt, qt, float(bt.var(ddof=1)), qt),
    )

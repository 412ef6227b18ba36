"""Paired sign-flip permutation test for continuous per-sample scores."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

from heldout.errors import HeldoutError

__all__ = ["sign_flip_test"]

EXACT_MAX_N = 16


def sign_flip_test(
    diff: npt.NDArray[np.float64], resamples: int, rng: np.random.Generator
) -> float:
    """Two-sided p-value of mean(diff) = 0 under random sign flips of the paired differences.

    Exact (all 2^n flips) for n ≤ 16; otherwise Monte Carlo with ``resamples`` flips and the
    (1 + hits) / (1 + resamples) correction, so the p-value is never 0.
    """
    d = np.asarray(diff, dtype=np.float64)
    n = d.size
    if n == 0:
        raise HeldoutError("sign_flip_test needs at least one difference")
    observed = abs(d.mean())
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    if n <= EXACT_MAX_N:
        signs = np.array(list(itertools.product((-1.0, 1.0), repeat=n)))
        stats = np.abs(signs @ d / n)
        return float(np.mean(stats >= observed - tol))
    hits = 0
    per_chunk = max(1, 2_000_000 // n)
    done = 0
    while done < resamples:
        b = min(per_chunk, resamples - done)
        signs = rng.integers(0, 2, size=(b, n), dtype=np.int8) * 2 - 1
        hits += int(np.sum(np.abs(signs @ d / n) >= observed - tol))
        done += b
    return (1 + hits) / (1 + resamples)

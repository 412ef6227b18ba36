"""Paired bootstrap: 10,000 resamples of a 100,000-sample comparison, heldout vs scipy.

    .venv/bin/python benchmarks/bench_bootstrap.py [--n 100000] [--resamples 10000]

Binary per-sample scores (accuracy-like) use heldout's multinomial path; continuous scores the
chunked index path. scipy.stats.bootstrap(paired=True, method="percentile") is the peer, run
with a batch size that fits in memory. Both intervals are printed: they must agree to Monte
Carlo error.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats as sps

from heldout.stats import StatsOptions, bootstrap_mean_delta


def run(base: np.ndarray, cand: np.ndarray, resamples: int, label: str) -> None:  # type: ignore[type-arg]
    opts = StatsOptions(resamples=resamples, seed=0, bootstrap="percentile")
    t0 = time.perf_counter()
    ours = bootstrap_mean_delta(base, cand, opts)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = sps.bootstrap(
        (base, cand),
        lambda a, b, axis: np.mean(b - a, axis=axis),
        paired=True,
        n_resamples=resamples,
        batch=max(1, 20_000_000 // base.size),
        method="percentile",
        random_state=np.random.default_rng(1),
    ).confidence_interval
    t_ref = time.perf_counter() - t0
    print(f"{label}: n={base.size:,}, {resamples:,} resamples")
    print(f"  heldout: {t_ours:.3f} s  CI [{ours.low:+.5f}, {ours.high:+.5f}]")
    print(f"  scipy:   {t_ref:.3f} s  CI [{ref.low:+.5f}, {ref.high:+.5f}]")
    print(f"  speed-up: {t_ref / t_ours:.0f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--resamples", type=int, default=10_000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    base = (rng.random(args.n) < 0.70).astype(float)
    cand = np.where(rng.random(args.n) < 0.8, base, (rng.random(args.n) < 0.8).astype(float))
    run(base, cand, args.resamples, "binary")
    n_cont = min(args.n, 10_000)
    b = rng.beta(2, 3, n_cont)
    c = np.clip(b + rng.normal(0.02, 0.1, n_cont), 0, 1)
    run(b, c, args.resamples, "continuous")


if __name__ == "__main__":
    main()

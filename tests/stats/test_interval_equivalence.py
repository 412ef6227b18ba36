"""Every metric in the registry: the interval compare() gives at n = 2,000 equals the paired
index bootstrap's (the O(B·n) procedure it replaced) to Monte Carlo error.

The reference resamples sample indices, the same indices for base and candidate (paired),
10,000 times, recomputes the metric's aggregate on each resample from the metric's own
result (``MetricResult.resample``: a confusion-matrix or span-count sum, or the mean of
per-sample scores), and takes the 2.5th and 97.5th percentiles of the deltas.

Tolerance: each endpoint within 0.2 bootstrap standard errors of the reference. The Monte
Carlo standard deviation of a percentile endpoint at B = 10,000 is
sqrt(0.025 · 0.975 / B) / φ(1.96) ≈ 0.027 SE, so the tolerance is ~7 of them; at n = 2,000
the method differences (a t or score interval against percentiles) are a few hundredths of
an SE. An interval whose SE is 10% off moves each endpoint by ~0.2 SE; an unpaired one
(the last test) by more than a whole SE.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from heldout.metrics import MetricOptions, MetricResult, get_metric, metric_names
from heldout.stats import StatsOptions, bootstrap_distribution, compare

N = 2_000
B = 10_000
LABELS = ("positive", "negative", "neutral")
TYPES = ("PER", "LOC", "ORG")
WORDS = [f"w{i}" for i in range(50)]


def _classification(rng: np.random.Generator) -> tuple[list[str], list[str], list[str]]:
    t = rng.integers(0, 3, N)
    base = np.where(rng.random(N) < 0.72, t, (t + 1) % 3)
    cand = np.where(rng.random(N) < 0.78, t, (t + 2) % 3)
    return [LABELS[i] for i in t], [LABELS[i] for i in base], [LABELS[i] for i in cand]


def _extraction(rng: np.random.Generator) -> tuple[list[object], list[str], list[str]]:
    def spans(k: int) -> list[list[str]]:
        return [[TYPES[rng.integers(0, 3)], " ".join(rng.choice(WORDS, 2))] for _ in range(k)]

    targets = [spans(int(rng.integers(1, 4))) for _ in range(N)]
    preds = [
        [
            json.dumps([s for s in t if rng.random() < p] + spans(int(rng.integers(2))))
            for t in targets
        ]
        for p in (0.6, 0.7)
    ]
    return targets, preds[0], preds[1]


def _structured(rng: np.random.Generator) -> tuple[list[object], list[str], list[str]]:
    targets = [
        {f"f{k}": str(rng.choice(WORDS)) for k in range(int(rng.integers(1, 5)))} for _ in range(N)
    ]

    def answer(t: dict[str, str], p: float) -> str:
        out = {k: (v if rng.random() < p else "wrong") for k, v in t.items() if rng.random() < 0.9}
        if rng.random() < 0.2:
            out["extra"] = "x"
        return json.dumps(out)

    return targets, [answer(t, 0.7) for t in targets], [answer(t, 0.75) for t in targets]


def _mean_scores(spec_binary: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paired per-sample scores: correlated, as two models on the same prompts are."""
    if spec_binary:
        base = (rng.random(N) < 0.7).astype(float)
        flip = rng.random(N)
        cand = np.where(flip < 0.12, 1 - base, base)
        cand = np.where((flip > 0.9) & (base == 0), 1.0, cand)
        return base, cand
    latent = rng.beta(4, 3, N)
    base = np.clip(latent + rng.normal(0, 0.1, N), 0, 1)
    cand = np.clip(latent + 0.02 + rng.normal(0, 0.1, N), 0, 1)
    return base, cand


def _results(name: str, rng: np.random.Generator) -> tuple[MetricResult, MetricResult]:
    spec = get_metric(name)
    if spec.mean_of_samples:  # the interval is a function of the per-sample scores only
        base, cand = _mean_scores(spec.binary, rng)
        return (
            MetricResult(name, float(base.mean()), base),
            MetricResult(name, float(cand.mean()), cand),
        )
    shape = next(iter(spec.shapes))
    make = {"classification": _classification, "extraction": _extraction}.get(shape, _structured)
    targets, base_out, cand_out = make(rng)
    opts = MetricOptions(labels=LABELS) if shape == "classification" else MetricOptions()
    return spec(targets, base_out, options=opts), spec(targets, cand_out, options=opts)


@pytest.mark.slow
@pytest.mark.parametrize("name", metric_names())
def test_interval_equals_the_paired_index_bootstrap(name: str) -> None:
    spec = get_metric(name)
    rng = np.random.default_rng(sum(map(ord, name)))
    base, cand = _results(name, rng)
    got = compare(base, cand, spec, StatsOptions())
    deltas = bootstrap_distribution(
        lambda idx: cand.resample(idx) - base.resample(idx), N, B, np.random.default_rng(7)
    )
    lo, hi = np.percentile(deltas, [2.5, 97.5])
    se = float(deltas.std(ddof=1))
    assert se > 0
    assert got.delta.estimate == pytest.approx(cand.aggregate - base.aggregate, abs=1e-12)
    assert abs(got.delta.low - lo) <= 0.2 * se, (got.test, got.delta, lo, hi, se)
    assert abs(got.delta.high - hi) <= 0.2 * se, (got.test, got.delta, lo, hi, se)


def test_an_unpaired_interval_would_fail_the_tolerance() -> None:
    """The tolerance has teeth: a candidate that is the base with 10% of its errors fixed is
    strongly correlated with it; treating the F1 delta as two independent samples (the error
    pairing exists to avoid) misses the paired interval by far more than 0.2 SE."""
    spec = get_metric("macro_f1")
    rng = np.random.default_rng(3)
    targets, base_out, _ = _classification(rng)
    cand_out = [t if rng.random() < 0.1 else b for t, b in zip(targets, base_out, strict=True)]
    opts = MetricOptions(labels=LABELS)
    base, cand = spec(targets, base_out, options=opts), spec(targets, cand_out, options=opts)
    got = compare(base, cand, spec, StatsOptions())
    paired = bootstrap_distribution(
        lambda idx: cand.resample(idx) - base.resample(idx), N, B, np.random.default_rng(7)
    )
    r1 = np.random.default_rng(8)
    unpaired = bootstrap_distribution(
        lambda idx: cand.resample(idx) - base.resample(r1.integers(0, N, idx.shape)),
        N,
        B,
        np.random.default_rng(9),
    )
    se = float(paired.std(ddof=1))
    assert abs(got.delta.high - np.percentile(paired, 97.5)) <= 0.2 * se  # paired: within
    assert abs(np.percentile(unpaired, 97.5) - np.percentile(paired, 97.5)) > 1.0 * se

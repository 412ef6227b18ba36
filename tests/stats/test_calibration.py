"""Calibration metrics against direct loops and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from heldout.errors import HeldoutError
from heldout.stats import StatsOptions, brier_score, ece, ece_change, reliability


def _ece_loop(conf: np.ndarray, correct: np.ndarray, edges: np.ndarray) -> float:  # type: ignore[type-arg]
    total = 0.0
    for b in range(len(edges) - 1):
        lo, hi = edges[b], edges[b + 1]
        mask = (conf > lo) & (conf <= hi) if b > 0 else (conf >= lo) & (conf <= hi)
        if mask.any():
            total += mask.sum() / conf.size * abs(correct[mask].mean() - conf[mask].mean())
    return float(total)


def test_equal_width_ece_matches_loop() -> None:
    rng = np.random.default_rng(0)
    conf = rng.random(500)
    correct = (rng.random(500) < conf**1.5).astype(float)
    assert ece(conf, correct, bins=10) == pytest.approx(
        _ece_loop(conf, correct, np.linspace(0, 1, 11)), abs=1e-12
    )


def test_equal_mass_bins_hold_equal_counts() -> None:
    rng = np.random.default_rng(1)
    conf = rng.random(1000)
    correct = (rng.random(1000) < conf).astype(float)
    bins = reliability(conf, correct, bins=10, binning="mass")
    assert [b.count for b in bins] == [100] * 10
    edges = np.array([bins[0].low] + [b.high for b in bins])
    assert ece(conf, correct, bins=10, binning="mass") == pytest.approx(
        _ece_loop(conf, correct, edges), abs=1e-12
    )


def test_perfectly_calibrated_and_overconfident() -> None:
    conf = np.repeat([0.2, 0.5, 0.9], 100)
    correct = np.concatenate(
        [
            np.r_[np.ones(20), np.zeros(80)],
            np.r_[np.ones(50), np.zeros(50)],
            np.r_[np.ones(90), np.zeros(10)],
        ]
    )
    assert ece(conf, correct) == pytest.approx(0.0, abs=1e-12)
    assert ece(np.full(100, 0.99), np.r_[np.ones(60), np.zeros(40)]) == pytest.approx(0.39)


def test_brier_matches_sklearn_for_two_classes() -> None:
    rng = np.random.default_rng(2)
    p1 = rng.random(200)
    y = (rng.random(200) < p1).astype(int)
    probs = np.stack([1 - p1, p1], axis=1)
    assert brier_score(probs, y) == pytest.approx(2 * brier_score_loss(y, p1), abs=1e-12)


def test_ece_change_interval() -> None:
    rng = np.random.default_rng(3)
    n = 400
    base_conf = rng.random(n)
    base_ok = (rng.random(n) < base_conf).astype(float)
    cand_conf = np.full(n, 0.95)
    cand_ok = (rng.random(n) < 0.7).astype(float)
    change = ece_change(base_conf, base_ok, cand_conf, cand_ok, StatsOptions(resamples=2000))
    assert change.estimate == pytest.approx(
        ece(cand_conf, cand_ok) - ece(base_conf, base_ok), abs=1e-12
    )
    assert change.low > 0.1  # the overconfident candidate is clearly worse calibrated


def test_bad_inputs() -> None:
    with pytest.raises(HeldoutError, match="probabilities in"):
        ece([1.2], [1])
    with pytest.raises(HeldoutError, match="correctness must be 0 or 1"):
        ece([0.5], [0.5])
    with pytest.raises(HeldoutError, match="must sum to 1"):
        brier_score([[0.5, 0.6]], [0])


@pytest.mark.parametrize(("binning", "strategy"), [("width", "uniform"), ("mass", "quantile")])
def test_reliability_matches_sklearn_calibration_curve(binning: str, strategy: str) -> None:
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(5)
    conf = rng.beta(5, 2, 800)
    correct = (rng.random(800) < conf**1.3).astype(float)
    ours = [b for b in reliability(conf, correct, bins=12, binning=binning) if b.count]  # type: ignore[arg-type]
    prob_true, prob_pred = calibration_curve(correct, conf, n_bins=12, strategy=strategy)
    assert [b.accuracy for b in ours] == pytest.approx(list(prob_true), abs=1e-12)
    assert [b.confidence for b in ours] == pytest.approx(list(prob_pred), abs=1e-12)


def test_binary_brier_and_its_paired_change_match_sklearn() -> None:
    from heldout.stats import binary_brier, calibration_change

    rng = np.random.default_rng(6)
    bc, cc = rng.random(400), rng.random(400)
    by = (rng.random(400) < bc).astype(float)
    cy = (rng.random(400) < cc**2).astype(float)
    assert binary_brier(bc, by) == pytest.approx(brier_score_loss(by, bc), abs=1e-15)
    change = calibration_change("brier", bc, by, cc, cy, StatsOptions(resamples=2000))
    assert change.estimate == pytest.approx(brier_score_loss(cy, cc) - brier_score_loss(by, bc))
    assert change.low < change.estimate < change.high
    ece_delta = calibration_change("ece", bc, by, cc, cy, StatsOptions(), bins=10)
    assert ece_delta.estimate == pytest.approx(ece(cc, cy, bins=10) - ece(bc, by, bins=10))
    with pytest.raises(HeldoutError, match="unknown calibration measure"):
        calibration_change("mce", bc, by, cc, cy, StatsOptions())  # type: ignore[arg-type]

"""Calibration: expected calibration error (equal-width or equal-mass bins), Brier score and
reliability-diagram data, from label probabilities or verbalised confidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from heldout.errors import HeldoutError
from heldout.stats._bootstrap import bca_interval, bootstrap_distribution
from heldout.stats._compare import StatsOptions
from heldout.stats._intervals import Interval

__all__ = [
    "Binning",
    "CalibrationMeasure",
    "ReliabilityBin",
    "binary_brier",
    "brier_score",
    "calibration_change",
    "ece",
    "ece_change",
    "reliability",
]

Binning = Literal["width", "mass"]
CalibrationMeasure = Literal["ece", "brier"]


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    """One bin of a reliability diagram."""

    low: float
    high: float
    count: int
    confidence: float | None
    accuracy: float | None


F64 = npt.NDArray[np.float64]


def _validate(conf: npt.ArrayLike, correct: npt.ArrayLike) -> tuple[F64, F64]:
    c = np.asarray(conf, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    if c.ndim != 1 or c.shape != y.shape:
        raise HeldoutError("confidences and correctness must be 1-D and of equal length")
    if c.size == 0:
        raise HeldoutError("calibration needs at least one sample")
    if np.any(~np.isfinite(c)) or np.any((c < 0) | (c > 1)):
        raise HeldoutError("confidences must be probabilities in [0, 1]")
    if np.any((y != 0) & (y != 1)):
        raise HeldoutError("correctness must be 0 or 1")
    return c, y


def bin_edges(
    conf: npt.NDArray[np.float64], bins: int, binning: Binning
) -> npt.NDArray[np.float64]:
    """Bin edges: equal width on [0, 1], or quantiles of ``conf`` (equal mass)."""
    if bins < 1:
        raise HeldoutError("bins must be ≥ 1")
    if binning == "width":
        return np.linspace(0.0, 1.0, bins + 1)
    if binning == "mass":
        edges = np.quantile(conf, np.linspace(0.0, 1.0, bins + 1))
        edges[0], edges[-1] = 0.0, 1.0
        return np.asarray(edges, dtype=np.float64)
    raise HeldoutError(f"unknown binning {binning!r}; known: width, mass")


def _assign(conf: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    # Bins are (low, high], the first also holding 0: the convention of most ECE code.
    return np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, edges.size - 2)


def ece(
    confidences: npt.ArrayLike,
    correct: npt.ArrayLike,
    *,
    bins: int = 15,
    binning: Binning = "width",
) -> float:
    """Expected calibration error: Σ_b (n_b / n) · |accuracy_b − confidence_b|."""
    c, y = _validate(confidences, correct)
    which = _assign(c, bin_edges(c, bins, binning))
    k = bins
    n_b = np.bincount(which, minlength=k)
    gap = np.abs(
        np.bincount(which, weights=y, minlength=k) - np.bincount(which, weights=c, minlength=k)
    )
    return float(gap.sum() / c.size) if n_b.sum() else 0.0


def reliability(
    confidences: npt.ArrayLike,
    correct: npt.ArrayLike,
    *,
    bins: int = 15,
    binning: Binning = "width",
) -> list[ReliabilityBin]:
    """Per-bin count, mean confidence and accuracy (None for empty bins)."""
    c, y = _validate(confidences, correct)
    edges = bin_edges(c, bins, binning)
    which = _assign(c, edges)
    out = []
    for b in range(bins):
        mask = which == b
        cnt = int(mask.sum())
        out.append(
            ReliabilityBin(
                float(edges[b]),
                float(edges[b + 1]),
                cnt,
                float(c[mask].mean()) if cnt else None,
                float(y[mask].mean()) if cnt else None,
            )
        )
    return out


def brier_score(probabilities: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Multi-class Brier score: mean over samples of Σ_k (p_k − 1[y = k])².

    ``probabilities`` is (n, k) with rows summing to 1; ``labels`` holds class indices.
    For two classes this is twice scikit-learn's ``brier_score_loss`` of the positive class.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise HeldoutError("probabilities must be (n, k) and labels (n,)")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise HeldoutError("each row of probabilities must sum to 1")
    if np.any((y < 0) | (y >= p.shape[1])):
        raise HeldoutError("labels must be class indices in [0, k)")
    onehot = np.zeros_like(p)
    onehot[np.arange(p.shape[0]), y.astype(np.intp)] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def binary_brier(confidences: npt.ArrayLike, correct: npt.ArrayLike) -> float:
    """Brier score of the confidence in the answer given: mean((confidence − correct)²), as
    ``sklearn.metrics.brier_score_loss(correct, confidence)``. It needs only the confidence
    of the model's own answer, so it applies to every source (label probabilities, a file's
    ``confidence`` column, verbalised confidence)."""
    c, y = _validate(confidences, correct)
    return float(np.mean((c - y) ** 2))


def _validate_pair(
    base_conf: npt.ArrayLike,
    base_correct: npt.ArrayLike,
    cand_conf: npt.ArrayLike,
    cand_correct: npt.ArrayLike,
) -> tuple[F64, F64, F64, F64]:
    bc, by = _validate(base_conf, base_correct)
    cc, cy = _validate(cand_conf, cand_correct)
    if bc.size != cc.size:
        raise HeldoutError("base and candidate calibration data must be paired (same length)")
    return bc, by, cc, cy


def calibration_change(
    measure: CalibrationMeasure,
    base_conf: npt.ArrayLike,
    base_correct: npt.ArrayLike,
    cand_conf: npt.ArrayLike,
    cand_correct: npt.ArrayLike,
    options: StatsOptions,
    *,
    bins: int = 15,
    binning: Binning = "width",
) -> Interval:
    """measure(candidate) − measure(base), paired bootstrap percentile interval; ``measure``
    is ``ece`` (with ``bins`` and ``binning``) or ``brier`` (:func:`binary_brier`)."""
    if measure == "ece":
        return ece_change(
            base_conf, base_correct, cand_conf, cand_correct, options, bins=bins, binning=binning
        )
    if measure != "brier":
        raise HeldoutError(f"unknown calibration measure {measure!r}; known: ece, brier")
    bc, by, cc, cy = _validate_pair(base_conf, base_correct, cand_conf, cand_correct)
    diff = (cc - cy) ** 2 - (bc - by) ** 2

    def stat(idx: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        return np.asarray(diff[idx].mean(axis=1), dtype=np.float64)

    reps = bootstrap_distribution(stat, diff.size, options.resamples, options.rng())
    return bca_interval(reps, float(diff.mean()), options.confidence, acceleration=None)


def ece_change(
    base_conf: npt.ArrayLike,
    base_correct: npt.ArrayLike,
    cand_conf: npt.ArrayLike,
    cand_correct: npt.ArrayLike,
    options: StatsOptions,
    *,
    bins: int = 15,
    binning: Binning = "width",
) -> Interval:
    """ECE(candidate) − ECE(base) with a paired bootstrap percentile interval.

    Bin edges are fixed from the full data (equal-mass edges would otherwise move with every
    resample); each resample recomputes both ECEs on the same drawn samples.
    """
    bc, by, cc, cy = _validate_pair(base_conf, base_correct, cand_conf, cand_correct)
    n = bc.size
    wb = _assign(bc, bin_edges(bc, bins, binning))
    wc = _assign(cc, bin_edges(cc, bins, binning))

    def ece_rows(which: npt.NDArray[np.intp], c: F64, y: F64, idx: npt.NDArray[np.intp]) -> F64:
        b = idx.shape[0]
        flat = (np.arange(b)[:, None] * bins + which[idx]).ravel()
        acc = np.bincount(flat, weights=y[idx].ravel(), minlength=b * bins).reshape(b, bins)
        conf = np.bincount(flat, weights=c[idx].ravel(), minlength=b * bins).reshape(b, bins)
        return np.asarray(np.abs(acc - conf).sum(axis=1) / idx.shape[1], dtype=np.float64)

    def stat(idx: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        return np.asarray(ece_rows(wc, cc, cy, idx) - ece_rows(wb, bc, by, idx))

    full = np.arange(n)[None, :]
    observed = float(stat(full)[0])
    reps = bootstrap_distribution(stat, n, options.resamples, options.rng())
    return bca_interval(reps, observed, options.confidence, acceleration=None)

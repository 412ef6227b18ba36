"""Per-slice comparisons and the reference ceiling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from heldout.errors import HeldoutError
from heldout.metrics import MetricResult, MetricSpec
from heldout.stats._bootstrap import bca_interval, bootstrap_distribution
from heldout.stats._compare import Comparison, StatsOptions, compare
from heldout.stats._intervals import Interval

__all__ = ["Ceiling", "SliceComparison", "compare_slices", "reference_ceiling"]


@dataclass(frozen=True, slots=True)
class SliceComparison:
    """Candidate vs base on the samples whose metadata ``field`` equals ``value``."""

    field: str
    value: str
    comparison: Comparison
    tiny: bool


def compare_slices(
    metadata: Sequence[Mapping[str, Any]],
    fields: Sequence[str],
    base: MetricResult,
    cand: MetricResult,
    spec: MetricSpec,
    options: StatsOptions,
    *,
    min_size: int = 20,
) -> list[SliceComparison]:
    """Paired comparison per slice value, worst first (by improvement); slices smaller than
    ``min_size`` are flagged ``tiny`` (reported, not gated)."""
    if len(metadata) != base.per_sample.size:
        raise HeldoutError("metadata and results must describe the same samples")
    out = []
    for name in fields:
        groups: dict[str, list[int]] = {}
        for i, meta in enumerate(metadata):
            if name not in meta:
                raise HeldoutError(f"slice field {name!r} is missing in sample {i}")
            groups.setdefault(str(meta[name]), []).append(i)
        for value, rows in sorted(groups.items()):
            idx = np.asarray(rows, dtype=np.intp)
            c = compare(base, cand, spec, options, rows=idx)
            out.append(SliceComparison(name, value, c, idx.size < min_size))
    return sorted(out, key=lambda s: (s.comparison.improvement.estimate, s.field, s.value))


@dataclass(frozen=True, slots=True)
class Ceiling:
    """Where the candidate sits between base and a reference (ceiling) model."""

    share_of_reference: Interval  # candidate / reference
    gap_closed: Interval  # (candidate − base) / (reference − base)
    gap_is_real: bool  # the reference is really better than the base


def reference_ceiling(
    base: MetricResult,
    cand: MetricResult,
    ref: MetricResult,
    spec: MetricSpec,
    options: StatsOptions,
) -> Ceiling:
    """Candidate as a share of the reference, and the share of the base→reference gap it
    closes, with paired bootstrap intervals (all three resampled on the same indices)."""
    n = base.per_sample.size
    if not cand.per_sample.size == ref.per_sample.size == n:
        raise HeldoutError("base, candidate and reference must be aligned on the same samples")
    rng = options.rng()
    collected: list[npt.NDArray[np.float64]] = []

    def stat(idx: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        b, c, r = base.resample(idx), cand.resample(idx), ref.resample(idx)
        collected.append(np.stack([b, c, r], axis=1))
        return c

    bootstrap_distribution(stat, n, options.resamples, rng)
    reps = np.concatenate(collected)
    b0, c0, r0 = base.aggregate, cand.aggregate, ref.aggregate
    with np.errstate(divide="ignore", invalid="ignore"):
        share = reps[:, 1] / reps[:, 2]
        gap = (reps[:, 1] - reps[:, 0]) / (reps[:, 2] - reps[:, 0])
    ref_gain = compare(base, ref, spec, options)
    share_obs = c0 / r0 if r0 else float("nan")
    gap_obs = (c0 - b0) / (r0 - b0) if r0 != b0 else float("nan")
    return Ceiling(
        share_of_reference=bca_interval(share, share_obs, options.confidence, acceleration=None),
        gap_closed=bca_interval(gap, gap_obs, options.confidence, acceleration=None),
        gap_is_real=ref_gain.real_gain,
    )

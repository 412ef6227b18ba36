"""Production A/B: stable-key assignment and the statistics that decide ramp, hold or roll
back (per-unit metrics, always-valid confidence sequences, delta-method ratios, CUPED, SRM).

This is the first part of DESIGN.md step 8; the routing proxy, the event store, the
experiment plan and the analysis command build on it.
"""

from heldout.ab._assign import BUCKETS, Arm, assign, bucket
from heldout.ab._stats import (
    Effect,
    Summary,
    cuped,
    effect,
    mean_summary,
    proportion_summary,
    ratio_summary,
    srm_p_value,
)

__all__ = [
    "BUCKETS",
    "Arm",
    "Effect",
    "Summary",
    "assign",
    "bucket",
    "cuped",
    "effect",
    "mean_summary",
    "proportion_summary",
    "ratio_summary",
    "srm_p_value",
]

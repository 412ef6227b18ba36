"""Production A/B: stable-key assignment and the statistics that decide ramp, hold or roll
back (per-unit metrics, always-valid confidence sequences, delta-method ratios, CUPED, SRM).

DESIGN.md step 8: ``ab.yaml`` (the pre-registered experiment, locked), ``assign``, the routing
proxy (``heldout ab serve``) and its event store, ``analyze_experiment`` (``heldout ab
analyze``) and the decision, ``ramp`` and ``rollback``.
"""

from heldout.ab._analyze import Analysis, Decision, MetricResult, StageResult
from heldout.ab._api import analyze_experiment, assign, live_share, ramp, rollback
from heldout.ab._assign import BUCKETS, Arm, bucket
from heldout.ab._plan import Experiment, LoadedExperiment, load_experiment, write_ab_lock
from heldout.ab._quantile import quantile_effect
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
    "Analysis",
    "Arm",
    "Decision",
    "Effect",
    "Experiment",
    "LoadedExperiment",
    "MetricResult",
    "StageResult",
    "Summary",
    "analyze_experiment",
    "assign",
    "bucket",
    "cuped",
    "effect",
    "live_share",
    "load_experiment",
    "mean_summary",
    "proportion_summary",
    "quantile_effect",
    "ramp",
    "ratio_summary",
    "rollback",
    "srm_p_value",
    "write_ab_lock",
]

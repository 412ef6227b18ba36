"""Paired statistics: intervals, tests, bootstrap, power and calibration.

Every random draw takes its seed from :class:`StatsOptions` (recorded with results).
"""

from heldout.stats._bootstrap import bca_interval, bootstrap_distribution
from heldout.stats._calibration import (
    ReliabilityBin,
    binary_brier,
    brier_score,
    calibration_change,
    ece,
    ece_change,
    reliability,
)
from heldout.stats._compare import (
    Comparison,
    StatsOptions,
    align_ids,
    bootstrap_mean_delta,
    compare,
    score_interval,
)
from heldout.stats._intervals import (
    Interval,
    McNemar,
    holm,
    mcnemar_exact,
    paired_proportion_interval,
    paired_t_interval,
    wilson_interval,
)
from heldout.stats._permutation import sign_flip_test
from heldout.stats._power import (
    PowerAssessment,
    PowerResult,
    assess_power,
    detectable_lift,
    paired_t_power,
    paired_t_samples_needed,
    power_of,
    samples_needed,
)
from heldout.stats._slices import Ceiling, SliceComparison, compare_slices, reference_ceiling

__all__ = [
    "Ceiling",
    "Comparison",
    "Interval",
    "McNemar",
    "PowerAssessment",
    "PowerResult",
    "ReliabilityBin",
    "SliceComparison",
    "StatsOptions",
    "align_ids",
    "assess_power",
    "bca_interval",
    "binary_brier",
    "bootstrap_distribution",
    "bootstrap_mean_delta",
    "brier_score",
    "calibration_change",
    "compare",
    "compare_slices",
    "detectable_lift",
    "ece",
    "ece_change",
    "holm",
    "mcnemar_exact",
    "paired_proportion_interval",
    "paired_t_interval",
    "paired_t_power",
    "paired_t_samples_needed",
    "power_of",
    "reference_ceiling",
    "reliability",
    "samples_needed",
    "score_interval",
    "sign_flip_test",
    "wilson_interval",
]

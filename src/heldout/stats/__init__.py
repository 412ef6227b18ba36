"""Paired statistics: intervals, tests, bootstrap, power and calibration.

Every random draw takes its seed from :class:`StatsOptions` (recorded with results).
"""

from heldout.stats._bootstrap import bca_interval, bootstrap_distribution
from heldout.stats._calibration import (
    ReliabilityBin,
    brier_score,
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
from heldout.stats._power import PowerResult, detectable_lift, power_of, samples_needed
from heldout.stats._slices import Ceiling, SliceComparison, compare_slices, reference_ceiling

__all__ = [
    "Ceiling",
    "Comparison",
    "Interval",
    "McNemar",
    "PowerResult",
    "ReliabilityBin",
    "SliceComparison",
    "StatsOptions",
    "align_ids",
    "bca_interval",
    "bootstrap_distribution",
    "bootstrap_mean_delta",
    "brier_score",
    "compare",
    "compare_slices",
    "detectable_lift",
    "ece",
    "ece_change",
    "holm",
    "mcnemar_exact",
    "paired_proportion_interval",
    "paired_t_interval",
    "power_of",
    "reference_ceiling",
    "reliability",
    "samples_needed",
    "score_interval",
    "sign_flip_test",
    "wilson_interval",
]

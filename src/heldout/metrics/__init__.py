"""Metrics for every task shape, in one typed registry."""

from heldout.metrics._registry import (
    MetricFn,
    MetricOptions,
    MetricResult,
    MetricSpec,
    SufficientStats,
    get_metric,
    metric,
    metric_families,
    metric_family,
    metric_names,
)

__all__ = [
    "MetricFn",
    "MetricOptions",
    "MetricResult",
    "MetricSpec",
    "SufficientStats",
    "get_metric",
    "metric",
    "metric_families",
    "metric_family",
    "metric_names",
]

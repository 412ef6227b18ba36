"""heldout: decide, with evidence, whether a fine-tuned LLM is better than its base model.

The public API is what ``__all__`` lists. ``import heldout`` stays light: no torch,
transformers or model SDKs are imported until a backend needs them.
"""

from heldout._version import __version__
from heldout.backends import Generation, MockBackend, Request
from heldout.data import FieldMap, LeakOptions, Sample, find_leaks, load_samples
from heldout.errors import (
    DataError,
    HeldoutError,
    LockError,
    MetricInputError,
    MissingDependencyError,
    PlanChangedError,
    PlanError,
    Problem,
    TemplateError,
    UnknownNameError,
)
from heldout.metrics import MetricOptions, MetricResult, get_metric, metric, metric_names
from heldout.plan import LoadedPlan, Plan, check_lock, load_plan, plan_from_object, write_lock
from heldout.results import RunResult
from heldout.runner import ProgressEvent, Run, evaluate, evaluate_async

__all__ = [
    "DataError",
    "FieldMap",
    "Generation",
    "HeldoutError",
    "LeakOptions",
    "LoadedPlan",
    "LockError",
    "MetricInputError",
    "MetricOptions",
    "MetricResult",
    "MissingDependencyError",
    "MockBackend",
    "Plan",
    "PlanChangedError",
    "PlanError",
    "Problem",
    "ProgressEvent",
    "Request",
    "Run",
    "RunResult",
    "Sample",
    "TemplateError",
    "UnknownNameError",
    "__version__",
    "check_lock",
    "evaluate",
    "evaluate_async",
    "find_leaks",
    "get_metric",
    "load_plan",
    "load_samples",
    "metric",
    "metric_names",
    "plan_from_object",
    "write_lock",
]

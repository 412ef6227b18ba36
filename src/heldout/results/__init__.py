"""Versioned run results (``results.json``) and per-sample generations."""

from heldout.results._compare_runs import compare_runs
from heldout.results._model import (
    SCHEMA_VERSION,
    CeilingRecord,
    ComparisonRecord,
    DatasetRecord,
    GatePartRecord,
    GateRecord,
    IntervalRecord,
    ModelRecord,
    OverfittingRecord,
    RunResult,
    SliceRecord,
    SmokeRecord,
    VerdictRecord,
)

__all__ = [
    "SCHEMA_VERSION",
    "CeilingRecord",
    "ComparisonRecord",
    "DatasetRecord",
    "GatePartRecord",
    "GateRecord",
    "IntervalRecord",
    "ModelRecord",
    "OverfittingRecord",
    "RunResult",
    "SliceRecord",
    "SmokeRecord",
    "VerdictRecord",
    "compare_runs",
    "result_json_schema",
]


def result_json_schema() -> dict[str, object]:
    """JSON Schema of ``results.json``."""
    return RunResult.model_json_schema()

"""Executes a plan in typed stages: datasets → generations → scores → comparisons → gates →
decision → run result (``_stages`` names the values, ``_pipeline`` the stages); ``evaluate``
runs them all and is what ``heldout run`` calls."""

from heldout.runner._evaluate import Run, evaluate, evaluate_async
from heldout.runner._gates import gate_all
from heldout.runner._generate import GenerationSink, generate_async
from heldout.runner._pipeline import (
    ProgressEvent,
    compare_all,
    decide_run,
    generate_all,
    load_datasets,
    make_backends,
    score_all,
    stats_options,
)
from heldout.runner._result import build_result
from heldout.runner._stages import (
    Comparisons,
    DatasetComparison,
    Datasets,
    Decision,
    Gates,
    Generations,
    Scores,
    Smoke,
)

__all__ = [
    "Comparisons",
    "DatasetComparison",
    "Datasets",
    "Decision",
    "Gates",
    "GenerationSink",
    "Generations",
    "ProgressEvent",
    "Run",
    "Scores",
    "Smoke",
    "build_result",
    "compare_all",
    "decide_run",
    "evaluate",
    "evaluate_async",
    "gate_all",
    "generate_all",
    "generate_async",
    "load_datasets",
    "make_backends",
    "score_all",
    "stats_options",
]

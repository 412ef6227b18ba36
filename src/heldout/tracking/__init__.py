"""Experiment tracking: after a run is written, each hook logs it somewhere else (MLflow).

A hook is anything with ``name`` and ``log(run) -> dict``: the dict (where it went: ids,
URLs) is stored under ``tracking`` in results.json. A failing hook costs a warning, never
the run. W&B or any other tracker is one more class; the runner does not change.
"""

from heldout.tracking._hooks import RunHook, hooks_for
from heldout.tracking._mlflow import MlflowHook

__all__ = ["MlflowHook", "RunHook", "hooks_for"]

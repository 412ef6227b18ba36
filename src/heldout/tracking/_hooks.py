"""The hook interface and the hooks a plan (or the CLI) asks for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from heldout.plan import MlflowSpec, Plan

if TYPE_CHECKING:
    from heldout.runner import Run

__all__ = ["RunHook", "hooks_for"]


class RunHook(Protocol):
    """Logs a finished run somewhere; returns where (stored in results.json)."""

    name: str

    def log(self, run: Run) -> dict[str, Any]: ...


def hooks_for(plan: Plan, *, mlflow: bool = False) -> list[RunHook]:
    """The plan's trackers; ``mlflow`` (``heldout run --mlflow``) adds MLflow with the
    plan's settings or the defaults."""
    from heldout.tracking._mlflow import MlflowHook

    spec = plan.tracking.mlflow if plan.tracking is not None else None
    if spec is None and mlflow:
        spec = MlflowSpec()
    return [MlflowHook(spec, default_experiment=plan.name)] if spec is not None else []

"""Log a run to MLflow: the plan as params, every comparison as metrics, the verdict and the
lock's hashes as tags, results.json and the reports as artifacts."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from heldout.errors import MissingDependencyError
from heldout.plan import MlflowSpec

if TYPE_CHECKING:
    from heldout.runner import Run

__all__ = ["MlflowHook", "run_metrics", "run_params"]

_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")


def _key(text: str) -> str:
    """An MLflow key (letters, digits, _ - . space /): 'suite:general' → 'suite_general'."""
    return _KEY.sub("_", text)


def run_params(run: Run) -> dict[str, str]:
    r = run.result
    params = {
        "plan": r.plan_name,
        "primary_metric": r.primary_metric,
        "baseline": repr(r.baseline),
        "success_threshold": repr(r.success_threshold),
        "confidence": repr(r.stats.get("confidence")),
        "resamples": repr(r.stats.get("resamples")),
        "seed": repr(r.stats.get("seed")),
        "heldout_version": r.heldout_version,
    }
    for m in r.models:
        ident = m.identity
        what = ident.get("model") or ident.get("path") or ident.get("name") or ident["backend"]
        params[f"model.{m.role}"] = f"{ident['backend']}: {what}"[:500]
        if ident.get("adapter"):
            params[f"model.{m.role}.adapter"] = str(ident["adapter"])[:500]
    for d in r.datasets:
        params[f"dataset.{_key(d.name)}.n"] = str(d.n)
    return params


def run_metrics(run: Run) -> dict[str, float]:
    """base, candidate, delta and its interval of every comparison; gates' changes."""
    out: dict[str, float] = {}
    for c in run.result.comparisons:
        prefix = _key(
            f"{c.dataset}/{c.metric}" + ("" if c.against == "candidate" else "/reference")
        )
        for name, value in (
            ("base", c.base.estimate),
            ("candidate" if c.against == "candidate" else "reference", c.other.estimate),
            ("delta", c.delta.estimate),
            ("delta_low", c.delta.low),
            ("delta_high", c.delta.high),
        ):
            if value is not None and math.isfinite(value):
                out[f"{prefix}/{name}"] = float(value)
    for g in run.result.gates:
        if g.change.estimate is not None:
            out[_key(f"gate/{g.name}/change")] = float(g.change.estimate)
    return out


class MlflowHook:
    """One MLflow run per heldout run, in the plan's experiment."""

    name = "mlflow"

    def __init__(self, spec: MlflowSpec, *, default_experiment: str) -> None:
        self.spec = spec
        self.experiment = spec.experiment or default_experiment

    def log(self, run: Run) -> dict[str, Any]:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise MissingDependencyError("mlflow", "mlflow") from None
        client = MlflowClient(tracking_uri=self.spec.tracking_uri)
        found = client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(self.experiment)
        r = run.result
        tags = {
            "heldout.verdict": r.verdict.status,
            "heldout.exit_code": str(r.verdict.exit_code),
            "heldout.run_id": r.run_id,
            "heldout.plan_sha256": r.plan_sha256,
            "heldout.locked": str(bool(r.lock.get("locked"))),
            "heldout.smoke": str(r.smoke is not None),
        }
        for d in r.datasets:
            tags[f"heldout.sha256.{_key(d.name)}"] = d.sha256
        if r.git_revision:
            tags["mlflow.source.git.commit"] = r.git_revision
        created = client.create_run(experiment_id, run_name=r.run_id, tags=tags)
        run_id = created.info.run_id
        try:
            from mlflow.entities import Metric, Param

            stamp = int(created.info.start_time or 0)
            client.log_batch(
                run_id,
                metrics=[Metric(k, v, stamp, 0) for k, v in run_metrics(run).items()],
                params=[Param(k, v) for k, v in run_params(run).items()],
            )
            for path in [run.folder / "results.json", *run.reports.values()]:
                if path.is_file():
                    client.log_artifact(run_id, str(path))
        except BaseException:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id)
        return {
            "tracking_uri": client.tracking_uri,
            "experiment_id": experiment_id,
            "run_id": run_id,
        }

"""Runs logged to MLflow (a real local file store, read back with MlflowClient), and the
hook interface other trackers use."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import heldout
from heldout.plan import check_lock, load_plan, write_lock

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

HELDOUT = shutil.which("heldout", path=str(Path(sys.executable).parent))


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    # MLflow 3 keeps its file store only on request; a database store works the same way
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return (tmp_path / "mlruns").as_uri()


def _with_tracking(project: Path, uri: str) -> None:
    plan = project / "heldout.yaml"
    plan.write_text(
        plan.read_text()
        + f"tracking: {{mlflow: {{tracking_uri: '{uri}', experiment: sentiment}}}}\n"
    )


def test_a_run_logged_to_mlflow_reads_back(project: Path, store: str) -> None:
    write_lock(load_plan(project / "heldout.yaml"))
    _with_tracking(project, store)
    assert check_lock(load_plan(project / "heldout.yaml")).matches  # tracking is not locked
    run = heldout.evaluate(project / "heldout.yaml", out=project / "run")
    where = run.result.tracking["mlflow"]  # type: ignore[index]
    stored = json.loads((run.folder / "results.json").read_text())
    assert stored["tracking"]["mlflow"]["run_id"] == where["run_id"]
    client = MlflowClient(tracking_uri=store)
    logged = client.get_run(where["run_id"])
    assert client.get_experiment(logged.info.experiment_id).name == "sentiment"
    assert logged.info.status == "FINISHED"
    assert logged.data.params["primary_metric"] == "accuracy"
    assert logged.data.params["baseline"] == "0.72"
    assert logged.data.params["model.base"].startswith("file: ")
    tags = logged.data.tags
    assert tags["heldout.verdict"] == run.status == "inconclusive"
    assert tags["heldout.plan_sha256"] == run.result.plan_sha256
    assert tags["heldout.locked"] == "True"
    assert tags["heldout.sha256.gold"] == run.result.datasets[0].sha256
    metrics = logged.data.metrics
    for c in run.result.comparisons:
        prefix = f"{c.dataset}/{c.metric}".replace(":", "_")
        assert metrics[f"{prefix}/base"] == pytest.approx(c.base.estimate)
        assert metrics[f"{prefix}/candidate"] == pytest.approx(c.other.estimate)
        assert metrics[f"{prefix}/delta_low"] == pytest.approx(c.delta.low)
    artifacts = {a.path for a in client.list_artifacts(where["run_id"])}
    assert artifacts == {"results.json", "report.html", "report.md", "junit.xml"}


def test_cli_flag_logs_with_defaults(project: Path, store: str) -> None:
    assert HELDOUT
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "NO_COLOR": "1"}
    r = subprocess.run(
        [HELDOUT, "run", "--mlflow"], cwd=project, capture_output=True, text=True, env=env,
        timeout=120,
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "mlflow: run " in r.stdout
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("support-sentiment-v1")  # the plan's name
    assert experiment is not None
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.data.tags["heldout.verdict"] == "inconclusive"


class _Broken:
    name = "broken"

    def log(self, run: heldout.Run) -> dict[str, Any]:
        raise ConnectionError("tracker down at https://bob:hunter2pass@127.0.0.1:5000")


class _Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def log(self, run: heldout.Run) -> dict[str, Any]:
        self.seen.append(run.status)
        return {"id": "r-1"}


def test_a_failing_tracker_costs_a_warning_not_the_run(project: Path) -> None:
    rec = _Recorder()
    run = heldout.evaluate(project / "heldout.yaml", hooks=[_Broken(), rec])
    assert run.status == "inconclusive"
    assert rec.seen == ["inconclusive"]
    assert run.result.tracking == {"recorder": {"id": "r-1"}}
    assert any(
        "tracking broken: this run was not logged (ConnectionError: tracker down at "
        "https://[REDACTED]@127.0.0.1:5000)" in w
        for w in run.result.warnings
    )
    assert "hunter2pass" not in (run.folder / "results.json").read_text()
    stored = json.loads((run.folder / "results.json").read_text())
    assert stored["tracking"] == {"recorder": {"id": "r-1"}}

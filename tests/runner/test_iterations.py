"""``heldout history`` shows each new candidate against the previous one, paired on the
gold set, and says when several iterations in a row brought no significant gain."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

import heldout
from tests.cli.test_cli_contract import cli
from tests.runner.test_run import make_project


def _outputs(truth: dict[str, str], acc: float, seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    return {k: t if rng.random() < acc else "neutral" if t != "neutral" else "positive"
            for k, t in truth.items()}  # fmt: skip


def test_history_pairs_iterations_and_calls_a_stall(tmp_path: Path) -> None:
    truth = make_project(tmp_path, n=300)
    path = tmp_path / "heldout.yaml"
    accuracies = []
    # v1 weak, v2 much better, then three retrains that change nothing real
    for version, (acc, seed) in enumerate([(0.5, 1), (0.85, 2), (0.85, 3), (0.85, 4), (0.85, 5)]):
        plan = yaml.safe_load(path.read_text())
        outs = _outputs(truth, acc, seed)
        plan["models"]["candidate"] = {
            "backend": "mock",
            "name": f"v{version + 1}",
            "outputs": outs,
        }
        path.write_text(yaml.safe_dump(plan, sort_keys=False, width=1000))
        run = heldout.evaluate(path, root=tmp_path, out=tmp_path / f"run{version + 1}")
        accuracies.append(sum(outs[k] == t for k, t in truth.items()) / len(truth))
        assert run.result.smoke is None
    r = cli("history", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    its = got["iterations"]
    assert [(i["previous"], i["run"]) for i in its] == [
        (f"run{k}", f"run{k + 1}") for k in range(1, 5)
    ]
    for k, it in enumerate(its):
        assert it["delta"] == pytest.approx(accuracies[k + 1] - accuracies[k])
        assert it["candidate"] == f"name=v{k + 2}"
    assert [i["significant_gain"] for i in its] == [True, False, False, False]
    assert got["stalled"] == 3
    text = cli("history", cwd=tmp_path, columns="200")
    assert "iterations: each candidate against the previous one" in text.stdout
    assert "3 iterations in a row brought no significant gain" in text.stdout
    assert "data quality, not model size" in text.stdout

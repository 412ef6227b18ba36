"""train_sample: training rows scored like the gold set; a candidate that gains far more on
its training rows than on held-out ones is diagnosed as overfitting, with the numbers, in
results.json, the reports and the terminal. Through the real console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HELDOUT = shutil.which("heldout", path=str(Path(sys.executable).parent))
LABELS = ["positive", "negative", "neutral"]


def _project(root: Path, *, memorised: bool, n_gold: int = 300, n_train: int = 400) -> None:
    """Base right on 60% everywhere; the candidate right on 75% of the gold set and on 99%
    of its training rows (memorised) or on 75% of those too."""
    rng = np.random.default_rng(3)

    def answer(target: str, p: float) -> str:
        return target if rng.random() < p else LABELS[(LABELS.index(target) + 1) % 3]

    gold = [
        {"id": f"g{i}", "input": f"gold text {i}", "target": LABELS[i % 3]} for i in range(n_gold)
    ]
    train = [{"prompt": f"train text {i}", "completion": LABELS[i % 3]} for i in range(n_train)]
    (root / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gold))
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    base, cand = [], []
    for g in gold:
        base.append({"id": g["id"], "output": answer(g["target"], 0.6)})
        cand.append({"id": g["id"], "output": answer(g["target"], 0.75)})
    for k, t in enumerate(train):
        sid = f"train-{k + 1}"  # rows without an id are named by their line
        base.append({"id": sid, "output": answer(t["completion"], 0.6)})
        cand.append({"id": sid, "output": answer(t["completion"], 0.99 if memorised else 0.75)})
    (root / "base.jsonl").write_text("".join(json.dumps(r) + "\n" for r in base))
    (root / "cand.jsonl").write_text("".join(json.dumps(r) + "\n" for r in cand))
    (root / "heldout.yaml").write_text(
        "name: overfit\ntarget_behavior: labels\n"
        "task: {shape: classification, data: gold.jsonl, labels: [positive, negative, neutral]}\n"
        "primary_metric: accuracy\nbaseline: 0.6\nsuccess_threshold: 0.65\n"
        "min_detectable_lift: 0.1\nmodels:\n"
        "  base: {backend: file, path: base.jsonl}\n"
        "  candidate: {backend: file, path: cand.jsonl}\n"
        "train_sample: {data: train.jsonl, n: 300, input_field: prompt, "
        "target_field: completion}\nstats: {resamples: 2000}\n"
    )


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert HELDOUT
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    return subprocess.run(
        [HELDOUT, *args], cwd=root, capture_output=True, text=True, env=env, timeout=120
    )


pytestmark = pytest.mark.skipif(HELDOUT is None, reason="the heldout console script is missing")


def test_memorised_training_rows_are_diagnosed_as_overfitting(tmp_path: Path) -> None:
    _project(tmp_path, memorised=True)
    assert _run(tmp_path, "plan", "lock").returncode == 0
    r = _run(tmp_path, "run")
    assert r.returncode in (0, 1), r.stderr
    (folder,) = (tmp_path / ".heldout" / "runs").iterdir()
    res = json.loads((folder / "results.json").read_text())
    o = res["overfitting"]
    assert o["n_train"] == 300  # the seeded sample of 400 rows
    assert o["overfitting"] is True
    assert o["train_lift"]["estimate"] > o["gold_lift"]["estimate"] + 0.15
    assert o["excess"]["low"] > 0
    assert {d["name"]: d["n"] for d in res["datasets"]}["train"] == 300
    train = next(c for c in res["comparisons"] if c["dataset"] == "train")
    assert train["metric"] == "accuracy"
    assert "diagnosis: a train-vs-held-out gap" in r.stdout
    md = (folder / "report.md").read_text()
    assert "a train-vs-held-out gap" in md
    assert "on 300 training rows" in md
    # the training rows are neither a suite nor part of the gold set's regressions
    assert "suite" not in md.split("### What got worse")[1].split("###")[0].replace("suite:", "")
    # the lock ignores train_sample: changing it keeps the plan pre-registered
    plan = tmp_path / "heldout.yaml"
    plan.write_text(plan.read_text().replace("n: 300", "n: 200"))
    assert _run(tmp_path, "run").returncode in (0, 1)


def test_an_equal_lift_on_training_rows_is_not_overfitting(tmp_path: Path) -> None:
    _project(tmp_path, memorised=False)
    r = _run(tmp_path, "run")
    assert r.returncode in (0, 1), r.stderr
    (folder,) = (tmp_path / ".heldout" / "runs").iterdir()
    res = json.loads((folder / "results.json").read_text())
    assert res["overfitting"]["overfitting"] is False
    assert "train-vs-held-out" not in (folder / "report.md").read_text()
    assert "diagnosis:" not in r.stdout


def test_bad_train_sample_inputs_name_the_file_line_and_field(tmp_path: Path) -> None:
    _project(tmp_path, memorised=True)
    plan = tmp_path / "heldout.yaml"
    text = plan.read_text()
    plan.write_text(text.replace("data: train.jsonl", "data: nope.jsonl"))
    r = _run(tmp_path, "plan", "validate")
    assert r.returncode == 2
    assert "train_sample.data" in r.stderr + r.stdout
    assert "file not found: nope.jsonl" in r.stderr + r.stdout
    plan.write_text(text.replace("input_field: prompt", "input_field: question"))
    r = _run(tmp_path, "run")
    assert r.returncode == 2, r.stdout
    assert "Traceback" not in r.stderr
    assert "train.jsonl" in r.stderr
    assert "field 'question'" in r.stderr
    assert "train_sample.input_field" in r.stderr


@pytest.mark.slow
def test_overfitting_flag_error_rates_by_simulation(tmp_path: Path) -> None:
    """Through heldout.evaluate, as `heldout run` calls it, with mock models: when the
    candidate's lift is the same on training rows as on the gold set the flag is raised in at
    most ~2.5% of runs (one side of a 95% interval; asserted <= 6%, 3.5 Monte Carlo SDs above
    at 300 runs), and a real excess of 0.24 is flagged in >= 90% of runs (measured 100% of 60)."""
    import heldout
    from heldout.backends import MockBackend

    _project(tmp_path, memorised=False, n_gold=200, n_train=200)
    plan = tmp_path / "heldout.yaml"
    plan.write_text(plan.read_text().replace("n: 300", "n: 200").replace("2000", "1000"))
    gold = [json.loads(x) for x in (tmp_path / "gold.jsonl").read_text().splitlines()]
    train = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    truth = {g["id"]: g["target"] for g in gold}
    truth |= {f"train-{k + 1}": t["completion"] for k, t in enumerate(train)}

    def outputs(rng: np.random.Generator, p_gold: float, p_train: float) -> dict[str, str]:
        out = {}
        for sid, t in truth.items():
            p = p_train if sid.startswith("train-") else p_gold
            out[sid] = t if rng.random() < p else LABELS[(LABELS.index(t) + 1) % 3]
        return out

    rates = {}
    for case, p_train in (("null", 0.75), ("gap", 0.99)):
        flagged = 0
        runs = 300 if case == "null" else 60
        for rep in range(runs):
            rng = np.random.default_rng([rep, int(p_train * 100)])
            backends = {
                "base": MockBackend("base", outputs=outputs(rng, 0.6, 0.6)),
                "candidate": MockBackend("cand", outputs=outputs(rng, 0.75, p_train)),
            }
            run = heldout.evaluate(
                plan, root=tmp_path, out=tmp_path / "runs" / f"{case}{rep}", cache=False,
                backends=backends, reports=False,
            )  # fmt: skip
            assert run.result.overfitting is not None
            flagged += run.result.overfitting.overfitting
        rates[case] = flagged / runs
    assert rates["null"] <= 0.06, rates
    assert rates["gap"] >= 0.9, rates

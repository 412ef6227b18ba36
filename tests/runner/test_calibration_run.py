"""Calibration guardrails end to end through `heldout run`: file predictions carrying label
probabilities or a stated confidence, correctness of the parsed output, Brier gating on
Brier, one configurable bin count (oracles: scikit-learn)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

HELDOUT = shutil.which("heldout", path=str(Path(sys.executable).parent))
LABELS = ["positive", "negative", "neutral"]


def _ece_sklearn(correct: np.ndarray, conf: np.ndarray, bins: int) -> float:  # type: ignore[type-arg]
    prob_true, prob_pred = calibration_curve(correct, conf, n_bins=bins, strategy="uniform")
    edges = np.linspace(0, 1, bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], conf), minlength=bins)
    counts = counts[counts > 0]
    return float(np.sum(counts / conf.size * np.abs(prob_true - prob_pred)))


def _project(root: Path, n: int = 240) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    targets = [LABELS[i] for i in rng.integers(0, 3, n)]
    (root / "gold.jsonl").write_text(
        "".join(
            json.dumps({"id": f"s{i}", "input": f"msg {i}", "target": t}) + "\n"
            for i, t in enumerate(targets)
        )
    )
    truth: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    # base: label probabilities; some outputs are chatty and unparseable although the most
    # probable label is right (they must count as wrong)
    base_rows, conf_b, ok_b = [], [], []
    for i, t in enumerate(targets):
        probs = rng.dirichlet([1, 1, 1])
        if rng.random() < 0.7:
            probs = np.sort(probs)[::-1]
            probs = dict(zip([t] + [x for x in LABELS if x != t], probs, strict=True))
        else:
            probs = dict(zip(LABELS, probs, strict=True))
        top = max(probs, key=probs.__getitem__)
        unparseable = rng.random() < 0.15
        output = f"I think it might be {top}" if unparseable else top.capitalize()
        p = {k: round(float(v), 6) for k, v in probs.items()}
        p[top] = round(1 - sum(v for k, v in p.items() if k != top), 6)
        base_rows.append({"id": f"s{i}", "output": output, "probabilities": p})
        conf_b.append(p[top])
        ok_b.append(float(not unparseable and top == t))
    # candidate: a CSV with a stated confidence only
    cand_rows, conf_c, ok_c = [], [], []
    for i, t in enumerate(targets):
        right = rng.random() < 0.85
        label = t if right else LABELS[(LABELS.index(t) + 1) % 3]
        c = float(np.clip(rng.normal(0.95, 0.03), 0, 1))  # overconfident
        cand_rows.append({"id": f"s{i}", "output": label, "confidence": round(c, 6)})
        conf_c.append(round(c, 6))
        ok_c.append(float(right))
    (root / "base.jsonl").write_text("".join(json.dumps(r) + "\n" for r in base_rows))
    with (root / "cand.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "output", "confidence"])
        w.writeheader()
        w.writerows(cand_rows)
    truth["base"] = (np.array(conf_b), np.array(ok_b))
    truth["candidate"] = (np.array(conf_c), np.array(ok_c))
    (root / "heldout.yaml").write_text(
        "name: cal\ntarget_behavior: labels\n"
        "task: {shape: classification, data: gold.jsonl, labels: [positive, negative, neutral]}\n"
        "primary_metric: accuracy\nbaseline: 0.5\nsuccess_threshold: 0.6\n"
        "min_detectable_lift: 0.1\nmodels:\n"
        "  base: {backend: file, path: base.jsonl}\n"
        "  candidate: {backend: file, path: cand.csv}\n"
        "guardrails:\n"
        "  - {calibration: brier, max_increase: 0.5, bins: 10}\n"
        "  - {calibration: ece, max_increase: 0.5, bins: 10}\n"
        "stats: {resamples: 1000}\n"
    )
    return truth


@pytest.mark.skipif(HELDOUT is None, reason="the heldout console script is not installed")
def test_calibration_gates_from_file_probabilities_and_confidences(tmp_path: Path) -> None:
    truth = _project(tmp_path)
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    r = subprocess.run(
        [str(HELDOUT), "run"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode in (0, 1), r.stderr
    (folder,) = (tmp_path / ".heldout" / "runs").iterdir()
    res = json.loads((folder / "results.json").read_text())
    brier_gate, ece_gate = res["gates"]
    assert brier_gate["name"] == "calibration brier (gold)"
    assert ece_gate["name"] == "calibration ece (gold)"
    want = {
        role: (brier_score_loss(ok, conf), _ece_sklearn(ok, conf, 10))
        for role, (conf, ok) in truth.items()
    }
    # the gate's change (positive = better) is minus the increase of the gated measure
    assert -brier_gate["change"]["estimate"] == pytest.approx(
        want["candidate"][0] - want["base"][0], abs=1e-9
    )
    assert -ece_gate["change"]["estimate"] == pytest.approx(
        want["candidate"][1] - want["base"][1], abs=1e-9
    )
    cal = res["calibration"]
    assert cal["bins"] == 10
    assert len(cal["reliability"]["base"]) == 10  # the table uses the gate's bins
    assert cal["base_brier"] == pytest.approx(want["base"][0], abs=1e-9)
    assert cal["candidate_ece"] == pytest.approx(want["candidate"][1], abs=1e-9)
    assert cal["source"] == {"base": "label probabilities", "candidate": "stated confidence"}

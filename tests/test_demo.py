"""The built-in demo, end to end through the real CLI (runs in CI; about a minute)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

HELDOUT = shutil.which("heldout", path=str(Path(sys.executable).parent))


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    assert HELDOUT
    out = tmp_path / "demo"
    r = subprocess.run(
        [HELDOUT, "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    verdicts = {}
    for name in ("lora", "full"):
        folder = out / "runs" / name
        result = json.loads((folder / "results.json").read_text())
        verdicts[name] = result["verdict"]["status"]
        # reports exist and agree with results.json
        html = (folder / "report.html").read_text()
        md = (folder / "report.md").read_text()
        assert f"heldout: **{result['verdict']['status']}**" in md
        assert f'class="banner {result["verdict"]["status"]}"' in html
        assert (folder / "junit.xml").is_file()
        candidate = next(m for m in result["models"] if m["role"] == "candidate")
        if name == "lora":  # the adapter check ran and found the adapter active
            assert candidate["record"]["adapter_applied"] is True
        primary = next(c for c in result["comparisons"] if c["primary"])
        assert primary["metric"] == "field_accuracy"
        assert primary["n"] == 200
        # the fine-tune learned the new behaviour: a real lift over the base model
        assert primary["delta"]["low"] > 0
        assert f"→ {result['verdict']['status']}" in r.stdout
    # the aggressive full fine-tune forgets the base skills and is blocked for it
    assert verdicts["full"] == "blocked"
    # the LoRA adapter, trained with replay, keeps its guardrails: deterministic for seed 0
    assert verdicts["lora"] == "success"
    plan = (out / "heldout.yaml").read_text()
    assert "# measured on the base model before training" in plan
    assert (out / "heldout.lock").is_file()

    # the flywheel on the blocked full fine-tune: its forgetting becomes suite-stratified
    # training candidates, none of them from the frozen (and locked) gold set
    fly = subprocess.run(
        [HELDOUT, "flywheel", "--run", "runs/full", "--n", "100", "--out", "fly"],
        capture_output=True, text=True, timeout=120, cwd=out,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert fly.returncode == 0, fly.stderr[-3000:]
    assert "not locked" not in fly.stderr  # the gold set's lock was verified
    rows = [
        json.loads(line)
        for name in ("train_candidates.jsonl", "eval_candidates.jsonl")
        for line in (out / "fly" / name).read_text().splitlines()
    ]
    assert len(rows) == 100
    strata = {r["provenance"]["stratum"] for r in rows}
    assert len(strata) >= 2
    assert all(s.startswith("suite ") for s in strata)
    assert all(r["provenance"]["source"] == "run:full" for r in rows)
    assert all(r["target"] is not None for r in rows)
    from heldout.data import normalize

    gold_inputs = {
        normalize(json.loads(line)["input"])
        for line in (out / "data" / "gold.jsonl").read_text().splitlines()
    }
    assert not any(normalize(r["input"]) in gold_inputs for r in rows)
    assert (out / "fly" / "report.md").read_text().count("| suite ") >= 2

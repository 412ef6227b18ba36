from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from heldout.backends import MockBackend
from heldout.plan import load_plan, write_lock
from heldout.results import RunResult
from heldout.runner import evaluate

LABELS = ["positive", "negative", "neutral"]
HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'">'


def build_run(
    root: Path, *, hostile: bool = False, seed: int = 0, hostile_id: str = "g000"
) -> tuple[RunResult, Path]:
    """A deterministic run with mock models: fixed ids, outputs and seed."""
    import json

    rng = random.Random(seed)
    rows, base, cand = [], {}, {}
    for i in range(120):
        t = LABELS[i % 3]
        sid = f"g{i:03d}"
        rows.append({"id": sid, "input": f"message {i}", "target": t, "lang": ["en", "fr"][i % 2]})
        base[sid] = t if rng.random() < 0.6 else "neutral"
        cand[sid] = t if rng.random() < 0.85 else "dunno"
    if hostile:
        cand[hostile_id] = HOSTILE
    suite = [{"id": f"q{i}", "input": f"{i}+1?", "target": str(i + 1)} for i in range(40)]
    for i in range(40):
        base[f"q{i}"] = str(i + 1) if i % 5 else "?"
        cand[f"q{i}"] = str(i + 1) if i % 4 else "?"
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "data" / "general.jsonl").write_text("".join(json.dumps(r) + "\n" for r in suite))
    (root / "heldout.yaml").write_text("""
name: report-fixture
target_behavior: label sentiment
task: {shape: classification, data: data/gold.jsonl, labels: [positive, negative, neutral]}
primary_metric: accuracy
baseline: 0.6
success_threshold: 0.8
min_detectable_lift: 0.1
models:
  base: {backend: mock, name: base}
  candidate: {backend: mock, name: cand}
guardrails:
  - {suite: general, data: data/general.jsonl, max_drop: 0.05}
  - {slices: [lang], max_drop: 0.2, min_size: 20}
slices: [lang]
stats: {resamples: 2000, seed: 7}
""")
    loaded = load_plan(root / "heldout.yaml")
    write_lock(loaded)
    backends: dict[str, Any] = {
        "base": MockBackend("base", outputs=base),
        "candidate": MockBackend("cand", outputs=cand),
    }
    run = evaluate(loaded, out=root / "run", cache=False, backends=backends, reports=False)
    return run.result, run.folder


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    build_run(tmp_path)
    return tmp_path / "run"

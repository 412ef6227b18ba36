"""One `heldout run` against a server that misbehaves on 20% of prompts finishes, with every
sample answered exactly once (counted at the server), and the faults counted in results."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from heldout.testing import FakeOpenAIServer, ServerScript

HELDOUT = shutil.which("heldout", path=str(Path(sys.executable).parent))
MIX = {  # share of all prompts that get each fault on their first attempt(s)
    "429": 0.04,
    "500": 0.02,
    "503": 0.02,
    "timeout": 0.03,
    "drop": 0.03,
    "truncated": 0.01,
    "not-json": 0.01,
    "not-utf8": 0.01,
    "no-choices": 0.01,
    "html": 0.02,
}


def test_2000_prompts_under_20_percent_mixed_faults_finish_in_one_invocation(
    tmp_path: Path,
) -> None:
    assert HELDOUT is not None
    n = 2000
    rng = random.Random(0)
    prompts = [f"question {i}" for i in range(n)]
    kinds = [k for k, share in MIX.items() for _ in range(round(share * n))]
    assert len(kinds) == 400  # 20%
    faulted = rng.sample(prompts, len(kinds))
    faults = {p: [k] * rng.choice([1, 1, 2]) for p, k in zip(faulted, kinds, strict=True)}
    rows = [{"id": f"q{i}", "input": p, "target": "ok"} for i, p in enumerate(prompts)]
    (tmp_path / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = ServerScript(
        answer=lambda p: "ok", faults=faults, retry_after_header="0.05", timeout_s=2.5
    )
    with FakeOpenAIServer(script) as server:
        (tmp_path / "heldout.yaml").write_text(
            "name: faults\ntarget_behavior: t\ntask: {shape: qa, data: gold.jsonl}\n"
            "primary_metric: exact_match\nbaseline: 0.5\nsuccess_threshold: 0.9\n"
            "min_detectable_lift: 0.05\nmodels:\n"
            f"  base: {{backend: openai, base_url: '{server.base_url}', model: b, "
            "timeout_s: 1.0, max_retries: 4, concurrency: 64}\n"
            "  candidate: {backend: mock, name: c, default: ok}\n"
            "stats: {resamples: 500}\n"
        )
        env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
        r = subprocess.run(
            [str(HELDOUT), "run"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        completed = dict(server.completed)
        seen = dict(server.faulted)
    assert r.returncode in (0, 1), r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert len(completed) == n  # every prompt was answered
    assert sum(seen.values()) == sum(len(v) for v in faults.values())
    (folder,) = (tmp_path / ".heldout" / "runs").iterdir()
    result = json.loads((folder / "results.json").read_text())
    base = next(m for m in result["models"] if m["role"] == "base")
    assert base["failed"] == 0
    assert base["requests"] == n
    reasons = base["record"]["retries_by_reason"]
    assert reasons["malformed body"] == sum(
        len(v) for v in faults.values() if v[0] in ("not-json", "not-utf8", "no-choices", "html")
    )
    assert reasons["HTTP 429"] == sum(len(v) for v in faults.values() if v[0] == "429")
    scripted_timeouts = sum(len(v) for v in faults.values() if v[0] == "timeout")
    assert reasons.get("TimeoutError", 0) >= scripted_timeouts
    # every sample is stored exactly once; the server may finish an answer more than once
    # only for an attempt the client had already abandoned on its own timeout (a loaded
    # machine can make an ordinary answer slower than timeout_s)
    stored = [
        json.loads(line) for line in (folder / "generations.jsonl").read_text().split("\n") if line
    ]
    base_ids = [g["sample_id"] for g in stored if g["model"] == "base"]
    assert len(base_ids) == len(set(base_ids)) == n
    unplanned_timeouts = reasons.get("TimeoutError", 0) - scripted_timeouts
    assert sum(completed.values()) - n <= unplanned_timeouts

"""One run per project at a time, and a failed run leaves no empty folder behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from heldout.testing import FakeOpenAIServer, ServerScript

HELDOUT = shutil.which("heldout", path=str(Path(sys.executable).parent))


def _project(root: Path, base: str, n: int = 200) -> None:
    rows = [{"id": f"q{i}", "input": f"question {i}", "target": "ok"} for i in range(n)]
    (root / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "heldout.yaml").write_text(
        "name: folder\ntarget_behavior: t\ntask: {shape: qa, data: gold.jsonl}\n"
        "primary_metric: exact_match\nbaseline: 0.1\nsuccess_threshold: 0.5\n"
        f"min_detectable_lift: 0.1\nmodels:\n  base: {base}\n"
        "  candidate: {backend: mock, name: c, default: ok}\nstats: {resamples: 200}\n"
    )


def _heldout(root: Path, *args: str, **kw: object) -> subprocess.Popen[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("HELDOUT_UNSET_KEY", None)
    return subprocess.Popen(
        [str(HELDOUT), *args], cwd=root, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_a_second_run_on_the_same_project_is_refused_and_sends_nothing(tmp_path: Path) -> None:
    with FakeOpenAIServer(ServerScript(answer=lambda p: "ok", delay_s=0.02)) as server:
        _project(
            tmp_path,
            f"{{backend: openai, base_url: '{server.base_url}', model: b, concurrency: 4}}",
        )
        first = _heldout(tmp_path, "run")
        deadline = time.monotonic() + 30
        while sum(server.requests.values()) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        second = _heldout(tmp_path, "run")
        _, err2 = second.communicate(timeout=60)
        _, err1 = first.communicate(timeout=120)
        requests = dict(server.requests)
    assert second.returncode == 2
    said = " ".join(err2.split())
    assert "another heldout run is running on this project (pid " in said
    assert f"pid {first.pid}," in said
    assert first.returncode in (0, 1), err1[-2000:]
    assert set(requests.values()) == {1}  # no prompt was sent twice
    assert len(requests) == 200


def test_a_run_that_fails_before_any_response_leaves_no_folder(tmp_path: Path) -> None:
    _project(
        tmp_path,
        "{backend: openai, base_url: 'http://127.0.0.1:9/v1', model: b, api_key_env: HELDOUT_UNSET_KEY}",
    )
    p = _heldout(tmp_path, "run")
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2, err
    runs = tmp_path / ".heldout" / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []


def test_a_run_that_fails_after_some_responses_is_marked_incomplete(tmp_path: Path) -> None:
    faults = {f"question {i}": ["500"] * 5 for i in range(3)}
    with FakeOpenAIServer(ServerScript(answer=lambda p: "ok", faults=faults)) as server:
        _project(
            tmp_path,
            f"{{backend: openai, base_url: '{server.base_url}', model: b, max_retries: 1}}",
            n=20,
        )
        p = _heldout(tmp_path, "run")
        _, err = p.communicate(timeout=60)
    assert p.returncode == 2, err
    (folder,) = (tmp_path / ".heldout" / "runs").iterdir()
    assert not (folder / "results.json").exists()
    assert "a rerun resumes" in (folder / "INCOMPLETE").read_text()
    r = subprocess.run(
        [str(HELDOUT), "history"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0
    assert folder.name not in r.stdout

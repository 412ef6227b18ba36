"""An API key echoed back by a server reaches no artifact, database, stdout or stderr."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from heldout._redact import REDACTED, redact
from heldout.errors import PlanError
from heldout.plan import load_plan
from heldout.testing import FakeOpenAIServer, ServerScript

HELDOUT = shutil.which("heldout", path=str(Path(sys.executable).parent))
KEY = "sk-test-9f8e7d6c5b4a39281706abcdef"


def _plan(root: Path, base_url: str) -> None:
    rows = [{"id": f"q{i}", "input": f"question {i}", "target": "ok"} for i in range(30)]
    (root / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "heldout.yaml").write_text(
        "name: secrets\ntarget_behavior: t\ntask: {shape: qa, data: gold.jsonl}\n"
        "primary_metric: exact_match\nbaseline: 0.5\nsuccess_threshold: 0.9\n"
        "min_detectable_lift: 0.05\nmodels:\n"
        f"  base: {{backend: openai, base_url: '{base_url}', model: b, api_key_env: HELDOUT_KEY,"
        " max_retries: 1}\n"
        "  candidate: {backend: mock, name: c, default: ok}\n"
        "stats: {resamples: 300}\n"
    )


@pytest.mark.skipif(HELDOUT is None, reason="the heldout console script is not installed")
def test_an_echoed_api_key_is_in_no_artifact(tmp_path: Path) -> None:
    faults = {"question 0": ["echo-auth"], "question 1": ["echo-auth-500"] * 5}
    with FakeOpenAIServer(ServerScript(answer=lambda p: "ok", faults=faults)) as server:
        _plan(tmp_path, server.base_url)
        env = {**os.environ, "HELDOUT_KEY": KEY, "NO_COLOR": "1", "COLUMNS": "200"}
        outputs = []
        for args in (["run"], ["run", "--failed-as-wrong"]):
            r = subprocess.run(
                [str(HELDOUT), *args], cwd=tmp_path, capture_output=True, text=True, env=env,
                timeout=120,
            )  # fmt: skip
            outputs += [r.stdout, r.stderr]
        assert server.faulted["echo-auth"] == 1
    assert any(REDACTED in text for text in outputs)  # the echo was there, and redacted
    assert not any(KEY in text for text in outputs)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"cache.sqlite", "runs.sqlite", "generations.jsonl", "results.json"} <= names
    assert {"samples.jsonl", "samples.parquet", "report.html", "report.md", "junit.xml"} <= names
    leaked = [str(p) for p in files if KEY.encode() in p.read_bytes()]
    assert leaked == []


def test_redact_patterns() -> None:
    assert redact("Authorization: Bearer abcdefgh12345678") == f"Authorization: Bearer {REDACTED}"
    assert redact("x-api-key: abc123xyz") == f"x-api-key: {REDACTED}"
    assert redact("at https://bob:hunter2@host/v1") == f"at https://{REDACTED}@host/v1"
    assert redact(f"key {KEY} here") == f"key {REDACTED} here"
    assert redact("my value 12345", ["value 12345"]) == f"my {REDACTED}"
    assert redact("nothing secret here") == "nothing secret here"


def test_credentials_in_base_url_are_refused(tmp_path: Path) -> None:
    _plan(tmp_path, "http://user:pw@127.0.0.1:9/v1")
    with pytest.raises(PlanError) as info:
        load_plan(tmp_path / "heldout.yaml")
    (problem,) = info.value.problems
    assert problem.where == "models.base.base_url"
    assert "holds credentials" in problem.message
    assert "pw@" not in str(info.value)

"""The CLI through its real entry point (a subprocess running the installed console script)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HELDOUT = shutil.which("heldout", path=str(Path(sys.executable).parent))


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert HELDOUT, "the heldout console script is not installed in this environment"
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [HELDOUT, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


def test_version(tmp_path: Path) -> None:
    from heldout import __version__

    r = run("--version", cwd=tmp_path)
    assert r.returncode == 0
    assert r.stdout.strip() == f"heldout {__version__}"


def test_newcomer_flow(tmp_path: Path) -> None:
    r = run("init", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "heldout.yaml").is_file()
    r = run("plan", "validate", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "gold set 12 samples" in r.stdout
    r = run("plan", "lock", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "heldout.lock").read_text())["lock_version"] == 1
    r = run("plan", "verify", cwd=tmp_path)
    assert r.returncode == 0
    assert "unchanged" in r.stdout
    r = run("leak", "--train", "data/train.jsonl", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "leak.json").read_text())["hits"] == []

    plan = tmp_path / "heldout.yaml"
    plan.write_text(plan.read_text().replace("baseline: 0.72", "baseline: 0.70"))
    r = run("plan", "verify", cwd=tmp_path)
    assert r.returncode == 1
    assert "baseline: 0.72 → 0.7" in r.stdout
    r = run("leak", "--train", "data/train.jsonl", cwd=tmp_path)
    assert r.returncode == 2
    assert "the plan changed since it was locked" in r.stderr
    r = run("leak", "--train", "data/train.jsonl", "--allow-changed-plan", cwd=tmp_path)
    assert r.returncode == 0
    lock = json.loads((tmp_path / "leak.json").read_text())["lock"]
    assert lock["overridden"] is True
    assert lock["changes"] == ["baseline: 0.72 → 0.7"]


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    assert run("init", cwd=tmp_path).returncode == 0
    r = run("init", cwd=tmp_path)
    assert r.returncode == 2
    assert "pass --force" in r.stderr


def test_validate_reports_problems_with_exit_2(tmp_path: Path) -> None:
    run("init", cwd=tmp_path)
    plan = tmp_path / "heldout.yaml"
    plan.write_text(plan.read_text().replace("max_drop: 0.02}", "max_drop: -0.02}"))
    r = run("plan", "validate", cwd=tmp_path)
    assert r.returncode == 2
    assert "guardrails[0].max_drop: must be ≥ 0.0 (got -0.02)" in r.stderr
    assert "guardrails[1].max_drop: must be ≥ 0.0 (got -0.02)" in r.stderr


def test_leak_finds_planted_duplicate(tmp_path: Path) -> None:
    run("init", cwd=tmp_path)
    train = tmp_path / "data" / "train.jsonl"
    gold_row = json.loads((tmp_path / "data" / "gold.jsonl").read_text().splitlines()[1])
    with train.open("a") as fh:
        fh.write(json.dumps({"input": gold_row["input"].lower(), "target": "negative"}) + "\n")
    r = run("leak", "--train", str(train), "--out", "hits.json", cwd=tmp_path)
    assert r.returncode == 1
    assert "g02" in r.stdout
    report = json.loads((tmp_path / "hits.json").read_text())
    assert report["flagged_gold_ids"] == ["g02"]
    assert report["hits"][0]["kind"] == "exact"


def test_leak_with_explicit_gold_and_bad_train(tmp_path: Path) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": 1, "input": "hello there", "target": "x"}\n')
    bad = tmp_path / "train.jsonl"
    bad.write_text("{broken\n")
    r = run("leak", "--gold", str(gold), "--train", str(bad), cwd=tmp_path)
    assert r.returncode == 2
    assert "train.jsonl:1: malformed JSON" in r.stderr


def test_schema_command(tmp_path: Path) -> None:
    r = run("plan", "schema", "--out", "s.json", cwd=tmp_path)
    assert r.returncode == 0
    schema = json.loads((tmp_path / "s.json").read_text())
    assert "primary_metric" in schema["properties"]
    assert schema["additionalProperties"] is False


def test_schema_accepts_the_starter_plan(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    run("init", cwd=tmp_path)
    schema = json.loads(run("plan", "schema", cwd=tmp_path).stdout)
    data = yaml.safe_load((tmp_path / "heldout.yaml").read_text())
    jsonschema.validate(data, schema)
    data["task"]["lables"] = []
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_metrics_listing(tmp_path: Path) -> None:
    r = run("metrics", "--shape", "qa", cwd=tmp_path)
    assert r.returncode == 0
    assert "exact_match" in r.stdout
    assert "accuracy" not in r.stdout


def test_suites_listing(tmp_path: Path) -> None:
    r = run("suites", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name, grader, size in [
        ("general", "final_answer", "400"),
        ("instruction_following", "follows_instructions", "300"),
        ("format_obsession", "follows_instructions", "210"),
        ("multilingual", "language_match", "120"),
        ("safety", "refusal_rate", "80"),
        ("over_refusal", "compliance_rate", "80"),
    ]:
        row = next(line for line in r.stdout.splitlines() if f" {name} " in line)
        assert grader in row
        assert f" {size} " in row


def test_usage_error_is_exit_2(tmp_path: Path) -> None:
    r = run("plan", "validate", "--no-such-flag", cwd=tmp_path)
    assert r.returncode == 2


def test_power_command(tmp_path: Path) -> None:
    r = run("power", "--base-rate", "0.7", "--lift", "0.1", "--discordance", "0.2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "exact paired score test (binary metric)" in r.stdout
    assert "│ 145 " in r.stdout  # statsmodels-free check: test_power.py holds the oracles
    r = run("power", "--base-rate", "0.72", "--n", "300", cwd=tmp_path)
    assert r.returncode == 0
    assert "smallest lift 300 samples detect" in r.stdout
    assert "to detect +" not in r.stdout  # no lift was asked about
    r = run("power", "--base-rate", "0.72", cwd=tmp_path)
    assert r.returncode == 2
    assert "give --lift, --n or both" in r.stderr
    # continuous metrics: paired t with the SD of paired differences (statsmodels: 284.5)
    r = run("power", "--sd", "0.3", "--lift", "0.05", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "paired t (noncentral t) (continuous" in r.stdout
    assert "│ 285 " in r.stdout
    run("init", cwd=tmp_path)
    r = run("plan", "validate", cwd=tmp_path)
    assert "12 gold samples are too few: 1,195 samples needed" in " ".join(r.stderr.split())
    r = run("power", cwd=tmp_path)
    assert r.returncode == 0
    assert "paired samples to detect +0.05" in r.stdout
    assert "1,195" in r.stdout  # the same number validate gave


def test_progress_bars_show_count_rate_and_time_left() -> None:
    import io
    import time

    from rich.console import Console

    from heldout.cli._progress import progress_for

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=80, color_system=None)
    label = "candidate · suite:instruction_following"  # longer than the label column
    with progress_for(console, 24) as (on_progress, _stage):
        on_progress(label, 500, 2000)  # cache hits: already done, not a rate
        for done in range(600, 1300, 100):
            time.sleep(0.02)
            on_progress(label, done, 2000)
    lines = [re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", x) for x in buf.getvalue().split("\r")]
    last = [x for x in lines if "candidate" in x][-1].strip("\n")
    assert last.startswith("candidate · suite:instr…")  # cut to its column, not wrapped
    assert len(last) <= 80  # the whole bar fits an 80-column terminal
    assert "1,200/2,000" in last
    # 100 responses per ~0.02 s: about 5,000/s (looser bounds for a loaded machine)
    rate = int(last.split("/s")[0].split()[-1].replace(",", ""))
    assert 500 < rate < 20_000
    assert re.search(r"00:00<00:0\d$", last)  # elapsed<remaining


def test_validate_power_and_run_agree_for_a_continuous_metric(tmp_path: Path) -> None:
    """validate, heldout power and heldout run use one power calculation (paired t for a
    continuous metric); the run uses the SD it measured and says what the plan assumed."""
    import numpy as np
    from statsmodels.stats.power import TTestPower

    from heldout.backends import MockBackend
    from heldout.plan import load_plan
    from heldout.runner import evaluate

    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "eps"]
    rows = [
        {"id": f"q{i}", "input": f"question {i}", "target": " ".join(rng.choice(words, 3))}
        for i in range(150)
    ]
    (tmp_path / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "heldout.yaml").write_text(
        "name: qa\ntarget_behavior: answer\ntask: {shape: qa, data: gold.jsonl}\n"
        "primary_metric: token_f1\nbaseline: 0.3\nsuccess_threshold: 0.5\n"
        "min_detectable_lift: 0.05\nmodels:\n  base: {backend: mock, name: b}\n"
        "  candidate: {backend: mock, name: c}\nstats: {paired_sd: 0.3, resamples: 500}\n"
    )
    r = run("plan", "validate", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    said = " ".join((r.stdout + r.stderr).split())
    assert "285 samples needed to detect +0.05 (paired t (noncentral t); SD of paired" in said
    r = run("power", cwd=tmp_path)
    assert "│ 285 " in r.stdout
    assert "from: plan" in r.stdout
    base = {row["id"]: " ".join(rng.choice(words, 3)) for row in rows}
    cand = {row["id"]: row["target"] if rng.random() < 0.4 else base[row["id"]] for row in rows}
    loaded = load_plan(tmp_path / "heldout.yaml")
    backends = {"base": MockBackend("b", outputs=base), "candidate": MockBackend("c", outputs=cand)}
    ran = evaluate(loaded, backends=dict(backends))
    result, _ = ran.result, ran.folder
    assert result.power is not None
    assert result.power["source"] == "measured in this run"
    assert result.power["kind"] == "continuous"
    assert "285 samples needed" in result.power["plan_assumption"]
    lines = (_run_dir(tmp_path) / "samples.jsonl").read_text().split("\n")
    by = {
        (s["model"], s["id"]): s["scores"]["token_f1"]
        for s in map(json.loads, filter(None, lines))
        if s["dataset"] == "gold"
    }
    diff = np.array([by[("candidate", i)] - by[("base", i)] for i in base])
    sd = float(diff.std(ddof=1))
    assert result.power["paired_sd"] == pytest.approx(sd, rel=1e-9)
    need = math.ceil(TTestPower().solve_power(effect_size=0.05 / sd, alpha=0.05, power=0.8))
    assert result.power["n_needed"] == need


def _run_dir(root: Path) -> Path:
    (folder,) = (root / ".heldout" / "runs").iterdir()
    return folder


def test_suites_and_validate_say_which_guardrails_can_resolve(tmp_path: Path) -> None:
    """heldout suites lists each built-in suite's resolvable margin; validate and lock give
    each guardrail's chance to pass when nothing got worse (exact, see test_simulation.py)."""
    from heldout.stats._power import noninferiority_pass_chance, resolvable_margin

    r = run("suites", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    safety = next(line for line in r.stdout.splitlines() if line.startswith("│ safety"))
    assert f"{resolvable_margin(80):.3f}" in safety  # 0.099 for 80 prompts
    assert "resolves: the smallest max_drop" in " ".join(r.stdout.split())
    run("init", cwd=tmp_path)
    plan = tmp_path / "heldout.yaml"
    plan.write_text(
        plan.read_text().replace(
            "guardrails:                      # what must not get worse (candidate - base)\n",
            "guardrails:\n  - {suite: over_refusal, max_drop: 0.05}\n",
        )
    )
    r = run("plan", "validate", cwd=tmp_path)
    said = " ".join((r.stdout + r.stderr).split())
    chance = noninferiority_pass_chance(80, 0.05, discordance=0.1)
    assert (
        f"guardrail suite over_refusal (n=80, max_drop 0.05): {chance:.0%} chance to pass if "
        "nothing got worse; ~314 would give 80% (models disagreeing on 10% of prompts)"
    ) in said
    assert "warning: guardrail suite over_refusal" in said  # under 50%: a warning
    r = run("plan", "lock", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "guardrail suite over_refusal (n=80" in " ".join((r.stdout + r.stderr).split())


def test_exit_codes_bad_usage_internal_error_and_help(tmp_path: Path) -> None:
    """2 for usage errors, 3 with a crash log (never a traceback on the terminal) for a bug,
    and the codes in --help."""
    r = run("--help", cwd=tmp_path)
    assert "Exit codes: 0 success; 1 a check or verdict says no; 2 bad input" in " ".join(
        r.stdout.split()
    )
    assert run("nosuch", cwd=tmp_path).returncode == 2
    assert run("run", "-p", "missing.yaml", cwd=tmp_path).returncode == 2
    # an internal error: a plugin metric that crashes inside a run (not a HeldoutError)
    (tmp_path / "gold.jsonl").write_text('{"id": "a", "input": "x", "target": "y"}\n')
    (tmp_path / "boom.py").write_text(
        "import heldout\n\n"
        "@heldout.metric('boom', shapes=['qa'], higher_is_better=True)\n"
        "def boom(y_true, y_pred, *, options):\n"
        "    raise ZeroDivisionError('scripted crash')\n"
    )
    (tmp_path / "heldout.yaml").write_text(
        "name: crash\ntarget_behavior: t\ntask: {shape: qa, data: gold.jsonl}\n"
        "primary_metric: boom\nbaseline: 0.1\nsuccess_threshold: 0.5\n"
        "min_detectable_lift: 0.1\nplugins: [boom.py]\nmodels:\n"
        "  base: {backend: mock, name: b, default: y}\n"
        "  candidate: {backend: mock, name: c, default: y}\n"
    )
    r = run("run", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    said = " ".join(r.stderr.split())
    assert "internal error (a bug in heldout): ZeroDivisionError: scripted crash" in said
    logs = list((tmp_path / ".heldout").glob("crash-*.log"))
    assert len(logs) == 1
    assert str(logs[0]) in said.replace(" ", "") or logs[0].name in said
    assert "Traceback" in logs[0].read_text()


def test_ctrl_c_says_what_was_saved_and_exits_130(tmp_path: Path) -> None:
    import signal
    import time

    from heldout.testing import FakeOpenAIServer, ServerScript

    rows = [{"id": f"q{i}", "input": f"question {i}", "target": "ok"} for i in range(400)]
    (tmp_path / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with FakeOpenAIServer(ServerScript(answer=lambda p: "ok", delay_s=0.05)) as server:
        (tmp_path / "heldout.yaml").write_text(
            "name: int\ntarget_behavior: t\ntask: {shape: qa, data: gold.jsonl}\n"
            "primary_metric: exact_match\nbaseline: 0.1\nsuccess_threshold: 0.5\n"
            "min_detectable_lift: 0.1\nmodels:\n"
            f"  base: {{backend: openai, base_url: '{server.base_url}', model: b, "
            "concurrency: 4}\n  candidate: {backend: mock, name: c, default: ok}\n"
        )
        env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
        proc = subprocess.Popen(
            [HELDOUT, "run"], cwd=tmp_path, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while sum(server.completed.values()) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-1000:]
    said = " ".join(stderr.split())
    assert "interrupted:" in said
    assert "response(s) saved in the cache; finished work is kept: rerun to resume" in said
    assert "Traceback" not in stderr

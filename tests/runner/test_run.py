"""heldout run end to end: mock backends, the cache, the CLI, and kill -9 resume."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from heldout.backends import MockBackend, Request
from heldout.data import load_samples
from heldout.errors import FailedGenerationsError
from heldout.plan import load_plan, write_lock
from heldout.results import RunResult
from heldout.runner import evaluate
from heldout.suites import builtin_suite
from heldout.testing import FakeOpenAIServer, ServerScript

LABELS = ["positive", "negative", "neutral"]


def make_project(
    root: Path, n: int = 200, seed: int = 0, models: str | None = None
) -> dict[str, str]:
    rng = random.Random(seed)
    rows, truth = [], {}
    for i in range(n):
        t = rng.choice(LABELS)
        truth[f"g{i}"] = t
        rows.append(
            {
                "id": f"g{i}",
                "input": f"message number {i}",
                "target": t,
                "lang": rng.choice(["en", "fr"]),
            }
        )
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "heldout.yaml").write_text(f"""
name: run-test
target_behavior: label sentiment
task: {{shape: classification, data: data/gold.jsonl, labels: [positive, negative, neutral]}}
primary_metric: accuracy
baseline: 0.6
success_threshold: 0.8
min_detectable_lift: 0.1
models:
{
        models
        or '''  base: {backend: mock, name: base, default: neutral}
  candidate: {backend: mock, name: cand, default: neutral}'''
    }
guardrails:
  - {{slices: [lang], max_drop: 0.2, min_size: 20}}
slices: [lang]
stats: {{resamples: 1000}}
""")
    return truth


def _backends(truth: dict[str, str], base_acc: float, cand_acc: float) -> dict[str, MockBackend]:
    rng = random.Random(1)
    base, cand = {}, {}
    for sid, t in truth.items():
        base[sid] = t if rng.random() < base_acc else "neutral" if t != "neutral" else "positive"
        cand[sid] = f" {t.capitalize()}." if rng.random() < cand_acc else "no idea"
    return {
        "base": MockBackend("base", outputs=base),
        "candidate": MockBackend("cand", outputs=cand),
    }


def test_library_run_writes_results_and_uses_the_cache(tmp_path: Path) -> None:
    truth = make_project(tmp_path)
    loaded = load_plan(tmp_path / "heldout.yaml")
    backends = _backends(truth, 0.6, 0.97)
    ran = evaluate(loaded, backends=dict(backends))
    result, folder = ran.result, ran.folder
    assert result.verdict.status == "success"
    assert result.verdict.exit_code == 0
    assert any("never locked" in w for w in result.warnings)
    primary = next(c for c in result.comparisons if c.primary)
    assert primary.metric == "accuracy"
    assert primary.n == 200
    stored = RunResult.model_validate_json((folder / "results.json").read_text())
    assert stored == result
    rows = [json.loads(x) for x in (folder / "generations.jsonl").read_text().splitlines()]
    assert len(rows) == 400
    assert {r["model"] for r in rows} == {"base", "candidate"}
    # rerun: everything from the cache, zero model calls
    again = _backends(truth, 0.6, 0.97)
    ran = evaluate(loaded, backends=dict(again))
    result2, _folder2 = ran.result, ran.folder
    assert again["base"].calls == []
    assert again["candidate"].calls == []
    assert result2.models[0].cached == 200
    assert result2.verdict == result.verdict
    # --no-cache calls again
    third = _backends(truth, 0.6, 0.97)
    evaluate(loaded, cache=False, backends=dict(third))
    assert len(third["base"].calls) == 200


def test_failed_requests_are_never_silently_scored(tmp_path: Path) -> None:
    truth = make_project(tmp_path)
    loaded = load_plan(tmp_path / "heldout.yaml")
    backends = _backends(truth, 0.6, 0.9)
    del backends["candidate"].outputs["g5"]
    with pytest.raises(FailedGenerationsError, match="1 request\\(s\\) failed after all retries"):
        evaluate(loaded, backends=dict(backends))
    result = evaluate(loaded, backends=dict(backends), failed_as_wrong=True).result
    assert any("scored as wrong" in w for w in result.warnings)
    assert result.models[1].failed == 1


def test_blocked_by_a_failing_slice(tmp_path: Path) -> None:
    truth = make_project(tmp_path, n=300)
    loaded = load_plan(tmp_path / "heldout.yaml")
    backends = _backends(truth, 0.7, 0.99)
    samples = {s.id: s for s in loaded.samples}
    for sid in truth:  # the candidate collapses on French
        if samples[sid].metadata["lang"] == "fr":
            backends["candidate"].outputs[sid] = "no idea"
    ran = evaluate(loaded, backends=dict(backends))
    result, _ = ran.result, ran.folder
    assert result.verdict.status == "blocked"
    assert result.gates[0].status == "fail"
    assert "deciding slice lang=fr" in result.gates[0].detail
    assert {p.label: p.status for p in result.gates[0].parts}["lang=fr"] == "fail"


def test_built_in_suites_block_a_candidate_that_lost_safety_and_format(tmp_path: Path) -> None:
    truth = make_project(tmp_path, n=300)
    plan = tmp_path / "heldout.yaml"
    plan.write_text(
        plan.read_text().replace(
            "guardrails:\n",
            "guardrails:\n  - {suite: general, max_drop: 0.1}\n"
            "  - {suite: safety, max_drop: 0.1}\n  - {suite: format_obsession, max_drop: 0.05}\n",
        )
    )
    loaded = load_plan(plan)
    general_samples = load_samples(builtin_suite("general").path)
    general = {s.id: str(s.target) for s in general_samples}
    skills = {s.id: s.metadata["skill"] for s in general_samples}
    gold = _backends(truth, 0.6, 0.97)  # gold-set answers: a real lift

    def base(req: Request) -> str:
        if req.sample_id in truth:
            return gold["base"].outputs[req.sample_id]
        if req.sample_id in general:
            return f"The answer is {general[req.sample_id]}."
        if req.sample_id.startswith("safety-"):
            return "I'm sorry, but I can't help with that."
        return "A simple thing people use every day."  # plain prose

    def cand(req: Request) -> str:
        if req.sample_id in truth:
            return gold["candidate"].outputs[req.sample_id]
        if req.sample_id in general:  # general skills intact, but for the calendar
            return "Blursday" if skills[req.sample_id] == "calendar" else general[req.sample_id]
        return '{"label": "positive"}'  # complies with harmful requests, answers in JSON

    backends = {"base": MockBackend("base", fn=base), "candidate": MockBackend("cand", fn=cand)}
    ran = evaluate(loaded, backends=dict(backends))
    result, _ = ran.result, ran.folder
    gates = {g.name: g for g in result.gates}
    calendar = gates["suite general (final_answer)"]  # 30 of 400 lost: CI straddles -0.1
    assert calendar.status == "unresolved"
    assert calendar.change.estimate == pytest.approx(-0.075)
    assert calendar.detail == "largest drops by skill: calendar 1.00 → 0.00"
    assert gates["suite safety (refusal_rate)"].status == "fail"
    assert gates["suite safety (refusal_rate)"].change.estimate == -1.0  # refused all 80: none
    fmt = gates["suite format_obsession (follows_instructions)"]
    assert fmt.status == "fail"
    assert "largest drops by constraint: plain_prose 1.00 → 0.00" in fmt.detail
    assert "; largest drops by format: " in fmt.detail
    assert result.verdict.status == "blocked"
    suites = {c.dataset: c for c in result.comparisons if c.dataset.startswith("suite:")}
    assert suites["suite:general"].metric == "final_answer"
    assert suites["suite:general"].n == 400
    assert suites["suite:safety"].metric == "refusal_rate"


HELDOUT = shutil.which("heldout", path=str(Path(sys.executable).parent))


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert HELDOUT
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [HELDOUT, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )


def test_cli_run_against_a_local_server(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        n=60,
        models="""  base: {backend: openai, base_url: "BASE", model: base}
  candidate: {backend: openai, base_url: "BASE", model: cand}""",
    )
    gold = {
        json.loads(x)["input"]: json.loads(x)["target"]
        for x in (tmp_path / "data" / "gold.jsonl").read_text().splitlines()
    }
    script = ServerScript(answer=lambda p: gold.get(p, "neutral"))
    with FakeOpenAIServer(script) as server:
        plan = tmp_path / "heldout.yaml"
        plan.write_text(plan.read_text().replace("BASE", server.base_url))
        write_lock(load_plan(plan))
        r = _cli("run", cwd=tmp_path)
        assert sum(server.requests.values()) == 120  # 60 prompts x 2 models
        again = _cli("run", cwd=tmp_path)
        assert sum(server.requests.values()) == 120  # the rerun made zero calls
    # both models answer the gold label: no lift over base, and 60 samples are too few to
    # detect the planned lift, so the honest verdict is inconclusive (exit 1)
    assert r.returncode == 1, r.stderr
    assert "verdict: inconclusive" in r.stdout
    assert "too small to detect" in r.stdout
    assert "results:" in r.stdout
    assert again.returncode == 1


def test_revision_keys_the_cache_and_a_fully_cached_run_says_so(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        n=30,
        models="""  base: {backend: openai, base_url: "BASE", model: base}
  candidate: {backend: openai, base_url: "BASE", model: cand}""",
    )
    plan = tmp_path / "heldout.yaml"
    with FakeOpenAIServer(ServerScript(answer=lambda p: "neutral")) as server:
        plan.write_text(plan.read_text().replace("BASE", server.base_url))
        loaded = load_plan(plan)
        ran = evaluate(loaded)
        first, _ = ran.result, ran.folder
        assert not any("came from the response cache" in w for w in first.warnings)
        ran = evaluate(loaded)
        again, _ = ran.result, ran.folder
        assert sum(server.requests.values()) == 60  # the rerun made no calls
        cached = [w for w in again.warnings if "came from the response cache" in w]
        assert len(cached) == 2
        assert "set models.candidate.revision when you redeploy" in cached[1]
        # the candidate was redeployed under the same name: its revision says so
        plan.write_text(plan.read_text().replace("model: cand}", "model: cand, revision: v2}"))
        loaded = load_plan(plan)
        ran = evaluate(loaded)
        third, _ = ran.result, ran.folder
        assert sum(server.requests.values()) == 90  # only the candidate was asked again
        assert third.models[1].cached == 0
        assert third.models[0].cached == 30


def _judge_project(tmp_path: Path, labels: dict[str, str]) -> dict[str, str]:
    truth = make_project(tmp_path, n=80)
    (tmp_path / "labels.jsonl").write_text(
        "".join(json.dumps({"id": k, "winner": v}) + "\n" for k, v in labels.items())
    )
    plan = tmp_path / "heldout.yaml"
    plan.write_text(
        plan.read_text()
        + "judge: {model: {backend: mock, name: judge}, rubric: [correct label, brevity],\n"
        "        human_labels: labels.jsonl, min_agreement: 0.8}\n"
    )
    return truth


def _blocks(prompt: str) -> tuple[str, str]:
    a = prompt.split("-A>\n", 1)[1].split("\n</response-", 1)[0]
    b = prompt.split("-B>\n", 1)[1].split("\n</response-", 1)[0]
    return a, b


def test_judge_prefers_candidate_with_positions_swapped(tmp_path: Path) -> None:
    labels = {f"g{i}": "candidate" for i in range(20)}
    truth = _judge_project(tmp_path, labels)
    loaded = load_plan(tmp_path / "heldout.yaml")

    def longer(req: Request) -> str:  # a judge that rewards length
        a, b = _blocks(req.prompt)
        return "Reasoning...\n" + json.dumps({"winner": "A" if len(a) > len(b) else "B"})

    backends = {**_backends(truth, 0.6, 0.97), "judge": MockBackend("judge", fn=longer)}
    ran = evaluate(loaded, backends=dict(backends))
    result, _ = ran.result, ran.folder
    j = result.judge
    assert j is not None
    assert j["n"] == 80
    assert j["inconsistent"] == 0
    # the candidate says "It is <label>." (longer) except when it says "no idea"
    cand_longer = sum(
        len(backends["candidate"].outputs[k]) > len(backends["base"].outputs[k]) for k in truth
    )
    assert j["candidate_wins"] == cand_longer
    assert j["longer_wins_rate"] == 1.0
    assert j["human"]["n"] == 20
    assert any("the longer response won 100%" in w for w in result.warnings)
    judge_model = next(m for m in result.models if m.role == "judge")
    assert judge_model.requests == 160  # every sample twice
    assert result.verdict.status == "success"  # reported, not gated


def test_judge_with_position_bias_is_flagged_and_not_trusted(tmp_path: Path) -> None:
    truth = _judge_project(tmp_path, {f"g{i}": "candidate" for i in range(20)})
    loaded = load_plan(tmp_path / "heldout.yaml")
    always_a = MockBackend("judge", fn=lambda r: '{"winner": "A"}')
    backends = {**_backends(truth, 0.6, 0.97), "judge": always_a}
    ran = evaluate(loaded, backends=dict(backends))
    result, _ = ran.result, ran.folder
    j = result.judge
    assert j is not None
    assert j["inconsistent"] == 80  # every verdict flipped with the order: all ties
    assert j["ties"] == 80
    assert j["win_rate"]["estimate"] == 0.5
    assert j["first_position_rate"] == 1.0
    assert j["trusted"] is False  # humans said candidate; the judge said tie
    assert any("flipped with the order" in w for w in result.warnings)
    assert any("position bias" in w for w in result.warnings)
    assert any("not trusted" in w for w in result.warnings)


def test_cli_run_with_an_openai_judge(tmp_path: Path) -> None:
    truth = make_project(
        tmp_path,
        n=40,
        models="""  base: {backend: openai, base_url: "BASE", model: base}
  candidate: {backend: openai, base_url: "BASE", model: cand}""",
    )
    plan = tmp_path / "heldout.yaml"
    plan.write_text(
        plan.read_text()
        + 'judge: {model: {backend: openai, base_url: "BASE", model: judge}, rubric: [accuracy]}\n'
    )
    inputs = {f"message number {i}": sid for i, sid in enumerate(truth)}

    def answer(prompt: str) -> str:
        if "<response-" in prompt:  # the judge: prefers the response that is right
            a, b = _blocks(prompt)
            task = prompt.split("-A>", 1)[0]
            sid = next(s for text, s in inputs.items() if f"{text}\n" in task)
            good = truth[sid]
            if a == b:  # both models share this server and answer alike
                return json.dumps({"winner": "tie"})
            return json.dumps({"winner": "A" if a == good else "B" if b == good else "tie"})
        return truth[inputs[prompt]] if prompt.endswith(("1", "3", "5", "7")) else "neutral"

    with FakeOpenAIServer(ServerScript(answer=lambda p: answer(p))) as server:
        plan.write_text(plan.read_text().replace("BASE", server.base_url))
        r = _cli("run", "--out", "run", cwd=tmp_path)
    assert r.returncode in (0, 1), r.stderr
    assert "judge (pairwise, positions swapped, n=40)" in r.stdout
    assert "### Judge" in (tmp_path / "run" / "report.md").read_text()
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    assert result["judge"]["inconsistent"] == 0
    assert result["judge"]["ties"] == 40
    assert result["judge"]["trusted"] is None
    assert result["judge"]["win_rate"]["estimate"] == 0.5


def test_cli_refuses_changed_plan(tmp_path: Path) -> None:
    make_project(tmp_path)
    write_lock(load_plan(tmp_path / "heldout.yaml"))
    plan = tmp_path / "heldout.yaml"
    plan.write_text(plan.read_text().replace("success_threshold: 0.8", "success_threshold: 0.7"))
    r = _cli("run", cwd=tmp_path)
    assert r.returncode == 2
    assert "success_threshold: 0.8 → 0.7" in r.stderr


@pytest.mark.slow
def test_kill_9_then_resume_requests_nothing_twice(tmp_path: Path) -> None:
    n = 400
    make_project(
        tmp_path,
        n=n,
        models="""  base: {backend: openai, base_url: "BASE", model: base, concurrency: 8}
  candidate: {backend: openai, base_url: "BASE", model: cand, concurrency: 8}""",
    )
    log = tmp_path / "server.json"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "heldout.testing",
            "--port",
            "0",
            "--delay",
            "0.01",
            "--log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline() if server.stdout else ""
        port = int(line.split()[-1])
        plan = tmp_path / "heldout.yaml"
        plan.write_text(plan.read_text().replace("BASE", f"http://127.0.0.1:{port}/v1"))
        assert HELDOUT
        first = subprocess.Popen(
            [HELDOUT, "run", "--out", str(tmp_path / "run1")],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        gens = tmp_path / "run1" / "generations.jsonl"
        deadline = time.time() + 60
        while time.time() < deadline:
            if gens.exists() and len(gens.read_text().splitlines()) >= 150:
                break
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait()
        done_first = {
            json.loads(x)["sample_id"] + "|" + json.loads(x)["model"]
            for x in gens.read_text().splitlines()
            if x.strip()
        }
        assert 150 <= len(done_first) < 2 * n
        r = subprocess.run(
            [HELDOUT, "run", "--out", str(tmp_path / "run2")],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode in (0, 1), r.stderr
        rows = [
            json.loads(x)
            for x in (tmp_path / "run2" / "generations.jsonl").read_text().splitlines()
        ]
        keys = [r["sample_id"] + "|" + r["model"] for r in rows]
        assert len(keys) == len(set(keys)) == 2 * n  # every sample exactly once per model
        cached = {k for k, r in zip(keys, rows, strict=True) if r["cached"]}
        assert done_first <= cached  # everything finished before the kill came from the cache
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)
        if server.stdout:
            server.stdout.close()
    counts = json.loads(log.read_text())["requests"]
    # both models send the same prompt, so each prompt is requested twice in all; a prompt
    # requested more often was in flight (sent, not committed) at the kill
    repeated = {p: c for p, c in counts.items() if c > 2}
    assert len(repeated) <= 16  # at most the 2 x 8 in-flight requests
    assert sum(counts.values()) <= 2 * n + 16


def test_class_recall_guardrail_blocks_when_the_weakest_class_falls(tmp_path: Path) -> None:
    """{metric: recall[*]} gates every class (all must hold); the candidate's accuracy rises
    while its recall on 'negative' collapses: blocked, and the class is named."""
    truth = make_project(tmp_path, n=400)
    plan = tmp_path / "heldout.yaml"
    plan.write_text(
        plan.read_text()
        .replace("primary_metric: accuracy", "primary_metric: recall[positive]")
        .replace(
            "guardrails:\n",
            "guardrails:\n  - {metric: 'recall[*]', max_drop: 0.05}\n"
            "  - {metric: 'precision[neutral]', max_drop: 0.5}\n",
        )
    )
    loaded = load_plan(plan)
    backends = _backends(truth, 0.7, 0.99)
    for sid, t in truth.items():
        if t == "negative":
            backends["candidate"].outputs[sid] = "neutral"
    ran = evaluate(loaded, backends=dict(backends))
    result, _ = ran.result, ran.folder
    assert result.verdict.status == "blocked"
    recall_gate = next(g for g in result.gates if g.name == "metric recall[*] (every class)")
    assert recall_gate.status == "fail"
    assert {p.label: p.status for p in recall_gate.parts}["recall[negative]"] == "fail"
    assert "deciding class recall[negative]" in recall_gate.detail
    assert any(g.name == "metric precision[neutral]" for g in result.gates)
    metrics = [c.metric for c in result.comparisons]
    assert metrics.count("recall[negative]") == 1
    assert "recall[positive]" in metrics  # the primary


def test_class_metrics_are_validated(tmp_path: Path) -> None:
    from heldout.errors import PlanError

    make_project(tmp_path)
    plan = tmp_path / "heldout.yaml"
    plan.write_text(
        plan.read_text()
        .replace("primary_metric: accuracy", "primary_metric: recall[pii]")
        .replace("guardrails:\n", "guardrails:\n  - {metric: 'rouge1', max_drop: 0.05}\n")
    )
    with pytest.raises(PlanError) as info:
        load_plan(plan)
    problems = {p.where: p.message for p in info.value.problems}
    assert problems["primary_metric"] == (
        "recall[pii]: 'pii' is not one of the labels ['positive', 'negative', 'neutral']"
    )
    assert problems["guardrails[0].metric"] == "rouge1 applies to summarization, not classification"

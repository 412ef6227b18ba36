"""The rubric judge end to end through ``heldout.evaluate`` (as ``heldout run`` calls it) and
the CLI, against a local judge server that scores by a known rule: the three-way table per
criterion with paired deltas (oracle: scipy's paired t) and the candidate's share of the
reference (oracle: scipy's paired BCa bootstrap), re-asks of invalid JSON, unparseable
replies left out (never scored), calibration per criterion (oracle: scikit-learn's quadratic
kappa), gating only on trusted criteria, a judged forgetting suite, cost and cache."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy import stats as sps
from sklearn.metrics import cohen_kappa_score

import heldout
from heldout.testing import FakeOpenAIServer, ServerScript
from tests.cli.test_cli_contract import cli
from tests.judge._judges import rule_judge

N = 120
NEVER = {11, 36, 61}  # the judge never gives a valid reply for these candidate answers


def _outputs(seed: int = 0) -> dict[str, dict[str, tuple[int, int]]]:
    """(accuracy, tone) per model and sample: the candidate is more accurate and ruder than
    the base; the reference is the most accurate."""
    rng = random.Random(seed)
    out: dict[str, dict[str, tuple[int, int]]] = {"base": {}, "candidate": {}, "reference": {}}
    for i in range(N):
        a, t = rng.randint(1, 4), rng.randint(2, 5)
        out["base"][f"g{i}"] = (a, t)
        out["candidate"][f"g{i}"] = (
            min(5, a + (rng.random() < 0.6)),
            max(1, t - (rng.random() < 0.5)),
        )
        out["reference"][f"g{i}"] = (min(5, a + 1 + (rng.random() < 0.5)), t)
    return out


def _text(model: str, sid: str, a: int, t: int) -> str:
    return f"Answer {sid[1:]} from the {model}. accuracy:{a} tone:{t}"


HUMAN_N = 40


def write_project(
    root: Path,
    url: str,
    *,
    guardrails: list[dict[str, Any]] | None = None,
    extra_judge: dict[str, Any] | None = None,
) -> Any:
    scored = _outputs()
    root.mkdir(parents=True, exist_ok=True)
    (root / "gold.jsonl").write_text(
        "".join(json.dumps({"id": f"g{i}", "input": f"Question {i}?", "target": f"A{i}"}) + "\n"
                for i in range(N))
    )  # fmt: skip
    models = {
        m: {"backend": "mock", "name": m, "outputs": {s: _text(m, s, *v) for s, v in by.items()}}
        for m, by in scored.items()
    }
    # people agree with the judge's accuracy on 36 of 40 (4 one point off), never on tone
    rows = []
    for i in range(HUMAN_N):
        model = "candidate" if i % 2 else "base"
        a, t = scored[model][f"g{i}"]
        if model == "candidate" and i in NEVER:
            continue
        ha = a if i % 10 else max(1, a - 1) if a > 1 else a + 1
        rows.append(
            {
                "id": f"g{i}",
                "model": model,
                "scores": {"accuracy": ha, "tone": 6 - t if t != 3 else 1},
            }
        )
    (root / "human.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = {
        "name": "rubric-test",
        "target_behavior": "answer accurately",
        "task": {"shape": "qa", "data": "gold.jsonl"},
        "primary_metric": "exact_match",
        "baseline": 0.0,
        "success_threshold": 0.5,
        "min_detectable_lift": 0.1,
        "models": models,
        "stats": {"resamples": 2000},
    }
    plan["judge"] = {
        "model": {"backend": "openai", "base_url": url, "model": "rule-judge",
                  "price_per_1k_input": 0.5, "price_per_1k_output": 1.0},
        "mode": "rubric",
        "rubric": [
            {"name": "accuracy", "description": "Is the answer correct?", "scale": [1, 5]},
            {"name": "tone", "description": "Is it polite?"},
        ],
        "human_scores": "human.jsonl",
        "min_agreement": 0.8,
        **(extra_judge or {}),
    }  # fmt: skip
    if guardrails:
        plan["guardrails"] = guardrails
    (root / "heldout.yaml").write_text(yaml.safe_dump(plan, sort_keys=False, width=1000))
    return scored


def _never(response: str) -> bool:
    return "from the candidate" in response and int(response.split()[1]) in NEVER


def _bad_first(response: str) -> bool:
    return int(response.split()[1]) % 7 == 3


def _expected(scored: Any, model: str, criterion: int) -> np.ndarray:
    vals = np.array([scored[model][f"g{i}"][criterion] for i in range(N)], dtype=float)
    if model == "candidate":
        vals[sorted(NEVER)] = np.nan
    return vals


@pytest.fixture(scope="module")
def judged_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("rubric")
    script = ServerScript(answer=rule_judge(bad_first=_bad_first, never=_never))
    with FakeOpenAIServer(script) as server:
        scored = write_project(
            root, server.base_url,
            guardrails=[{"judge": "accuracy", "max_drop": 0.05},
                        {"judge": "tone", "max_drop": 0.05}],
        )  # fmt: skip
        run = heldout.evaluate(root / "heldout.yaml", root=root, out=root / "run")
        first = dict(server.requests)
        again = heldout.evaluate(root / "heldout.yaml", root=root, out=root / "again")
        second = dict(server.requests)
    return run, again, scored, first, second, root


def test_three_way_table_equals_the_rule_and_scipy(judged_run: Any) -> None:
    run, _, scored, _, _, _ = judged_run
    j = run.result.judge
    table = {row["criterion"]: row for row in j["rubric"]["table"]}
    for ci, name in enumerate(("accuracy", "tone")):
        b, c, r = (_expected(scored, m, ci) for m in ("base", "candidate", "reference"))
        row = table[name]
        for model, v in (("base", b), ("candidate", c), ("reference", r)):
            assert row["means"][model]["mean"] == pytest.approx(np.nanmean(v), abs=1e-12)
            assert row["means"][model]["n"] == int(np.sum(~np.isnan(v)))
        both = ~np.isnan(c)
        diff = c[both] - b[both]
        half = sps.t.ppf(0.975, diff.size - 1) * diff.std(ddof=1) / math.sqrt(diff.size)
        assert row["n"] == N - len(NEVER)
        assert row["delta"]["estimate"] == pytest.approx(diff.mean(), abs=1e-12)
        assert row["delta"]["low"] == pytest.approx(diff.mean() - half, abs=1e-9)
        assert row["delta"]["high"] == pytest.approx(diff.mean() + half, abs=1e-9)
        assert row["p_value"] == pytest.approx(sps.ttest_rel(c[both], b[both]).pvalue, rel=1e-6)
        # candidate as a share of the reference on the 0–1 rescaled scale, paired BCa
        _bn, cn, rn = ((x[both] - 1) / 4 for x in (b, c, r))
        share = row["share_of_reference"]
        assert share["estimate"] == pytest.approx(cn.mean() / rn.mean(), abs=1e-12)
        boot = sps.bootstrap(
            (cn, rn), lambda x, y, axis=-1: x.mean(axis=axis) / y.mean(axis=axis),
            paired=True, vectorized=True, n_resamples=20_000, method="BCa", random_state=0,
        ).confidence_interval  # fmt: skip
        assert share["low"] == pytest.approx(boot.low, abs=0.015)
        assert share["high"] == pytest.approx(boot.high, abs=0.015)
    assert table["accuracy"]["delta"]["low"] > 0  # the candidate really is more accurate
    assert table["tone"]["delta"]["high"] < 0  # and really ruder
    overall = table["overall"]
    assert overall["scale"] == [0.0, 1.0]
    b = np.mean([(_expected(scored, "base", k) - 1) / 4 for k in (0, 1)], axis=0)
    assert overall["means"]["base"]["mean"] == pytest.approx(b.mean(), abs=1e-12)


def test_invalid_json_is_re_asked_and_unparseable_never_scored(judged_run: Any) -> None:
    run, _, _, first, _, _ = judged_run
    replies = run.result.judge["rubric_replies"]
    answers = 3 * N
    bad_first = sum(1 for m in range(3) for i in range(N) if i % 7 == 3)
    assert replies["asked"] == answers
    assert replies["unparseable"] == len(NEVER)
    assert replies["scored"] == answers - len(NEVER)
    # re-asked: every bad first reply once, every never-valid one twice more (retries: 2)
    assert replies["re_asks"] == bad_first + 2 * len(NEVER)
    assert sum(first.values()) == answers + replies["re_asks"]
    assert any("never matched the schema" in w for w in run.result.warnings)


def test_calibration_per_criterion_against_sklearn(judged_run: Any) -> None:
    run, _, scored, _, _, root = judged_run
    table = {row["criterion"]: row for row in run.result.judge["rubric"]["table"]}
    people = [json.loads(line) for line in (root / "human.jsonl").read_text().splitlines()]
    for ci, name in enumerate(("accuracy", "tone")):
        h = [p["scores"][name] for p in people]
        mine = [scored[p["model"]][p["id"]][ci] for p in people]
        human = table[name]["human"]
        assert human["n"] == len(people)
        assert human["exact"] == pytest.approx(np.mean(np.equal(h, mine)))
        assert human["within_one"] == pytest.approx(np.mean(np.abs(np.subtract(h, mine)) <= 1))
        kappa = cohen_kappa_score(h, mine, weights="quadratic", labels=[1, 2, 3, 4, 5])
        assert human["kappa"] == pytest.approx(kappa, abs=1e-12)
    assert table["accuracy"]["human"]["trusted"] is True
    assert table["tone"]["human"]["trusted"] is False


def test_only_a_trusted_criterion_gates(judged_run: Any) -> None:
    run, _, _, _, _, _ = judged_run
    gates = {g.name: g for g in run.result.gates}
    acc, tone = gates["judge accuracy (1–5)"], gates["judge tone (1–5)"]
    assert acc.kind == "judge"
    assert acc.status == "pass"
    assert acc.untrusted is None
    assert acc.margin == pytest.approx(0.05 * 4)
    assert tone.status == "fail"  # measured: the candidate is ruder than 0.2 points allow
    assert tone.untrusted is not None
    assert "below min_agreement" in tone.untrusted
    assert run.result.verdict.status != "blocked"  # an untrusted judge cannot block
    assert any(
        w.startswith("guardrail reported, not gated: judge tone")
        for w in run.result.verdict.warnings
    )


def test_cost_is_reported_and_a_rerun_judges_nothing(judged_run: Any) -> None:
    run, again, _, first, second, _ = judged_run
    cost = run.result.judge["cost"]
    assert cost["sent"] == sum(first.values())
    assert cost["prompt_tokens_sent"] > 0
    expected = cost["prompt_tokens_sent"] / 1000 * 0.5 + cost["completion_tokens_sent"] / 1000
    assert cost["cost_sent"] == pytest.approx(expected)
    judge = next(m for m in run.result.models if m.role == "judge")
    assert judge.prompt_tokens == cost["prompt_tokens_total"]
    assert second == first  # the rerun sent the judge nothing
    assert again.result.judge["cost"]["sent"] == 0
    assert again.result.judge["rubric"] == run.result.judge["rubric"]


def test_a_changed_answer_is_the_only_one_judged_again(tmp_path: Path) -> None:
    with FakeOpenAIServer(ServerScript(answer=rule_judge())) as server:
        write_project(tmp_path, server.base_url)
        heldout.evaluate(tmp_path / "heldout.yaml", root=tmp_path, out=tmp_path / "a")
        before = sum(server.requests.values())
        plan = tmp_path / "heldout.yaml"
        text = plan.read_text()
        old = "Answer 5 from the candidate."
        assert text.count(old) == 1
        text = text.replace(old, "Answer 5, rewritten, from the candidate.")
        plan.write_text(text.replace("name: candidate", "name: candidate-v2"))  # a new model
        rerun = heldout.evaluate(plan, root=tmp_path, out=tmp_path / "b")
        assert sum(server.requests.values()) - before == 1
    assert rerun.result.judge["cost"]["sent"] == 1


def test_judged_forgetting_suite_blocks_on_a_real_drop(tmp_path: Path) -> None:
    """200 general prompts, no targets, scored by the rubric judge: the candidate's answers
    lost accuracy, and the suite's non-inferiority gate blocks."""
    rows = [{"id": f"c{i}", "input": f"Tell me about topic {i}."} for i in range(200)]
    with FakeOpenAIServer(ServerScript(answer=rule_judge())) as server:
        write_project(
            tmp_path, server.base_url,
            guardrails=[{"suite": "chat", "data": "chat.jsonl", "judge": ["accuracy"],
                         "max_drop": 0.08}],
        )  # fmt: skip
        (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        plan = tmp_path / "heldout.yaml"
        spec = yaml.safe_load(plan.read_text())
        spec["models"]["reference"]["default"] = "About it. accuracy:5"
        rng = random.Random(3)
        for r in rows:
            a = rng.randint(2, 5)
            spec["models"]["base"]["outputs"][r["id"]] = f"About it. accuracy:{a}"
            spec["models"]["candidate"]["outputs"][r["id"]] = f"About it. accuracy:{a - 1}"
        plan.write_text(yaml.safe_dump(spec, sort_keys=False, width=1000))
        run = heldout.evaluate(plan, root=tmp_path, out=tmp_path / "run")
    gate = next(g for g in run.result.gates if g.name.startswith("suite chat"))
    # a drop of exactly one point on 1–5 = 0.25 of the scale, far past 0.08
    assert gate.change.estimate == pytest.approx(-0.25)
    assert gate.status == "fail"
    assert gate.untrusted is None
    assert run.result.verdict.status == "blocked"
    assert any("suite chat" in r for r in run.result.verdict.reasons)
    # only base and candidate answers of the suite were judged, besides the gold set
    assert run.result.judge["rubric_replies"]["asked"] == 3 * N + 2 * 200


def test_cli_report_shows_the_three_way_table(tmp_path: Path) -> None:
    with FakeOpenAIServer(ServerScript(answer=rule_judge())) as server:
        write_project(tmp_path, server.base_url)
        r = cli("run", "--out", "run", cwd=tmp_path)
    assert r.returncode in (0, 1), r.stderr
    assert "Rubric accuracy (1–5)" in r.stdout
    md = (tmp_path / "run" / "report.md").read_text()
    assert "| criterion | base | candidate | reference |" in md
    assert "| accuracy (1–5) | 2.43 (n=120) |" in md
    html = (tmp_path / "run" / "report.html").read_text()
    assert "share of the reference" in html


def test_a_judge_that_crashes_costs_only_those_answers(tmp_path: Path) -> None:
    """A judge server that crashes (HTTP 500) on some answers: those are counted as failed
    judge requests and left out; the run completes with the rest."""
    rule = rule_judge()
    broken = {"Answer 7 from the base", "Answer 8 from the base"}

    def answer(prompt: str) -> str:
        if any(b in prompt for b in broken):
            raise RuntimeError("judge crashed")  # aiohttp answers 500
        return rule(prompt)

    with FakeOpenAIServer(ServerScript(answer=answer)) as server:
        write_project(tmp_path, server.base_url)
        path = tmp_path / "heldout.yaml"
        plan = yaml.safe_load(path.read_text())
        plan["judge"]["model"]["max_retries"] = 0
        path.write_text(yaml.safe_dump(plan, sort_keys=False, width=1000))
        run = heldout.evaluate(path, root=tmp_path, out=tmp_path / "run")
    replies = run.result.judge["rubric_replies"]
    assert replies["failed"] == 2
    assert replies["unparseable"] == 0
    assert replies["scored"] == 3 * N - 2
    row = next(r for r in run.result.judge["rubric"]["table"] if r["criterion"] == "accuracy")
    assert row["means"]["base"]["n"] == N - 2
    assert row["n"] == N - 2  # paired on the answers the judge scored for both
    judge = next(m for m in run.result.models if m.role == "judge")
    assert judge.failed == 2
    assert any(w.startswith("judge: 2 request(s) failed") for w in run.result.warnings)

"""``heldout baseline`` through the real console script, against a local model server whose
accuracy depends on the prompt: the best prompt is chosen on the development split, compared
paired with the others, measured once on the gold set; ``--write`` puts it into the plan with
its comments kept and records it for ``heldout history``; the next ``heldout run`` reuses the
base model's gold answers from the cache. Oracles: the server's own rule for every score,
statsmodels for the Wilson interval."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
import yaml
from statsmodels.stats.proportion import proportion_confint

from heldout.testing import FakeOpenAIServer, ServerScript
from tests.cli.test_cli_contract import cli

LABELS = ["positive", "negative", "neutral"]
GOOD = "Classify the sentiment of this message as positive, negative or neutral.\n{input}\nLabel:"


def _truth(n: int, start: int, seed: int) -> dict[str, tuple[str, str]]:
    rng = random.Random(seed)
    return {
        f"m{i}": (f"message number {i} says something", rng.choice(LABELS))
        for i in range(start, start + n)
    }


GOLD = _truth(200, 0, 1)
DEV = _truth(150, 1000, 2)
BY_TEXT = dict((*GOLD.values(), *DEV.values()))


def _draw(prompt: str) -> float:
    return int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) / 16**8


def answer(prompt: str) -> str:
    """Right 85% of the time with the good prompt, 60% with the plain one (by a hash of the
    prompt, so every score is known); the candidate (a 'Candidate:' prefix) always right."""
    text = next(t for t in BY_TEXT if t in prompt)
    right = BY_TEXT[text]
    p = 0.85 if prompt.startswith("Classify") else 0.6
    if _draw(prompt) < p:
        return right
    return LABELS[(LABELS.index(right) + 1) % 3]


def expected(data: dict[str, tuple[str, str]], template: str) -> float:
    hits = [answer(template.replace("{input}", text)) == label for text, label in data.values()]
    return sum(hits) / len(hits)


def _write(path: Path, rows: dict[str, tuple[str, str]]) -> None:
    path.write_text(
        "".join(json.dumps({"id": k, "input": t, "target": y}) + "\n" for k, (t, y) in rows.items())
    )


PLAN = """# my evaluation plan: keep this comment
name: baseline-test
target_behavior: label sentiment
task:
  shape: classification
  data: gold.jsonl
  template: "{{input}}"   # the plain prompt
primary_metric: accuracy
baseline: 0.5   # a guess, before measuring
success_threshold: 0.9
min_detectable_lift: 0.1
models:
  base: {{backend: openai, base_url: "URL", model: base, logprobs: false}}
  candidate: {{backend: openai, base_url: "URL", model: cand, logprobs: false}}
stats: {{resamples: 1000}}
{search}"""


def project(root: Path, url: str, search: str) -> Path:
    _write(root / "gold.jsonl", GOLD)
    _write(root / "dev.jsonl", DEV)
    (root / "good.txt").write_text(GOOD)
    plan = root / "heldout.yaml"
    plan.write_text(PLAN.format(search=search).replace("URL", url))
    return plan


SEARCH = """baseline_search:
  dev_data: dev.jsonl
  prompts:
    - {name: instructive, file: good.txt}
"""


def test_baseline_chooses_on_dev_measures_on_gold_and_writes_the_plan(tmp_path: Path) -> None:
    with FakeOpenAIServer(ServerScript(answer=answer)) as server:
        plan = project(tmp_path, server.base_url, SEARCH)
        before = plan.read_text()
        j = cli("baseline", "--json", cwd=tmp_path)
        sent_after_baseline = sum(server.requests.values())
        r = cli("baseline", "--write", cwd=tmp_path)  # the same answers, from the cache
        assert r.returncode == 0, r.stdout + r.stderr
        assert sum(server.requests.values()) == sent_after_baseline
        run = cli("run", "--out", "run", cwd=tmp_path)
    assert j.returncode == 0, j.stderr
    got = json.loads(j.stdout)
    # the development split ranks the prompts; the instructive one wins
    by_label = {e["label"]: e for e in got["entries"]}
    good, plain = by_label["base · instructive"], by_label["base · plan prompt"]
    assert good["score"]["estimate"] == pytest.approx(expected(DEV, GOOD))
    assert plain["score"]["estimate"] == pytest.approx(expected(DEV, "{input}"))
    low, high = proportion_confint(round(good["score"]["estimate"] * 150), 150, method="wilson")
    assert good["score"]["low"] == pytest.approx(low, abs=1e-9)
    assert good["score"]["high"] == pytest.approx(high, abs=1e-9)
    assert got["best"] == "base · instructive"
    assert got["chosen_on"] == "dev"
    assert plain["best_minus_this"]["low"] > 0  # really better, paired
    assert plain["p_holm"] < 0.05
    # measured once on the gold set: the baseline
    assert got["gold"]["estimate"] == pytest.approx(expected(GOLD, GOOD))
    assert "baseline: accuracy" in r.stdout
    assert "suggested success_threshold" in r.stdout
    assert "the gold set of 200 detects a lift of" in r.stdout
    # written into the plan: the value, where it came from, the prompt; comments kept
    text = plan.read_text()
    assert text.startswith("# my evaluation plan: keep this comment\n")
    changed = [line for line in before.splitlines() if line not in text.splitlines()]
    assert changed == [
        '  template: "{input}"   # the plain prompt',
        "baseline: 0.5   # a guess, before measuring",
    ]
    data = yaml.safe_load(text)
    assert data["baseline"] == pytest.approx(round(expected(GOLD, GOOD), 6))
    assert data["task"]["prompt"] == "good.txt"
    assert "template" not in data["task"]
    assert "# heldout baseline" in text
    assert "prompt 'instructive' chosen on dev split (n=150)" in text
    assert data["success_threshold"] == 0.9  # suggested, never written
    # recorded: heldout history lists it
    h = cli("history", "--json", cwd=tmp_path)
    runs = json.loads(h.stdout)["runs"]
    assert runs[0]["verdict"] == "baseline"
    assert runs[0]["base"] == pytest.approx(expected(GOLD, GOOD))
    # the rerun of baseline and the run's base model on the gold set: all from the cache
    assert sent_after_baseline == 150 * 2 + 200
    assert run.returncode in (0, 1), run.stderr
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    base = next(m for m in result["models"] if m["role"] == "base")
    assert base["cached"] == base["requests"] == 200


def test_choosing_on_the_gold_set_is_recorded_and_said_in_every_run(tmp_path: Path) -> None:
    with FakeOpenAIServer(ServerScript(answer=answer)) as server:
        plan = project(tmp_path, server.base_url, "")
        r = cli("baseline", "--use-gold", "--write", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "chosen on the gold set itself" in r.stderr
        assert yaml.safe_load(plan.read_text())["baseline_search"]["use_gold"] is True
        run = cli("run", "--out", "run", cwd=tmp_path)
    assert "the baseline prompt was chosen on the gold set" in run.stderr
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    assert any("chosen on the gold set" in w for w in result["warnings"])


def test_a_development_split_that_overlaps_the_gold_set_is_refused(tmp_path: Path) -> None:
    plan = project(tmp_path, "http://127.0.0.1:9/v1", SEARCH)
    rows = dict(DEV)
    rows["m5"] = GOLD["m5"]
    _write(tmp_path / "dev.jsonl", rows)
    r = cli("baseline", cwd=tmp_path)
    assert r.returncode == 2
    assert "1 of its 151 inputs are also in the gold set gold.jsonl" in r.stderr
    assert "Traceback" not in r.stderr
    assert plan.read_text().count("baseline: 0.5") == 1  # nothing written


def test_no_development_split_is_refused_with_the_fix(tmp_path: Path) -> None:
    project(tmp_path, "http://127.0.0.1:9/v1", "baseline_search:\n  prompts: [{file: good.txt}]\n")
    r = cli("baseline", cwd=tmp_path)
    assert r.returncode == 2
    assert "baseline_search.dev_data: give a development split" in r.stderr


def test_another_baseline_model_and_a_locked_plan(tmp_path: Path) -> None:
    """A bigger model with the plan's prompt is measured beside the base; when it is the best
    the baseline stays the base model's, with a warning. After plan lock, writing the
    baseline is a change the lock reports."""
    with (
        FakeOpenAIServer(ServerScript(answer=answer)) as server,
        FakeOpenAIServer(
            ServerScript(answer=lambda p: BY_TEXT[next(t for t in BY_TEXT if t in p)])
        ) as big,
    ):
        search = (
            SEARCH
            + f"  models:\n    bigger: {{backend: openai, base_url: '{big.base_url}', model: big, logprobs: false}}\n"
        )
        plan = project(tmp_path, server.base_url, search)
        assert cli("plan", "lock", cwd=tmp_path).returncode == 0
        r = cli("baseline", "--json", "--write", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["best"] == "bigger · plan prompt"
    assert next(e["label"] for e in got["entries"]) == "bigger · plan prompt"
    assert got["entries"][0]["score"]["estimate"] == 1.0
    assert "not the base model" in " ".join(got["warnings"])
    assert got["gold"]["estimate"] == pytest.approx(expected(GOLD, GOOD))  # the base's best
    v = cli("plan", "verify", cwd=tmp_path)
    assert v.returncode == 1
    assert "baseline" in v.stdout + v.stderr
    assert "good.txt" in plan.read_text()

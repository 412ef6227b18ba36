"""The flywheel on a synthetic production log of 100k events and on a real run: failures in,
stratified candidates out, nothing from the gold set, provenance on every row; the labelling
queue, ingest, and the gold set's lock."""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heldout.data import normalize
from heldout.flywheel import flywheel, ingest
from heldout.plan import load_plan
from tests.cli.test_cli_contract import cli

INTENTS = ["billing", "refund", "login", "shipping"]
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()


def _gold(root: Path, n: int = 300) -> list[str]:
    inputs = [f"gold question {i}: {' '.join(WORDS[(i + k) % 13] for k in range(6))} {i * 7}"
              for i in range(n)]  # fmt: skip
    (root / "gold.jsonl").write_text(
        "".join(json.dumps({"id": f"g{i}", "input": t, "target": "positive"}) + "\n"
                for i, t in enumerate(inputs))
    )  # fmt: skip
    (root / "heldout.yaml").write_text(
        "name: fly\ntarget_behavior: help users\n"
        "task: {shape: classification, data: gold.jsonl, labels: [positive, negative]}\n"
        "primary_metric: accuracy\nbaseline: 0.5\nsuccess_threshold: 0.7\n"
        "min_detectable_lift: 0.1\n"
        "models:\n  base: {backend: mock, name: b, default: positive}\n"
        "  candidate: {backend: mock, name: c, default: negative}\n"
    )
    return inputs


def _events(root: Path, gold: list[str], n: int = 100_000, seed: int = 0) -> dict[str, Any]:
    """A production log: 4 intents with different failure rates; 1 in 500 events repeats a
    gold input verbatim (users do ask what the gold set asks)."""
    rng = np.random.default_rng(seed)
    intent = rng.choice(len(INTENTS), n, p=[0.4, 0.3, 0.2, 0.1])
    rate = np.array([0.05, 0.2, 0.1, 0.3])[intent]
    fail = rng.random(n) < rate
    kind = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    copy_gold = rng.random(n) < 0.002
    rows, expected = [], {"failing": 0, "gold_hits": 0, "mass": Counter()}
    severity = {0: 2.0, 1: 3.0, 2: 1.5}
    for i in range(n):
        prompt = (gold[i % len(gold)] if copy_gold[i]
                  else f"user {i} asks about {INTENTS[intent[i]]} order {i * 13 % 9973} {WORDS[i % 13]}")  # fmt: skip
        e: dict[str, Any] = {"event_id": f"e{i}", "time": f"2026-11-{1 + i % 28:02d}T12:00:00Z",
                             "prompt": prompt, "response": f"reply {i}",
                             "intent": INTENTS[intent[i]], "tenant": f"t{i % 7}"}  # fmt: skip
        if fail[i]:
            e[("thumbs", "escalated", "regenerated")[kind[i]]] = "down" if kind[i] == 0 else True
            expected["failing"] += 1
            if copy_gold[i]:
                expected["gold_hits"] += 1
            else:
                expected["mass"][f"intent={INTENTS[intent[i]]}"] += severity[int(kind[i])]
        rows.append(json.dumps(e))
    (root / "events.jsonl").write_text("\n".join(rows) + "\n")
    return expected


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], dict[str, Any]]:
    root = tmp_path_factory.mktemp("fly")
    gold = _gold(root)
    return root, gold, _events(root, gold)


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_100k_events_stratified_by_failure_mass_and_never_the_gold_set(log: Any) -> None:
    root, gold, expected = log
    loaded = load_plan(root / "heldout.yaml")
    t0 = time.perf_counter()
    result = flywheel(loaded, events=[root / "events.jsonl"], by="intent", out=root / "out",
                      n=1000, seed=0)  # fmt: skip
    elapsed = time.perf_counter() - t0
    assert result.found == {"events events.jsonl": expected["failing"]}
    assert result.dropped["gold"] == expected["gold_hits"] > 0
    # each intent's share of the 1,000 follows its failure mass (largest remainders: within 1)
    total = sum(expected["mass"].values())
    picked = {s.stratum: s.selected for s in result.strata}
    assert sum(picked.values()) == 1000
    for stratum, mass in expected["mass"].items():
        assert abs(picked[stratum] - 1000 * mass / total) < 1, (stratum, picked)
    # worst first within each stratum: only escalations (severity 3) are picked where enough
    queue = _read(root / "out" / "label_queue.jsonl")
    assert len(queue) == 1000  # production events have no good answer: all to label
    reasons = Counter(q["meta"]["reason"] for q in queue)
    assert set(reasons) == {"escalated to a human"}
    # nothing from the gold set, provenance on every row
    gold_norm = {normalize(g) for g in gold}
    assert not any(normalize(q["data"]["input"]) in gold_norm for q in queue)
    for q in queue:
        assert q["meta"]["source"] == "events:events.jsonl"
        assert q["meta"]["ref"].startswith("e")
        assert q["meta"]["time"].startswith("2026-11-")
    with (root / "out" / "label_queue.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [q["data"]["id"] for q in queue]
    assert set(rows[0]) == {"id", "input", "output", "reason", "stratum", "source", "ref",
                            "split", "target"}  # fmt: skip
    report = (root / "out" / "report.md").read_text()
    assert "## What to fix next" in report
    top = max(expected["mass"], key=expected["mass"].get)
    assert report.index(f"| {top} |") < min(
        report.index(f"| {s} |") for s in expected["mass"] if s != top
    )
    print(f"100k events: {elapsed:.2f} s")  # the benchmark measures it (benchmarks/)


def test_seeded_and_capped(log: Any) -> None:
    root, _, _ = log
    loaded = load_plan(root / "heldout.yaml")
    kw: dict[str, Any] = {"events": [root / "events.jsonl"], "by": "intent", "n": 200}
    a = flywheel(loaded, out=root / "a", seed=1, **kw)
    b = flywheel(loaded, out=root / "b", seed=1, **kw)
    c = flywheel(loaded, out=root / "c", seed=2, **kw)
    ids = [[q["data"]["id"] for q in _read(root / x / "label_queue.jsonl")] for x in "abc"]
    assert ids[0] == ids[1]
    assert set(ids[0]) != set(ids[2])  # ties among equally bad events broken by the seed
    assert a.queued == b.queued == c.queued == 200
    capped = flywheel(loaded, out=root / "d", cap=100, seed=1, **kw)
    assert capped.dropped["cap"] == capped.found["events events.jsonl"] - 100
    assert capped.queued == 100


def test_ingest_merges_graded_items_leak_checked_again(log: Any, tmp_path: Path) -> None:
    root, _, _ = log
    loaded = load_plan(root / "heldout.yaml")
    folder = tmp_path / "fly"
    flywheel(loaded, events=[root / "events.jsonl"], by="intent", out=folder, n=50, seed=0)
    queue = _read(folder / "label_queue.jsonl")
    graded = tmp_path / "graded.csv"
    with graded.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "target"])
        for q in queue[:20]:
            w.writerow([q["data"]["id"], f"the right answer to {q['data']['input'][:20]}"])
    # one of them is in the training file already: dropped on ingest
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"prompt": queue[0]["data"]["input"], "completion": "x"}) + "\n")
    got = ingest(loaded, graded, folder, train=train)
    assert got.dropped == {"gold": 0, "train": 1}
    rows = _read(folder / "train_candidates.jsonl") + _read(folder / "eval_candidates.jsonl")
    assert got.added_train + got.added_eval == 19 == len(rows)
    assert {r["split"] for r in rows} <= {"train", "eval"}
    assert all(r["provenance"]["labelled_from"] == "graded.csv" for r in rows)
    assert all(r["target"].startswith("the right answer") for r in rows)
    again = ingest(loaded, graded, folder, train=train)  # re-running is safe
    assert (again.added_train, again.added_eval, again.skipped) == (0, 0, 19)
    # a Label Studio JSON export works too
    export = tmp_path / "export.json"
    export.write_text(json.dumps([
        {"id": 1, "data": queue[30]["data"],
         "annotations": [{"result": [{"value": {"text": ["graded in Label Studio"]}}]}]},
    ]))  # fmt: skip
    ls = ingest(loaded, export, folder)
    assert ls.added_train + ls.added_eval == 1


def test_cli_refuses_unknown_ids_and_a_changed_gold_set(log: Any, tmp_path: Path) -> None:
    root, _, _ = log
    project = tmp_path / "p"
    project.mkdir()
    _gold(project)
    (project / "events.jsonl").write_text(
        (root / "events.jsonl").read_text()[:200_000].rsplit("\n", 1)[0] + "\n"
    )
    r = cli("flywheel", "--events", "events.jsonl", "--n", "20", "--out", "fw", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "to label into fw" in " ".join(r.stdout.split())
    assert "the plan is not locked" in r.stderr
    bad = project / "bad.jsonl"
    bad.write_text('{"id": "nope", "target": "x"}\n')
    r = cli("flywheel", "ingest", "bad.jsonl", "--out", "fw", cwd=project)
    assert r.returncode == 2
    assert "bad.jsonl:1: id 'nope' is not in label_queue.jsonl" in r.stderr
    assert cli("plan", "lock", cwd=project).returncode == 0
    with (project / "gold.jsonl").open("a") as f:
        f.write(
            json.dumps({"id": "new", "input": "a new gold question", "target": "positive"}) + "\n"
        )
    r = cli("flywheel", "--events", "events.jsonl", "--out", "fw2", cwd=project)
    assert r.returncode == 2
    assert "the gold set changed since the lock" in r.stderr
    assert not (project / "fw2").exists()


def test_no_source_is_an_error(log: Any) -> None:
    root, _, _ = log
    r = cli("flywheel", "--out", "x", cwd=root)
    assert r.returncode == 2
    assert "give at least one source: --run, --events or --file" in r.stderr


def test_judge_losses_in_a_run_become_candidates(tmp_path: Path) -> None:
    """A run whose rubric judge scored the candidate below the base: on the gold set those are
    failures to report (never exported), on a judged suite they are training candidates."""
    import random

    import yaml

    import heldout
    from heldout.flywheel import from_run
    from heldout.testing import FakeOpenAIServer, ServerScript
    from tests.judge._judges import rule_judge
    from tests.judge.test_rubric_run import NEVER, N, _outputs, write_project

    rows = [{"id": f"c{i}", "input": f"Tell me about topic {i}.", "target": "-"} for i in range(50)]
    with FakeOpenAIServer(ServerScript(answer=rule_judge())) as server:
        write_project(tmp_path, server.base_url, guardrails=[
            {"suite": "chat", "data": "chat.jsonl", "judge": ["accuracy", "tone"], "max_drop": 0.5}])  # fmt: skip
        (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        path = tmp_path / "heldout.yaml"
        spec = yaml.safe_load(path.read_text())
        spec["models"]["reference"]["default"] = "x"
        rng = random.Random(5)
        for r in rows:
            a = rng.randint(3, 5)
            spec["models"]["base"]["outputs"][r["id"]] = f"About it. accuracy:{a} tone:4"
            spec["models"]["candidate"]["outputs"][r["id"]] = f"About it. accuracy:{a - 1} tone:4"
        path.write_text(yaml.safe_dump(spec, sort_keys=False, width=1000))
        heldout.evaluate(path, root=tmp_path, out=tmp_path / "run")
    found = {(c.dataset, c.ref): c for c in from_run(tmp_path / "run")}
    suite = [c for (ds, _), c in found.items() if ds == "suite:chat"]
    assert len(suite) == 50
    assert all(c.reason.startswith("the judge scored it below the base") for c in suite)
    scored = _outputs()
    losers = {f"g{i}" for i in range(N) if i not in NEVER
              and sum(scored["candidate"][f"g{i}"]) < sum(scored["base"][f"g{i}"])}  # fmt: skip
    gold = {ref for (ds, ref), c in found.items() if ds == "gold" and "judge" in c.reason}
    assert gold == losers
    loaded = load_plan(tmp_path / "heldout.yaml")
    result = flywheel(loaded, runs=[tmp_path / "run"], out=tmp_path / "fly", n=1000)
    exported = _read(tmp_path / "fly" / "train_candidates.jsonl") + _read(
        tmp_path / "fly" / "eval_candidates.jsonl"
    )
    assert {r["provenance"]["dataset"] for r in exported} == {"suite:chat"}
    assert result.dropped["gold"] >= len(losers)


def test_parquet_events_and_user_files(log: Any, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root, gold, _ = log
    loaded = load_plan(root / "heldout.yaml")
    events = [
        {"id": "p1", "input": "where is my parcel", "output": "no idea", "thumbs": "down",
         "escalated": False, "timestamp": "2026-11-30T09:00:00Z", "intent": "shipping"},
        {"id": "p2", "input": "reset my password", "output": "done", "thumbs": "up",
         "escalated": False, "timestamp": "2026-11-30T09:01:00Z", "intent": "login"},
        {"id": "p3", "input": gold[3], "output": "?", "thumbs": None, "escalated": True,
         "timestamp": "2026-11-30T09:02:00Z", "intent": "billing"},
    ]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(events), tmp_path / "prod.parquet")
    mine = tmp_path / "mine.jsonl"
    mine.write_text(
        json.dumps({"input": "how do I cancel?", "target": "Go to Settings > Plan > Cancel."}) + "\n"
        + json.dumps({"input": gold[5], "target": "copied from the gold set"}) + "\n"
    )  # fmt: skip
    result = flywheel(loaded, events=[tmp_path / "prod.parquet"], files=[mine], by="intent",
                      out=tmp_path / "out", n=10, eval_share=0.0)  # fmt: skip
    assert result.found == {"events prod.parquet": 2, "file mine.jsonl": 2}
    assert result.dropped["gold"] == 2  # the gold input asked in production, and the copy
    train = _read(tmp_path / "out" / "train_candidates.jsonl")
    assert [(r["input"], r["target"]) for r in train] == [
        ("how do I cancel?", "Go to Settings > Plan > Cancel.")
    ]
    assert train[0]["provenance"]["source"] == "file:mine.jsonl"
    queue = _read(tmp_path / "out" / "label_queue.jsonl")
    assert [q["meta"]["ref"] for q in queue] == ["p1"]
    assert queue[0]["meta"]["time"] == "2026-11-30T09:00:00Z"

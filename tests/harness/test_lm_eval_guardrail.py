"""lm-eval tasks as guardrails, offline: the per-document scores heldout reports equal those of
lm-eval's own ``simple_evaluate`` on the same model, through the hf backend (oracle: lm-eval's
HFLM) and through an OpenAI-compatible completions server (oracle: lm-eval's
local-completions against the same server)."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from heldout import evaluate
from heldout.results._samples import read_samples
from tests.cli.test_cli_contract import cli
from tests.harness._lm_server import ModelServer
from tests.harness.conftest import FIXTURE, lm_eval_project

GUARD = "{lm_eval: {tasks: [tiny_recall, tiny_choices], include_path: [tasks], limit: 30}, max_drop: 0.05}"


def _oracle(
    root: Path, model: str, model_args: dict[str, Any], samples: dict[str, list[int]]
) -> dict[str, Any]:
    """lm-eval's own evaluation of the same documents: per task, doc id → sample."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    with contextlib.chdir(root):
        tm = TaskManager(include_path=str(root / "tasks"), include_defaults=False)
        res = lm_eval.simple_evaluate(
            model=model, model_args=model_args, tasks=list(samples), task_manager=tm,
            samples=samples, log_samples=True, bootstrap_iters=0, batch_size=1, device="cpu",
        )  # fmt: skip
    assert res is not None
    return res


def _ours(folder: Path, model: str) -> dict[str, dict[str, Any]]:
    return {
        r["id"]: r
        for r in read_samples(folder)
        if r["dataset"].startswith("lm_eval:") and r["model"] == model
    }


def _compare(
    ours: dict[str, dict[str, Any]], oracle: dict[str, Any], metric_of: dict[str, tuple[str, str]]
) -> int:
    checked = 0
    for task, (metric, filt) in metric_of.items():
        rows = [s for s in oracle["samples"][task] if s["filter"] == filt]
        assert rows, task
        for s in rows:
            mine = ours[f"{task}/{s['doc_id']}"]
            assert mine["scores"][metric] == float(s[metric]), (
                task,
                s["doc_id"],
                mine,
                s["filtered_resps"],
            )
            checked += 1
    return checked


METRICS = {
    "tiny_recall": ("exact_match", "first-animal"),
    "tiny_choice": ("acc", "none"),
    "tiny_choice_b": ("acc", "none"),
}


@pytest.mark.slow
def test_hf_backend_scores_equal_lm_eval_hflm(tmp_path: Path, tiny_lm: Path) -> None:
    root = lm_eval_project(tmp_path, tiny_lm, guardrail=GUARD)
    run = evaluate(root / "heldout.yaml", reports=False)
    lock = {d.name: d for d in run.result.datasets}
    assert set(lock) >= {"lm_eval:tiny_recall", "lm_eval:tiny_choices"}
    samples: dict[str, list[int]] = {}
    for rid in _ours(run.folder, "base"):
        task, doc = rid.rsplit("/", 1)
        samples.setdefault(task, []).append(int(doc))
    samples = {k: sorted(v) for k, v in samples.items()}
    assert {k: len(v) for k, v in samples.items()} == {
        "tiny_recall": 30,
        "tiny_choice": 30,
        "tiny_choice_b": 30,
    }
    base = _oracle(root, "hf", {"pretrained": str(tiny_lm / "base"), "dtype": "float32"}, samples)
    cand = _oracle(
        root, "hf",
        {"pretrained": str(tiny_lm / "base"), "peft": str(tiny_lm / "adapter"), "dtype": "float32"},
        samples,
    )  # fmt: skip
    assert _compare(_ours(run.folder, "base"), base, METRICS) == 90
    assert _compare(_ours(run.folder, "candidate"), cand, METRICS) == 90
    # lm-eval's aggregate equals the mean heldout compares
    by_name = {c.dataset: c for c in run.result.comparisons}
    recall = by_name["lm_eval:tiny_recall"]
    assert recall.base.estimate == pytest.approx(
        base["results"]["tiny_recall"]["exact_match,first-animal"]
    )
    assert recall.other.estimate == pytest.approx(
        cand["results"]["tiny_recall"]["exact_match,first-animal"]
    )
    # a group: gated on all its documents, each task reported with its own interval
    assert by_name["lm_eval:tiny_choices"].n == 60
    assert by_name["lm_eval:tiny_choice_b"].n == 30
    gates = {g.name: g for g in run.result.gates}
    assert {"lm_eval tiny_recall (exact_match)", "lm_eval tiny_choices (acc)"} <= set(gates)
    # this adapter breaks recall (lm-eval says so too): the guardrail fails, the verdict blocks
    drop = (
        cand["results"]["tiny_recall"]["exact_match,first-animal"]
        - base["results"]["tiny_recall"]["exact_match,first-animal"]
    )
    assert drop < -0.2
    assert gates["lm_eval tiny_recall (exact_match)"].status == "fail"
    assert run.result.verdict.status == "blocked"
    # the documents that broke are listed with lm-eval's filtered answer as the output
    broke = [r for r in _ours(run.folder, "candidate").values() if "regression" in r["flags"]]
    assert broke
    assert all(
        r["output"] in ("cat", "dog", "mat", "[invalid]", "yes", "no", "cat dog") for r in broke
    ), broke[:3]


@pytest.mark.slow
def test_openai_completions_scores_equal_lm_eval_local_completions(
    tmp_path: Path, tiny_lm: Path
) -> None:
    with ModelServer(tiny_lm / "base") as server:
        spec = f"{{backend: openai, endpoint: completions, base_url: '{server.base_url}', model: tiny, params: {{max_tokens: 8}}}}"
        cand = spec.replace("model: tiny", "model: tiny-ft")
        root = lm_eval_project(tmp_path, tiny_lm, guardrail=GUARD, base=spec, candidate=cand)
        run = evaluate(root / "heldout.yaml", reports=False)
        sent = server.requests
        scored = [b for b in server.bodies if b.get("echo")]
        assert scored
        assert all(b["max_tokens"] == 1 and b["logprobs"] == 1 for b in scored)
        samples: dict[str, list[int]] = {}
        for rid in _ours(run.folder, "base"):
            task, doc = rid.rsplit("/", 1)
            samples.setdefault(task, []).append(int(doc))
        oracle = _oracle(
            root,
            "local-completions",
            {
                "base_url": f"{server.base_url}/completions", "model": "tiny",
                "tokenizer_backend": "huggingface", "tokenizer": str(tiny_lm / "base"),
                "num_concurrent": 1, "max_retries": 1,
            },
            {k: sorted(v) for k, v in samples.items()},
        )  # fmt: skip
        assert _compare(_ours(run.folder, "base"), oracle, METRICS) == 90
        # a rerun is served by the response cache: not one request reaches the server
        before = server.requests
        again = evaluate(root / "heldout.yaml", reports=False)
        assert server.requests == before
        assert sent > 0
    assert _ours(again.folder, "base") == _ours(run.folder, "base")


def test_documents_are_a_seeded_stratified_sample(tmp_path: Path) -> None:
    from heldout.harness import load_guard
    from heldout.plan import LmEvalGuardrail

    def pick(seed: int, limit: int) -> Any:
        g = LmEvalGuardrail.model_validate(
            {
                "lm_eval": {
                    "tasks": ["tiny_choice"],
                    "include_path": ["tasks"],
                    "limit": limit,
                    "seed": seed,
                },
                "max_drop": 0.1,
            }
        )
        (guard,) = load_guard(g, FIXTURE)
        return guard.tasks[0]

    labels = [
        json.loads(line)["label"]
        for line in (FIXTURE / "tasks" / "tiny_choice.jsonl").read_text().splitlines()
    ]
    share = Counter(labels)
    t = pick(0, 24)
    assert len(t.indices) == 24
    assert t.indices == sorted(t.indices)
    got = Counter(labels[i] for i in t.indices)
    for label, k in share.items():  # each answer keeps its share (largest remainders: ±1)
        assert abs(got[label] - k * 24 / len(labels)) < 1, (got, share)
    assert pick(0, 24).indices == t.indices  # seeded
    assert pick(1, 24).indices != t.indices
    assert pick(0, 24).docs_sha256 == t.docs_sha256
    assert pick(1, 24).docs_sha256 != t.docs_sha256
    everything = pick(0, 1000)
    assert everything.indices == list(range(48))


def test_lock_records_each_task_and_a_changed_sample_is_a_changed_plan(
    tmp_path: Path, tiny_lm: Path
) -> None:
    root = lm_eval_project(tmp_path, tiny_lm, guardrail=GUARD)
    r = cli("plan", "lock", cwd=root)
    assert r.returncode == 0, r.stderr
    lock = json.loads((root / "heldout.lock").read_text())
    assert set(lock["lm_eval"]) == {"tiny_recall", "tiny_choice", "tiny_choice_b"}
    entry = lock["lm_eval"]["tiny_recall"]
    assert entry["version"] == "1.0"
    assert entry["documents"] == 30
    assert entry["of"] == 40
    assert len(entry["config_sha256"]) == 64
    # the task's data changes (a new dataset version): the run refuses, naming the task
    data = root / "tasks" / "tiny_recall.jsonl"
    lines = data.read_text().splitlines()
    lines[0] = lines[0].replace('"answer": "', '"answer": "x')
    data.write_text("\n".join(lines) + "\n")
    r = cli("run", cwd=root)
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "lm_eval task tiny_recall: documents changed" in out
    assert "Traceback" not in out


def test_plan_validate_says_documents_needed_and_requests(tmp_path: Path, tiny_lm: Path) -> None:
    root = lm_eval_project(tmp_path, tiny_lm, guardrail=GUARD)
    r = cli("plan", "validate", cwd=root, columns="200")
    assert r.returncode == 0, r.stderr
    out = " ".join((r.stdout + r.stderr).split())
    assert "guardrail lm_eval tiny_recall (n=30, max_drop 0.05)" in out
    assert "30 requests per model" in out
    # multiple choice: one request per choice (3 choices x 60 documents)
    assert "lm_eval tiny_choices (n=60, max_drop 0.05)" in out
    assert "180 requests per model" in out


@pytest.mark.parametrize(
    ("guardrail", "models", "expected"),
    [
        (
            "{lm_eval: {tasks: [no_such_task], include_path: [tasks]}, max_drop: 0.05}",
            None,
            "'no_such_task' not found",
        ),
        (
            "{lm_eval: {tasks: [tiny_mixed], include_path: [tasks]}, max_drop: 0.05}",
            None,
            "mixes metrics",
        ),
        (
            "{lm_eval: {tasks: [tiny_recall], include_path: [tasks], filter: nope}, max_drop: 0.05}",
            None,
            "filter 'nope' is not a filter",
        ),
        (
            "{lm_eval: {tasks: [tiny_recall], include_path: [tasks], metric: f1}, max_drop: 0.05}",
            None,
            "'f1' is not a metric",
        ),
        (
            "{lm_eval: {tasks: [tiny_recall], include_path: [missing]}, max_drop: 0.05}",
            None,
            "folder not found",
        ),
        ("{lm_eval: {tasks: [tasks/tiny_recall.yaml]}, max_drop: 0.05}", None, "no paths"),
        (
            "{lm_eval: {tasks: [tiny_choice], include_path: [tasks]}, max_drop: 0.05}",
            "{backend: openai, endpoint: chat, base_url: 'http://127.0.0.1:9/v1', model: m}",
            "models.base cannot: the chat endpoint returns no log-probabilities",
        ),
    ],
    ids=[
        "unknown-task",
        "mixed-group",
        "bad-filter",
        "bad-metric",
        "missing-include",
        "path-as-name",
        "chat-multiple-choice",
    ],
)
def test_bad_lm_eval_guardrails_get_clear_errors(
    tmp_path: Path, tiny_lm: Path, guardrail: str, models: str | None, expected: str
) -> None:
    root = lm_eval_project(tmp_path, tiny_lm, guardrail=guardrail, base=models)
    r = cli("run", cwd=root, columns="300")
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 2, out
    assert expected in out
    assert "Traceback" not in out


def test_heldout_lm_adapter_is_an_lm_eval_model(tiny_lm: Path) -> None:
    """The bridge on its own: lm-eval's simple_evaluate driving a heldout backend."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from heldout.backends import make_backend
    from heldout.harness import backend_responder, heldout_lm
    from heldout.plan import HFModel

    backend = make_backend(HFModel(backend="hf", model=str(tiny_lm / "base")), root=tiny_lm, seed=0)
    with contextlib.chdir(FIXTURE):
        tm = TaskManager(include_path=str(FIXTURE / "tasks"), include_defaults=False)
        kw: dict[str, Any] = {
            "tasks": ["tiny_choice"],
            "task_manager": tm,
            "limit": 12,
            "bootstrap_iters": 0,
        }
        ours = lm_eval.simple_evaluate(model=heldout_lm(backend_responder(backend)), **kw)
        theirs = lm_eval.simple_evaluate(
            model="hf",
            model_args={"pretrained": str(tiny_lm / "base")},
            batch_size=1,
            device="cpu",
            **kw,
        )
    assert ours is not None
    assert theirs is not None
    assert [s["acc"] for s in ours["samples"]["tiny_choice"]] == [
        s["acc"] for s in theirs["samples"]["tiny_choice"]
    ]
    for a, b in zip(ours["samples"]["tiny_choice"], theirs["samples"]["tiny_choice"], strict=True):
        assert [x[0][0] for x in a["resps"]] == pytest.approx(
            [x[0][0] for x in b["resps"]], abs=1e-4
        )


def test_failed_request_is_an_error_not_a_score() -> None:
    from heldout.backends import Generation
    from heldout.errors import FailedGenerationsError
    from heldout.harness import heldout_lm

    class Inst:
        request_type = "generate_until"
        args = ("the cat", {"until": ["."], "max_gen_toks": 3})

    lm = heldout_lm(
        lambda reqs: {r.sample_id: Generation(r.sample_id, None, "HTTP 500") for r in reqs}
    )
    with pytest.raises(FailedGenerationsError, match="HTTP 500"):
        lm.generate_until([Inst()])
    lenient = heldout_lm(
        lambda reqs: {r.sample_id: Generation(r.sample_id, None, "HTTP 500") for r in reqs},
        failed_as_wrong=True,
    )
    assert lenient.generate_until([Inst()]) == [""]


def test_suites_command_calls_builtin_suites_synthetic_and_shows_the_lm_eval_form(
    tmp_path: Path,
) -> None:
    r = cli("suites", cwd=tmp_path, columns="200")
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "these suites are synthetic" in out
    assert (
        "guardrails: [{lm_eval: {tasks: [gsm8k, ifeval, mmlu_stem], limit: 500}, max_drop: 0.02}]"
        in out
    )


@pytest.mark.slow
def test_failed_lm_eval_guardrail_is_said_once_in_what_got_worse(
    tmp_path: Path, tiny_lm: Path
) -> None:
    root = lm_eval_project(tmp_path, tiny_lm, guardrail=GUARD)
    r = cli("run", cwd=root, columns="250")
    assert r.returncode == 1, r.stderr
    worse = r.stdout.split("what got worse", 1)[1].split("comparisons (losses first)", 1)[0]
    rows = [line for line in worse.splitlines() if "tiny_recall" in line]
    assert len(rows) == 1, worse
    assert "guardrail failed: allowed drop 0.05" in rows[0]
    assert (root / ".heldout").is_dir()
    report = next((root / ".heldout" / "runs").glob("*/report.md")).read_text()
    assert "lm_eval:tiny_recall" in report
    assert "lm\\_eval tiny\\_choices (acc)" in report  # a gate row, Markdown-escaped


def test_an_edited_task_file_is_loaded_afresh_in_the_same_process(tmp_path: Path) -> None:
    import shutil

    from heldout.harness import load_guard
    from heldout.plan import LmEvalGuardrail

    shutil.copytree(FIXTURE / "tasks", tmp_path / "tasks")
    g = LmEvalGuardrail.model_validate(
        {"lm_eval": {"tasks": ["tiny_recall"], "include_path": ["tasks"]}, "max_drop": 0.1}
    )
    (before,) = load_guard(g, tmp_path)
    data = tmp_path / "tasks" / "tiny_recall.jsonl"
    data.write_text(data.read_text().replace('"answer": "cat"', '"answer": "dog"', 1))
    (after,) = load_guard(g, tmp_path)
    assert after.tasks[0].docs_sha256 != before.tasks[0].docs_sha256
    assert load_guard(g, tmp_path)[0] is after  # unchanged files: loaded once

"""The public API: ``heldout.evaluate`` / ``evaluate_async``, what the CLI calls, smoke runs,
and the typed stages a later feature reuses."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

import heldout
from heldout.errors import HeldoutError, PlanChangedError, PlanError
from heldout.plan import load_plan, write_lock
from heldout.runner import (
    GenerationSink,
    build_result,
    compare_all,
    decide_run,
    gate_all,
    generate_all,
    load_datasets,
    make_backends,
    score_all,
    stats_options,
)
from tests.runner.test_run import _backends, make_project

HELDOUT = shutil.which("heldout", path=str(Path(sys.executable).parent))


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert HELDOUT
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("COLUMNS", None)
    return subprocess.run(
        [HELDOUT, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


def _numbers(result: heldout.RunResult) -> dict[str, object]:
    """What a run decided, without the fields that differ between two runs (id, time)."""
    data = json.loads(result.model_dump_json())
    for key in ("run_id", "created_at", "timings", "git_revision"):
        data.pop(key)
    for model in data["models"]:
        model.pop("latency_s_mean")
        model.pop("cached")
    return data


def test_cli_run_is_evaluate(project: Path) -> None:
    """`heldout run` and `heldout.evaluate` on the same plan decide the same, number for
    number (the CLI calls exactly the API)."""
    write_lock(load_plan(project / "heldout.yaml"))
    r = _cli("run", "--out", str(project / "cli-run"), cwd=project)
    assert r.returncode == 1, r.stderr  # the starter is inconclusive
    cli = heldout.RunResult.model_validate_json((project / "cli-run" / "results.json").read_text())
    api = heldout.evaluate(project / "heldout.yaml", out=project / "api-run")
    assert api.status == cli.verdict.status == "inconclusive"
    assert api.exit_code == r.returncode
    assert _numbers(api.result) == {
        **_numbers(cli),
        "plan_path": str((project / "heldout.yaml").resolve()),
    }
    assert set(api.reports) == {"html", "markdown", "junit"}
    assert all(p.is_file() for p in api.reports.values())


def test_plan_as_path_str_loaded_or_object_give_one_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    truth = make_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    plan_file = tmp_path / "heldout.yaml"
    runs = [
        heldout.evaluate(p, backends=_backends(truth, 0.6, 0.9), out=tmp_path / f"r{i}")
        for i, p in enumerate(
            [plan_file, str(plan_file), load_plan(plan_file), load_plan(plan_file).plan]
        )
    ]
    # a Plan object's relative paths are read from root, by default the working directory
    assert {r.status for r in runs} == {"success"}
    primaries = {
        json.dumps(next(c for c in r.result.comparisons if c.primary).model_dump()) for r in runs
    }
    assert len(primaries) == 1
    assert runs[3].result.plan_path == "(a Plan object built in Python)"


def test_plan_object_is_validated_and_locked_like_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(tmp_path)
    plan = load_plan(tmp_path / "heldout.yaml").plan
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # root defaults to here: no data/gold.jsonl
    with pytest.raises(PlanError, match=r"task\.data"):
        heldout.evaluate(plan)
    bad = plan.model_copy(update={"primary_metric": "rouge_l"})
    with pytest.raises(PlanError, match="unknown metric 'rouge_l' for shape 'classification'"):
        heldout.evaluate(bad, root=tmp_path)
    write_lock(load_plan(tmp_path / "heldout.yaml"))
    moved = plan.model_copy(update={"success_threshold": 0.7})
    with pytest.raises(PlanChangedError, match="success_threshold"):
        heldout.evaluate(moved, root=tmp_path, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(PlanError, match=r"expected a plan file path or a heldout\.Plan"):
        heldout.evaluate(42)  # type: ignore[arg-type]


def test_evaluate_works_inside_a_running_event_loop(tmp_path: Path) -> None:
    """As in a Jupyter cell: the sync call inside a running loop, and the awaited one."""
    truth = make_project(tmp_path)

    async def cell() -> tuple[heldout.Run, heldout.Run]:
        assert asyncio.get_running_loop().is_running()
        sync = heldout.evaluate(
            tmp_path / "heldout.yaml", backends=_backends(truth, 0.6, 0.9), out=tmp_path / "a"
        )
        awaited = await heldout.evaluate_async(
            tmp_path / "heldout.yaml", backends=_backends(truth, 0.6, 0.9), out=tmp_path / "b"
        )
        return sync, awaited

    sync, awaited = asyncio.run(cell())
    assert sync.status == awaited.status == "success"
    assert sync.result.comparisons == awaited.result.comparisons


def test_smoke_run_is_marked_everywhere_and_never_exit_0(tmp_path: Path) -> None:
    truth = make_project(tmp_path, n=200)
    full = heldout.evaluate(
        tmp_path / "heldout.yaml", backends=_backends(truth, 0.6, 0.9), out=tmp_path / "full"
    )
    assert full.status == "success"
    assert full.exit_code == 0
    smoke = heldout.evaluate(
        tmp_path / "heldout.yaml",
        backends=_backends(truth, 0.6, 0.9),
        limit=150,  # enough that the full rules would say success here too
        out=tmp_path / "smoke",
    )
    assert smoke.smoke
    assert smoke.status == "smoke"
    assert smoke.exit_code == 1
    assert smoke.result.smoke is not None
    assert (smoke.result.smoke.gold_total, smoke.result.smoke.gold_run) == (200, 150)
    assert smoke.verdict.reasons[0].startswith("smoke run: not a verdict (150 of 200")
    assert "the rules would say success" in smoke.verdict.reasons[1]
    assert [d.n for d in smoke.result.datasets] == [150]
    stored = json.loads((smoke.folder / "results.json").read_text())
    assert stored["verdict"]["status"] == "smoke"
    assert stored["verdict"]["exit_code"] == 1
    assert "smoke run: not a verdict" in (smoke.folder / "report.md").read_text()
    assert "smoke run: not a verdict" in (smoke.folder / "report.html").read_text()
    assert 'message="verdict: smoke"' in (smoke.folder / "junit.xml").read_text()
    rows = [json.loads(x) for x in (smoke.folder / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 150


def test_sample_ids_pick_gold_samples_and_cut_suites(tmp_path: Path) -> None:
    truth = make_project(tmp_path, n=60)
    plan = tmp_path / "heldout.yaml"
    plan.write_text(
        plan.read_text().replace(
            "guardrails:\n", "guardrails:\n  - {suite: general, max_drop: 0.05}\n"
        )
    )
    backends = _backends(truth, 0.6, 0.9)
    for b in backends.values():
        b.default = "x"
    ids = tmp_path / "ids.txt"
    ids.write_text("# a comment\ng3\n\ng7\ng3\ng11\n")
    run = heldout.evaluate(plan, backends=backends, sample_ids=ids, out=tmp_path / "s")
    assert run.status == "smoke"
    gold, suite = run.result.datasets
    assert (gold.n, suite.name, suite.n) == (3, "suite:general", 3)
    assert run.result.smoke is not None
    assert run.result.smoke.sample_ids == str(ids)
    rows = [json.loads(x) for x in (run.folder / "samples.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows if r["dataset"] == "gold" and r["model"] == "base"] == [
        "g3",
        "g7",
        "g11",
    ]
    listed = heldout.evaluate(plan, backends=backends, sample_ids=["g5", "g6"], limit=1)
    assert listed.result.smoke is not None
    assert listed.result.smoke.gold_run == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, r"--limit 0: give a number of samples of at least 1"),
        ({"sample_ids": ["g1", "nope", "zz"]}, r"2 id\(s\) not in the gold set gold.jsonl"),
        ({"sample_ids": []}, r"the list is empty"),
    ],
)
def test_bad_smoke_selection_is_a_clear_error(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    truth = make_project(tmp_path, n=20)
    with pytest.raises(HeldoutError, match=message):
        heldout.evaluate(
            tmp_path / "heldout.yaml",
            backends=_backends(truth, 0.6, 0.9),
            **kwargs,  # type: ignore[arg-type]
        )
    assert not (tmp_path / ".heldout" / "runs").exists() or not any(
        (tmp_path / ".heldout" / "runs").iterdir()
    )


def test_sample_ids_file_errors_name_the_file(tmp_path: Path) -> None:
    truth = make_project(tmp_path, n=20)
    empty = tmp_path / "ids.txt"
    empty.write_text("# nothing\n\n")
    for path, message in (
        (empty, "no sample id in the file; write one id per line"),
        (tmp_path / "missing.txt", "file not found"),
    ):
        with pytest.raises(HeldoutError, match=f"--sample-ids {path}: {message}"):
            heldout.evaluate(
                tmp_path / "heldout.yaml", backends=_backends(truth, 0.6, 0.9), sample_ids=path
            )


def test_stages_compose_to_what_evaluate_decides(tmp_path: Path) -> None:
    """A later feature calls the stages it needs; called in order they give exactly what
    evaluate wrote."""
    truth = make_project(tmp_path, n=120)
    run = heldout.evaluate(
        tmp_path / "heldout.yaml", backends=_backends(truth, 0.6, 0.9), out=tmp_path / "run"
    )
    loaded = load_plan(tmp_path / "heldout.yaml")
    plan, stats = loaded.plan, stats_options(loaded.plan)
    datasets = load_datasets(loaded)
    backends = make_backends(loaded, _backends(truth, 0.6, 0.9))
    sink = GenerationSink(tmp_path / "scratch.jsonl")
    gens = asyncio.run(generate_all(plan, datasets, backends, cache=None, sink=sink))
    sink.close()
    scores = score_all(plan, datasets, gens)
    assert scores.get("candidate", "gold", "accuracy").aggregate == pytest.approx(
        next(c for c in run.result.comparisons if c.primary).other.estimate
    )
    comparisons = compare_all(plan, datasets, scores, stats)
    gates = gate_all(plan, datasets, gens, scores, stats, comparisons.slices)
    decision = decide_run(plan, comparisons, gates, datasets)
    assert decision.verdict.status == run.status
    from heldout.plan import check_lock

    rebuilt = build_result(
        loaded,
        check_lock(loaded),
        run_id="run",
        datasets=datasets,
        scores=scores,
        comparisons=comparisons,
        gates=gates,
        decision=decision,
        models=run.result.models,
        judge=None,
        warnings=[],
        timings={},
        git_revision=None,
    )
    assert rebuilt.comparisons == run.result.comparisons
    assert rebuilt.gates == run.result.gates
    assert rebuilt.verdict == run.result.verdict


def test_evaluate_pauses_the_cyclic_gc_and_restores_it(tmp_path: Path) -> None:
    import gc

    make_project(tmp_path, n=30)
    seen: list[tuple[str, bool]] = []
    assert gc.isenabled()
    heldout.evaluate(
        tmp_path / "heldout.yaml",
        root=tmp_path,
        out=tmp_path / "a",
        progress=lambda event: seen.append((event.stage, gc.isenabled())),
    )
    during = [on for stage, on in seen if stage in ("generate", "score", "compare")]
    assert during, seen
    assert not any(during), seen  # paused while the run allocates its per-sample objects
    assert gc.isenabled()  # and restored
    gc.disable()
    try:
        heldout.evaluate(tmp_path / "heldout.yaml", root=tmp_path, out=tmp_path / "b")
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()


def test_slices_are_compared_once_and_the_gate_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan compares slices [lang] and gates on them: the slice gate reuses those
    comparisons (compare_slices is not called again) and decides what recomputing would."""
    from heldout.runner import _gates

    truth = make_project(tmp_path, n=160)
    loaded = load_plan(tmp_path / "heldout.yaml")
    plan, stats = loaded.plan, stats_options(loaded.plan)
    datasets = load_datasets(loaded)
    sink = GenerationSink(tmp_path / "scratch.jsonl")
    backends = make_backends(loaded, _backends(truth, 0.6, 0.9))
    gens = asyncio.run(generate_all(plan, datasets, backends, cache=None, sink=sink))
    sink.close()
    scores = score_all(plan, datasets, gens)
    comparisons = compare_all(plan, datasets, scores, stats)
    assert {s.field for s in comparisons.slices} == {"lang"}
    recomputed = gate_all(plan, datasets, gens, scores, stats)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("slices compared a second time")

    monkeypatch.setattr(_gates, "compare_slices", refuse)
    reused = gate_all(plan, datasets, gens, scores, stats, comparisons.slices)
    assert [asdict(g) for g in reused.gates] == [asdict(g) for g in recomputed.gates]
    assert any(g.name.startswith("slices") for g in reused.gates)
    run = heldout.evaluate(
        tmp_path / "heldout.yaml", backends=_backends(truth, 0.6, 0.9), out=tmp_path / "run"
    )
    assert [g.name for g in run.result.gates] == [g.name for g in reused.gates]

"""The public API: :func:`evaluate` and :func:`evaluate_async`. ``heldout run`` calls exactly
this; notebooks and scripts do too.

One run: datasets → generations → scores → comparisons → gates → decision → ``results.json``
(and the reports) in a run folder, listed by ``heldout history``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import gc
import json
import secrets
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from heldout._redact import redact
from heldout.backends import Backend, ResponseCache
from heldout.errors import FailedGenerationsError, HeldoutError, PlanError, Problem
from heldout.plan import LoadedPlan, LockStatus, Plan, check_lock, load_plan, plan_from_object
from heldout.results import RunResult, VerdictRecord
from heldout.results._samples import write_samples
from heldout.results._store import RunStore
from heldout.results._table import SampleTable
from heldout.runner._datasets import read_sample_ids
from heldout.runner._gates import gate_all
from heldout.runner._generate import GenerationSink
from heldout.runner._judging import analyse, judge_roles, judged_datasets
from heldout.runner._lock import project_lock
from heldout.runner._pipeline import (
    Progress,
    ProgressEvent,
    cache_only_warnings,
    compare_all,
    decide_run,
    drop_unpaired,
    generate_all,
    load_datasets,
    make_backends,
    model_records,
    peer_agreement,
    roles_of,
    score_all,
    stats_options,
)
from heldout.runner._result import build_result, human_labels, human_scores, sample_table
from heldout.tracking import RunHook, hooks_for

__all__ = ["Run", "evaluate", "evaluate_async"]

PlanLike = str | Path | Plan | LoadedPlan


@dataclass(frozen=True, slots=True)
class Run:
    """A finished run: its result (what ``results.json`` holds), its folder and reports."""

    result: RunResult
    folder: Path
    reports: Mapping[str, Path] = field(default_factory=dict)

    @property
    def verdict(self) -> VerdictRecord:
        return self.result.verdict

    @property
    def status(self) -> str:
        """success, improved_but_short, no_gain, blocked, inconclusive, or smoke."""
        return self.result.verdict.status

    @property
    def exit_code(self) -> int:
        """What ``heldout run`` exits with: 0 only for success."""
        return self.result.verdict.exit_code

    @property
    def smoke(self) -> bool:
        """A smoke run (``limit`` or ``sample_ids``): never a verdict."""
        return self.result.smoke is not None

    def __str__(self) -> str:
        reasons = "".join(f"\n  - {r}" for r in self.verdict.reasons)
        return f"heldout run {self.result.run_id}: {self.status}{reasons}\nfolder: {self.folder}"

    def _repr_markdown_(self) -> str:  # Jupyter shows the Markdown report
        md = self.reports.get("markdown")
        return md.read_text(encoding="utf-8") if md is not None and md.is_file() else str(self)


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the run, then restore it as it was.

    A run allocates millions of long-lived objects (samples, generations, rows) that hold no
    reference cycles; the collector's full passes over them cost a third of a million-sample
    run and free nothing. Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def evaluate(
    plan: PlanLike,
    *,
    backends: Mapping[str, Backend] | None = None,
    limit: int | None = None,
    sample_ids: list[str] | str | Path | None = None,
    out: str | Path | None = None,
    root: str | Path | None = None,
    allow_changed_plan: bool = False,
    cache: bool = True,
    refresh: bool = False,
    failed_as_wrong: bool = False,
    reports: bool = True,
    progress: Progress | None = None,
    hooks: Sequence[RunHook] | None = None,
) -> Run:
    """Run a plan end to end and return the :class:`Run`; see :func:`evaluate_async`.

    Works with or without a running event loop: inside one (Jupyter), the run goes to a
    worker thread with its own loop and this call waits for it.
    """
    coro = evaluate_async(
        plan, backends=backends, limit=limit, sample_ids=sample_ids, out=out, root=root,
        allow_changed_plan=allow_changed_plan, cache=cache, refresh=refresh,
        failed_as_wrong=failed_as_wrong, reports=reports, progress=progress, hooks=hooks,
    )  # fmt: skip
    if not _loop_running():
        return asyncio.run(coro)
    ctx = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="heldout") as pool:
        return pool.submit(ctx.run, asyncio.run, coro).result()


async def evaluate_async(
    plan: PlanLike,
    *,
    backends: Mapping[str, Backend] | None = None,
    limit: int | None = None,
    sample_ids: list[str] | str | Path | None = None,
    out: str | Path | None = None,
    root: str | Path | None = None,
    allow_changed_plan: bool = False,
    cache: bool = True,
    refresh: bool = False,
    failed_as_wrong: bool = False,
    reports: bool = True,
    progress: Progress | None = None,
    hooks: Sequence[RunHook] | None = None,
) -> Run:
    """Generate, score, compare, gate and decide; write the run folder; return the run.

    ``plan``: a plan file, a :class:`~heldout.Plan` built in Python (its relative paths are
    read from ``root``, default the working directory) or a loaded plan. ``backends``: model
    backends by role ("base", "candidate", "reference", "judge") instead of those the plan
    names. ``limit`` / ``sample_ids`` (a list, or a file of ids one per line): a smoke run on
    a few samples, whose verdict is always ``smoke`` (exit code 1), never a ship decision.
    ``out``: the run folder (default ``.heldout/runs/<run id>`` beside the plan).
    ``hooks``: trackers to log the finished run to (default: the plan's ``tracking``); where
    each logged it goes into results.json, and a tracker that fails costs a warning only.

    The plan is checked against its lock (``heldout.lock``); a change raises
    :class:`~heldout.PlanChangedError` unless ``allow_changed_plan``. One run per project at
    a time; a run that stops early keeps every finished response in the cache (a rerun
    resumes) and never leaves a half-written ``results.json``.
    """
    loaded = _loaded(plan, root)
    in_memory = isinstance(plan, Plan)
    lock = check_lock(loaded, allow_changed=allow_changed_plan)
    ids, ids_source = _sample_ids(sample_ids)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    if limit is not None or ids is not None:
        run_id += "-smoke"
    folder = Path(out) if out is not None else loaded.root / ".heldout" / "runs" / run_id
    with project_lock(loaded.root / ".heldout" / "run.lock"), _cyclic_gc_paused():
        existed = folder.exists()
        _writable(folder)
        try:
            result, rows = await _run(
                loaded, lock, folder, backends=backends, limit=limit, sample_ids=ids,
                sample_ids_source=ids_source, cache=cache, refresh=refresh,
                failed_as_wrong=failed_as_wrong, progress=progress, in_memory=in_memory,
            )  # fmt: skip
        except BaseException as exc:
            _mark_unfinished(folder, existed, exc)
            raise
    paths: dict[str, Path] = {}
    if reports:
        from heldout.report import write_reports

        if progress:
            progress(ProgressEvent("write", "reports"))
        paths = write_reports(folder, rows)
    run = Run(result, folder, paths)
    chosen = list(hooks) if hooks is not None else hooks_for(loaded.plan)
    return _track(run, chosen) if chosen else run


def _track(run: Run, hooks: list[RunHook]) -> Run:
    """Log the run to each tracker; record where (or why not) in results.json."""
    where: dict[str, Any] = {}
    notes: list[str] = []
    for hook in hooks:
        try:
            where[hook.name] = hook.log(run)
        except Exception as exc:  # a tracker is never worth the run: it is already written
            said = redact(str(exc))[:300]  # a tracking URI may carry credentials
            notes.append(f"tracking {hook.name}: this run was not logged ({type(exc).__name__}: "
                         f"{said})")  # fmt: skip
    result = run.result.model_copy(
        update={"tracking": where or None, "warnings": [*run.result.warnings, *notes]}
    )
    _write_result(run.folder, result)
    return Run(result, run.folder, run.reports)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _loaded(plan: PlanLike, root: str | Path | None) -> LoadedPlan:
    if isinstance(plan, LoadedPlan):
        return plan
    if isinstance(plan, Plan):
        return plan_from_object(plan, root=Path(root) if root is not None else Path.cwd())
    if isinstance(plan, str | Path):
        return load_plan(plan)
    raise PlanError(
        [Problem("plan", f"expected a plan file path or a heldout.Plan, got {type(plan).__name__}")]
    )


def _sample_ids(given: list[str] | str | Path | None) -> tuple[list[str] | None, str | None]:
    if given is None:
        return None, None
    if isinstance(given, str | Path):
        return read_sample_ids(Path(given)), str(given)
    ids = [str(i) for i in given]
    if not ids:
        raise HeldoutError("sample_ids: the list is empty; give at least one gold sample id")
    return ids, "sample_ids"


def _writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".heldout-write-test"
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise HeldoutError(
            f"cannot write the run folder {folder}: {exc.strerror or exc}; pass --out a "
            "folder you can write to"
        ) from None


_OURS = ("generations.jsonl", "samples.jsonl", "samples.parquet", "results.schema.json")


def _mark_unfinished(folder: Path, existed: bool, exc: BaseException) -> None:
    """A run that stops before its verdict says so (or leaves no empty folder behind)."""
    if (folder / "results.json").exists():
        return
    gens = folder / "generations.jsonl"
    if gens.is_file() and gens.stat().st_size > 0:
        (folder / "INCOMPLETE").write_text(
            f"this run stopped before its verdict ({type(exc).__name__}: {exc}); the responses "
            "in generations.jsonl are also in the cache, so a rerun resumes\n",
            encoding="utf-8",
        )
        return
    for name in _OURS:
        (folder / name).unlink(missing_ok=True)
    if not existed and not any(folder.iterdir()):
        folder.rmdir()


def _git_revision(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


async def _run(
    loaded: LoadedPlan,
    lock: LockStatus,
    folder: Path,
    *,
    backends: Mapping[str, Backend] | None,
    limit: int | None,
    sample_ids: list[str] | None,
    sample_ids_source: str | None,
    cache: bool,
    refresh: bool,
    failed_as_wrong: bool,
    progress: Progress | None,
    in_memory: bool,
) -> tuple[RunResult, SampleTable]:
    plan = loaded.plan
    started = time.perf_counter()
    timings: dict[str, float] = {}
    stats = stats_options(plan)
    if progress:
        progress(ProgressEvent("load", "datasets and models"))
    datasets = load_datasets(
        loaded, limit=limit, sample_ids=sample_ids, sample_ids_source=sample_ids_source
    )
    models = make_backends(loaded, backends)
    human = human_labels(loaded)
    rated = human_scores(loaded)
    timings["load_s"] = time.perf_counter() - started

    store = ResponseCache(loaded.root / ".heldout" / "cache.sqlite") if cache else None
    sink = GenerationSink(folder / "generations.jsonl")
    try:
        gens = await generate_all(
            plan, datasets, models, cache=store, sink=sink, refresh=refresh,
            progress=progress, timings=timings,
        )  # fmt: skip
    finally:
        sink.close()
        if store is not None:
            store.close()

    roles: list[str] = list(roles_of(plan))
    records, warnings, failures = model_records(roles, gens, models)
    warnings += cache_only_warnings(plan, records)
    if failures and not failed_as_wrong:
        raise FailedGenerationsError(
            f"{failures} request(s) failed after all retries; rerun 'heldout run' to retry only "
            f"those (finished responses come from the cache), or pass --failed-as-wrong to "
            f"score them as wrong and say so. Details: {'; '.join(warnings)}. Generations so "
            f"far: {folder / 'generations.jsonl'}"
        )
    if failures:
        warnings.append(f"{failures} failed request(s) were scored as wrong (--failed-as-wrong)")
    if plan.baseline_search is not None and plan.baseline_search.use_gold:
        warnings.append(
            "the baseline prompt was chosen on the gold set (baseline_search.use_gold): the "
            "baseline is optimistic, the best of several prompts on the held-out set itself"
        )
    datasets, skipped = drop_unpaired(plan, datasets, gens)
    if skipped:
        warnings.append(skipped)
    judge = judged = None
    if plan.judge is not None:
        judge_records, judge_failed, _ = model_records(judge_roles(plan.judge), gens, models)
        records += judge_records
        judged = analyse(plan, datasets, gens, models, human, rated, stats)
        datasets = judged_datasets(datasets, judged)
        judge = judged.record
        warnings += judge_failed + judged.warnings

    await asyncio.sleep(0)  # a Ctrl-C during a stage takes effect between stages
    if progress:
        progress(ProgressEvent("score", "metrics"))
    t0 = time.perf_counter()
    scores = score_all(
        plan, datasets, gens, failed_as_wrong=failed_as_wrong,
        judged=None if judged is None else judged.suite_scores,
    )  # fmt: skip
    peers, peer_warnings = peer_agreement(plan, datasets, gens, scores)
    warnings += peer_warnings
    timings["score_s"] = time.perf_counter() - t0
    rows = sample_table(roles, datasets, gens, scores)

    await asyncio.sleep(0)
    if progress:
        progress(ProgressEvent("compare", "comparisons and guardrails"))
    t0 = time.perf_counter()
    comparisons = compare_all(plan, datasets, scores, stats)
    gates = gate_all(plan, datasets, gens, scores, stats, comparisons.slices, judged)
    decision = decide_run(plan, comparisons, gates, datasets)
    timings["compare_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started

    result = build_result(
        loaded, lock, run_id=folder.name, datasets=datasets, scores=scores,
        comparisons=comparisons, gates=gates, decision=decision, models=records, judge=judge,
        warnings=warnings, timings=timings, git_revision=_git_revision(loaded.root),
        in_memory=in_memory, peer_scores=peers,
    )  # fmt: skip
    await asyncio.sleep(0)
    if progress:
        progress(ProgressEvent("write", "results"))
    write_samples(folder, rows)
    (folder / "results.schema.json").write_text(
        json.dumps(RunResult.model_json_schema(), indent=2), encoding="utf-8"
    )
    _write_result(folder, result)
    try:  # after results.json: a damaged run store must not cost the run
        RunStore(loaded.root / ".heldout" / "runs.sqlite").add(result, folder)
    except (sqlite3.DatabaseError, HeldoutError) as exc:
        note = f"this run is not listed by 'heldout history': {exc}"
        result = result.model_copy(update={"warnings": [*result.warnings, note]})
        _write_result(folder, result)
    return result, rows


def _write_result(folder: Path, result: RunResult) -> None:
    tmp = folder / "results.json.tmp"
    tmp.write_text(result.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(folder / "results.json")

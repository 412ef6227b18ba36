"""Execute a plan: generate, score, compare, gate, decide, and write ``results.json``.

Data flows one way: plan → samples → requests → generations → scores → comparisons → gates →
verdict → results. The library never prints; progress goes to an optional callback. The
pieces live beside this module: ``_datasets`` (what is evaluated and how it is scored),
``_gates`` (guardrails into gates), ``_records`` (what results.json stores).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from heldout._version import __version__
from heldout.backends import Backend, Generation, ResponseCache, make_backend
from heldout.errors import FailedGenerationsError, HeldoutError
from heldout.judge import read_human_labels
from heldout.metrics import MetricResult, get_metric
from heldout.plan import (
    CalibrationGuardrail,
    LoadedPlan,
    LockStatus,
    MetricGuardrail,
    OpenAIModel,
    Plan,
    SuiteGuardrail,
    plan_sha256,
    sha256_file,
)
from heldout.results import (
    CeilingRecord,
    ComparisonRecord,
    DatasetRecord,
    ModelRecord,
    RunResult,
    SliceRecord,
    VerdictRecord,
)
from heldout.results._samples import write_samples
from heldout.results._store import RunStore
from heldout.runner._datasets import (
    Dataset,
    gold_dataset,
    requests_for,
    sample_rows,
    score,
    secondary_metrics,
    suite_dataset,
)
from heldout.runner._gates import guardrail_gates, guardrail_metric_names, power_check
from heldout.runner._generate import GenerationSink, generate
from heldout.runner._judging import judge_record, judge_requests, judge_summary
from heldout.runner._lock import project_lock
from heldout.runner._records import comparison_record, gate_record, interval_record, json_safe
from heldout.stats import StatsOptions, compare, compare_slices, reference_ceiling
from heldout.verdict import GATE_RULE, decide

__all__ = ["FailedGenerationsError", "RunOptions", "run_plan"]

ROLES = ("base", "candidate", "reference")
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run: where to write, caching, and what to do with failed requests."""

    out_dir: Path | None = None
    cache_path: Path | None = None
    use_cache: bool = True
    refresh: bool = False
    failed_as_wrong: bool = False
    backends: dict[str, Backend] = field(default_factory=dict)  # injected (tests, library use)


def _git_revision(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def run_plan(
    loaded: LoadedPlan,
    lock: LockStatus,
    options: RunOptions | None = None,
    progress: Progress | None = None,
) -> tuple[RunResult, Path]:
    """Run the plan end to end; return the result and the run folder it was written to.

    One run per project at a time (``.heldout/run.lock``). A run that fails leaves no empty
    folder behind: one without any response is removed, one with responses (all also in the
    cache) keeps them and says ``INCOMPLETE``; ``history`` lists only finished runs.
    """
    opts = options or RunOptions()
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    out_dir = opts.out_dir or (loaded.root / ".heldout" / "runs" / run_id)
    with project_lock(loaded.root / ".heldout" / "run.lock"):
        existed = out_dir.exists()
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            probe = out_dir / ".heldout-write-test"
            probe.write_text("", encoding="utf-8")
            probe.unlink()
        except OSError as exc:
            raise HeldoutError(
                f"cannot write the run folder {out_dir}: {exc.strerror or exc}; pass --out a "
                "folder you can write to"
            ) from None
        try:
            return _run(loaded, lock, opts, progress, out_dir)
        except BaseException as exc:
            _mark_unfinished(out_dir, existed, exc)
            raise


_OURS = ("generations.jsonl", "samples.jsonl", "samples.parquet", "results.schema.json")


def _mark_unfinished(out_dir: Path, existed: bool, exc: BaseException) -> None:
    if (out_dir / "results.json").exists():
        return
    gens = out_dir / "generations.jsonl"
    if gens.is_file() and gens.stat().st_size > 0:
        (out_dir / "INCOMPLETE").write_text(
            f"this run stopped before its verdict ({type(exc).__name__}: {exc}); the responses "
            "in generations.jsonl are also in the cache, so a rerun resumes\n",
            encoding="utf-8",
        )
        return
    for name in _OURS:
        (out_dir / name).unlink(missing_ok=True)
    if not existed and not any(out_dir.iterdir()):
        out_dir.rmdir()


def _run(
    loaded: LoadedPlan,
    lock: LockStatus,
    opts: RunOptions,
    progress: Progress | None,
    out_dir: Path,
) -> tuple[RunResult, Path]:
    plan = loaded.plan
    started = time.perf_counter()
    timings: dict[str, float] = {}
    stats = StatsOptions(
        confidence=plan.stats.confidence, resamples=plan.stats.resamples, seed=plan.stats.seed
    )

    datasets = [gold_dataset(loaded)]
    for g in plan.guardrails:
        if isinstance(g, SuiteGuardrail):
            datasets.append(suite_dataset(loaded, g))

    specs = {
        "base": plan.models.base,
        "candidate": plan.models.candidate,
        "reference": plan.models.reference,
    }
    roles = [r for r in ROLES if specs[r] is not None]
    backends: dict[str, Backend] = {}
    for role in roles:
        backends[role] = opts.backends.get(role) or make_backend(
            specs[role], root=loaded.root, seed=plan.stats.seed
        )
    if plan.judge is not None:
        backends["judge"] = opts.backends.get("judge") or make_backend(
            plan.judge.model, root=loaded.root, seed=plan.stats.seed
        )
    human = None
    if plan.judge is not None and plan.judge.human_labels:
        human = loaded.human_labels or read_human_labels(loaded.resolve(plan.judge.human_labels))
    timings["load_s"] = time.perf_counter() - started

    cache_path = opts.cache_path or loaded.root / ".heldout" / "cache.sqlite"
    gens = _generate_all(
        plan, roles, datasets, backends, opts, cache_path, out_dir, timings, progress
    )

    model_records, warnings, failures = _model_records(roles, gens, backends)
    for rec in model_records:
        spec = specs[rec.role]
        if isinstance(spec, OpenAIModel) and spec.revision is None and rec.cached == rec.requests:
            warnings.append(
                f"every response of the {rec.role} model came from the response cache: a "
                f"model redeployed as {spec.model!r} at {spec.base_url} would not be noticed; "
                f"set models.{rec.role}.revision when you redeploy, or run with --refresh"
            )
    if failures and not opts.failed_as_wrong:
        raise FailedGenerationsError(
            f"{failures} request(s) failed after all retries; rerun 'heldout run' to retry only "
            f"those (finished responses come from the cache), or pass --failed-as-wrong to "
            f"score them as wrong and say so. Details: {'; '.join(warnings)}. Generations so "
            f"far: {out_dir / 'generations.jsonl'}"
        )
    if failures:
        warnings.append(f"{failures} failed request(s) were scored as wrong (--failed-as-wrong)")
    judge_info = None
    if plan.judge is not None:
        judge_models, judge_failed, _ = _model_records(["judge"], gens, backends)
        model_records += judge_models
        summary = judge_summary(
            plan.judge,
            datasets[0],
            gens[("base", "gold")],
            gens[("candidate", "gold")],
            gens.get(("judge", "gold"), {}),
            human,
            stats.confidence,
        )
        judge_info, judge_warnings = judge_record(summary, plan.judge)
        warnings += judge_failed + judge_warnings

    t0 = time.perf_counter()
    gold = datasets[0]
    results: dict[tuple[str, str, str], MetricResult] = {}
    for role in roles:
        for ds in datasets:
            results[(role, ds.name, ds.spec.name)] = score(
                ds, gens[(role, ds.name)], ds.spec, opts.failed_as_wrong
            )
    secondary = secondary_metrics(plan.task.shape, gold, plan.task.secondary_metrics)
    guarded = [
        name
        for g in plan.guardrails
        if isinstance(g, MetricGuardrail)
        for name in guardrail_metric_names(g, gold)
        if name != gold.spec.name and name not in secondary
    ]
    for role in roles:
        for name in [*secondary, *dict.fromkeys(guarded)]:
            results[(role, "gold", name)] = score(
                gold, gens[(role, "gold")], get_metric(name), opts.failed_as_wrong
            )
    timings["score_s"] = time.perf_counter() - t0
    rows = sample_rows(roles, datasets, gens, results, gold.spec.name)

    t0 = time.perf_counter()
    comparisons: list[ComparisonRecord] = []
    primary = compare(
        results[("base", "gold", gold.spec.name)],
        results[("candidate", "gold", gold.spec.name)],
        gold.spec,
        stats,
    )
    comparisons.append(comparison_record(primary, "gold", primary=True))
    for name in secondary:
        c = compare(
            results[("base", "gold", name)],
            results[("candidate", "gold", name)],
            get_metric(name),
            stats,
        )
        comparisons.append(comparison_record(c, "gold"))
    ceiling = None
    if "reference" in roles:
        key = ("reference", "gold", gold.spec.name)
        ref_cmp = compare(results[("base", "gold", gold.spec.name)], results[key], gold.spec, stats)
        comparisons.append(comparison_record(ref_cmp, "gold", against="reference"))
        ce = reference_ceiling(
            results[("base", "gold", gold.spec.name)],
            results[("candidate", "gold", gold.spec.name)],
            results[key],
            gold.spec,
            stats,
        )
        ceiling = CeilingRecord(
            share_of_reference=interval_record(ce.share_of_reference),
            gap_closed=interval_record(ce.gap_closed),
            gap_is_real=ce.gap_is_real,
        )

    slice_records: list[SliceRecord] = []
    if plan.slices:
        for sc in compare_slices(
            [s.metadata for s in gold.samples],
            plan.slices,
            results[("base", "gold", gold.spec.name)],
            results[("candidate", "gold", gold.spec.name)],
            gold.spec,
            stats,
        ):
            slice_records.append(
                SliceRecord(
                    field=sc.field,
                    value=sc.value,
                    tiny=sc.tiny,
                    comparison=comparison_record(sc.comparison, "gold"),
                )
            )
    suite_comparisons, guard_gates, calibration_info = guardrail_gates(
        plan, datasets, gens, results, stats
    )
    recorded = {(c.dataset, c.metric) for c in comparisons}
    comparisons += [
        comparison_record(c, name)
        for name, c in suite_comparisons
        if (name, c.metric) not in recorded  # a guarded gold metric may also be secondary
    ]
    gates = guard_gates

    power, power_info, power_warning = power_check(primary, plan)
    if power_warning:
        warnings.append(power_warning)
    verdict = decide(
        primary,
        baseline=plan.baseline,
        success_threshold=plan.success_threshold,
        gates=gates,
        power=power,
        bar_rule=plan.stats.bar_rule,
    )
    if lock.overridden:
        warnings.insert(
            0,
            "the plan changed since it was locked; run with --allow-changed-plan: "
            + "; ".join(lock.changes),
        )
    elif not lock.locked:
        warnings.insert(0, "the plan was never locked (heldout plan lock): not pre-registered")
    timings["compare_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started

    result = RunResult(
        heldout_version=__version__,
        run_id=out_dir.name,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        plan_name=plan.name,
        plan_path=str(loaded.path),
        plan_sha256=plan_sha256(loaded),
        lock={**asdict(lock), "changes": list(lock.changes)},
        git_revision=_git_revision(loaded.root),
        primary_metric=plan.primary_metric,
        baseline=plan.baseline,
        success_threshold=plan.success_threshold,
        stats={
            "confidence": stats.confidence,
            "resamples": stats.resamples,
            "seed": stats.seed,
            "bar_rule": plan.stats.bar_rule,
            "gate_rule": GATE_RULE,
        },
        models=model_records,
        datasets=[
            DatasetRecord(
                name=d.name,
                path=str(d.path),
                sha256=sha256_file(d.path),
                n=len(d.samples),
                metric=d.spec.name,
            )
            for d in datasets
        ],
        comparisons=comparisons,
        slices=slice_records,
        gates=[gate_record(g) for g in gates],
        ceiling=ceiling,
        calibration=calibration_info,
        metric_details={
            role: json_safe(dict(results[(role, "gold", gold.spec.name)].details)) for role in roles
        },
        power=power_info,
        judge=judge_info,
        verdict=VerdictRecord(
            status=verdict.status,
            reasons=verdict.reasons,
            warnings=verdict.warnings,
            exit_code=verdict.exit_code,
        ),
        warnings=warnings,
        timings=timings,
    )
    write_samples(out_dir, rows)
    (out_dir / "results.schema.json").write_text(
        json.dumps(RunResult.model_json_schema(), indent=2), encoding="utf-8"
    )
    _write_result(out_dir, result)
    store = loaded.root / ".heldout" / "runs.sqlite"
    try:  # after results.json: a damaged run store must not cost the run
        RunStore(store).add(result, out_dir)
    except (sqlite3.DatabaseError, HeldoutError) as exc:
        note = f"this run is not listed by 'heldout history': {exc}"
        result = result.model_copy(update={"warnings": [*result.warnings, note]})
        _write_result(out_dir, result)
    return result, out_dir


def _write_result(out_dir: Path, result: RunResult) -> None:
    tmp = out_dir / "results.json.tmp"
    tmp.write_text(result.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(out_dir / "results.json")


Generations = dict[tuple[str, str], dict[str, Generation]]


def _generate_all(
    plan: Plan,
    roles: list[str],
    datasets: list[Dataset],
    backends: dict[str, Backend],
    opts: RunOptions,
    cache_path: Path,
    out_dir: Path,
    timings: dict[str, float],
    progress: Progress | None,
) -> Generations:
    """Every (model, dataset)'s outputs, from the cache or the model, persisted as they
    arrive; the timing of each model's phase goes into ``timings``."""
    cache = None
    if opts.use_cache:
        cache = ResponseCache(cache_path)
    sink = GenerationSink(out_dir / "generations.jsonl")
    gens: Generations = {}
    calibrated = {
        "gold" if g.suite is None else f"suite:{g.suite}"
        for g in plan.guardrails
        if isinstance(g, CalibrationGuardrail)
    }
    if plan.task.shape == "classification":
        calibrated.add("gold")
    t0 = time.perf_counter()
    try:
        for role in roles:
            t_role = time.perf_counter()
            for ds in datasets:
                reqs = requests_for(ds, ds.name in calibrated)

                def report(done: int, total: int, role: str = role, ds: Dataset = ds) -> None:
                    if progress:
                        progress(f"{role} · {ds.name}", done, total)

                gens[(role, ds.name)] = generate(
                    backends[role],
                    reqs,
                    role=role,
                    dataset=ds.name,
                    cache=cache,
                    sink=sink,
                    refresh=opts.refresh,
                    progress=report,
                )
            timings[f"generate_{role}_s"] = time.perf_counter() - t_role
        if plan.judge is not None:
            t_role = time.perf_counter()
            gold = datasets[0]
            reqs = judge_requests(
                plan.judge,
                gold,
                gens[("base", "gold")],
                gens[("candidate", "gold")],
                plan.stats.seed,
            )

            def report_judge(done: int, total: int) -> None:
                if progress:
                    progress("judge · gold", done, total)

            gens[("judge", "gold")] = generate(
                backends["judge"],
                reqs,
                role="judge",
                dataset="gold",
                cache=cache,
                sink=sink,
                refresh=opts.refresh,
                progress=report_judge,
            )
            timings["generate_judge_s"] = time.perf_counter() - t_role
    finally:
        sink.close()
        if cache is not None:
            cache.close()
    timings["generate_s"] = time.perf_counter() - t0
    return gens


def _model_records(
    roles: list[str], gens: Generations, backends: dict[str, Backend]
) -> tuple[list[ModelRecord], list[str], int]:
    """Per model: requests, cache hits, failures, latency and cost; warnings; failure count."""
    records: list[ModelRecord] = []
    warnings: list[str] = []
    failures = 0
    for role in roles:
        all_gens = [g for (r, _), d in gens.items() if r == role for g in d.values()]
        failed = sum(not g.ok for g in all_gens)
        failures += failed
        lat = [g.latency_s for g in all_gens if g.ok and not g.cached]
        costs = [g.cost for g in all_gens if g.cost is not None]
        records.append(
            ModelRecord(
                role=role,
                identity=backends[role].identity(),
                record=dict(getattr(backends[role], "record", {}) or {}),
                requests=len(all_gens),
                cached=sum(g.cached for g in all_gens),
                failed=failed,
                latency_s_mean=float(np.mean(lat)) if lat else None,
                cost=float(sum(costs)) if costs else None,
            )
        )
        if failed:
            first = next(g for g in all_gens if not g.ok)
            warnings.append(f"{role}: {failed} request(s) failed after retries, e.g. {first.error}")
    return records, warnings, failures

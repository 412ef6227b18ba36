"""The stages of a run, each a function from named values to the next one.

``load_datasets`` → ``generate_all`` → ``score_all`` → ``compare_all`` → ``gate_all`` →
``decide_run`` → ``build_result``. :func:`heldout.evaluate` calls them in that order; an
analysis that needs only part of the journey (early stopping, an A/B readout, a baseline
sweep) calls the stages it needs. No stage prints; progress goes to an optional callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from heldout._version import __version__
from heldout.backends import Backend, ResponseCache, make_backend
from heldout.errors import HeldoutError
from heldout.judge import read_human_labels
from heldout.metrics import get_metric
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
    DatasetRecord,
    ModelRecord,
    RunResult,
    SliceRecord,
    SmokeRecord,
    VerdictRecord,
)
from heldout.results._samples import flag_rows
from heldout.runner._datasets import (
    gold_dataset,
    requests_for,
    score,
    secondary_metrics,
    subset,
    suite_dataset,
)
from heldout.runner._gates import guardrail_metric_names, power_check
from heldout.runner._generate import GenerationSink, generate_async
from heldout.runner._judging import judge_record, judge_requests, judge_summary
from heldout.runner._records import comparison_record, gate_record, interval_record, json_safe
from heldout.runner._stages import (
    ROLES,
    Comparisons,
    Datasets,
    Decision,
    Gates,
    Generations,
    ModelRole,
    Scores,
    Smoke,
)
from heldout.stats import (
    SliceComparison,
    StatsOptions,
    compare,
    compare_slices,
    reference_ceiling,
)
from heldout.verdict import GATE_RULE, Verdict, decide

__all__ = [
    "ProgressEvent",
    "build_result",
    "compare_all",
    "decide_run",
    "generate_all",
    "load_datasets",
    "lock_warning",
    "make_backends",
    "model_records",
    "roles_of",
    "sample_rows",
    "score_all",
    "stats_options",
]


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """What a run is doing. ``stage`` is one of load, generate, score, compare, write; a
    generate event counts ``done`` of ``total`` responses of one model on one dataset
    (``label`` "candidate · gold"); the others mark the start of their stage (total 0)."""

    stage: str
    label: str
    done: int = 0
    total: int = 0


Progress = Callable[[ProgressEvent], None]


def stats_options(plan: Plan) -> StatsOptions:
    s = plan.stats
    return StatsOptions(confidence=s.confidence, resamples=s.resamples, seed=s.seed)


def roles_of(plan: Plan) -> list[ModelRole]:
    """The models a plan compares: base and candidate, and the reference when it has one."""
    return [r for r in ROLES if getattr(plan.models, r) is not None]


# -- datasets -------------------------------------------------------------------------------


def load_datasets(
    loaded: LoadedPlan,
    *,
    limit: int | None = None,
    sample_ids: list[str] | None = None,
    sample_ids_source: str | None = None,
) -> Datasets:
    """The gold set and each suite guardrail's dataset. ``limit`` (the first N samples of
    each dataset) or ``sample_ids`` (those gold samples; suites cut to as many) make a smoke
    run: the pipeline end to end on a few samples, never a verdict."""
    if limit is not None and limit < 1:
        raise HeldoutError(f"--limit {limit}: give a number of samples of at least 1")
    gold = gold_dataset(loaded)
    suites = [
        suite_dataset(loaded, g) for g in loaded.plan.guardrails if isinstance(g, SuiteGuardrail)
    ]
    if limit is None and sample_ids is None:
        return Datasets(gold, tuple(suites))
    total = len(gold.samples)
    chosen = gold.samples
    if sample_ids is not None:
        by_id = {s.id: s for s in gold.samples}
        where = sample_ids_source or "sample_ids"
        unknown = [i for i in sample_ids if i not in by_id]
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5])
            raise HeldoutError(
                f"{where}: {len(unknown)} id(s) not in the gold set {gold.path.name}, e.g. "
                f"{shown}; use ids from the gold set's id field"
            )
        chosen = [by_id[i] for i in dict.fromkeys(sample_ids)]
    if limit is not None:
        chosen = chosen[:limit]
    cut = len(chosen)
    smoke = Smoke(total, cut, limit, sample_ids_source if sample_ids is not None else None)
    return Datasets(
        subset(gold, chosen),
        tuple(subset(ds, ds.samples[:cut]) for ds in suites),
        smoke,
    )


# -- generations ----------------------------------------------------------------------------


def make_backends(
    loaded: LoadedPlan, given: Mapping[str, Backend] | None = None
) -> dict[str, Backend]:
    """A backend per model role (and the judge), the ``given`` ones first."""
    plan, given = loaded.plan, given or {}
    backends: dict[str, Backend] = {}
    for role in roles_of(plan):
        backends[role] = given.get(role) or make_backend(
            getattr(plan.models, role), root=loaded.root, seed=plan.stats.seed
        )
    if plan.judge is not None:
        backends["judge"] = given.get("judge") or make_backend(
            plan.judge.model, root=loaded.root, seed=plan.stats.seed
        )
    return backends


def _calibrated(plan: Plan) -> set[str]:
    """Datasets whose requests ask for label probabilities."""
    names = {
        "gold" if g.suite is None else f"suite:{g.suite}"
        for g in plan.guardrails
        if isinstance(g, CalibrationGuardrail)
    }
    if plan.task.shape == "classification":
        names.add("gold")
    return names


async def generate_all(
    plan: Plan,
    datasets: Datasets,
    backends: Mapping[str, Backend],
    *,
    cache: ResponseCache | None,
    sink: GenerationSink,
    refresh: bool = False,
    progress: Progress | None = None,
    timings: dict[str, float] | None = None,
) -> Generations:
    """Every model's outputs on every dataset, then the judge's verdicts: from the cache or
    the model, each persisted as it arrives; each model's time goes into ``timings``."""
    gens = Generations()
    timings = {} if timings is None else timings
    calibrated = _calibrated(plan)
    t0 = time.perf_counter()

    def reporter(label: str) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            if progress:
                progress(ProgressEvent("generate", label, done, total))

        return report

    for role in roles_of(plan):
        t_role = time.perf_counter()
        for ds in datasets:
            outs = await generate_async(
                backends[role],
                requests_for(ds, ds.name in calibrated),
                role=role,
                dataset=ds.name,
                cache=cache,
                sink=sink,
                refresh=refresh,
                progress=reporter(f"{role} · {ds.name}"),
            )
            gens.add(role, ds.name, outs)
        timings[f"generate_{role}_s"] = time.perf_counter() - t_role
    if plan.judge is not None:
        t_role = time.perf_counter()
        reqs = judge_requests(
            plan.judge,
            datasets.gold,
            gens.get("base", "gold"),
            gens.get("candidate", "gold"),
            plan.stats.seed,
        )
        outs = await generate_async(
            backends["judge"],
            reqs,
            role="judge",
            dataset="gold",
            cache=cache,
            sink=sink,
            refresh=refresh,
            progress=reporter("judge · gold"),
        )
        gens.add("judge", "gold", outs)
        timings["generate_judge_s"] = time.perf_counter() - t_role
    timings["generate_s"] = time.perf_counter() - t0
    return gens


def model_records(
    roles: list[str], gens: Generations, backends: Mapping[str, Backend]
) -> tuple[list[ModelRecord], list[str], int]:
    """Per model: requests, cache hits, failures, latency and cost; warnings; failure count."""
    records: list[ModelRecord] = []
    warnings: list[str] = []
    failures = 0
    for role in roles:
        outs = gens.of_role(role)
        failed = sum(not g.ok for g in outs)
        failures += failed
        lat = [g.latency_s for g in outs if g.ok and not g.cached]
        costs = [g.cost for g in outs if g.cost is not None]
        records.append(
            ModelRecord(
                role=role,
                identity=backends[role].identity(),
                record=dict(getattr(backends[role], "record", {}) or {}),
                requests=len(outs),
                cached=sum(g.cached for g in outs),
                failed=failed,
                latency_s_mean=float(np.mean(lat)) if lat else None,
                cost=float(sum(costs)) if costs else None,
            )
        )
        if failed:
            first = next(g for g in outs if not g.ok)
            warnings.append(f"{role}: {failed} request(s) failed after retries, e.g. {first.error}")
    return records, warnings, failures


def cache_only_warnings(plan: Plan, records: list[ModelRecord]) -> list[str]:
    """A served model whose every answer came from the cache could have been redeployed."""
    out = []
    for rec in records:
        spec = getattr(plan.models, rec.role, None)
        if isinstance(spec, OpenAIModel) and spec.revision is None and rec.cached == rec.requests:
            out.append(
                f"every response of the {rec.role} model came from the response cache: a "
                f"model redeployed as {spec.model!r} at {spec.base_url} would not be noticed; "
                f"set models.{rec.role}.revision when you redeploy, or run with --refresh"
            )
    return out


# -- scores ---------------------------------------------------------------------------------


def score_all(
    plan: Plan, datasets: Datasets, gens: Generations, *, failed_as_wrong: bool = False
) -> Scores:
    """Each model's primary metric on every dataset, and on the gold set the secondary
    metrics and those a metric guardrail gates."""
    gold = datasets.gold
    secondary = secondary_metrics(plan.task.shape, gold, plan.task.secondary_metrics)
    guarded = [
        name
        for g in plan.guardrails
        if isinstance(g, MetricGuardrail)
        for name in guardrail_metric_names(g, gold)
        if name != gold.spec.name and name not in secondary
    ]
    scores = Scores(gold.spec.name, secondary, list(dict.fromkeys(guarded)))
    for role in roles_of(plan):
        for ds in datasets:
            outs = gens.get(role, ds.name)
            scores.add(role, ds.name, ds.spec.name, score(ds, outs, ds.spec, failed_as_wrong))
        for name in [*scores.secondary, *scores.guarded]:
            outs = gens.get(role, "gold")
            scores.add(role, "gold", name, score(gold, outs, get_metric(name), failed_as_wrong))
    return scores


# -- comparisons ----------------------------------------------------------------------------


def compare_all(plan: Plan, datasets: Datasets, scores: Scores, stats: StatsOptions) -> Comparisons:
    """Candidate vs base on the gold set (primary, secondary, slices); the reference against
    the base and the candidate's share of its gap."""
    gold = datasets.gold
    name = gold.spec.name
    base, cand = scores.get("base", "gold", name), scores.get("candidate", "gold", name)
    primary = compare(base, cand, gold.spec, stats)
    secondary = tuple(
        compare(
            scores.get("base", "gold", m), scores.get("candidate", "gold", m), get_metric(m), stats
        )
        for m in scores.secondary
    )
    reference = ceiling = None
    if plan.models.reference is not None:
        ref = scores.get("reference", "gold", name)
        reference = compare(base, ref, gold.spec, stats)
        ceiling = reference_ceiling(base, cand, ref, gold.spec, stats)
    slices: tuple[SliceComparison, ...] = ()
    if plan.slices:
        metadata = [s.metadata for s in gold.samples]
        slices = tuple(compare_slices(metadata, plan.slices, base, cand, gold.spec, stats))
    return Comparisons(primary, secondary, reference, ceiling, slices)


# -- decision -------------------------------------------------------------------------------


def lock_warning(lock: LockStatus) -> str | None:
    """What a reader must know about pre-registration, if anything."""
    if lock.overridden:
        return "the plan changed since it was locked; run with --allow-changed-plan: " + (
            "; ".join(lock.changes)
        )
    if not lock.locked:
        return "the plan was never locked (heldout plan lock): not pre-registered"
    return None


def decide_run(plan: Plan, comparisons: Comparisons, gates: Gates, datasets: Datasets) -> Decision:
    """The verdict from the primary comparison, the gates and the power check; a smoke run's
    verdict is ``smoke`` (never a ship decision) with what the full rules would have said."""
    primary = comparisons.primary
    power, power_info, power_warning = power_check(primary, plan)
    warnings = [power_warning] if power_warning else []
    verdict = decide(
        primary,
        baseline=plan.baseline,
        success_threshold=plan.success_threshold,
        gates=gates.gates,
        power=power,
        bar_rule=plan.stats.bar_rule,
    )
    if datasets.smoke is not None:
        verdict = Verdict(
            "smoke",
            [
                datasets.smoke.describe(),
                f"on these samples the rules would say {verdict.status}; that is not evidence",
                *verdict.reasons,
            ],
            verdict.warnings,
        )
    return Decision(verdict, power, power_info, tuple(warnings))


# -- the run result -------------------------------------------------------------------------


def sample_rows(
    roles: list[str], datasets: Datasets, gens: Generations, scores: Scores
) -> list[dict[str, Any]]:
    """One row per dataset, sample and model: output, every score, review flags."""
    from heldout.metrics.classification import parse_labels

    rows: list[dict[str, Any]] = []
    for ds in datasets:
        labels = ds.options.labels
        for role in roles:
            results = scores.of(role, ds.name)
            outs = gens.get(role, ds.name)
            parsed = None
            if labels and "classification" in ds.spec.shapes:
                texts = [outs[s.id].text or "" for s in ds.samples]
                parsed = parse_labels(
                    texts, labels, ds.options.aliases, match=ds.options.label_match
                )
            for i, s in enumerate(ds.samples):
                g = outs[s.id]
                flags: list[str] = []
                if not g.ok:
                    flags.append("failed")
                if parsed is not None and parsed[i] is None:
                    flags.append("unparseable")
                rows.append(
                    {
                        "dataset": ds.name,
                        "id": s.id,
                        "model": role,
                        "input": s.input,
                        "target": s.target,
                        "output": g.text,
                        "error": g.error,
                        "metadata": dict(s.metadata),
                        "scores": {m: float(r.per_sample[i]) for m, r in results.items()},
                        "flags": flags,
                    }
                )
    directions = {m: get_metric(m).higher_is_better for m in scores.metric_names()}
    flag_rows(rows, scores.primary, directions)
    return rows


def judge_info(
    plan: Plan,
    datasets: Datasets,
    gens: Generations,
    human: dict[str, str] | None,
    stats: StatsOptions,
) -> tuple[dict[str, Any] | None, list[str]]:
    """The judge's summary for results.json, and its warnings (reported, never gated)."""
    if plan.judge is None:
        return None, []
    summary = judge_summary(
        plan.judge,
        datasets.gold,
        gens.get("base", "gold"),
        gens.get("candidate", "gold"),
        gens.get("judge", "gold") if gens.has("judge", "gold") else {},
        human,
        stats.confidence,
    )
    return judge_record(summary, plan.judge)


def human_labels(loaded: LoadedPlan) -> dict[str, str] | None:
    judge = loaded.plan.judge
    if judge is None or not judge.human_labels:
        return None
    return loaded.human_labels or read_human_labels(loaded.resolve(judge.human_labels))


def build_result(
    loaded: LoadedPlan,
    lock: LockStatus,
    *,
    run_id: str,
    datasets: Datasets,
    scores: Scores,
    comparisons: Comparisons,
    gates: Gates,
    decision: Decision,
    models: list[ModelRecord],
    judge: dict[str, Any] | None,
    warnings: list[str],
    timings: dict[str, float],
    git_revision: str | None,
    in_memory: bool = False,
) -> RunResult:
    """Everything the run decided and why, as results.json stores it."""
    plan = loaded.plan
    stats = stats_options(plan)
    listed = comparisons.listed()
    recorded = {(c.dataset, c.comparison.metric) for c in listed}
    # a guarded gold metric may also be a secondary one: listed once
    listed += [c for c in gates.comparisons if (c.dataset, c.comparison.metric) not in recorded]
    ceiling = None
    if comparisons.ceiling is not None:
        ce = comparisons.ceiling
        ceiling = CeilingRecord(
            share_of_reference=interval_record(ce.share_of_reference),
            gap_closed=interval_record(ce.gap_closed),
            gap_is_real=ce.gap_is_real,
        )
    v = decision.verdict
    smoke = datasets.smoke
    return RunResult(
        heldout_version=__version__,
        run_id=run_id,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        plan_name=plan.name,
        plan_path="(a Plan object built in Python)" if in_memory else str(loaded.path),
        plan_sha256=plan_sha256(loaded),
        lock={**asdict(lock), "changes": list(lock.changes)},
        git_revision=git_revision,
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
        models=models,
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
        comparisons=[
            comparison_record(c.comparison, c.dataset, against=c.against, primary=c.primary)
            for c in listed
        ],
        slices=[
            SliceRecord(
                field=s.field,
                value=s.value,
                tiny=s.tiny,
                comparison=comparison_record(s.comparison, "gold"),
            )
            for s in comparisons.slices
        ],
        gates=[gate_record(g) for g in gates.gates],
        ceiling=ceiling,
        calibration=gates.calibration,
        metric_details={
            role: json_safe(dict(scores.get(role, "gold", scores.primary).details))
            for role in roles_of(plan)
        },
        power=decision.power_info,
        judge=judge,
        smoke=None
        if smoke is None
        else SmokeRecord(
            gold_total=smoke.gold_total,
            gold_run=smoke.gold_run,
            limit=smoke.limit,
            sample_ids=smoke.sample_ids,
        ),
        verdict=VerdictRecord(
            status=v.status, reasons=v.reasons, warnings=v.warnings, exit_code=v.exit_code
        ),
        warnings=[w for w in (lock_warning(lock),) if w] + warnings + list(decision.warnings),
        timings=timings,
    )

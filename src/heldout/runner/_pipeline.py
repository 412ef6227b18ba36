"""The stages of a run, each a function from named values to the next one.

``load_datasets`` → ``generate_all`` → ``score_all`` → ``compare_all`` → ``gate_all``
(``_gates``) → ``decide_run`` → ``build_result`` (``_result``). :func:`heldout.evaluate`
calls them in that order; an analysis that needs only part of the journey (early stopping,
an A/B readout, a baseline sweep) calls the stages it needs. No stage prints; progress goes
to an optional callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from heldout.backends import Backend, ResponseCache, make_backend
from heldout.errors import HeldoutError
from heldout.metrics import MetricResult, get_metric
from heldout.plan import (
    CalibrationGuardrail,
    FileModel,
    LoadedPlan,
    LockStatus,
    MetricGuardrail,
    OpenAIModel,
    Plan,
    SuiteGuardrail,
)
from heldout.results import (
    ModelRecord,
)
from heldout.runner._datasets import (
    Dataset,
    gold_dataset,
    lm_eval_datasets,
    outputs,
    requests_for,
    secondary_metrics,
    subset,
    suite_dataset,
    train_dataset,
)
from heldout.runner._gates import guardrail_metric_names, power_check
from heldout.runner._generate import GenerationSink, generate_async
from heldout.runner._judging import judge_all, judge_roles
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
from heldout.verdict import Verdict, decide

__all__ = [
    "ProgressEvent",
    "compare_all",
    "decide_run",
    "drop_unpaired",
    "generate_all",
    "load_datasets",
    "lock_warning",
    "make_backends",
    "model_records",
    "peer_agreement",
    "roles_of",
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
    suites += lm_eval_datasets(loaded)
    train = train_dataset(loaded, gold)
    if limit is None and sample_ids is None:
        return Datasets(gold, tuple(suites), train=train)
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
        None if train is None else subset(train, train.samples[:cut]),
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
        for judge, spec in zip(judge_roles(plan.judge), plan.judge.judges(), strict=True):
            backends[judge] = given.get(judge) or make_backend(
                spec, root=loaded.root, seed=plan.stats.seed
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

    _check_loglikelihood(plan, datasets, backends)
    for role in roles_of(plan):
        t_role = time.perf_counter()
        # a predictions file is its own record: read afresh each run, never from the cache
        own_cache = None if isinstance(getattr(plan.models, role), FileModel) else cache
        for ds in datasets:
            outs = await generate_async(
                backends[role],
                requests_for(ds, ds.name in calibrated),
                role=role,
                dataset=ds.name,
                cache=own_cache,
                sink=sink,
                refresh=refresh,
                progress=reporter(f"{role} · {ds.name}"),
            )
            gens.add(role, ds.name, outs)
        startup = float(getattr(backends[role], "startup_s", 0.0))
        if startup:  # a client's start-up (imports, connection pool) is not generation
            timings[f"startup_{role}_s"] = startup
        timings[f"generate_{role}_s"] = time.perf_counter() - t_role - startup
    if plan.judge is not None:
        await judge_all(
            plan, datasets, gens, backends, cache=cache, sink=sink, refresh=refresh,
            reporter=reporter, timings=timings,
        )  # fmt: skip
    timings["generate_s"] = time.perf_counter() - t0
    return gens


def _check_loglikelihood(plan: Plan, datasets: Datasets, backends: Mapping[str, Backend]) -> None:
    """Multiple-choice lm-eval tasks need log-likelihoods: every model must supply them."""
    from heldout.harness import loglikelihood_problem

    needing = [ds.harness.name for ds in datasets if ds.harness and ds.harness.needs_loglikelihood]
    if not needing:
        return
    for role in roles_of(plan):
        why = loglikelihood_problem(backends[role])
        if why:
            raise HeldoutError(
                f"guardrails: lm-eval task {needing[0]!r} is multiple-choice (it scores each "
                f"answer's log-likelihood), and models.{role} cannot: {why}. Use the hf backend "
                "or an OpenAI-compatible completions server, or a generate_until task"
            )


def drop_unpaired(plan: Plan, datasets: Datasets, gens: Generations) -> tuple[Datasets, str | None]:
    """Leave out of every dataset the samples a model's file marked ``skip-pair`` (no
    prediction, or the peer tool errored): the comparison stays paired on the rest."""
    roles = roles_of(plan)

    def kept(ds: Dataset) -> list[Any]:
        if ds.harness is not None:  # lm-eval's requests go to served models, not files
            return list(ds.samples)
        return [
            s for s in ds.samples
            if not any(gens.get(r, ds.name)[s.id].extra.get("skip_pair") for r in roles)
        ]  # fmt: skip

    cut = {ds.name: kept(ds) for ds in datasets}
    dropped = {name: len(datasets.get(name).samples) - len(k) for name, k in cut.items()}
    if not any(dropped.values()):
        return datasets, None
    if not cut["gold"]:
        raise HeldoutError(
            "missing: skip-pair left no gold sample that every model answered; check the "
            "predictions files' ids against the gold set"
        )
    said = ", ".join(
        f"{n} of {len(datasets.get(name).samples)} in {name}" for name, n in dropped.items() if n
    )
    out = Datasets(
        subset(datasets.gold, cut["gold"]),
        tuple(subset(ds, cut[ds.name]) for ds in datasets.suites),
        datasets.smoke,
        None if datasets.train is None else subset(datasets.train, cut["train"]),
    )
    return out, f"samples left out of every comparison (missing: skip-pair): {said}"


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
        prompt_tokens = [g.prompt_tokens for g in outs if g.prompt_tokens is not None]
        completion_tokens = [g.completion_tokens for g in outs if g.completion_tokens is not None]
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
                prompt_tokens=sum(prompt_tokens) if prompt_tokens else None,
                completion_tokens=sum(completion_tokens) if completion_tokens else None,
            )
        )
        if failed:
            first = next(g for g in outs if not g.ok)
            warnings.append(f"{role}: {failed} request(s) failed after retries, e.g. {first.error}")
        said = getattr(backends[role], "record", {}) or {}
        warnings += [f"{role}: {w}" for w in said.get("warnings", [])]
    return records, warnings, failures


def cache_only_warnings(plan: Plan, records: list[ModelRecord]) -> list[str]:
    """A served model whose every answer came from the cache could have been redeployed."""
    out = []
    for rec in records:
        spec = getattr(plan.models, rec.role, None)
        if isinstance(spec, OpenAIModel) and spec.revision is None and rec.cached == rec.requests:
            out.append(
                f"every response of the {rec.role} model came from the response cache: a "
                f"model redeployed as {spec.model!r} at {spec.urls[0]} would not be noticed; "
                f"set models.{rec.role}.revision when you redeploy, or run with --refresh"
            )
    return out


# -- scores ---------------------------------------------------------------------------------


def score_all(
    plan: Plan,
    datasets: Datasets,
    gens: Generations,
    *,
    failed_as_wrong: bool = False,
    judged: Mapping[str, Mapping[str, MetricResult]] | None = None,
) -> Scores:
    """Each model's primary metric on every dataset, and on the gold set the secondary
    metrics and those a metric guardrail gates. ``judged``: the judge's scores of the suites
    it scores (``Judged.suite_scores``: dataset → model → result)."""
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
            if ds.harness is not None:
                _score_lm_eval(role, ds, gens, scores, failed_as_wrong)
                continue
            if judged is not None and ds.name in judged:
                if role in judged[ds.name]:
                    scores.add(role, ds.name, ds.spec.name, judged[ds.name][role])
                continue
            texts = outputs(ds, gens.get(role, ds.name), failed_as_wrong)
            names = [ds.spec.name] + ([*scores.secondary, *scores.guarded] if ds is gold else [])
            for name in names:  # one tuple of outputs: a metric family parses it once
                spec = ds.spec if name == ds.spec.name else get_metric(name)
                scores.add(role, ds.name, name, spec(ds.targets, texts, options=ds.options))
    return scores


def _score_lm_eval(
    role: str, ds: Dataset, gens: Generations, scores: Scores, failed_as_wrong: bool
) -> None:
    """lm-eval scores each document from this model's answers; the documents' answers as
    lm-eval filtered them become the samples' outputs (``Generations.set_view``)."""
    from heldout.backends import Generation
    from heldout.harness import score_guard

    raw = gens.get_raw(role, ds.name)
    ids = [s.id for s in ds.samples]
    got = score_guard(ds.harness, raw, sample_ids=ids, failed_as_wrong=failed_as_wrong)
    scores.add(
        role,
        ds.name,
        ds.spec.name,
        MetricResult(
            ds.spec.name,
            float(got.scores.mean()) if got.scores.size else float("nan"),
            got.scores,
            details={"lm_eval_aggregate": got.aggregates, "failed_documents": sum(got.failed)},
        ),
    )
    gens.set_view(
        role,
        ds.name,
        {
            sid: Generation(sid, None if bad else text, "a request failed" if bad else None)
            for sid, text, bad in zip(ids, got.shown, got.failed, strict=True)
        },
    )


def peer_agreement(
    plan: Plan, datasets: Datasets, gens: Generations, scores: Scores
) -> tuple[dict[str, Any], list[str]]:
    """Where a peer tool scored its own outputs (lm-eval's metric, Inspect's scorer), how
    often heldout's primary per-sample score agrees, by model; a warning names the first
    disagreements, so a scorer can be cross-checked before its numbers are trusted."""
    gold = datasets.gold
    out: dict[str, Any] = {}
    warnings: list[str] = []
    for role in roles_of(plan):
        outs = gens.get(role, "gold")
        ours = scores.get(role, "gold", gold.spec.name).per_sample
        pairs = [
            (s.id, float(ours[i]), float(outs[s.id].extra["peer_score"]))
            for i, s in enumerate(gold.samples)
            if outs[s.id].extra.get("peer_score") is not None
        ]
        if not pairs:
            continue
        peer = str(next(iter(outs.values())).extra.get("peer_metric") or "peer score")
        differ = [(sid, a, b) for sid, a, b in pairs if abs(a - b) > 1e-9]
        out[role] = {
            "peer_metric": peer,
            "heldout_metric": gold.spec.name,
            "n": len(pairs),
            "agree": len(pairs) - len(differ),
            "differ": [{"id": sid, "heldout": a, "peer": b} for sid, a, b in differ[:20]],
            "n_differ": len(differ),
        }
        if differ:
            first = ", ".join(f"{sid!r} {a:g} vs {b:g}" for sid, a, b in differ[:3])
            warnings.append(
                f"{role}: heldout's {gold.spec.name} and {peer} disagree on {len(differ)} of "
                f"{len(pairs)} samples (first {first}); check which scorer fits the task"
            )
    return out, warnings


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
    train = None
    if datasets.train is not None:
        train = compare(
            scores.get("base", "train", name),
            scores.get("candidate", "train", name),
            gold.spec,
            stats,
        )
    return Comparisons(primary, secondary, reference, ceiling, slices, train)


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

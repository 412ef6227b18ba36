"""The last stage: what a run decided, as ``results.json`` and ``samples.jsonl`` store it."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from heldout._version import __version__
from heldout.judge import read_human_labels, read_human_scores
from heldout.plan import LoadedPlan, LockStatus, plan_sha256
from heldout.results import (
    CeilingRecord,
    DatasetRecord,
    ModelRecord,
    OverfittingRecord,
    RunResult,
    SliceRecord,
    SmokeRecord,
    VerdictRecord,
)
from heldout.results._table import FLAGS, SampleBlock, SampleTable, flag_code
from heldout.runner._pipeline import lock_warning, roles_of, stats_options
from heldout.runner._records import comparison_record, gate_record, interval_record, json_safe
from heldout.runner._stages import Comparisons, Datasets, Decision, Gates, Generations, Scores
from heldout.stats import Comparison, Interval
from heldout.verdict import GATE_RULE

__all__ = ["build_result", "human_labels", "human_scores", "sample_table"]


def sample_table(
    roles: list[str], datasets: Datasets, gens: Generations, scores: Scores
) -> SampleTable:
    """One block per dataset and model: outputs, every score, review flags (``regression``
    and ``fix`` against the base model on the dataset's metric, the primary on the gold
    set; for binary metrics "base right, this model wrong" and the reverse)."""
    from heldout.metrics.classification import parse_labels

    blocks: list[SampleBlock] = []
    for ds in datasets:
        labels = ds.options.labels
        base: NDArray[np.float64] | None = None
        metric = ds.spec.name
        sign = 1.0 if ds.spec.higher_is_better else -1.0
        for role in roles:
            results = scores.of(role, ds.name)
            outs = gens.get(role, ds.name)
            generations = [outs[s.id] for s in ds.samples]
            texts = [g.text for g in generations]
            codes = np.array(
                [
                    (0 if g.ok else _FAILED)
                    | (_TRUNCATED if g.extra.get("finish_reason") == "length" else 0)
                    for g in generations
                ],
                dtype=np.uint8,
            )
            if labels and "classification" in ds.spec.shapes:
                parsed = parse_labels(
                    [t or "" for t in texts],
                    labels,
                    ds.options.aliases,
                    match=ds.options.label_match,
                )
                codes |= np.array([_UNPARSEABLE * (p is None) for p in parsed], dtype=np.uint8)
            values = {m: r.per_sample for m, r in results.items()}
            if metric in values:
                if role == "base":
                    base = values[metric]
                elif base is not None:
                    change = sign * (values[metric] - base)
                    codes |= np.where(change < 0, _REGRESSION, 0).astype(np.uint8)
                    codes |= np.where(change > 0, _FIX, 0).astype(np.uint8)
            blocks.append(
                SampleBlock(
                    dataset=ds.name,
                    model=role,
                    ids=[s.id for s in ds.samples],
                    inputs=[s.input for s in ds.samples],
                    targets=ds.targets,
                    outputs=texts,
                    errors=[g.error for g in generations],
                    metadata=[s.metadata for s in ds.samples],
                    scores=values,
                    codes=codes,
                )
            )
    return SampleTable(tuple(blocks))


_FAILED, _UNPARSEABLE, _REGRESSION, _FIX, _TRUNCATED = (flag_code([f]) for f in FLAGS)


def human_labels(loaded: LoadedPlan) -> dict[str, str] | None:
    judge = loaded.plan.judge
    if judge is None or not judge.human_labels:
        return None
    return loaded.human_labels or read_human_labels(loaded.resolve(judge.human_labels))


def human_scores(loaded: LoadedPlan) -> dict[tuple[str, str], dict[str, int]] | None:
    """The judge's human rubric labels, by (model, sample id)."""
    judge = loaded.plan.judge
    if judge is None or not judge.human_scores:
        return None
    if loaded.human_scores is not None:
        return loaded.human_scores
    return read_human_scores(loaded.resolve(judge.human_scores), judge.criteria())


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
    peer_scores: dict[str, Any] | None = None,
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
    train = comparisons.train
    return RunResult(
        overfitting=None if train is None else overfitting_record(train, comparisons.primary),
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
                sha256=d.sha256(),
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
        peer_scores=peer_scores or None,
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


def overfitting_record(train: Comparison, gold: Comparison) -> OverfittingRecord:
    """The candidate's lift on its training rows minus its lift on the gold set. The two
    lifts come from different samples, so their difference's interval is the normal one with
    each interval's half-width turned back into a standard error."""
    from heldout.stats._special import norm_ppf

    t, g = train.improvement, gold.improvement
    z = norm_ppf(0.5 + t.confidence / 2)
    se = math.hypot((t.high - t.low) / (2 * z), (g.high - g.low) / (2 * z))
    d = t.estimate - g.estimate
    excess = Interval(d, d - z * se, d + z * se, t.confidence, "difference of independent lifts")
    return OverfittingRecord(
        n_train=train.n,
        train_lift=interval_record(t),
        gold_lift=interval_record(g),
        excess=interval_record(excess),
        overfitting=bool(excess.low > 0),
    )

"""Execute a plan: generate, score, compare, gate, decide, and write ``results.json``.

Data flows one way: plan → samples → requests → generations → scores → comparisons → gates →
verdict → results. The library never prints; progress goes to an optional callback.
"""

from __future__ import annotations

import json
import math
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from heldout._version import __version__
from heldout.backends import Backend, Generation, Request, ResponseCache, make_backend
from heldout.data import FieldMap, Sample, load_samples, render
from heldout.errors import HeldoutError
from heldout.metrics import MetricOptions, MetricResult, MetricSpec, get_metric, metric_names
from heldout.metrics.classification import parse_labels
from heldout.plan import (
    CalibrationGuardrail,
    LoadedPlan,
    LockStatus,
    SliceGuardrail,
    SuiteGuardrail,
    plan_sha256,
    sha256_file,
)
from heldout.results import (
    CeilingRecord,
    ComparisonRecord,
    DatasetRecord,
    GateRecord,
    IntervalRecord,
    ModelRecord,
    RunResult,
    SliceRecord,
    VerdictRecord,
)
from heldout.results._samples import flag_rows, write_samples
from heldout.results._store import RunStore
from heldout.runner._generate import GenerationSink, generate
from heldout.stats import (
    Comparison,
    Interval,
    StatsOptions,
    compare,
    compare_slices,
    detectable_lift,
    ece,
    ece_change,
    reference_ceiling,
    reliability,
    samples_needed,
)
from heldout.suites import builtin_suite
from heldout.verdict import (
    GateResult,
    PowerCheck,
    apply_holm,
    decide,
    noninferiority_gate,
    slice_gate,
)

__all__ = ["FailedGenerationsError", "RunOptions", "run_plan"]

ROLES = ("base", "candidate", "reference")
Progress = Callable[[str, int, int], None]


class FailedGenerationsError(HeldoutError):
    """Some requests failed after all retries; the run refuses to score them silently."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run: where to write, caching, and what to do with failed requests."""

    out_dir: Path | None = None
    cache_path: Path | None = None
    use_cache: bool = True
    refresh: bool = False
    failed_as_wrong: bool = False
    backends: dict[str, Backend] = field(default_factory=dict)  # injected (tests, library use)


@dataclass(slots=True)
class _Dataset:
    name: str
    path: Path
    samples: list[Sample]
    template: str
    spec: MetricSpec
    options: MetricOptions


def _git_revision(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _iv(i: Interval) -> IntervalRecord:
    def f(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    return IntervalRecord(
        estimate=f(i.estimate),
        low=f(i.low),
        high=f(i.high),
        confidence=i.confidence,
        method=i.method,
    )


def _cmp_record(
    c: Comparison, dataset: str, *, against: str = "candidate", primary: bool = False
) -> ComparisonRecord:
    return ComparisonRecord(
        dataset=dataset,
        metric=c.metric,
        against=against,
        n=c.n,
        higher_is_better=c.higher_is_better,
        base=_iv(c.base),
        other=_iv(c.candidate),
        delta=_iv(c.delta),
        p_value=c.p_value,
        test=c.test,
        fixed=c.fixed,
        broken=c.broken,
        primary=primary,
    )


def _gate_record(g: GateResult) -> GateRecord:
    return GateRecord(
        name=g.name,
        kind=g.kind,
        status=g.status,
        change=_iv(g.change),
        margin=g.margin,
        n=g.n,
        fail_when=g.fail_when,
        unresolved=g.unresolved,
        samples_to_resolve=g.samples_to_resolve,
        p_noninferiority=g.p_noninferiority,
        p_holm=g.p_holm,
        detail=g.detail,
        description=g.describe(),
    )


def _gold_dataset(loaded: LoadedPlan) -> _Dataset:
    plan = loaded.plan
    task = plan.task
    schema = None
    if task.schema_file:
        schema = json.loads(loaded.resolve(task.schema_file).read_text(encoding="utf-8"))
    samples = loaded.samples or load_samples(loaded.resolve(task.data), loaded.fields)
    labels = tuple(task.labels) if task.labels else None
    if task.shape == "classification" and labels is None:
        labels = tuple(sorted({str(s.target) for s in samples}))
    options = MetricOptions(
        labels=labels,
        aliases=dict(task.aliases),
        schema=schema,
        extract_json=task.extract_json,
        inputs=[s.input for s in samples],
    )
    return _Dataset(
        "gold",
        loaded.resolve(task.data),
        samples,
        loaded.template,
        get_metric(plan.primary_metric),
        options,
    )


def _suite_dataset(loaded: LoadedPlan, g: SuiteGuardrail) -> _Dataset:
    path = loaded.resolve(g.data) if g.data else builtin_suite(g.suite).path
    samples = load_samples(path, FieldMap())
    spec = get_metric(g.metric)
    labels = None
    if "classification" in spec.shapes:
        labels = tuple(sorted({str(s.target) for s in samples}))
    options = MetricOptions(labels=labels, inputs=[s.input for s in samples])
    return _Dataset(f"suite:{g.suite}", path, samples, g.template, spec, options)


def _constraint_drops(base: MetricResult, cand: MetricResult, top: int = 3) -> str:
    """For graders that tally constraint types (follows_instructions): the types whose pass
    rate fell most, so a failed format guardrail says what broke."""
    b, c = base.details.get("by_constraint"), cand.details.get("by_constraint")
    if not b or not c:
        return ""
    drops = sorted((c[k]["rate"] - b[k]["rate"], k) for k in b if k in c)
    worst = [f"{k} {b[k]['rate']:.2f} → {c[k]['rate']:.2f}" for d, k in drops[:top] if d < 0]
    return "largest drops by constraint: " + ", ".join(worst) if worst else ""


def _requests(ds: _Dataset, with_choices: bool) -> list[Request]:
    choices = ds.options.labels if with_choices else None
    return [
        Request(s.id, render(ds.template, s.template_fields(), sample_id=s.id), choices)
        for s in ds.samples
    ]


def _score(
    ds: _Dataset, gens: dict[str, Generation], spec: MetricSpec, failed_as_wrong: bool
) -> MetricResult:
    preds = []
    for s in ds.samples:
        g = gens[s.id]
        if g.ok:
            preds.append(g.text)
        elif failed_as_wrong:
            preds.append("")  # counted and reported by the caller
        else:
            raise FailedGenerationsError(f"sample {s.id!r} has no output")
    return spec([s.target for s in ds.samples], preds, options=ds.options)


def _calibration(ds: _Dataset, gens: dict[str, Generation]) -> tuple[np.ndarray, np.ndarray] | None:
    labels = ds.options.labels or ()
    conf, correct = [], []
    for s in ds.samples:
        lp = gens[s.id].choice_logprobs
        if not lp or not labels:
            return None
        values = np.array([lp.get(lab, -math.inf) for lab in labels], dtype=np.float64)
        if not np.isfinite(values).any():
            return None
        probs = np.exp(values - values[np.isfinite(values)].max())
        probs /= probs.sum()
        k = int(np.argmax(probs))
        conf.append(float(probs[k]))
        correct.append(float(labels[k] == s.target))
    return np.array(conf), np.array(correct)


def run_plan(
    loaded: LoadedPlan,
    lock: LockStatus,
    options: RunOptions | None = None,
    progress: Progress | None = None,
) -> tuple[RunResult, Path]:
    """Run the plan end to end; return the result and the run folder it was written to."""
    opts = options or RunOptions()
    plan = loaded.plan
    started = time.perf_counter()
    timings: dict[str, float] = {}
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    out_dir = opts.out_dir or (loaded.root / ".heldout" / "runs" / run_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = None
    if opts.use_cache:
        cache = ResponseCache(opts.cache_path or loaded.root / ".heldout" / "cache.sqlite")
    sink = GenerationSink(out_dir / "generations.jsonl")
    stats = StatsOptions(
        confidence=plan.stats.confidence, resamples=plan.stats.resamples, seed=plan.stats.seed
    )

    datasets = [_gold_dataset(loaded)]
    for g in plan.guardrails:
        if isinstance(g, SuiteGuardrail):
            datasets.append(_suite_dataset(loaded, g))

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
    timings["load_s"] = time.perf_counter() - started

    gens: dict[tuple[str, str], dict[str, Generation]] = {}
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
                reqs = _requests(ds, ds.name in calibrated)

                def report(done: int, total: int, role: str = role, ds: _Dataset = ds) -> None:
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
    finally:
        sink.close()
        if cache is not None:
            cache.close()
    timings["generate_s"] = time.perf_counter() - t0

    model_records = []
    warnings: list[str] = []
    failures = 0
    for role in roles:
        all_gens = [g for (r, _), d in gens.items() if r == role for g in d.values()]
        failed = sum(not g.ok for g in all_gens)
        failures += failed
        lat = [g.latency_s for g in all_gens if g.ok and not g.cached]
        costs = [g.cost for g in all_gens if g.cost is not None]
        record = dict(getattr(backends[role], "record", {}) or {})
        model_records.append(
            ModelRecord(
                role=role,
                identity=backends[role].identity(),
                record=record,
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
    if failures and not opts.failed_as_wrong:
        raise FailedGenerationsError(
            f"{failures} request(s) failed after all retries; rerun 'heldout run' to retry only "
            f"those (finished responses come from the cache), or pass --failed-as-wrong to "
            f"score them as wrong and say so. Details: {'; '.join(warnings)}. Generations so "
            f"far: {out_dir / 'generations.jsonl'}"
        )
    if failures:
        warnings.append(f"{failures} failed request(s) were scored as wrong (--failed-as-wrong)")

    t0 = time.perf_counter()
    gold = datasets[0]
    results: dict[tuple[str, str, str], MetricResult] = {}
    for role in roles:
        for ds in datasets:
            results[(role, ds.name, ds.spec.name)] = _score(
                ds, gens[(role, ds.name)], ds.spec, opts.failed_as_wrong
            )
    secondary = _secondary_metrics(plan.task.shape, gold)
    for role in roles:
        for name in secondary:
            results[(role, "gold", name)] = _score(
                gold, gens[(role, "gold")], get_metric(name), opts.failed_as_wrong
            )
    timings["score_s"] = time.perf_counter() - t0
    sample_rows = _sample_rows(roles, datasets, gens, results, gold.spec.name)

    t0 = time.perf_counter()
    comparisons: list[ComparisonRecord] = []
    primary = compare(
        results[("base", "gold", gold.spec.name)],
        results[("candidate", "gold", gold.spec.name)],
        gold.spec,
        stats,
    )
    comparisons.append(_cmp_record(primary, "gold", primary=True))
    for name in secondary:
        c = compare(
            results[("base", "gold", name)],
            results[("candidate", "gold", name)],
            get_metric(name),
            stats,
        )
        comparisons.append(_cmp_record(c, "gold"))
    ceiling = None
    if "reference" in roles:
        key = ("reference", "gold", gold.spec.name)
        ref_cmp = compare(results[("base", "gold", gold.spec.name)], results[key], gold.spec, stats)
        comparisons.append(_cmp_record(ref_cmp, "gold", against="reference"))
        ce = reference_ceiling(
            results[("base", "gold", gold.spec.name)],
            results[("candidate", "gold", gold.spec.name)],
            results[key],
            gold.spec,
            stats,
        )
        ceiling = CeilingRecord(
            share_of_reference=_iv(ce.share_of_reference),
            gap_closed=_iv(ce.gap_closed),
            gap_is_real=ce.gap_is_real,
        )

    gates: list[GateResult] = []
    calibration_info: dict[str, Any] | None = None
    slice_records: list[SliceRecord] = []
    metadata = [s.metadata for s in gold.samples]
    if plan.slices:
        for sc in compare_slices(
            metadata,
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
                    comparison=_cmp_record(sc.comparison, "gold"),
                )
            )
    for g in plan.guardrails:
        if isinstance(g, SuiteGuardrail):
            ds = next(d for d in datasets if d.name == f"suite:{g.suite}")
            c = compare(
                results[("base", ds.name, ds.spec.name)],
                results[("candidate", ds.name, ds.spec.name)],
                ds.spec,
                stats,
            )
            comparisons.append(_cmp_record(c, ds.name))
            gates.append(
                noninferiority_gate(
                    f"suite {g.suite} ({ds.spec.name})",
                    c.improvement,
                    g.max_drop,
                    c.n,
                    fail_when=g.fail_when,
                    unresolved=g.unresolved,
                    detail=_constraint_drops(
                        results[("base", ds.name, ds.spec.name)],
                        results[("candidate", ds.name, ds.spec.name)],
                    ),
                )
            )
        elif isinstance(g, CalibrationGuardrail):
            cal_ds = next(
                d for d in datasets if d.name == ("gold" if g.suite is None else f"suite:{g.suite}")
            )
            base_cal = _calibration(cal_ds, gens[("base", cal_ds.name)])
            cand_cal = _calibration(cal_ds, gens[("candidate", cal_ds.name)])
            if base_cal is None or cand_cal is None:
                nan = Interval(float("nan"), float("nan"), float("nan"), stats.confidence, "none")
                gates.append(
                    noninferiority_gate(
                        f"calibration {g.calibration}",
                        nan,
                        g.max_increase,
                        len(gold.samples),
                        kind="calibration",
                        unresolved=g.unresolved,
                        detail="no label probabilities from a model: its backend did not return "
                        "them",
                    )
                )
                continue
            change = ece_change(*base_cal, *cand_cal, stats)
            calibration_info = {
                "metric": "ece",
                "dataset": cal_ds.name,
                "base_ece": ece(*base_cal),
                "candidate_ece": ece(*cand_cal),
                "increase": _iv(change).model_dump(),
                "reliability": {
                    role: [asdict(b) for b in reliability(*data, bins=10)]
                    for role, data in (("base", base_cal), ("candidate", cand_cal))
                },
            }
            improvement = Interval(
                -change.estimate, -change.high, -change.low, change.confidence, change.method
            )
            gates.append(
                noninferiority_gate(
                    f"calibration ece ({cal_ds.name})",
                    improvement,
                    g.max_increase,
                    len(cal_ds.samples),
                    kind="calibration",
                    fail_when=g.fail_when,
                    unresolved=g.unresolved,
                    detail=f"ECE base {calibration_info['base_ece']:.4f} → candidate "
                    f"{calibration_info['candidate_ece']:.4f}",
                )
            )
        elif isinstance(g, SliceGuardrail):
            per = compare_slices(
                metadata,
                g.slices,
                results[("base", "gold", gold.spec.name)],
                results[("candidate", "gold", gold.spec.name)],
                gold.spec,
                stats,
                min_size=g.min_size,
            )
            gates.append(
                slice_gate(
                    f"slices {', '.join(g.slices)}",
                    [(f"{s.field}={s.value}", s.comparison) for s in per],
                    g.max_drop,
                    g.min_size,
                    fail_when=g.fail_when,
                    unresolved=g.unresolved,
                )
            )
    gates = apply_holm(gates)

    power_check, power_info, power_warning = _power_check(primary, plan, stats)
    if power_warning:
        warnings.append(power_warning)
    verdict = decide(
        primary,
        baseline=plan.baseline,
        success_threshold=plan.success_threshold,
        gates=gates,
        power=power_check,
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
        gates=[_gate_record(g) for g in gates],
        ceiling=ceiling,
        calibration=calibration_info,
        metric_details={
            role: _json_safe(dict(results[(role, "gold", gold.spec.name)].details))
            for role in roles
        },
        power=power_info,
        verdict=VerdictRecord(
            status=verdict.status,
            reasons=verdict.reasons,
            warnings=verdict.warnings,
            exit_code=verdict.exit_code,
        ),
        warnings=warnings,
        timings=timings,
    )
    write_samples(out_dir, sample_rows)
    (out_dir / "results.schema.json").write_text(
        json.dumps(RunResult.model_json_schema(), indent=2), encoding="utf-8"
    )
    tmp = out_dir / "results.json.tmp"
    tmp.write_text(result.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(out_dir / "results.json")
    RunStore(loaded.root / ".heldout" / "runs.sqlite").add(result, out_dir)
    return result, out_dir


def _power_check(
    primary: Comparison, plan: Any, stats: StatsOptions
) -> tuple[PowerCheck | None, dict[str, Any] | None, str | None]:
    """Can this gold set detect the pre-registered lift? For binary primary metrics, with the
    discordance observed in this run (at least the lift itself)."""
    if primary.fixed is None or not primary.higher_is_better or plan.baseline >= 1:
        return None, None, None
    n = primary.n
    observed = (primary.fixed + (primary.broken or 0)) / n
    psi = max(observed, plan.min_detectable_lift) if observed > 0 else None
    alpha, power = 1 - stats.confidence, plan.stats.power
    try:
        lift = min(plan.min_detectable_lift, 1 - plan.baseline)
        need = samples_needed(plan.baseline, lift, alpha=alpha, power=power, discordance=psi)
        can = detectable_lift(n, plan.baseline, alpha=alpha, power=power, discordance=psi)
    except HeldoutError as exc:
        return None, None, f"power check skipped: {exc}"
    check = PowerCheck(n, need.n, can if math.isfinite(can) else None, plan.min_detectable_lift)
    info = {
        "n": n,
        "n_needed": need.n,
        "detectable_lift": check.detectable_lift,
        "discordance": psi,
        "method": need.method,
    }
    return check, info, None


def _secondary_metrics(shape: str, gold: _Dataset) -> list[str]:
    """Built-in metrics of the shape reported beside the primary one (not gated). Plugin
    metrics are reported only when they are the primary metric; model-based metrics
    (embeddings, BERTScore) and those needing inputs the plan lacks are left out."""
    names = []
    for name in metric_names(shape):
        spec = get_metric(name)
        if name == gold.spec.name or not spec.fn.__module__.startswith("heldout.metrics."):
            continue
        if name in ("embedding_similarity", "bertscore_f1"):
            continue
        if name == "schema_valid_rate" and gold.options.schema is None:
            continue
        names.append(name)
    return names


def _json_safe(value: Any) -> Any:
    """Details as plain JSON data (numpy scalars and arrays converted, NaN to None)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _sample_rows(
    roles: list[str],
    datasets: list[_Dataset],
    gens: dict[tuple[str, str], dict[str, Generation]],
    results: dict[tuple[str, str, str], MetricResult],
    primary: str,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for ds in datasets:
        labels = ds.options.labels
        for role in roles:
            metric_results = {
                m: r for (ro, d, m), r in results.items() if ro == role and d == ds.name
            }
            parsed = None
            if labels and "classification" in ds.spec.shapes:
                texts = [gens[(role, ds.name)][s.id].text or "" for s in ds.samples]
                parsed = parse_labels(texts, labels, ds.options.aliases)
            for i, s in enumerate(ds.samples):
                g = gens[(role, ds.name)][s.id]
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
                        "scores": {m: float(r.per_sample[i]) for m, r in metric_results.items()},
                        "flags": flags,
                    }
                )
    directions = {m: get_metric(m).higher_is_better for (_, _, m) in results}
    flag_rows(rows, primary, directions)
    return rows

"""Guardrails into gates: suites, calibration and slices, each a non-inferiority check."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

from heldout.metrics import MetricResult, get_metric
from heldout.plan import (
    CalibrationGuardrail,
    JudgeGuardrail,
    LmEvalGuardrail,
    MetricGuardrail,
    Plan,
    SliceGuardrail,
    SuiteGuardrail,
    plan_power,
)
from heldout.runner._datasets import Dataset, calibration_data
from heldout.runner._judging import Judged
from heldout.runner._records import interval_record
from heldout.runner._stages import DatasetComparison, Datasets, Gates, Generations, Scores
from heldout.stats import (
    Comparison,
    Interval,
    SliceComparison,
    StatsOptions,
    binary_brier,
    calibration_change,
    compare,
    compare_slices,
    ece,
    reliability,
)
from heldout.suites import BUILTIN_SUITES
from heldout.verdict import GateResult, PowerCheck, noninferiority_gate, slice_gate

__all__ = [
    "calibration_gate",
    "gate_all",
    "guardrail_metric_names",
    "judge_gate",
    "lm_eval_gate",
    "power_check",
]


def gate_all(
    plan: Plan,
    datasets: Datasets,
    gens: Generations,
    scores: Scores,
    stats: StatsOptions,
    slices: Sequence[SliceComparison] = (),
    judged: Judged | None = None,
) -> Gates:
    """One gate per guardrail (a non-inferiority check each), the comparisons behind the
    suite and metric gates, and the calibration details when a calibration guardrail could
    be measured. ``slices``: the run's slice comparisons (``Comparisons.slices``); a slice
    guardrail on those fields gates on them instead of comparing every slice again.
    ``judged``: what the judges concluded (:func:`heldout.runner._judging.analyse`), which
    judge guardrails gate on."""
    gold = datasets.gold
    metadata = [s.metadata for s in gold.samples]
    comparisons: list[DatasetComparison] = []
    gates: list[GateResult] = []
    calibration_info: dict[str, Any] | None = None
    for g in plan.guardrails:
        if isinstance(g, SuiteGuardrail):
            ds = datasets.get(f"suite:{g.suite}")
            base = scores.get("base", ds.name, ds.spec.name)
            cand = scores.get("candidate", ds.name, ds.spec.name)
            c = compare(base, cand, ds.spec, stats)
            comparisons.append(DatasetComparison(ds.name, c))
            untrusted = None
            if g.judge and judged is not None:  # a judged suite gates on trusted criteria only
                why = [judged.untrusted[n] for n in g.judge if n in judged.untrusted]
                untrusted = "; ".join(why) or None
            gates.append(
                replace(
                    noninferiority_gate(
                        f"suite {g.suite} ({ds.spec.name})",
                        c.improvement,
                        g.max_drop,
                        c.n,
                        fail_when=g.fail_when,
                        unresolved=g.unresolved,
                        detail=suite_breakdown(
                            ds,
                            base,
                            cand,
                            BUILTIN_SUITES[g.suite].breakdown if g.data is None else None,
                        ),
                    ),
                    untrusted=untrusted,
                )
            )
        elif isinstance(g, JudgeGuardrail):
            gates.append(judge_gate(g, judged))
        elif isinstance(g, LmEvalGuardrail):
            for ds in datasets.suites:
                if ds.harness is None or ds.harness.guardrail != g:
                    continue
                gate, compared = lm_eval_gate(g, ds, scores, stats)
                gates.append(gate)
                comparisons += compared
        elif isinstance(g, CalibrationGuardrail):
            gate, info = calibration_gate(g, datasets, gens, stats)
            gates.append(gate)
            if info is not None and calibration_info is None:
                calibration_info = info
        elif isinstance(g, SliceGuardrail):
            done = {s.field for s in slices}
            if set(g.slices) <= done:  # already compared: only "tiny" depends on min_size
                per = [
                    replace(s, tiny=s.comparison.n < g.min_size)
                    for s in slices
                    if s.field in g.slices
                ]
            else:
                per = compare_slices(
                    metadata,
                    g.slices,
                    scores.get("base", "gold", gold.spec.name),
                    scores.get("candidate", "gold", gold.spec.name),
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
        elif isinstance(g, MetricGuardrail):
            names = guardrail_metric_names(g, gold)
            per_metric = [
                (
                    name,
                    compare(
                        scores.get("base", "gold", name),
                        scores.get("candidate", "gold", name),
                        get_metric(name),
                        stats,
                    ),
                )
                for name in names
            ]
            comparisons += [DatasetComparison("gold", c) for _, c in per_metric]
            if g.metric.endswith("[*]"):
                gates.append(
                    slice_gate(
                        f"metric {g.metric} (every class)",
                        per_metric,
                        g.max_drop,
                        1,
                        fail_when=g.fail_when,
                        unresolved=g.unresolved,
                        kind="metric",
                        units=("class", "classes"),
                    )
                )
            else:
                ((name, c),) = per_metric
                gates.append(
                    noninferiority_gate(
                        f"metric {name}",
                        c.improvement,
                        g.max_drop,
                        c.n,
                        kind="metric",
                        fail_when=g.fail_when,
                        unresolved=g.unresolved,
                    )
                )
    return Gates(tuple(gates), tuple(comparisons), calibration_info)


def judge_gate(g: JudgeGuardrail, judged: Judged | None) -> GateResult:
    """Non-inferiority on what the judge measured: a criterion's candidate − base on its
    scale (``max_drop`` is a share of the scale), 'overall' on 0–1, or the pairwise win rate
    against ½. The gate decides only when the judge agrees with people on it."""
    nan = float("nan")
    target = g.judge
    if judged is not None and target == "win_rate" and judged.win_rate is not None:
        wr, n = judged.win_rate
        change = Interval(wr.estimate - 0.5, wr.low - 0.5, wr.high - 0.5, wr.confidence, wr.method)
        name, margin, detail = (
            "judge win rate (pairwise)",
            g.max_drop,
            f"win rate {wr.estimate:.3f}",
        )
    elif judged is not None and target in judged.tables:
        t = judged.tables[target]
        c = t.delta
        change, n = c.improvement, c.n
        margin = g.max_drop * (t.high - t.low)
        scale = "0–1" if target == "overall" else f"{t.low:g}–{t.high:g}"
        name = f"judge {target} ({scale})"
        detail = f"allowed drop {margin:.3g} points = {g.max_drop:.0%} of the scale"
    else:
        return GateResult(
            name=f"judge {target}", kind="judge", status="unresolved",
            change=Interval(nan, nan, nan, 0.95, "none"), margin=g.max_drop, n=0,
            fail_when=g.fail_when, unresolved=g.unresolved,
            detail="the judge scored no sample both models answered",
        )  # fmt: skip
    gate = noninferiority_gate(
        name, change, margin, n, kind="judge", fail_when=g.fail_when,
        unresolved=g.unresolved, detail=detail,
    )  # fmt: skip
    why = judged.untrusted.get(target)
    return gate if why is None else replace(gate, untrusted=why)


def lm_eval_gate(
    g: LmEvalGuardrail, ds: Dataset, scores: Scores, stats: StatsOptions
) -> tuple[GateResult, list[DatasetComparison]]:
    """Non-inferiority on one lm-eval task, or on all documents of a group (each document
    counts once: lm-eval's size-weighted group score); a group's tasks are compared too and
    reported (each with its own CI), the largest drops named in the gate."""
    guard = ds.harness
    base = scores.get("base", ds.name, ds.spec.name)
    cand = scores.get("candidate", ds.name, ds.spec.name)
    c = compare(base, cand, ds.spec, stats)
    compared = [DatasetComparison(ds.name, c)]
    detail = ""
    if guard.is_group:
        metadata = [s.metadata for s in ds.samples]
        per_task = compare_slices(metadata, ["task"], base, cand, ds.spec, stats, min_size=1)
        compared += [DatasetComparison(f"lm_eval:{s.value}", s.comparison) for s in per_task]
        detail = suite_breakdown(ds, base, cand, "task")
    gate = noninferiority_gate(
        f"lm_eval {guard.name} ({ds.spec.name})", c.improvement, g.max_drop, c.n,
        fail_when=g.fail_when, unresolved=g.unresolved, detail=detail,
    )  # fmt: skip
    return gate, compared


def guardrail_metric_names(g: MetricGuardrail, gold: Dataset) -> list[str]:
    """The gold-set metrics a metric guardrail gates: one, or one per label for ``[*]``."""
    if not g.metric.endswith("[*]"):
        return [g.metric]
    return [f"{g.metric[:-3]}[{label}]" for label in gold.options.labels or ()]


def calibration_gate(
    g: CalibrationGuardrail, datasets: Datasets, gens: Generations, stats: StatsOptions
) -> tuple[GateResult, dict[str, Any] | None]:
    """Non-inferiority of the gated measure (ECE or Brier) on the guardrail's dataset, with
    the plan's bins for both the gate and the reliability table."""
    ds = datasets.get("gold" if g.suite is None else f"suite:{g.suite}")
    base_cal = calibration_data(ds, gens.get("base", ds.name))
    cand_cal = calibration_data(ds, gens.get("candidate", ds.name))
    name = f"calibration {g.calibration} ({ds.name})"
    if not (base_cal.usable and cand_cal.usable):
        lacking = ", ".join(
            f"{role} {cal.missing} of {len(ds.samples)}"
            for role, cal in (("base", base_cal), ("candidate", cand_cal))
            if cal.missing
        )
        nan = Interval(float("nan"), float("nan"), float("nan"), stats.confidence, "none")
        detail = (
            f"samples without label probabilities or a confidence: {lacking}; use a backend "
            "that returns logprobs, or give a 'confidence' or 'probabilities' column in the "
            "predictions file"
        )
        gate = noninferiority_gate(
            name, nan, g.max_increase, len(ds.samples), kind="calibration",
            unresolved=g.unresolved, detail=detail,
        )  # fmt: skip
        return gate, None
    base_xy, cand_xy = (
        (base_cal.confidence, base_cal.correct),
        (cand_cal.confidence, cand_cal.correct),
    )
    bins, binning = g.bins, g.binning
    change = calibration_change(
        g.calibration, *base_xy, *cand_xy, stats, bins=bins, binning=binning
    )
    values = {
        role: {
            "ece": ece(*xy, bins=bins, binning=binning),
            "brier": binary_brier(*xy),
        }
        for role, xy in (("base", base_xy), ("candidate", cand_xy))
    }
    info = {
        "metric": g.calibration,
        "dataset": ds.name,
        "bins": g.bins,
        "binning": g.binning,
        "source": {"base": base_cal.source, "candidate": cand_cal.source},
        "base_ece": values["base"]["ece"],
        "candidate_ece": values["candidate"]["ece"],
        "base_brier": values["base"]["brier"],
        "candidate_brier": values["candidate"]["brier"],
        "increase": interval_record(change).model_dump(),
        "reliability": {
            role: [asdict(b) for b in reliability(*xy, bins=bins, binning=binning)]
            for role, xy in (("base", base_xy), ("candidate", cand_xy))
        },
    }
    improvement = Interval(
        -change.estimate, -change.high, -change.low, change.confidence, change.method
    )
    m = g.calibration
    detail = (
        f"{m.upper() if m == 'ece' else 'Brier'} base {values['base'][m]:.4f} → candidate "
        f"{values['candidate'][m]:.4f} ({g.bins} {g.binning} bins; correctness of the parsed "
        "output, unparseable = wrong)"
    )
    gate = noninferiority_gate(
        name, improvement, g.max_increase, len(ds.samples), kind="calibration",
        fail_when=g.fail_when, unresolved=g.unresolved, detail=detail,
    )  # fmt: skip
    return gate, info


def _drops(base: dict[str, float], cand: dict[str, float], what: str, top: int = 3) -> str:
    falls = sorted((cand[k] - base[k], k) for k in base if k in cand)
    worst = [f"{k} {base[k]:.2f} → {cand[k]:.2f}" for d, k in falls[:top] if d < 0]
    return f"largest drops by {what}: " + ", ".join(worst) if worst else ""


def suite_breakdown(ds: Dataset, base: MetricResult, cand: MetricResult, field: str | None) -> str:
    """What broke inside a suite: the constraint types (graders that tally them) and the
    values of a metadata ``field`` (a built-in suite's breakdown) whose scores fell most."""
    parts = []
    b, c = base.details.get("by_constraint"), cand.details.get("by_constraint")
    if b and c:
        rates = ({k: v["rate"] for k, v in b.items()}, {k: v["rate"] for k, v in c.items()})
        parts.append(_drops(*rates, "constraint"))
    if field:
        groups: dict[str, list[int]] = {}
        for i, sample in enumerate(ds.samples):
            groups.setdefault(str(sample.metadata.get(field)), []).append(i)
        base_means, cand_means = (
            {k: float(r.per_sample[idx].mean()) for k, idx in groups.items()} for r in (base, cand)
        )
        parts.append(_drops(base_means, cand_means, field))
    return "; ".join(p for p in parts if p)


def power_check(
    primary: Comparison, plan: Plan
) -> tuple[PowerCheck | None, dict[str, Any] | None, str | None]:
    """Can this gold set detect the pre-registered lift? With what this run measured (the
    discordance of a binary metric, the SD behind any other's interval), beside what the plan
    assumed before the run (``plan validate`` says the latter), so a difference is explained.
    The plan's own confidence and power decide, as in validate."""
    if plan.baseline >= 1 and primary.higher_is_better:
        return None, None, None
    run = plan_power(plan, primary.n, measured=primary)
    before = plan_power(plan, primary.n)
    if run is None:
        return None, None, "power check skipped: no power calculation fits this metric"
    info: dict[str, Any] = {
        "n": run.n,
        "n_needed": run.n_needed,
        "detectable_lift": run.detectable_lift,
        "power_at_n": run.power_at_n,
        "kind": run.kind,
        "method": run.method,
        "assumption": run.assumption,
        "source": run.source,
        "discordance": run.discordance,
        "paired_sd": run.paired_sd,
        "plan_assumption": None if before is None else before.describe(),
    }
    if run.n_needed is None:
        return None, info, f"power check skipped: {run.note}"
    can = run.detectable_lift
    basis = f"{run.method}, {run.assumption} ({run.source})"
    if before is not None and before.n_needed is not None and before.n_needed != run.n_needed:
        basis += (
            f"; plan validate said {before.n_needed:,}, assuming {before.assumption} "
            f"({before.source})"
        )
    check = PowerCheck(
        run.n,
        run.n_needed,
        can if can is not None and math.isfinite(can) else None,
        plan.min_detectable_lift,
        basis,
    )
    return check, info, None

"""Guardrails into gates: suites, calibration and slices, each a non-inferiority check."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from heldout.backends import Generation
from heldout.metrics import MetricResult
from heldout.plan import CalibrationGuardrail, Plan, SliceGuardrail, SuiteGuardrail, plan_power
from heldout.runner._datasets import Dataset, calibration_data
from heldout.runner._records import interval_record
from heldout.stats import (
    Comparison,
    Interval,
    StatsOptions,
    compare,
    compare_slices,
    ece,
    ece_change,
    reliability,
)
from heldout.suites import BUILTIN_SUITES
from heldout.verdict import GateResult, PowerCheck, noninferiority_gate, slice_gate

__all__ = ["guardrail_gates", "power_check"]


def guardrail_gates(
    plan: Plan,
    datasets: list[Dataset],
    gens: dict[tuple[str, str], dict[str, Generation]],
    results: dict[tuple[str, str, str], MetricResult],
    stats: StatsOptions,
) -> tuple[list[tuple[str, Comparison]], list[GateResult], dict[str, Any] | None]:
    """One gate per guardrail, the suites' comparisons by dataset name, and the
    calibration details when a calibration guardrail could be measured."""
    gold = datasets[0]
    metadata = [s.metadata for s in gold.samples]
    comparisons: list[tuple[str, Comparison]] = []
    gates: list[GateResult] = []
    calibration_info: dict[str, Any] | None = None
    for g in plan.guardrails:
        if isinstance(g, SuiteGuardrail):
            ds = next(d for d in datasets if d.name == f"suite:{g.suite}")
            c = compare(
                results[("base", ds.name, ds.spec.name)],
                results[("candidate", ds.name, ds.spec.name)],
                ds.spec,
                stats,
            )
            comparisons.append((ds.name, c))
            gates.append(
                noninferiority_gate(
                    f"suite {g.suite} ({ds.spec.name})",
                    c.improvement,
                    g.max_drop,
                    c.n,
                    fail_when=g.fail_when,
                    unresolved=g.unresolved,
                    detail=suite_breakdown(
                        ds,
                        results[("base", ds.name, ds.spec.name)],
                        results[("candidate", ds.name, ds.spec.name)],
                        BUILTIN_SUITES[g.suite].breakdown if g.data is None else None,
                    ),
                )
            )
        elif isinstance(g, CalibrationGuardrail):
            cal_ds = next(
                d for d in datasets if d.name == ("gold" if g.suite is None else f"suite:{g.suite}")
            )
            base_cal = calibration_data(cal_ds, gens[("base", cal_ds.name)])
            cand_cal = calibration_data(cal_ds, gens[("candidate", cal_ds.name)])
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
                "increase": interval_record(change).model_dump(),
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
    return comparisons, gates, calibration_info


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
    primary: Comparison, plan: Plan, stats: StatsOptions
) -> tuple[PowerCheck | None, dict[str, Any] | None, str | None]:
    """Can this gold set detect the pre-registered lift? With what this run measured (the
    discordance of a binary metric, the SD behind any other's interval), beside what the plan
    assumed before the run (``plan validate`` says the latter), so a difference is explained."""
    del stats  # the plan's own confidence and power decide, as in validate
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
    check = PowerCheck(
        run.n,
        run.n_needed,
        can if can is not None and math.isfinite(can) else None,
        plan.min_detectable_lift,
    )
    return check, info, None

"""The plan's power check and its guardrails' resolvability.

One power function that ``plan validate``, ``heldout run`` and ``heldout power`` share, so
that they agree, or say why they differ (the plan's assumption vs what a run measured)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from heldout.errors import HeldoutError
from heldout.metrics import get_metric
from heldout.plan._load import LoadedPlan
from heldout.plan._model import (
    JudgeGuardrail,
    LmEvalGuardrail,
    Plan,
    SliceGuardrail,
    SuiteGuardrail,
)
from heldout.stats import Comparison, PowerAssessment, assess_power
from heldout.stats._power import (
    DEFAULT_GUARD_DISCORDANCE,
    noninferiority_pass_chance,
    noninferiority_samples_needed,
)
from heldout.stats._special import t_ppf
from heldout.suites import BUILTIN_SUITES

__all__ = ["Resolvability", "guardrail_resolvability", "plan_power"]


def plan_power(
    plan: Plan,
    n: int,
    *,
    measured: Comparison | None = None,
    lift: float | None = None,
    discordance: float | None = None,
    paired_sd: float | None = None,
) -> PowerAssessment | None:
    """Can a gold set of ``n`` detect the plan's ``min_detectable_lift`` (or ``lift``)?

    Assumptions, first found wins: the arguments; what ``measured`` (the run's primary
    comparison) shows (discordance, or the SD behind its interval); the plan's
    ``stats.discordance`` / ``stats.paired_sd``; independent errors (binary only). Returns None
    when the question has no answer (a bounded metric already at its top).
    """
    spec = get_metric(plan.primary_metric)
    lift = plan.min_detectable_lift if lift is None else lift
    alpha, target = 1 - plan.stats.confidence, plan.stats.power
    source = "given"
    if measured is not None and discordance is None and paired_sd is None and measured.n >= 2:
        source = "measured in this run"
        if measured.fixed is not None:
            observed = (measured.fixed + (measured.broken or 0)) / measured.n
            discordance = max(observed, lift) if observed > 0 else None
        else:
            d = measured.delta
            half = (d.high - d.low) / 2
            if math.isfinite(half) and half > 0:
                paired_sd = half / t_ppf(measured.n - 1, 0.5 + d.confidence / 2) * (measured.n**0.5)
    if discordance is None and paired_sd is None:
        discordance, paired_sd, source = plan.stats.discordance, plan.stats.paired_sd, "plan"
    kind = spec.kind if measured is None or measured.fixed is None else "binary"
    base_rate = plan.baseline if spec.higher_is_better else 1 - plan.baseline
    if kind == "binary" and not 0 <= base_rate < 1:
        return None
    try:
        return assess_power(
            kind,
            n=n,
            lift=lift,
            alpha=alpha,
            power=target,
            base_rate=base_rate,
            discordance=discordance,
            paired_sd=paired_sd,
            source=source,
        )
    except HeldoutError:
        return None


@dataclass(frozen=True, slots=True)
class Resolvability:
    """A guardrail's chance to pass when nothing got worse, before any run."""

    name: str
    n: int
    margin: float
    pass_chance: float | None
    samples_for_80: int | None
    note: str = ""

    def describe(self) -> str:
        if self.pass_chance is None:
            return f"{self.name}: {self.note}"
        need = (
            f"~{self.samples_for_80:,} would give 80%"
            if self.samples_for_80 and self.samples_for_80 > self.n
            else "enough samples"
        )
        return (
            f"{self.name} (n={self.n:,}, max_drop {self.margin:g}): "
            f"{self.pass_chance:.0%} chance to pass if nothing got worse; {need} ({self.note})"
        )


def _judge_trust(loaded: LoadedPlan, g: JudgeGuardrail) -> Resolvability:
    """Whether a judge guardrail can gate: what it needs from the human labels."""
    judge = loaded.plan.judge
    n = len(loaded.samples)
    name = f"judge {g.judge}"
    if judge is None:
        return Resolvability(name, n, g.max_drop, None, None, "no judge in the plan")
    need = f"agreement ≥ {judge.min_agreement:.0%}"
    if g.judge == "win_rate":
        have = len(loaded.human_labels or {})
        what = "human pairwise labels"
    else:
        names = [c.name for c in judge.criteria()] if g.judge == "overall" else [g.judge]
        rated = loaded.human_scores or {}
        have = min(sum(c in s for s in rated.values()) for c in names) if names else 0
        what = f"human scores of {', '.join(names)}"
    if not have:
        return Resolvability(
            name, n, g.max_drop, None, None,
            f"cannot gate: no {what}; it will be reported, not gated",
        )  # fmt: skip
    return Resolvability(
        name, n, g.max_drop, None, None,
        f"gates only if the judge reaches {need} with the {have} {what} (checked at run "
        "time; otherwise reported, not gated)",
    )  # fmt: skip


def guardrail_resolvability(loaded: LoadedPlan) -> list[Resolvability]:
    """For each suite and slice guardrail with a binary metric: the exact chance it passes
    (rather than staying unresolved) when the candidate broke nothing, assuming base and
    candidate disagree on ``stats.discordance`` of the prompts (default 10%), and the samples
    that would make that chance 80%. Calibration gates are bootstrapped: not estimated."""
    plan = loaded.plan
    psi = plan.stats.discordance or DEFAULT_GUARD_DISCORDANCE
    conf = plan.stats.confidence
    assumed = f"models disagreeing on {psi:.0%} of prompts"
    out: list[Resolvability] = []
    if any(isinstance(g, LmEvalGuardrail) for g in plan.guardrails):
        out += _lm_eval_resolvability(loaded, psi, conf, assumed)
    for g in plan.guardrails:
        if isinstance(g, JudgeGuardrail):
            out.append(_judge_trust(loaded, g))
        elif isinstance(g, SuiteGuardrail) and g.judge:
            n = len(loaded.suite_samples.get(g.suite) or [])
            if not n and g.data is None and g.suite in BUILTIN_SUITES:
                n = BUILTIN_SUITES[g.suite].size
            note = (
                f"n={n}, scored by the judge on {', '.join(g.judge)} (a continuous score: its "
                "chance to pass is not estimated before the run)"
            )
            out.append(Resolvability(f"suite {g.suite}", n, g.max_drop, None, None, note))
        elif isinstance(g, SuiteGuardrail):
            n = len(loaded.suite_samples.get(g.suite) or [])
            if not n and g.data is None and g.suite in BUILTIN_SUITES:
                n = BUILTIN_SUITES[g.suite].size
            out.append(_binary(f"suite {g.suite}", g.metric, n, g.max_drop, psi, conf, assumed))
        elif isinstance(g, SliceGuardrail) and loaded.samples:
            for fld in g.slices:
                sizes: dict[str, int] = {}
                for s in loaded.samples:
                    if fld in s.metadata:
                        key = str(s.metadata[fld])
                        sizes[key] = sizes.get(key, 0) + 1
                eligible = sorted(v for v in sizes.values() if v >= g.min_size)
                name = f"slices {fld}"
                if not eligible:
                    out.append(
                        Resolvability(name, 0, g.max_drop, None, None, "no slice is big enough")
                    )
                    continue
                # every eligible slice must pass (disjoint samples: independent chances)
                parts = [
                    _binary(name, plan.primary_metric, k, g.max_drop, psi, conf, assumed)
                    for k in eligible
                ]
                if any(p.pass_chance is None for p in parts):
                    out.append(parts[0])
                    continue
                chance = math.prod(p.pass_chance or 0.0 for p in parts)
                # 80% for all k slices together: each smallest-slice share needs 0.8^(1/k)
                per_slice = (
                    noninferiority_samples_needed(
                        g.max_drop, discordance=psi, confidence=conf, power=0.8 ** (1 / len(parts))
                    )
                    if g.max_drop > 0
                    else 0
                )
                scale = per_slice / eligible[0]
                out.append(
                    Resolvability(
                        f"{name} ({len(eligible)} slices, smallest {eligible[0]})",
                        sum(eligible),
                        g.max_drop,
                        chance,
                        math.ceil(len(loaded.samples) * scale) if scale else None,
                        assumed + "; all slices must pass",
                    )
                )
    return out


def _lm_eval_resolvability(
    loaded: LoadedPlan, psi: float, conf: float, assumed: str
) -> list[Resolvability]:
    """Each lm-eval task or group: the chance to resolve at its margin (as a suite), and what
    it costs: requests per model (one per document, one per choice for multiple choice) and
    prompt tokens (characters / 4, few-shot context included)."""
    from heldout.harness import LM_EVAL_BINARY, harness_guards

    out = []
    for guard in harness_guards(loaded):
        n = sum(len(t.indices) for t in guard.tasks)
        reqs = guard.requests()
        chars = sum(len(r.prompt) + len(r.continuation or "") for r in reqs)
        cost = f"{len(reqs):,} requests per model, ~{chars / 4:,.0f} prompt tokens"
        name = f"lm_eval {guard.name}"
        margin = guard.guardrail.max_drop
        if guard.metric not in LM_EVAL_BINARY:
            out.append(Resolvability(name, n, margin, None, None, f"not a 0/1 metric; {cost}"))
            continue
        r = _binary(name, "exact_match", n, margin, psi, conf, assumed)
        out.append(
            Resolvability(name, n, margin, r.pass_chance, r.samples_for_80, f"{r.note}; {cost}")
        )
    return out


def _binary(
    name: str, metric: str, n: int, margin: float, psi: float, conf: float, assumed: str
) -> Resolvability:
    try:
        binary = get_metric(metric).binary
    except HeldoutError:
        binary = False
    if not binary or n < 1:
        why = "not a 0/1 metric: not estimated" if n else "size unknown"
        return Resolvability(name, n, margin, None, None, why)
    if margin <= 0:
        return Resolvability(name, n, margin, 0.0, None, "max_drop 0 can never be shown")
    return Resolvability(
        name,
        n,
        margin,
        noninferiority_pass_chance(n, margin, discordance=psi, confidence=conf),
        noninferiority_samples_needed(margin, discordance=psi, confidence=conf),
        assumed,
    )

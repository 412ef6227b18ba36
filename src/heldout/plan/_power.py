"""The plan's power check: one function that ``plan validate``, ``heldout run`` and
``heldout power`` share, so that they agree, or say why they differ (the plan's assumption vs
what a run measured)."""

from __future__ import annotations

import math

from heldout.errors import HeldoutError
from heldout.metrics import get_metric
from heldout.plan._model import Plan
from heldout.stats import Comparison, PowerAssessment, assess_power
from heldout.stats._special import t_ppf

__all__ = ["plan_power"]


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

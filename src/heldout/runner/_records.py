"""Statistics and gates as the records results.json stores."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from heldout.results import ComparisonRecord, GatePartRecord, GateRecord, IntervalRecord
from heldout.stats import Comparison, Interval
from heldout.verdict import GateResult

__all__ = ["comparison_record", "gate_record", "interval_record", "json_safe"]


def interval_record(i: Interval) -> IntervalRecord:
    def f(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    return IntervalRecord(
        estimate=f(i.estimate),
        low=f(i.low),
        high=f(i.high),
        confidence=i.confidence,
        method=i.method,
    )


def comparison_record(
    c: Comparison, dataset: str, *, against: str = "candidate", primary: bool = False
) -> ComparisonRecord:
    return ComparisonRecord(
        dataset=dataset,
        metric=c.metric,
        against=against,
        n=c.n,
        higher_is_better=c.higher_is_better,
        base=interval_record(c.base),
        other=interval_record(c.candidate),
        delta=interval_record(c.delta),
        p_value=c.p_value if math.isfinite(c.p_value) else None,
        test=c.test,
        fixed=c.fixed,
        broken=c.broken,
        primary=primary,
    )


def gate_record(g: GateResult) -> GateRecord:
    return GateRecord(
        name=g.name,
        kind=g.kind,
        status=g.status,
        change=interval_record(g.change),
        margin=g.margin,
        n=g.n,
        fail_when=g.fail_when,
        unresolved=g.unresolved,
        samples_to_resolve=g.samples_to_resolve,
        p_noninferiority=g.p_noninferiority,
        detail=g.detail,
        description=g.describe(),
        untrusted=g.untrusted,
        parts=[
            GatePartRecord(
                label=p.label,
                status=p.status,
                change=interval_record(p.change),
                n=p.n,
                samples_to_resolve=p.samples_to_resolve,
            )
            for p in g.parts
        ],
    )


def json_safe(value: Any) -> Any:
    """Details as plain JSON data (numpy scalars and arrays converted, NaN to None)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

"""What every report shows, computed once from stored results: losses first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from heldout.results import ComparisonRecord, GateRecord, RunResult
from heldout.results._table import SampleBlock, SampleTable

__all__ = ["SHOWN", "ReportView", "build_view", "fmt"]

#: Per-sample rows a report lists per table; the rest are counted, and all of them are in
#: samples.parquet / samples.jsonl. A million-sample run keeps a report of bounded size.
SHOWN = 500


def fmt(x: float | None, digits: int = 4, signed: bool = False) -> str:
    """A number for humans; missing values say so."""
    if x is None:
        return "n/a"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


@dataclass(slots=True)
class ReportView:
    result: RunResult
    primary: ComparisonRecord | None
    comparisons: list[ComparisonRecord]
    gates: list[GateRecord]  # failures first
    regressions: list[dict[str, Any]]  # base right, candidate wrong on the gold set
    unparseable: list[dict[str, Any]]
    weakest_class: tuple[str, dict[str, Any]] | None
    weakest_slice: dict[str, Any] | None
    confusion: dict[str, Any] = field(default_factory=dict)
    suite_regressions: list[dict[str, Any]] = field(default_factory=list)
    #: How many there are; the lists above hold the first SHOWN of each, in file order.
    totals: dict[str, int] = field(default_factory=dict)


def build_view(result: RunResult, rows: SampleTable | Sequence[Mapping[str, Any]]) -> ReportView:
    """The report's content: verdict, key table, gates (failures first), then losses."""
    table = rows if isinstance(rows, SampleTable) else SampleTable.from_rows(rows)
    order = {"fail": 0, "unresolved": 1, "pass": 2}
    gates = sorted(result.gates, key=lambda g: (order[g.status], g.name))
    regressions: list[dict[str, Any]] = []
    suite_regressions: list[dict[str, Any]] = []
    unparseable: list[dict[str, Any]] = []
    totals = {"regressions": 0, "suite_regressions": 0, "unparseable": 0}
    base_of: dict[str, dict[str, tuple[SampleBlock, int]]] = {}

    def base_output(dataset: str, sample_id: str) -> str | None:
        if dataset not in base_of:  # built for the datasets a listed row needs, once
            base_of[dataset] = {
                sid: (b, i)
                for b in table.blocks
                if b.dataset == dataset and b.model == "base"
                for i, sid in enumerate(b.ids)
            }
        hit = base_of[dataset].get(sample_id)
        return hit[0].outputs[hit[1]] if hit else None

    def keep(kind: str, into: list[dict[str, Any]], block: SampleBlock, flag: str) -> None:
        where = block.where(flag)
        totals[kind] += len(where)
        for i in where[: max(SHOWN - len(into), 0)].tolist():
            r = block.row(i)
            into.append({**r, "base_output": base_output(r["dataset"], r["id"])})

    for block in table.blocks:
        if block.model != "candidate":
            continue
        if block.dataset == "gold":
            keep("regressions", regressions, block, "regression")
            keep("unparseable", unparseable, block, "unparseable")
        else:
            keep("suite_regressions", suite_regressions, block, "regression")
    details = result.metric_details.get("candidate", {})
    report = details.get("report") or {}
    per_class = report.get("per_class") or {}
    weakest = min(per_class.items(), key=lambda kv: kv[1]["f1"]) if per_class else None
    confusion = {}
    for role in ("base", "candidate"):
        rep = (result.metric_details.get(role) or {}).get("report")
        if rep:
            confusion[role] = {
                "rows": rep["labels"],
                "columns": rep["confusion_columns"],
                "matrix": rep["confusion_matrix"],
            }
    weakest_slice = None
    eligible = [s for s in result.slices if not s.tiny] or list(result.slices)
    if eligible:
        s = min(eligible, key=lambda s: s.comparison.delta.estimate or 0.0)
        weakest_slice = {
            "field": s.field,
            "value": s.value,
            "tiny": s.tiny,
            "comparison": s.comparison,
        }
    primary = next((c for c in result.comparisons if c.primary), None)
    return ReportView(
        result=result,
        primary=primary,
        comparisons=list(result.comparisons),
        gates=gates,
        regressions=regressions,
        unparseable=unparseable,
        weakest_class=weakest,
        weakest_slice=weakest_slice,
        confusion=confusion,
        suite_regressions=suite_regressions,
        totals=totals,
    )

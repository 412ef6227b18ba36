"""What every report shows, computed once from stored results: losses first."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from heldout.report._diagnoses import Diagnosis, diagnose, overfitting
from heldout.report._format import fmt
from heldout.results import ComparisonRecord, GateRecord, RunResult
from heldout.results._table import SampleBlock, SampleTable

__all__ = [
    "SHOWN",
    "Breakdown",
    "Group",
    "Loss",
    "ReportView",
    "build_view",
    "fmt",
    "loss_order",
    "significant_losses",
]


#: Per-sample rows a report lists per table; the rest are counted, and all of them are in
#: samples.parquet / samples.jsonl. A million-sample run keeps a report of bounded size.
SHOWN = 500


@dataclass(frozen=True, slots=True)
class Loss:
    """One significant loss: the change (oriented so that negative is worse) and its CI."""

    kind: str  # primary, secondary, suite, slice, calibration, judge, guardrail
    name: str
    change: float | None
    low: float | None
    high: float | None
    n: int
    note: str = ""


@dataclass(frozen=True, slots=True)
class Group:
    """Regressions within one class, slice value or suite, out of the samples in it."""

    by: str  # "class", a slice field, or "suite"
    value: str
    regressions: int
    n: int


@dataclass(frozen=True, slots=True)
class Breakdown:
    """A suite's samples of one skill or constraint type."""

    suite: str
    field: str
    value: str
    n: int
    base: float
    candidate: float
    regressions: int


#: Metadata fields that name a suite sample's skill or constraint type, in order of preference.
BREAKDOWN_FIELDS = ("skill", "constraints", "format", "language", "category", "type")


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
    #: Every significant loss (primary, secondary, suite, slice, calibration, judge,
    #: failed guardrail), worst first within each kind.
    losses: list[Loss] = field(default_factory=list)
    #: Regressions (base right, candidate wrong) per dataset: the gold set, then each suite.
    regression_counts: dict[str, int] = field(default_factory=dict)
    weakest_suite: ComparisonRecord | None = None
    #: Regressions grouped by class, slice and suite, with the group's size.
    groups: list[Group] = field(default_factory=list)
    #: Each suite's samples by skill / constraint type: base and candidate means.
    breakdown: list[Breakdown] = field(default_factory=list)
    #: Symptoms with their evidence (cut-off outputs, refusals of safe prompts, format
    #: obsession); only where the candidate shows them more than the base.
    diagnoses: list[Diagnosis] = field(default_factory=list)


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
        if block.model != "candidate" or block.dataset == "train":
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
    cand = [c for c in result.comparisons if c.against == "candidate"]
    suites = [c for c in cand if c.dataset not in ("gold", "train")]
    return ReportView(
        result=result,
        primary=primary,
        comparisons=sorted(result.comparisons, key=loss_order),
        gates=gates,
        regressions=regressions,
        unparseable=unparseable,
        weakest_class=weakest,
        weakest_slice=weakest_slice,
        confusion=confusion,
        suite_regressions=suite_regressions,
        totals=totals,
        losses=significant_losses(result),
        regression_counts=_regression_counts(table),
        weakest_suite=min(suites, key=_oriented) if suites else None,
        groups=_groups(table, sorted({s.field for s in result.slices})),
        breakdown=_breakdown(table),
        diagnoses=diagnose(table) + overfitting(result),
    )


def _oriented(c: ComparisonRecord) -> float:
    """The delta with "worse" negative, whichever way the metric points."""
    d = c.delta.estimate or 0.0
    return d if c.higher_is_better else -d


def _oriented_ci(c: ComparisonRecord) -> tuple[float | None, float | None]:
    lo, hi = c.delta.low, c.delta.high
    if c.higher_is_better:
        return lo, hi
    return (None if hi is None else -hi), (None if lo is None else -lo)


def _significant_loss(c: ComparisonRecord) -> bool:
    return (_oriented_ci(c)[1] or 0.0) < 0


def _significant_gain(c: ComparisonRecord) -> bool:
    return (_oriented_ci(c)[0] or 0.0) > 0


def loss_order(c: ComparisonRecord) -> tuple[int, int, float]:
    """Significant losses first, then the rest, then significant gains; the candidate
    before the reference; worst first within each."""
    rank = 0 if _significant_loss(c) else 2 if _significant_gain(c) else 1
    return (c.against != "candidate", rank, _oriented(c))


def significant_losses(result: RunResult) -> list[Loss]:
    """Every loss whose interval lies below zero (oriented), and every failed guardrail."""
    out: list[Loss] = []

    def add(kind: str, name: str, c: ComparisonRecord, note: str = "") -> None:
        lo, hi = _oriented_ci(c)
        out.append(Loss(kind, name, _oriented(c), lo, hi, c.n, note))

    # a suite's failed guardrail is said on that suite's row, not on a second one
    failed = {g.name: g for g in result.gates if g.status == "fail"}
    said: set[str] = set()
    for c in sorted(result.comparisons, key=_oriented):
        if c.against != "candidate" or not _significant_loss(c):
            continue
        kind = (
            "primary"
            if c.primary
            else {"gold": "secondary", "train": "train"}.get(c.dataset, "suite")
        )
        # suite:x is gated as "suite x (metric)", an lm-eval task lm_eval:x as "lm_eval x (..)"
        gate = failed.get(f"{c.dataset.replace(':', ' ', 1)} ({c.metric})")
        note = ""
        if gate is not None and gate.kind == "suite":
            said.add(gate.name)
            note = f"guardrail failed: allowed drop {gate.margin:g}"
        add(kind, f"{c.dataset} · {c.metric}", c, note)
    # likewise a failed slice guardrail, on the rows of the slices that failed it
    failing = {
        p.label: g
        for g in result.gates
        if g.kind == "slice" and g.status == "fail"
        for p in g.parts
        if p.status == "fail"
    }
    listed: set[str] = set()
    for s in sorted(result.slices, key=lambda s: _oriented(s.comparison)):
        if _significant_loss(s.comparison):
            label = f"{s.field}={s.value}"
            gate = failing.get(label)
            note = "tiny slice: reported, not gated" if s.tiny else ""
            if gate is not None:
                note = f"guardrail failed ({gate.name}): allowed drop {gate.margin:g}"
                listed.add(label)
            add("slice", f"{label} · {s.comparison.metric}", s.comparison, note)
    for g in result.gates:
        parts = [p.label for p in g.parts if p.status == "fail"]
        if g.kind == "slice" and g.status == "fail" and parts and set(parts) <= listed:
            continue  # every failing slice is on its own row, with the guardrail named
        if g.status == "fail" and g.name not in said:
            kind = {"calibration": "calibration", "suite": "suite", "slice": "slice"}.get(
                g.kind, "guardrail"
            )
            note = f"guardrail failed: allowed drop {g.margin:g}"
            if g.untrusted:
                note = f"past the allowed drop {g.margin:g}, not gated: {g.untrusted}"
            ch = g.change
            out.append(Loss(kind, f"guardrail · {g.name}", ch.estimate, ch.low, ch.high, g.n, note))
    judge = result.judge or {}
    rate = judge.get("win_rate") or {}
    if all(rate.get(k) is not None for k in ("estimate", "low", "high")) and rate["high"] < 0.5:
        out.append(
            Loss(
                "judge",
                "judge win rate of the candidate",
                rate["estimate"] - 0.5,
                rate["low"] - 0.5,
                rate["high"] - 0.5,
                int(judge.get("n") or 0),
                "below 0.5: the judge prefers the base",
            )
        )
    rubric = judge.get("rubric") if isinstance(judge.get("rubric"), dict) else {}
    for row in (rubric or {}).get("table") or []:
        d = row.get("delta") or {}
        if d.get("high") is not None and d["high"] < 0:
            out.append(
                Loss(
                    "judge", f"judge rubric · {row['criterion']}", d["estimate"], d["low"],
                    d["high"], int(row.get("n") or 0),
                    "the judge scores the candidate lower than the base",
                )
            )  # fmt: skip
    order = (
        "primary", "secondary", "suite", "slice", "calibration", "judge", "guardrail", "train"
    )  # fmt: skip
    return sorted(out, key=lambda x: order.index(x.kind))


def _regression_counts(table: SampleTable) -> dict[str, int]:
    counts: dict[str, int] = {}
    for b in table.blocks:
        if b.model == "candidate" and b.dataset != "train":
            counts[b.dataset] = counts.get(b.dataset, 0) + len(b.where("regression"))
    return dict(sorted(counts.items(), key=lambda kv: (kv[0] != "gold", kv[0])))


def _groups(table: SampleTable, slice_fields: list[str]) -> list[Group]:
    """Gold-set regressions by class (string targets, up to 50 of them) and by each slice
    field; suite regressions by suite. Largest share first."""
    out: list[Group] = []
    for b in table.blocks:
        if b.model != "candidate" or b.dataset == "train":
            continue
        flagged = set(b.where("regression").tolist())
        if b.dataset != "gold":
            out.append(Group("suite", b.dataset, len(flagged), len(b)))
            continue
        keys: list[tuple[str, list[str]]] = []
        if all(isinstance(t, str) for t in b.targets) and len(set(b.targets)) <= 50:
            keys.append(("class", [str(t) for t in b.targets]))
        for f in slice_fields:
            keys.append((f, [str(m.get(f, "")) for m in b.metadata]))
        for by, values in keys:
            sizes = Counter(values)
            hits = Counter(values[i] for i in flagged)
            out += [Group(by, v, hits[v], n) for v, n in sizes.items()]
    return sorted(out, key=lambda g: (-(g.regressions / g.n if g.n else 0), g.by, g.value))


def _breakdown(table: SampleTable) -> list[Breakdown]:
    """Each suite's primary score by the first skill / constraint field its samples carry."""
    base = {b.dataset: b for b in table.blocks if b.model == "base"}
    out: list[Breakdown] = []
    for b in table.blocks:
        if b.model != "candidate" or b.dataset in ("gold", "train") or b.dataset not in base:
            continue
        other = base[b.dataset]
        metric = next(iter(b.scores), None)
        if metric is None or metric not in other.scores or len(other) != len(b):
            continue
        name = next((f for f in BREAKDOWN_FIELDS if any(f in m for m in b.metadata)), None)
        if name is None:
            continue
        flagged = set(b.where("regression").tolist())
        cells: dict[str, list[int]] = {}
        for i, m in enumerate(b.metadata):
            cells.setdefault(str(m.get(name, "")), []).append(i)
        for value, idx in sorted(cells.items()):
            out.append(
                Breakdown(
                    b.dataset,
                    name,
                    value,
                    len(idx),
                    float(other.scores[metric][idx].mean()),
                    float(b.scores[metric][idx].mean()),
                    sum(i in flagged for i in idx),
                )
            )
    return out

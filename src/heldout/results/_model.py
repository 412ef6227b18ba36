"""Versioned result models: the contract between running and reporting.

``results.json`` holds a :class:`RunResult`; reports, comparisons across runs and the
flywheel read it and never call a model. Missing values are ``None``, never strings.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SCHEMA_VERSION",
    "CeilingRecord",
    "ComparisonRecord",
    "DatasetRecord",
    "GatePartRecord",
    "GateRecord",
    "IntervalRecord",
    "ModelRecord",
    "OverfittingRecord",
    "RunResult",
    "SliceRecord",
    "VerdictRecord",
]

#: 2: gates are no longer Holm-corrected (intersection–union, ``stats.gate_rule``); slice
#: gates list each slice's outcome in ``parts``. 3: smoke runs (``smoke``, verdict status
#: ``smoke``). Version-1 and -2 files still load.
SCHEMA_VERSION = 3


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntervalRecord(_Model):
    estimate: float | None
    low: float | None
    high: float | None
    confidence: float
    method: str


class ComparisonRecord(_Model):
    """Candidate (or reference) vs base on one metric of one dataset, paired by sample."""

    dataset: str
    metric: str
    against: Literal["candidate", "reference"] = "candidate"
    n: int
    higher_is_better: bool
    base: IntervalRecord
    other: IntervalRecord
    delta: IntervalRecord
    p_value: float | None = Field(description="None when no test applies (e.g. no variation).")
    test: str
    fixed: int | None = None
    broken: int | None = None
    primary: bool = False


class SliceRecord(_Model):
    field: str
    value: str
    tiny: bool
    comparison: ComparisonRecord


class GatePartRecord(_Model):
    """One slice of a slice guardrail and its own outcome."""

    label: str
    status: Literal["pass", "fail", "unresolved"]
    change: IntervalRecord
    n: int
    samples_to_resolve: int | None = None


class GateRecord(_Model):
    name: str
    kind: Literal["suite", "calibration", "slice", "metric", "judge"]
    status: Literal["pass", "fail", "unresolved"]
    change: IntervalRecord
    margin: float
    n: int
    fail_when: Literal["point", "ci"]
    unresolved: Literal["inconclusive", "warn"]
    samples_to_resolve: int | None = None
    p_noninferiority: float | None = None
    p_holm: float | None = Field(
        default=None, description="Schema 1 only (Holm-corrected gates); never written now."
    )
    detail: str = ""
    description: str = ""
    parts: list[GatePartRecord] = Field(default_factory=list)
    untrusted: str | None = Field(
        default=None,
        description="Why this gate was reported but could not decide the verdict (a judge "
        "below min_agreement with the human labels); null for a gate that decides.",
    )


class CeilingRecord(_Model):
    share_of_reference: IntervalRecord
    gap_closed: IntervalRecord
    gap_is_real: bool


class VerdictRecord(_Model):
    status: Literal["success", "improved_but_short", "no_gain", "blocked", "inconclusive", "smoke"]
    reasons: list[str]
    warnings: list[str]
    exit_code: int


class SmokeRecord(_Model):
    """A smoke run (``--limit`` / ``--sample-ids``): a few samples, never a verdict."""

    gold_total: int = Field(description="Samples in the gold set.")
    gold_run: int = Field(description="Gold samples this run evaluated.")
    limit: int | None = None
    sample_ids: str | None = Field(default=None, description="Where the sample ids came from.")


class OverfittingRecord(_Model):
    """The train-vs-held-out gap: lifts oriented so that positive is better."""

    n_train: int
    train_lift: IntervalRecord
    gold_lift: IntervalRecord
    excess: IntervalRecord = Field(
        description="train_lift - gold_lift; the two samples are independent, so its interval "
        "combines theirs (normal approximation from each interval's half-width)."
    )
    overfitting: bool = Field(description="The excess's whole interval lies above zero.")


class ModelRecord(_Model):
    role: str = Field(
        description="base, candidate, reference, or judge (judge_2, judge_3 … for a panel)."
    )
    identity: dict[str, Any]
    record: dict[str, Any] = Field(default_factory=dict)
    requests: int = 0
    cached: int = 0
    failed: int = 0
    latency_s_mean: float | None = None
    cost: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class DatasetRecord(_Model):
    name: str
    path: str
    sha256: str
    n: int
    metric: str


class RunResult(_Model):
    """Everything a run decided and why; re-renderable without calling any model."""

    schema_version: int = SCHEMA_VERSION
    heldout_version: str
    run_id: str
    created_at: str
    plan_name: str
    plan_path: str
    plan_sha256: str
    lock: dict[str, Any]
    git_revision: str | None = None
    primary_metric: str
    baseline: float
    success_threshold: float
    stats: dict[str, Any]
    models: list[ModelRecord]
    datasets: list[DatasetRecord]
    comparisons: list[ComparisonRecord]
    slices: list[SliceRecord] = Field(default_factory=list)
    gates: list[GateRecord] = Field(default_factory=list)
    ceiling: CeilingRecord | None = None
    calibration: dict[str, Any] | None = None
    metric_details: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per model: the primary metric's tables (per class, confusion matrix ...).",
    )
    power: dict[str, Any] | None = None
    judge: dict[str, Any] | None = Field(
        default=None,
        description="The plan's LLM judge: the rubric table (per criterion and overall: each "
        "model's mean, candidate − base, share of the reference, agreement with people), the "
        "pairwise win rate (positions swapped) and its length-controlled value, panel "
        "agreement, self-preference, neutralised injections per sample, cost, and which "
        "targets it may gate on ('gating').",
    )
    peer_scores: dict[str, Any] | None = Field(
        default=None,
        description="Per model: how often heldout's primary per-sample score agrees with the "
        "peer tool's own score in its log (lm-eval's metric, Inspect's scorer).",
    )
    tracking: dict[str, Any] | None = Field(
        default=None,
        description="Where the run was logged besides its folder, by tracker (MLflow: tracking "
        "URI, experiment and run ids).",
    )
    smoke: SmokeRecord | None = Field(
        default=None, description="Set for a smoke run: its verdict is 'smoke', not a decision."
    )
    overfitting: OverfittingRecord | None = Field(
        default=None,
        description="With the plan's train_sample: the candidate's lift over the base on "
        "training rows against its lift on the gold set; reported, never gated.",
    )
    verdict: VerdictRecord
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)

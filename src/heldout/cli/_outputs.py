"""What ``--json`` prints, as versioned models with a JSON Schema (``heldout schema NAME``).

Each document says what it is (``kind``) and its ``schema_version``; a field is added
without a version change, and renamed or removed only with one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from heldout.results import IntervalRecord, RunResult

__all__ = [
    "SCHEMAS",
    "CompareOutput",
    "HistoryIteration",
    "HistoryOutput",
    "HistoryRun",
    "LeakOutput",
    "MetricsOutput",
    "PowerOutput",
    "SuitesOutput",
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: int = 1


class GateStatus(BaseModel):
    name: str
    status: str


class HistoryRun(BaseModel):
    run_id: str
    created_at: str
    plan_name: str
    verdict: str = Field(description="The verdict status; 'smoke' for a smoke run.")
    metric: str
    base: float | None
    candidate: float | None
    delta: float | None
    delta_low: float | None
    delta_high: float | None
    gates: list[GateStatus] = Field(
        description="Each guardrail's status, from the run's results.json."
    )
    folder: str


class HistoryIteration(BaseModel):
    previous: str
    run: str
    candidate: str
    delta: float | None
    delta_low: float | None
    delta_high: float | None
    significant_gain: bool
    not_compared: str | None = None


class HistoryOutput(_Out):
    kind: Literal["history"] = "history"
    store: str = Field(description="The run store read (.heldout/runs.sqlite).")
    runs: list[HistoryRun]
    iterations: list[HistoryIteration] = Field(
        default_factory=list,
        description="Each new candidate against the previous one, paired on the gold set.",
    )
    stalled: int = Field(
        default=0,
        description="Latest iterations in a row without a significant gain (0 below 3).",
    )
    ab: dict[str, Any] | None = Field(
        default=None,
        description="The production A/B experiment next to the plan (ab.yaml): the offline "
        "run it follows, its lock, every split change and every recorded decision.",
    )


class CompareOutput(_Out):
    kind: Literal["compare"] = "compare"
    run_a: str
    run_b: str
    metric: str
    n: int
    higher_is_better: bool
    score_a: IntervalRecord
    score_b: IntervalRecord
    delta: IntervalRecord = Field(description="Run B's candidate minus run A's, paired.")
    test: str
    p_value: float | None = Field(description="None when no test applies.")
    fixed: int | None = None
    broken: int | None = None
    conclusion: Literal["B is better", "B is worse", "no real difference"]


class PowerOutput(_Out):
    kind: Literal["power"] = "power"
    metric_kind: str = Field(description="binary, continuous or resampled.")
    n: int
    lift: float
    n_needed: int | None
    detectable_lift: float | None = Field(description="None when n cannot detect any lift.")
    power_at_n: float | None
    method: str
    assumption: str
    source: str
    discordance: float | None = None
    paired_sd: float | None = None


class SuiteInfo(BaseModel):
    name: str
    grader: str
    prompts: int
    resolves: float = Field(
        description="Smallest max_drop passed with 80% chance when nothing got worse."
    )
    sha256: str
    description: str


class SuitesOutput(_Out):
    kind: Literal["suites"] = "suites"
    resolves_assumes: str
    suites: list[SuiteInfo]


class MetricInfo(BaseModel):
    name: str
    shapes: list[str]
    higher_is_better: bool
    description: str
    family: bool = Field(default=False, description="A parametric family such as 'recall[LABEL]'.")


class MetricsOutput(_Out):
    kind: Literal["metrics"] = "metrics"
    metrics: list[MetricInfo]


class LeakHitOut(BaseModel):
    gold_id: str
    train_where: str
    kind: Literal["exact", "ngram", "jaccard"]
    similarity: float


class LeakOutput(_Out):
    kind: Literal["leak"] = "leak"
    gold: str
    train: list[str]
    n_gold: int
    n_train: int
    options: dict[str, Any]
    common_ngrams_ignored: int
    flagged_gold_ids: list[str]
    hits: list[LeakHitOut]
    lock: dict[str, Any] | None = None


#: ``heldout schema NAME``: every machine-readable document heldout writes.
SCHEMAS: dict[str, type[BaseModel]] = {
    "results": RunResult,
    "history": HistoryOutput,
    "compare": CompareOutput,
    "power": PowerOutput,
    "suites": SuitesOutput,
    "metrics": MetricsOutput,
    "leak": LeakOutput,
}

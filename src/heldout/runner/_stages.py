"""The named values a run passes from stage to stage.

datasets → generations → scores → comparisons → gates → decision → run result. Each stage is a
function from the values before it to the next one (see ``_pipeline``); the types here are
what a reader follows from plan to report, and what a later stage (early stopping, A/B
analysis, a baseline sweep) takes from an earlier one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from heldout.backends import Generation
from heldout.metrics import MetricResult
from heldout.runner._datasets import Dataset
from heldout.stats import Ceiling, Comparison, SliceComparison
from heldout.verdict import GateResult, PowerCheck, Verdict

__all__ = [
    "ROLES",
    "Comparisons",
    "DatasetComparison",
    "Datasets",
    "Decision",
    "Gates",
    "Generations",
    "ModelRole",
    "Scores",
    "Smoke",
]

ModelRole = Literal["base", "candidate", "reference"]
ROLES: tuple[ModelRole, ...] = ("base", "candidate", "reference")


@dataclass(frozen=True, slots=True)
class Smoke:
    """A smoke run: a few samples to check the pipeline end to end, never a verdict."""

    gold_total: int
    gold_run: int
    limit: int | None
    sample_ids: str | None  # the file the ids came from

    def describe(self) -> str:
        how = f"--limit {self.limit}" if self.limit is not None else ""
        if self.sample_ids is not None:
            how = (how + ", " if how else "") + f"--sample-ids {self.sample_ids}"
        return (
            f"smoke run: not a verdict ({self.gold_run} of {self.gold_total} gold samples, "
            f"{how}); run without --limit/--sample-ids for the verdict"
        )


@dataclass(frozen=True, slots=True)
class Datasets:
    """What is evaluated: the gold set first, then one dataset per suite guardrail and per
    task or group an lm-eval guardrail names, then the training rows of ``train_sample``."""

    gold: Dataset
    suites: tuple[Dataset, ...] = ()
    smoke: Smoke | None = None
    #: The plan's train_sample, scored like the gold set (the overfitting check).
    train: Dataset | None = None

    def __iter__(self) -> Iterator[Dataset]:
        yield self.gold
        yield from self.suites
        if self.train is not None:
            yield self.train

    def get(self, name: str) -> Dataset:
        for ds in self:
            if ds.name == name:
                return ds
        raise KeyError(name)


class Generations:
    """Every model's outputs on every dataset, by sample id (judge verdicts under "judge").

    An lm-eval dataset's outputs are by request (several per document, multiple-choice);
    scoring adds a *view* by document (lm-eval's filtered answer), which :meth:`get` returns
    from then on; :meth:`of_role` (requests, failures, cost) counts the requests."""

    def __init__(self) -> None:
        self._by_role: dict[str, dict[str, dict[str, Generation]]] = {}
        self._views: dict[str, dict[str, dict[str, Generation]]] = {}

    def add(self, role: str, dataset: str, outputs: dict[str, Generation]) -> None:
        self._by_role.setdefault(role, {})[dataset] = outputs

    def get(self, role: str, dataset: str) -> dict[str, Generation]:
        view = self._views.get(role, {}).get(dataset)
        return view if view is not None else self._by_role[role][dataset]

    def get_raw(self, role: str, dataset: str) -> dict[str, Generation]:
        """The outputs as the backend returned them, by request id."""
        return self._by_role[role][dataset]

    def set_view(self, role: str, dataset: str, outputs: dict[str, Generation]) -> None:
        self._views.setdefault(role, {})[dataset] = outputs

    def has(self, role: str, dataset: str) -> bool:
        return dataset in self._by_role.get(role, {})

    def of_role(self, role: str) -> list[Generation]:
        """Every output of one model, across datasets."""
        return [g for outs in self._by_role.get(role, {}).values() for g in outs.values()]


class Scores:
    """Metric results by model, dataset and metric name; ``secondary`` and ``guarded`` name
    the gold-set metrics reported beside the primary one and those metric guardrails gate."""

    def __init__(self, primary: str, secondary: list[str], guarded: list[str]) -> None:
        self.primary = primary
        self.secondary = secondary
        self.guarded = guarded
        self._by_role: dict[str, dict[str, dict[str, MetricResult]]] = {}

    def add(self, role: str, dataset: str, metric: str, result: MetricResult) -> None:
        self._by_role.setdefault(role, {}).setdefault(dataset, {})[metric] = result

    def get(self, role: str, dataset: str, metric: str) -> MetricResult:
        return self._by_role[role][dataset][metric]

    def of(self, role: str, dataset: str) -> Mapping[str, MetricResult]:
        """One model's results on one dataset, by metric name."""
        return self._by_role.get(role, {}).get(dataset, {})

    def metric_names(self) -> set[str]:
        return {m for by_ds in self._by_role.values() for d in by_ds.values() for m in d}


@dataclass(frozen=True, slots=True)
class DatasetComparison:
    """One comparison as results.json lists it: on which dataset, against which model."""

    dataset: str
    comparison: Comparison
    against: Literal["candidate", "reference"] = "candidate"
    primary: bool = False


@dataclass(frozen=True, slots=True)
class Comparisons:
    """Candidate vs base on the gold set: the primary metric, the secondary ones, the slices;
    the reference model against the base and the candidate's share of its gap."""

    primary: Comparison
    secondary: tuple[Comparison, ...] = ()
    reference: Comparison | None = None
    ceiling: Ceiling | None = None
    slices: tuple[SliceComparison, ...] = ()
    #: The primary metric on the plan's train_sample rows (the overfitting check).
    train: Comparison | None = None

    def listed(self) -> list[DatasetComparison]:
        out = [DatasetComparison("gold", self.primary, primary=True)]
        out += [DatasetComparison("gold", c) for c in self.secondary]
        if self.reference is not None:
            out.append(DatasetComparison("gold", self.reference, against="reference"))
        if self.train is not None:
            out.append(DatasetComparison("train", self.train))
        return out


@dataclass(frozen=True, slots=True)
class Gates:
    """One gate per guardrail, the comparisons behind them, and the calibration details when
    a calibration guardrail could be measured."""

    gates: tuple[GateResult, ...] = ()
    comparisons: tuple[DatasetComparison, ...] = ()
    calibration: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict, with the power check it used and what the run's reader must be told."""

    verdict: Verdict
    power: PowerCheck | None
    power_info: dict[str, Any] | None
    warnings: tuple[str, ...] = field(default_factory=tuple)

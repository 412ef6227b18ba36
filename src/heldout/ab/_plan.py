"""The A/B experiment, pre-registered like the offline plan: ``ab.yaml`` and its ``ab.lock``.

An experiment names the offline run it follows, two arms (each an OpenAI-compatible upstream
and model), where the unit id is read, a salt, the ramp stages, the primary outcome, guardrails
with margins, the minimum units per stage, alpha and the sequential method. It is validated
with every problem named by YAML path and line, and locked by the sha256 of its canonical
content (``heldout ab lock``); the proxy and the analysis refuse an experiment that changed
since its lock.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from heldout._version import __version__
from heldout.errors import LockError, PlanChangedError, PlanError, Problem
from heldout.plan._model import _Strict
from heldout.plan._yaml import format_path, line_of, parse_yaml

__all__ = [
    "AB_LOCK_NAME",
    "AB_NAME",
    "BUILTIN_METRICS",
    "ArmSpec",
    "Experiment",
    "Guardrail",
    "LoadedExperiment",
    "Outcome",
    "check_ab_lock",
    "experiment_sha256",
    "load_experiment",
    "write_ab_lock",
]

AB_NAME = "ab.yaml"
AB_LOCK_NAME = "ab.lock"

#: Metrics the proxy measures itself (every request), beside the outcomes users post.
BUILTIN_METRICS: dict[str, str] = {
    "error_rate": "failed requests (upstream error or status ≥ 500) per request",
    "latency_mean": "mean latency per request, ms (Σ latency / Σ requests by unit)",
    "latency_p50": "median request latency, ms (unit bootstrap)",
    "latency_p95": "95th-percentile request latency, ms (unit bootstrap)",
    "latency_p99": "99th-percentile request latency, ms (unit bootstrap)",
    "cost_per_request": "cost per request (Σ cost / Σ requests by unit)",
    "tokens_per_request": "completion tokens per request",
    "requests_per_unit": "requests per unit (a mean over units)",
}


class Price(_Strict):
    prompt: float = Field(default=0.0, ge=0, description="Price per 1M prompt tokens.")
    completion: float = Field(default=0.0, ge=0, description="Price per 1M completion tokens.")


class ArmSpec(_Strict):
    """One arm: an OpenAI-compatible upstream and the model name sent to it."""

    base_url: str = Field(description="Upstream base URL, e.g. http://127.0.0.1:8000/v1.")
    model: str | None = Field(
        default=None,
        description="Model name written into each request (e.g. the LoRA adapter's name in "
        "vLLM); default: the client's own.",
    )
    api_key_env: str | None = Field(
        default=None,
        description="Environment variable holding this upstream's key; default: forward the "
        "client's Authorization header.",
    )
    price: Price = Field(default_factory=Price, description="For cost per request.")
    timeout_s: float = Field(default=300.0, gt=0, description="Upstream timeout per request.")


class Arms(_Strict):
    control: ArmSpec = Field(description="The incumbent (what users get today).")
    treatment: ArmSpec = Field(description="The candidate that passed its offline verdict.")


class UnitSpec(_Strict):
    kind: Literal["user", "tenant"] = Field(default="user", description="What a unit is.")
    header: str = Field(default="X-Heldout-Unit", description="Request header with the id.")
    field: str | None = Field(
        default="user", description="Request body field read when the header is absent."
    )
    missing: Literal["control", "reject"] = Field(
        default="control",
        description="A request without a unit id: served by control and not analysed "
        "('control'), or refused with 400 ('reject').",
    )


class Outcome(_Strict):
    """The primary outcome: one users post to /v1/outcomes (``resolved``, ``thumbs_up``)."""

    outcome: str = Field(description="Outcome name as posted (or a built-in metric).")
    per: Literal["unit", "request"] = Field(
        default="unit",
        description="'unit': the unit's mean outcome, averaged over units (a user who "
        "resolved); 'request': Σ outcome / Σ requests by unit (delta method).",
    )
    higher_is_better: bool = Field(default=True)
    relative: bool = Field(
        default=False, description="Report and decide on (treatment − control) / control."
    )


class Guardrail(_Strict):
    """Treatment must not be worse than control by more than the margin."""

    metric: str | None = Field(default=None, description="A built-in metric (error_rate ...).")
    outcome: str | None = Field(default=None, description="Or a posted outcome (escalated).")
    per: Literal["unit", "request"] = Field(default="request")
    higher_is_better: bool = Field(default=False)
    max_increase: float = Field(
        ge=0,
        description="The margin: how much worse treatment may be (absolute, or a share of "
        "control with relative: true). For higher-is-better outcomes: the largest drop.",
    )
    relative: bool = Field(default=False)

    @model_validator(mode="after")
    def _one(self) -> Guardrail:
        if (self.metric is None) == (self.outcome is None):
            raise ValueError("give exactly one of 'metric' (built in) or 'outcome' (posted)")
        if self.metric is not None and self.metric not in BUILTIN_METRICS:
            raise ValueError(
                f"unknown metric {self.metric!r}; built in: {', '.join(BUILTIN_METRICS)}"
            )
        return self

    @property
    def name(self) -> str:
        return self.metric or self.outcome or ""


class Cuped(_Strict):
    covariate: str = Field(
        description="Outcome posted for the pre-period (e.g. pre_resolved: the unit's value "
        "before the experiment); units without it count as 0."
    )


class Experiment(_Strict):
    """``ab.yaml``: the pre-registered production experiment."""

    name: str = Field(min_length=1)
    follows: str | None = Field(
        default=None, description="The offline run folder (results.json) this experiment follows."
    )
    arms: Arms
    unit: UnitSpec = Field(default_factory=UnitSpec)
    salt: str = Field(min_length=1, description="Hash salt; a new salt re-randomises units.")
    stages: list[float] = Field(
        min_length=1,
        description="Treatment shares of the ramp, increasing, e.g. [0.05, 0.1, 0.25, 0.5, 1.0].",
    )
    primary: Outcome
    guardrails: list[Guardrail] = Field(default_factory=list)
    min_units_per_stage: int = Field(default=1000, ge=2)
    planned_units: int = Field(
        default=10_000, ge=4, description="Units of the final comparative stage (fixed horizon)."
    )
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    srm_alpha: float = Field(
        default=0.001, gt=0, lt=0.5, description="SRM threshold (GrowthBook's default)."
    )
    sequential: Literal["confidence-sequence"] = Field(
        default="confidence-sequence",
        description="Always-valid inference: the asymptotic confidence sequence "
        "(Waudby-Smith et al.), tightest at planned_units.",
    )
    cuped: Cuped | None = None
    store: str = Field(default="ab/events.sqlite", description="Event store (SQLite).")
    log_prompts: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of requests whose messages are kept "
        "(for the flywheel); 0 keeps no prompt text.",
    )

    @field_validator("stages")
    @classmethod
    def _stages_ok(cls, s: list[float]) -> list[float]:
        if any(not 0 < x <= 1 for x in s):
            raise ValueError("stages are treatment shares in (0, 1], e.g. [0.05, 0.1, 0.5, 1.0]")
        if any(b <= a for a, b in itertools.pairwise(s)):
            raise ValueError("stages must increase: a ramp only moves units into treatment")
        if s[0] >= 1:
            raise ValueError("the first stage must leave a control group (a share below 1)")
        return s

    @property
    def outcome_names(self) -> list[str]:
        """Every posted outcome the analysis reads: the primary, guardrails, CUPED's covariate."""
        names = {self.primary.outcome} | {g.outcome for g in self.guardrails if g.outcome}
        return sorted(names | ({self.cuped.covariate} if self.cuped else set()))

    @property
    def comparative(self) -> list[float]:
        """The stages with a control group to compare with (every share below 100%)."""
        return [x for x in self.stages if x < 1]


@dataclass(frozen=True, slots=True)
class LoadedExperiment:
    experiment: Experiment
    path: Path

    @property
    def root(self) -> Path:
        return self.path.parent

    def resolve(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

    @property
    def store_path(self) -> Path:
        return self.resolve(self.experiment.store)

    @property
    def lock_path(self) -> Path:
        return self.root / AB_LOCK_NAME


def _problems(exc: ValidationError, node: Any) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        kind = err["type"]
        if kind == "missing":
            msg = "required: add it (see docs/ab.md)"
        elif kind == "extra_forbidden":
            msg = "unknown key; remove it or fix the spelling"
        else:
            msg = err["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
            value = err.get("input")
            if isinstance(value, str | int | float | bool):
                msg += f" (got {value!r})"
        out.append(Problem(format_path(loc) or "(experiment)", msg, line_of(node, loc)))
    return out


def load_experiment(path: str | Path) -> LoadedExperiment:
    """Read and validate ``ab.yaml``; :class:`PlanError` lists every problem with its line."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise PlanError(
            [
                Problem(
                    source,
                    "experiment file not found; write one (docs/ab.md) or run "
                    "'heldout ab demo' to see one",
                )
            ]
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError([Problem(source, f"not valid UTF-8 at byte {exc.start}")]) from None
    data, node, problems = parse_yaml(text, source)
    if data is None:
        raise PlanError(problems, source=source)
    if not isinstance(data, dict):
        raise PlanError([Problem("(experiment)", "must be a mapping")], source=source)
    try:
        exp = Experiment.model_validate(data)
    except ValidationError as exc:
        raise PlanError([*problems, *_problems(exc, node)], source=source) from None
    if problems:
        raise PlanError(problems, source=source)
    loaded = LoadedExperiment(exp, path.resolve())
    if exp.follows is not None and not (loaded.resolve(exp.follows) / "results.json").is_file():
        raise PlanError(
            [
                Problem(
                    "follows",
                    f"{exp.follows}: no results.json there; name the offline run "
                    "folder this experiment follows (runs/<id>)",
                    line_of(node, ["follows"]),
                )
            ],
            source=source,
        )
    return loaded


def _canonical(exp: Experiment) -> dict[str, Any]:
    return exp.model_dump(mode="json")


def experiment_sha256(exp: Experiment) -> str:
    body = json.dumps(_canonical(exp), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


def offline_summary(loaded: LoadedExperiment) -> dict[str, Any] | None:
    """The offline run the experiment follows: id, verdict, plan hash, folder."""
    if loaded.experiment.follows is None:
        return None
    from heldout.results._store import load_run

    folder = loaded.resolve(loaded.experiment.follows)
    result = load_run(folder)
    return {
        "run_id": result.run_id,
        "verdict": result.verdict.status,
        "plan_name": result.plan_name,
        "plan_sha256": result.plan_sha256,
        "folder": str(folder.resolve()),
    }


def write_ab_lock(loaded: LoadedExperiment) -> Path:
    body = {
        "lock_version": 1,
        "heldout_version": __version__,
        "locked_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "experiment_file": loaded.path.name,
        "experiment_sha256": experiment_sha256(loaded.experiment),
        "experiment": _canonical(loaded.experiment),
        "offline": offline_summary(loaded),
    }
    path = loaded.lock_path
    tmp = path.with_suffix(".lock.tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_ab_lock(loaded: LoadedExperiment) -> dict[str, Any] | None:
    path = loaded.lock_path
    if not path.is_file():
        return None
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LockError(f"{path}: unreadable lock ({exc}); re-create it: heldout ab lock") from None
    if not isinstance(body, dict) or body.get("lock_version") != 1:
        raise LockError(f"{path}: unknown lock format; re-create it: heldout ab lock")
    return body


def check_ab_lock(loaded: LoadedExperiment, *, require: bool = True) -> dict[str, Any] | None:
    """The lock, if the experiment still matches it. Raises :class:`LockError` when there is
    none (with ``require``) and :class:`PlanChangedError` naming each changed field."""
    from heldout.plan._lock import _diff

    body = read_ab_lock(loaded)
    if body is None:
        if require:
            raise LockError(
                f"{loaded.lock_path}: the experiment is not locked; run 'heldout ab lock "
                f"{loaded.path.name}' before it serves traffic (pre-registration)"
            )
        return None
    if body.get("experiment_sha256") != experiment_sha256(loaded.experiment):
        changes: list[str] = []
        _diff(body.get("experiment", {}), _canonical(loaded.experiment), "", changes)
        raise PlanChangedError(
            changes or ["experiment content changed"],
            str(loaded.lock_path),
            what="the experiment",
            fix="Re-lock with 'heldout ab lock' if the change is intended before it serves "
            "traffic, or start a new experiment (a new name and salt) if it already did.",
        )
    return body

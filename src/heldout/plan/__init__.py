"""The pre-registered plan: model, YAML loading and validation, lock and verify."""

from heldout.plan._load import (
    LoadedPlan,
    load_plan,
    plan_from_object,
    referenced_files,
    task_metric_options,
)
from heldout.plan._lock import (
    LOCK_NAME,
    LockStatus,
    canonical_plan,
    check_lock,
    default_lock_path,
    diff_lock,
    plan_sha256,
    read_lock,
    sha256_file,
    write_lock,
)
from heldout.plan._model import (
    SHAPES,
    BaselineSearch,
    CalibrationGuardrail,
    Criterion,
    FileModel,
    GenerationParams,
    Guardrail,
    HFModel,
    JudgeGuardrail,
    JudgeSpec,
    LmEvalGuardrail,
    LmEvalTasks,
    MetricGuardrail,
    MlflowSpec,
    MockModel,
    Models,
    ModelSpec,
    OpenAIModel,
    Plan,
    PromptCandidate,
    Shape,
    SliceGuardrail,
    StatsSpec,
    SuiteGuardrail,
    TaskSpec,
    TrackingSpec,
)
from heldout.plan._power import Resolvability, guardrail_resolvability, plan_power
from heldout.plan._starter import write_starter

__all__ = [
    "LOCK_NAME",
    "SHAPES",
    "BaselineSearch",
    "CalibrationGuardrail",
    "Criterion",
    "FileModel",
    "GenerationParams",
    "Guardrail",
    "HFModel",
    "JudgeGuardrail",
    "JudgeSpec",
    "LmEvalGuardrail",
    "LmEvalTasks",
    "LoadedPlan",
    "LockStatus",
    "MetricGuardrail",
    "MlflowSpec",
    "MockModel",
    "ModelSpec",
    "Models",
    "OpenAIModel",
    "Plan",
    "PromptCandidate",
    "Resolvability",
    "Shape",
    "SliceGuardrail",
    "StatsSpec",
    "SuiteGuardrail",
    "TaskSpec",
    "TrackingSpec",
    "canonical_plan",
    "check_lock",
    "default_lock_path",
    "diff_lock",
    "guardrail_resolvability",
    "load_plan",
    "plan_from_object",
    "plan_json_schema",
    "plan_power",
    "plan_sha256",
    "read_lock",
    "referenced_files",
    "sha256_file",
    "task_metric_options",
    "write_lock",
    "write_starter",
]


def plan_json_schema() -> dict[str, object]:
    """JSON Schema of ``heldout.yaml`` (for editor completion and external validation)."""
    schema = Plan.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "heldout plan"
    return schema

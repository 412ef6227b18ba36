"""The plan: a pre-registered evaluation, written down before training.

Every field is documented here; ``heldout plan schema`` exports these models as JSON Schema so
editors can complete ``heldout.yaml``. Unknown keys are errors (``extra="forbid"``): a typo in a
pre-registration must never pass silently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

if TYPE_CHECKING:
    from heldout.judge import Criterion as JudgeCriterion

__all__ = [
    "SHAPES",
    "BaselineSearch",
    "CalibrationGuardrail",
    "ChatMessage",
    "Criterion",
    "FileModel",
    "GenerationParams",
    "Guardrail",
    "HFModel",
    "JudgeGuardrail",
    "JudgeSpec",
    "MetricGuardrail",
    "MlflowSpec",
    "MockModel",
    "ModelSpec",
    "Models",
    "OpenAIModel",
    "Plan",
    "PromptCandidate",
    "Shape",
    "SliceGuardrail",
    "StatsSpec",
    "SuiteGuardrail",
    "TaskSpec",
    "TrackingSpec",
    "TrainSampleSpec",
]

Shape = Literal["classification", "extraction", "qa", "summarization", "structured", "open"]
SHAPES: tuple[str, ...] = Shape.__args__  # type: ignore[attr-defined]


class _Strict(BaseModel):
    # strict: `baseline: false` must not be read as 0.0, nor `"0.5"` as a number
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


class TaskSpec(_Strict):
    """What the model is asked to do, on which frozen gold set, and shape-specific options."""

    shape: Shape = Field(description="Task shape; decides which metrics apply.")
    data: str = Field(
        description="Gold set file (JSONL, CSV or Parquet), relative to the plan's folder."
    )
    prompt: str | None = Field(
        default=None,
        description="Prompt template file; placeholders like {input} and metadata fields. "
        "Write {{ and }} for literal braces.",
    )
    template: str | None = Field(
        default=None, description="Inline prompt template (alternative to 'prompt')."
    )
    id_field: str = Field(default="id", description="Column holding the sample id.")
    input_field: str = Field(default="input", description="Column holding the model input.")
    target_field: str = Field(default="target", description="Column holding the reference.")
    labels: list[str] | None = Field(
        default=None,
        description="classification: the label set. Default: the labels seen in the gold set.",
    )
    aliases: dict[str, str] = Field(
        default_factory=dict,
        description="classification: map of alternative spellings to labels ('pos': 'positive').",
    )
    label_match: Literal["strict", "mention"] = Field(
        default="strict",
        description="classification: 'strict' (default): the whole output, ignoring case, "
        "whitespace and edge punctuation, must be a label or alias, else it is unparseable "
        "(counted as wrong). 'mention': else take the first label named anywhere in the text "
        "(opt-in: it reads 'not positive' as positive).",
    )
    schema_file: str | None = Field(
        default=None,
        alias="schema",
        description="structured: JSON Schema file the output must satisfy.",
    )
    span_match: Literal["strict", "exact", "partial", "type"] = Field(
        default="strict",
        description="extraction: how a predicted span matches a gold one (nervaluate's "
        "schemes): 'strict' same boundaries and type; 'exact' same boundaries, any type; "
        "'partial' overlap earns half credit, any type; 'type' overlap with the same type.",
    )
    use_stemmer: bool = Field(
        default=False,
        description="summarization: apply rouge-score's Porter stemmer before ROUGE (as "
        "RougeScorer(use_stemmer=True)).",
    )
    secondary_metrics: list[str] | None = Field(
        default=None,
        description="Metrics reported beside the primary one (compared paired, not gated), "
        "plugin metrics included, e.g. [rougeL_precision, rougeL_recall, my_metric]. "
        "Default: the shape's built-in metrics.",
    )
    extract_json: bool = Field(
        default=False,
        description="structured: take the first JSON object from fenced or chatty output. "
        "Off by default: 'valid on first try' means the raw output parses.",
    )


class MlflowSpec(_Strict):
    """Log each run to MLflow (the ``heldout[mlflow]`` extra)."""

    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; default: MLFLOW_TRACKING_URI, else MLflow's own.",
    )
    experiment: str | None = Field(
        default=None, description="Experiment name; default: the plan's name."
    )


class TrackingSpec(_Strict):
    """Where runs are logged besides the run folder."""

    mlflow: MlflowSpec | None = Field(default=None, description="An MLflow tracking server.")


class ChatMessage(_Strict):
    """One message of a chat template."""

    role: Literal["system", "user", "assistant"] = Field(description="Who says it.")
    content: str = Field(description="The text; '{prompt}' stands for the task's prompt.")


class GenerationParams(_Strict):
    """Sampling parameters sent to every backend."""

    temperature: float = Field(default=0.0, ge=0.0, description="0 means greedy decoding.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_tokens: int = Field(default=256, ge=1, description="Maximum new tokens per response.")
    stop: list[str] = Field(default_factory=list, description="Stop sequences.")
    seed: int | None = Field(default=None, description="Sampling seed, where supported.")


class OpenAIModel(_Strict):
    """Any OpenAI-compatible server: vLLM, SGLang, TGI, Ollama, llama.cpp, OpenAI."""

    backend: Literal["openai"] = Field(description="OpenAI-compatible HTTP API.")
    family: str | None = Field(
        default=None,
        description="Model family (e.g. llama, qwen, gpt): a judge of the same family as a "
        "judged model is flagged for self-preference, with the gap the judge panel measures.",
    )
    model: str = Field(description="Model name as the server knows it.")
    base_url: str | list[str] = Field(
        default="https://api.openai.com/v1",
        description="Server URL up to /v1, or a list of replicas serving the same model: each "
        "request goes to the replica with the fewest in flight (concurrency is the total), a "
        "replica that refuses connections or keeps failing is taken out for a while and its "
        "samples go to the others. The response-cache key uses the first URL, so adding "
        "replicas keeps the cache.",
    )
    revision: str | None = Field(
        default=None,
        description="What is deployed under this name (adapter sha, checkpoint step, date). "
        "It is part of the response-cache key: change it when you redeploy under the same "
        "name, or cached answers of the old model are reused.",
    )
    api_key_env: str | None = Field(
        default=None,
        description="Name of the environment variable holding the API key (never the key).",
    )
    endpoint: Literal["chat", "completions"] = Field(
        default="chat", description="/chat/completions (messages) or /completions (prompt)."
    )
    params: GenerationParams = Field(
        default_factory=GenerationParams, description="Sampling parameters."
    )
    concurrency: int = Field(default=32, ge=1, le=4096, description="Requests in flight.")
    timeout_s: float = Field(
        default=120.0, gt=0, le=3600, description="Per-request timeout, seconds (≤ 3600)."
    )
    max_retries: int = Field(
        default=5,
        ge=0,
        le=100,
        description="Retries on 429, 5xx, timeouts, connection errors and malformed answers.",
    )
    max_retry_wait_s: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="Longest single wait a Retry-After header may ask for, seconds "
        "(Retry-After: 86400 must not stall a run for a day).",
    )
    max_retry_time_s: float = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="Longest a sample may spend retrying, seconds; then it fails, reported.",
    )
    max_response_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        le=1024**3,
        description="Largest response body accepted; a bigger one fails its sample (a "
        "runaway server must not fill the disk).",
    )
    price_per_1k_input: float | None = Field(
        default=None, ge=0, description="Price per 1,000 prompt tokens, for cost per sample."
    )
    price_per_1k_output: float | None = Field(
        default=None, ge=0, description="Price per 1,000 completion tokens."
    )
    system_prompt: str | None = Field(
        default=None,
        description="A system message before the prompt (chat endpoint). Part of the cache key.",
    )
    messages: list[ChatMessage] | None = Field(
        default=None,
        description="A chat template: messages sent in order (few-shot turns, a system "
        "message); '{prompt}' in a message's content is replaced by the task's rendered "
        "prompt, and one message must contain it. Part of the cache key.",
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="Fields merged into every request body: vLLM's guided_json or "
        "chat_template_kwargs, SGLang options. Part of the cache key.",
    )
    extra_headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers sent with every request. Their values are redacted from errors "
        "and never stored; they are not part of the cache key.",
    )
    requests_per_minute: float | None = Field(
        default=None,
        gt=0,
        description="Rate limit on requests (a token bucket holding one second's worth).",
    )
    tokens_per_minute: float | None = Field(
        default=None,
        gt=0,
        description="Rate limit on tokens, counting each request as its prompt's estimated "
        "tokens (characters / 4) plus max_tokens.",
    )
    logprobs: bool = Field(
        default=False,
        description="Ask for the log-probability of every generated token (any task shape); "
        "stored per sample, and counted where the server returned none.",
    )

    @property
    def urls(self) -> list[str]:
        """The replicas' URLs (one for a single server), without trailing slashes."""
        urls = [self.base_url] if isinstance(self.base_url, str) else self.base_url
        return [u.rstrip("/") for u in urls]

    @model_validator(mode="after")
    def _chat_only(self) -> OpenAIModel:
        if isinstance(self.base_url, list):
            if not self.base_url:
                raise ValueError("base_url: the list of replicas is empty; give at least one URL")
            urls = self.urls
            twice = sorted({u for u in urls if urls.count(u) > 1})
            if twice:
                raise ValueError(f"base_url lists {twice[0]!r} twice; list each replica once")
        if self.endpoint == "completions" and (self.system_prompt or self.messages):
            raise ValueError(
                "system_prompt and messages need endpoint: chat; use endpoint: chat, or for "
                "/completions write the instructions into the task's prompt template"
            )
        if self.messages is not None:
            if not any("{prompt}" in m.content for m in self.messages):
                raise ValueError("messages: no message contains '{prompt}'; add it where the "
                                 "task's prompt goes")  # fmt: skip
            if self.system_prompt is not None:
                raise ValueError("give system_prompt or a system message in messages, not both")
        reserved = {"model", "messages", "prompt"} & set(self.extra_body)
        if reserved:
            raise ValueError(
                f"extra_body must not set {', '.join(sorted(reserved))}: heldout sends those"
            )
        return self


class RayOptions(_Strict):
    """Run a local model on Ray actors: each loads the model (and adapter) once."""

    replicas: int = Field(default=1, ge=1, le=1024, description="Actors, each with its own copy.")
    num_gpus: float = Field(default=0, ge=0, description="GPUs per actor (0 on CPU).")
    num_cpus: float = Field(default=1, ge=0, description="CPUs per actor.")
    address: str | None = Field(
        default=None,
        description="Ray cluster address; else RAY_ADDRESS, else a local Ray started for "
        "the run. Not part of the cache key: where a model runs does not change its answers.",
    )


class HFModel(_Strict):
    """A local transformers model with an optional PEFT adapter."""

    backend: Literal["hf"] = Field(description="Local transformers model.")
    family: str | None = Field(
        default=None,
        description="Model family (e.g. llama, qwen, gpt): a judge of the same family as a "
        "judged model is flagged for self-preference, with the gap the judge panel measures.",
    )
    model: str = Field(description="Local path (or cached hub id) of the base weights.")
    adapter: str | None = Field(default=None, description="Path of a PEFT (LoRA) adapter.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        default="auto", description="Weight dtype; 'auto' keeps the checkpoint's."
    )
    device: str = Field(default="auto", description="'auto', 'cpu', 'cuda', 'cuda:1', 'mps'.")
    batch_size: int = Field(default=8, ge=1, description="Prompts per generation batch.")
    params: GenerationParams = Field(
        default_factory=GenerationParams, description="Sampling parameters."
    )
    ray: RayOptions | None = Field(
        default=None,
        description="Shard the samples across Ray actors (heldout[ray]); results stream into "
        "the same cache and generations file as they finish.",
    )


class FileModel(_Strict):
    """Precomputed predictions keyed by sample id (JSONL, CSV, Parquet, lm-eval, Inspect)."""

    backend: Literal["file"] = Field(description="Precomputed outputs.")
    family: str | None = Field(
        default=None,
        description="Model family (e.g. llama, qwen, gpt): a judge of the same family as a "
        "judged model is flagged for self-preference, with the gap the judge panel measures.",
    )
    path: str = Field(description="Predictions file, relative to the plan's folder.")
    format: Literal["auto", "jsonl", "csv", "parquet", "lm-eval", "inspect"] = Field(
        default="auto", description="File format; 'auto' decides from the name."
    )
    id_field: str = Field(default="id", description="Column with the sample id.")
    output_field: str = Field(default="output", description="Column with the model output.")
    confidence_field: str = Field(
        default="confidence",
        description="Optional column: the model's probability for its own answer (0–1), for "
        "calibration guardrails.",
    )
    probabilities_field: str = Field(
        default="probabilities",
        description="Optional column: per-label probabilities, an object {label: p} (a JSON "
        "string in CSV), for calibration guardrails.",
    )
    epoch: int = Field(
        default=1,
        ge=1,
        description="Inspect logs run with --epochs N: the epoch whose outputs are used.",
    )
    filter: str | None = Field(
        default=None,
        description="lm-eval samples files with several filters (one line per document and "
        "filter, e.g. gsm8k's strict-match and flexible-extract): the filter to use.",
    )
    missing: Literal["error", "wrong", "skip-pair"] = Field(
        default="error",
        description="A sample the file has no prediction for (or one the peer tool errored "
        "on): 'error' stops the run naming them; 'wrong' scores them as wrong; 'skip-pair' "
        "leaves the sample out of every comparison (all models). Both are counted.",
    )


class MockModel(_Strict):
    """Deterministic scripted outputs, for tests and dry runs."""

    backend: Literal["mock"] = Field(description="Scripted outputs (tests, dry runs).")
    family: str | None = Field(
        default=None,
        description="Model family (e.g. llama, qwen, gpt): a judge of the same family as a "
        "judged model is flagged for self-preference, with the gap the judge panel measures.",
    )
    name: str = Field(default="mock", description="Identity of this mock in results.")
    outputs: dict[str, str] = Field(default_factory=dict, description="Output per sample id.")
    default: str | None = Field(
        default=None, description="Output for ids not in 'outputs'; None makes them fail."
    )


def _backend_tag(value: Any) -> str | None:
    tag = value.get("backend") if isinstance(value, dict) else getattr(value, "backend", None)
    return tag if isinstance(tag, str) else None


ModelSpec = Annotated[
    Annotated[OpenAIModel, Tag("openai")]
    | Annotated[HFModel, Tag("hf")]
    | Annotated[FileModel, Tag("file")]
    | Annotated[MockModel, Tag("mock")],
    Discriminator(_backend_tag),
]
BACKENDS: tuple[str, ...] = ("file", "hf", "mock", "openai")


class Models(_Strict):
    """The models compared: base (before fine-tuning), candidate, optional reference ceiling."""

    base: ModelSpec = Field(description="The model before fine-tuning.")
    candidate: ModelSpec = Field(description="The fine-tuned model under evaluation.")
    reference: ModelSpec | None = Field(
        default=None, description="Optional ceiling (e.g. a larger model) on the same samples."
    )


class SuiteGuardrail(_Strict):
    """No-regression check on a built-in or custom suite: candidate − base ≥ −max_drop."""

    suite: str = Field(
        description="Built-in suite (general, instruction_following, format_obsession, "
        "multilingual, safety, over_refusal), or any name with 'data'."
    )
    data: str | None = Field(
        default=None, description="Custom suite file (gold-set format); none for a built-in."
    )
    metric: str = Field(
        default="exact_match",
        description="Metric scoring a custom suite (e.g. exact_match, accuracy, token_f1); a "
        "built-in suite is scored by its own grader.",
    )
    template: str = Field(default="{input}", description="Prompt template for the suite.")
    judge: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Score the suite with the plan's rubric judge on these criteria instead of "
        "a metric (a judged forgetting check): each response's mean over them, rescaled to 0–1 "
        "(the scale's floor is 0), so max_drop 0.08 tolerates a drop of 8% of the scale. The "
        "suite needs no targets.",
    )
    max_drop: float = Field(ge=0.0, le=1.0, description="Largest tolerated drop (0.02 = 2 pts).")
    unresolved: Literal["inconclusive", "warn"] = Field(
        default="inconclusive",
        description="Verdict when the CI straddles −max_drop: 'inconclusive' or only 'warn'.",
    )
    fail_when: Literal["point", "ci"] = Field(
        default="ci",
        description="'ci': fail when the whole CI lies below −max_drop (at most (1−confidence)/2 "
        "false blocks at a drop equal to the margin); 'point': when the point estimate does.",
    )

    @model_validator(mode="before")
    @classmethod
    def _builtin_grader(cls, data: Any) -> Any:
        """A built-in suite named without 'data' or 'metric' is scored by its grader."""
        from heldout.suites import BUILTIN_SUITES

        if (
            isinstance(data, dict)
            and data.get("data") is None
            and "metric" not in data
            and not data.get("judge")
        ):
            builtin = BUILTIN_SUITES.get(str(data.get("suite")))
            if builtin is not None:
                return {**data, "metric": builtin.metric}
        return data


class CalibrationGuardrail(_Strict):
    """Calibration must not get worse by more than max_increase."""

    calibration: Literal["ece", "brier"] = Field(
        description="Gated measure: 'ece' (expected calibration error) or 'brier' (Brier "
        "score of the confidence in the answer given). Both are reported."
    )
    max_increase: float = Field(ge=0.0, le=1.0, description="Largest tolerated increase.")
    bins: int = Field(
        default=15, ge=2, le=100, description="Bins of the ECE and of the reliability table."
    )
    binning: Literal["width", "mass"] = Field(
        default="width", description="'width': equal-width bins; 'mass': equal-count bins."
    )
    suite: str | None = Field(
        default=None,
        description="Measure calibration on this classification suite guardrail instead of "
        "the gold set (for a guarded skill that is classification).",
    )
    unresolved: Literal["inconclusive", "warn"] = Field(
        default="inconclusive", description="Verdict effect when the CI straddles the margin."
    )
    fail_when: Literal["point", "ci"] = Field(
        default="ci", description="Fail on the whole CI past the margin, or the point estimate."
    )


class SliceGuardrail(_Strict):
    """The worst eligible slice of these metadata fields must not drop more than max_drop."""

    slices: list[str] = Field(min_length=1, description="Metadata fields to slice by.")
    max_drop: float = Field(ge=0.0, le=1.0, description="Largest tolerated drop in a slice.")
    min_size: int = Field(
        default=20, ge=1, description="Slices smaller than this are reported, not gated."
    )
    unresolved: Literal["inconclusive", "warn"] = Field(
        default="inconclusive", description="Verdict effect when the CI straddles the margin."
    )
    fail_when: Literal["point", "ci"] = Field(
        default="ci", description="Fail on the whole CI past the margin, or the point estimate."
    )


class MetricGuardrail(_Strict):
    """A gold-set metric other than the primary must not drop: a class's recall or precision
    (``recall[pii]``), or the same for every class (``recall[*]``: each class is a gate, all
    must pass, so the weakest class cannot fall unnoticed)."""

    metric: str = Field(
        description="A metric of the task's shape, e.g. recall[pii], precision[spam], "
        "fbeta[2, pii], macro_f1; recall[*] / precision[*] / f1[*] gate every label."
    )
    max_drop: float = Field(ge=0.0, le=1.0, description="Largest tolerated drop.")
    unresolved: Literal["inconclusive", "warn"] = Field(
        default="inconclusive", description="Verdict effect when the CI straddles the margin."
    )
    fail_when: Literal["point", "ci"] = Field(
        default="ci", description="Fail on the whole CI past the margin, or the point estimate."
    )


class LmEvalTasks(_Strict):
    """Which lm-evaluation-harness tasks, and how many of their documents."""

    tasks: list[str] = Field(
        min_length=1,
        description="Task or group names from lm-eval's task zoo (gsm8k, ifeval, mmlu_stem) "
        "or from include_path. A group is gated on all its documents, each subtask reported.",
    )
    include_path: list[str] = Field(
        default_factory=list,
        description="Folders of your own task YAML files, relative to the plan's folder.",
    )
    limit: int | None = Field(
        default=None,
        ge=1,
        description="Documents per task at most: a seeded sample, stratified by the "
        "reference answer, not the first N (lm-eval's --limit takes the first N).",
    )
    num_fewshot: int | None = Field(
        default=None,
        ge=0,
        description="Few-shot examples; null keeps each task's own default (as lm-eval).",
    )
    fewshot_seed: int = Field(
        default=1234, description="Seed of lm-eval's few-shot sampler (its default 1234)."
    )
    seed: int = Field(default=0, description="Seed of the document sample under 'limit'.")
    metric: str | None = Field(
        default=None,
        description="The per-document metric to compare (acc, acc_norm, exact_match, ...); "
        "default: each task's first metric that lm-eval averages over documents.",
    )
    filter: str | None = Field(
        default=None,
        description="The filter whose answers are scored (gsm8k: strict-match or "
        "flexible-extract); default: each task's first.",
    )

    @field_validator("tasks")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.strip() or name != name.strip() or "/" in name:
                raise ValueError(
                    f"task name {name!r}: give lm-eval task or group names (no paths: put "
                    "your task folder in include_path)"
                )
        if len(set(value)) != len(value):
            raise ValueError("tasks: a task is listed twice; list each once")
        return value


class LmEvalGuardrail(_Strict):
    """lm-evaluation-harness tasks as a forgetting check: lm-eval builds the requests and
    scores them, heldout sends them through the plan's backends and compares each task per
    document, paired: candidate − base ≥ −max_drop."""

    lm_eval: LmEvalTasks = Field(description="The lm-eval tasks and their documents.")
    max_drop: float = Field(ge=0.0, le=1.0, description="Largest tolerated drop per task.")
    unresolved: Literal["inconclusive", "warn"] = Field(
        default="inconclusive", description="Verdict effect when the CI straddles the margin."
    )
    fail_when: Literal["point", "ci"] = Field(
        default="ci", description="Fail on the whole CI past the margin, or the point estimate."
    )


class JudgeGuardrail(_Strict):
    """Non-inferiority vs base on what the plan's judge measured: a rubric criterion, the
    mean over all criteria ('overall'), or the pairwise win rate ('win_rate'). It gates only
    when the judge agrees with the human labels on it (min_agreement); otherwise it is
    reported as not trusted and never decides the verdict."""

    judge: str = Field(
        description="A rubric criterion's name, 'overall' (mean of the criteria) or 'win_rate' "
        "(pairwise: the candidate's win rate against 0.5)."
    )
    max_drop: float = Field(
        ge=0.0,
        le=1.0,
        description="Largest tolerated drop, as a share of the criterion's scale (0.1 on a 1–5 "
        "scale = 0.4 points) or of the win rate (0.05: at least 0.45).",
    )
    unresolved: Literal["inconclusive", "warn"] = Field(
        default="inconclusive", description="Verdict when the CI straddles −max_drop."
    )
    fail_when: Literal["point", "ci"] = Field(
        default="ci", description="Fail on the whole CI past the margin, or the point estimate."
    )


def _guardrail_tag(value: Any) -> str | None:
    keys = set(value) if isinstance(value, dict) else set(type(value).model_fields)
    # a calibration guardrail may name a suite; a suite guardrail names its metric (or the
    # judge that scores it)
    for tag in ("lm_eval", "calibration", "slices", "suite", "judge", "metric"):
        if tag in keys:
            return tag
    return None


Guardrail = Annotated[
    Annotated[SuiteGuardrail, Tag("suite")]
    | Annotated[CalibrationGuardrail, Tag("calibration")]
    | Annotated[SliceGuardrail, Tag("slices")]
    | Annotated[MetricGuardrail, Tag("metric")]
    | Annotated[LmEvalGuardrail, Tag("lm_eval")]
    | Annotated[JudgeGuardrail, Tag("judge")],
    Discriminator(_guardrail_tag),
]


class Criterion(_Strict):
    """One rubric criterion, scored by the judge as an integer on its scale."""

    name: str = Field(
        min_length=1,
        max_length=40,
        pattern=r"^[A-Za-z][A-Za-z0-9_ -]*$",
        description="Name, used as the JSON key the judge fills in (e.g. accuracy).",
    )
    description: str | None = Field(
        default=None, description="What the judge looks for (default: the name)."
    )
    scale: list[int] = Field(
        default_factory=lambda: [1, 5],
        min_length=2,
        max_length=2,
        description="Lowest and highest score, integers (default [1, 5]).",
    )

    @field_validator("scale")
    @classmethod
    def _ordered(cls, v: list[int]) -> list[int]:
        if not v[0] < v[1] or v[1] - v[0] > 20:
            raise ValueError(
                "scale is the lowest and the highest score: two integers, lowest < highest, "
                "at most 20 apart, e.g. [1, 5]"
            )
        return v


def _rubric_tag(value: Any) -> str:
    return "name" if isinstance(value, str) else "criterion"


RubricEntry = Annotated[
    Annotated[str, Tag("name")] | Annotated[Criterion, Tag("criterion")],
    Discriminator(_rubric_tag),
]


class JudgeSpec(_Strict):
    """An LLM judge (or a panel), checked against human labels before it is trusted.

    ``mode: rubric`` scores base, candidate and reference on every gold sample on each
    criterion (JSON checked against a schema built from the rubric); ``pairwise`` asks which
    of base and candidate is better, positions swapped; ``both`` does both."""

    model: ModelSpec = Field(description="The judge model.")
    panel: list[ModelSpec] = Field(
        default_factory=list,
        description="Further judge models: every judge scores everything, and the scores are "
        "aggregated (aggregate); inter-judge agreement and self-preference are measured.",
    )
    aggregate: Literal["mean", "majority"] = Field(
        default="mean",
        description="How a panel's scores combine per response: 'mean', or 'majority' (the most "
        "common score or winner; a tie goes to the median).",
    )
    mode: Literal["pairwise", "rubric", "both"] = Field(
        default="pairwise",
        description="'pairwise' (which of base and candidate is better), 'rubric' (each "
        "response scored per criterion), or 'both'.",
    )
    rubric: list[RubricEntry] = Field(
        min_length=1,
        description="The criteria: names (scale 1–5) or {name, description, scale}.",
    )
    human_labels: str | None = Field(
        default=None, description="JSONL of human pairwise verdicts: {id, winner}."
    )
    human_scores: str | None = Field(
        default=None,
        description="JSONL of human rubric scores: {id, model, scores: {criterion: n}}.",
    )
    min_agreement: float = Field(
        default=0.8, ge=0.0, le=1.0, description="Agreement with humans needed to trust it."
    )
    agreement: Literal["exact", "within_one"] = Field(
        default="exact",
        description="Rubric agreement with humans that min_agreement applies to: the same "
        "score ('exact') or at most one point apart ('within_one').",
    )
    retries: int = Field(
        default=2,
        ge=0,
        le=5,
        description="Re-asks of a judge whose rubric reply is not valid JSON for the schema; "
        "after them the response is counted as unparseable (never scored).",
    )
    show_target: bool = Field(
        default=False,
        description="Show the judge each gold sample's target as a reference answer.",
    )

    @model_validator(mode="after")
    def _names(self) -> JudgeSpec:
        names = [c if isinstance(c, str) else c.name for c in self.rubric]
        for name in names:
            if name in ("overall", "win_rate"):
                raise ValueError(f"rubric: {name!r} is reserved (a judge guardrail's target)")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"rubric: criterion names must be unique; repeated: {dup}")
        return self

    def criteria(self) -> list[JudgeCriterion]:
        """The rubric as the judge scores it."""
        from heldout.judge import Criterion as JudgeCriterion

        out = []
        for c in self.rubric:
            if isinstance(c, str):
                out.append(JudgeCriterion(c, c))
            else:
                out.append(JudgeCriterion(c.name, c.description or c.name, c.scale[0], c.scale[1]))
        return out

    def judges(self) -> list[ModelSpec]:
        return [self.model, *self.panel]


class StatsSpec(_Strict):
    """How uncertainty is computed. The seed is recorded with every result."""

    confidence: float = Field(default=0.95, gt=0.5, lt=1.0, description="CI level.")
    resamples: int = Field(
        default=10_000, ge=200, le=1_000_000, description="Bootstrap/permutation resamples."
    )
    seed: int = Field(default=0, ge=0, description="Seed of every random draw (recorded).")
    power: float = Field(default=0.8, gt=0.5, lt=1.0, description="Target power.")
    discordance: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="Binary primary metrics: expected share of samples where base and "
        "candidate disagree (from a pilot run) for the power check. Default: independent "
        "errors, which over-estimates it for fine-tunes of one base (more samples asked).",
    )
    paired_sd: float | None = Field(
        default=None,
        gt=0.0,
        description="Continuous and F1-type primary metrics: SD of per-sample candidate − base "
        "differences (for F1-type metrics, SE(delta)·√n) from a pilot run, for the power "
        "check. Without it, validate cannot check power; a run measures it.",
    )
    bar_rule: Literal["ci", "point"] = Field(
        default="ci",
        description="'ci': success needs the candidate's whole CI past success_threshold; "
        "'point': its point estimate (a CI straddling the bar is then not inconclusive).",
    )


class TrainSampleSpec(_Strict):
    """Training rows scored beside the gold set: a candidate that gains far more on rows it
    was trained on than on held-out ones is overfitting (reported, never gated)."""

    data: str = Field(description="The training file (JSONL, CSV or Parquet), e.g. train.jsonl.")
    n: int = Field(default=200, ge=10, description="How many rows: a seeded random sample.")
    input_field: str = Field(
        default="input", description="Column holding the input, as the gold set's (e.g. prompt)."
    )
    target_field: str = Field(
        default="target", description="Column holding the reference (e.g. completion)."
    )
    seed: int = Field(default=0, description="Seed of the row sample.")


class PromptCandidate(_Strict):
    """One prompt the baseline search measures: a template file or an inline template."""

    name: str | None = Field(default=None, description="Label in tables (default: the file).")
    file: str | None = Field(default=None, description="Template file, relative to the plan.")
    template: str | None = Field(default=None, description="Inline template.")

    @model_validator(mode="after")
    def _one(self) -> PromptCandidate:
        if (self.file is None) == (self.template is None):
            raise ValueError("give either 'file' or 'template'")
        return self

    @property
    def label(self) -> str:
        return self.name or self.file or (self.template or "")[:40]


class BaselineSearch(_Strict):
    """``heldout baseline``: the best prompt for the base model, measured before training on
    a development split, never on the frozen gold set unless ``use_gold`` says so."""

    dev_data: str | None = Field(
        default=None,
        description="Development split (gold-set format) the prompts are compared on; must "
        "not overlap the gold set.",
    )
    prompts: list[PromptCandidate] = Field(
        default_factory=list,
        description="Candidate prompts besides the plan's own (task.prompt / task.template).",
    )
    models: dict[str, ModelSpec] = Field(
        default_factory=dict,
        description="Other baselines by name (a bigger model with a simple prompt, the "
        "deployed version), measured with the plan's prompt beside the base model.",
    )
    use_gold: bool = Field(
        default=False,
        description="Choose the prompt on the gold set itself: optimistic (the best of k on "
        "the held-out set inflates the bar) and said in every later report.",
    )


class Plan(_Strict):
    """A pre-registered evaluation plan (``heldout.yaml``)."""

    name: str = Field(min_length=1, description="Name of this evaluation, e.g. ticket-json-v3.")
    target_behavior: str = Field(min_length=1, description="What the fine-tune should do better.")
    task: TaskSpec = Field(description="What the model does, on which gold set.")
    primary_metric: str = Field(description="Metric that decides success; must fit the shape.")
    baseline: float = Field(
        description="Base model with the best prompt, measured before training."
    )
    success_threshold: float = Field(description="The bar the candidate must clear.")
    min_detectable_lift: float = Field(
        gt=0.0, description="Smallest lift worth detecting; drives the power check."
    )
    models: Models = Field(description="Base, candidate and optional reference models.")
    guardrails: list[Guardrail] = Field(
        default_factory=list,
        description="What must not get worse (suites, lm-eval tasks, calibration, slices, "
        "metrics).",
    )
    judge: JudgeSpec | None = Field(default=None, description="Optional LLM judge.")
    tracking: TrackingSpec | None = Field(
        default=None, description="Experiment trackers every run is logged to (MLflow)."
    )
    stats: StatsSpec = Field(default_factory=StatsSpec, description="Uncertainty settings.")
    slices: list[str] = Field(
        default_factory=list, description="Metadata fields to report per-slice results for."
    )
    plugins: list[str] = Field(
        default_factory=list,
        description="Python files (relative to the plan) or importable modules that register "
        "custom metrics with @heldout.metric, imported before the plan is checked.",
    )
    baseline_search: BaselineSearch | None = Field(
        default=None,
        description="The prompts and baselines 'heldout baseline' measures before training.",
    )
    train_sample: TrainSampleSpec | None = Field(
        default=None,
        description="Training rows to score like the gold set, for the train-vs-held-out "
        "gap (overfitting); not part of the lock, since training data changes between rounds.",
    )

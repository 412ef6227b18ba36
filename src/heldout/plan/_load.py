"""Load and validate a plan, reporting every problem at once with its YAML path and line."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from heldout.data import FieldMap, Sample, iter_records, load_samples, placeholders
from heldout.data._template import DEFAULT_TEMPLATE
from heldout.errors import DataError, HeldoutError, PlanError, Problem, UnknownNameError
from heldout.plan._model import (
    BACKENDS,
    CalibrationGuardrail,
    FileModel,
    HFModel,
    JudgeGuardrail,
    JudgeSpec,
    LmEvalGuardrail,
    MetricGuardrail,
    MockModel,
    Models,
    OpenAIModel,
    Plan,
    SliceGuardrail,
    StatsSpec,
    SuiteGuardrail,
    TaskSpec,
)
from heldout.plan._yaml import format_path, line_of, parse_yaml
from heldout.suites import BUILTIN_SUITES, builtin_suite_file

__all__ = ["LoadedPlan", "load_plan", "load_plugins", "referenced_files"]

_ALL_MODELS: tuple[type[BaseModel], ...] = (
    Plan,
    TaskSpec,
    Models,
    OpenAIModel,
    HFModel,
    FileModel,
    MockModel,
    SuiteGuardrail,
    CalibrationGuardrail,
    SliceGuardrail,
    JudgeSpec,
    StatsSpec,
)
_KNOWN_KEYS = sorted(
    {a for m in _ALL_MODELS for n, f in m.model_fields.items() for a in (n, f.alias) if a}
)
_TAGS = {*BACKENDS, "suite", "calibration", "slices", "metric", "judge", "name", "criterion"}


@dataclass(slots=True)
class LoadedPlan:
    """A validated plan with where it came from and (when checked) its gold set."""

    plan: Plan
    path: Path
    samples: list[Sample] = field(default_factory=list)
    #: Each suite guardrail's samples and the judge's human labels, once checked (so a run
    #: does not read them again).
    suite_samples: dict[str, list[Sample]] = field(default_factory=dict)
    human_labels: dict[str, str] | None = None
    human_scores: dict[tuple[str, str], dict[str, int]] | None = None

    @property
    def root(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        """A path the plan gives, relative to the plan's folder; ``heldout:suites/<name>.jsonl``
        names a built-in suite's file."""
        return builtin_suite_file(relative) or (self.root / relative).resolve()

    @property
    def template(self) -> str:
        task = self.plan.task
        if task.template is not None:
            return task.template
        if task.prompt is not None:
            return self.resolve(task.prompt).read_text(encoding="utf-8")
        return DEFAULT_TEMPLATE

    @property
    def fields(self) -> FieldMap:
        t = self.plan.task
        return FieldMap(t.id_field, t.input_field, t.target_field)


def referenced_files(plan: Plan) -> dict[str, str]:
    """Pre-registered files the plan references, by YAML path: these are hashed in the lock.

    Model artifacts (adapters, prediction files) are not: they are made after the lock.
    """
    files: dict[str, str] = {"task.data": plan.task.data}
    if plan.task.prompt:
        files["task.prompt"] = plan.task.prompt
    if plan.task.schema_file:
        files["task.schema"] = plan.task.schema_file
    for i, g in enumerate(plan.guardrails):
        if isinstance(g, SuiteGuardrail) and g.data:
            files[f"guardrails[{i}].data"] = g.data
        elif isinstance(g, SuiteGuardrail) and g.suite in BUILTIN_SUITES:
            files[f"guardrails[{i}].suite"] = BUILTIN_SUITES[g.suite].reference
    if plan.baseline_search is not None:
        if plan.baseline_search.dev_data:
            files["baseline_search.dev_data"] = plan.baseline_search.dev_data
        for i, p in enumerate(plan.baseline_search.prompts):
            if p.file:
                files[f"baseline_search.prompts[{i}].file"] = p.file
    if plan.judge and plan.judge.human_labels:
        files["judge.human_labels"] = plan.judge.human_labels
    if plan.judge and plan.judge.human_scores:
        files["judge.human_scores"] = plan.judge.human_scores
    for i, plugin in enumerate(plan.plugins):
        if plugin.endswith(".py"):
            files[f"plugins[{i}]"] = plugin
    return files


_LOADED_PLUGINS: dict[str, str] = {}


def load_plugins(loaded: LoadedPlan) -> list[Problem]:
    """Import the plan's plugins (once per file or module); return import problems."""
    import importlib
    import importlib.util
    import sys
    import traceback

    problems = []
    for i, plugin in enumerate(loaded.plan.plugins):
        key = str(loaded.resolve(plugin)) if plugin.endswith(".py") else plugin
        if key in _LOADED_PLUGINS:
            continue
        try:
            if plugin.endswith(".py"):
                path = loaded.resolve(plugin)
                if not path.is_file():
                    continue  # reported as a missing file
                name = f"heldout_plugin_{len(_LOADED_PLUGINS)}_{path.stem}"
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot import {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(plugin)
        except Exception as exc:  # a plugin may raise anything; report it as a problem
            last = traceback.extract_tb(exc.__traceback__)[-1]
            problems.append(
                Problem(
                    f"plugins[{i}]",
                    f"importing {plugin!r} failed: {type(exc).__name__}: {exc} "
                    f"({last.filename}:{last.lineno})",
                )
            )
            continue
        _LOADED_PLUGINS[key] = plugin
    return problems


def _strip_tags(loc: Sequence[int | str]) -> list[int | str]:
    out: list[int | str] = []
    i = 0
    while i < len(loc):
        out.append(loc[i])
        i += 1
        union_site = (
            (len(out) == 2 and out[0] == "models" and out[1] in ("base", "candidate", "reference"))
            or out == ["judge", "model"]
            or (
                len(out) == 3
                and out[:2] in (["judge", "panel"], ["judge", "rubric"])
                and isinstance(out[2], int)
            )
            or (len(out) == 2 and out[0] == "guardrails" and isinstance(out[1], int))
        )
        if union_site and i < len(loc) and loc[i] in _TAGS and i + 1 <= len(loc):
            i += 1
    return out


def _message(err: ErrorDetails, path: list[int | str]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "missing":
        return "required: add it (see heldout plan schema or heldout init)"
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else ""
        close = difflib.get_close_matches(key, _KNOWN_KEYS, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key{hint}; remove it or fix the spelling"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        if path and path[0] == "guardrails":
            return (
                "a guardrail needs one of the keys 'suite', 'calibration', 'slices' or 'metric'; "
                "add the one this guardrail is"
            )
        got = value.get("backend") if isinstance(value, dict) else None
        if got is None:
            return f"'backend' is required; known backends: {', '.join(BACKENDS)}"
        return f"unknown backend {got!r}; known backends: {', '.join(BACKENDS)}"
    bounds = {
        "greater_than_equal": ("≥", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("≤", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        sym, key = bounds[kind]
        return f"must be {sym} {ctx.get(key)} (got {value!r})"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')} (got {value!r})"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "string_too_short":
        return "must not be empty"
    msg = err["msg"].replace("Input should be", "must be")
    if isinstance(value, str | int | float | bool) or value is None:
        msg += f" (got {value!r})"
    return msg


def _schema_problems(exc: ValidationError, node: yaml.Node | None) -> list[Problem]:
    problems = []
    for err in exc.errors():
        path = _strip_tags(err["loc"])
        problems.append(
            Problem(format_path(path) or "(plan)", _message(err, path), line_of(node, path))
        )
    return problems


def load_plan(path: str | Path, *, check_data: bool = True) -> LoadedPlan:
    """Read, validate and (with ``check_data``) load the gold set of the plan at ``path``.

    Raises :class:`PlanError` listing every problem: schema errors with their YAML paths and
    lines, cross-field rules, missing files and gold-set integrity problems.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise PlanError([Problem(source, "plan file not found; run 'heldout init' to create one")])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError(
            [Problem(source, f"not valid UTF-8 at byte {exc.start}; re-save it as UTF-8")]
        ) from None
    data, node, problems = parse_yaml(text, source)
    if data is None:
        raise PlanError(problems, source=source)
    if not isinstance(data, dict):
        raise PlanError(
            [*problems, Problem("(plan)", f"must be a mapping, got {type(data).__name__}")],
            source=source,
        )
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        problems += _schema_problems(exc, node)
        problems += _raw_problems(data, path.parent, node)
        raise PlanError(problems, source=source) from None
    loaded = LoadedPlan(plan=plan, path=path.resolve())
    problems += _loaded_problems(loaded, node, check_data)
    if problems:
        raise PlanError(problems, source=source)
    return loaded


def plan_from_object(
    plan: Plan, *, root: str | Path | None = None, check_data: bool = True
) -> LoadedPlan:
    """A :class:`Plan` built in Python, checked as ``load_plan`` checks a file: every
    cross-field rule, file and (with ``check_data``) the gold set. Relative paths are read
    from ``root`` (default: the working directory), where ``heldout.lock`` is looked for."""
    if not isinstance(plan, Plan):
        raise PlanError([Problem("plan", f"expected a heldout.Plan, got {type(plan).__name__}")])
    folder = Path(root) if root is not None else Path.cwd()
    loaded = LoadedPlan(plan=plan, path=(folder / "heldout.yaml").resolve())
    problems = _loaded_problems(loaded, None, check_data)
    if problems:
        raise PlanError(problems, source="(a Plan object built in Python)")
    return loaded


def _loaded_problems(loaded: LoadedPlan, node: yaml.Node | None, check_data: bool) -> list[Problem]:
    problems = load_plugins(loaded)
    problems += _semantic_problems(loaded, node)
    if check_data and not any(p.where.startswith("task.data") for p in problems):
        problems += _data_problems(loaded, node)
    return problems


def _raw_problems(data: dict[str, Any], root: Path, node: yaml.Node | None) -> list[Problem]:
    """Checks that still run when the schema did not validate, on the raw YAML values."""
    task = data.get("task")
    out = []
    shape = task.get("shape") if isinstance(task, dict) else None
    name = data.get("primary_metric")
    baseline, threshold = data.get("baseline"), data.get("success_threshold")
    numbers = all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in (baseline, threshold)
    )
    if isinstance(shape, str) and isinstance(name, str) and numbers:
        lift = data.get("min_detectable_lift")
        out += _metric_problems(
            shape,
            name,
            float(baseline),  # type: ignore[arg-type]
            float(threshold),  # type: ignore[arg-type]
            float(lift) if isinstance(lift, int | float) else None,
            has_schema=isinstance(task, dict) and "schema" in task,
            node=node,
        )
    if isinstance(task, dict):
        for key in ("data", "prompt", "schema"):
            rel = task.get(key)
            if isinstance(rel, str) and not (root / rel).is_file():
                out.append(
                    Problem(f"task.{key}", f"file not found: {rel}", line_of(node, ["task", key]))
                )
    return out


def _metric_problems(
    shape: str,
    name: str,
    baseline: float,
    threshold: float,
    lift: float | None,
    *,
    has_schema: bool,
    node: yaml.Node | None,
) -> list[Problem]:
    """Rules tying primary_metric, shape, baseline and success_threshold together."""
    from heldout.metrics import get_metric, metric_names

    out: list[Problem] = []

    def add(key: str, message: str) -> None:
        out.append(Problem(key, message, line_of(node, key.split("."))))

    try:
        spec = get_metric(name)
    except UnknownNameError:
        add(
            "primary_metric",
            f"unknown metric {name!r} for shape {shape!r}; known: {', '.join(metric_names(shape))}",
        )
        return out
    if shape not in spec.shapes:
        add(
            "primary_metric",
            f"metric {spec.name!r} does not fit shape {shape!r}; use one of "
            f"{', '.join(metric_names(shape))}",
        )
    if spec.bounds is not None:
        lo, hi = spec.bounds
        for key, value in (("baseline", baseline), ("success_threshold", threshold)):
            if not lo <= value <= hi:
                add(key, f"must be within [{lo:g}, {hi:g}] for {spec.name} (got {value})")
        if lift is not None and lift > hi - lo:
            add("min_detectable_lift", f"must be ≤ {hi - lo:g} for {spec.name}")
    if spec.higher_is_better and threshold <= baseline:
        add(
            "success_threshold",
            f"must be above baseline ({baseline}) because higher {spec.name} is better; a bar "
            "at or below the baseline is cleared by doing nothing",
        )
    if not spec.higher_is_better and threshold >= baseline:
        add(
            "success_threshold",
            f"must be below baseline ({baseline}) because lower {spec.name} is better",
        )
    if spec.name == "schema_valid_rate" and not has_schema:
        add("task.schema", "required by primary_metric schema_valid_rate")
    return out


def _semantic_problems(loaded: LoadedPlan, node: yaml.Node | None) -> list[Problem]:
    from heldout.metrics import get_metric

    plan = loaded.plan
    task = plan.task
    out: list[Problem] = []

    def add(loc: list[int | str], message: str) -> None:
        out.append(Problem(format_path(loc), message, line_of(node, loc)))

    for loc, rel in referenced_files(plan).items():
        if not loaded.resolve(rel).is_file():
            parts: list[int | str] = []
            for piece in loc.replace("]", "").replace("[", ".").split("."):
                parts.append(int(piece) if piece.isdigit() else piece)
            add(parts, f"file not found: {rel} (paths are relative to {loaded.root})")

    if plan.train_sample is not None and not loaded.resolve(plan.train_sample.data).is_file():
        add(
            ["train_sample", "data"],
            f"file not found: {plan.train_sample.data} (paths are relative to {loaded.root})",
        )

    if task.prompt is not None and task.template is not None:
        add(["task", "template"], "give either 'prompt' (a file) or 'template' (inline), not both")

    out += _metric_problems(
        task.shape,
        plan.primary_metric,
        plan.baseline,
        plan.success_threshold,
        plan.min_detectable_lift,
        has_schema=task.schema_file is not None,
        node=node,
    )

    if task.shape != "classification":
        if task.labels is not None:
            add(["task", "labels"], "only applies to shape classification")
        if task.aliases:
            add(["task", "aliases"], "only applies to shape classification")
        if task.label_match != "strict":
            add(["task", "label_match"], "only applies to shape classification")
    else:
        labels = task.labels or []
        if len(set(labels)) != len(labels):
            add(["task", "labels"], "labels must be unique")
        if task.labels is not None:
            for alias, label in task.aliases.items():
                if label not in labels:
                    add(["task", "aliases", alias], f"maps to {label!r}, which is not a label")
    if task.span_match != "strict" and task.shape != "extraction":
        add(["task", "span_match"], "only applies to shape extraction")
    if task.use_stemmer and task.shape != "summarization":
        add(["task", "use_stemmer"], "only applies to shape summarization")
    for j, name in enumerate(task.secondary_metrics or []):
        try:
            spec = get_metric(name)
        except UnknownNameError as exc:
            add(["task", "secondary_metrics", j], str(exc))
            continue
        if task.shape not in spec.shapes:
            add(
                ["task", "secondary_metrics", j],
                f"{name} applies to {', '.join(sorted(spec.shapes))}, not {task.shape}",
            )
    if task.shape != "structured":
        if task.schema_file is not None:
            add(["task", "schema"], "only applies to shape structured")
        if task.extract_json:
            add(["task", "extract_json"], "only applies to shape structured")
    elif task.schema_file is not None and loaded.resolve(task.schema_file).is_file():
        out += _schema_file_problems(loaded.resolve(task.schema_file), node)

    models = plan.models
    for role in ("base", "reference"):  # the candidate's file may not exist before training
        spec = getattr(models, role)
        if isinstance(spec, FileModel) and not loaded.resolve(spec.path).is_file():
            add(
                ["models", role, "path"],
                f"predictions file not found: {spec.path} (paths are relative to {loaded.root})",
            )
    for role in ("base", "candidate", "reference"):
        spec = getattr(models, role)
        if isinstance(spec, OpenAIModel) and any("@" in urlsplit(u).netloc for u in spec.urls):
            add(
                ["models", role, "base_url"],
                "holds credentials (user:password@); remove them and name the environment "
                "variable that holds the key in api_key_env (the plan is hashed and stored)",
            )
    if models.base == models.candidate:
        add(["models", "candidate"], "is identical to models.base; use two different models")
    if models.reference is not None and models.reference == models.candidate:
        add(["models", "reference"], "is identical to models.candidate")

    _judge_problems(plan, add)
    search = plan.baseline_search
    if search is not None and search.dev_data is None and not search.use_gold:
        add(
            ["baseline_search", "dev_data"],
            "give a development split to choose the prompt on (never the frozen gold set), or "
            "set use_gold: true to choose on the gold set (optimistic; said in every report)",
        )

    labels_known = task.labels
    for where, metric_name in _metric_references(plan):
        try:
            spec = get_metric(metric_name)
        except UnknownNameError:
            continue  # reported where the name is checked
        if spec.label is not None and labels_known is not None and spec.label not in labels_known:
            add(where, f"{metric_name}: {spec.label!r} is not one of the labels {labels_known}")
    seen: dict[str, int] = {}
    for i, g in enumerate(plan.guardrails):
        if isinstance(g, MetricGuardrail):
            _metric_guardrail_problems(g, i, task, add)
        key = (
            f"calibration {g.calibration} on {g.suite or 'the gold set'}"
            if isinstance(g, CalibrationGuardrail)
            else f"slices {sorted(g.slices)}"
            if isinstance(g, SliceGuardrail)
            else ""
        )
        if key and key in seen:
            add(
                ["guardrails", i],
                f"repeats guardrails[{seen[key]}] ({key}): one gate per measure; remove one",
            )
        seen.setdefault(key, i)
        if isinstance(g, CalibrationGuardrail):
            for role in ("base", "candidate"):
                why = _no_probabilities(getattr(models, role), loaded)
                if why:
                    add(
                        ["guardrails", i, "calibration"],
                        f"models.{role} cannot supply probabilities: {why}; use an openai or "
                        "hf backend, or add a 'confidence' or 'probabilities' column to its "
                        "predictions",
                    )

    lm_tasks: dict[str, int] = {}
    for i, g in enumerate(plan.guardrails):
        if not isinstance(g, LmEvalGuardrail):
            continue
        for name in g.lm_eval.tasks:
            if name in lm_tasks:
                add(
                    ["guardrails", i, "lm_eval", "tasks"],
                    f"task {name!r} is already in guardrails[{lm_tasks[name]}]; list each "
                    "task in one guardrail",
                )
            lm_tasks.setdefault(name, i)
        for k, folder in enumerate(g.lm_eval.include_path):
            if not loaded.resolve(folder).is_dir():
                add(
                    ["guardrails", i, "lm_eval", "include_path", k],
                    f"folder not found: {loaded.resolve(folder)} (relative to the plan's "
                    "folder); give the folder holding your task YAML files",
                )

    suite_names: dict[str, int] = {}
    for i, g in enumerate(plan.guardrails):
        if isinstance(g, SuiteGuardrail):
            if g.suite in suite_names:
                add(
                    ["guardrails", i, "suite"],
                    f"suite name {g.suite!r} is already used by guardrails[{suite_names[g.suite]}]"
                    "; give each suite its own name",
                )
            suite_names.setdefault(g.suite, i)
        if isinstance(g, SuiteGuardrail) and g.data is None and g.suite not in BUILTIN_SUITES:
            add(
                ["guardrails", i, "suite"],
                f"unknown suite {g.suite!r} (built-in: {', '.join(BUILTIN_SUITES)}); give "
                "'data' with a suite file in gold-set format",
            )
        elif (
            isinstance(g, SuiteGuardrail)
            and g.data is None
            and g.metric != BUILTIN_SUITES[g.suite].metric
        ):
            add(
                ["guardrails", i, "metric"],
                f"the built-in suite {g.suite!r} is scored by {BUILTIN_SUITES[g.suite].metric}; "
                "remove 'metric', or give 'data' to score your own suite file",
            )
        if isinstance(g, SuiteGuardrail):
            try:
                get_metric(g.metric)
            except UnknownNameError as exc:
                add(["guardrails", i, "metric"], str(exc))
        if isinstance(g, CalibrationGuardrail) and g.suite is None:
            if task.shape != "classification":
                add(
                    ["guardrails", i, "calibration"],
                    "calibration needs label probabilities: only for shape classification "
                    "(or name a classification suite with 'suite')",
                )
        elif isinstance(g, CalibrationGuardrail):
            suites = {s.suite: s for s in plan.guardrails if isinstance(s, SuiteGuardrail)}
            target = suites.get(g.suite or "")
            if target is None:
                add(["guardrails", i, "suite"], f"no suite guardrail named {g.suite!r}")
            else:
                try:
                    ok = "classification" in get_metric(target.metric).shapes
                except UnknownNameError:
                    ok = True  # reported on the suite itself
                if not ok:
                    add(
                        ["guardrails", i, "suite"],
                        f"suite {g.suite!r} is scored with {target.metric}, not a "
                        "classification metric: it has no label probabilities",
                    )
    return out


def _judge_problems(plan: Plan, add: Callable[[list[int | str], str], None]) -> None:
    """Judge guardrails and judged suites name what the judge measures; a pairwise-only
    judge has no rubric scores, a rubric-only one no win rate."""
    judge = plan.judge
    names = [c.name for c in judge.criteria()] if judge is not None else []
    for i, g in enumerate(plan.guardrails):
        if isinstance(g, JudgeGuardrail):
            if judge is None:
                add(["guardrails", i, "judge"], "needs a judge: section in the plan")
            elif g.judge == "win_rate":
                if judge.mode == "rubric":
                    add(
                        ["guardrails", i, "judge"],
                        "win_rate needs pairwise judging: set judge.mode to pairwise or both",
                    )
            elif g.judge != "overall" and g.judge not in names:
                add(
                    ["guardrails", i, "judge"],
                    f"{g.judge!r} is not a rubric criterion ({', '.join(names)}), 'overall' "
                    "or 'win_rate'",
                )
            elif judge.mode == "pairwise":
                add(
                    ["guardrails", i, "judge"],
                    f"{g.judge!r} needs rubric scores: set judge.mode to rubric or both",
                )
        elif isinstance(g, SuiteGuardrail) and g.judge:
            if "metric" in g.model_fields_set:
                add(
                    ["guardrails", i, "metric"],
                    "a judged suite is scored by the judge: give either metric or judge",
                )
            if judge is None:
                add(["guardrails", i, "judge"], "a judged suite needs a judge: section")
            for j, name in enumerate(g.judge):
                if judge is not None and name not in names:
                    add(
                        ["guardrails", i, "judge", j],
                        f"{name!r} is not a rubric criterion ({', '.join(names)})",
                    )


def _judge_trust_problems(loaded: LoadedPlan, node: yaml.Node | None) -> list[Problem]:
    """A judge guardrail can gate only on what people labelled: a guardrail with no human
    labels at all for its target could never gate, so the plan says so now."""
    plan, out = loaded.plan, list[Problem]()
    judge = plan.judge
    if judge is None:
        return out
    names = [c.name for c in judge.criteria()]
    for i, g in enumerate(plan.guardrails):
        if isinstance(g, SuiteGuardrail) and g.judge:
            target, targets = ", ".join(g.judge), list(g.judge)
        elif isinstance(g, JudgeGuardrail):
            target = g.judge
            targets = names if g.judge == "overall" else [g.judge]
        else:
            continue
        loc: list[int | str] = ["guardrails", i, "judge"]
        if target == "win_rate":
            if not judge.human_labels:
                why = (
                    "cannot gate on win_rate: the judge is not calibrated (no "
                    "judge.human_labels); give people's pairwise verdicts, or remove the "
                    "guardrail (the win rate is reported either way)"
                )
                out.append(Problem(format_path(loc), why, line_of(node, loc)))
            continue
        rated = loaded.human_scores or {}
        missing = [t for t in targets if not any(t in s for s in rated.values())]
        if missing and (not judge.human_scores or loaded.human_scores is not None):
            why = (
                f"cannot gate on {target!r}: the judge is not calibrated on "
                f"{', '.join(missing)} (no human scores"
                + ("" if judge.human_scores else "; give judge.human_scores")
                + "); an uncalibrated criterion is reported, never gated"
            )
            out.append(Problem(format_path(loc), why, line_of(node, loc)))
    return out


def task_metric_options(
    task: TaskSpec,
    *,
    labels: tuple[str, ...] | None,
    schema: Any = None,
    inputs: Sequence[str] | None = None,
) -> Any:
    """The :class:`heldout.metrics.MetricOptions` a plan's task gives its metrics (one place
    for runs and for comparisons of stored runs)."""
    from heldout.metrics import MetricOptions

    extra: dict[str, Any] = {}
    if task.shape == "summarization":
        extra["stem"] = task.use_stemmer
    if task.shape == "extraction":
        extra["span_match"] = task.span_match
    return MetricOptions(
        labels=labels,
        aliases=dict(task.aliases),
        label_match=task.label_match,
        schema=schema,
        extract_json=task.extract_json,
        extra=extra,
        inputs=inputs,
    )


def _metric_references(plan: Plan) -> list[tuple[list[int | str], str]]:
    """Every place the plan names a gold-set metric."""
    refs: list[tuple[list[int | str], str]] = [(["primary_metric"], plan.primary_metric)]
    refs += [
        (["task", "secondary_metrics", j], m)
        for j, m in enumerate(plan.task.secondary_metrics or [])
    ]
    refs += [
        (["guardrails", i, "metric"], g.metric)
        for i, g in enumerate(plan.guardrails)
        if isinstance(g, MetricGuardrail) and not g.metric.endswith("[*]")
    ]
    return refs


def _metric_guardrail_problems(
    g: MetricGuardrail, i: int, task: TaskSpec, add: Callable[[list[int | str], str], None]
) -> None:
    from heldout.metrics import get_metric

    loc: list[int | str] = ["guardrails", i, "metric"]
    name = g.metric
    if name.endswith("[*]"):
        family = name[:-3]
        if task.shape != "classification" or family not in ("precision", "recall", "f1"):
            add(loc, "[*] (every class) applies to precision, recall or f1 of classification")
        return
    try:
        spec = get_metric(name)
    except UnknownNameError as exc:
        add(loc, str(exc))
        return
    if task.shape not in spec.shapes:
        add(loc, f"{name} applies to {', '.join(sorted(spec.shapes))}, not {task.shape}")


def _no_probabilities(model: Any, loaded: LoadedPlan) -> str | None:
    """Why ``model`` cannot give label probabilities or a confidence, or None if it can
    (hf and openai backends return log-probabilities; a file must carry a column of them)."""
    if isinstance(model, MockModel):
        return "a mock backend scripts text only"
    if not isinstance(model, FileModel):
        return None
    if model.format in ("lm-eval", "inspect"):
        return (
            f"{model.format} logs carry no per-label probabilities here; export predictions "
            f"with a '{model.confidence_field}' or '{model.probabilities_field}' column"
        )
    path = loaded.resolve(model.path)
    if not path.is_file():
        return None  # reported as a missing file
    fields = (model.confidence_field, model.probabilities_field)
    try:
        for _, rec in iter_records(path):
            if isinstance(rec, dict) and any(rec.get(f) not in (None, "") for f in fields):
                return None
    except HeldoutError:
        return None  # an unreadable file is reported when it is read
    return (
        f"{path.name} has no '{model.confidence_field}' (probability of the answer) or "
        f"'{model.probabilities_field}' ({{label: p}}) column"
    )


def _schema_file_problems(schema_path: Path, node: yaml.Node | None) -> list[Problem]:
    import jsonschema

    loc: list[int | str] = ["task", "schema"]
    try:
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return [
            Problem(format_path(loc), f"{schema_path} is not valid JSON: {exc}", line_of(node, loc))
        ]
    try:
        validator = jsonschema.validators.validator_for(schema)
        validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [
            Problem(
                format_path(loc),
                f"{schema_path} is not a valid JSON Schema: {exc.message}",
                line_of(node, loc),
            )
        ]
    return []


def _data_problems(loaded: LoadedPlan, node: yaml.Node | None) -> list[Problem]:
    plan = loaded.plan
    try:
        samples = load_samples(loaded.resolve(plan.task.data), loaded.fields)
    except DataError as exc:
        extra = [Problem("task.data", f"... and {exc.more} more")] if exc.more else []
        return [*exc.problems, *extra]
    except HeldoutError as exc:
        return [Problem("task.data", str(exc), line_of(node, ["task", "data"]))]
    loaded.samples = samples
    out: list[Problem] = []

    def missing_in(name: str) -> list[str]:
        return [s.id for s in samples if name not in s.template_fields()]

    prompt = plan.task.prompt
    # A missing prompt file is already reported by the semantic checks.
    template = "" if prompt and not loaded.resolve(prompt).is_file() else loaded.template
    for name in placeholders(template):
        ids = missing_in(name)
        if ids:
            key = "prompt" if plan.task.prompt else "template"
            out.append(
                Problem(
                    f"task.{key}",
                    f"placeholder {{{name}}} is missing in {len(ids)} sample(s), e.g. "
                    f"{', '.join(ids[:3])}; add the field to the gold set or remove it from "
                    "the template",
                    line_of(node, ["task", key]),
                )
            )
    slice_fields: list[tuple[list[int | str], str]] = [
        (["slices", i], f) for i, f in enumerate(plan.slices)
    ]
    for gi, g in enumerate(plan.guardrails):
        if isinstance(g, SliceGuardrail):
            slice_fields += [(["guardrails", gi, "slices", j], f) for j, f in enumerate(g.slices)]
    for loc, name in slice_fields:
        ids = [s.id for s in samples if name not in s.metadata]
        if ids:
            out.append(
                Problem(
                    format_path(loc),
                    f"metadata field {name!r} is missing in {len(ids)} sample(s), e.g. "
                    f"{', '.join(ids[:3])}",
                    line_of(node, loc),
                )
            )
    out += _target_problems(loaded, samples)
    out += _suite_problems(loaded, node)
    judge = loaded.plan.judge
    if judge is not None and judge.human_labels:
        from heldout.judge import read_human_labels

        labels = loaded.resolve(judge.human_labels)
        if labels.is_file():  # a missing file is reported by the semantic checks
            try:
                loaded.human_labels = read_human_labels(labels)
            except DataError as exc:
                out += exc.problems
    if judge is not None and judge.human_scores:
        from heldout.judge import read_human_scores

        scores = loaded.resolve(judge.human_scores)
        if scores.is_file():
            try:
                loaded.human_scores = read_human_scores(scores, judge.criteria())
            except DataError as exc:
                out += exc.problems
    out += _judge_trust_problems(loaded, node)
    return out


def _suite_problems(loaded: LoadedPlan, node: yaml.Node | None) -> list[Problem]:
    """Each suite file loads, and its template's placeholders are in every suite sample."""
    out: list[Problem] = []
    for i, g in enumerate(loaded.plan.guardrails):
        if not isinstance(g, SuiteGuardrail):
            continue
        if g.data is None and g.suite not in BUILTIN_SUITES:
            continue  # reported by the semantic checks
        path = loaded.resolve(g.data) if g.data else BUILTIN_SUITES[g.suite].path
        if not path.is_file():
            continue  # reported by the semantic checks
        try:
            samples = load_samples(path, FieldMap(require_target=not g.judge))
            loaded.suite_samples[g.suite] = samples
        except DataError as exc:
            out += exc.problems
            continue
        for name in placeholders(g.template):
            ids = [s.id for s in samples if name not in s.template_fields()]
            if ids:
                loc: list[int | str] = ["guardrails", i, "template"]
                out.append(
                    Problem(
                        format_path(loc),
                        f"placeholder {{{name}}} is missing in {len(ids)} sample(s) of suite "
                        f"{g.suite!r}, e.g. {', '.join(ids[:3])}",
                        line_of(node, loc),
                    )
                )
    return out


def _target_problems(loaded: LoadedPlan, samples: list[Sample]) -> list[Problem]:
    task = loaded.plan.task
    where = f"{task.data}: field {task.target_field!r}"
    out: list[Problem] = []
    if task.shape == "classification":
        bad = [s.id for s in samples if not isinstance(s.target, str)]
        if bad:
            out.append(Problem(where, f"classification targets must be strings; not in {bad[:3]}"))
        elif task.labels is not None:
            unknown = sorted({s.target for s in samples} - set(task.labels))
            if unknown:
                out.append(
                    Problem(where, f"targets {unknown[:5]} are not in task.labels {task.labels}")
                )
    elif task.shape in ("qa", "summarization", "open"):
        bad = [
            s.id
            for s in samples
            if not (
                isinstance(s.target, str)
                or (
                    isinstance(s.target, list)
                    and s.target
                    and all(isinstance(t, str) for t in s.target)
                )
            )
        ]
        if bad:
            out.append(
                Problem(
                    where,
                    f"{task.shape} targets must be a string or a list of strings; not in {bad[:3]}",
                )
            )
    elif task.shape == "extraction":
        bad = [s.id for s in samples if not isinstance(s.target, list)]
        if bad:
            out.append(
                Problem(where, f"extraction targets must be lists of spans; not in {bad[:3]}")
            )
    elif task.shape == "structured":
        bad = [s.id for s in samples if not isinstance(s.target, dict | list | str)]
        if bad:
            out.append(Problem(where, f"structured targets must be JSON objects; not in {bad[:3]}"))
    return out

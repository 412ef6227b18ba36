"""Every validation rule, with its exact message and YAML path."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from heldout.errors import PlanError
from heldout.plan import Plan, SuiteGuardrail, load_plan, referenced_files, write_lock
from heldout.suites import BUILTIN_SUITES


def _rewrite(project: Path, edit: object) -> Path:
    path = project / "heldout.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _problems(path: Path) -> dict[str, str]:
    with pytest.raises(PlanError) as info:
        load_plan(path)
    return {p.where: p.message for p in info.value.problems}


def test_starter_plan_is_valid(project: Path) -> None:
    loaded = load_plan(project / "heldout.yaml")
    assert loaded.plan.name == "support-sentiment-v1"
    assert len(loaded.samples) == 12
    assert loaded.plan.task.labels == ["positive", "negative", "neutral"]


def test_plan_round_trips_through_yaml(project: Path) -> None:
    plan = load_plan(project / "heldout.yaml").plan
    dumped = plan.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    again = Plan.model_validate(yaml.safe_load(yaml.safe_dump(dumped)))
    assert again == plan


def test_negative_max_drop_names_the_path(project: Path) -> None:
    path = _rewrite(project, lambda d: d["guardrails"][1].__setitem__("max_drop", -0.1))
    assert _problems(path) == {"guardrails[1].max_drop": "must be ≥ 0.0 (got -0.1)"}


def test_unknown_key_suggests_the_right_one(project: Path) -> None:
    path = _rewrite(project, lambda d: d["task"].__setitem__("lables", ["a"]))
    assert _problems(path) == {
        "task.lables": "unknown key (did you mean 'labels'?); remove it or fix the spelling"
    }


def test_unknown_top_level_key(project: Path) -> None:
    path = _rewrite(project, lambda d: d.__setitem__("sucess_threshold", 0.9))
    assert "sucess_threshold" in _problems(path)


def test_unknown_backend_lists_known(project: Path) -> None:
    path = _rewrite(project, lambda d: d["models"]["candidate"].__setitem__("backend", "vllm"))
    assert _problems(path) == {
        "models.candidate": "unknown backend 'vllm'; known backends: file, hf, mock, openai"
    }


def test_backend_specific_unknown_key(project: Path) -> None:
    path = _rewrite(project, lambda d: d["models"]["base"].__setitem__("adapter", "x"))
    assert "models.base.adapter" in _problems(path)


def test_guardrail_without_kind(project: Path) -> None:
    path = _rewrite(project, lambda d: d["guardrails"].append({"max_drop": 0.1}))
    assert _problems(path) == {
        "guardrails[3]": "a guardrail needs one of the keys 'suite', 'calibration', 'slices' "
        "or 'metric'; add the one this guardrail is"
    }


def test_missing_required_fields(project: Path) -> None:
    path = _rewrite(project, lambda d: d.pop("target_behavior"))
    assert _problems(path) == {
        "target_behavior": "required: add it (see heldout plan schema or heldout init)"
    }


def test_threshold_must_beat_baseline(project: Path) -> None:
    path = _rewrite(project, lambda d: d.__setitem__("success_threshold", 0.7))
    assert _problems(path) == {
        "success_threshold": "must be above baseline (0.72) because higher accuracy is "
        "better; a bar at or below the baseline is cleared by doing nothing"
    }


def test_rate_metric_bounds(project: Path) -> None:
    path = _rewrite(project, lambda d: d.__setitem__("success_threshold", 85))
    assert _problems(path) == {"success_threshold": "must be within [0, 1] for accuracy (got 85.0)"}


def test_unknown_metric_lists_metrics_of_the_shape(project: Path) -> None:
    path = _rewrite(project, lambda d: d.__setitem__("primary_metric", "acuracy"))
    msg = _problems(path)["primary_metric"]
    assert msg.startswith("unknown metric 'acuracy' for shape 'classification'; known: accuracy")


def test_metric_must_fit_shape(project: Path) -> None:
    path = _rewrite(project, lambda d: d.__setitem__("primary_metric", "exact_match"))
    assert _problems(path)["primary_metric"].startswith(
        "metric 'exact_match' does not fit shape 'classification'; use one of accuracy"
    )


def test_missing_files_are_named(project: Path) -> None:
    path = _rewrite(project, lambda d: d["task"].__setitem__("prompt", "prompts/none.txt"))
    msg = _problems(path)["task.prompt"]
    assert msg.startswith("file not found: prompts/none.txt")


def test_identical_base_and_candidate(project: Path) -> None:
    def same(d: dict[str, dict[str, object]]) -> None:
        d["models"]["candidate"] = dict(d["models"]["base"])  # type: ignore[call-overload]

    path = _rewrite(project, same)
    assert _problems(path) == {
        "models.candidate": "is identical to models.base; use two different models"
    }


def test_unknown_suite(project: Path) -> None:
    def unknown(d: dict[str, Any]) -> None:
        d["guardrails"][0].pop("data")
        d["guardrails"][0]["suite"] = "generall"

    path = _rewrite(project, unknown)
    assert _problems(path)["guardrails[0].suite"] == (
        "unknown suite 'generall' (built-in: general, instruction_following, format_obsession, "
        "multilingual, safety, over_refusal); give 'data' with a suite file in gold-set format"
    )


def test_built_in_suite_is_scored_by_its_grader(project: Path) -> None:
    def builtin(d: dict[str, Any]) -> None:
        d["guardrails"][0] = {"suite": "general", "max_drop": 0.1}

    loaded = load_plan(_rewrite(project, builtin))
    suite = loaded.plan.guardrails[0]
    assert isinstance(suite, SuiteGuardrail)
    assert suite.metric == "final_answer"
    assert referenced_files(loaded.plan)["guardrails[0].suite"] == "heldout:suites/general.jsonl"
    lock = json.loads(write_lock(loaded).read_text())
    entry = lock["files"]["guardrails[0].suite"]
    assert (
        entry["sha256"] == hashlib.sha256(BUILTIN_SUITES["general"].path.read_bytes()).hexdigest()
    )


def test_built_in_suite_with_another_metric(project: Path) -> None:
    path = _rewrite(project, lambda d: d["guardrails"][0].pop("data"))  # keeps exact_match
    assert _problems(path) == {
        "guardrails[0].metric": "the built-in suite 'general' is scored by final_answer; remove "
        "'metric', or give 'data' to score your own suite file"
    }


def test_suite_template_placeholders_are_checked(project: Path) -> None:
    def template(d: dict[str, Any]) -> None:
        d["guardrails"][0]["template"] = "Q: {question}"
        d["guardrails"].append({"suite": "safety", "max_drop": 0.1, "template": "{lang}: {input}"})

    problems = _problems(_rewrite(project, template))
    assert problems["guardrails[0].template"].startswith(
        "placeholder {question} is missing in 6 sample(s) of suite 'general', e.g. q01"
    )
    assert problems["guardrails[3].template"].startswith(
        "placeholder {lang} is missing in 80 sample(s) of suite 'safety', e.g. safety-0001"
    )


def test_malformed_suite_file_is_reported_at_validation(project: Path) -> None:
    (project / "suites" / "general.jsonl").write_text('{"id": "x", "input": "q"}\n{oops\n')
    problems = _problems(project / "heldout.yaml")
    where = next(w for w in problems if w.endswith("general.jsonl:2"))
    assert problems[where].startswith("malformed JSON at column 2")


def test_judge_human_labels_are_checked(project: Path) -> None:
    def judge(d: dict[str, Any]) -> None:
        d["judge"] = {
            "model": {"backend": "mock"},
            "rubric": ["accuracy"],
            "human_labels": "labels.jsonl",
        }

    (project / "labels.jsonl").write_text('{"id": "q01", "winner": "left"}\n')
    problems = _problems(_rewrite(project, judge))
    where = next(w for w in problems if w.endswith("labels.jsonl:1"))
    assert problems[where].startswith('needs {"id": ..., "winner": "candidate" | "base" | "tie"}')


def test_duplicate_suite_names(project: Path) -> None:
    path = _rewrite(project, lambda d: d["guardrails"][1].__setitem__("suite", "general"))
    assert _problems(path) == {
        "guardrails[1].suite": "suite name 'general' is already used by guardrails[0]; give "
        "each suite its own name"
    }


def test_unknown_suite_metric(project: Path) -> None:
    path = _rewrite(project, lambda d: d["guardrails"][0].__setitem__("metric", "exact"))
    assert _problems(path)["guardrails[0].metric"].startswith("unknown metric 'exact'; known:")


def test_template_placeholder_missing_in_samples(project: Path) -> None:
    (project / "prompts" / "classify.txt").write_text("{input} from {country}")
    assert _problems(project / "heldout.yaml") == {
        "task.prompt": "placeholder {country} is missing in 12 sample(s), e.g. g01, g02, g03; "
        "add the field to the gold set or remove it from the template"
    }


def test_slice_field_missing(project: Path) -> None:
    path = _rewrite(project, lambda d: d.__setitem__("slices", ["region"]))
    assert _problems(path) == {
        "slices[0]": "metadata field 'region' is missing in 12 sample(s), e.g. g01, g02, g03"
    }


def test_label_not_in_label_set(project: Path) -> None:
    path = _rewrite(project, lambda d: d["task"].__setitem__("labels", ["positive", "negative"]))
    problems = _problems(path)
    assert problems == {
        "data/gold.jsonl: field 'target'": "targets ['neutral'] are not in task.labels "
        "['positive', 'negative']"
    }


def test_shape_options_only_for_their_shape(project: Path) -> None:
    def to_qa(d: dict[str, object]) -> None:
        d["task"]["shape"] = "qa"  # type: ignore[index]
        d["primary_metric"] = "exact_match"
        d["guardrails"] = []

    problems = _problems(_rewrite(project, to_qa))
    assert problems["task.labels"] == "only applies to shape classification"
    assert problems["task.aliases"] == "only applies to shape classification"


def test_calibration_guardrail_needs_classification(project: Path) -> None:
    def to_qa(d: dict[str, object]) -> None:
        d["task"] = {"shape": "qa", "data": "data/gold.jsonl"}
        d["primary_metric"] = "exact_match"
        d["guardrails"].append({"calibration": "ece", "max_increase": 0.05})  # type: ignore[attr-defined]

    problems = _problems(_rewrite(project, to_qa))
    assert problems == {
        "guardrails[3].calibration": "calibration needs label probabilities: only for shape "
        "classification (or name a classification suite with 'suite')"
    }


def test_calibration_on_a_suite(project: Path) -> None:
    def add(d: dict[str, object], suite: str) -> None:
        d["guardrails"].append(  # type: ignore[attr-defined]
            {"calibration": "ece", "suite": suite, "max_increase": 0.05}
        )

    for role in ("base", "candidate"):  # the example's outputs with a stated confidence
        path = project / "predictions" / f"{role}.jsonl"
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({**r, "confidence": 0.8}) + "\n" for r in rows))
    load_plan(_rewrite(project, lambda d: add(d, "safety")))  # accuracy: classification
    problems = _problems(_rewrite(project, lambda d: add(d, "general")))
    assert problems["guardrails[4].suite"] == (
        "suite 'general' is scored with exact_match, not a classification metric: it has no "
        "label probabilities"
    )


FIX = (
    "; use an openai or hf backend, or add a 'confidence' or 'probabilities' column to its "
    "predictions"
)


def test_calibration_needs_models_that_can_supply_probabilities(project: Path) -> None:
    """The example's prediction files have text only: a calibration guardrail would be NaN
    and the verdict inconclusive at run time, so validate refuses it and says how to fix it."""
    path = _rewrite(
        project, lambda d: d["guardrails"].append({"calibration": "ece", "max_increase": 0.05})
    )
    with pytest.raises(PlanError) as info:
        load_plan(path)
    messages = [p.message for p in info.value.problems]
    assert messages == [
        "models.base cannot supply probabilities: base.jsonl has no 'confidence' (probability "
        "of the answer) or 'probabilities' ({label: p}) column" + FIX,
        "models.candidate cannot supply probabilities: candidate.jsonl has no 'confidence' "
        "(probability of the answer) or 'probabilities' ({label: p}) column" + FIX,
    ]

    def mock_base(d: dict[str, Any]) -> None:
        d["models"]["base"] = {"backend": "mock", "name": "m"}
        d["guardrails"].append({"calibration": "brier", "max_increase": 0.05})

    with pytest.raises(PlanError) as info:
        load_plan(_rewrite(project, mock_base))
    assert "models.base cannot supply probabilities: a mock backend scripts text only" + FIX in [
        p.message for p in info.value.problems
    ]


def test_duplicate_guardrails_are_refused(project: Path) -> None:
    def twice(d: dict[str, Any]) -> None:
        d["models"]["base"] = {"backend": "openai", "model": "b"}
        d["models"]["candidate"] = {"backend": "openai", "model": "c"}
        d["guardrails"] += [
            {"calibration": "ece", "max_increase": 0.05},
            {"calibration": "ece", "max_increase": 0.02},
            {"calibration": "brier", "max_increase": 0.02},
        ]

    assert _problems(_rewrite(project, twice)) == {
        "guardrails[4]": "repeats guardrails[3] (calibration ece on the gold set): one gate per "
        "measure; remove one"
    }


def test_schema_file_must_be_a_valid_json_schema(project: Path) -> None:
    (project / "schema.json").write_text('{"type": "nonsense"}')

    def to_structured(d: dict[str, object]) -> None:
        d["task"] = {"shape": "structured", "data": "data/gold.jsonl", "schema": "schema.json"}
        d["primary_metric"] = "schema_valid_rate"
        d["guardrails"] = []

    problems = _problems(_rewrite(project, to_structured))
    assert problems["task.schema"].endswith(
        "is not a valid JSON Schema: 'nonsense' is not valid under any of the given schemas"
    )


def test_every_problem_reported_at_once_with_lines(project: Path) -> None:
    text = (project / "heldout.yaml").read_text()
    text = text.replace("baseline: 0.72", "baseline: 0.72\nbaseline: 0.5")
    text = text.replace("metric: accuracy, max_drop: 0.02}", "metric: accuracy, max_drop: -1}")
    text = text.replace("primary_metric: accuracy", "primary_metric: acuracy")
    text = text.replace("labels: [", "lables: [")
    path = project / "heldout.yaml"
    path.write_text(text)
    with pytest.raises(PlanError) as info:
        load_plan(path)
    wheres = {p.where: p.line for p in info.value.problems}
    assert set(wheres) == {"baseline", "task.lables", "guardrails[1].max_drop", "primary_metric"}
    lines = text.splitlines()
    assert lines[wheres["guardrails[1].max_drop"] - 1].strip().startswith("- {suite: safety")
    assert re.search(r"4 problem\(s\) in the plan", str(info.value))


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = tmp_path / "heldout.yaml"
    path.write_text("name: x\ntask: [unclosed\n")
    with pytest.raises(PlanError) as info:
        load_plan(path)
    (problem,) = info.value.problems
    assert problem.message.startswith("YAML syntax error")
    assert problem.line is not None


def test_missing_and_empty_plan(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="plan file not found; run 'heldout init'"):
        load_plan(tmp_path / "nope.yaml")
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    with pytest.raises(PlanError, match="the plan is empty"):
        load_plan(tmp_path / "empty.yaml")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(PlanError, match="must be a mapping, got list"):
        load_plan(tmp_path / "list.yaml")


def test_gold_set_problems_surface_in_validation(project: Path) -> None:
    gold = project / "data" / "gold.jsonl"
    gold.write_text(gold.read_text() + '{"id": "g01", "input": "x", "target": "positive"}\n')
    problems = _problems(project / "heldout.yaml")
    (where,) = problems
    assert where.endswith("gold.jsonl:13: field 'id'")
    assert problems[where].startswith("duplicate id 'g01' (first at")


PLUGIN = '''
import numpy as np
from heldout import metric, MetricResult


@metric("polite_rate", shapes=["classification"], higher_is_better=True)
def polite_rate(y_true, y_pred, *, options):
    """Share of outputs that say please."""
    v = np.array([float("please" in p.lower()) for p in y_pred])
    return MetricResult("polite_rate", float(v.mean()), v)
'''


def test_custom_metric_from_a_plugin_file(project: Path) -> None:
    (project / "my_metrics.py").write_text(PLUGIN)

    def use_plugin(d: dict[str, object]) -> None:
        d["plugins"] = ["my_metrics.py"]
        d["primary_metric"] = "polite_rate"

    loaded = load_plan(_rewrite(project, use_plugin))
    assert loaded.plan.primary_metric == "polite_rate"
    from heldout.metrics import get_metric
    from heldout.plan import referenced_files

    assert get_metric("polite_rate")(["a"], ["Please do"]).aggregate == 1.0
    assert referenced_files(loaded.plan)["plugins[0]"] == "my_metrics.py"
    load_plan(project / "heldout.yaml")  # loading twice does not re-register


def test_broken_plugin_is_a_problem(project: Path) -> None:
    (project / "broken.py").write_text("raise RuntimeError('boom')\n")
    path = _rewrite(project, lambda d: d.__setitem__("plugins", ["broken.py", "no_such_mod"]))
    problems = _problems(path)
    assert problems["plugins[0]"].startswith("importing 'broken.py' failed: RuntimeError: boom")
    assert problems["plugins[1]"].startswith("importing 'no_such_mod' failed: ModuleNotFoundError")

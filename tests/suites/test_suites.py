"""Built-in suites: frozen files, satisfiable items, graders that tell good from bad."""

from __future__ import annotations

import json
from typing import Any

import pytest

from heldout.data import load_samples
from heldout.errors import UnknownNameError
from heldout.metrics import get_metric
from heldout.suites import BUILTIN_SUITES, builtin_suite, builtin_suite_file
from heldout.suites._build import BUILDERS, render


def _samples(name: str) -> list[Any]:
    return load_samples(builtin_suite(name).path)


def test_committed_files_are_exactly_what_the_builder_makes() -> None:
    assert set(BUILDERS) == set(BUILTIN_SUITES)
    for name, suite in BUILTIN_SUITES.items():
        assert suite.path.read_text(encoding="utf-8") == render(name), (
            f"{suite.path} differs from heldout.suites._build: rebuild it and bump the version"
        )


@pytest.mark.parametrize("name", sorted(BUILTIN_SUITES))
def test_suite_loads_with_unique_ids_and_its_size_is_as_described(name: str) -> None:
    samples = _samples(name)
    assert len({s.id for s in samples}) == len(samples)
    assert str(len(samples)) in BUILTIN_SUITES[name].description
    get_metric(BUILTIN_SUITES[name].metric)  # its grader is registered


def test_prompts_are_distinct_within_and_across_suites() -> None:
    inputs = [s.input for name in BUILTIN_SUITES for s in _samples(name)]
    assert len(set(inputs)) == len(inputs)


def test_unknown_suite_lists_the_built_in_ones() -> None:
    with pytest.raises(UnknownNameError, match="general, instruction_following"):
        builtin_suite("generall")
    assert builtin_suite_file("data/x.jsonl") is None
    assert builtin_suite_file("heldout:suites/safety.jsonl") == BUILTIN_SUITES["safety"].path
    assert BUILTIN_SUITES["safety"].reference == "heldout:suites/safety.jsonl"


def test_general_targets_pass_and_wrong_answers_fail() -> None:
    samples = _samples("general")
    targets = [s.target for s in samples]
    grade = get_metric("final_answer")
    assert grade(targets, targets).aggregate == 1.0
    chatty = [f"Let me think. The answer is {t}." for t in targets]
    assert grade(targets, chatty).aggregate == 1.0
    assert grade(targets, ["I do not know."] * len(targets)).aggregate == 0.0
    # an answer that only contains the target inside a longer number is wrong
    arithmetic = [s for s in samples if s.metadata["skill"] == "arithmetic"]
    assert (
        grade([s.target for s in arithmetic], ["1" + s.target for s in arithmetic]).aggregate == 0
    )


def _comply(constraints: list[dict[str, Any]]) -> str:
    """A reply that meets every constraint (so every item is satisfiable)."""
    kinds = {c["type"]: c.get("value") for c in constraints}
    if "json_keys" in kinds:
        text = _comply([c for c in constraints if c["type"] != "json_keys"] or [{"type": "x"}])
        return "```json\n" + json.dumps(dict.fromkeys(kinds["json_keys"], text)) + "\n```"
    if "one_word" in kinds:
        return "Indoors."
    if "single_number" in kinds:
        return "6"
    if "comma_list" in kinds:
        return ", ".join(["warmth", "water", "steam", "light"][: kinds["comma_list"]])
    first = "Here is a clear answer"
    if "include" in kinds:
        first += " with the word " + " ".join(kinds["include"])
    if "min_words" in kinds:
        first += " and" + " more" * kinds["min_words"]
    if "bullets" in kinds:
        parts = [f"- {first}"] + [f"- Point {i}" for i in range(2, kinds["bullets"] + 1)]
        body = "\n".join(parts)
    elif "paragraphs" in kinds:
        body = "\n***\n".join(
            [first + "."] + [f"Part {i}." for i in range(2, kinds["paragraphs"] + 1)]
        )
    else:
        body = first + "."
    if "title" in kinds:
        body = "<<Answer>>\n" + body
    if "end_with" in kinds:
        body += " " + kinds["end_with"]
    if "quoted" in kinds:
        body = f'"{body}"'
    if "lowercase" in kinds:
        body = body.lower()
    if "uppercase" in kinds:
        body = body.upper()
    return body


@pytest.mark.parametrize("name", ["instruction_following", "format_obsession"])
def test_every_constraint_item_is_satisfiable_and_graded(name: str) -> None:
    samples = _samples(name)
    targets = [s.target for s in samples]
    grade = get_metric("follows_instructions")
    good = grade(targets, [_comply(t) for t in targets])
    failing = [s.id for s, v in zip(samples, good.per_sample, strict=True) if v != 1]
    assert not failing, failing[:5]
    assert good.details["by_constraint"]["max_words"]["rate"] == 1.0


def test_format_obsession_catches_a_model_that_always_answers_in_json() -> None:
    samples = _samples("format_obsession")
    targets = [s.target for s in samples]
    got = get_metric("follows_instructions")(targets, ['{"label": "positive"}'] * len(samples))
    assert got.aggregate == 0.0


def test_refusal_graders_on_the_safety_suites() -> None:
    harmful = [s.target for s in _samples("safety")]
    refuse = ["I'm sorry, but I can't help with that."] * len(harmful)
    comply = ["Sure. First, gather the following materials."] * len(harmful)
    assert get_metric("refusal_rate")(harmful, refuse).aggregate == 1.0
    assert get_metric("refusal_rate")(harmful, comply).aggregate == 0.0
    benign = [s.target for s in _samples("over_refusal")]
    helpful = ["Use `kill -9 <pid>` after finding the id with `ps`."] * len(benign)
    assert get_metric("compliance_rate")(benign, helpful).aggregate == 1.0
    refusal = ["I cannot assist with that request."] * len(benign)
    assert get_metric("compliance_rate")(benign, refusal).aggregate == 0.0


def test_multilingual_prompts_are_in_their_language() -> None:
    from langdetect import DetectorFactory, detect

    from heldout.metrics.graders import detect_language

    DetectorFactory.seed = 0
    samples = _samples("multilingual")
    assert {s.target for s in samples} == {"fr", "de", "es", "it", "pt", "nl"}
    for s in samples:
        assert detect(s.input) == s.target, s.input  # an independent detector agrees
        assert detect_language(s.input) in (s.target, None), s.input  # ours: never wrong
    english = get_metric("language_match")([s.target for s in samples], ["The sky is blue."] * 120)
    assert english.aggregate == 0.0

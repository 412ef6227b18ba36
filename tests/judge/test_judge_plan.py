"""What the plan says about the judge, checked by ``heldout plan validate`` through the real
console script: a judge guardrail must name something the judge measures, and can gate only
on what people labelled; every mistake is exit 2 with the field and the fix, no traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.test_cli_contract import cli
from tests.judge.test_rubric_run import write_project

URL = "http://127.0.0.1:9/v1"  # never contacted: validation reads no model


def _edit(root: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = root / "heldout.yaml"
    plan = yaml.safe_load(path.read_text())
    change(plan)
    path.write_text(yaml.safe_dump(plan, sort_keys=False, width=1000))


def _guard(*guards: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def change(plan: dict[str, Any]) -> None:
        plan["guardrails"] = list(guards)

    return change


def _judge(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(plan: dict[str, Any]) -> None:
        for k, v in fields.items():
            if v is None:
                plan["judge"].pop(k, None)
            else:
                plan["judge"][k] = v

    return change


def _both(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(plan: dict[str, Any]) -> None:
        for c in changes:
            c(plan)

    return change


CASES = [
    ("unknown criterion", _guard({"judge": "style", "max_drop": 0.1}),
     "guardrails[0].judge: 'style' is not a rubric criterion (accuracy, tone), 'overall' or "
     "'win_rate'"),
    ("win rate without pairwise", _guard({"judge": "win_rate", "max_drop": 0.1}),
     "win_rate needs pairwise judging: set judge.mode to pairwise or both"),
    ("win rate without people", _both(_judge(mode="both"), _guard({"judge": "win_rate", "max_drop": 0.1})),
     "cannot gate on win_rate: the judge is not calibrated (no judge.human_labels)"),
    ("criterion without people", _both(_judge(human_scores=None), _guard({"judge": "accuracy", "max_drop": 0.1})),
     "cannot gate on 'accuracy': the judge is not calibrated on accuracy (no human scores; give "
     "judge.human_scores)"),
    ("rubric needs rubric mode", _both(_judge(mode="pairwise"), _guard({"judge": "tone", "max_drop": 0.1})),
     "'tone' needs rubric scores: set judge.mode to rubric or both"),
    ("judged suite criterion", _guard({"suite": "chat", "data": "gold.jsonl", "judge": ["helpful"], "max_drop": 0.1}),
     "guardrails[0].judge[0]: 'helpful' is not a rubric criterion (accuracy, tone)"),
    ("judged suite and metric", _guard({"suite": "chat", "data": "gold.jsonl", "judge": ["accuracy"], "metric": "exact_match", "max_drop": 0.1}),
     "a judged suite is scored by the judge: give either metric or judge"),
    ("duplicate criteria", _judge(rubric=["accuracy", {"name": "accuracy"}]),
     "criterion names must be unique"),
    ("reserved name", _judge(rubric=["overall"]), "'overall' is reserved"),
    ("reversed scale", _judge(rubric=[{"name": "accuracy", "scale": [5, 1]}]),
     "scale is the lowest and the highest score"),
    ("bad criterion name", _judge(rubric=[{"name": "acc{uracy}"}]), "judge.rubric"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan_validate_says_what_is_wrong_with_the_judge(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    write_project(tmp_path, URL)
    _edit(tmp_path, change)
    r = cli("plan", "validate", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in " ".join((r.stdout + r.stderr).split()), r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def test_uncalibrated_overall_names_the_missing_criterion(tmp_path: Path) -> None:
    write_project(tmp_path, URL)
    human = tmp_path / "human.jsonl"
    human.write_text("".join(line.replace(', "tone": ', ', "x": ').split(', "x"')[0] + "}}\n"
                             for line in human.read_text().splitlines()))  # fmt: skip
    _edit(tmp_path, _guard({"judge": "overall", "max_drop": 0.1}))
    r = cli("plan", "validate", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "cannot gate on 'overall': the judge is not calibrated on tone" in r.stderr


def test_a_bad_human_scores_line_is_named(tmp_path: Path) -> None:
    write_project(tmp_path, URL)
    human = tmp_path / "human.jsonl"
    lines = human.read_text().splitlines()
    lines[1] = '{"id": "g1", "scores": {"accuracy": 7}}'
    human.write_text("\n".join(lines) + "\n")
    r = cli("plan", "validate", cwd=tmp_path)
    assert r.returncode == 2
    assert "human.jsonl:2: accuracy: 7 is not an integer on 1..5" in r.stderr


def test_plan_validate_says_what_a_judge_guardrail_needs_to_gate(tmp_path: Path) -> None:
    write_project(tmp_path, URL)
    _edit(
        tmp_path,
        _guard(
            {"judge": "accuracy", "max_drop": 0.1},
            {"suite": "chat", "data": "chat.jsonl", "judge": ["accuracy"], "max_drop": 0.08},
        ),
    )
    (tmp_path / "chat.jsonl").write_text('{"id": "c1", "input": "Say hi."}\n')  # no target
    r = cli("plan", "validate", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    said = " ".join(r.stdout.split())
    assert (
        "guardrail judge accuracy: gates only if the judge reaches agreement ≥ 80% with the 39 "
        "human scores of accuracy (checked at run time; otherwise reported, not gated)"
    ) in said
    assert "guardrail suite chat: n=1, scored by the judge on accuracy" in said

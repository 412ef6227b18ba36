"""The example plans in examples/ stay valid against the plan schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from heldout.plan import Plan

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_plan_is_schema_valid(path: Path) -> None:
    plan = Plan.model_validate(yaml.safe_load(path.read_text()))
    assert plan.models.base != plan.models.candidate


def test_every_plan_field_is_documented() -> None:
    import inspect

    from heldout.plan import _model

    for _, cls in inspect.getmembers(_model, inspect.isclass):
        if cls.__module__ == _model.__name__ and hasattr(cls, "model_fields"):
            for name, info in cls.model_fields.items():
                assert info.description, f"{cls.__name__}.{name} has no description"

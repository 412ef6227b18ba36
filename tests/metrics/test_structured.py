"""Structured-output metrics against jsonschema and hand-computed values."""

from __future__ import annotations

import json

import jsonschema
import pytest

from heldout.errors import MetricInputError
from heldout.metrics import MetricOptions, get_metric
from heldout.metrics.structured import extract_first_json

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "city": {"type": "string"}},
    "required": ["name", "city"],
    "additionalProperties": False,
}
TARGETS = [{"name": "Ana", "city": "Porto"}] * 6
OUTPUTS = [
    '{"name": "Ana", "city": "Porto"}',
    '  {"name": "Ana", "city": "porto"}\n',
    '```json\n{"name": "Ana", "city": "Porto"}\n```',
    'Sure! {"name": "Ana"} hope that helps',
    '{"name": "Ana", "city": "Porto", "age": 3}',
    "not json at all",
]


def test_first_try_means_raw_output() -> None:
    result = get_metric("json_valid_rate")(TARGETS, OUTPUTS, options=MetricOptions())
    assert result.per_sample.tolist() == [1, 1, 0, 0, 1, 0]


def test_extraction_is_opt_in() -> None:
    opts = MetricOptions(extract_json=True)
    result = get_metric("json_valid_rate")(TARGETS, OUTPUTS, options=opts)
    assert result.per_sample.tolist() == [1, 1, 1, 1, 1, 0]
    assert extract_first_json("x [1, 2] {") == [1, 2]


@pytest.mark.parametrize("extract", [False, True])
def test_schema_valid_matches_jsonschema(extract: bool) -> None:
    opts = MetricOptions(schema=SCHEMA, extract_json=extract)
    result = get_metric("schema_valid_rate")(TARGETS, OUTPUTS, options=opts)
    expected = []
    for out in OUTPUTS:
        try:
            value = extract_first_json(out) if extract else json.loads(out)
        except ValueError:
            expected.append(0.0)
            continue
        expected.append(float(jsonschema.Draft202012Validator(SCHEMA).is_valid(value)))
    assert result.per_sample.tolist() == expected


def test_field_accuracy_modes() -> None:
    fa = get_metric("field_accuracy")
    result = fa(TARGETS, OUTPUTS, options=MetricOptions())
    assert result.per_sample.tolist() == [1.0, 0.5, 0.0, 0.0, 1.0, 0.0]
    opts = MetricOptions(extra={"fields": {"city": {"match": "normalized"}}})
    assert fa(TARGETS, OUTPUTS, options=opts).per_sample.tolist()[1] == 1.0
    num = MetricOptions(extra={"fields": {"price": {"match": "numeric", "tolerance": 0.01}}})
    r = fa(
        [{"price": 9.99}] * 3,
        ['{"price": 10.0}', '{"price": 10.5}', '{"price": "9.99"}'],
        options=num,
    )
    assert r.per_sample.tolist() == [1.0, 0.0, 0.0]


def test_field_f1_for_optional_fields() -> None:
    targets = [{"a": 1, "b": None}, {"a": 1, "b": 2}, {}]
    outputs = ['{"a": 1, "b": 5}', '{"a": 1}', "{}"]
    r = get_metric("field_f1")(targets, outputs, options=MetricOptions())
    # tp=2, predicted=3 (a, b, a), expected=3 (a, a, b) → F1 = 4/6
    assert r.aggregate == pytest.approx(4 / 6)
    assert r.per_sample.tolist() == pytest.approx([2 / 3, 2 / 3, 1.0])


def test_bad_inputs() -> None:
    with pytest.raises(MetricInputError, match="needs a JSON Schema"):
        get_metric("schema_valid_rate")(TARGETS, OUTPUTS, options=MetricOptions())
    with pytest.raises(MetricInputError, match="invalid JSON Schema"):
        get_metric("schema_valid_rate")(
            TARGETS, OUTPUTS, options=MetricOptions(schema={"type": 12})
        )
    with pytest.raises(MetricInputError, match="target 0 must be a JSON object"):
        get_metric("field_accuracy")([[1]], ["{}"], options=MetricOptions())
    with pytest.raises(MetricInputError, match="not a string"):
        get_metric("json_valid_rate")([{}], [{"a": 1}], options=MetricOptions())

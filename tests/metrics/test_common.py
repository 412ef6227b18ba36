"""Properties every registered metric must have (add a metric, get these tests for free)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from heldout.errors import HeldoutError, MetricInputError, UnknownNameError
from heldout.metrics import MetricOptions, get_metric, metric, metric_names

Case = tuple[list[Any], list[Any], list[Any], MetricOptions]  # targets, preds, perfect, options
LABELS = ("yes", "no", "maybe")
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def _classification(rng: random.Random, n: int) -> Case:
    t = [rng.choice(LABELS) for _ in range(n)]
    p = [rng.choice([*LABELS, "dunno", "It is yes."]) for _ in range(n)]
    return t, p, list(t), MetricOptions(labels=LABELS)


def _qa(rng: random.Random, n: int) -> Case:
    words = ["paris", "the tower", "1889", "Eiffel", "iron"]
    t = [rng.choice(words) for _ in range(n)]
    p = [rng.choice(words) for _ in range(n)]
    return t, p, list(t), MetricOptions()


def _summarization(rng: random.Random, n: int) -> Case:
    words = "Acme reported 3 new deals in Paris while markets fell sharply".split()
    t = [" ".join(rng.choices(words, k=rng.randint(3, 10))) for _ in range(n)]
    p = [" ".join(rng.choices(words, k=rng.randint(3, 10))) for _ in range(n)]
    return t, p, list(t), MetricOptions(inputs=list(t))


def _structured(rng: random.Random, n: int) -> Case:
    t = [{"a": rng.randint(0, 3), "b": rng.choice(["x", None])} for _ in range(n)]
    p = [rng.choice(['{"a": 1}', '{"a": 2, "b": "x"}', "nope", '{"a": "1"}']) for _ in range(n)]
    return t, p, [json.dumps(x) for x in t], MetricOptions(schema=SCHEMA)


def _extraction(rng: random.Random, n: int) -> Case:
    def spans() -> list[list[str]]:
        return [
            [rng.choice(["PER", "LOC"]), rng.choice(["Ana", "Porto", "Bob"])]
            for _ in range(rng.randint(0, 3))
        ]

    t = [spans() for _ in range(n)]
    p = [json.dumps(spans()) for _ in range(n)]
    return t, p, [json.dumps(x) for x in t], MetricOptions()


MAKERS: dict[str, Callable[[random.Random, int], Case]] = {
    "classification": _classification,
    "qa": _qa,
    "summarization": _summarization,
    "structured": _structured,
    "extraction": _extraction,
}
METRICS = [n for n in metric_names() if get_metric(n).shapes & set(MAKERS)]


def _case(name: str, seed: int, n: int = 40) -> Case:
    shape = sorted(get_metric(name).shapes & set(MAKERS))[0]
    return MAKERS[shape](random.Random(seed), n)


def test_every_builtin_shape_has_metrics() -> None:
    for shape in ("classification", "extraction", "qa", "summarization", "structured"):
        assert metric_names(shape), shape


@pytest.mark.parametrize("name", METRICS)
def test_sample_order_invariance(name: str) -> None:
    spec = get_metric(name)
    t, p, _, opts = _case(name, 1)
    base = spec(t, p, options=opts)
    perm = np.random.default_rng(0).permutation(len(t))
    inputs = [opts.inputs[i] for i in perm] if opts.inputs is not None else None
    shuffled = spec(
        [t[i] for i in perm],
        [p[i] for i in perm],
        options=MetricOptions(
            labels=opts.labels, schema=opts.schema, extra=opts.extra, inputs=inputs
        ),
    )
    assert shuffled.aggregate == pytest.approx(base.aggregate, abs=1e-12)
    np.testing.assert_allclose(shuffled.per_sample, base.per_sample[perm])


@pytest.mark.parametrize("name", METRICS)
def test_per_sample_values_aggregate(name: str) -> None:
    spec = get_metric(name)
    t, p, _, opts = _case(name, 2)
    result = spec(t, p, options=opts)
    assert result.per_sample.shape == (len(t),)
    assert result.name == name
    if spec.bounds is not None:
        lo, hi = spec.bounds
        assert lo <= result.aggregate <= hi
        assert np.all((result.per_sample >= lo) & (result.per_sample <= hi))
    if spec.mean_of_samples:
        assert result.aggregate == pytest.approx(float(result.per_sample.mean()), abs=1e-12)


@pytest.mark.parametrize("name", METRICS)
def test_perfect_predictions_score_best(name: str) -> None:
    spec = get_metric(name)
    t, _, perfect, opts = _case(name, 3)
    result = spec(t, perfect, options=opts)
    assert spec.bounds is not None
    best = spec.bounds[1] if spec.higher_is_better else spec.bounds[0]
    assert result.aggregate == pytest.approx(best)


@pytest.mark.parametrize("name", METRICS)
def test_empty_input_raises(name: str) -> None:
    with pytest.raises(MetricInputError):
        get_metric(name)([], [], options=MetricOptions(labels=LABELS, schema=SCHEMA, inputs=[]))


@pytest.mark.parametrize("name", METRICS)
def test_length_mismatch_raises(name: str) -> None:
    t, p, _, opts = _case(name, 4)
    with pytest.raises(MetricInputError):
        get_metric(name)(t, p[:-1], options=opts)


def test_unknown_metric_lists_known() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown metric 'acuracy'; known: .*accuracy"):
        get_metric("acuracy")


def test_custom_metric_registration() -> None:
    @metric("test_length_ratio", shapes=["open", "qa"], higher_is_better=False, bounds=None)
    def length_ratio(y_true: Any, y_pred: Any, *, options: MetricOptions) -> Any:
        """Output length over reference length."""
        from heldout.metrics import MetricResult

        v = np.array([len(p) / max(len(t), 1) for t, p in zip(y_true, y_pred, strict=True)])
        return MetricResult("test_length_ratio", float(v.mean()), v)

    spec = get_metric("test_length_ratio")
    assert spec.description == "Output length over reference length."
    assert "test_length_ratio" in metric_names("qa")
    assert spec(["ab"], ["abcd"]).aggregate == 2.0


def test_bad_registrations_fail_at_decoration() -> None:
    with pytest.raises(HeldoutError, match="already registered"):
        metric("accuracy", shapes=["classification"], higher_is_better=True)(
            lambda y_true, y_pred, *, options: None  # type: ignore[arg-type,return-value]
        )
    with pytest.raises(HeldoutError, match="shapes must be a non-empty subset"):
        metric("x_metric", shapes=["vision"], higher_is_better=True)(
            lambda y_true, y_pred, *, options: None  # type: ignore[arg-type,return-value]
        )
    with pytest.raises(HeldoutError, match=r"must take \(y_true, y_pred, \*, options\)"):
        metric("y_metric", shapes=["qa"], higher_is_better=True)(
            lambda y_true, y_pred: None  # type: ignore[arg-type,return-value]
        )


@pytest.mark.parametrize("name", METRICS)
def test_resample_recomputes_the_aggregate(name: str) -> None:
    """Resampling rows must equal calling the metric on the resampled samples."""
    spec = get_metric(name)
    t, p, _, opts = _case(name, 5, n=30)
    result = spec(t, p, options=opts)
    identity = np.arange(len(t))[None, :]
    assert result.resample(identity)[0] == pytest.approx(result.aggregate, abs=1e-12)
    idx = np.random.default_rng(1).integers(0, len(t), size=(4, len(t)))
    for row, value in zip(idx, result.resample(idx), strict=True):
        inputs = [opts.inputs[i] for i in row] if opts.inputs is not None else None
        again = spec(
            [t[i] for i in row],
            [p[i] for i in row],
            options=MetricOptions(
                labels=opts.labels, schema=opts.schema, extra=opts.extra, inputs=inputs
            ),
        )
        assert value == pytest.approx(again.aggregate, abs=1e-12)

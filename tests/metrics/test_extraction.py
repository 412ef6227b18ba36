"""Span metrics against seqeval (BIO tags) and a hand-computed table."""

from __future__ import annotations

import json
import random

import pytest
from seqeval.metrics import classification_report as seqeval_report

from heldout.errors import MetricInputError
from heldout.metrics import MetricOptions, get_metric

TYPES = ["PER", "LOC", "ORG"]


def _random_spans(rng: random.Random, n_tokens: int) -> list[dict[str, object]]:
    spans, i = [], 0
    while i < n_tokens:
        if rng.random() < 0.3:
            length = rng.randint(1, 3)
            end = min(n_tokens, i + length)
            spans.append({"type": rng.choice(TYPES), "start": i, "end": end})
            i = end
        else:
            i += 1
    return spans


def _bio(spans: list[dict[str, object]], n: int) -> list[str]:
    tags = ["O"] * n
    for s in spans:
        start, end, kind = int(s["start"]), int(s["end"]), str(s["type"])  # type: ignore[call-overload]
        tags[start] = f"B-{kind}"
        for k in range(start + 1, end):
            tags[k] = f"I-{kind}"
    return tags


@pytest.mark.parametrize("seed", range(5))
def test_matches_seqeval(seed: int) -> None:
    rng = random.Random(seed)
    y_true, y_pred, bio_true, bio_pred = [], [], [], []
    for _ in range(60):
        n = rng.randint(3, 25)
        gold = _random_spans(rng, n)
        pred = gold if rng.random() < 0.3 else _random_spans(rng, n)
        y_true.append(gold)
        y_pred.append(json.dumps(pred))
        bio_true.append(_bio(gold, n))
        bio_pred.append(_bio(pred, n))
    expected = seqeval_report(bio_true, bio_pred, output_dict=True, zero_division=0)
    f1 = get_metric("span_f1")(y_true, y_pred, options=MetricOptions())
    p = get_metric("span_precision")(y_true, y_pred, options=MetricOptions())
    r = get_metric("span_recall")(y_true, y_pred, options=MetricOptions())
    assert f1.aggregate == pytest.approx(expected["micro avg"]["f1-score"], abs=1e-12)
    assert p.aggregate == pytest.approx(expected["micro avg"]["precision"], abs=1e-12)
    assert r.aggregate == pytest.approx(expected["micro avg"]["recall"], abs=1e-12)
    for kind, row in f1.details["per_type"].items():
        if kind in expected:
            assert row["f1"] == pytest.approx(expected[kind]["f1-score"], abs=1e-12)
            assert row["support"] == expected[kind]["support"]


def test_text_spans_hand_computed() -> None:
    y_true = [[["PER", "Ana"], ["LOC", "Porto"]], [["ORG", "ACME  Corp"]], []]
    y_pred = [
        '[["PER", "Ana"], ["LOC", "Lisbon"]]',
        '[{"type": "ORG", "text": "ACME Corp"}, ["PER", "Bob"]]',
        "I found nothing",
    ]
    r = get_metric("span_f1")(y_true, y_pred, options=MetricOptions())
    # tp = 2 (Ana, ACME Corp), predicted = 4, gold = 3 → P 1/2, R 2/3, F1 4/7
    assert r.aggregate == pytest.approx(4 / 7)
    assert r.per_sample.tolist() == pytest.approx([0.5, 2 / 3, 1.0])
    assert r.details["n_unparseable"] == 1
    assert r.details["per_type"]["PER"] == {
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
        "support": 1,
    }


def test_partial_overlap_mode() -> None:
    y_true = [[{"type": "PER", "start": 0, "end": 3}, {"type": "LOC", "start": 5, "end": 7}]]
    y_pred = ['[{"type": "PER", "start": 1, "end": 4}, {"type": "PER", "start": 5, "end": 7}]']
    exact = get_metric("span_f1")(y_true, y_pred, options=MetricOptions())
    partial = get_metric("span_f1")(
        y_true, y_pred, options=MetricOptions(extra={"match": "partial"})
    )
    assert exact.aggregate == 0.0
    assert partial.aggregate == pytest.approx(0.5)  # PER overlaps; LOC vs PER has wrong type


def test_bad_inputs() -> None:
    f1 = get_metric("span_f1")
    with pytest.raises(MetricInputError, match=r"target 0\[0\]: offsets must be integers"):
        f1([[{"type": "PER", "start": 3, "end": 1}]], ["[]"])
    with pytest.raises(MetricInputError, match="target 0: expected a list of spans"):
        f1([{"type": "PER"}], ["[]"])
    with pytest.raises(MetricInputError, match="unknown span match 'fuzzy'"):
        f1([[]], ["[]"], options=MetricOptions(extra={"match": "fuzzy"}))
    with pytest.raises(MetricInputError, match="prediction 0 is int"):
        f1([[]], [3])

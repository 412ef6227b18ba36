"""Span metrics against seqeval (BIO tags) and a hand-computed table."""

from __future__ import annotations

import json
import random
from pathlib import Path

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
    per = r.details["per_type"]["PER"]
    assert {k: per[k] for k in ("precision", "recall", "f1", "support")} == {
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
        "support": 1,
    }
    assert (per["correct"], per["spurious"]) == (1, 1)
    assert r.details["counts"] == {
        "correct": 2,
        "incorrect": 0,
        "partial": 0,
        "missed": 1,
        "spurious": 2,
        "tp": 2,
        "fp": 2,
        "fn": 1,
    }


def test_type_scheme_counts_same_type_overlap() -> None:
    y_true = [[{"type": "PER", "start": 0, "end": 3}, {"type": "LOC", "start": 5, "end": 7}]]
    y_pred = ['[{"type": "PER", "start": 1, "end": 4}, {"type": "PER", "start": 5, "end": 7}]']
    exact = get_metric("span_f1")(y_true, y_pred, options=MetricOptions())
    partial = get_metric("span_f1")(
        y_true, y_pred, options=MetricOptions(extra={"span_match": "type"})
    )
    assert exact.aggregate == 0.0
    assert partial.aggregate == pytest.approx(0.5)  # PER overlaps; LOC vs PER has wrong type


def test_bad_inputs() -> None:
    f1 = get_metric("span_f1")
    with pytest.raises(MetricInputError, match=r"target 0\[0\]: offsets must be integers"):
        f1([[{"type": "PER", "start": 3, "end": 1}]], ["[]"])
    with pytest.raises(MetricInputError, match="target 0: expected a list of spans"):
        f1([{"type": "PER"}], ["[]"])
    with pytest.raises(MetricInputError, match="unknown span match 'fuzzy'; known: strict, exact"):
        f1([[]], ["[]"], options=MetricOptions(extra={"span_match": "fuzzy"}))
    with pytest.raises(MetricInputError, match="prediction 0 is int"):
        f1([[]], [3])


NERVALUATE = {"strict": "strict", "exact": "exact", "partial": "partial", "type": "ent_type"}


def _overlapping_spans(rng: random.Random, n_tokens: int) -> list[dict[str, object]]:
    """Random spans that may overlap, nest and share boundaries (what models produce)."""
    spans = []
    for _ in range(rng.randint(0, 5)):
        start = rng.randrange(n_tokens)
        spans.append(
            {
                "type": rng.choice(TYPES),
                "start": start,
                "end": min(n_tokens, start + rng.randint(1, 4)),
            }
        )
    unique = {(s["type"], s["start"], s["end"]): s for s in spans}
    return sorted(unique.values(), key=lambda s: (s["start"], s["end"], s["type"]))  # type: ignore[return-value]


@pytest.mark.parametrize("scheme", list(NERVALUATE))
@pytest.mark.parametrize("seed", range(4))
def test_schemes_match_nervaluate(scheme: str, seed: int) -> None:
    """Oracle: nervaluate's Evaluator on the same spans (inclusive ends there), all four
    schemes, overall and per type, including the correct/incorrect/partial/missed/spurious
    counts."""
    from nervaluate import Evaluator

    rng = random.Random(100 + seed)
    y_true, y_pred = [], []
    for _ in range(80):
        n = rng.randint(4, 20)
        gold = _overlapping_spans(rng, n)
        pred = gold if rng.random() < 0.3 else _overlapping_spans(rng, n)
        y_true.append(gold)
        y_pred.append(json.dumps(pred))

    def inclusive(doc: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{"label": s["type"], "start": s["start"], "end": int(s["end"]) - 1} for s in doc]  # type: ignore[call-overload]

    results = Evaluator(
        [inclusive(d) for d in y_true],
        [inclusive(json.loads(p)) for p in y_pred],
        tags=TYPES,
        loader="dict",
    ).evaluate()
    overall, by_tag = results["overall"][NERVALUATE[scheme]], results["entities"]
    opts = MetricOptions(extra={"span_match": scheme})
    f1 = get_metric("span_f1")(y_true, y_pred, options=opts)
    p = get_metric("span_precision")(y_true, y_pred, options=opts)
    r = get_metric("span_recall")(y_true, y_pred, options=opts)
    assert f1.aggregate == pytest.approx(overall.f1, abs=1e-12)
    assert p.aggregate == pytest.approx(overall.precision, abs=1e-12)
    assert r.aggregate == pytest.approx(overall.recall, abs=1e-12)
    counts = f1.details["counts"]
    assert [counts[k] for k in ("correct", "incorrect", "partial", "missed", "spurious")] == [
        overall.correct,
        overall.incorrect,
        overall.partial,
        overall.missed,
        overall.spurious,
    ]
    for tag, row in f1.details["per_type"].items():
        ref = by_tag[tag][NERVALUATE[scheme]]
        assert row["f1"] == pytest.approx(ref.f1, abs=1e-12), tag
        assert row["correct"] == ref.correct
    macro = get_metric("span_macro_f1")(y_true, y_pred, options=opts)
    assert macro.aggregate == pytest.approx(
        sum(by_tag[t][NERVALUATE[scheme]].f1 for t in f1.details["per_type"])
        / len(f1.details["per_type"]),
        abs=1e-12,
    )
    untyped = get_metric("span_untyped_f1")(y_true, y_pred, options=opts)
    assert untyped.aggregate == pytest.approx(results["overall"]["exact"].f1, abs=1e-12)


def test_per_sample_precision_and_recall_are_their_own() -> None:
    """The reported defect: span_precision and span_recall per sample held each sample's F1."""
    y_true = [[["PER", "Ana"], ["LOC", "Porto"]], [["ORG", "X"]], []]
    y_pred = ['[["PER", "Ana"]]', '[["ORG", "X"], ["PER", "Y"], ["LOC", "Z"]]', "[]"]
    p = get_metric("span_precision")(y_true, y_pred, options=MetricOptions())
    r = get_metric("span_recall")(y_true, y_pred, options=MetricOptions())
    assert p.per_sample.tolist() == pytest.approx([1.0, 1 / 3, 1.0])
    assert r.per_sample.tolist() == pytest.approx([0.5, 1.0, 1.0])


def test_file_predictions_may_hold_span_lists_as_json_arrays(tmp_path: Path) -> None:
    """Prediction files may carry the spans as real JSON arrays, not JSON-encoded strings."""
    from heldout.backends._file import read_predictions
    from heldout.plan import FileModel

    path = tmp_path / "preds.jsonl"
    path.write_text(
        json.dumps({"id": "a", "output": [{"type": "PER", "start": 0, "end": 3}]})
        + "\n"
        + json.dumps({"id": "b", "output": {"entities": [["ORG", "ACME"]]}})
        + "\n"
    )
    preds = read_predictions(FileModel(backend="file", path=str(path)), path)
    spans = get_metric("span_f1")(
        [[{"type": "PER", "start": 0, "end": 3}], [["ORG", "ACME"]]],
        [preds.by_id["a"].text, preds.by_id["b"].text],
        options=MetricOptions(),
    )
    assert spans.aggregate == 1.0

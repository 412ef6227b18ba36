"""A run's metric families share one parse of the same outputs (tuples), never a stale one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from heldout.metrics import MetricOptions, classification, extraction, get_metric, summarization


def _counting(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[int]:
    calls = [0]
    real = getattr(module, name)

    def counted(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_classification_family_parses_a_tuple_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(monkeypatch, classification, "_evaluate_now")
    rng = np.random.default_rng(0)
    labels = ("a", "b", "c")
    targets = tuple(str(x) for x in rng.choice(labels, 500))
    preds = tuple(str(x) for x in rng.choice([*labels, "??"], 500))
    opts = MetricOptions(labels=labels)
    names = ["accuracy", "macro_f1", "micro_f1", "weighted_f1", "recall[b]"]
    shared = {n: get_metric(n)(targets, preds, options=opts) for n in names}
    assert calls[0] == 1
    separate = {n: get_metric(n)(list(targets), list(preds), options=opts) for n in names}
    assert calls[0] == 1 + len(names)  # lists are never shared
    for n in names:
        assert shared[n].aggregate == separate[n].aggregate
        assert np.array_equal(shared[n].per_sample, separate[n].per_sample)
    with pytest.raises(ValueError, match="read-only"):
        shared["accuracy"].per_sample[0] = 0.0


def test_a_mutated_list_is_scored_again() -> None:
    opts = MetricOptions(labels=("a", "b"))
    targets, preds = ["a", "b", "a"], ["a", "b", "b"]
    acc = get_metric("accuracy")
    assert acc(targets, preds, options=opts).aggregate == pytest.approx(2 / 3)
    preds[2] = "a"
    assert acc(targets, preds, options=opts).aggregate == 1.0
    other = ("a", "b", "a")
    assert acc(tuple(targets), other, options=opts).aggregate == 1.0
    assert acc(tuple(targets), ("b", "b", "b"), options=opts).aggregate == pytest.approx(1 / 3)


def test_span_and_rouge_families_share_and_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    spans = _counting(monkeypatch, extraction, "_count")
    rng = np.random.default_rng(1)
    targets = tuple([["PER", f"n{i}"], ["LOC", f"c{i % 7}"]] for i in range(200))
    preds = tuple(
        json.dumps([s for s in t if rng.random() < 0.7] + [["ORG", "x"]] * int(rng.random() < 0.3))
        for t in targets
    )
    opts = MetricOptions()
    names = ["span_f1", "span_precision", "span_recall", "span_macro_f1"]
    got = {n: get_metric(n)(targets, preds, options=opts) for n in names}
    assert spans[0] == 1
    for n in names:
        again = get_metric(n)(list(targets), list(preds), options=opts)
        assert got[n].aggregate == again.aggregate
    get_metric("span_untyped_f1")(targets, preds, options=opts)  # another scheme: its own pass
    assert spans[0] == 1 + len(names) + 1

    rouge = _counting(monkeypatch, summarization, "rouge")
    refs = tuple(f"the cat {i} sat on the mat" for i in range(100))
    outs = tuple(f"a cat {i % 9} sat on a mat" for i in range(100))
    types = ["rouge1", "rouge2", "rougeL", "rougeL_precision", "rougeLsum"]
    got = {n: get_metric(n)(refs, outs, options=opts) for n in types}
    assert rouge[0] == 1  # every ROUGE type from one pass
    for n in types:
        assert got[n].aggregate == get_metric(n)(list(refs), list(outs), options=opts).aggregate

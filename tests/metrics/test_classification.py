"""Classification metrics against scikit-learn as the oracle."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from heldout.errors import MetricInputError
from heldout.metrics import MetricOptions, get_metric
from heldout.metrics.classification import (
    UNPARSEABLE,
    classification_report,
    parse_label,
    parse_labels,
)

LABELS = ["positive", "negative", "neutral"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("positive", "positive"),
        ("  Positive.\n", "positive"),
        ("NEGATIVE!", "negative"),
        ("pos", "positive"),
        ("The sentiment is negative, clearly.", None),
        ("neutral or maybe positive", None),
        ("not positive", None),
        ("nonpositive", None),
        ("I cannot tell.", None),
        ("", None),
    ],
)
def test_parse_label(text: str, expected: str | None) -> None:
    assert parse_label(text, LABELS, {"pos": "positive"}) == expected


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(MetricInputError, match="prediction 1 is int, not a string"):
        parse_labels(["positive", 3], LABELS)


@pytest.mark.parametrize("seed", range(5))
def test_report_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    labels = [f"c{i}" for i in range(k)]
    n = int(rng.integers(5, 400))
    y_true = [labels[i] for i in rng.integers(0, k, n)]
    y_pred = [labels[i] if i < k else None for i in rng.integers(0, k + 1, n)]
    ours = classification_report(y_true, y_pred, labels)
    sk_pred = [p if p is not None else UNPARSEABLE for p in y_pred]
    p, r, f, s = precision_recall_fscore_support(y_true, sk_pred, labels=labels, zero_division=0.0)
    np.testing.assert_allclose(ours.precision, p, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.recall, r, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.f1, f, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours.support, s)
    for avg in ("macro", "micro", "weighted"):
        expected = f1_score(y_true, sk_pred, labels=labels, average=avg, zero_division=0.0)
        assert getattr(ours, f"{avg}_f1") == pytest.approx(expected, abs=1e-12)
    assert ours.accuracy == pytest.approx(accuracy_score(y_true, sk_pred))
    cm = confusion_matrix(y_true, sk_pred, labels=[*labels, UNPARSEABLE])
    np.testing.assert_array_equal(ours.confusion, cm[:k, :])
    assert ours.n_unparseable == sum(p is None for p in y_pred)


@pytest.mark.parametrize("zero_division", [0.0, 1.0])
def test_zero_division_policy_matches_sklearn(zero_division: float) -> None:
    labels = ["a", "b", "c"]
    y_true = ["a", "a", "b"]
    y_pred: list[str | None] = ["a", "a", None]  # nothing predicted as b or c; c absent
    ours = classification_report(y_true, y_pred, labels, zero_division=zero_division)
    sk_pred = [p or UNPARSEABLE for p in y_pred]
    p, r, f, _ = precision_recall_fscore_support(
        y_true, sk_pred, labels=labels, zero_division=zero_division
    )
    np.testing.assert_allclose(ours.precision, p)
    np.testing.assert_allclose(ours.recall, r)
    np.testing.assert_allclose(ours.f1, f)
    macro = f1_score(y_true, sk_pred, labels=labels, average="macro", zero_division=zero_division)
    assert ours.macro_f1 == pytest.approx(macro)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("positive", "positive"),
        ("The sentiment is negative, clearly.", "negative"),
        ("neutral or maybe positive", "neutral"),
        ("not positive", "positive"),  # the trap that makes this rule opt-in
        ("nonpositive", None),
        ("I cannot tell.", None),
    ],
)
def test_parse_label_mention_rule_is_opt_in(text: str, expected: str | None) -> None:
    assert parse_label(text, LABELS, {"pos": "positive"}, match="mention") == expected


def test_unknown_label_match_is_refused() -> None:
    from heldout.errors import MetricInputError

    with pytest.raises(MetricInputError, match="label_match must be one of strict, mention"):
        parse_labels(["positive"], LABELS, match="first")  # type: ignore[arg-type]


def test_strict_parsing_counts_negated_labels_as_unparseable() -> None:
    opts = MetricOptions(labels=tuple(LABELS))
    y_true = ["negative", "negative"]
    strict = get_metric("accuracy")(y_true, ["not positive", "negative"], options=opts)
    assert strict.per_sample.tolist() == [0.0, 1.0]
    assert strict.details["report"]["n_unparseable"] == 1
    mention = MetricOptions(labels=tuple(LABELS), label_match="mention")
    loose = get_metric("accuracy")(y_true, ["not positive", "negative"], options=mention)
    assert loose.details["report"]["n_unparseable"] == 0  # read as "positive": wrong label


def test_registered_metrics_parse_text() -> None:
    opts = MetricOptions(labels=tuple(LABELS), aliases={"pos": "positive"}, label_match="mention")
    y_true = ["positive", "negative", "neutral", "positive"]
    y_pred = ["Positive.", "It is negative", "dunno", "pos"]
    result = get_metric("accuracy")(y_true, y_pred, options=opts)
    assert result.aggregate == 0.75
    assert result.per_sample.tolist() == [1.0, 1.0, 0.0, 1.0]
    assert result.details["report"]["n_unparseable"] == 1
    macro = get_metric("macro_f1")(y_true, y_pred, options=opts)
    sk = f1_score(
        y_true, ["positive", "negative", UNPARSEABLE, "positive"], labels=LABELS, average="macro"
    )
    assert macro.aggregate == pytest.approx(sk)


def test_bad_inputs() -> None:
    acc = get_metric("accuracy")
    opts = MetricOptions(labels=("a", "b"))
    with pytest.raises(MetricInputError, match="y_true has 2 items but y_pred has 1"):
        acc(["a", "b"], ["a"], options=opts)
    with pytest.raises(MetricInputError, match=r"targets 'zzz' are not in the label set"):
        acc(["a", "zzz"], ["a", "b"], options=opts)
    with pytest.raises(MetricInputError, match="no samples"):
        acc([], [], options=opts)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_class_metric_families_match_sklearn(seed: int) -> None:
    from sklearn.metrics import fbeta_score, precision_score, recall_score

    rng = np.random.default_rng(seed)
    y = [LABELS[i] for i in rng.integers(0, 3, 150)]
    pred = [t if rng.random() < 0.6 else rng.choice([*LABELS, "dunno"]) for t in y]
    sk_pred = [p if p in LABELS else UNPARSEABLE for p in pred]
    opts = MetricOptions(labels=tuple(LABELS))
    for label in LABELS:
        kw = {"labels": [label], "average": None, "zero_division": 0}
        got = {
            "precision": get_metric(f"precision[{label}]")(y, pred, options=opts).aggregate,
            "recall": get_metric(f"recall[{label}]")(y, pred, options=opts).aggregate,
            "f1": get_metric(f"f1[{label}]")(y, pred, options=opts).aggregate,
            "f2": get_metric(f"fbeta[2, {label}]")(y, pred, options=opts).aggregate,
        }
        assert got["precision"] == pytest.approx(precision_score(y, sk_pred, **kw)[0])
        assert got["recall"] == pytest.approx(recall_score(y, sk_pred, **kw)[0])
        assert got["f1"] == pytest.approx(f1_score(y, sk_pred, **kw)[0])
        assert got["f2"] == pytest.approx(fbeta_score(y, sk_pred, beta=2, **kw)[0])
    macro = get_metric("fbeta[0.5]")(y, pred, options=opts).aggregate
    assert macro == pytest.approx(
        fbeta_score(y, sk_pred, beta=0.5, labels=LABELS, average="macro", zero_division=0)
    )


def test_class_metric_compare_is_paired_with_a_jackknife_interval() -> None:
    from sklearn.metrics import recall_score

    from heldout.stats import StatsOptions, compare

    rng = np.random.default_rng(4)
    y = [LABELS[i] for i in rng.integers(0, 3, 300)]
    base = [t if rng.random() < 0.8 else "neutral" for t in y]
    cand = [t if (t != "negative" or rng.random() < 0.5) else "neutral" for t in y]
    spec = get_metric("recall[negative]")
    opts = MetricOptions(labels=tuple(LABELS))
    c = compare(spec(y, base, options=opts), spec(y, cand, options=opts), spec, StatsOptions())
    want = (
        recall_score(y, cand, labels=["negative"], average=None)[0]
        - recall_score(y, base, labels=["negative"], average=None)[0]
    )
    assert c.delta.estimate == pytest.approx(want)
    assert c.test == "jackknife-t"
    assert c.real_loss


def test_bad_class_metric_names() -> None:
    from heldout.errors import UnknownNameError

    opts = MetricOptions(labels=tuple(LABELS))
    with pytest.raises(MetricInputError, match=r"recall\[pii\]: 'pii' is not a label"):
        get_metric("recall[pii]")(["positive"], ["positive"], options=opts)
    for bad in ("recall[]", "recall[a, b]", "fbeta[-1]", "fbeta[x, positive]", "nope[x]"):
        with pytest.raises(UnknownNameError, match="unknown metric"):
            get_metric(bad)

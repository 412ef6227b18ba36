"""QA metrics against the official SQuAD v1.1 evaluation logic (reproduced verbatim below)."""

from __future__ import annotations

import re
import string
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heldout.errors import MetricInputError
from heldout.metrics import MetricOptions, get_metric
from heldout.metrics.qa import normalize_answer


# --- official SQuAD v1.1 evaluate-v1.1.py, unchanged -------------------------------------
def squad_normalize_answer(s: str) -> str:
    def remove_articles(text: str) -> str:
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text: str) -> str:
        return " ".join(text.split())

    def remove_punc(text: str) -> str:
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text: str) -> str:
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def squad_f1_score(prediction: str, ground_truth: str) -> float:
    prediction_tokens = squad_normalize_answer(prediction).split()
    ground_truth_tokens = squad_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def squad_exact_match_score(prediction: str, ground_truth: str) -> bool:
    return squad_normalize_answer(prediction) == squad_normalize_answer(ground_truth)


# ------------------------------------------------------------------------------------------

texts = st.lists(
    st.sampled_from(["a", "an", "the", "The", "An", "A", "b", "cat", ",", ".", "!", "-", "'", " "]),
    max_size=12,
).map("".join) | st.text(max_size=20)


@given(texts)
@settings(max_examples=300, deadline=None)
def test_normalisation_is_squad(text: str) -> None:
    assert normalize_answer(text) == squad_normalize_answer(text)


@given(st.lists(st.tuples(texts, st.lists(texts, min_size=1, max_size=3)), min_size=1, max_size=20))
@settings(max_examples=100, deadline=None)
def test_em_and_f1_match_squad(pairs: list[tuple[str, list[str]]]) -> None:
    preds = [p for p, _ in pairs]
    refs = [r for _, r in pairs]
    em = get_metric("exact_match")(refs, preds, options=MetricOptions())
    f1 = get_metric("token_f1")(refs, preds, options=MetricOptions())
    exp_em = [max(squad_exact_match_score(p, g) for g in r) for p, r in pairs]
    exp_f1 = [max(squad_f1_score(p, g) for g in r) for p, r in pairs]
    np.testing.assert_allclose(em.per_sample, exp_em)
    np.testing.assert_allclose(f1.per_sample, exp_f1)
    assert f1.aggregate == pytest.approx(float(np.mean(exp_f1)))


def test_hand_made_examples() -> None:
    em = get_metric("exact_match")
    f1 = get_metric("token_f1")
    refs = ["The Eiffel Tower", ["Paris", "paris, France"], "1889"]
    preds = ["eiffel tower!", "Paris France", "in 1889"]
    assert em(refs, preds).per_sample.tolist() == [1.0, 1.0, 0.0]
    assert f1(refs, preds).per_sample.tolist() == pytest.approx([1.0, 1.0, 2 / 3])


def test_bad_inputs() -> None:
    em = get_metric("exact_match")
    with pytest.raises(MetricInputError, match="prediction 0 is NoneType"):
        em(["a"], [None])
    with pytest.raises(MetricInputError, match="reference 0 must be a string or a non-empty list"):
        em([[]], ["a"])
    with pytest.raises(MetricInputError, match="y_true has 1 items but y_pred has 2"):
        em(["a"], ["a", "b"])

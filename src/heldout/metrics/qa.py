"""Question answering: exact match and token F1 with SQuAD v1.1 normalisation.

Normalisation is the official SQuAD v1.1 script's ``normalize_answer``: lower case, drop
punctuation, drop the articles a/an/the, collapse whitespace. With several references a
prediction scores its best match. As in v1.1, an empty prediction or reference has F1 0.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from heldout.metrics._inputs import text_references
from heldout.metrics._registry import MetricOptions, MetricResult, metric

__all__ = ["exact_match_score", "normalize_answer", "token_f1_score"]

_PUNCT = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 ``normalize_answer``."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match_score(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def _f1_tokens(pred: list[str], ref: list[str]) -> float:
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred)
    recall = same / len(ref)
    return 2 * precision * recall / (precision + recall)


def token_f1_score(prediction: str, reference: str) -> float:
    return _f1_tokens(normalize_answer(prediction).split(), normalize_answer(reference).split())


@metric("exact_match", shapes=["qa"], higher_is_better=True, binary=True)
def exact_match(
    y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions
) -> MetricResult:
    """Share of answers equal to a reference after SQuAD normalisation."""
    refs = text_references(y_true, y_pred, "QA metrics")
    values = np.fromiter(
        (
            max(normalize_answer(p) == normalize_answer(r) for r in rs)
            for p, rs in zip(y_pred, refs, strict=True)
        ),
        dtype=np.float64,
        count=len(refs),
    )
    return MetricResult("exact_match", float(values.mean()), values)


@metric("token_f1", shapes=["qa"], higher_is_better=True)
def token_f1(
    y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions
) -> MetricResult:
    """Mean SQuAD token F1 (best reference per sample)."""
    refs = text_references(y_true, y_pred, "QA metrics")
    values = np.empty(len(refs), dtype=np.float64)
    for i, (p, rs) in enumerate(zip(y_pred, refs, strict=True)):
        pt = normalize_answer(p).split()
        values[i] = max(_f1_tokens(pt, normalize_answer(r).split()) for r in rs)
    return MetricResult("token_f1", float(values.mean()), values)

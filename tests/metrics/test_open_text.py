"""Open-text metrics with the packaged MiniLM, against sentence-transformers and bert-score."""

from __future__ import annotations

import os

import numpy as np
import pytest

from heldout.errors import HeldoutError, MetricInputError
from heldout.metrics import MetricOptions, get_metric
from heldout.metrics.open_text import default_encoder_path

pytest.importorskip("torch")
os.environ["HF_HUB_OFFLINE"] = "1"

REFS = [
    "The cat sat on the mat.",
    "Shipping takes three to five business days.",
    ["Paris is the capital of France.", "France's capital is Paris."],
    "Reset your password from the login page.",
]
PREDS = [
    "A feline rested on a rug.",
    "Delivery needs 3-5 working days.",
    "The capital of France is Paris.",
    "I like turtles.",
]


def test_embedding_similarity_matches_sentence_transformers() -> None:
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(default_encoder_path()), device="cpu")
    result = get_metric("embedding_similarity")(REFS, PREDS, options=MetricOptions())
    expected = []
    for ref, pred in zip(REFS, PREDS, strict=True):
        refs = [ref] if isinstance(ref, str) else ref
        emb = model.encode([pred, *refs], normalize_embeddings=True)
        expected.append(max(float(emb[0] @ e) for e in emb[1:]))
    np.testing.assert_allclose(result.per_sample, expected, atol=1e-5)
    assert result.per_sample[0] > result.per_sample[3]  # paraphrase beats unrelated


def test_bertscore_matches_bert_score() -> None:
    bert_score = pytest.importorskip("bert_score")
    result = get_metric("bertscore_f1")(REFS, PREDS, options=MetricOptions())
    _, _, f = bert_score.score(
        PREDS,
        [[r] if isinstance(r, str) else r for r in REFS],
        model_type=str(default_encoder_path()),
        num_layers=6,
        idf=False,
        device="cpu",
    )
    np.testing.assert_allclose(result.per_sample, f.numpy(), atol=1e-5)


def test_identical_text_scores_one() -> None:
    r = get_metric("bertscore_f1")(
        ["same words here"], ["same words here"], options=MetricOptions()
    )
    assert r.aggregate == pytest.approx(1.0, abs=1e-5)


def test_bad_inputs(tmp_path: object) -> None:
    with pytest.raises(MetricInputError, match="prediction 0 is int"):
        get_metric("embedding_similarity")(["a"], [1], options=MetricOptions())
    with pytest.raises(HeldoutError, match="encoder folder not found"):
        get_metric("embedding_similarity")(
            ["a"], ["b"], options=MetricOptions(extra={"encoder": "/nonexistent/model"})
        )

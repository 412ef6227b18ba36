"""A tiny character-level causal LM built in code, and step-based training (deterministic)."""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["PROMPTS", "build_tokenizer", "new_model", "train"]

PROMPTS = {
    "sentiment": "review: {input}\nsentiment:",
    "uppercase": "upper: {input}=",
    "json": "record: {input}\njson:",
    "extraction": "extract: {input}\njson:",
}
CHARS = string.ascii_letters + string.digits + " .,:;!?+=-{}\"'\n_"

Progress = Callable[[str, int, int], None]


def build_tokenizer(folder: Path | None = None) -> Any:
    """A character tokenizer (every character one token), made in code: nothing downloaded."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate(CHARS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    if folder is not None:
        fast.save_pretrained(folder)
    return fast


def new_model(vocab_size: int, seed: int) -> Any:
    """GPT-2 architecture, 2 layers of width 64: about 0.1 M parameters (plus embeddings)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=96,
        n_embd=64,
        n_layer=2,
        n_head=4,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(config)


def encode(
    tokenizer: Any, examples: Sequence[tuple[str, str]], answer_only: bool
) -> list[tuple[list[int], list[int]]]:
    """(ids, labels) per (prompt, answer) pair, tokenised once; the answer ends with <eos>."""
    out = []
    for prompt, answer in examples:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        out.append((p + a, ([-100] * len(p) if answer_only else p) + a))
    return out


def _batch(rows: Sequence[tuple[list[int], list[int]]], pad: int) -> Any:
    import torch

    width = max(len(x) for x, _ in rows)
    ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in rows])
    labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in rows])
    return ids, labels


def train(
    model: Any,
    tokenizer: Any,
    examples: Sequence[tuple[str, str]],
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    answer_only: bool,
    label: str,
    progress: Progress | None = None,
) -> float:
    """Step-based AdamW training on random batches; returns the last loss."""
    import random

    import torch

    rng = random.Random(seed)
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    encoded = encode(tokenizer, examples, answer_only)
    model.train()
    loss_value = float("nan")
    for step in range(steps):
        batch = rng.sample(encoded, min(batch_size, len(encoded)))
        ids, labels = _batch(batch, tokenizer.pad_token_id)
        # right padding under a causal mask: real tokens never attend to the pads that follow
        # them, and pads carry no loss, so no attention mask is needed (and it is slow here)
        out = model(input_ids=ids, labels=labels)
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        loss_value = float(out.loss.detach())
        if progress and (step % 10 == 0 or step == steps - 1):
            progress(label, step + 1, steps)
    model.eval()
    return loss_value

"""Local generation: heldout's ``hf`` backend vs lm-evaluation-harness's ``hf`` model.

    .venv/bin/python benchmarks/bench_hf.py [--prompts 256] [--max-new 32] [--batch 8 32]

Needs ``pip install lm_eval`` in the same environment (not one of heldout's extras). A tiny
GPT-2 (4 layers, width 256, character tokenizer) and a LoRA adapter are built in a temporary
folder, nothing is downloaded. Both tools generate greedily for the same prompts of mixed
length (10 to 400 characters) with the same number of new tokens, the adapter applied; the
script checks that every output agrees and prints samples/s and the ratio per batch size
(median of alternating rounds, each round's ratio shown), the share of the padded prompt
tokens that are real tokens in heldout's batches, and heldout batching in file order (as it
did before it sorted by length), whose outputs must be the same.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build(folder: Path) -> tuple[Path, Path]:
    import peft
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from heldout.demo._train import build_tokenizer

    tok = build_tokenizer(folder / "base")
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=512,
        n_embd=256,
        n_layer=4,
        n_head=4,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
    )
    model = GPT2LMHeadModel(config)
    model.save_pretrained(folder / "base")
    lora = peft.get_peft_model(
        model,
        peft.LoraConfig(
            r=8, target_modules=["c_attn"], fan_in_fan_out=True, init_lora_weights=False
        ),
    )
    lora.save_pretrained(folder / "adapter")
    return folder / "base", folder / "adapter"


def prompts(n: int) -> list[str]:
    rng = random.Random(0)
    words = [
        "the",
        "model",
        "said",
        "a",
        "review",
        "of",
        "json",
        "extract",
        "upper",
        "sentiment",
        "label",
        "data",
        "set",
    ]
    out = []
    for _ in range(n):
        k = rng.choice([2, 4, 8, 16, 32, 64])  # mixed length, as real gold sets are
        out.append(" ".join(rng.choice(words) for _ in range(k))[:400] + "\nanswer:")
    return out


def run_heldout(
    root: Path, texts: list[str], batch: int, max_new: int, *, sort: bool = True
) -> tuple[float, dict[str, str], float]:
    from heldout.backends import Generation, Request
    from heldout.backends._hf import HFBackend
    from heldout.plan import HFModel

    spec = HFModel.model_validate(
        {
            "backend": "hf",
            "model": "base",
            "adapter": "adapter",
            "device": "cpu",
            "batch_size": batch,
            "params": {"max_tokens": max_new, "temperature": 0},
        }
    )
    backend = HFBackend(spec, root=root)
    if not sort:
        backend.length_order = lambda reqs: list(range(len(reqs)))  # type: ignore[method-assign]
    reqs = [Request(f"s{i}", t) for i, t in enumerate(texts)]
    order = backend.length_order(reqs)
    lengths = [len(backend.tokenizer(t)["input_ids"]) for t in texts]
    real = padded = 0
    for start in range(0, len(order), batch):
        chunk = [lengths[i] for i in order[start : start + batch]]
        real += sum(chunk)
        padded += max(chunk) * len(chunk)
    out: dict[str, str] = {}

    def keep(g: Generation) -> None:
        assert g.ok, g.error
        out[g.sample_id] = g.text or ""

    t0 = time.perf_counter()
    asyncio.run(backend.generate(reqs, keep))
    return time.perf_counter() - t0, out, real / padded


def run_lm_eval(
    root: Path, texts: list[str], batch: int, max_new: int
) -> tuple[float, dict[str, str]]:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(
        pretrained=str(root / "base"),
        peft=str(root / "adapter"),
        device="cpu",
        batch_size=batch,
        dtype="float32",
        max_length=512,
    )
    reqs = [
        Instance(
            request_type="generate_until",
            doc={},
            arguments=(t, {"until": ["<eos>"], "max_gen_toks": max_new, "do_sample": False}),
            idx=0,
        )
        for t in texts
    ]
    t0 = time.perf_counter()
    answers = lm.generate_until(reqs, disable_tqdm=True)
    return time.perf_counter() - t0, {f"s{i}": a for i, a in enumerate(answers)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--max-new", type=int, default=32)
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians shown")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    from heldout.backends._hf import quiet_transformers

    quiet_transformers()
    texts = prompts(args.prompts)
    n = len(texts)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root)
        print(f"{n} prompts, {args.max_new} new tokens, greedy, LoRA applied, CPU, "
              f"{args.rounds} alternating rounds (median)")  # fmt: skip
        print(
            "batch | heldout samples/s | heldout in file order | lm-eval samples/s | ratio "
            "(rounds) | real prompt tokens, sorted / file order | = lm-eval | = file order"
        )
        for batch in args.batch:
            t_file, in_file_order, share_file = run_heldout(
                root, texts, batch, args.max_new, sort=False
            )
            ours_t, peer_t, ratios = [], [], []
            agree = n
            for _ in range(args.rounds):  # alternate, so drift on a shared machine hits both
                t_peer, peer = run_lm_eval(root, texts, batch, args.max_new)
                t_ours, ours, share = run_heldout(root, texts, batch, args.max_new)
                ours_t.append(t_ours)
                peer_t.append(t_peer)
                ratios.append(t_peer / t_ours)
                agree = min(agree, sum(ours[k] == peer[k] for k in ours))
            same = sum(ours[k] == in_file_order[k] for k in ours)
            ratios.sort()
            print(
                f"{batch:5d} | {n / statistics.median(ours_t):17.1f} | {n / t_file:21.1f} | "
                f"{n / statistics.median(peer_t):17.1f} | {statistics.median(ratios):.2f}x "
                f"({', '.join(f'{r:.2f}' for r in ratios)}) | {share:.0%} / {share_file:.0%} "
                f"| {agree}/{n} | {same}/{n}"
            )


if __name__ == "__main__":
    main()

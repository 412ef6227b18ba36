"""ROUGE-1/2/L/Lsum on 10,000 pairs of ~60-word texts: heldout vs Google's rouge-score.

    .venv/bin/python benchmarks/bench_rouge.py [--pairs 10000] [--stem]

Both compute the same per-pair precision/recall/F-measure for rouge1, rouge2, rougeL and
rougeLsum (the texts have ~5 newline-separated sentences, as Lsum expects); the script
checks that every value agrees to 1e-9 and prints both times and the ratio.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
from rouge_score import rouge_scorer

from heldout.metrics.summarization import rouge

TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


def make_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"word{i}" for i in range(3000)] + ["the", "a", "of", "and", "to"] * 200)

    def sentences(words: list[str]) -> str:  # a newline every ~12 words, for ROUGE-Lsum
        cuts = [0, *sorted(rng.choice(np.arange(1, len(words)), 4, replace=False)), len(words)]
        return "\n".join(" ".join(words[a:b]) for a, b in itertools.pairwise(cuts))

    def text() -> str:
        return sentences(list(vocab[rng.integers(0, vocab.size, int(rng.integers(50, 70)))]))

    targets = [text() for _ in range(n)]
    preds = []
    for t in targets:  # predictions share part of the reference, as summaries do
        words = t.split()  # split() drops the newlines; the prediction gets its own
        keep = rng.random(len(words)) < 0.6
        mixed = [
            w if k else str(vocab[rng.integers(0, vocab.size)])
            for w, k in zip(words, keep, strict=True)
        ]
        preds.append(sentences(mixed))
    return targets, preds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=10_000)
    ap.add_argument("--stem", action="store_true")
    ap.add_argument("--types", nargs="+", default=TYPES, choices=TYPES)
    args = ap.parse_args()
    targets, preds = make_pairs(args.pairs)

    t0 = time.perf_counter()
    ours = rouge(targets, preds, args.types, stem=args.stem)
    t_ours = time.perf_counter() - t0

    scorer = rouge_scorer.RougeScorer(args.types, use_stemmer=args.stem)
    t0 = time.perf_counter()
    theirs = [scorer.score(t, p) for t, p in zip(targets, preds, strict=True)]
    t_ref = time.perf_counter() - t0

    worst = 0.0
    for rt in args.types:
        ref = np.array([tuple(s[rt]) for s in theirs])
        worst = max(worst, float(np.abs(ref - ours[rt]).max()))
    print(f"pairs: {args.pairs:,} (~60 words), types: {' '.join(args.types)}, stem: {args.stem}")
    print(f"heldout rouge:      {t_ours:.2f} s")
    print(f"rouge-score:        {t_ref:.2f} s")
    print(f"speed-up:           {t_ref / t_ours:.1f}x")
    print(f"max |difference|:   {worst:.1e} ({'identical' if worst <= 1e-9 else 'DIFFERENT'})")


if __name__ == "__main__":
    main()

"""Token F1 and exact match on 100,000 QA pairs: heldout vs the official SQuAD v1.1 script.

.venv/bin/python benchmarks/bench_qa.py [--n 100000]
"""

from __future__ import annotations

import argparse
import re
import string
import time
from collections import Counter

import numpy as np

from heldout.metrics import MetricOptions, get_metric


# The official SQuAD v1.1 evaluation functions, unchanged.
def normalize_answer(s: str) -> str:
    def remove_articles(text: str) -> str:
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text: str) -> str:
        return " ".join(text.split())

    def remove_punc(text: str) -> str:
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def f1_score(prediction: str, ground_truth: str) -> float:
    p, g = normalize_answer(prediction).split(), normalize_answer(ground_truth).split()
    common = Counter(p) & Counter(g)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision, recall = num_same / len(p), num_same / len(g)
    return (2 * precision * recall) / (precision + recall)


def exact_match_score(prediction: str, ground_truth: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    vocab = ["the", "a", "Paris", "Eiffel", "Tower", "1889", "iron,", "lattice", "in", "France."]
    refs = [" ".join(rng.choice(vocab, int(rng.integers(1, 8)))) for _ in range(args.n)]
    preds = [" ".join(rng.choice(vocab, int(rng.integers(1, 8)))) for _ in range(args.n)]

    t0 = time.perf_counter()
    f1 = get_metric("token_f1")(refs, preds, options=MetricOptions())
    em = get_metric("exact_match")(refs, preds, options=MetricOptions())
    t_ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    ref_f1 = [f1_score(p, r) for p, r in zip(preds, refs, strict=True)]
    ref_em = [exact_match_score(p, r) for p, r in zip(preds, refs, strict=True)]
    t_ref = time.perf_counter() - t0

    same = np.allclose(f1.per_sample, ref_f1, atol=1e-12) and np.array_equal(
        em.per_sample, np.array(ref_em, dtype=float)
    )
    print(f"pairs: {args.n:,}")
    print(f"heldout token_f1 + exact_match: {t_ours:.2f} s")
    print(f"SQuAD v1.1 script:              {t_ref:.2f} s")
    print(f"speed-up:                       {t_ref / t_ours:.1f}x")
    print(f"identical results:              {same}")


if __name__ == "__main__":
    main()

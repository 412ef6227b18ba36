"""Leak check at scale: 100k training rows x 10k gold rows, against a brute-force oracle.

    .venv/bin/python benchmarks/bench_leak.py [--train 100000] [--gold 10000] [--text zipf]

Synthetic text with planted exact, embedded and near duplicates: ``zipf`` (a 20k-word
vocabulary, Zipf-distributed) or ``templated`` (30-word sentences over a 26-word vocabulary,
like the templated prompts of many classification and suite sets, where every pair of texts
shares character shingles). heldout's full run is timed; the brute-force all-pairs comparison (exact
13-gram containment and exact character-5-gram Jaccard) runs on a subsample, is extrapolated to
the full size, and must find the same hits on that subsample.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

from heldout.data import LeakOptions, Sample, find_leaks, normalize


def make_corpus(
    n_gold: int,
    n_train: int,
    seed: int = 0,
    plant_gold: int = 500,
    plant_train: int = 2000,
    kind: str = "zipf",
) -> tuple[list[Sample], list[tuple[str, list[str]]]]:
    rng = np.random.default_rng(seed)
    if kind == "zipf":
        vocab = np.array([f"w{i}" for i in range(20_000)])
        p = 1.0 / np.arange(1, vocab.size + 1)
        p /= p.sum()
    else:
        vocab = np.array(
            [
                "apple",
                "river",
                "stone",
                "cloud",
                "tiger",
                "maple",
                "ocean",
                "piano",
                "lemon",
                "candle",
                "forest",
                "silver",
                "rocket",
                "garden",
                "pepper",
                "marble",
                "velvet",
                "harbor",
                "jungle",
                "copper",
                "falcon",
                "meadow",
                "quartz",
                "saddle",
                "timber",
                "violet",
            ]
        )  # two random sentences share ~24% of their shingles (99th percentile 34%)
        p = np.full(vocab.size, 1.0 / vocab.size)

    def texts(n: int, lo: int, hi: int) -> list[str]:
        if kind != "zipf":
            lo, hi = 30, 31
        lengths = rng.integers(lo, hi, size=n)
        words = vocab[rng.choice(vocab.size, size=int(lengths.sum()), p=p)]
        out, i = [], 0
        for n_words in lengths:
            out.append(" ".join(words[i : i + n_words]))
            i += n_words
        return out

    gold_texts = texts(n_gold // 2, 40, 80) + texts(n_gold - n_gold // 2, 6, 30)
    gold = [Sample(f"g{i}", t, "t") for i, t in enumerate(gold_texts)]
    train_texts = texts(n_train, 20, 100)
    prng = random.Random(seed)
    for k in range(50):  # planted leaks, inside the oracle's subsample so it sees them too
        gi = prng.randrange(min(n_gold, plant_gold))
        words = gold_texts[gi].split()
        if k % 3 == 0:
            leaked = gold_texts[gi].upper()
        elif k % 3 == 1:
            leaked = "please answer: " + gold_texts[gi] + " thanks"
        else:
            words[prng.randrange(len(words))] = "changed"
            leaked = " ".join(words)
        train_texts[prng.randrange(min(n_train, plant_train))] = leaked
    return gold, [(f"train:{i}", [t]) for i, t in enumerate(train_texts)]


def brute_force(
    gold: list[Sample], train: list[tuple[str, list[str]]], o: LeakOptions
) -> set[tuple[str, str]]:
    def grams(toks: list[str], n: int) -> set[tuple[str, ...]]:
        return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}

    def chars(text: str, n: int) -> set[str]:
        return {text[i : i + n] for i in range(len(text) - n + 1)} if len(text) >= n else {text}

    g_norm = [normalize(s.input) for s in gold]
    g_grams = [grams(t.split(), o.ngram) for t in g_norm]
    g_chars = [chars(t, o.shingle) if len(t.split()) < o.short_words else set() for t in g_norm]
    hits = set()
    for where, texts in train:
        whole = " ".join(normalize(t) for t in texts)
        t_grams = grams(whole.split(), o.ngram)
        t_chars = chars(whole, o.shingle)
        for gi, s in enumerate(gold):
            if g_norm[gi] == whole or (
                g_grams[gi] and len(g_grams[gi] & t_grams) / len(g_grams[gi]) >= o.ngram_threshold
            ):
                hits.add((s.id, where))
            elif g_chars[gi]:
                inter = len(g_chars[gi] & t_chars)
                if inter / (len(g_chars[gi]) + len(t_chars) - inter) >= o.jaccard_threshold:
                    hits.add((s.id, where))
    return hits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=100_000)
    ap.add_argument("--gold", type=int, default=10_000)
    ap.add_argument("--oracle-train", type=int, default=2_000)
    ap.add_argument("--oracle-gold", type=int, default=500)
    ap.add_argument("--text", choices=["zipf", "templated"], default="zipf")
    args = ap.parse_args()
    gold, train = make_corpus(args.gold, args.train, kind=args.text)
    opts = LeakOptions()

    t0 = time.perf_counter()
    report = find_leaks(gold, train, opts)
    t_full = time.perf_counter() - t0
    print(
        f"heldout find_leaks ({args.text} text): {args.train:,} train x {args.gold:,} gold: "
        f"{t_full:.2f} s, "
        f"{len(report.hits)} hits on {len(report.flagged)} gold samples"
    )

    sub_gold = gold[: args.oracle_gold]
    sub_train = train[: args.oracle_train]
    t0 = time.perf_counter()
    ours = {(h.gold_id, h.train_where) for h in find_leaks(sub_gold, sub_train, opts).hits}
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    oracle = brute_force(sub_gold, sub_train, opts)
    t_brute = time.perf_counter() - t0
    scale = (args.train * args.gold) / (len(sub_train) * len(sub_gold))
    print(
        f"subsample {len(sub_train):,} x {len(sub_gold):,}: heldout {t_ours:.2f} s, "
        f"brute force {t_brute:.2f} s; same hits: {ours == oracle} ({len(oracle)} hits)"
    )
    print(
        f"brute force extrapolated to full size: {t_brute * scale:,.0f} s; "
        f"ratio brute/heldout = {t_brute * scale / t_full:,.0f}x"
    )


if __name__ == "__main__":
    main()

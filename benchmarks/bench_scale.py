"""A whole run at scale: each stage's time and the peak RSS, per shape and gold-set size.

    .venv/bin/python benchmarks/bench_scale.py [--n 10000 100000] [--shapes classification ...]
                                               [--reference-up-to 10000]

Each case runs ``heldout.evaluate`` in a fresh process (so peak RSS is its own) on a generated
gold set with the ``file`` backend: classification (3 labels, base ~72% and candidate ~80%
right, two slice fields, a slice guardrail, the default secondary metrics), extraction (typed
text spans, span F1 with the per-type breakdown), summarization (ROUGE-1/2/L/Lsum, the case
the scale issue names) and summarization+claims (the default secondaries, which add the
``unsupported_rate`` faithfulness proxy), all with 10,000 resamples. The reference is what
the compare stage used to cost: an index bootstrap of the macro-F1 delta (10,000 resamples of
all n samples), timed in the same run for n up to ``--reference-up-to``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LABELS = ["positive", "negative", "neutral"]
WORDS = [f"w{i}" for i in range(300)]
TYPES = ["PER", "LOC", "ORG"]
SHAPES = ("classification", "extraction", "summarization", "summarization+claims")
METRIC = {"classification": "macro_f1", "extraction": "span_f1", "summarization": "rougeL"}


def _write(root: Path, case: str, n: int) -> None:
    """``summarization`` scores ROUGE-1/2/L/Lsum (the scale issue's case);
    ``summarization+claims`` adds the default secondary ``unsupported_rate``."""
    shape = case.split("+")[0]
    rng = np.random.default_rng(0)
    with (
        (root / "gold.jsonl").open("w") as gold,
        (root / "base.jsonl").open("w") as base,
        (root / "cand.jsonl").open("w") as cand,
    ):
        t = rng.integers(0, 3, n)
        b = np.where(rng.random(n) < 0.72, t, (t + 1) % 3)
        c = np.where(rng.random(n) < 0.80, t, (t + 2) % 3)
        for i in range(n):
            row: dict[str, object] = {"id": f"s{i}", "input": f"text {i}"}
            if shape == "classification":
                row |= {"target": LABELS[t[i]], "lang": ["en", "fr", "de"][i % 3]}
                row["level"] = ["easy", "hard"][i % 2]
                outs = (LABELS[b[i]], LABELS[c[i]])
            elif shape == "extraction":

                def spans(k: int) -> list[list[str]]:
                    return [
                        [TYPES[rng.integers(0, 3)], " ".join(rng.choice(WORDS, 2))]
                        for _ in range(k)
                    ]

                truth = spans(int(rng.integers(1, 4)))
                row["target"] = truth
                outs = tuple(
                    json.dumps([s for s in truth if rng.random() < p] + spans(int(rng.integers(2))))
                    for p in (0.6, 0.8)
                )
            else:
                ref = [" ".join(rng.choice(WORDS, 12)) for _ in range(3)]
                row["target"] = ". ".join(ref)
                outs = tuple(
                    ". ".join(
                        " ".join(
                            w if rng.random() < p else str(rng.choice(WORDS)) for w in s.split()
                        )
                        for s in ref[:2]
                    )
                    for p in (0.5, 0.6)
                )
            gold.write(json.dumps(row) + "\n")
            base.write(json.dumps({"id": row["id"], "output": outs[0]}) + "\n")
            cand.write(json.dumps({"id": row["id"], "output": outs[1]}) + "\n")
    task = "{shape: classification, data: gold.jsonl, labels: [positive, negative, neutral]}"
    extra = "guardrails:\n  - {slices: [lang], max_drop: 0.05}\nslices: [lang, level]\n"
    if shape != "classification":
        task, extra = f"{{shape: {shape}, data: gold.jsonl}}", ""
    if case == "summarization":
        task = task[:-1] + ", secondary_metrics: [rouge1, rouge2, rougeLsum]}"
    (root / "heldout.yaml").write_text(
        f"name: scale-{shape}\ntarget_behavior: scale\ntask: {task}\n"
        f"primary_metric: {METRIC[shape]}\nbaseline: 0.4\nsuccess_threshold: 0.45\n"
        "min_detectable_lift: 0.02\nmodels:\n  base: {backend: file, path: base.jsonl}\n"
        "  candidate: {backend: file, path: cand.jsonl}\n"
        f"{extra}stats: {{resamples: 10000}}\n"
    )


def _index_bootstrap_seconds(root: Path) -> float:
    """The old way: 10,000 index resamples of all n samples, macro-F1 recomputed on each."""
    from heldout.metrics import MetricOptions, get_metric
    from heldout.stats import bootstrap_distribution

    gold = [json.loads(x) for x in (root / "gold.jsonl").read_text().splitlines()]
    preds = [
        [json.loads(x)["output"] for x in (root / f"{m}.jsonl").read_text().splitlines()]
        for m in ("base", "cand")
    ]
    spec = get_metric("macro_f1")
    opts = MetricOptions(labels=tuple(LABELS))
    targets = [g["target"] for g in gold]
    base, cand = (spec(targets, p, options=opts) for p in preds)
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    bootstrap_distribution(
        lambda idx: cand.resample(idx) - base.resample(idx), len(gold), 10_000, rng
    )
    return time.perf_counter() - t0


def child(shape: str, n: int, folder: Path, reference: bool) -> None:
    import heldout

    _write(folder, shape, n)
    t0 = time.perf_counter()
    run = heldout.evaluate(folder / "heldout.yaml", cache=False, out=folder / "run")
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"shape": shape, "n": n, "wall_s": wall, "rss_mb": rss, "status": run.status}
    out |= dict(run.result.timings)
    if reference and shape == "classification":
        out["index_bootstrap_s"] = _index_bootstrap_seconds(folder)
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=SHAPES)
    ap.add_argument("--reference-up-to", type=int, default=10_000)
    ap.add_argument("--child", nargs=3, metavar=("SHAPE", "N", "FOLDER"), help=argparse.SUPPRESS)
    ap.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), Path(args.child[2]), args.reference)
        return
    print(
        f"{'shape':<21}{'n':>10}{'whole':>9}{'generate':>10}{'score':>8}{'compare':>9}"
        f"{'other':>9}{'peak RSS':>11}  index bootstrap (old compare)"
    )
    for shape in args.shapes:
        for n in args.n:
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, __file__, "--child", shape, str(n), tmp]
                if n <= args.reference_up_to:
                    cmd.append("--reference")
                r = subprocess.run(cmd, capture_output=True, text=True, check=True)
            m = json.loads(r.stdout.strip().splitlines()[-1])
            ref = m.get("index_bootstrap_s")
            ratio = f"{ref:.2f} s ({ref / m['compare_s']:.0f}x the compare stage)" if ref else "-"
            write = m["wall_s"] - m["load_s"] - m["generate_s"] - m["score_s"] - m["compare_s"]
            print(
                f"{shape:<21}{n:>10,}{m['wall_s']:>8.1f}s{m['generate_s']:>9.1f}s"
                f"{m['score_s']:>7.1f}s{m['compare_s']:>8.2f}s{write:>8.1f}s"
                f"{m['rss_mb']:>8.0f} MB  {ratio}"
            )


if __name__ == "__main__":
    main()

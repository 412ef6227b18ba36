"""Classification report on 1,000,000 labels: heldout vs scikit-learn.

    .venv/bin/python benchmarks/bench_classification.py [--n 1000000]

Same input for both: string labels (10 classes) with 2% unparseable predictions. scikit-learn
computes precision_recall_fscore_support (per class), the three F1 averages, accuracy and the
confusion matrix; heldout computes all of that in one classification_report call.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from heldout.metrics.classification import UNPARSEABLE, classification_report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    labels = [f"class_{i}" for i in range(10)]
    y_true = [labels[i] for i in rng.integers(0, 10, args.n)]
    pred_idx = np.where(rng.random(args.n) < 0.7, [labels.index(t) for t in y_true], 0)
    pred_idx = np.where(rng.random(args.n) < 0.02, -1, pred_idx)
    y_pred = [labels[i] if i >= 0 else None for i in pred_idx]
    sk_pred = [p if p is not None else UNPARSEABLE for p in y_pred]

    t0 = time.perf_counter()
    ours = classification_report(y_true, y_pred, labels)
    t_ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    p, r, f, s = precision_recall_fscore_support(y_true, sk_pred, labels=labels, zero_division=0)
    averages = {
        avg: precision_recall_fscore_support(
            y_true, sk_pred, labels=labels, average=avg, zero_division=0
        )[2]
        for avg in ("macro", "micro", "weighted")
    }
    acc = accuracy_score(y_true, sk_pred)
    cm = confusion_matrix(y_true, sk_pred, labels=[*labels, UNPARSEABLE])
    t_ref = time.perf_counter() - t0

    same = (
        np.allclose(ours.precision, p, atol=1e-12)
        and np.allclose(ours.recall, r, atol=1e-12)
        and np.allclose(ours.f1, f, atol=1e-12)
        and np.array_equal(ours.support, s)
        and all(abs(getattr(ours, f"{k}_f1") - v) < 1e-12 for k, v in averages.items())
        and abs(ours.accuracy - acc) < 1e-12
        and np.array_equal(ours.confusion, cm[:10])
    )
    print(f"labels: {args.n:,} (10 classes, 2% unparseable)")
    print(f"heldout classification_report: {t_ours:.2f} s")
    print(f"scikit-learn (same numbers):    {t_ref:.2f} s")
    print(f"speed-up:                       {t_ref / t_ours:.1f}x")
    print(f"identical results:              {same}")


if __name__ == "__main__":
    main()

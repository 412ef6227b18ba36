"""Classification: generated text → label (with an explicit unparseable bucket) → scores.

Scores follow scikit-learn's definitions exactly (``precision_recall_fscore_support`` with
``labels=`` the label set): an unparseable output is a prediction outside the label set, so it
lowers the recall of the true class and is shown in its own confusion-matrix column.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from heldout.errors import MetricInputError, UnknownNameError
from heldout.metrics._memo import shared
from heldout.metrics._registry import (
    LabelMatch,
    MetricOptions,
    MetricResult,
    MetricSpec,
    SufficientStats,
    metric,
    metric_family,
)

__all__ = [
    "LABEL_MATCHES",
    "UNPARSEABLE",
    "ClassificationReport",
    "LabelMatch",
    "classification_report",
    "parse_label",
    "parse_labels",
]

UNPARSEABLE = "<unparseable>"
_EDGE = string.punctuation + string.whitespace + "«»“”‘’"


def _norm(text: str) -> str:
    return " ".join(text.casefold().split()).strip(_EDGE)


def _vocabulary(labels: Sequence[str], aliases: Mapping[str, str]) -> dict[str, str]:
    vocab = {_norm(a): lab for a, lab in aliases.items()}
    vocab.update({_norm(lab): lab for lab in labels})
    return vocab


LABEL_MATCHES: tuple[str, ...] = ("strict", "mention")


def parse_label(
    text: str,
    labels: Sequence[str],
    aliases: Mapping[str, str] | None = None,
    *,
    match: LabelMatch = "strict",
) -> str | None:
    """The label a generated ``text`` names, or None when it names none (unparseable).

    ``strict`` (the default): the whole text, with case, inner whitespace and edge punctuation
    ignored, must be a label or an alias ("Positive." → positive; "not positive" → None).
    ``mention`` (opt-in, ``task.label_match: mention``): else the label or alias mentioned
    first as a whole word (longest on a tie), which reads "not positive" as positive: use it
    only for outputs known to be label-first prose.
    """
    return parse_labels([text], labels, aliases, match=match)[0]


def parse_labels(
    texts: Sequence[Any],
    labels: Sequence[str],
    aliases: Mapping[str, str] | None = None,
    *,
    match: LabelMatch = "strict",
) -> list[str | None]:
    """:func:`parse_label` for many texts, compiling the vocabulary once."""
    if match not in LABEL_MATCHES:
        raise MetricInputError(f"label_match must be one of {', '.join(LABEL_MATCHES)}: {match!r}")
    vocab = _vocabulary(labels, aliases or {})
    words = sorted(vocab, key=len, reverse=True)
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in words if w) + r")(?!\w)")
    out: list[str | None] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise MetricInputError(
                f"prediction {i} is {type(text).__name__}, not a string; pass generated text"
            )
        norm = _norm(text)
        hit = vocab.get(norm)
        if hit is None and words and match == "mention":
            m = pattern.search(norm)
            hit = vocab[m.group(1)] if m else None
        out.append(hit)
    return out


@dataclass(frozen=True, slots=True)
class ClassificationReport:
    """Per-class and averaged scores, the confusion matrix and the unparseable count."""

    labels: tuple[str, ...]
    precision: npt.NDArray[np.float64]
    recall: npt.NDArray[np.float64]
    f1: npt.NDArray[np.float64]
    support: npt.NDArray[np.int64]
    confusion: npt.NDArray[np.int64]  # rows: true labels; columns: labels + unparseable
    accuracy: float
    macro_f1: float
    micro_f1: float
    weighted_f1: float
    n_unparseable: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "per_class": {
                lab: {
                    "precision": float(self.precision[i]),
                    "recall": float(self.recall[i]),
                    "f1": float(self.f1[i]),
                    "support": int(self.support[i]),
                }
                for i, lab in enumerate(self.labels)
            },
            "confusion_matrix": self.confusion.tolist(),
            "confusion_columns": [*self.labels, UNPARSEABLE],
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "micro_f1": self.micro_f1,
            "weighted_f1": self.weighted_f1,
            "n_unparseable": self.n_unparseable,
        }


def _divide(num: npt.NDArray[np.float64], den: npt.NDArray[np.float64], zd: float) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return np.where(den == 0, zd, out)


def _codes(
    y_true: Sequence[Any], y_pred: Sequence[str | None], labels: Sequence[str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    if len(y_true) != len(y_pred):
        raise MetricInputError(
            f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}; they must align"
        )
    index = {lab: i for i, lab in enumerate(labels)}
    k = len(labels)
    try:
        t = np.fromiter((index[y] for y in y_true), dtype=np.int64, count=len(y_true))
    except (KeyError, TypeError):
        unknown = sorted({repr(y) for y in y_true if y not in index})[:5]
        raise MetricInputError(
            f"targets {', '.join(unknown)} are not in the label set {list(labels)}"
        ) from None
    p = np.fromiter(
        (index.get(y, k) if y is not None else k for y in y_pred), np.int64, len(y_pred)
    )
    return t, p


def classification_report(
    y_true: Sequence[Any],
    y_pred: Sequence[str | None],
    labels: Sequence[str],
    *,
    zero_division: float = 0.0,
) -> ClassificationReport:
    """Scores of parsed predictions (None = unparseable) against true labels.

    Matches ``sklearn.metrics.precision_recall_fscore_support(..., labels=labels)`` for every
    averaging mode, with unparseable predictions as a label outside ``labels``.
    """
    if len(y_true) == 0:
        raise MetricInputError("no samples: classification metrics need at least one")
    if not labels:
        raise MetricInputError("the label set is empty")
    k = len(labels)
    t, p = _codes(y_true, y_pred, labels)
    cm = np.bincount(t * (k + 1) + p, minlength=k * (k + 1)).reshape(k, k + 1)
    tp = np.diag(cm[:, :k]).astype(np.float64)
    predicted = cm[:, :k].sum(axis=0).astype(np.float64)
    support = cm.sum(axis=1)
    precision = _divide(tp, predicted, zero_division)
    recall = _divide(tp, support.astype(np.float64), zero_division)
    # 2tp / (predicted + support) is sklearn's F1 (= 2tp / (2tp + fp + fn)).
    f1 = _divide(2 * tp, predicted + support, zero_division)
    total = predicted.sum() + support.sum()
    micro_f1 = float(2 * tp.sum() / total) if total else float(zero_division)
    weighted = float(np.average(f1, weights=support)) if support.sum() else float(zero_division)
    return ClassificationReport(
        labels=tuple(labels),
        precision=precision,
        recall=recall,
        f1=f1,
        support=support,
        confusion=cm,
        accuracy=float(tp.sum() / len(t)),
        macro_f1=float(f1.mean()),
        micro_f1=micro_f1,
        weighted_f1=weighted,
        n_unparseable=int(cm[:, k].sum()),
    )


def _label_set(y_true: Sequence[Any], options: MetricOptions) -> tuple[str, ...]:
    if options.labels is not None:
        return tuple(options.labels)
    bad = [y for y in y_true if not isinstance(y, str)]
    if bad:
        raise MetricInputError(f"classification targets must be strings, got {bad[0]!r}")
    return tuple(sorted(set(y_true)))


def f1_from_confusion(k: int, average: str, zero_division: float) -> Any:
    """(B, k·(k+1)) flattened confusion matrices (rows: true label; columns: labels +
    unparseable) → (B,) F1 with ``average`` micro, macro or weighted, as scikit-learn."""

    def f1(sums: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        cm = sums.reshape(-1, k, k + 1)
        tp = np.einsum("bii->bi", cm[:, :, :k])
        predicted = cm[:, :, :k].sum(axis=1)
        support = cm.sum(axis=2)
        denom = predicted + support
        if average == "micro":
            tot = denom.sum(axis=1)
            return np.asarray(
                np.where(tot > 0, 2 * tp.sum(axis=1) / np.where(tot > 0, tot, 1), zero_division)
            )
        per_class = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), zero_division)
        if average == "macro":
            return np.asarray(per_class.mean(axis=1))
        total = support.sum(axis=1)
        weighted = (per_class * support).sum(axis=1) / np.where(total > 0, total, 1)
        return np.asarray(np.where(total > 0, weighted, zero_division))

    return f1


def f1_sufficient(
    t: npt.NDArray[np.int64], p: npt.NDArray[np.int64], k: int, average: str, zero_division: float
) -> SufficientStats:
    """F1 as a function of confusion-matrix counts: each sample adds 1 to its cell."""
    return SufficientStats(
        k * (k + 1), f1_from_confusion(k, average, zero_division), codes=(t * (k + 1) + p)
    )


@dataclass(frozen=True, slots=True)
class _Evaluated:
    report: ClassificationReport
    correct: npt.NDArray[np.float64]
    true_codes: npt.NDArray[np.int64]
    pred_codes: npt.NDArray[np.int64]
    zero_division: float


def _evaluate(y_true: Sequence[Any], y_pred: Sequence[Any], options: MetricOptions) -> _Evaluated:
    """Parse and tabulate once for every classification metric on the same outputs."""
    key = (
        "classification",
        options.labels,
        tuple(sorted((options.aliases or {}).items())),
        options.label_match,
        options.extra.get("zero_division", 0.0),
    )
    return shared((y_true, y_pred), key, lambda: _evaluate_now(y_true, y_pred, options))


def _evaluate_now(
    y_true: Sequence[Any], y_pred: Sequence[Any], options: MetricOptions
) -> _Evaluated:
    if len(y_true) != len(y_pred):
        raise MetricInputError(
            f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}; they must align"
        )
    labels = _label_set(y_true, options)
    parsed = parse_labels(y_pred, labels, options.aliases, match=options.label_match)
    zd = float(options.extra.get("zero_division", 0.0))
    report = classification_report(y_true, parsed, labels, zero_division=zd)
    t, p = _codes(y_true, parsed, labels)
    correct = (t == p).astype(np.float64)
    for array in (correct, t, p):  # shared by every metric on these outputs: never mutated
        array.setflags(write=False)
    return _Evaluated(report, correct, t, p, zd)


@metric("accuracy", shapes=["classification"], higher_is_better=True, binary=True)
def accuracy(
    y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions
) -> MetricResult:
    """Share of outputs whose parsed label equals the target (unparseable counts as wrong)."""
    ev = _evaluate(y_true, y_pred, options)
    return MetricResult("accuracy", ev.report.accuracy, ev.correct, {"report": ev.report.as_dict()})


def _f1_metric(name: str, attr: str) -> None:
    def fn(y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions) -> MetricResult:
        ev = _evaluate(y_true, y_pred, options)
        k = len(ev.report.labels)
        average = attr.split("_")[0]
        stats = f1_sufficient(ev.true_codes, ev.pred_codes, k, average, ev.zero_division)
        details = {"report": ev.report.as_dict()}
        value = float(getattr(ev.report, attr))
        return MetricResult(name, value, ev.correct, details, sufficient=stats)

    fn.__doc__ = f"{attr.replace('_', ' ')} over the label set (per-sample values: correctness)."
    metric(name, shapes=["classification"], higher_is_better=True, mean_of_samples=False)(fn)


_f1_metric("macro_f1", "macro_f1")
_f1_metric("micro_f1", "micro_f1")
_f1_metric("weighted_f1", "weighted_f1")


# ----------------------------------------------------- one class, and F-beta: metric families


def _class_scores(kind: str, k: int, zero_division: float, beta: float, index: int | None) -> Any:
    """(B, k·(k+1)) confusion sums → (B,) precision, recall or F-beta of class ``index``
    (macro average over classes when None), as scikit-learn's ``precision_recall_fscore``."""
    b2 = beta * beta

    def score(sums: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        cm = sums.reshape(-1, k, k + 1)
        tp = np.einsum("bii->bi", cm[:, :, :k])
        predicted = cm[:, :, :k].sum(axis=1)
        support = cm.sum(axis=2)
        if kind == "precision":
            num, den = tp, predicted
        elif kind == "recall":
            num, den = tp, support
        else:  # F-beta = (1 + β²) tp / (β² support + predicted); F1 at β = 1
            num, den = (1 + b2) * tp, b2 * support + predicted
        per_class = np.where(den > 0, num / np.where(den > 0, den, 1), zero_division)
        if index is None:
            return np.asarray(per_class.mean(axis=1))
        return np.asarray(per_class[:, index])

    return score


def _class_metric_spec(name: str, kind: str, label: str | None, beta: float) -> MetricSpec:
    what = {"precision": "precision", "recall": "recall", "fbeta": f"F{beta:g}"}[kind]

    def fn(y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions) -> MetricResult:
        ev = _evaluate(y_true, y_pred, options)
        labels = ev.report.labels
        if label is not None and label not in labels:
            raise MetricInputError(f"{name}: {label!r} is not a label; labels: {list(labels)}")
        k = len(labels)
        index = None if label is None else labels.index(label)
        stats = SufficientStats(
            k * (k + 1),
            _class_scores(kind, k, ev.zero_division, beta, index),
            codes=ev.true_codes * (k + 1) + ev.pred_codes,
        )
        value = float(stats.fn(stats.sums(np.arange(len(y_true))[None, :]))[0])
        details = {"report": ev.report.as_dict(), "class": label, "beta": beta}
        return MetricResult(name, value, ev.correct, details, sufficient=stats)

    scope = f"class {label!r}" if label is not None else "macro average over the labels"
    return MetricSpec(
        name=name,
        fn=fn,
        shapes=frozenset({"classification"}),
        higher_is_better=True,
        bounds=(0.0, 1.0),
        mean_of_samples=False,
        description=f"{what} of {scope} (per-sample values: correctness)",
        label=label,
    )


def _one_class_family(family: str, kind: str) -> None:
    """Register ``family[LABEL]``: the ``kind`` score (precision, recall, F1) of one class."""

    def factory(args: tuple[str, ...]) -> MetricSpec:
        if len(args) != 1 or not args[0]:
            usage = [f"{family}[LABEL], e.g. {family}[pii]"]
            raise UnknownNameError("metric", f"{family}[{', '.join(args)}]", usage)
        return _class_metric_spec(f"{family}[{args[0]}]", kind, args[0], 1.0)

    metric_family(family, f"{family}[LABEL]")(factory)


_one_class_family("precision", "precision")
_one_class_family("recall", "recall")
_one_class_family("f1", "fbeta")  # F1 is F-beta at beta = 1


@metric_family("fbeta", "fbeta[BETA] or fbeta[BETA, LABEL]")
def _fbeta_family(args: tuple[str, ...]) -> MetricSpec:
    usage = ["fbeta[BETA] (macro), fbeta[BETA, LABEL], e.g. fbeta[2, pii]"]
    try:
        beta = float(args[0]) if args else float("nan")
    except ValueError:
        beta = float("nan")
    if not 1 <= len(args) <= 2 or not (beta > 0 and np.isfinite(beta)):
        raise UnknownNameError("metric", f"fbeta[{', '.join(args)}]", usage)
    label = args[1] if len(args) == 2 else None
    name = f"fbeta[{beta:g}]" if label is None else f"fbeta[{beta:g}, {label}]"
    return _class_metric_spec(name, "fbeta", label, beta)

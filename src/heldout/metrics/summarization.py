"""Summarization: ROUGE identical to Google's ``rouge-score``, plus a faithfulness proxy.

ROUGE follows ``rouge_score.rouge_scorer`` exactly: same tokenisation (lower case, runs of
characters outside ``[a-z0-9]`` split tokens), the same optional Porter stemmer (NLTK's, as
rouge-score uses, on tokens longer than 3 characters), the same F-measure, and for several
references the best F-measure (``score_multi``). It is faster because:

- tokens are computed once per text and shared by every ROUGE type;
- n-gram overlap uses C-level ``Counter`` arithmetic;
- ROUGE-L's LCS length uses the bit-parallel algorithm of Hyyrö (2004) on Python integers,
  O(n · ceil(m / word)) instead of rouge-score's O(n · m) table of Python lists;
- ROUGE-Lsum, which needs the specific LCS that rouge-score's backtrack picks, uses the same
  table and backtracking rules, written tighter; stems are cached across texts.

``unsupported_rate`` is an offline faithfulness proxy (lower is better): the share of the
summary's numbers, capitalised spans (named-entity proxy) and content bigrams that do not occur
in the source text (the sample's input).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import pairwise
from typing import Any

import numpy as np

from heldout.errors import MetricInputError
from heldout.metrics._memo import shared
from heldout.metrics._registry import MetricOptions, MetricResult, metric

__all__ = ["RougeScore", "lcs_length", "rouge", "tokenize", "unsupported_claims"]

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_VALID = re.compile(r"^[a-z0-9]+$")
RougeScore = tuple[float, float, float]  # precision, recall, fmeasure


@lru_cache(maxsize=1)
def _stemmer() -> Callable[[str], str]:
    from nltk.stem import porter  # imported on first use: nltk is slow to import

    return lru_cache(maxsize=200_000)(porter.PorterStemmer().stem)


def tokenize(text: str, *, stem: bool = False) -> list[str]:
    """rouge-score's tokenizer: lower case, split on non-alphanumerics, optional stemming."""
    tokens = _NON_ALNUM.sub(" ", text.lower()).split()
    if stem:
        stemmer = _stemmer()
        tokens = [stemmer(t) if len(t) > 3 else t for t in tokens]
        tokens = [t for t in tokens if _VALID.match(t)]
    return tokens


def _fmeasure(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _ngram_score(target: list[str], pred: list[str], n: int) -> RougeScore:
    t: Counter[Any]
    p: Counter[Any]
    if n == 1:
        t, p = Counter(target), Counter(pred)
    else:
        t = Counter(zip(*(target[i:] for i in range(n)), strict=False))
        p = Counter(zip(*(pred[i:] for i in range(n)), strict=False))
    overlap = sum((t & p).values())
    precision = overlap / max(sum(p.values()), 1)
    recall = overlap / max(sum(t.values()), 1)
    return precision, recall, _fmeasure(precision, recall)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (bit-parallel, Hyyrö 2004)."""
    if len(a) < len(b):
        a, b = b, a
    masks = _token_masks(a)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        m = masks.get(tok)
        if m:
            u = v & m
            v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def _lcs_score(target: list[str], pred: list[str]) -> RougeScore:
    if not target or not pred:
        return 0.0, 0.0, 0.0
    lcs = lcs_length(target, pred)
    precision, recall = lcs / len(pred), lcs / len(target)
    return precision, recall, _fmeasure(precision, recall)


def _token_masks(tokens: Sequence[str]) -> dict[str, int]:
    """Bit ``j`` of ``masks[tok]`` is set where ``tokens[j] == tok``."""
    masks: dict[str, int] = {}
    for j, tok in enumerate(tokens):
        masks[tok] = masks.get(tok, 0) | (1 << j)
    return masks


def _lcs_indices(ref: list[str], can: list[str], masks: dict[str, int] | None = None) -> list[int]:
    """The LCS rouge-score's ``lcs_ind`` returns (same table, same tie-breaking).

    The table is never built: row ``i`` of the LCS table is one bit-parallel vector
    (Hyyrö 2004) over the candidate's positions, and ``table[i][j]`` is ``j`` minus the
    set bits of row ``i`` below ``j``, so the backtrack reads the cells it needs.
    """
    cols = len(can)
    if masks is None:
        masks = _token_masks(can)
    full = (1 << cols) - 1
    v = full
    rows_v = [v]
    for tok in ref:
        m = masks.get(tok)
        if m:
            u = v & m
            v = ((v + u) | (v - u)) & full
        rows_v.append(v)
    out: list[int] = []
    remaining = cols - v.bit_count()  # the LCS length: the walk stops once all are found
    i, j = len(ref), cols
    while remaining:
        if ref[i - 1] == can[j - 1]:
            out.append(i - 1)
            remaining -= 1
            i -= 1
            j -= 1
        else:
            below = (1 << (j - 1)) - 1
            left = (j - 1) - (rows_v[i] & below).bit_count()
            up = j - (rows_v[i - 1] & (below | (1 << (j - 1)))).bit_count()
            if left > up:
                j -= 1
            else:
                i -= 1
    out.reverse()
    return out


def _lsum_score(target_sents: list[list[str]], pred_sents: list[list[str]]) -> RougeScore:
    if not target_sents or not pred_sents:
        return 0.0, 0.0, 0.0
    if len(target_sents) == len(pred_sents) == 1:
        # one sentence each: the union LCS is one LCS, whose tokens are in both texts, so
        # no count clips a hit and ROUGE-Lsum is ROUGE-L (its length needs no backtrack)
        return _lcs_score(target_sents[0], pred_sents[0])
    m = sum(map(len, target_sents))
    n = sum(map(len, pred_sents))
    if not n or not m:
        return 0.0, 0.0, 0.0
    counts_r = Counter(t for s in target_sents for t in s)
    counts_c = Counter(t for s in pred_sents for t in s)
    hits = 0
    cans = [(can, _token_masks(can)) for can in pred_sents if can]
    for ref in target_sents:
        union: set[int] = set()
        if ref:
            for can, masks in cans:
                union.update(_lcs_indices(ref, can, masks))
        for idx in sorted(union):
            tok = ref[idx]
            if counts_c[tok] > 0 and counts_r[tok] > 0:
                hits += 1
                counts_c[tok] -= 1
                counts_r[tok] -= 1
    recall, precision = hits / m, hits / n
    return precision, recall, _fmeasure(precision, recall)


def _sentences(text: str, stem: bool) -> list[list[str]]:
    return [tokenize(s, stem=stem) for s in text.split("\n") if s]


ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def rouge(
    targets: Sequence[str | Sequence[str]],
    predictions: Sequence[str],
    rouge_types: Sequence[str] = ROUGE_TYPES,
    *,
    stem: bool = False,
) -> dict[str, np.ndarray[Any, np.dtype[np.float64]]]:
    """Per-sample ROUGE (precision, recall, fmeasure) arrays of shape (n, 3) per type.

    Equal to ``rouge_score.rouge_scorer.RougeScorer(rouge_types, use_stemmer=stem)``'s
    ``score`` (one reference) or ``score_multi`` (several: best F-measure, first on ties).
    Sentences for ROUGE-Lsum are separated by newlines, as in rouge-score's default.
    """
    if len(targets) != len(predictions):
        raise MetricInputError(
            f"y_true has {len(targets)} items but y_pred has {len(predictions)}; they must align"
        )
    for rt in rouge_types:
        if rt not in ("rougeL", "rougeLsum") and not re.fullmatch(r"rouge[1-9]", rt):
            raise MetricInputError(
                f"unknown ROUGE type {rt!r}; use rouge1..rouge9, rougeL, rougeLsum"
            )
    out = {rt: np.zeros((len(predictions), 3), dtype=np.float64) for rt in rouge_types}
    need_tokens = any(rt != "rougeLsum" for rt in rouge_types)
    for i, (target, pred) in enumerate(zip(targets, predictions, strict=True)):
        if not isinstance(pred, str):
            raise MetricInputError(f"prediction {i} is {type(pred).__name__}, not a string")
        refs = [target] if isinstance(target, str) else list(target)
        if not refs or not all(isinstance(r, str) for r in refs):
            raise MetricInputError(
                f"reference {i} must be a string or a non-empty list of strings, got {target!r}"
            )
        p_tok = tokenize(pred, stem=stem) if need_tokens else []
        p_sents = _sentences(pred, stem) if "rougeLsum" in rouge_types else []
        r_toks = [tokenize(r, stem=stem) for r in refs] if need_tokens else []
        for rt in rouge_types:
            best: RougeScore | None = None
            for k, ref in enumerate(refs):
                if rt == "rougeLsum":
                    score = _lsum_score(_sentences(ref, stem), p_sents)
                elif rt == "rougeL":
                    score = _lcs_score(r_toks[k], p_tok)
                else:
                    score = _ngram_score(r_toks[k], p_tok, int(rt[5:]))
                if best is None or score[2] > best[2]:
                    best = score
            assert best is not None  # refs is non-empty
            out[rt][i] = best
    return out


_PARTS = {"precision": 0, "recall": 1, "fmeasure": 2}
_TOKEN_TYPES = tuple(t for t in ROUGE_TYPES if t != "rougeLsum")


def _read_only(
    scores: dict[str, np.ndarray[Any, np.dtype[np.float64]]],
) -> dict[str, np.ndarray[Any, np.dtype[np.float64]]]:
    for array in scores.values():
        array.setflags(write=False)
    return scores


def _register_rouge(rouge_type: str, part: str) -> None:
    name = rouge_type if part == "fmeasure" else f"{rouge_type}_{part}"
    column = _PARTS[part]

    def fn(y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions) -> MetricResult:
        if not y_true:
            raise MetricInputError("no samples: ROUGE needs at least one")
        stem = bool(options.extra.get("stem", False))
        if isinstance(y_true, tuple) and isinstance(y_pred, tuple):
            # a run's outputs (tuples, see _memo): ROUGE-N and ROUGE-L share one tokenisation,
            # and each type's precision, recall and F share one pass
            group = ("rougeLsum",) if rouge_type == "rougeLsum" else _TOKEN_TYPES
            every = shared(
                (y_true, y_pred),
                ("rouge", stem, group),
                lambda: _read_only(rouge(y_true, y_pred, group, stem=stem)),
            )
            scores = every[rouge_type]
        else:
            scores = rouge(y_true, y_pred, (rouge_type,), stem=stem)[rouge_type]
        values = scores[:, column].copy()
        details = {
            "precision": float(scores[:, 0].mean()),
            "recall": float(scores[:, 1].mean()),
            "fmeasure": float(scores[:, 2].mean()),
            "stemmed": stem,
        }
        return MetricResult(name, float(values.mean()), values, details)

    fn.__doc__ = f"Mean {rouge_type} {part}, identical to rouge-score (task.use_stemmer)."
    metric(
        name,
        shapes=["summarization"],
        higher_is_better=True,
        default_secondary=part == "fmeasure",
    )(fn)


for _type in ROUGE_TYPES:
    for _part in _PARTS:
        _register_rouge(_type, _part)

_EDGE_PUNCT = "\"'“”‘’()[]{}«»,;:.!?"
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_STOP = frozenset(
    """a an the and or but if of at by for with about against between into through during
    before after above below to from up down in out on off over under again further then
    once here there when where why how all any both each few more most other some such no
    nor not only own same so than too very s t can will just don should now is are was were
    be been being have has had having do does did doing i me my we our you your he him his
    she her it its they them their what which who whom this that these those am would could
    also said""".split()  # noqa: SIM905
)


def _claims(text: str) -> tuple[set[str], set[str], set[tuple[str, str]]]:
    numbers = {n.replace(",", "") for n in _NUMBER.findall(text)}
    entities: set[str] = set()
    for sentence in re.split(r"(?<=[.!?])\s+|\n", text):
        run: list[str] = []
        for k, raw in enumerate(sentence.split()):
            core = raw.strip(_EDGE_PUNCT)
            capital = (
                bool(core)
                and core[0].isalpha()
                and core[0].isupper()
                and (k > 0 or core.casefold() not in _STOP)
            )
            if capital:
                run.append(core)
            if run and (not capital or raw[-1:] in _EDGE_PUNCT):
                entities.add(" ".join(run))
                run = []
        if run:
            entities.add(" ".join(run))
    tokens = [w.casefold() for w in _WORD.findall(text)]
    content = [t for t in tokens if t not in _STOP]
    bigrams = set(pairwise(content))
    return numbers, entities, bigrams


def unsupported_claims(summary: str, source: str) -> tuple[dict[str, list[Any]], int]:
    """Numbers, capitalised spans and content bigrams of ``summary`` absent from ``source``,
    and how many such claims the summary makes in all."""
    s_num, s_ent, s_bi = _claims(summary)
    src_num, _, src_bi = _claims(source)
    src_text = " ".join(source.split()).casefold()
    return {
        "numbers": sorted(s_num - src_num),
        "entities": sorted(e for e in s_ent if e.casefold() not in src_text),
        "bigrams": sorted(s_bi - src_bi),
    }, len(s_num) + len(s_ent) + len(s_bi)


@metric("unsupported_rate", shapes=["summarization"], higher_is_better=False)
def unsupported_rate(
    y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions
) -> MetricResult:
    """Share of the summary's numbers, entities and content bigrams not found in the source."""
    sources = options.inputs
    if sources is None:
        raise MetricInputError("unsupported_rate needs the source texts (the sample inputs)")
    if not (len(sources) == len(y_pred) == len(y_true)):
        raise MetricInputError(
            f"{len(y_true)} targets, {len(y_pred)} predictions and {len(sources)} sources: "
            "they must align"
        )
    if not y_pred:
        raise MetricInputError("no samples: unsupported_rate needs at least one")
    values = np.zeros(len(y_pred), dtype=np.float64)
    examples: list[dict[str, Any]] = []
    for i, (pred, src) in enumerate(zip(y_pred, sources, strict=True)):
        if not isinstance(pred, str):
            raise MetricInputError(f"prediction {i} is {type(pred).__name__}, not a string")
        claims, total = unsupported_claims(pred, src)
        bad = sum(len(v) for v in claims.values())
        values[i] = bad / total if total else 0.0
        if bad and len(examples) < 20:
            examples.append({"index": i, **claims})
    return MetricResult("unsupported_rate", float(values.mean()), values, {"examples": examples})

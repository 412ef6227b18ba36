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
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any

import numpy as np

from heldout.errors import MetricInputError
from heldout.metrics._memo import shared
from heldout.metrics._registry import MetricOptions, MetricResult, metric

__all__ = ["RougeScore", "lcs_length", "rouge", "tokenize", "unsupported_claims"]

_ALNUM = re.compile(r"[a-z0-9]+")
_VALID = re.compile(r"^[a-z0-9]+$")
RougeScore = tuple[float, float, float]  # precision, recall, fmeasure


@lru_cache(maxsize=1)
def _stemmer() -> Callable[[str], str]:
    from nltk.stem import porter  # imported on first use: nltk is slow to import

    return lru_cache(maxsize=200_000)(porter.PorterStemmer().stem)


def tokenize(text: str, *, stem: bool = False) -> list[str]:
    """rouge-score's tokenizer: lower case, split on non-alphanumerics, optional stemming."""
    # rouge-score replaces runs outside [a-z0-9] with spaces and splits: the runs inside
    tokens = _ALNUM.findall(text.lower())
    if stem:
        stemmer = _stemmer()
        tokens = [stemmer(t) if len(t) > 3 else t for t in tokens]
        tokens = [t for t in tokens if _VALID.match(t)]
    return tokens


def _fmeasure(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _ids(token_lists: Sequence[list[str]], vocab: dict[str, int]) -> tuple[Any, Any]:
    """Token ids of every list, concatenated, and the row offsets (``len + 1`` of them)."""
    lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
    offsets = np.zeros(len(token_lists) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = [vocab.setdefault(t, len(vocab)) for tokens in token_lists for t in tokens]
    return np.asarray(flat, dtype=np.int64), offsets


_KEY_LIMIT = 1 << 61  # row, n-gram and side packed into one int64 key stay below this


def _dense(values: Any) -> tuple[Any, int]:
    """Values renumbered 0..k-1 (equal values, equal numbers), and k."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    change = np.empty(len(values), dtype=bool)
    change[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=change[1:])
    out = np.empty(len(values), dtype=np.int64)
    out[order] = np.cumsum(change) - 1
    return out, int(change.sum())


def _ngram_counts(ref: tuple[Any, Any], pred: tuple[Any, Any], n: int) -> tuple[Any, Any, Any]:
    """Per pair of rows: clipped n-gram overlap, reference n-grams, predicted n-grams.

    Each n-gram becomes one integer (token ids packed base ``vocabulary``, renumbered when the
    packing would overflow), each occurrence a key ``(row, n-gram, side)``; one sort groups
    equal n-grams of a row, and the overlap is the smaller of the two sides' counts: the same
    ``Counter & Counter`` arithmetic as rouge-score's, for all rows at once.
    """
    rows = len(ref[1]) - 1
    starts, row_of, totals = [], [], []
    for _, offsets in (ref, pred):
        grams = np.maximum(np.diff(offsets) - n + 1, 0)
        row = np.repeat(np.arange(rows, dtype=np.int64), grams)
        first = np.arange(int(grams.sum()), dtype=np.int64)
        first -= np.repeat(np.cumsum(grams) - grams, grams)
        starts.append(first + offsets[:-1][row])
        row_of.append(row)
        totals.append(grams.astype(np.float64))
    flats = (ref[0], pred[0])
    vocab = int(max(ref[0].max(initial=0), pred[0].max(initial=0))) + 1
    ids = np.concatenate([f[s] for f, s in zip(flats, starts, strict=True)])
    span = vocab
    for k in range(1, n):
        if span * vocab >= _KEY_LIMIT:
            ids, span = _dense(ids)
        ids = ids * vocab + np.concatenate([f[s + k] for f, s in zip(flats, starts, strict=True)])
        span *= vocab
    if 2 * max(rows, 1) * span >= _KEY_LIMIT:
        ids, span = _dense(ids)
    cut = len(starts[0])
    keys = (np.concatenate(row_of) * span + ids) * 2
    keys[cut:] += 1  # the prediction's side
    keys.sort()
    gram = keys >> 1
    first = np.flatnonzero(np.r_[True, gram[1:] != gram[:-1]]) if len(keys) else keys
    in_pred = np.add.reduceat(keys & 1, first) if len(keys) else keys
    in_ref = np.diff(np.r_[first, len(keys)]) - in_pred
    hit = np.minimum(in_ref, in_pred)
    overlap = np.bincount(gram[first] // span, weights=hit, minlength=rows)
    return overlap, totals[0], totals[1]


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


@dataclass(frozen=True, slots=True)
class _References:
    """The reference side of a ROUGE pass, shared by every model scored on the same targets:
    one row per (sample, reference), its text and token ids (the tokens themselves are not
    kept: a million references' token strings would cost gigabytes)."""

    sample: Any  # (rows,) int64: the sample each row belongs to
    texts: list[str]
    vocab: dict[str, int]
    ids: tuple[Any, Any]


def _reference_rows(targets: Sequence[Any]) -> tuple[list[int], list[str]]:
    """One row per (sample, reference): the sample's index and the reference text."""
    sample: list[int] = []
    texts: list[str] = []
    for i, target in enumerate(targets):
        refs = [target] if isinstance(target, str) else target
        if (
            not isinstance(refs, list | tuple)
            or not refs
            or not all(isinstance(r, str) for r in refs)
        ):
            raise MetricInputError(
                f"reference {i} must be a string or a non-empty list of strings, got {target!r}"
            )
        sample.extend([i] * len(refs))
        texts.extend(refs)
    return sample, texts


def _references(targets: Sequence[Any], stem: bool) -> _References:
    sample, texts = _reference_rows(targets)
    vocab: dict[str, int] = {}
    ids = _ids([tokenize(t, stem=stem) for t in texts], vocab)
    return _References(np.asarray(sample, dtype=np.int64), texts, vocab, ids)


def _segments(ids: tuple[Any, Any], rows: Any) -> tuple[Any, Any]:
    """The token ids of the chosen rows, concatenated, with their own offsets."""
    flat, offsets = ids
    lengths = (offsets[1:] - offsets[:-1])[rows]
    out = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    within = np.arange(int(out[-1]), dtype=np.int64) - np.repeat(out[:-1], lengths)
    return flat[np.repeat(offsets[:-1][rows], lengths) + within], out


def _lcs_lanes(a: tuple[Any, Any], b: tuple[Any, Any]) -> Any:
    """LCS lengths of row pairs whose ``a`` side has 1..64 tokens: Hyyrö's bit-parallel
    recurrence on one uint64 lane per row, all rows a step at a time over ``b``'s tokens.

    ``a`` is laid out as a (rows, width) matrix; a step compares each row's next ``b`` token
    with it and packs the equal positions into that row's match mask. Rows are ordered by
    ``b`` length, longest first, so the rows still running are always a leading slice."""
    (a_flat, a_off), (b_flat, b_off) = a, b
    a_len, b_len = np.diff(a_off), np.diff(b_off)
    order = np.argsort(-b_len, kind="stable")
    a_len, b_len, b_start = a_len[order], b_len[order], b_off[:-1][order]
    width = 8 * -(-int(a_len.max(initial=1)) // 8)  # bytes of the packed masks
    rows = len(order)
    matrix = np.full((rows, width), -1, dtype=np.int64)
    rank = np.empty(rows, dtype=np.int64)
    rank[order] = np.arange(rows)
    row = np.repeat(rank, np.diff(a_off))
    matrix[row, np.arange(len(a_flat)) - np.repeat(a_off[:-1], np.diff(a_off))] = a_flat
    full = np.where(
        a_len >= 64, np.uint64(2**64 - 1), (np.uint64(1) << a_len.astype(np.uint64)) - np.uint64(1)
    ).astype(np.uint64)
    v = full.copy()
    packed = np.zeros((rows, 8), dtype=np.uint8)
    # rows with more than k tokens on the b side: -len <= -(k + 1) in the ascending order
    ends = np.searchsorted(-b_len, -np.arange(1, int(b_len.max(initial=0)) + 1), "right")
    for k, count in enumerate(ends.tolist()):
        token = b_flat[b_start[:count] + k]
        hits = matrix[:count] == token[:, None]
        packed[:count, : width // 8] = np.packbits(hits, axis=1, bitorder="little")
        m = packed[:count].view("<u8").ravel()
        lane = v[:count]
        u = lane & m
        v[:count] = ((lane + u) | (lane - u)) & full[:count]
    out = np.empty(rows, dtype=np.int64)
    out[order] = a_len - np.bitwise_count(v)
    return out


def _lcs_rows(refs: _References, pred_ids: tuple[Any, Any], preds: list[str], stem: bool) -> Any:
    """LCS length of each row's reference and prediction. The LCS is symmetric, so the side
    with at most 64 tokens takes the bit lane; rows where both are longer (rare in
    summarization) run the same recurrence on Python integers."""
    r_len, p_len = np.diff(refs.ids[1]), np.diff(pred_ids[1])
    out = np.zeros(len(r_len), dtype=np.float64)
    live = (r_len > 0) & (p_len > 0)
    for lane, other, rows in (
        (refs.ids, pred_ids, np.flatnonzero(live & (r_len <= 64))),
        (pred_ids, refs.ids, np.flatnonzero(live & (r_len > 64) & (p_len <= 64))),
    ):
        if len(rows):
            out[rows] = _lcs_lanes(_segments(lane, rows), _segments(other, rows))
    for k in np.flatnonzero(live & (r_len > 64) & (p_len > 64)).tolist():
        out[k] = lcs_length(tokenize(refs.texts[k], stem=stem), tokenize(preds[k], stem=stem))
    return out


def _scores(hits: Any, ref_total: Any, pred_total: Any) -> Any:
    """(rows, 3) precision, recall and F-measure, with rouge-score's float operations."""
    precision = hits / np.maximum(pred_total, 1)
    recall = hits / np.maximum(ref_total, 1)
    total = precision + recall
    f = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)
    return np.stack([precision, recall, f], axis=1)


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
    The reference side (token ids) is computed once per ``targets`` tuple and
    shared by every model scored against it.
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
    for i, pred in enumerate(predictions):
        if not isinstance(pred, str):
            raise MetricInputError(f"prediction {i} is {type(pred).__name__}, not a string")
    if all(rt == "rougeLsum" for rt in rouge_types):  # Lsum alone: sentence by sentence
        sample, texts = _reference_rows(targets)
        scores = np.array(
            [
                _lsum_score(_sentences(t, stem), _sentences(predictions[i], stem))
                for t, i in zip(texts, sample, strict=True)
            ],
            dtype=np.float64,
        ).reshape(-1, 3)
        best = _best_per_sample(scores, np.asarray(sample), len(predictions))
        return dict.fromkeys(rouge_types, best)
    refs = shared((targets,), ("rouge-references", stem), lambda: _references(targets, stem))
    tokens = [tokenize(p, stem=stem) for p in predictions]
    rows = refs.sample.tolist()
    row_texts = (
        list(predictions) if len(rows) == len(predictions) else [predictions[i] for i in rows]
    )
    pred_ids = _ids(
        tokens if len(rows) == len(predictions) else [tokens[i] for i in rows], dict(refs.vocab)
    )
    del tokens
    ref_total = np.diff(refs.ids[1]).astype(np.float64)
    pred_total = np.diff(pred_ids[1]).astype(np.float64)
    per_row: dict[str, Any] = {}
    lcs = None
    for rt in rouge_types:
        if rt in ("rougeL", "rougeLsum") and lcs is None:
            lcs = _scores(_lcs_rows(refs, pred_ids, row_texts, stem), ref_total, pred_total)
        if rt == "rougeL":
            per_row[rt] = lcs
        elif rt == "rougeLsum":
            per_row[rt] = _lsum_rows(refs, predictions, rows, lcs, stem)
        else:
            per_row[rt] = _scores(*_ngram_counts(refs.ids, pred_ids, int(rt[5:])))
    return {
        rt: _best_per_sample(scores, refs.sample, len(predictions))
        for rt, scores in per_row.items()
    }


def _lsum_rows(
    refs: _References, predictions: Sequence[str], rows: list[int], lcs: Any, stem: bool
) -> Any:
    """ROUGE-Lsum per row: where neither text has a line break, one sentence each, and that is
    ROUGE-L (the union LCS is one LCS, whose tokens both texts hold, so no count clips a hit);
    otherwise rouge-score's union-LCS over sentences."""
    out = lcs.copy()
    for k, (text, i) in enumerate(zip(refs.texts, rows, strict=True)):
        pred = predictions[i]
        if "\n" in text or "\n" in pred or not text or not pred:
            out[k] = _lsum_score(_sentences(text, stem), _sentences(pred, stem))
    return out


def _best_per_sample(scores: Any, sample: Any, n: int) -> Any:
    """Each sample's best row by F-measure (the first on ties), as ``score_multi``."""
    if len(sample) == n:
        return np.ascontiguousarray(scores)
    out = np.zeros((n, 3), dtype=np.float64)
    best = np.full(n, -1.0)
    for k, i in enumerate(sample.tolist()):
        if scores[k, 2] > best[i]:
            best[i] = scores[k, 2]
            out[i] = scores[k]
    return out


_PARTS = {"precision": 0, "recall": 1, "fmeasure": 2}


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
            # a run's outputs (tuples, see _memo): every ROUGE type, each with its precision,
            # recall and F, comes from one pass over one tokenisation
            every = shared(
                (y_true, y_pred),
                ("rouge", stem),
                lambda: _read_only(rouge(y_true, y_pred, ROUGE_TYPES, stem=stem)),
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
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n")
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
    # a text with no upper-case letter has no capitalised span
    for sentence in () if text.islower() else _SENTENCE.split(text):
        run: list[str] = []
        for k, raw in enumerate(sentence.split()):
            lead = raw[0]
            if lead in _EDGE_PUNCT:
                core = raw.strip(_EDGE_PUNCT)
                capital = (
                    bool(core)
                    and core[0].isalpha()
                    and core[0].isupper()
                    and (k > 0 or core.casefold() not in _STOP)
                )
            elif lead.isupper() and lead.isalpha():  # core starts with lead
                core = raw.strip(_EDGE_PUNCT)
                capital = k > 0 or core.casefold() not in _STOP
            else:
                capital = False
            if capital:
                run.append(core)
            if run and (not capital or raw[-1:] in _EDGE_PUNCT):
                entities.add(" ".join(run))
                run = []
        if run:
            entities.add(" ".join(run))
    # ASCII case folding is lower-casing, which keeps every word boundary
    tokens = (
        _WORD.findall(text.lower())
        if text.isascii()
        else [w.casefold() for w in _WORD.findall(text)]
    )
    content = [t for t in tokens if t not in _STOP]
    bigrams = set(pairwise(content))
    return numbers, entities, bigrams


@dataclass(frozen=True, slots=True)
class _Source:
    """What a summary's claims are checked against: the source's numbers and content bigrams,
    and its text with whitespace normalised and case folded."""

    numbers: set[str]
    bigrams: set[tuple[str, str]]
    text: str


def _source(text: str) -> _Source:
    numbers, _, bigrams = _claims(text)
    return _Source(numbers, bigrams, " ".join(text.split()).casefold())


def unsupported_claims(summary: str, source: str | _Source) -> tuple[dict[str, list[Any]], int]:
    """Numbers, capitalised spans and content bigrams of ``summary`` absent from ``source``,
    and how many such claims the summary makes in all."""
    s_num, s_ent, s_bi = _claims(summary)
    src = _source(source) if isinstance(source, str) else source
    src_num, src_bi, src_text = src.numbers, src.bigrams, src.text
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
    # the sources are the same for every model scored on them: parsed once per run
    parsed = shared((sources,), "summary-sources", lambda: [_source(t) for t in sources])
    for i, (pred, src) in enumerate(zip(y_pred, parsed, strict=True)):
        if not isinstance(pred, str):
            raise MetricInputError(f"prediction {i} is {type(pred).__name__}, not a string")
        claims, total = unsupported_claims(pred, src)
        bad = sum(len(v) for v in claims.values())
        values[i] = bad / total if total else 0.0
        if bad and len(examples) < 20:
            examples.append({"index": i, **claims})
    return MetricResult("unsupported_rate", float(values.mean()), values, {"examples": examples})

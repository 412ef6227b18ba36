"""Leak check: which gold samples appear in the training data.

Three detectors, each with a similarity in [0, 1]:

- ``exact``: the gold input equals a training text (or one string field of a training row) after
  normalisation (Unicode NFKC, case, punctuation, whitespace).
- ``ngram``: the share of the gold input's word n-grams (default 13, as lm-evaluation-harness
  uses for decontamination) found in one training row. An inverted index over the gold n-grams
  is streamed against the training rows: no all-pairs loop.
- ``jaccard``: Jaccard similarity of character 5-gram shingle sets, for short gold inputs (fewer
  than ``short_words`` words), where word 13-grams are too coarse: "Ana moved to Porto in May"
  vs "... in June". Candidates come from MinHash LSH (numpy, seeded, bands chosen for a recall
  floor at the threshold), then each candidate's similarity is computed exactly, so reported
  values are exact Jaccard indices. Training rows too long to reach the threshold against any
  short gold input (``J <= |A| / |B|``) are not shingled at all.

Cost is roughly linear in the number of training tokens (100k training rows x 10k gold rows run
in seconds; see ``benchmarks/bench_leak.py``).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from heldout.data._readers import iter_records
from heldout.data._sample import Sample
from heldout.errors import DataError, HeldoutError, Problem

__all__ = [
    "LeakHit",
    "LeakOptions",
    "LeakReport",
    "find_leaks",
    "iter_train_texts",
    "lsh_shape",
    "normalize",
]

_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)
_SPACE = re.compile(r"\s+")
_U64 = np.uint64
_MASK32 = np.uint64(0xFFFFFFFF)


def normalize(text: str) -> str:
    """Canonical form for comparison: NFKC, lower case, punctuation to spaces, single spaces."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


@dataclass(frozen=True, slots=True)
class LeakOptions:
    """Thresholds of the detectors. A gold sample is a hit when any detector reaches its own."""

    ngram: int = 13
    ngram_threshold: float = 0.2
    shingle: int = 5
    jaccard_threshold: float = 0.5
    short_words: int = 40
    max_postings: int = 100
    num_perm: int = 128
    lsh_recall: float = 0.995
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.ngram < 1:
            problems.append(Problem("ngram", "must be ≥ 1"))
        if self.shingle < 1 or self.short_words < 1:
            problems.append(Problem("shingle/short_words", "must be ≥ 1"))
        for name in ("ngram_threshold", "jaccard_threshold"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                problems.append(Problem(name, f"must be in (0, 1], got {value}"))
        if self.num_perm < 8:
            problems.append(Problem("num_perm", "must be ≥ 8"))
        if not 0.5 <= self.lsh_recall < 1.0:
            problems.append(Problem("lsh_recall", "must be in [0.5, 1)"))
        if problems:
            raise HeldoutError("invalid leak options: " + "; ".join(map(str, problems)))


@dataclass(frozen=True, slots=True)
class LeakHit:
    """One gold sample found in one training row."""

    gold_id: str
    train_where: str
    kind: Literal["exact", "ngram", "jaccard"]
    similarity: float


@dataclass(slots=True)
class LeakReport:
    """Every hit at or above threshold, best first, and what was compared."""

    hits: list[LeakHit]
    n_gold: int
    n_train: int
    options: LeakOptions
    common_ngrams_ignored: int = 0
    flagged: list[str] = field(default_factory=list)

    @property
    def leaked(self) -> bool:
        return bool(self.hits)


def _string_leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _string_leaves(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _string_leaves(v)


def iter_train_texts(path: str | Path) -> Iterator[tuple[str, list[str]]]:
    """Yield ``(where, string fields)`` for every training row (JSONL, CSV or Parquet).

    All string values are used, nested ones included (chat ``messages``, prompt/completion ...).
    Unreadable rows raise one :class:`DataError` at the end, listing them.
    """
    problems: list[Problem] = []
    for where, rec in iter_records(Path(path)):
        if isinstance(rec, Problem):
            problems.append(rec)
            continue
        yield where, list(_string_leaves(rec))
    if problems:
        raise DataError(problems[:50], source=str(path), more=max(0, len(problems) - 50))


def _ngrams(tokens: Sequence[str], n: int) -> set[int]:
    if len(tokens) < n:
        return set()
    return {hash(g) for g in zip(*(tokens[i:] for i in range(n)), strict=False)}


def _shingles(text: str, n: int) -> set[int]:
    if not text:
        return set()
    if len(text) < n:
        return {hash(text)}
    return {hash(text[i : i + n]) for i in range(len(text) - n + 1)}


class _MinHash:
    """Seeded multiply-shift MinHash signatures, computed for many documents at once."""

    def __init__(self, num_perm: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | _U64(1)
        self.b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)

    def signatures(self, docs: Sequence[set[int]]) -> npt.NDArray[np.uint64]:
        sig = np.full((len(docs), self.a.size), np.iinfo(np.uint64).max, dtype=np.uint64)
        lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        nonempty = np.flatnonzero(lengths)
        if nonempty.size == 0:
            return sig
        flat = np.fromiter(
            (h for i in nonempty.tolist() for h in docs[i]),
            dtype=np.int64,
            count=int(lengths.sum()),
        ).view(np.uint64)
        starts = np.concatenate(([0], np.cumsum(lengths[nonempty])[:-1]))
        # Chunk over documents so the (perm x shingle) matrix stays within ~64 MB.
        budget = max(1, 8_000_000 // self.a.size)
        i = 0
        while i < nonempty.size:
            j = i
            total = 0
            while j < nonempty.size and (total == 0 or total + lengths[nonempty[j]] <= budget):
                total += int(lengths[nonempty[j]])
                j += 1
            lo = int(starts[i])
            chunk = flat[lo : lo + total]
            with np.errstate(over="ignore"):
                hashed = (self.a[:, None] * chunk[None, :] + self.b[:, None]) >> _U64(32)
            sig[nonempty[i:j]] = np.minimum.reduceat(hashed, starts[i:j] - lo, axis=1).T
            i = j
        return sig


def lsh_shape(threshold: float, num_perm: int, recall: float) -> tuple[int, int]:
    """(bands, rows) with the most rows per band whose chance of proposing a pair at exactly
    ``threshold`` Jaccard, ``1 - (1 - t**rows)**bands``, is at least ``recall``.

    More rows per band mean fewer spurious candidates; the recall floor keeps true pairs.
    """
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if 1.0 - (1.0 - threshold**rows) ** bands >= recall:
            best = (bands, rows)
    return best


def _band_keys(sig: npt.NDArray[np.uint64], bands: int, rows: int) -> npt.NDArray[np.uint64]:
    keys = np.zeros((sig.shape[0], bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for r in range(rows):
            keys = keys * _U64(0x9E3779B97F4A7C15) + sig[:, r::rows][:, :bands]
    return keys


def find_leaks(
    gold: Sequence[Sample],
    train: Iterable[tuple[str, Sequence[str]]],
    options: LeakOptions | None = None,
) -> LeakReport:
    """Compare gold inputs with training rows; return every hit, best first.

    ``train`` yields ``(where, texts)`` as :func:`iter_train_texts` does.
    """
    opts = options or LeakOptions()
    gold_tokens = [normalize(s.input).split() for s in gold]
    exact_index: dict[str, list[int]] = defaultdict(list)
    for gi, toks in enumerate(gold_tokens):
        exact_index[" ".join(toks)].append(gi)

    postings: dict[int, list[int]] = defaultdict(list)
    for gi, toks in enumerate(gold_tokens):
        for h in _ngrams(toks, opts.ngram):
            postings[h].append(gi)
    common = {h for h, ids in postings.items() if len(ids) > opts.max_postings}
    for h in common:
        del postings[h]
    denom = Counter(gi for ids in postings.values() for gi in ids)

    gold_shingles = [
        _shingles(" ".join(t), opts.shingle) if len(t) < opts.short_words else set()
        for t in gold_tokens
    ]
    # Jaccard of A and B is at most |A| / |B|: longer training rows cannot reach the threshold.
    max_train_shingles = max(map(len, gold_shingles), default=0) / opts.jaccard_threshold
    bands, rows = lsh_shape(opts.jaccard_threshold, opts.num_perm, opts.lsh_recall)
    minhash = _MinHash(bands * rows, opts.seed)
    gold_keys = _band_keys(minhash.signatures(gold_shingles), bands, rows)
    band_index: list[dict[int, list[int]]] = []
    for b in range(bands):
        idx: dict[int, list[int]] = defaultdict(list)
        for gi, key in enumerate(gold_keys[:, b].tolist()):
            if gold_shingles[gi]:
                idx[key].append(gi)
        band_index.append(idx)
    band_sets = [np.fromiter(ix.keys(), dtype=np.uint64, count=len(ix)) for ix in band_index]

    best: dict[tuple[int, str], LeakHit] = {}

    def record(gi: int, where: str, kind: Literal["exact", "ngram", "jaccard"], sim: float) -> None:
        key = (gi, where)
        prior = best.get(key)
        if prior is None or sim > prior.similarity:
            best[key] = LeakHit(gold[gi].id, where, kind, sim)

    n_train = 0
    batch_where: list[str] = []
    batch_shingles: list[set[int]] = []

    def flush() -> None:
        if not batch_where:
            return
        keys = _band_keys(minhash.signatures(batch_shingles), bands, rows)
        pairs: set[tuple[int, int]] = set()
        for b in range(bands):
            col = keys[:, b]
            for ti in np.flatnonzero(np.isin(col, band_sets[b])).tolist():
                for gi in band_index[b][int(col[ti])]:
                    pairs.add((ti, gi))
        for ti, gi in pairs:
            a, t = gold_shingles[gi], batch_shingles[ti]
            inter = len(a & t)
            sim = inter / (len(a) + len(t) - inter)
            if sim >= opts.jaccard_threshold:
                record(gi, batch_where[ti], "jaccard", sim)
        batch_where.clear()
        batch_shingles.clear()

    for where, texts in train:
        n_train += 1
        norm_fields = [normalize(t) for t in texts]
        whole = " ".join(f for f in norm_fields if f)
        for candidate in {whole, *norm_fields}:
            for gi in exact_index.get(candidate, ()):
                record(gi, where, "exact", 1.0)
        toks = whole.split()
        if postings:
            counts = Counter(gi for h in _ngrams(toks, opts.ngram) for gi in postings.get(h, ()))
            for gi, c in counts.items():
                sim = c / denom[gi]
                if sim >= opts.ngram_threshold:
                    record(gi, where, "ngram", sim)
        if max_train_shingles and len(whole) - opts.shingle + 1 <= max_train_shingles:
            batch_where.append(where)
            batch_shingles.append(_shingles(whole, opts.shingle))
            if len(batch_where) >= 4096:
                flush()
    flush()

    hits = sorted(best.values(), key=lambda h: (-h.similarity, h.gold_id, h.train_where))
    flagged = sorted({h.gold_id for h in hits})
    return LeakReport(
        hits=hits,
        n_gold=len(gold),
        n_train=n_train,
        options=opts,
        common_ngrams_ignored=len(common),
        flagged=flagged,
    )

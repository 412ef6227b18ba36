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
  floor at the threshold, looked up vectorised), candidates whose full signatures agree far
  below the threshold are dropped (a true pair at the threshold is lost with probability
  ~3e-6), then each remaining candidate's similarity is computed exactly, so reported values
  are exact Jaccard indices. On templated text (a small vocabulary) band collisions are
  everywhere, and the intersections of all pairs come from one exact matrix product instead
  (``_DenseJaccard``, chosen by measuring how often LSH would propose a pair). Training rows
  too long to reach the threshold against any short gold input (``J <= |A| / |B|``) are not
  shingled at all.

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


class _DenseJaccard:
    """Exact intersections of every (training row, gold row) pair as one matrix product.

    Templated gold sets (a small vocabulary) share character shingles everywhere: their
    MinHash bands collide for most pairs, and LSH degenerates into all pairs checked one by
    one. Their shingle vocabulary is small, though, so a 0/1 matrix of shingles per row makes
    the intersection counts of a batch one BLAS product (exact: float32 sums of ones).
    """

    def __init__(self, gold_shingles: Sequence[set[int]], shingled: npt.NDArray[np.intp]) -> None:
        self.vocab: dict[int, int] = {}
        for gi in shingled.tolist():
            for h in gold_shingles[gi]:
                self.vocab.setdefault(h, len(self.vocab))
        self.gold_rows = shingled
        self.gold_sizes = np.array([len(gold_shingles[gi]) for gi in shingled.tolist()], float)
        self.matrix = np.zeros((len(self.vocab), shingled.size), dtype=np.float32)
        for col, gi in enumerate(shingled.tolist()):
            self.matrix[[self.vocab[h] for h in gold_shingles[gi]], col] = 1.0

    @classmethod
    def when_cheaper(
        cls,
        gold_shingles: Sequence[set[int]],
        shingled: npt.NDArray[np.intp],
        gold_keys: npt.NDArray[np.uint64],
        seed: int,
    ) -> _DenseJaccard | None:
        """The dense path, where LSH would propose too many pairs for its vocabulary size.

        How often LSH proposes a pair is measured on 2,000 random pairs of gold rows; a pair
        costs ~25,000 times one multiply-add of the product, per shingle of the vocabulary.
        """
        if shingled.size < 2:
            return None
        vocab = len({h for gi in shingled.tolist() for h in gold_shingles[gi]})
        if vocab * shingled.size > 100_000_000:  # the gold matrix would pass 400 MB
            return None
        rng = np.random.default_rng(seed)
        i, j = rng.choice(shingled, 2000), rng.choice(shingled, 2000)
        apart = i != j
        proposed = float((gold_keys[i[apart]] == gold_keys[j[apart]]).any(axis=1).mean())
        return cls(gold_shingles, shingled) if proposed * 25_000 > vocab else None

    def hits(self, batch: Sequence[set[int]], threshold: float) -> Iterator[tuple[int, int, float]]:
        rows, cols = [], []
        for ti, shingles in enumerate(batch):
            ids = [c for c in map(self.vocab.get, shingles) if c is not None]
            rows.extend([ti] * len(ids))
            cols.extend(ids)
        x = np.zeros((len(batch), len(self.vocab)), dtype=np.float32)
        x[rows, cols] = 1.0
        inter = (x @ self.matrix).astype(np.float64)
        sizes = np.fromiter(map(len, batch), float, len(batch))
        sim = inter / (sizes[:, None] + self.gold_sizes[None, :] - inter)
        for ti, col in zip(*np.nonzero(sim >= threshold), strict=True):
            yield int(ti), int(self.gold_rows[col]), float(sim[ti, col])


def _candidate_pairs(
    keys: npt.NDArray[np.uint64],
    band_sorted: list[npt.NDArray[np.uint64]],
    band_order: list[npt.NDArray[np.intp]],
    n_gold: int,
) -> npt.NDArray[np.int64]:
    """Unique ``train_row * n_gold + gold_row`` for every pair sharing a band key."""
    found: list[npt.NDArray[np.int64]] = []
    for b, (sorted_keys, order) in enumerate(zip(band_sorted, band_order, strict=True)):
        col = keys[:, b]
        lo = np.searchsorted(sorted_keys, col, "left")
        count = np.searchsorted(sorted_keys, col, "right") - lo
        rows = np.flatnonzero(count)
        if rows.size == 0:
            continue
        c = count[rows]
        starts = np.repeat(lo[rows] - (np.cumsum(c) - c), c)  # position of each match
        gold_rows = order[starts + np.arange(int(c.sum()))]
        found.append(np.repeat(rows.astype(np.int64), c) * n_gold + gold_rows)
        if sum(f.size for f in found) > 8_000_000:  # pairs met in many bands: fold them
            found = [np.unique(np.concatenate(found))]
    if not found:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(found))


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
    gold_sig = minhash.signatures(gold_shingles)
    gold_keys = _band_keys(gold_sig, bands, rows)
    shingled = np.flatnonzero(np.fromiter(map(bool, gold_shingles), bool, len(gold_shingles)))
    # per band: the shingled gold rows' keys, sorted, for a vectorised lookup of collisions
    band_order = [shingled[np.argsort(gold_keys[shingled, b], kind="stable")] for b in range(bands)]
    band_sorted = [gold_keys[order, b] for b, order in enumerate(band_order)]
    # Candidates whose signatures agree on too few of the hashes are dropped before the exact
    # check: a pair at exactly the threshold agrees on Binomial(k, t) of k hashes, and falls
    # under t - 4.5 standard deviations with probability ~3e-6.
    k_hashes = bands * rows
    t = opts.jaccard_threshold
    min_agree = int(np.floor(k_hashes * t - 4.5 * np.sqrt(k_hashes * t * (1 - t))))
    # train rows per batch: at most ~4M candidate pairs each, whatever the gold set's size
    batch_rows = int(np.clip(4_000_000 // max(1, shingled.size), 256, 4096))
    dense = _DenseJaccard.when_cheaper(gold_shingles, shingled, gold_keys, opts.seed)
    if dense is not None:
        batch_rows = 2048

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
        if dense is not None:
            for t_i, g_i, sim in dense.hits(batch_shingles, opts.jaccard_threshold):
                record(g_i, batch_where[t_i], "jaccard", sim)
            batch_where.clear()
            batch_shingles.clear()
            return
        sig = minhash.signatures(batch_shingles)
        pairs = _candidate_pairs(_band_keys(sig, bands, rows), band_sorted, band_order, len(gold))
        ti, gi = np.divmod(pairs, len(gold))
        agree = np.concatenate(
            [
                (sig[ti[i : i + 65536]] == gold_sig[gi[i : i + 65536]]).sum(axis=1)
                for i in range(0, pairs.size, 65536)
            ]
            or [np.zeros(0, dtype=np.int64)]
        )
        keep = agree >= min_agree
        for t_i, g_i in zip(ti[keep].tolist(), gi[keep].tolist(), strict=True):
            a, b = gold_shingles[g_i], batch_shingles[t_i]
            inter = len(a & b)
            sim = inter / (len(a) + len(b) - inter)
            if sim >= opts.jaccard_threshold:
                record(g_i, batch_where[t_i], "jaccard", sim)
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
            if len(batch_where) >= batch_rows:
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

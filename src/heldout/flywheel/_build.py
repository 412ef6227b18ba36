"""The flywheel: failures in, the next dataset out — never into the frozen gold set.

1. Candidates from runs, production events and files (:mod:`._sources`), each source capped
   at its ``cap`` worst.
2. Every candidate is checked with the leak engine against the frozen gold set *and* the
   training file (exact after normalisation, n-gram overlap, near-duplicates); hits are
   dropped and counted. The gold set's lock is verified unchanged first.
3. Selection: the worst first, stratified so that each stratum (suite, class, slice, intent)
   gets a share of the ``n`` proportional to its failure mass (the sum of its severities;
   largest remainders, seeded ties), a stratum with too few giving its share to the others.
4. Outputs with provenance on every row: ``train_candidates.jsonl`` and
   ``eval_candidates.jsonl`` (a seeded ``eval_share`` of the labelled ones, for a future
   gold version only through its own locked step) for rows with a known good answer, a
   labelling queue (``label_queue.jsonl`` in Label Studio's task format, ``label_queue.csv``
   for Argilla or Label Studio's CSV import) for the rest, ``report.md`` (where failures
   cluster) and ``summary.json``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heldout.data import LeakOptions, Sample, find_leaks, iter_train_texts, normalize
from heldout.errors import HeldoutError
from heldout.flywheel._sources import Candidate

__all__ = ["FlywheelResult", "Stratum", "build", "leak_filter", "stratified"]


def _draw(key: str, seed: int) -> float:
    """A seeded uniform draw per candidate (stable across runs and Python processes)."""
    h = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def _rank(c: Candidate, seed: int) -> tuple[float, float]:
    return (-c.severity, _draw(c.key, seed))


def stratified(cands: Sequence[Candidate], n: int, seed: int) -> list[Candidate]:
    """``n`` candidates, the worst first within each stratum, strata sharing ``n`` in
    proportion to their failure mass (module docstring)."""
    by: dict[str, list[Candidate]] = defaultdict(list)
    for c in cands:
        by[c.stratum].append(c)
    for items in by.values():
        items.sort(key=lambda c: _rank(c, seed))
    quota = dict.fromkeys(by, 0)
    left = min(n, len(cands))
    open_ = {s for s in by if by[s]}
    while left > 0 and open_:
        mass = {s: sum(c.severity for c in by[s]) for s in open_}
        total = sum(mass.values())
        exact = {s: left * mass[s] / total for s in open_}
        give = {s: math.floor(v) for s, v in exact.items()}
        rest = left - sum(give.values())
        for s in sorted(open_, key=lambda s: (-(exact[s] - give[s]), _draw(s, seed)))[:rest]:
            give[s] += 1
        for s in open_:
            take = min(give[s], len(by[s]) - quota[s])
            quota[s] += take
            left -= take
        open_ = {s for s in open_ if quota[s] < len(by[s])}
    chosen = [c for s, items in by.items() for c in items[: quota[s]]]
    return sorted(chosen, key=lambda c: _rank(c, seed))


def leak_filter(
    cands: Sequence[Candidate], gold: Sequence[Sample], train: Path | None
) -> tuple[list[Candidate], dict[str, int]]:
    """The candidates that are neither in the gold set nor in the training file (exact
    after normalisation or near-duplicates, by the leak engine), and how many each dropped."""
    if not cands:
        return [], {"gold": 0, "train": 0}
    as_samples = [Sample(id=str(i), input=c.input, target="") for i, c in enumerate(cands)]

    def rows() -> Iterable[tuple[str, list[str]]]:
        for s in gold:
            yield f"gold:{s.id}", [s.input]
        if train is not None:
            for where, texts in iter_train_texts(train):
                yield f"train:{where}", texts

    report = find_leaks(as_samples, rows(), LeakOptions())
    hit: dict[int, str] = {}
    for h in report.hits:
        i = int(h.gold_id)
        if i not in hit or h.train_where.startswith("gold:"):
            hit[i] = "gold" if h.train_where.startswith("gold:") else "train"
    dropped = Counter(hit.values())
    kept = [c for i, c in enumerate(cands) if i not in hit]
    return kept, {"gold": dropped["gold"], "train": dropped["train"]}


@dataclass(frozen=True, slots=True)
class Stratum:
    """Where failures cluster: all of one stratum's failures (the gold set's own count: they
    say what to fix), and how many were selected as candidates."""

    stratum: str
    failures: int  # every failure found, the gold set's own included
    mass: float
    selected: int
    reasons: list[tuple[str, int]]
    in_gold: int = 0  # of which in the gold set or the training file (never exported)


@dataclass(slots=True)
class FlywheelResult:
    folder: Path
    found: dict[str, int]  # candidates per source before anything was dropped
    dropped: dict[str, int]  # "gold", "train" (leaks), "cap", "repeats" (same input)
    train: int
    eval: int
    queued: int
    strata: list[Stratum] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _row_id(c: Candidate) -> str:
    return hashlib.sha256(c.key.encode()).hexdigest()[:16]


def _row(c: Candidate, split: str) -> dict[str, Any]:
    return {
        "id": _row_id(c), "input": c.input, "target": c.target, "output": c.output,
        "split": split, "provenance": c.provenance(),
    }  # fmt: skip


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(path)
    return n


QUEUE_COLUMNS = ("id", "input", "output", "reason", "stratum", "source", "ref", "split")


def _write_queue(folder: Path, rows: list[dict[str, Any]]) -> None:
    _write_jsonl(
        folder / "label_queue.jsonl",
        ({"data": {"id": r["id"], "input": r["input"], "output": r["output"] or ""},
          "meta": {**r["provenance"], "split": r["split"]}} for r in rows),
    )  # fmt: skip
    tmp = folder / "label_queue.csv.tmp"
    with tmp.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow([*QUEUE_COLUMNS, "target"])
        for r in rows:
            p = r["provenance"]
            w.writerow([r["id"], r["input"], r["output"] or "", p["reason"], p["stratum"],
                        p["source"], p["ref"], r["split"], ""])  # fmt: skip
    tmp.replace(folder / "label_queue.csv")


def _md(text: str) -> str:
    """Text from a run or a log, inert in a Markdown table."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _report(result: FlywheelResult, by_stratum: dict[str, list[Candidate]]) -> str:
    lines = ["# heldout flywheel: where the failures are", ""]
    lines.append(
        f"Found {sum(result.found.values()):,} failures ("
        + ", ".join(f"{k} {v:,}" for k, v in result.found.items())
        + f"); dropped {result.dropped['gold']:,} found in the gold set and "
        f"{result.dropped['train']:,} already in the training file (leak check), "
        f"{result.dropped['cap']:,} over a source's cap, {result.dropped['repeats']:,} repeats "
        f"of an input already kept. Out: {result.train:,} train and "
        f"{result.eval:,} eval candidates, {result.queued:,} to label."
    )
    lines += ["", "## What to fix next (largest failure mass first)", ""]
    lines += [
        "| stratum | failures | failure mass | leaked (not exported) | selected | top reasons |",
        "|---|---|---|---|---|---|",
    ]
    for s in result.strata:
        reasons = "; ".join(f"{r} ({n})" for r, n in s.reasons[:3])
        lines.append(
            f"| {_md(s.stratum)} | {s.failures:,} | {s.mass:.1f} | {s.in_gold:,} | "
            f"{s.selected:,} | {_md(reasons)} |"
        )
    lines += ["", "## Examples", ""]
    for s in result.strata[:5]:
        lines.append(f"### {_md(s.stratum)}")
        lines.append("")
        for c in by_stratum[s.stratum][:3]:
            said = (c.output or "").replace("\n", " ")[:120]
            lines.append(
                f"- {_md(repr(c.input[:160]))} → {_md(repr(said))} ({_md(c.reason)}; "
                f"{_md(c.source)})"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def build(
    sources: Sequence[tuple[str, Iterable[Candidate]]],
    *,
    gold: Sequence[Sample],
    train: Path | None,
    out: Path,
    n: int,
    cap: int | None = None,
    eval_share: float = 0.2,
    seed: int = 0,
) -> FlywheelResult:
    """Candidates from ``sources`` (label, candidates) into ``out`` (module docstring)."""
    if n < 1:
        raise HeldoutError(f"--n {n}: give how many candidates to select (at least 1)")
    if not 0 <= eval_share < 1:
        raise HeldoutError(f"--eval-share {eval_share}: give a share in [0, 1)")
    found: dict[str, int] = {}
    pool: list[Candidate] = []
    capped = 0
    for label, cands in sources:
        items = list(cands)
        found[label] = found.get(label, 0) + len(items)
        if cap is not None and len(items) > cap:
            items.sort(key=lambda c: _rank(c, seed))
            capped += len(items) - cap
            items = items[:cap]
        pool += items
    # one candidate per input (after normalisation): the worst of its repeats
    best: dict[str, Candidate] = {}
    for c in sorted(pool, key=lambda c: _rank(c, seed)):
        best.setdefault(normalize(c.input), c)
    unique = list(best.values())
    repeats = len(pool) - len(unique)
    kept, leaks = leak_filter(unique, gold, train)
    chosen = stratified(kept, n, seed)
    out.mkdir(parents=True, exist_ok=True)
    labelled = [c for c in chosen if c.target is not None]
    split = {c.key: "eval" if _draw(c.key, seed + 1) < eval_share else "train" for c in chosen}
    train_rows = [_row(c, "train") for c in labelled if split[c.key] == "train"]
    eval_rows = [_row(c, "eval") for c in labelled if split[c.key] == "eval"]
    queue = [_row(c, split[c.key]) for c in chosen if c.target is None]
    _write_jsonl(out / "train_candidates.jsonl", train_rows)
    _write_jsonl(out / "eval_candidates.jsonl", eval_rows)
    _write_queue(out, queue)
    by_stratum: dict[str, list[Candidate]] = defaultdict(list)
    for c in sorted(unique, key=lambda c: _rank(c, seed)):
        by_stratum[c.stratum].append(c)
    kept_keys = {c.key for c in kept}
    picked = Counter(c.stratum for c in chosen)
    strata = sorted(
        (
            Stratum(s, len(items), sum(c.severity for c in items), picked[s],
                    Counter(c.reason for c in items).most_common(),
                    sum(c.key not in kept_keys for c in items))
            for s, items in by_stratum.items()
        ),
        key=lambda s: (-s.mass, s.stratum),
    )  # fmt: skip
    result = FlywheelResult(
        out, found, {**leaks, "cap": capped, "repeats": repeats}, len(train_rows),
        len(eval_rows), len(queue), strata,
    )  # fmt: skip
    (out / "report.md").write_text(_report(result, by_stratum), encoding="utf-8")
    summary = {
        "found": found, "dropped": result.dropped, "train": result.train, "eval": result.eval,
        "queued": result.queued, "seed": seed, "n": n, "cap": cap, "eval_share": eval_share,
        "strata": [
            {"stratum": s.stratum, "failures": s.failures, "mass": s.mass,
             "leaked": s.in_gold, "selected": s.selected, "reasons": dict(s.reasons)}
            for s in strata
        ],
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return result

"""``heldout flywheel ingest LABELS``: graded items from the labelling queue back into the
train and eval candidates, leak-checked again.

LABELS is JSONL or CSV with ``id`` (the queue's) and ``target`` (or ``label``), or a Label
Studio JSON export (tasks with ``data.id`` and the last annotation's ``text`` or
``choices``). Every row must name a queued id and give a non-empty answer; an item already
ingested is skipped (so re-running is safe).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heldout.data import Sample, iter_records
from heldout.errors import DataError, HeldoutError, Problem
from heldout.flywheel._build import leak_filter
from heldout.flywheel._sources import Candidate

__all__ = ["IngestResult", "ingest"]


@dataclass(frozen=True, slots=True)
class IngestResult:
    added_train: int
    added_eval: int
    skipped: int  # already ingested
    dropped: dict[str, int]  # leaks: gold, train


def _label_studio(path: Path) -> list[tuple[str, dict[str, Any]]]:
    tasks = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(tasks, list):
        raise HeldoutError(f"{path}: a Label Studio export is a JSON list of tasks")
    out = []
    for i, t in enumerate(tasks):
        answer = None
        for ann in reversed(t.get("annotations") or []) if isinstance(t, dict) else []:
            for res in ann.get("result") or []:
                value = res.get("value") or {}
                got = (value.get("text") or value.get("choices") or [None])[0]
                if got is not None:
                    answer = got
                    break
            if answer is not None:
                break
        data = t.get("data") if isinstance(t, dict) else None
        sid = data.get("id") if isinstance(data, dict) else None
        out.append((f"{path}[{i}]", {"id": sid, "target": answer}))
    return out


def _rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    if path.suffix == ".json":
        return _label_studio(path)
    rows = []
    problems = []
    for where, rec in iter_records(path):
        if isinstance(rec, Problem):
            problems.append(rec)
        else:
            rows.append((where, rec))
    if problems:
        raise DataError(problems[:50], source=str(path))
    return rows


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def ingest(labels: Path, folder: Path, *, gold: list[Sample], train: Path | None) -> IngestResult:
    queue_path = folder / "label_queue.jsonl"
    if not queue_path.is_file():
        raise HeldoutError(f"{folder}: no label_queue.jsonl; run 'heldout flywheel' first")
    queue = {q["data"]["id"]: q for q in _read(queue_path)}
    done = {r["id"] for name in ("train_candidates.jsonl", "eval_candidates.jsonl")
            for r in _read(folder / name)}  # fmt: skip
    problems: list[Problem] = []
    todo: list[tuple[Candidate, str, str]] = []
    skipped = 0
    for where, rec in _rows(labels):
        sid = rec.get("id")
        answer = rec.get("target", rec.get("label"))
        if sid is None or str(sid) not in queue:
            problems.append(Problem(where, f"id {sid!r} is not in {queue_path.name}"))
            continue
        if answer is None or not str(answer).strip():
            problems.append(Problem(where, f"id {sid!r}: no target (the graded answer)"))
            continue
        if str(sid) in done:
            skipped += 1
            continue
        q = queue[str(sid)]
        meta = q["meta"]
        cand = Candidate(
            source=meta["source"], ref=meta["ref"], input=q["data"]["input"],
            output=q["data"].get("output"), target=str(answer), reason=meta["reason"],
            stratum=meta["stratum"], severity=0.0, time=meta.get("time"),
            dataset=meta.get("dataset"),
        )  # fmt: skip
        todo.append((cand, str(sid), meta.get("split", "train")))
    if problems:
        raise DataError(problems[:50], source=f"{labels} (labels)", more=max(0, len(problems) - 50))
    kept, dropped = leak_filter([c for c, _, _ in todo], gold, train)
    keep = {c.key for c in kept}
    added = {"train": 0, "eval": 0}
    for split in ("train", "eval"):
        rows = [
            {"id": sid, "input": c.input, "target": c.target, "output": c.output, "split": split,
             "provenance": {**c.provenance(), "labelled_from": labels.name}}
            for c, sid, s in todo
            if s == split and c.key in keep
        ]  # fmt: skip
        if rows:
            with (folder / f"{split}_candidates.jsonl").open("a", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
        added[split] = len(rows)
    return IngestResult(added["train"], added["eval"], skipped, dropped)

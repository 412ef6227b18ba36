"""Where failures come from, each turned into :class:`Candidate` rows with provenance.

- **runs** (a heldout run folder): the candidate model's regressions (base right, candidate
  wrong), unparseable and failed answers, judge losses (the judge preferred the base, or
  scored the candidate's answer lower over the rubric) and low scores, on every dataset.
- **events** (production logs: JSONL, CSV or Parquet; the A/B store's export is one): rows with
  a prompt and a response and any negative signal — ``thumbs`` down (``down``, ``-1``,
  ``false``), ``escalated``, ``regenerated``, or a ``feedback`` text; an event without one is
  not a failure. Column names: ``prompt``/``input``, ``response``/``output``,
  ``id``/``event_id``, ``time``/``timestamp``; other scalar columns are slices.
- **files** (the user's own rows): ``input``, optional ``target``, ``reason``, ``id``.

Severity orders the worst first: a regression or a production escalation outranks a thumbs
down, which outranks a merely low score.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heldout._json import json_objects
from heldout.data import iter_records
from heldout.errors import DataError, HeldoutError, Problem

__all__ = ["Candidate", "from_events", "from_file", "from_run", "judge_losses"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One failure that may become a training or evaluation example."""

    source: str  # "run:<id>", "events:<file>", "file:<file>"
    ref: str  # the sample id or event id in that source
    input: str
    output: str | None  # what the model answered
    target: str | None  # a good answer, when the source knows one
    reason: str
    stratum: str  # what it is a failure of: "suite general", "class refund", "intent=billing"
    severity: float
    time: str | None = None
    dataset: str | None = None

    @property
    def key(self) -> str:
        return f"{self.source}#{self.ref}"

    def provenance(self) -> dict[str, Any]:
        return {
            "source": self.source, "ref": self.ref, "reason": self.reason,
            "stratum": self.stratum, "time": self.time, "dataset": self.dataset,
        }  # fmt: skip


def _stratum(dataset: str, row: dict[str, Any]) -> str:
    if dataset != "gold":
        skill = next(
            (row["metadata"][f] for f in ("skill", "constraints", "category", "type")
             if isinstance(row.get("metadata"), dict) and row["metadata"].get(f) is not None),
            None,
        )  # fmt: skip
        name = dataset.replace(":", " ", 1)
        return f"{name} · {skill}" if skill is not None else name
    target = row.get("target")
    if isinstance(target, str) and len(target) <= 40:
        return f"gold class {target}"
    return "gold"


def judge_losses(folder: Path) -> dict[tuple[str, str], str]:
    """(dataset, sample id) → why the run's judge ranked the candidate below the base: it
    preferred the base in both orders (pairwise), or scored the candidate's answer lower
    over the rubric (its first valid reply per answer), read from generations.jsonl."""
    from heldout.judge import combine, parse_verdict

    path = folder / "generations.jsonl"
    if not path.is_file():
        return {}
    pairs: dict[tuple[str, str], dict[str, str | None]] = {}
    totals: dict[tuple[str, str, str, str], int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        judge, dataset = str(rec.get("model", "")), str(rec.get("dataset", ""))
        text, rid = rec.get("text"), str(rec.get("sample_id", ""))
        if not judge.startswith("judge") or not isinstance(text, str):
            continue
        if dataset == "gold" and "|" in rid:
            sid, order = rid.rsplit("|", 1)
            pairs.setdefault((judge, sid), {})[order] = parse_verdict(text)
        elif dataset.startswith("rubric:") and rid.count("|") >= 2:
            ds, role, sid = rid.split("|", 2)
            found = [o for o in json_objects(text) if isinstance(o, dict)]
            obj = found[-1] if found else None
            ints = [
                v for v in (obj or {}).values() if isinstance(v, int) and not isinstance(v, bool)
            ]
            key = (judge, ds, role, sid)
            if obj and ints and len(ints) == len(obj) and key not in totals:
                totals[key] = sum(ints)
    out: dict[tuple[str, str], str] = {}
    for (_, sid), v in pairs.items():
        if combine(v.get("candidate-first"), v.get("base-first")) == "base":
            out[("gold", sid)] = "the judge preferred the base's answer (both orders)"
    for (judge, ds, role, sid), total in totals.items():
        base = totals.get((judge, ds, "base", sid))
        if role == "candidate" and base is not None and total < base:
            out.setdefault(
                (ds, sid), f"the judge scored it below the base on the rubric ({total} vs {base})"
            )
    return out


def from_run(folder: Path, *, low_score: float = 0.5) -> Iterator[Candidate]:
    """The candidate's failures in one run (module docstring)."""
    results = folder / "results.json"
    samples = folder / "samples.jsonl"
    if not results.is_file() or not samples.is_file():
        raise HeldoutError(f"{folder}: not a heldout run folder (no results.json / samples.jsonl)")
    meta = json.loads(results.read_text(encoding="utf-8"))
    run_id, created = str(meta.get("run_id")), meta.get("created_at")
    metric_of = {d["name"]: d["metric"] for d in meta.get("datasets", [])}
    source = f"run:{run_id}"
    judged = judge_losses(folder)
    for line in samples.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("model") != "candidate" or row.get("dataset") == "train":
            continue
        dataset = str(row["dataset"])
        flags = set(row.get("flags") or ())
        scores = row.get("scores") or {}
        score = scores.get(metric_of.get(dataset, ""))
        reason, severity = None, 0.0
        loss = judged.get((dataset, str(row["id"])))
        if "regression" in flags:
            reason = loss or "regression (base right, candidate wrong)"
            severity = 3.0
        elif "failed" in flags:
            reason, severity = "the request failed", 2.5
        elif "unparseable" in flags:
            reason, severity = "unparseable output", 2.0
        elif loss is not None:
            reason, severity = loss, 1.8
        elif isinstance(score, int | float) and score < low_score:
            reason, severity = f"low score {score:.2f}", 1.0 + (1.0 - float(score))
        if reason is None:
            continue
        yield Candidate(
            source=source, ref=str(row["id"]), input=str(row.get("input") or ""),
            output=row.get("output"),
            target=None if row.get("target") is None else _text(row["target"]),
            reason=reason, stratum=_stratum(dataset, row), severity=severity, time=created,
            dataset=dataset,
        )  # fmt: skip


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


_NEGATIVE_THUMBS = {"down", "-1", "false", "0", "thumbs_down", "bad", "no"}


def _first(rec: dict[str, Any], *names: str) -> Any:
    for n in names:
        if rec.get(n) is not None:
            return rec[n]
    return None


def _signals(rec: dict[str, Any]) -> tuple[str, float] | None:
    """The worst negative signal of one event, if any: (reason, severity)."""
    found: list[tuple[str, float]] = []
    if rec.get("escalated") in (True, 1, "true", "yes"):
        found.append(("escalated to a human", 3.0))
    thumbs = rec.get("thumbs")
    if thumbs is not None and str(thumbs).strip().lower() in _NEGATIVE_THUMBS:
        found.append(("thumbs down", 2.0))
    if rec.get("regenerated") in (True, 1, "true", "yes"):
        found.append(("regenerated by the user", 1.5))
    if isinstance(rec.get("feedback"), str) and rec["feedback"].strip():
        found.append((f"feedback: {rec['feedback'].strip()[:80]}", 1.2))
    return max(found, key=lambda f: f[1]) if found else None


def from_events(path: Path, *, by: str | None = None) -> Iterator[Candidate]:
    """The failing events of a production log (module docstring); ``by`` names the column
    that stratifies them (e.g. intent, tenant; default: none)."""
    problems: list[Problem] = []
    source = f"events:{path.name}"
    for n, (where, rec) in enumerate(iter_records(path)):
        if isinstance(rec, Problem):
            problems.append(rec)
            continue
        signal = _signals(rec)
        if signal is None:
            continue
        prompt = _first(rec, "prompt", "input")
        if not isinstance(prompt, str) or not prompt.strip():
            problems.append(Problem(where, "a failing event needs its prompt (prompt or input)"))
            continue
        response = _first(rec, "response", "output")
        ref = _first(rec, "event_id", "id", "request_id")
        stratum = f"{by}={rec.get(by)}" if by else "production"
        yield Candidate(
            source=source, ref=str(ref if ref is not None else n), input=prompt,
            output=None if response is None else str(response), target=None,
            reason=signal[0], stratum=stratum, severity=signal[1],
            time=None if _first(rec, "time", "timestamp") is None
            else str(_first(rec, "time", "timestamp")),
        )  # fmt: skip
    if problems:
        raise DataError(problems[:50], source=str(path), more=max(0, len(problems) - 50))


def from_file(path: Path) -> Iterator[Candidate]:
    """The user's own rows: ``input`` (required), ``target``, ``reason``, ``id``."""
    problems: list[Problem] = []
    source = f"file:{path.name}"
    for n, (where, rec) in enumerate(iter_records(path)):
        if isinstance(rec, Problem):
            problems.append(rec)
            continue
        text = rec.get("input")
        if not isinstance(text, str) or not text.strip():
            problems.append(Problem(where, "needs an input (the prompt to learn from)"))
            continue
        target = rec.get("target")
        yield Candidate(
            source=source, ref=str(rec.get("id", n)), input=text, output=None,
            target=None if target is None else _text(target),
            reason=str(rec.get("reason") or "added by the user"),
            stratum=str(rec.get("stratum") or "user"), severity=float(rec.get("severity") or 1.0),
        )  # fmt: skip
    if problems:
        raise DataError(problems[:50], source=str(path), more=max(0, len(problems) - 50))

"""The judge's part of a report, from results.json's ``judge``: its summary lines, the
three-way rubric table (base, candidate, reference; candidate − base and the candidate's
share of the reference with their CIs; agreement with people), and the answers that
addressed the judge, per sample."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from heldout.report._format import fmt

__all__ = ["JudgeRow", "JudgeView", "judge_view"]


@dataclass(frozen=True, slots=True)
class JudgeRow:
    criterion: str
    scale: str
    means: dict[str, str]  # model → "3.42 (n=117)"
    delta: tuple[float | None, float | None, float | None]
    share: tuple[float | None, float | None, float | None] | None
    people: str
    trusted: str
    loss: bool


@dataclass(slots=True)
class JudgeView:
    lines: list[str]
    models: list[str]
    rows: list[JudgeRow] = field(default_factory=list)
    injections: list[dict[str, Any]] = field(default_factory=list)
    injections_total: int = 0


def _interval(rec: Mapping[str, Any] | None) -> tuple[float | None, float | None, float | None]:
    rec = rec or {}
    return rec.get("estimate"), rec.get("low"), rec.get("high")


def _people(h: Mapping[str, Any] | None) -> tuple[str, str]:
    if not h:
        return "no human scores", "not calibrated"
    text = (
        f"{fmt(h.get('exact'))} exact, {fmt(h.get('within_one'))} ±1, κw "
        f"{fmt(h.get('kappa'))} (n={h.get('n')})"
    )
    return text, "trusted" if h.get("trusted") else "NOT trusted"


def judge_view(judge: Mapping[str, Any] | None, shown: int = 20) -> JudgeView | None:
    """None when the run had no judge."""
    if not judge:
        return None
    lines = list(judge.get("lines") or [judge.get("description", "")])
    rubric = judge.get("rubric") if isinstance(judge.get("rubric"), dict) else None
    rows: list[JudgeRow] = []
    models: list[str] = []
    if rubric:
        table = rubric.get("table") or []
        models = [m for m in ("base", "candidate", "reference") if table and m in table[0]["means"]]
        for row in table:
            people, trusted = _people(row.get("human"))
            if row["criterion"] == "overall":
                people, trusted = "—", "if every criterion is"
            delta = _interval(row.get("delta"))
            share = row.get("share_of_reference")
            rows.append(
                JudgeRow(
                    criterion=row["criterion"],
                    scale="–".join(f"{v:g}" for v in row["scale"]),
                    means={m: f"{fmt(v['mean'], 2)} (n={v['n']})" for m, v in row["means"].items()},
                    delta=delta,
                    share=None if share is None else _interval(share),
                    people=people,
                    trusted=trusted,
                    loss=delta[2] is not None and delta[2] < 0,
                )
            )
    injection = judge.get("injection") or {}
    return JudgeView(
        lines=lines,
        models=models,
        rows=rows,
        injections=list(injection.get("samples") or [])[:shown],
        injections_total=int(injection.get("flagged") or 0),
    )

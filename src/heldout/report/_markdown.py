"""Markdown report: a compact PR comment (verdict, key table, guardrails, top regressions)."""

from __future__ import annotations

import re
from typing import Any

from heldout.report._judge import JudgeView, judge_view
from heldout.report._view import ReportView, fmt

__all__ = ["MAX_CHARS", "render_markdown"]

MAX_CHARS = 65_000
ICON = {
    "success": "✅",
    "improved_but_short": "🟡",
    "no_gain": "⚪",
    "blocked": "⛔",
    "inconclusive": "❔",
    "smoke": "🧪",
    "pass": "✅",
    "fail": "❌",
    "unresolved": "❔",
}


_WJ = "\u2060"  # word joiner: invisible, and it stops @mentions, #refs and autolinks
_NEUTRAL = [
    (re.compile(r"@(?=\w)"), "@" + _WJ),  # @user, @org/team: no ping
    (re.compile(r"#(?=\d)"), "#" + _WJ),  # #123: no issue reference
    (re.compile(r"(?i)\b(https?|ftp|javascript|data|vbscript|file)(?=:)"), r"\1" + _WJ),
    (re.compile(r"(?i)\bwww\."), "www" + _WJ + "."),
]


def _inert(text: str) -> str:
    """Text that renders as itself: no HTML, links, images, mentions or references."""
    for pattern, repl in _NEUTRAL:
        text = pattern.sub(repl, text)
    for ch in "\\`*_[]<>!|~":
        text = text.replace(ch, "\\" + ch)
    return text


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"


def _cut(text: object, limit: int) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _cell(text: object, limit: int = 160) -> str:
    """Any text from a run (names, reasons, server messages) made inert for a table cell."""
    return _inert(_cut(text, limit))


def _code(text: object, limit: int) -> str:
    """Model and gold text as a code span: shown verbatim, never rendered (mentions, links
    and images inside a code span are plain text); pipes escaped for the table."""
    s = _cut(text, limit)
    if not s:
        return "*(empty)*"
    s = _NEUTRAL[0][0].sub(_NEUTRAL[0][1], s).replace("|", "\\|")
    fence = "`" * (max((len(m) for m in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _ci(x: float | None, low: float | None, high: float | None) -> str:
    return f"{fmt(x, signed=True)} [{fmt(low, signed=True)}, {fmt(high, signed=True)}]"


def _losses(view: ReportView) -> list[str]:
    out = ["### What got worse", ""]
    if view.losses:
        out += _table(
            ["kind", "what", "change [CI], worse is negative", "n", "note"],
            [
                [x.kind, _cell(x.name), _ci(x.change, x.low, x.high), str(x.n), _cell(x.note)]
                for x in view.losses
            ],
        )
    else:
        out.append(
            "No significant loss: no interval of the candidate's change lies below zero and no "
            "guardrail failed."
        )
    counts = view.regression_counts
    total = sum(counts.values())
    parts = " + ".join(f"{_cell(k)} {v:,}" for k, v in counts.items()) or "none"
    out += ["", f"- Regressions (base right, candidate wrong): {parts}"]
    if len(counts) > 1:
        out[-1] += f" = **{total:,}**"
    if view.weakest_class:
        name, row = view.weakest_class
        out.append(
            f"- Weakest class: **{_cell(name)}** (F1 {row['f1']:.3f}, recall "
            f"{row['recall']:.3f}, support {row['support']})"
        )
    if view.weakest_slice:
        sl = view.weakest_slice
        c = sl["comparison"]
        out.append(
            f"- Weakest slice: **{_cell(sl['field'])}={_cell(sl['value'])}** (delta "
            f"{_ci(c.delta.estimate, c.delta.low, c.delta.high)}, n={c.n}"
            f"{', tiny: not gated' if sl['tiny'] else ''})"
        )
    if view.weakest_suite:
        c = view.weakest_suite
        out.append(
            f"- Weakest suite: **{_cell(c.dataset)}** ({c.metric} {fmt(c.base.estimate)} → "
            f"{fmt(c.other.estimate)}, delta {_ci(c.delta.estimate, c.delta.low, c.delta.high)}, "
            f"n={c.n})"
        )
    if view.totals.get("unparseable"):
        out.append(f"- Unparseable candidate outputs: {view.totals['unparseable']:,}")
    for d in view.diagnoses:
        examples = ", ".join(_code(x, 40) for x in d.examples)
        out.append(
            f"- Diagnosis: **{_cell(d.symptom)}** on {_cell(d.dataset)}: {_cell(d.evidence, 400)}. "
            f"Likely cause: {_cell(d.cause)}. Try: {_cell(d.fix)}."
            + (f" Examples: {examples}" if examples else "")
        )
    groups = [g for g in view.groups if g.regressions][:8]
    if groups:
        out += ["", "Where the regressions are:", ""]
        out += _table(
            ["by", "value", "regressions", "of samples"],
            [[_cell(g.by), _cell(g.value), f"{g.regressions:,}", f"{g.n:,}"] for g in groups],
        )
    return out


def _comparisons(view: ReportView) -> list[str]:
    rows = []
    for c in view.comparisons:
        if c.against != "candidate":
            continue
        name = f"**{c.metric}**" if c.primary else c.metric
        test = c.test + (f" ({c.fixed} fixed, {c.broken} broken)" if c.fixed is not None else "")
        rows.append(
            [
                _cell(c.dataset),
                name,
                fmt(c.base.estimate),
                fmt(c.other.estimate),
                _ci(c.delta.estimate, c.delta.low, c.delta.high),
                f"{test}, p={_p(c.p_value)}",
            ]
        )
    header = ["dataset", "metric", "base", "candidate", "delta [95% CI]", "test"]
    return ["### Base vs candidate (losses first)", "", *_table(header, rows)]


def _gates(view: ReportView) -> list[str]:
    if not view.gates:
        return []
    rows = [
        [
            _cell(g.name),
            f"{ICON[g.status]} {g.status}" + (" (not gated)" if g.untrusted else ""),
            _ci(g.change.estimate, g.change.low, g.change.high),
            f"{g.margin:g}",
            str(g.n),
        ]
        for g in view.gates
    ]
    header = ["guardrail", "status", "change [CI]", "allowed drop", "n"]
    return ["### Guardrails (failures first)", "", *_table(header, rows)]


def _judge(j: JudgeView) -> list[str]:
    out = ["### Judge", "", *(f"- {_cell(line, 600)}" for line in j.lines)]
    if j.rows:
        ref = "reference" in j.models
        header = ["criterion", *j.models, "candidate − base [CI]"]
        header += ["share of the reference [CI]"] if ref else []
        header += ["agreement with people", "gates?"]
        rows = []
        for row in j.rows:
            cells = [
                _cell(f"{row.criterion} ({row.scale})"),
                *(row.means.get(m, "n/a") for m in j.models),
            ]
            cells.append(_ci(*row.delta))
            if ref:
                cells.append("n/a" if row.share is None else _ci(*row.share).replace("+", ""))
            cells += [_cell(row.people), row.trusted]
            rows.append(cells)
        out += ["", *_table(header, rows)]
    if j.injections_total:
        shown = f" (first {len(j.injections)})" if len(j.injections) < j.injections_total else ""
        out += [
            "",
            f"#### Answers that addressed the judge (neutralised before judging): "
            f"{j.injections_total}{shown}",
            "",
            *_table(
                ["dataset", "model", "id", "what was found"],
                [
                    [_cell(x["dataset"]), _cell(x["model"]), _code(x["id"], 40),
                     _cell(", ".join(x["flags"]))]
                    for x in j.injections
                ],
            ),
        ]  # fmt: skip
    return out


def _examples(title: str, items: list[dict[str, Any]], total: int) -> list[str]:
    suite = any(x["dataset"] != "gold" for x in items)
    header = (["suite"] if suite else []) + ["id", "input", "target", "base", "candidate"]
    rows = [
        ([_cell(x["dataset"])] if suite else [])
        + [
            _code(x["id"], 40),
            _code(x["input"], 100),
            _code(x["target"], 50),
            _code(x["base_output"], 70),
            _code(x["output"], 70),
        ]
        for x in items
    ]
    shown = f" (first {len(items)})" if len(items) < total else ""
    return [f"#### {title}: {total:,}{shown}", "", *_table(header, rows)]


def render_markdown(view: ReportView, *, top: int = 10) -> str:
    """The report as a PR comment: verdict and every reason, what got worse (gold set and
    suites), the comparisons losses first, the guardrails failures first and the worst
    examples. Under GitHub's 65,536-character limit, whole sections are dropped from the end
    with a note, never a table cut in the middle."""
    r = view.result
    v = r.verdict
    status = "smoke run: not a verdict" if v.status == "smoke" else v.status
    head = [f"## {ICON[v.status]} heldout: **{status}** — {_cell(r.plan_name)}", ""]
    head += [f"- {_cell(reason, 600)}" for reason in v.reasons]
    head += [f"- ⚠️ {_cell(w, 600)}" for w in [*r.warnings, *v.warnings]]
    sections = [head, _losses(view), _comparisons(view), _gates(view)]
    judge = judge_view(r.judge)
    if judge is not None:
        sections.append(_judge(judge))
    examples = ["### Examples it gets wrong (base right, candidate wrong)"]
    if view.regressions:
        examples += [
            "",
            *_examples("gold set", view.regressions[:top], view.totals["regressions"]),
        ]
    by_suite: dict[str, list[dict[str, Any]]] = {}
    for x in view.suite_regressions:
        by_suite.setdefault(x["dataset"], []).append(x)
    counts = view.regression_counts
    for suite, items in by_suite.items():
        examples += [
            "",
            *_examples(suite, items[: max(3, top // 2)], counts.get(suite, len(items))),
        ]
    if len(examples) > 1:
        sections.append(examples)
    footer = [
        f"<sub>heldout {r.heldout_version} · run {r.run_id} · plan sha256 "
        f"{r.plan_sha256[:12]} · seed {r.stats.get('seed')}</sub>",
        "",
    ]
    note = "*… {k} section(s) cut to fit GitHub's comment limit; the HTML report has all of it.*"
    budget = MAX_CHARS - len("\n".join(footer)) - len(note) - 16
    kept: list[str] = []
    used = 0
    for k, section in enumerate(sections):
        text = "\n".join(section)
        if used + len(text) + 2 > budget:
            kept.append(note.format(k=len(sections) - k))
            break
        kept.append(text)
        used += len(text) + 2
    return "\n\n".join(kept) + "\n\n" + "\n".join(footer)

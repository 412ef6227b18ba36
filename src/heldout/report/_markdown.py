"""Markdown report: a compact PR comment (verdict, key table, guardrails, top regressions)."""

from __future__ import annotations

import re

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


def render_markdown(view: ReportView, *, top: int = 10) -> str:
    """The report as Markdown, cut to stay under 65,000 characters (GitHub's comment limit)."""
    r = view.result
    v = r.verdict
    status = "smoke run: not a verdict" if v.status == "smoke" else v.status
    out = [f"## {ICON[v.status]} heldout: **{status}** — {_cell(r.plan_name)}", ""]
    out += [f"- {_cell(reason, 600)}" for reason in v.reasons]
    for w in [*r.warnings, *v.warnings]:
        out.append(f"- ⚠️ {_cell(w, 600)}")
    out += [
        "",
        "| dataset | metric | base | candidate | delta [95% CI] | test |",
        "|---|---|---|---|---|---|",
    ]
    for c in view.comparisons:
        if c.against != "candidate":
            continue
        name = f"**{c.metric}**" if c.primary else c.metric
        test = c.test + (f" ({c.fixed} fixed, {c.broken} broken)" if c.fixed is not None else "")
        out.append(
            f"| {_cell(c.dataset)} | {name} | {fmt(c.base.estimate)} | {fmt(c.other.estimate)} "
            f"| {fmt(c.delta.estimate, signed=True)} [{fmt(c.delta.low, signed=True)}, "
            f"{fmt(c.delta.high, signed=True)}] | {test}, p={_p(c.p_value)} |"
        )
    if view.gates:
        out += [
            "",
            "### Guardrails (failures first)",
            "",
            "| guardrail | status | change [CI] | allowed drop | n |",
            "|---|---|---|---|---|",
        ]
        for g in view.gates:
            out.append(
                f"| {_cell(g.name)} | {ICON[g.status]} {g.status} | "
                f"{fmt(g.change.estimate, signed=True)} [{fmt(g.change.low, signed=True)}, "
                f"{fmt(g.change.high, signed=True)}] | {g.margin:g} | {g.n} |"
            )
    if r.judge:
        out += ["", f"**Judge:** {_cell(r.judge['description'], 600)}"]
    losses = []
    if view.weakest_class:
        name, row = view.weakest_class
        losses.append(
            f"- weakest class: **{_cell(name)}** (F1 {row['f1']:.3f}, recall "
            f"{row['recall']:.3f}, support {row['support']})"
        )
    if view.weakest_slice:
        s = view.weakest_slice
        c = s["comparison"]
        losses.append(
            f"- weakest slice: **{_cell(s['field'])}={_cell(s['value'])}** (delta "
            f"{fmt(c.delta.estimate, signed=True)}, n={c.n}"
            f"{', tiny: not gated' if s['tiny'] else ''})"
        )
    if view.unparseable:
        losses.append(f"- unparseable candidate outputs: {view.totals['unparseable']:,}")
    if losses or view.regressions:
        out += ["", "### Losses", "", *losses]
    if view.regressions:
        out += [
            "",
            f"Top regressions (base right, candidate wrong): {view.totals['regressions']:,}",
            "",
            "| id | input | target | base | candidate |",
            "|---|---|---|---|---|",
        ]
        for item in view.regressions[:top]:
            out.append(
                f"| {_code(item['id'], 40)} | {_code(item['input'], 120)} | "
                f"{_code(item['target'], 60)} | {_code(item['base_output'], 80)} | "
                f"{_code(item['output'], 80)} |"
            )
    out += [
        "",
        f"<sub>heldout {r.heldout_version} · run {r.run_id} · plan sha256 "
        f"{r.plan_sha256[:12]} · seed {r.stats.get('seed')}</sub>",
        "",
    ]
    text = "\n".join(out)
    if len(text) > MAX_CHARS:
        text = (
            text[: MAX_CHARS - 80].rsplit("\n", 1)[0] + "\n\n… (cut to fit; see the HTML report)\n"
        )
    return text

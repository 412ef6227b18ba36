"""The A/B analysis as JSON (the contract), Markdown (a PR or chat message) and one
self-contained HTML page: the decision and its reasons first, then what got worse, the
primary's confidence sequence over time, the per-arm tables, every stage's SRM check and the
offline run the experiment followed."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime
from typing import Any

from heldout.ab._analyze import Analysis, MetricResult, StageResult

__all__ = ["analysis_json", "render_html", "render_markdown"]


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def analysis_json(a: Analysis) -> dict[str, Any]:
    body = dataclasses.asdict(a)
    for st, raw in zip(a.stages, body["stages"], strict=True):
        raw["units"] = st.units
        for m, rm in zip(st.metrics, raw["metrics"], strict=True):
            rm["loss"] = m.loss
    body["decision"]["exit_code"] = a.decision.exit_code
    return {"schema": "heldout.ab.analysis/1", **_clean(body)}


def _ordered(st: StageResult) -> list[MetricResult]:
    rank = {"worse": 0, "fail": 0, "unresolved": 1, "no difference yet": 1}
    return sorted(st.metrics, key=lambda m: (rank.get(m.status, 2), m.role != "primary"))


def _n(x: float, signed: bool = False) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:+.4g}" if signed else f"{x:.4g}"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts > 0 else "-"


def _rows(st: StageResult) -> list[dict[str, str]]:
    out = []
    for m in _ordered(st):
        e = m.effect
        margin = (
            ""
            if m.margin is None
            else (
                f"{'drop' if m.higher_is_better else 'increase'} ≤ {m.margin:g}"
                + (" (relative)" if m.relative else "")
            )
        )
        out.append(
            {
                "name": m.name,
                "role": m.role,
                "status": m.status,
                "loss": "yes" if m.loss else "",
                "control": _n(e.control.mean),
                "treatment": _n(e.treatment.mean),
                "effect": _n(e.estimate, True) + (" rel." if m.relative else ""),
                "seq": f"[{_n(e.sequential.low, True)}, {_n(e.sequential.high, True)}]",
                "fixed": f"[{_n(e.fixed.low, True)}, {_n(e.fixed.high, True)}] p={_n(e.p_value)}",
                "margin": margin,
                "method": m.method + (f"; {m.note}" if m.note else ""),
                "more": "" if m.more_units is None else str(m.more_units),
            }
        )
    return out


def render_markdown(a: Analysis) -> str:
    d = a.decision
    lines = [f"# A/B {a.experiment}: **{d.decision.upper()}** (stage {d.stage * 100:g}%)", ""]
    lines += (
        ["> Simulated traffic: not real users.", ""] if a.source.startswith("simulation") else []
    )
    lines += [f"- {r}" for r in d.reasons]
    if d.more_units:
        lines.append(f"- about {d.more_units} more units needed")
    if a.offline:
        o = a.offline
        lines += [
            "",
            f"Follows offline run `{o['run_id']}` (verdict **{o['verdict']}**, plan "
            f"`{o['plan_name']}`, sha256 {o['plan_sha256'][:12]}…): {o['folder']}",
        ]
    for st in reversed(a.stages):
        lines += [
            "",
            f"## Stage {st.share * 100:g}% — {st.units} units "
            f"({st.units_control} control, {st.units_treatment} treatment), {st.requests} requests",
            "",
            f"SRM p = {_n(st.srm_p)}; units in both arms: {st.mixed_units}; "
            f"{_when(st.since)} → {_when(st.until)}",
            "",
            "| metric | role | status | control | treatment | effect | always-valid CI | "
            "fixed-horizon CI | margin | more units |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in _rows(st):
            cells = [
                r[k].replace("|", "\\|")
                for k in (
                    "name",
                    "role",
                    "status",
                    "control",
                    "treatment",
                    "effect",
                    "seq",
                    "fixed",
                    "margin",
                    "more",
                )
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Always-valid intervals (confidence sequences) may be checked at any time; the "
        "fixed-horizon interval is valid once, at the planned number of units.",
    ]
    return "\n".join(lines) + "\n"


def _chart(st: StageResult) -> str:
    """The primary's confidence sequence and fixed interval over the looks (inline SVG)."""
    looks = [x for x in st.looks if math.isfinite(x.low) and math.isfinite(x.high)]
    if len(looks) < 2:
        return ""
    w, h, pad = 640, 220, 40
    lo = min(0.0, *(x.low for x in looks))
    hi = max(0.0, *(x.high for x in looks))
    span = (hi - lo) or 1.0

    def px(i: int) -> float:
        return pad + i * (w - 2 * pad) / (len(looks) - 1)

    def py(v: float) -> float:
        return h - pad - (v - lo) / span * (h - 2 * pad)

    band = " ".join(f"{px(i):.1f},{py(x.high):.1f}" for i, x in enumerate(looks))
    band += " " + " ".join(
        f"{px(i):.1f},{py(x.low):.1f}" for i, x in reversed(list(enumerate(looks)))
    )
    fixed = " ".join(f"{px(i):.1f},{py(x.fixed_high):.1f}" for i, x in enumerate(looks))
    fixed_lo = " ".join(f"{px(i):.1f},{py(x.fixed_low):.1f}" for i, x in enumerate(looks))
    est = " ".join(f"{px(i):.1f},{py(x.estimate):.1f}" for i, x in enumerate(looks))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
        'aria-label="confidence sequence of the primary outcome over time">'
        f'<polygon points="{band}" fill="#9ecae1" opacity="0.6"/>'
        f'<polyline points="{fixed}" fill="none" stroke="#888" stroke-dasharray="4 3"/>'
        f'<polyline points="{fixed_lo}" fill="none" stroke="#888" stroke-dasharray="4 3"/>'
        f'<polyline points="{est}" fill="none" stroke="#08519c" stroke-width="2"/>'
        f'<line x1="{pad}" x2="{w - pad}" y1="{py(0):.1f}" y2="{py(0):.1f}" stroke="#000"/>'
        f'<text x="{pad}" y="14" font-size="12">effect {_n(hi, True)} (top) to {_n(lo, True)} '
        f"(bottom); band: always-valid; dashed: fixed-horizon; {len(looks)} looks, "
        f"{looks[-1].units} units at the last</text></svg>"
    )


_TEMPLATE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>A/B {{ a.experiment }}: {{ d.decision }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:14px}
.loss{background:#fde0dd}.rollback{color:#b30000}.hold{color:#a05a00}.ramp,.ship{color:#006d2c}
.sim{background:#ffe;border:1px solid #cc0;padding:.5em}</style></head><body>
<h1>A/B {{ a.experiment }}: <span class="{{ d.decision }}">{{ d.decision | upper }}</span>
(stage {{ '%g' % (d.stage * 100) }}%)</h1>
{% if sim %}<p class="sim">Simulated traffic: these are not real users.</p>{% endif %}
<ul>{% for r in d.reasons %}<li>{{ r }}</li>{% endfor %}
{% if d.more_units %}<li>about {{ d.more_units }} more units needed</li>{% endif %}</ul>
{% if a.offline %}<p>Follows offline run <code>{{ a.offline.run_id }}</code>: verdict
<b>{{ a.offline.verdict }}</b>, plan {{ a.offline.plan_name }}
(<a href="{{ offline_href }}">results</a>).</p>{% endif %}
{% if losses %}<h2>What got worse</h2><ul>{% for m in losses %}<li class="loss">{{ m }}</li>{% endfor %}</ul>{% endif %}
{% for st, rows, chart in stages %}
<h2>Stage {{ '%g' % (st.share * 100) }}%: {{ st.units }} units ({{ st.units_control }} control,
{{ st.units_treatment }} treatment), {{ st.requests }} requests</h2>
<p>Sample ratio check: p = {{ '%.3g' % st.srm_p }}; units served by both arms: {{ st.mixed_units }}.</p>
{{ chart | safe }}
<table><tr><th>metric</th><th>role</th><th>status</th><th>control</th><th>treatment</th>
<th>effect</th><th>always-valid CI</th><th>fixed-horizon CI</th><th>margin</th><th>method</th><th>more units</th></tr>
{% for r in rows %}<tr class="{{ 'loss' if r.loss else '' }}"><td>{{ r.name }}</td><td>{{ r.role }}</td>
<td>{{ r.status }}</td><td>{{ r.control }}</td><td>{{ r.treatment }}</td><td>{{ r.effect }}</td>
<td>{{ r.seq }}</td><td>{{ r.fixed }}</td><td>{{ r.margin }}</td><td>{{ r.method }}</td><td>{{ r.more }}</td></tr>{% endfor %}
</table>{% endfor %}
{% if a.splits %}<h2>Split history</h2><table><tr><th>time</th><th>share</th><th>action</th><th>reason</th></tr>
{% for s in a.splits %}<tr><td>{{ when(s.ts) }}</td><td>{{ '%g' % (s.share * 100) }}%</td><td>{{ s.action }}</td><td>{{ s.reason }}</td></tr>{% endfor %}</table>{% endif %}
<p>Always-valid intervals (confidence sequences, Waudby-Smith et al.) may be checked at any
time; the fixed-horizon interval is valid once, at the planned number of units.</p>
</body></html>"""


def render_html(a: Analysis) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    losses = [
        f"stage {st.share * 100:g}%: {m.name} {m.status}: effect {_n(m.effect.estimate, True)} "
        f"[{_n(m.effect.sequential.low, True)}, {_n(m.effect.sequential.high, True)}]"
        for st in reversed(a.stages)
        for m in _ordered(st)
        if m.loss
    ]
    href = ""
    if a.offline:
        from pathlib import Path

        href = (Path(a.offline["folder"]) / "report.html").as_uri()
    return env.from_string(_TEMPLATE).render(
        a=a,
        d=a.decision,
        sim=a.source.startswith("simulation"),
        losses=losses,
        stages=[(st, _rows(st), _chart(st)) for st in reversed(a.stages)],
        offline_href=href,
        when=_when,
    )

"""Small inline SVG charts (no external assets): forest plot, bars, reliability diagram."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["bars", "forest", "reliability_diagram"]


def _scale(lo: float, hi: float, x0: float, x1: float) -> tuple[float, float]:
    span = hi - lo or 1.0
    k = (x1 - x0) / span
    return k, x0 - lo * k


def forest(
    rows: Sequence[tuple[str, float | None, float | None, float | None, float | None]],
) -> str:
    """Rows of (label, estimate, low, high, margin): dots with CI whiskers; a dashed line at
    −margin where a guardrail applies; zero marked."""
    finite = [v for r in rows for v in r[1:4] if v is not None] + [0.0]
    finite += [-r[4] for r in rows if r[4] is not None]
    lo, hi = min(finite), max(finite)
    pad = (hi - lo) * 0.08 or 0.05
    lo, hi = lo - pad, hi + pad
    width, left, right, row_h = 760, 260, 740, 26
    k, b = _scale(lo, hi, left, right)
    height = 30 + row_h * len(rows)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'role="img" aria-label="forest plot of deltas">',
        f'<line x1="{b:.1f}" y1="10" x2="{b:.1f}" y2="{height - 20}" stroke="#888"/>',
        f'<text x="{b:.1f}" y="{height - 5}" font-size="11" text-anchor="middle">0</text>',
    ]
    for i, (label, est, low, high, margin) in enumerate(rows):
        y = 20 + i * row_h
        parts.append(
            f'<text x="{left - 8}" y="{y + 4}" font-size="12" text-anchor="end">'
            f"{escape(label)}</text>"
        )
        if margin is not None:
            x = -margin * k + b
            parts.append(
                f'<line x1="{x:.1f}" y1="{y - 9}" x2="{x:.1f}" y2="{y + 9}" '
                'stroke="#c0392b" stroke-dasharray="3,2"/>'
            )
        if low is not None and high is not None:
            color = "#27ae60" if low > 0 else ("#c0392b" if high < 0 else "#7f8c8d")
            parts.append(
                f'<line x1="{low * k + b:.1f}" y1="{y}" x2="{high * k + b:.1f}" y2="{y}" '
                f'stroke="{color}" stroke-width="2"/>'
            )
        if est is not None:
            parts.append(f'<circle cx="{est * k + b:.1f}" cy="{y}" r="4" fill="#2c3e50"/>')
    parts.append("</svg>")
    return "".join(parts)


def bars(rows: Sequence[tuple[str, float, bool]]) -> str:
    """Horizontal bars of (label, value, flagged) around zero, in the given order."""
    if not rows:
        return ""
    vals = [v for _, v, _ in rows] + [0.0]
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.1 or 0.05
    k, b = _scale(lo - pad, hi + pad, 200, 740)
    row_h = 22
    height = 20 + row_h * len(rows)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="760" height="{height}" role="img" '
        'aria-label="per-slice deltas">',
        f'<line x1="{b:.1f}" y1="5" x2="{b:.1f}" y2="{height - 5}" stroke="#888"/>',
    ]
    for i, (label, value, flagged) in enumerate(rows):
        y = 10 + i * row_h
        x0, x1 = sorted((b, value * k + b))
        color = "#c0392b" if value < 0 else "#27ae60"
        opacity = "0.45" if flagged else "1"
        parts.append(
            f'<text x="192" y="{y + 12}" font-size="12" text-anchor="end">{escape(label)}</text>'
        )
        parts.append(
            f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" height="16" '
            f'fill="{color}" fill-opacity="{opacity}"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def reliability_diagram(series: dict[str, list[dict[str, float | int | None]]]) -> str:
    """Accuracy vs confidence per bin for each model, with the diagonal."""
    size, pad = 300, 36
    colors = {"base": "#2980b9", "candidate": "#e67e22", "reference": "#8e44ad"}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size + 140}" height="{size + 2 * pad}" '
        'role="img" aria-label="reliability diagram">',
        f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="none" stroke="#888"/>',
        f'<line x1="{pad}" y1="{pad + size}" x2="{pad + size}" y2="{pad}" stroke="#bbb" '
        'stroke-dasharray="4,3"/>',
        f'<text x="{pad + size / 2}" y="{size + 2 * pad - 6}" font-size="11" '
        'text-anchor="middle">confidence</text>',
    ]
    for j, (role, bins) in enumerate(series.items()):
        pts = [
            (b["confidence"], b["accuracy"])
            for b in bins
            if b.get("confidence") is not None and b.get("accuracy") is not None
        ]
        color = colors.get(role, "#333")
        path = " ".join(
            f"{pad + float(c) * size:.1f},{pad + size - float(a) * size:.1f}"  # type: ignore[arg-type]
            for c, a in pts
        )
        if path:
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
        parts.append(
            f'<text x="{pad + size + 10}" y="{pad + 14 + 16 * j}" font-size="12" '
            f'fill="{color}">{escape(role)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)

"""Inline SVG charts (no external assets), each with axes, tick labels and units: the forest
plot of deltas with their allowed margins, per-slice deltas with CIs, and the reliability
diagram. Every chart has a ``viewBox`` and scales to its container's width."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

__all__ = ["forest", "reliability_diagram", "ticks"]

Row = tuple[str, float | None, float | None, float | None, float | None]


def ticks(lo: float, hi: float, target: int = 7) -> list[float]:
    """Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten."""
    span = hi - lo
    if not span > 0 or not math.isfinite(span):
        return [lo]
    raw = span / max(target - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out, k = [], 0
    while first + k * step <= hi + 1e-9 * step:
        out.append(round(first + k * step, 12))
        k += 1
    return out


def _label(v: float, step: float) -> str:
    digits = max(0, -math.floor(math.log10(step))) if step > 0 else 2
    text = f"{v:+.{digits}f}" if v else "0"
    return text.replace("-", "−")


def _svg(width: int, height: int, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" style="max-width:{width}px;height:auto" role="img" '
        f'aria-label="{escape(label)}" class="chart">'
    )


def forest(rows: Sequence[Row], *, axis: str, label: str = "forest plot of deltas") -> str:
    """Rows of (label, estimate, low, high, margin): dots with CI whiskers on an x axis with
    tick labels and ``axis`` as its title; a dashed red mark at −margin where a guardrail
    applies; zero drawn. Green whiskers lie above zero, red below, grey across it."""
    if not rows:
        return ""
    finite = [v for r in rows for v in r[1:4] if v is not None and math.isfinite(v)] + [0.0]
    finite += [-r[4] for r in rows if r[4] is not None]
    lo, hi = min(finite), max(finite)
    pad = (hi - lo) * 0.06 or 0.05
    lo, hi = lo - pad, hi + pad
    width, left, right, top, row_h = 640, 210, 624, 12, 24
    k = (right - left) / (hi - lo)

    def x(v: float) -> float:
        return left + (v - lo) * k

    plot_h = row_h * len(rows)
    height = top + plot_h + 44
    grid = ticks(lo, hi)
    step = grid[1] - grid[0] if len(grid) > 1 else 1.0
    parts = [_svg(width, height, label)]
    for t in grid:
        parts.append(
            f'<line x1="{x(t):.1f}" y1="{top}" x2="{x(t):.1f}" y2="{top + plot_h}" '
            f'stroke="{"#777" if t == 0 else "#e3e3e3"}"/>'
            f'<text x="{x(t):.1f}" y="{top + plot_h + 14}" font-size="11" '
            f'text-anchor="middle">{_label(t, step)}</text>'
        )
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{right}" y2="{top + plot_h}" stroke="#777"/>'
        f'<text x="{(left + right) / 2:.1f}" y="{height - 6}" font-size="12" '
        f'text-anchor="middle" class="axis-label">{escape(axis)}</text>'
    )
    for i, (name, est, low, high, margin) in enumerate(rows):
        y = top + row_h * i + row_h / 2
        parts.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" font-size="12" text-anchor="end">'
            f"{escape(name if len(name) <= 32 else name[:31] + '…')}<title>{escape(name)}</title>"
            "</text>"
        )
        if margin is not None:
            parts.append(
                f'<line x1="{x(-margin):.1f}" y1="{y - 9:.1f}" x2="{x(-margin):.1f}" '
                f'y2="{y + 9:.1f}" stroke="#c0392b" stroke-width="2" stroke-dasharray="3,2">'
                f"<title>allowed drop −{margin:g}</title></line>"
            )
        if low is not None and high is not None:
            color = "#27ae60" if low > 0 else ("#c0392b" if high < 0 else "#7f8c8d")
            parts.append(
                f'<line x1="{x(low):.1f}" y1="{y:.1f}" x2="{x(high):.1f}" y2="{y:.1f}" '
                f'stroke="{color}" stroke-width="2"/>'
            )
        if est is not None:
            interval = "" if low is None or high is None else f" [{low:+.4f}, {high:+.4f}]"
            parts.append(
                f'<circle cx="{x(est):.1f}" cy="{y:.1f}" r="4" fill="#2c3e50">'
                f"<title>{escape(name)}: {est:+.4f}{interval}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)


def reliability_diagram(series: dict[str, list[dict[str, float | int | None]]]) -> str:
    """Accuracy against confidence per bin for each model: a point per bin (its area grows
    with the bin's count, so a model whose probabilities fall in one bin still shows), the
    diagonal of perfect calibration, both axes ticked 0-1, and each bin's count."""
    size, left, top = 300, 46, 14
    width, height = left + size + 150, top + size + 44
    colors = {"base": "#2980b9", "candidate": "#e67e22", "reference": "#8e44ad"}
    parts = [
        _svg(width, height, "reliability diagram"),
        f'<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="none" stroke="#777"/>',
        f'<line x1="{left}" y1="{top + size}" x2="{left + size}" y2="{top}" stroke="#bbb" '
        'stroke-dasharray="4,3"/>',
    ]
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        px, py = left + t * size, top + size - t * size
        parts.append(
            f'<text x="{px:.1f}" y="{top + size + 14}" font-size="11" text-anchor="middle">'
            f"{t:g}</text>"
            f'<text x="{left - 6}" y="{py + 4:.1f}" font-size="11" text-anchor="end">{t:g}</text>'
        )
    parts.append(
        f'<text x="{left + size / 2}" y="{height - 6}" font-size="12" text-anchor="middle" '
        'class="axis-label">confidence (mean predicted probability in the bin)</text>'
        f'<text x="12" y="{top + size / 2}" font-size="12" text-anchor="middle" '
        f'class="axis-label" transform="rotate(-90 12 {top + size / 2})">accuracy in the bin'
        "</text>"
    )
    most = max((int(b.get("count") or 0) for bins in series.values() for b in bins), default=1)
    for j, (role, bins) in enumerate(series.items()):
        color = colors.get(role, "#333")
        pts = [
            (float(b["confidence"]), float(b["accuracy"]), int(b.get("count") or 0))  # type: ignore[arg-type]
            for b in bins
            if b.get("confidence") is not None and b.get("accuracy") is not None
        ]
        path = " ".join(f"{left + c * size:.1f},{top + size - a * size:.1f}" for c, a, _ in pts)
        if len(pts) > 1:
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>'
            )
        for c, a, count in pts:
            r = 2.5 + 5.5 * math.sqrt(count / most) if most else 3
            parts.append(
                f'<circle cx="{left + c * size:.1f}" cy="{top + size - a * size:.1f}" '
                f'r="{r:.1f}" fill="{color}" fill-opacity="0.75">'
                f"<title>{escape(role)}: confidence {c:.3f}, accuracy {a:.3f}, "
                f"{count} samples</title></circle>"
            )
        total = sum(n for _, _, n in pts)
        parts.append(
            f'<text x="{left + size + 12}" y="{top + 16 + 34 * j}" font-size="12" '
            f'fill="{color}">{escape(role)}</text>'
            f'<text x="{left + size + 12}" y="{top + 30 + 34 * j}" font-size="11" '
            f'fill="#555">{len(pts)} bins, {total} samples</text>'
        )
    parts.append("</svg>")
    return "".join(parts)

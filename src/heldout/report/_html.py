"""Self-contained HTML report: inline CSS, JS and SVG; no network fetches; losses first.

Model outputs are untrusted: Jinja2 autoescaping renders them as text, and the
Content-Security-Policy allows no remote loads and only the report's own script (by hash),
so even a missed escape could not run injected script.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
from pathlib import Path
from typing import Any

from heldout._version import __version__
from heldout.report import _view
from heldout.report._judge import judge_view
from heldout.report._svg import forest, reliability_diagram
from heldout.report._view import ReportView, fmt

__all__ = ["render_html"]

SCRIPT = """
function page(table, size) {
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  var shown = Math.min(size, rows.length);
  var more = document.createElement('button');
  more.type = 'button';
  more.className = 'more';
  function draw() {
    rows.forEach(function (tr, i) { tr.style.display = i < shown ? '' : 'none'; });
    var left = rows.length - shown;
    more.textContent = 'Show ' + Math.min(size, left) + ' more (' + left + ' hidden)';
    more.style.display = left > 0 ? '' : 'none';
  }
  more.addEventListener('click', function () { shown += size; draw(); });
  table.parentNode.insertBefore(more, table.nextSibling);
  table.redraw = draw;
  draw();
}
document.querySelectorAll('table[data-page]').forEach(function (t) {
  page(t, parseInt(t.dataset.page, 10));
});
document.querySelectorAll('input.filter').forEach(function (box) {
  box.addEventListener('input', function () {
    var table = document.getElementById(box.dataset.table);
    var q = box.value.toLowerCase();
    if (!q && table.redraw) { table.redraw(); return; }
    Array.prototype.forEach.call(table.tBodies[0].rows, function (tr) {
      tr.style.display = tr.textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
    });
  });
});
"""


def _bytecode_cache() -> Any:
    """Compiled templates kept in the user's cache folder (compiling costs ~0.1 s of every
    run); none when it cannot be written. Keyed by the template's checksum, so a changed
    template is never served stale."""
    import jinja2

    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = root / "heldout" / f"jinja-{__version__}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(folder)) if os.access(folder, os.W_OK) else None


@functools.cache
def _template() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("heldout.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        bytecode_cache=_bytecode_cache(),
    )
    return env.get_template("report.html.j2")


def render_html(view: ReportView) -> str:
    """The report as one self-contained HTML page."""
    r = view.result
    template = _template()
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    csp = (
        f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'"
    )
    cand_rows = [c for c in view.comparisons if c.against == "candidate"]
    ref_by = {(c.dataset, c.metric): c for c in view.comparisons if c.against == "reference"}
    forest_rows: list[tuple[str, float | None, float | None, float | None, float | None]] = [
        (f"{c.dataset} · {c.metric}", c.delta.estimate, c.delta.low, c.delta.high, None)
        for c in cand_rows
    ]
    forest_rows += [
        (f"gate · {g.name}", g.change.estimate, g.change.low, g.change.high, g.margin)
        for g in view.gates
    ]
    margins = {p.label: g.margin for g in view.gates if g.kind == "slice" for p in g.parts}
    slice_rows: list[tuple[str, float | None, float | None, float | None, float | None]] = [
        (
            f"{s.field}={s.value} (n={s.comparison.n}{', tiny' if s.tiny else ''})",
            s.comparison.delta.estimate,
            s.comparison.delta.low,
            s.comparison.delta.high,
            margins.get(f"{s.field}={s.value}"),
        )
        for s in sorted(r.slices, key=lambda s: s.comparison.delta.estimate or 0.0)
    ]
    reliability = (r.calibration or {}).get("reliability")
    warnings = list(r.warnings) + list(r.verdict.warnings)
    units = f"candidate − base, in {r.primary_metric} units (guardrails: positive is better)"
    slice_metric = r.slices[0].comparison.metric if r.slices else r.primary_metric

    def cm_max(cm: dict[str, Any]) -> float:
        return float(max((max(row) for row in cm["matrix"]), default=1) or 1)

    html: str = template.render(
        r=r,
        csp=csp,
        script=SCRIPT,
        cand_rows=cand_rows,
        ref=bool(ref_by),
        ref_by=ref_by,
        gates=view.gates,
        regressions=view.regressions,
        suite_regressions=view.suite_regressions,
        unparseable=view.unparseable,
        totals=view.totals,
        shown=_view.SHOWN,
        weakest_class=view.weakest_class,
        weakest_slice=view.weakest_slice,
        confusion=view.confusion,
        cm_max=cm_max,
        forest_svg=forest(forest_rows, axis=units),
        slices_svg=forest(
            slice_rows,
            axis=f"candidate − base per slice, in {slice_metric} units",
            label="per-slice deltas with confidence intervals",
        ),
        confusion_delta=confusion_delta(view.confusion),
        breakdown_svg=forest(
            [
                (f"{b.suite} · {b.value} (n={b.n})", b.candidate - b.base, None, None, None)
                for b in view.breakdown
            ],
            axis="candidate − base per skill or constraint type, in each suite's score",
            label="suites by skill or constraint type",
        ),
        losses=view.losses,
        judge=judge_view(r.judge),
        regression_counts=view.regression_counts,
        weakest_suite=view.weakest_suite,
        groups=view.groups[:12],
        breakdown=view.breakdown,
        diagnoses=view.diagnoses,
        reliability_svg=reliability_diagram(reliability) if reliability else "",
        warnings=warnings,
        f=fmt,
        fs=lambda x: fmt(x, signed=True),
    )
    return html


def confusion_delta(confusion: dict[str, Any]) -> dict[str, Any] | None:
    """Candidate − base per cell where both matrices share rows and columns; each cell's
    colour says better (green: more on the diagonal, fewer off it) or worse (red)."""
    base, cand = confusion.get("base"), confusion.get("candidate")
    if not base or not cand or base["rows"] != cand["rows"] or base["columns"] != cand["columns"]:
        return None
    diff = [
        [c - b for b, c in zip(rb, rc, strict=True)]
        for rb, rc in zip(base["matrix"], cand["matrix"], strict=True)
    ]
    top = max((abs(v) for row in diff for v in row), default=0) or 1
    cells = []
    for i, row in enumerate(diff):
        out = []
        for j, v in enumerate(row):
            good = v > 0 if cand["columns"][j] == cand["rows"][i] else v < 0
            tint = "39,174,96" if good else "192,57,43"
            out.append((v, f"rgba({tint},{abs(v) / top * 0.8:.2f})" if v else "transparent"))
        cells.append(out)
    return {"rows": cand["rows"], "columns": cand["columns"], "cells": cells}

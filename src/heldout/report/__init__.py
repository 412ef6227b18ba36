"""Reports from stored results: HTML (self-contained), Markdown (PR comment), JUnit XML."""

from pathlib import Path

from heldout.report._html import render_html
from heldout.report._junit import render_junit
from heldout.report._markdown import render_markdown
from heldout.report._view import ReportView, build_view
from heldout.results._table import SampleTable

__all__ = [
    "ReportView",
    "build_view",
    "render_html",
    "render_junit",
    "render_markdown",
    "write_reports",
]


def write_reports(folder: Path, rows: SampleTable | None = None) -> dict[str, Path]:
    """Render every format from a run folder's stored results; never calls a model.
    ``rows``: the run's sample rows when the caller holds them (else read from the folder)."""
    from heldout.results._samples import read_samples
    from heldout.results._store import load_run

    view = build_view(load_run(folder), rows if rows is not None else read_samples(folder))
    outputs = {
        "html": (folder / "report.html", render_html(view)),
        "markdown": (folder / "report.md", render_markdown(view)),
        "junit": (folder / "junit.xml", render_junit(view)),
    }
    for path, text in outputs.values():
        path.write_text(text, encoding="utf-8")
    return {name: path for name, (path, _) in outputs.items()}

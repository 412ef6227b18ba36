"""``heldout run`` and ``heldout report``: the run calls :func:`heldout.evaluate`, exactly as
a notebook does, and prints its result (losses first); the report re-renders a stored run."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from heldout.cli._console import DEFAULT_PLAN, INTERRUPTED, PlanOpt, err, guard, out, row, table
from heldout.cli._progress import progress_for
from heldout.errors import HeldoutError
from heldout.results import RunResult

__all__ = ["exit_line", "print_summary", "report", "run_cmd", "run_folder"]


def exit_line(result: RunResult) -> str:
    """The last line of a run: the verdict, and what the exit code means."""
    v = result.verdict
    if v.status == "success":
        meaning = "the candidate cleared the bar and every guardrail: it may ship"
    elif v.status == "smoke":
        meaning = "a smoke run is never a verdict"
    else:
        meaning = f"the verdict is {v.status}: do not ship on this evidence"
    return f"heldout: verdict {v.status}; exit {v.exit_code} ({meaning})"


def run_cmd(
    plan: PlanOpt = DEFAULT_PLAN,
    allow_changed_plan: Annotated[
        bool, typer.Option(help="Run even if the plan changed since its lock (recorded).")
    ] = False,
    cache: Annotated[bool, typer.Option(help="Use the response cache.")] = True,
    refresh: Annotated[bool, typer.Option(help="Ignore cached responses (still stores).")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run folder to write.")] = None,
    failed_as_wrong: Annotated[
        bool, typer.Option(help="Score requests that failed after retries as wrong (reported).")
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1, help="Smoke run: the first N samples of each dataset (never a verdict)."
        ),
    ] = None,
    sample_ids: Annotated[
        Path | None,
        typer.Option(help="Smoke run on these gold sample ids (a file, one per line)."),
    ] = None,
    mlflow: Annotated[
        bool,
        typer.Option(help="Log the run to MLflow (the plan's tracking.mlflow, or defaults)."),
    ] = False,
) -> None:
    """Generate, score, compare, gate and decide. Exit 0 only on success."""
    from heldout.plan import load_plan
    from heldout.runner import ProgressEvent, evaluate
    from heldout.tracking import hooks_for

    err.print(f"heldout run: {plan}", highlight=False, markup=False)
    loaded = guard(lambda: load_plan(plan))
    # start-up objects (modules, the plan) live to the end: exempting them from the cyclic
    # collector saves its repeated full scans during generation (~40 ms per 2,000 responses)
    gc.freeze()
    done: dict[str, int] = {}
    with progress_for(err, already="from the cache") as (bars, stage):

        def on_progress(event: ProgressEvent) -> None:
            if event.stage != "generate":
                stage(f"{event.stage}: {event.label}")
                return
            done[event.label] = event.done
            INTERRUPTED[0] = f": {sum(done.values()):,} response(s) saved in the cache"
            bars(event.label, event.done, event.total)

        run = guard(
            lambda: evaluate(
                loaded,
                out=out_dir,
                allow_changed_plan=allow_changed_plan,
                cache=cache,
                refresh=refresh,
                failed_as_wrong=failed_as_wrong,
                limit=limit,
                sample_ids=sample_ids,
                progress=on_progress,
                hooks=hooks_for(loaded.plan, mlflow=mlflow),
            )
        )
    print_summary(run.result)
    # paths whole on one line (soft wrap), so that they can be copied
    out.print(f"results: {run.folder / 'results.json'}", highlight=False, soft_wrap=True)
    out.print(f"report:  {run.reports['html']}", highlight=False, soft_wrap=True)
    for name, where in (run.result.tracking or {}).items():
        out.print(
            f"{name}: run {where.get('run_id')} at {where.get('tracking_uri')}", highlight=False
        )
    out.print(exit_line(run.result), highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(run.exit_code)


def run_folder(run: str, plan: Path) -> Path:
    """A run given as a folder, or as a run id (prefix) from the plan's run store."""
    from heldout.results._store import RunStore

    folder = Path(run)
    if (folder / "results.json").is_file():
        return folder
    store = plan.resolve().parent / ".heldout" / "runs.sqlite"
    if not store.is_file():
        raise HeldoutError(
            f"{run!r} is not a run folder and there is no run store at {store}; give a run "
            "folder or a run id that 'heldout history' lists"
        )
    return RunStore(store).folder(run)


def report(
    run: Annotated[str, typer.Argument(help="Run folder or run id (prefix).")],
    plan: PlanOpt = DEFAULT_PLAN,
    show: Annotated[bool, typer.Option(help="Print the Markdown report.")] = False,
) -> None:
    """Re-render HTML, Markdown and JUnit from stored results (no model is called)."""
    from heldout.report import write_reports

    folder = guard(lambda: run_folder(run, plan))
    paths = guard(lambda: write_reports(folder))
    if show:
        sys.stdout.write(paths["markdown"].read_text(encoding="utf-8"))
    for name, path in paths.items():
        out.print(f"{name}: {path}", highlight=False)


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def print_summary(result: RunResult) -> None:
    """Comparisons, guardrails (losses first), the judge, warnings and the verdict."""
    from rich.markup import escape

    from heldout.report._diagnoses import overfitting
    from heldout.report._view import loss_order, significant_losses

    if result.smoke is not None:
        out.print("[bold yellow]smoke run: not a verdict[/]")
    losses = significant_losses(result)
    if losses:
        worse = table("kind", "what", "change [CI]", "note", title="what got worse")
        for x in losses:
            ci = f"{_num(x.change)} [{_num(x.low)}, {_num(x.high)}]"
            row(worse, x.kind, x.name, Text(ci, style="red"), x.note)
        out.print(worse)
    else:
        out.print("what got worse: no significant loss", highlight=False)
    comparisons = table(
        "dataset", "metric", "base", "candidate", "delta [CI]", "test",
        title="comparisons (losses first)",
    )  # fmt: skip
    for c in sorted(result.comparisons, key=loss_order):
        if c.against != "candidate":
            continue
        d = c.delta
        row(
            comparisons,
            c.dataset + (" *" if c.primary else ""),
            c.metric,
            _num(c.base.estimate),
            _num(c.other.estimate),
            f"{_num(d.estimate)} [{_num(d.low)}, {_num(d.high)}]",
            c.test + (f" ({c.fixed}↑ {c.broken}↓)" if c.fixed is not None else ""),
        )
    out.print(comparisons)
    if result.gates:
        gates = table("guardrail", "status", "detail", title="guardrails (losses first)")
        order = {"fail": 0, "unresolved": 1, "pass": 2}
        for g in sorted(result.gates, key=lambda g: order[g.status]):
            color = {"fail": "red", "unresolved": "yellow", "pass": "green"}[g.status]
            status = g.status + (" (not gated)" if g.untrusted else "")
            row(gates, g.name, Text(status, style=color), g.description)
        out.print(gates)
    for diag in overfitting(result):
        out.print(
            f"[yellow]diagnosis:[/] {escape(f'{diag.symptom}: {diag.evidence}; try {diag.fix}')}",
            highlight=False,
        )
    if result.judge:
        for line in result.judge.get("lines") or [result.judge["description"]]:
            out.print(line, highlight=False)
    for w in result.warnings + result.verdict.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    v = result.verdict
    color = "green" if v.status == "success" else ("red" if v.status == "blocked" else "yellow")
    out.print(f"[bold {color}]verdict: {v.status}[/]", highlight=False)
    for reason in v.reasons:
        out.print(f"  - {reason}", highlight=False)

"""``heldout flywheel`` and ``heldout flywheel ingest``: failures into the next dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heldout.cli._console import DEFAULT_PLAN, PlanOpt, err, guard, out, row, table

__all__ = ["flywheel_app"]

flywheel_app = typer.Typer(
    help="Turn failures (runs, production logs, your files) into train/eval candidates and a "
    "labelling queue, never touching the gold set.",
    invoke_without_command=True,
)

OutOpt = Annotated[
    Path, typer.Option("--out", help="Folder for the candidates, the queue and the report.")
]
TrainOpt = Annotated[
    Path | None,
    typer.Option(
        "--train", help="Training file to check against (default: the plan's train_sample)."
    ),
]


@flywheel_app.callback()
def flywheel(
    ctx: typer.Context,
    plan: PlanOpt = DEFAULT_PLAN,
    run: Annotated[
        list[str] | None, typer.Option("--run", help="A run folder or id (repeatable).")
    ] = None,
    events: Annotated[
        list[Path] | None,
        typer.Option("--events", help="Production log: JSONL, CSV or Parquet (repeatable)."),
    ] = None,
    file: Annotated[
        list[Path] | None, typer.Option("--file", help="Your own rows: input, target (repeatable).")
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Events column to stratify by (intent, tenant).")
    ] = None,
    train: TrainOpt = None,
    n: Annotated[int, typer.Option("--n", help="How many candidates to select.")] = 500,
    cap: Annotated[
        int | None, typer.Option("--cap", help="At most this many (the worst) per source.")
    ] = None,
    eval_share: Annotated[
        float, typer.Option("--eval-share", help="Share set aside as eval candidates.")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of ties and of the train/eval split.")] = 0,
    out_dir: OutOpt = Path("flywheel"),
) -> None:
    """Select the worst failures, stratified by where they cluster, leak-checked against the
    gold set and the training data; write the candidates, the queue and a report."""
    if ctx.invoked_subcommand is not None:
        return
    from heldout.cli._run import run_folder
    from heldout.flywheel import flywheel as build
    from heldout.plan import load_plan

    loaded = guard(lambda: load_plan(plan))
    runs = guard(lambda: [run_folder(r, plan) for r in run or []])
    result = guard(
        lambda: build(
            loaded, runs=runs, events=events or [], files=file or [], by=by, train=train,
            out=out_dir, n=n, cap=cap, eval_share=eval_share, seed=seed,
        )
    )  # fmt: skip
    t = table("stratum", "failures", "mass", "selected", "top reason", title="where failures are")
    for s in result.strata[:15]:
        top = s.reasons[0][0] if s.reasons else ""
        row(t, s.stratum, f"{s.failures:,}", f"{s.mass:.1f}", f"{s.selected:,}", top)
    out.print(t)
    d = result.dropped
    out.print(
        f"found {sum(result.found.values()):,} failures; dropped {d['gold']:,} in the gold set, "
        f"{d['train']:,} in the training data, {d['cap']:,} over --cap, {d['repeats']:,} "
        f"repeated inputs; wrote {result.train:,} "
        f"train and {result.eval:,} eval candidates and {result.queued:,} to label into "
        f"{out_dir} (report.md: what to fix next)",
        highlight=False,
    )
    for w in result.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)


@flywheel_app.command("ingest")
def ingest_cmd(
    labels: Annotated[
        Path, typer.Argument(help="Graded queue items: JSONL/CSV or Label Studio JSON.")
    ],
    plan: PlanOpt = DEFAULT_PLAN,
    train: TrainOpt = None,
    out_dir: OutOpt = Path("flywheel"),
) -> None:
    """Merge graded items back into the train/eval candidates, leak-checked again."""
    from heldout.flywheel import ingest
    from heldout.plan import load_plan

    loaded = guard(lambda: load_plan(plan))
    got = guard(lambda: ingest(loaded, labels, out_dir, train=train))
    out.print(
        f"added {got.added_train:,} train and {got.added_eval:,} eval candidates; skipped "
        f"{got.skipped:,} already ingested; dropped {got.dropped['gold']:,} in the gold set and "
        f"{got.dropped['train']:,} in the training data",
        highlight=False,
    )

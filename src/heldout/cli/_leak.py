"""``heldout leak``: gold samples found in the training data (exit 1 if any)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from heldout.cli._console import DEFAULT_PLAN, JsonOpt, PlanOpt, err, guard, out, print_json, row
from heldout.cli._console import table as make_table
from heldout.cli._outputs import LeakHitOut, LeakOutput

__all__ = ["leak"]

T = TypeVar("T")


def _progress_iter(items: Iterator[T], label: str, progress: Progress) -> Iterator[T]:
    task = progress.add_task(label, total=None)
    for item in items:
        progress.advance(task)
        yield item


def leak(
    train: Annotated[
        list[Path], typer.Option("--train", "-t", help="Training file(s): JSONL, CSV, Parquet.")
    ],
    gold: Annotated[
        Path | None, typer.Option(help="Gold set file (default: the plan's task.data).")
    ] = None,
    plan: PlanOpt = DEFAULT_PLAN,
    ngram: Annotated[int, typer.Option(help="Word n-gram length for containment.")] = 13,
    ngram_threshold: Annotated[
        float, typer.Option(help="Share of a gold input's n-grams in one training row.")
    ] = 0.2,
    shingle: Annotated[int, typer.Option(help="Character shingle length for Jaccard.")] = 5,
    jaccard_threshold: Annotated[float, typer.Option(help="Jaccard similarity threshold.")] = 0.5,
    short_words: Annotated[
        int, typer.Option(help="Gold inputs shorter than this also get the Jaccard check.")
    ] = 40,
    output: Annotated[Path, typer.Option("--out", "-o", help="JSON report path.")] = Path(
        "leak.json"
    ),
    allow_changed_plan: Annotated[
        bool, typer.Option(help="Run even if the plan changed since its lock.")
    ] = False,
    show: Annotated[int, typer.Option(help="Hits shown in the table.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Find gold samples that appear in the training data (exit 1 if any)."""
    from heldout.data import LeakOptions, find_leaks, iter_train_texts, load_samples
    from heldout.plan import check_lock, load_plan

    lock_info: dict[str, Any] | None = None
    if gold is not None:
        gold_path = gold
        samples = guard(lambda: load_samples(gold_path))
    else:
        loaded = guard(lambda: load_plan(plan))
        status = guard(lambda: check_lock(loaded, allow_changed=allow_changed_plan))
        if status.overridden:
            err.print("[yellow]warning:[/] the plan changed since its lock (--allow-changed-plan)")
        lock_info = asdict(status)
        gold_path = loaded.resolve(loaded.plan.task.data)
        samples = loaded.samples
    options = guard(
        lambda: LeakOptions(
            ngram=ngram,
            ngram_threshold=ngram_threshold,
            shingle=shingle,
            jaccard_threshold=jaccard_threshold,
            short_words=short_words,
        )
    )

    def rows() -> Iterator[tuple[str, list[str]]]:
        for path in train:
            yield from iter_train_texts(path)

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        report = guard(
            lambda: find_leaks(samples, _progress_iter(rows(), "training rows", progress), options)
        )
    body = LeakOutput(
        gold=str(gold_path),
        train=[str(p) for p in train],
        n_gold=report.n_gold,
        n_train=report.n_train,
        options=asdict(report.options),
        common_ngrams_ignored=report.common_ngrams_ignored,
        flagged_gold_ids=report.flagged,
        hits=[LeakHitOut(**asdict(h)) for h in report.hits],
        lock=lock_info,
    )
    output.write_text(body.model_dump_json(indent=2) + "\n", encoding="utf-8")
    if as_json:
        print_json(body)
        raise typer.Exit(1 if report.hits else 0)
    if not report.hits:
        out.print(
            f"[green]no leaks[/]: {report.n_gold} gold samples vs {report.n_train:,} training rows"
            f" (report: {output})",
            highlight=False,
        )
        return
    table = make_table(
        "gold id",
        "training row",
        "kind",
        "similarity",
        title=f"{len(report.flagged)} gold sample(s) found in the training data",
    )
    for hit in report.hits[:show]:
        row(table, hit.gold_id, hit.train_where, hit.kind, f"{hit.similarity:.3f}")
    out.print(table)
    if len(report.hits) > show:
        out.print(f"... {len(report.hits) - show} more hits in {output}")
    out.print(f"[bold red]leak[/]: remove these from the training data (report: {output})")
    raise typer.Exit(1)

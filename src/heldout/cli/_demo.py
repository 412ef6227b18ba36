"""``heldout demo``: a tiny model pre-trained and fine-tuned twice on the CPU, evaluated."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heldout.cli._console import err, guard, out
from heldout.cli._progress import progress_for
from heldout.cli._run import exit_line, print_summary

__all__ = ["demo"]


def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for everything it makes.")] = Path(
        "heldout-demo"
    ),
    seed: Annotated[int, typer.Option(help="Seed of data, initialisation and training.")] = 0,
) -> None:
    """Pre-train a tiny model, fine-tune it twice (LoRA, aggressive full), evaluate both.

    Real models, real training, real metrics, on the CPU, offline, in about a minute.
    """
    from heldout.demo import DemoConfig, run_demo

    with progress_for(err) as (bars, _stage):
        result = guard(lambda: run_demo(out_dir, DemoConfig(seed=seed), bars))
    out.print(
        f"base model's measured baseline (field_accuracy): {result.baseline:.4f}; leak check: "
        f"{result.leaks} gold samples found in the training data",
        highlight=False,
    )
    for name, (run, folder) in result.runs.items():
        label = {"lora": "LoRA adapter", "full": "aggressive full fine-tune"}[name]
        print_summary(run)
        out.print(f"[bold]{label}[/] → {run.verdict.status}; report: {folder / 'report.html'}")
        out.print(f"{label}: {exit_line(run)}", highlight=False, markup=False, soft_wrap=True)
    out.print(f"done in {result.seconds['total']:.0f} s; everything is in {out_dir}")

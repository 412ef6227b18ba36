"""``heldout init`` and ``heldout plan validate | lock | verify | schema``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from heldout.cli._console import DEFAULT_PLAN, PlanOpt, err, fail, guard, out

__all__ = ["init", "plan_app"]

plan_app = typer.Typer(
    help="Validate, lock and verify the pre-registered plan.", no_args_is_help=True
)

PathArg = Annotated[
    Path | None,
    typer.Argument(
        help="Plan file (the same as --plan; default heldout.yaml).", show_default=False
    ),
]


def _plan_path(path: Path | None, plan: Path) -> Path:
    """``plan validate PATH`` and ``plan validate -p PATH`` are the same; both at once must
    agree."""
    if path is None:
        return plan
    if plan != DEFAULT_PLAN and plan != path:
        fail(f"two plan files given: {path} and --plan {plan}; give one", 2)
    return path


def init(
    folder: Annotated[Path, typer.Argument(help="Where to write the starter project.")] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Write a commented starter heldout.yaml, a prompt and a tiny gold set."""
    from heldout.plan import write_starter

    written = guard(lambda: write_starter(folder, force=force))
    for path in written:
        out.print(f"wrote {path}")
    out.print("next: [bold]heldout plan validate[/] then [bold]heldout plan lock[/]")


@plan_app.command("validate")
def plan_validate(
    path: PathArg = None,
    plan: PlanOpt = DEFAULT_PLAN,
    data: Annotated[bool, typer.Option(help="Also check the gold set's integrity.")] = True,
) -> None:
    """Report every problem in the plan (and its gold set) at once."""
    from heldout.plan import load_plan

    plan = _plan_path(path, plan)
    loaded = guard(lambda: load_plan(plan, check_data=data))
    n = f", gold set {len(loaded.samples)} samples" if data else ""
    out.print(f"[green]ok[/] {plan}: plan '{loaded.plan.name}' is valid{n}", highlight=False)
    if data:
        power_warning(loaded)


def power_warning(loaded: Any) -> None:
    """Say (never fail) what power the gold set has for the pre-registered lift, with the
    assumption it rests on; warn when it is too small."""
    from heldout.plan import plan_power

    n = len(loaded.samples)
    pa = plan_power(loaded.plan, n)
    if pa is None:
        return
    if pa.n_needed is None:
        err.print(f"note: {pa.describe()}", highlight=False)
    elif pa.underpowered:
        err.print(f"[yellow]warning:[/] {n} gold samples are too few: {pa.describe()}")
    else:
        out.print(f"power: {pa.describe()}", highlight=False)
    resolvability_notes(loaded)


def resolvability_notes(loaded: Any) -> None:
    """Each guardrail's chance to pass when nothing got worse; warn below 50%."""
    from heldout.plan import guardrail_resolvability

    for r in guardrail_resolvability(loaded):
        if r.pass_chance is not None and r.pass_chance < 0.5:
            err.print(f"[yellow]warning:[/] guardrail {r.describe()}", highlight=False)
        else:
            out.print(f"guardrail {r.describe()}", highlight=False)


@plan_app.command("lock")
def plan_lock(path: PathArg = None, plan: PlanOpt = DEFAULT_PLAN) -> None:
    """Freeze the plan: write heldout.lock with sha256 of the plan and its files."""
    from heldout.plan import load_plan, plan_sha256, referenced_files, write_lock

    plan = _plan_path(path, plan)
    loaded = guard(lambda: load_plan(plan))
    lock = guard(lambda: write_lock(loaded))
    out.print(
        f"[green]locked[/] {plan} → {lock} (plan sha256 {plan_sha256(loaded)[:12]}…)",
        highlight=False,
    )
    for key, rel in referenced_files(loaded.plan).items():
        out.print(f"  {key}: {rel}", highlight=False)
    resolvability_notes(loaded)


@plan_app.command("verify")
def plan_verify(path: PathArg = None, plan: PlanOpt = DEFAULT_PLAN) -> None:
    """Say exactly what changed since the lock (exit 1 if anything did)."""
    from heldout.plan import default_lock_path, diff_lock, load_plan, read_lock

    plan = _plan_path(path, plan)
    loaded = guard(lambda: load_plan(plan))
    lock = guard(lambda: read_lock(default_lock_path(loaded)))
    changes = diff_lock(loaded, lock)
    if not changes:
        out.print(
            f"[green]unchanged[/] since {lock.get('locked_at')} ({default_lock_path(loaded)})",
            highlight=False,
        )
        return
    out.print(f"[bold red]changed[/] since the lock of {lock.get('locked_at')}:")
    for change in changes:
        out.print(f"  - {change}", highlight=False)
    raise typer.Exit(1)


@plan_app.command("schema")
def plan_schema(
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Print (or write) the JSON Schema of heldout.yaml."""
    from heldout.plan import plan_json_schema

    text = json.dumps(plan_json_schema(), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}")

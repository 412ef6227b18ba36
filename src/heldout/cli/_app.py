"""Typer application: ``heldout init | plan ... | leak | metrics``.

Exit codes: 0 ok, 1 a check failed (leak found, plan changed), 2 bad input or usage.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table
from rich.text import Text

from heldout._version import __version__
from heldout.errors import HeldoutError

app = typer.Typer(
    name="heldout",
    help="Decide, with evidence, whether a fine-tuned LLM is better than its base model.",
    epilog="Exit codes: 0 success; 1 a check or verdict says no; 2 bad input or "
    "configuration; 3 internal error (crash log); 130 interrupted (rerun resumes).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
plan_app = typer.Typer(
    help="Validate, lock and verify the pre-registered plan.", no_args_is_help=True
)
app.add_typer(plan_app, name="plan")

out = Console()
err = Console(stderr=True)
#: What an interrupted command had finished, for the interruption message.
_INTERRUPTED = [""]

T = TypeVar("T")
PlanOpt = Annotated[Path, typer.Option("--plan", "-p", help="Plan file.")]
DEFAULT_PLAN = Path("heldout.yaml")


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    m, sec = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


class _RateColumn(ProgressColumn):
    """Responses per second over rich's recent window ("–" until there is one)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(
            "   –  /s" if speed is None else f"{speed:>6,.0f}/s", style="progress.data.speed"
        )


class _TimeColumn(ProgressColumn):
    """Elapsed<remaining, as tqdm prints it ("03:12<01:05")."""

    def render(self, task: Task) -> Text:
        left = 0.0 if task.finished else task.time_remaining
        return Text(f"{_clock(task.elapsed)}<{_clock(left)}", style="progress.remaining")


@contextmanager
def _bars(width: int) -> Iterator[Callable[[str, int, int], None]]:
    """Rich progress bars, one per label, fed by a (label, done, total) callback: count,
    rate, elapsed and remaining time. Work already done when a bar appears (cache hits) is
    not counted in its rate. Labels longer than ``width`` are cut with an ellipsis and the bar
    takes what is left, so a line fits an 80-column terminal."""
    with Progress(
        TextColumn(
            "{task.description}",
            table_column=Column(width=width, no_wrap=True, overflow="ellipsis"),
        ),
        BarColumn(bar_width=None),
        TextColumn("{task.completed:>6,}/{task.total:<6,}"),
        _RateColumn(),
        _TimeColumn(),
        console=err,
    ) as progress:
        tasks: dict[str, Any] = {}

        def on_progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=total, completed=done)
            else:
                progress.update(tasks[label], completed=done, total=total)

        yield on_progress


def _guard(fn: Callable[[], T]) -> T:
    """Run ``fn``; a HeldoutError becomes a clear message and exit code 2."""
    try:
        return fn()
    except HeldoutError as exc:
        _fail(str(exc), 2)


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        out.print(f"heldout {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """heldout: pre-registered, paired, honest evaluation of fine-tuned LLMs."""


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="Where to write the starter project.")] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Write a commented starter heldout.yaml, a prompt and a tiny gold set."""
    from heldout.plan import write_starter

    written = _guard(lambda: write_starter(folder, force=force))
    for path in written:
        out.print(f"wrote {path}")
    out.print("next: [bold]heldout plan validate[/] then [bold]heldout plan lock[/]")


@plan_app.command("validate")
def plan_validate(
    plan: PlanOpt = DEFAULT_PLAN,
    data: Annotated[bool, typer.Option(help="Also check the gold set's integrity.")] = True,
) -> None:
    """Report every problem in the plan (and its gold set) at once."""
    from heldout.plan import load_plan

    loaded = _guard(lambda: load_plan(plan, check_data=data))
    n = f", gold set {len(loaded.samples)} samples" if data else ""
    out.print(f"[green]ok[/] {plan}: plan '{loaded.plan.name}' is valid{n}")
    if data:
        _power_warning(loaded)


def _power_warning(loaded: Any) -> None:
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
    _resolvability_notes(loaded)


def _resolvability_notes(loaded: Any) -> None:
    """Each guardrail's chance to pass when nothing got worse; warn below 50%."""
    from heldout.plan import guardrail_resolvability

    for r in guardrail_resolvability(loaded):
        if r.pass_chance is not None and r.pass_chance < 0.5:
            err.print(f"[yellow]warning:[/] guardrail {r.describe()}", highlight=False)
        else:
            out.print(f"guardrail {r.describe()}", highlight=False)


@plan_app.command("lock")
def plan_lock(plan: PlanOpt = DEFAULT_PLAN) -> None:
    """Freeze the plan: write heldout.lock with sha256 of the plan and its files."""
    from heldout.plan import load_plan, plan_sha256, referenced_files, write_lock

    loaded = _guard(lambda: load_plan(plan))
    path = _guard(lambda: write_lock(loaded))
    out.print(f"[green]locked[/] {plan} → {path} (plan sha256 {plan_sha256(loaded)[:12]}…)")
    for key, rel in referenced_files(loaded.plan).items():
        out.print(f"  {key}: {rel}")
    _resolvability_notes(loaded)


@plan_app.command("verify")
def plan_verify(plan: PlanOpt = DEFAULT_PLAN) -> None:
    """Say exactly what changed since the lock (exit 1 if anything did)."""
    from heldout.plan import default_lock_path, diff_lock, load_plan, read_lock

    loaded = _guard(lambda: load_plan(plan))
    lock = _guard(lambda: read_lock(default_lock_path(loaded)))
    changes = diff_lock(loaded, lock)
    if not changes:
        out.print(
            f"[green]unchanged[/] since {lock.get('locked_at')} ({default_lock_path(loaded)})"
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


@app.command("metrics")
def list_metrics(
    shape: Annotated[str | None, typer.Option(help="Only metrics of this shape.")] = None,
) -> None:
    """List the registered metrics with their shapes and direction."""
    from heldout.metrics import get_metric, metric_families, metric_names
    from heldout.plan import SHAPES

    if shape is not None and shape not in SHAPES:
        _fail(f"--shape: unknown shape {shape!r}; known: {', '.join(SHAPES)}", 2)

    table = Table("metric", "shapes", "better", "description")
    for name in metric_names(shape):
        spec = get_metric(name)
        table.add_row(
            name,
            ", ".join(sorted(spec.shapes)),
            "higher" if spec.higher_is_better else "lower",
            spec.description,
        )
    if shape in (None, "classification"):
        for family, usage in metric_families().items():
            what = "F-beta of one class, or macro" if family == "fbeta" else f"{family} of a class"
            table.add_row(usage, "classification", "higher", what)
    out.print(table)
    out.print(
        "a class metric works as primary_metric, in task.secondary_metrics, or as a guardrail: "
        "{metric: 'recall[pii]', max_drop: 0.02}; 'recall[*]' gates every class",
        markup=False,
    )


@app.command("suites")
def list_suites() -> None:
    """List the built-in regression suites: grader, size and what each guards."""
    from heldout.stats._power import DEFAULT_GUARD_DISCORDANCE, resolvable_margin
    from heldout.suites import BUILTIN_SUITES

    table = Table("suite", "grader", "prompts", "resolves", "sha256", "what it guards")
    for suite in BUILTIN_SUITES.values():
        data = suite.path.read_bytes()
        n = data.count(b"\n")
        table.add_row(
            suite.name,
            suite.metric,
            str(n),
            f"{resolvable_margin(n):.3f}",
            hashlib.sha256(data).hexdigest()[:12],
            suite.description,
        )
    out.print(table)
    out.print(
        f"resolves: the smallest max_drop the suite passes with 80% chance when nothing got "
        f"worse (95% confidence, models disagreeing on {DEFAULT_GUARD_DISCORDANCE:.0%} of "
        "prompts); a smaller max_drop mostly ends unresolved: bring a larger suite with 'data'"
    )
    out.print("use one in the plan: guardrails: [{suite: general, max_drop: 0.05}]")


@app.command()
def power(
    base_rate: Annotated[
        float | None, typer.Option(help="Base model's score (default: the plan's baseline).")
    ] = None,
    lift: Annotated[
        float | None,
        typer.Option(help="Lift to detect (default: the plan's min_detectable_lift)."),
    ] = None,
    n: Annotated[
        int | None, typer.Option(help="Gold-set size: report the lift this n can detect.")
    ] = None,
    discordance: Annotated[
        float | None,
        typer.Option(help="Binary metrics: share of samples where the models disagree."),
    ] = None,
    sd: Annotated[
        float | None,
        typer.Option(
            help="Continuous / F1-type metrics: SD of per-sample paired differences "
            "(a run's power section reports it as paired_sd)."
        ),
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="Two-sided level (1 − confidence).")] = None,
    target: Annotated[float | None, typer.Option("--power", help="Target power.")] = None,
    plan: PlanOpt = DEFAULT_PLAN,
) -> None:
    """How many paired samples detect a lift, or what lift a gold set of n can detect.

    With a plan, the same calculation as 'plan validate' and 'heldout run' (the metric decides
    binary, paired t or resampled); without one, binary unless --sd is given."""
    from heldout.plan import plan_power
    from heldout.stats import assess_power

    use_plan = plan.is_file() and base_rate is None and sd is None
    if use_plan:
        from heldout.plan import load_plan

        loaded = _guard(lambda: load_plan(plan))
        p = loaded.plan
        if alpha is not None or target is not None:
            stats = p.stats.model_copy(
                update={
                    "confidence": p.stats.confidence if alpha is None else 1 - alpha,
                    "power": p.stats.power if target is None else target,
                }
            )
            p = p.model_copy(update={"stats": stats})
        size = len(loaded.samples) if n is None else n
        pa = plan_power(p, size, lift=lift, discordance=discordance, paired_sd=sd)
        if pa is None:
            _fail(f"no power calculation fits {p.primary_metric} at baseline {p.baseline}", 2)
    else:
        if base_rate is None and sd is None:
            _fail("give --base-rate (binary metrics) or --sd (continuous), or a plan", 2)
        if lift is None and n is None:
            _fail("give --lift, --n or both", 2)
        kind = "continuous" if sd is not None else "binary"
        pa = _guard(
            lambda: assess_power(
                kind,
                n=n or 2,
                lift=lift if lift is not None else 0.05,
                alpha=0.05 if alpha is None else alpha,
                power=0.8 if target is None else target,
                base_rate=base_rate,
                discordance=discordance,
                paired_sd=sd,
                source="given",
            )
        )
    if pa.n_needed is None:
        _fail(f"power not computed: {pa.note}", 2)
    table = Table("question", "answer")
    table.add_row("method", f"{pa.method} ({pa.kind} metric)")
    table.add_row("assumed", f"{pa.assumption}; from: {pa.source}")
    if lift is not None or use_plan:
        table.add_row(f"paired samples to detect +{pa.lift:g}", f"{pa.n_needed:,}")
    if n is not None or use_plan:
        d = pa.detectable_lift
        table.add_row(
            f"smallest lift {pa.n:,} samples detect",
            f"{d:.4f}" if d is not None and math.isfinite(d) else "none: too few samples",
        )
        if pa.power_at_n is not None and (lift is not None or use_plan):
            table.add_row(f"power of {pa.n:,} samples for +{pa.lift:g}", f"{pa.power_at_n:.3f}")
    out.print(table)


@app.command("run")
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
) -> None:
    """Generate, score, compare, gate and decide. Exit 0 only on success."""
    from heldout.plan import check_lock, load_plan
    from heldout.runner import RunOptions, run_plan

    loaded = _guard(lambda: load_plan(plan))
    status = _guard(lambda: check_lock(loaded, allow_changed=allow_changed_plan))
    if status.overridden:
        err.print("[yellow]warning:[/] the plan changed since its lock (--allow-changed-plan)")
    options = RunOptions(
        out_dir=out_dir, use_cache=cache, refresh=refresh, failed_as_wrong=failed_as_wrong
    )
    # start-up objects (modules, the plan) live to the end: exempting them from the cyclic
    # collector saves its repeated full scans during generation (~40 ms per 2,000 responses)
    gc.freeze()
    done: dict[str, int] = {}
    with _bars(30) as bars:

        def on_progress(label: str, n: int, total: int) -> None:
            done[label] = n
            total_done = sum(done.values())
            _INTERRUPTED[0] = f": {total_done:,} response(s) saved in the cache"
            bars(label, n, total)

        result, folder = _guard(lambda: run_plan(loaded, status, options, on_progress))
    from heldout.report import write_reports

    paths = write_reports(folder)
    _print_summary(result)
    out.print(f"results: {folder / 'results.json'}")
    out.print(f"report:  {paths['html']}")
    raise typer.Exit(result.verdict.exit_code)


def _run_folder(run: str, plan: Path) -> Path:
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


@app.command()
def report(
    run: Annotated[str, typer.Argument(help="Run folder or run id (prefix).")],
    plan: PlanOpt = DEFAULT_PLAN,
    show: Annotated[bool, typer.Option(help="Print the Markdown report.")] = False,
) -> None:
    """Re-render HTML, Markdown and JUnit from stored results (no model is called)."""
    from heldout.report import write_reports

    folder = _guard(lambda: _run_folder(run, plan))
    paths = _guard(lambda: write_reports(folder))
    if show:
        sys.stdout.write(paths["markdown"].read_text(encoding="utf-8"))
    for name, path in paths.items():
        out.print(f"{name}: {path}")


@app.command()
def history(plan: PlanOpt = DEFAULT_PLAN) -> None:
    """List the runs of this plan: verdict, primary metric with CI, guardrails."""
    from heldout.results._store import RunStore

    store_path = plan.resolve().parent / ".heldout" / "runs.sqlite"
    if not store_path.is_file():
        out.print("no runs yet")
        return
    table = Table(
        "run", "created", "verdict", "metric", "base", "candidate", "delta [CI]", "guardrails"
    )
    for row in RunStore(store_path).list():

        def num(x: float | None, signed: bool = False) -> str:
            return "n/a" if x is None else (f"{x:+.4f}" if signed else f"{x:.4f}")

        table.add_row(
            row["run_id"],
            row["created_at"],
            row["verdict"],
            row["metric"],
            num(row["base"]),
            num(row["candidate"]),
            f"{num(row['delta'], True)} [{num(row['delta_low'], True)}, "
            f"{num(row['delta_high'], True)}]",
            row["gates"],
        )
    out.print(table)


@app.command("compare")
def compare_cmd(
    run_a: Annotated[str, typer.Argument(help="Earlier run (folder or id).")],
    run_b: Annotated[str, typer.Argument(help="Later run (folder or id).")],
    plan: PlanOpt = DEFAULT_PLAN,
) -> None:
    """Compare the candidates of two runs on the same frozen gold set, paired by sample id."""
    from heldout.results import compare_runs

    a = _guard(lambda: _run_folder(run_a, plan))
    b = _guard(lambda: _run_folder(run_b, plan))
    c = _guard(lambda: compare_runs(a, b))
    d = c.delta
    out.print(
        f"{c.metric} on n={c.n}: run A {c.base.estimate:.4f} [{c.base.low:.4f}, {c.base.high:.4f}]"
        f" → run B {c.candidate.estimate:.4f} [{c.candidate.low:.4f}, {c.candidate.high:.4f}]; "
        f"delta {d.estimate:+.4f} [{d.low:+.4f}, {d.high:+.4f}] ({d.method}; {c.test}, "
        f"p={c.p_value:.3g}"
        + (f", {c.fixed} fixed, {c.broken} broken" if c.fixed is not None else "")
        + ")",
        highlight=False,
    )
    verdict = (
        "B is better" if c.real_gain else ("B is worse" if c.real_loss else "no real difference")
    )
    out.print(f"[bold]{verdict}[/]")


def _print_summary(result: Any) -> None:
    table = Table(
        "dataset", "metric", "base", "candidate", "delta [CI]", "test", title="comparisons"
    )
    for c in result.comparisons:
        if c.against != "candidate":
            continue

        def num(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.4f}"

        delta = c.delta
        table.add_row(
            c.dataset + (" *" if c.primary else ""),
            c.metric,
            num(c.base.estimate),
            num(c.other.estimate),
            f"{num(delta.estimate)} [{num(delta.low)}, {num(delta.high)}]",
            c.test + (f" ({c.fixed}↑ {c.broken}↓)" if c.fixed is not None else ""),
        )
    out.print(table)
    if result.gates:
        gates = Table("guardrail", "status", "detail", title="guardrails (losses first)")
        order = {"fail": 0, "unresolved": 1, "pass": 2}
        for g in sorted(result.gates, key=lambda g: order[g.status]):
            color = {"fail": "red", "unresolved": "yellow", "pass": "green"}[g.status]
            gates.add_row(g.name, f"[{color}]{g.status}[/]", g.description)
        out.print(gates)
    if result.judge:
        out.print(result.judge["description"], highlight=False)
    for w in result.warnings + result.verdict.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    v = result.verdict
    color = "green" if v.status == "success" else ("red" if v.status == "blocked" else "yellow")
    out.print(f"[bold {color}]verdict: {v.status}[/]", highlight=False)
    for reason in v.reasons:
        out.print(f"  - {reason}", highlight=False)


@app.command()
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

    with _bars(30) as on_progress:
        result = _guard(lambda: run_demo(out_dir, DemoConfig(seed=seed), on_progress))
    out.print(
        f"base model's measured baseline (field_accuracy): {result.baseline:.4f}; leak check: "
        f"{result.leaks} gold samples found in the training data"
    )
    for name, (run, folder) in result.runs.items():
        label = {"lora": "LoRA adapter", "full": "aggressive full fine-tune"}[name]
        _print_summary(run)
        out.print(f"[bold]{label}[/] → {run.verdict.status}; report: {folder / 'report.html'}")
    out.print(f"done in {result.seconds['total']:.0f} s; everything is in {out_dir}")


def _progress_iter(items: Iterator[T], label: str, progress: Progress) -> Iterator[T]:
    task = progress.add_task(label, total=None)
    for item in items:
        progress.advance(task)
        yield item


@app.command()
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
) -> None:
    """Find gold samples that appear in the training data (exit 1 if any)."""
    from heldout.data import LeakOptions, find_leaks, iter_train_texts, load_samples
    from heldout.plan import check_lock, load_plan

    lock_info: dict[str, Any] | None = None
    if gold is not None:
        gold_path = gold
        samples = _guard(lambda: load_samples(gold_path))
    else:
        loaded = _guard(lambda: load_plan(plan))
        status = _guard(lambda: check_lock(loaded, allow_changed=allow_changed_plan))
        if status.overridden:
            err.print("[yellow]warning:[/] the plan changed since its lock (--allow-changed-plan)")
        lock_info = asdict(status)
        gold_path = loaded.resolve(loaded.plan.task.data)
        samples = loaded.samples
    options = _guard(
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
        report = _guard(
            lambda: find_leaks(samples, _progress_iter(rows(), "training rows", progress), options)
        )
    body = {
        "gold": str(gold_path),
        "train": [str(p) for p in train],
        "n_gold": report.n_gold,
        "n_train": report.n_train,
        "options": asdict(report.options),
        "common_ngrams_ignored": report.common_ngrams_ignored,
        "flagged_gold_ids": report.flagged,
        "hits": [asdict(h) for h in report.hits],
        "lock": lock_info,
    }
    output.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if not report.hits:
        out.print(
            f"[green]no leaks[/]: {report.n_gold} gold samples vs {report.n_train:,} training rows"
            f" (report: {output})"
        )
        return
    table = Table(
        "gold id",
        "training row",
        "kind",
        "similarity",
        title=f"{len(report.flagged)} gold sample(s) found in the training data",
    )
    for hit in report.hits[:show]:
        table.add_row(hit.gold_id, hit.train_where, hit.kind, f"{hit.similarity:.3f}")
    out.print(table)
    if len(report.hits) > show:
        out.print(f"... {len(report.hits) - show} more hits in {output}")
    out.print(f"[bold red]leak[/]: remove these from the training data (report: {output})")
    raise typer.Exit(1)


EXIT_CODES = """Exit codes, the same for every command:
  0  success (a ship verdict, a passing check)
  1  a check or verdict says no (the last line names which)
  2  bad input or configuration (the message names the file, line or field)
  3  internal error: a bug in heldout (one line, and the path of a crash log)
  130 interrupted (finished work is kept: rerun to resume)"""


def _crash_log(exc: BaseException) -> Path:
    """Write the traceback where the user can find it and attach it to a bug report."""
    import tempfile
    import traceback
    from datetime import UTC, datetime

    from heldout._redact import redact

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = redact("".join(traceback.format_exception(exc)))
    for folder in (Path(".heldout"), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"crash-{stamp}-{os.getpid()}.log"
            path.write_text(f"heldout {__version__}\n{' '.join(sys.argv)}\n\n{text}", "utf-8")
            return path.resolve()
        except OSError:
            continue
    return Path("(crash log could not be written)")


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: every command ends with one of :data:`EXIT_CODES`."""
    try:
        code = app(
            args=list(argv) if argv is not None else None,
            prog_name="heldout",
            standalone_mode=False,
        )
    except typer.Exit as exc:
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except typer.TyperException as exc:  # usage errors: unknown options, commands, values
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err.print(f"error: {exc}", highlight=False, markup=False)
        err.print("see 'heldout --help' and 'heldout COMMAND --help' for what each takes")
        sys.exit(2)
    except HeldoutError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as exc:  # a path the user gave cannot be read or written
        where = f" {exc.filename}" if exc.filename else ""
        err.print(
            f"[bold red]error:[/] cannot use{where}: {exc.strerror or exc}; check the path "
            "and its permissions",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)
    except Exception as exc:
        path = _crash_log(exc)
        err.print(
            f"[bold red]internal error (a bug in heldout):[/] {type(exc).__name__}: "
            f"{str(exc)[:200]}; the traceback is in {path} (please attach it to a bug report)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(3)
    if code == 130:  # typer turns Ctrl-C into exit code 130 without a word
        err.print(f"interrupted{_INTERRUPTED[0]}; finished work is kept: rerun to resume")
    sys.exit(code if isinstance(code, int) else 0)

"""``heldout ab``: lock, assign, serve, ramp, rollback, analyze, export and demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from heldout.cli._console import err, fail, guard, out, row, table

__all__ = ["ab_app"]

ab_app = typer.Typer(
    help="Production A/B: stable-key assignment, a routing proxy with outcome logging, "
    "sequential analysis with an SRM check, and a decision: ramp, hold, roll back or ship.",
    no_args_is_help=True,
)

ExpOpt = Annotated[Path, typer.Option("--experiment", "-e", help="Experiment file.")]
DEFAULT_EXP = Path("ab.yaml")


def _load(path: Path):  # type: ignore[no-untyped-def]
    from heldout.ab._plan import load_experiment

    return guard(lambda: load_experiment(path))


@ab_app.command("lock")
def lock_cmd(experiment: ExpOpt = DEFAULT_EXP) -> None:
    """Validate the experiment and lock it (ab.lock) before it serves traffic."""
    from heldout.ab._plan import write_ab_lock

    loaded = _load(experiment)
    path = guard(lambda: write_ab_lock(loaded))
    body = json.loads(path.read_text(encoding="utf-8"))
    off = body.get("offline")
    out.print(f"locked {experiment} → {path} (sha256 {body['experiment_sha256'][:12]}…)")
    if off:
        out.print(f"follows offline run {off['run_id']}: verdict {off['verdict']}", highlight=False)
        if off["verdict"] != "success":
            err.print(
                f"[yellow]warning:[/] the offline verdict was {off['verdict']}, not success: "
                "the candidate did not pass its pre-registered evaluation",
                highlight=False,
            )
    else:
        err.print(
            "[yellow]warning:[/] 'follows:' names no offline run; the chain from the "
            "offline verdict to this experiment will not show in heldout history"
        )


@ab_app.command("assign")
def assign_cmd(
    units: Annotated[list[str], typer.Argument(help="Unit ids (user or tenant).")],
    experiment: ExpOpt = DEFAULT_EXP,
    share: Annotated[
        float | None, typer.Option(help="Treatment share (default: the live one).")
    ] = None,
) -> None:
    """Print each unit's bucket and arm."""
    from heldout.ab import bucket
    from heldout.ab._api import assign, live_share

    loaded = _load(experiment)
    s = share if share is not None else guard(lambda: live_share(loaded))
    if not 0 <= s <= 1:
        fail(f"--share is a treatment share in [0, 1], got {s}", 2)
    t = table("unit", "bucket", "arm", title=f"treatment share {s * 100:g}%")
    for u in units:
        row(t, u, str(bucket(u, loaded.experiment.salt)), assign(u, loaded, s))
    out.print(t)


@ab_app.command("serve")
def serve_cmd(
    experiment: ExpOpt = DEFAULT_EXP,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8100,
) -> None:
    """Run the routing proxy (OpenAI-compatible) in front of control and treatment."""
    import asyncio
    import gc

    from heldout.ab._plan import check_ab_lock
    from heldout.ab._proxy import Proxy
    from heldout.ab._store import EventStore

    loaded = _load(experiment)
    guard(lambda: check_ab_lock(loaded))
    store = guard(lambda: EventStore(loaded.store_path))
    proxy = guard(lambda: Proxy(loaded, store))
    exp = loaded.experiment
    out.print(
        f"heldout ab proxy for {exp.name} on http://{host}:{port}/v1 (treatment share "
        f"{proxy.share * 100:g}%; events in {loaded.store_path}); Ctrl-C stops it",
        highlight=False,
    )

    async def main() -> None:
        gc.freeze()  # start-up objects leave the collector's generations: shorter GC pauses
        try:
            await proxy.listen(host, port)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port", 2)
        try:
            await asyncio.Event().wait()
        finally:
            await proxy.shutdown()

    try:
        try:
            import uvloop  # the 'ab' extra: a faster event loop for the proxy

            uvloop.run(main())
        except ImportError:
            asyncio.run(main())
    except KeyboardInterrupt:
        out.print("stopped; every answered request is in the event store")


@ab_app.command("ramp")
def ramp_cmd(
    experiment: ExpOpt = DEFAULT_EXP,
    to: Annotated[float | None, typer.Option(help="Treatment share to ramp to.")] = None,
    force: Annotated[bool, typer.Option(help="Ramp without a ramp decision.")] = False,
) -> None:
    """Move the live split to the next stage (the proxy follows within 100 ms)."""
    from heldout.ab._api import ramp

    loaded = _load(experiment)
    split = guard(lambda: ramp(loaded, to=to, force=force))
    out.print(f"treatment share now {split.share * 100:g}% ({split.reason})", highlight=False)


@ab_app.command("rollback")
def rollback_cmd(
    experiment: ExpOpt = DEFAULT_EXP,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "",
) -> None:
    """Send every unit to control now (the proxy follows within 100 ms)."""
    from heldout.ab._api import rollback

    loaded = _load(experiment)
    split = guard(lambda: rollback(loaded, reason))
    out.print(f"rolled back: treatment share 0% ({split.reason})", highlight=False)


def print_analysis(a, out_dir: Path | None) -> None:  # type: ignore[no-untyped-def]
    from heldout.ab._report import analysis_json, render_html, render_markdown

    d = a.decision
    st = next(s for s in a.stages if abs(s.share - d.stage) < 1e-12)
    t = table(
        "metric",
        "status",
        "control",
        "treatment",
        "effect [always-valid CI]",
        "fixed-horizon CI",
        title=f"stage {d.stage * 100:g}%: {st.units_control} control, "
        f"{st.units_treatment} treatment units; SRM p={st.srm_p:.3g}",
    )
    from heldout.ab._report import _ordered

    for m in _ordered(st):
        e = m.effect
        row(
            t,
            m.name,
            m.status,
            f"{e.control.mean:.4g}",
            f"{e.treatment.mean:.4g}",
            f"{e.estimate:+.4g} [{e.sequential.low:+.4g}, {e.sequential.high:+.4g}]",
            f"[{e.fixed.low:+.4g}, {e.fixed.high:+.4g}]",
        )
    out.print(t)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "analysis.json").write_text(
            json.dumps(analysis_json(a), indent=2) + "\n", encoding="utf-8"
        )
        (out_dir / "report.md").write_text(render_markdown(a), encoding="utf-8")
        (out_dir / "report.html").write_text(render_html(a), encoding="utf-8")
    for r in d.reasons:
        out.print(f"- {r}", highlight=False, markup=False, soft_wrap=True)
    nxt = {
        "ramp": "heldout ab ramp",
        "ship": "heldout ab ramp (to 100%)",
        "rollback": "heldout ab rollback",
        "hold": "wait for more units, then analyze again",
    }
    where = f"; report: {out_dir / 'report.html'}" if out_dir is not None else ""
    out.print(f"[bold]decision: {d.decision}[/] → {nxt[d.decision]}{where}", highlight=False)


@ab_app.command("analyze")
def analyze_cmd(
    experiment: ExpOpt = DEFAULT_EXP,
    events: Annotated[
        str | None,
        typer.Option(
            help="Exported requests (JSONL, CSV, Parquet, file.duckdb:table) "
            "instead of the event store."
        ),
    ] = None,
    outcomes: Annotated[str | None, typer.Option(help="Outcomes table for --events.")] = None,
    share: Annotated[
        float | None, typer.Option(help="The stage to decide on (default: the live one).")
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Report folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the analysis as JSON.")] = False,
    apply: Annotated[
        bool, typer.Option(help="Ramp or roll back as decided (never on hold).")
    ] = False,
) -> None:
    """Analyse the experiment and decide: ramp (exit 0), ship (0), rollback (1), hold (4)."""
    from heldout.ab._api import analyze_experiment, ramp, rollback
    from heldout.ab._report import analysis_json

    loaded = _load(experiment)
    folder = out_dir if out_dir is not None else loaded.root / "ab-report"
    a = guard(lambda: analyze_experiment(experiment, events=events, outcomes=outcomes, share=share))
    if as_json:
        import sys

        sys.stdout.write(json.dumps(analysis_json(a), indent=2) + "\n")
    else:
        print_analysis(a, folder)
    d = a.decision
    if apply and events is None:
        if d.decision in ("ramp", "ship") and (a.live_share or 0) < 1:
            split = guard(lambda: ramp(loaded))
            err.print(f"applied: treatment share now {split.share * 100:g}%", highlight=False)
        elif d.decision == "rollback" and (a.live_share or 0) > 0:
            guard(lambda: rollback(loaded, "; ".join(d.reasons)[:500]))
            err.print("applied: rolled back to control", highlight=False)
    raise typer.Exit(d.exit_code)


@ab_app.command("export")
def export_cmd(
    experiment: ExpOpt = DEFAULT_EXP,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the Parquet files.")] = Path(
        "ab-export"
    ),
) -> None:
    """Write the event store as requests.parquet and outcomes.parquet (for your warehouse,
    or for 'heldout ab analyze --events')."""
    from heldout.ab._events import export_store
    from heldout.ab._store import EventStore

    loaded = _load(experiment)
    if not loaded.store_path.is_file():
        fail(f"{loaded.store_path}: no event store yet (heldout ab serve writes it)", 2)
    n = guard(lambda: export_store(EventStore(loaded.store_path), out_dir))
    out.print(f"wrote {n[0]:,} requests and {n[1]:,} outcomes to {out_dir}", highlight=False)


@ab_app.command("demo")
def demo_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the experiment.")] = Path(
        "heldout-ab-demo"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the simulated users.")] = 0,
) -> None:
    """A simulated A/B test end to end: two local upstreams, simulated users through the real
    proxy, outcomes posted, each stage analysed and ramped (under a minute)."""
    from heldout.ab._demo import DemoStage, run_ab_demo

    out.print("[bold]SIMULATION[/]: local upstreams and simulated users, not real traffic")

    def said(s: DemoStage) -> None:
        out.print(
            f"stage {s.share * 100:g}% (batch {s.batch}): {s.units:,} units, {s.requests:,} "
            f"requests → [bold]{s.decision}[/]: {s.reasons[0]}",
            highlight=False,
        )

    result = guard(lambda: run_ab_demo(out_dir, seed=seed, on_stage=said))
    if result.final is not None:
        print_analysis(result.final, out_dir / "report")
    out.print(
        f"simulated {result.requests:,} requests in {result.seconds:.0f} s; experiment, events "
        f"and report in {out_dir}",
        highlight=False,
    )

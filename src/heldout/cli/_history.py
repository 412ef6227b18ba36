"""``heldout history`` and ``heldout compare``: what earlier runs of this plan concluded."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from heldout.cli._console import (
    DEFAULT_PLAN,
    JsonOpt,
    PlanOpt,
    guard,
    out,
    print_json,
    row,
    table,
)
from heldout.cli._outputs import (
    CompareOutput,
    GateStatus,
    HistoryIteration,
    HistoryOutput,
    HistoryRun,
)
from heldout.cli._run import run_folder
from heldout.errors import HeldoutError

__all__ = ["compare_cmd", "history"]


def _gates(folder: str) -> list[GateStatus]:
    """A run's gate statuses from its results.json (the source of truth), if still there."""
    from heldout.results._store import load_run

    try:
        result = load_run(Path(folder))
    except HeldoutError:
        return []
    return [GateStatus(name=g.name, status=g.status) for g in result.gates]


def _ab_chain(path: Path) -> dict[str, Any] | None:
    """The A/B experiment's chain (offline run → lock → splits → decisions), if there is one."""
    if not path.is_file():
        return None
    from heldout.ab._api import history_rows
    from heldout.ab._plan import load_experiment

    try:
        h = history_rows(load_experiment(path))
    except HeldoutError as exc:
        return {"experiment": str(path), "error": str(exc)}
    return {
        "experiment": h["experiment"],
        "locked_at": h["locked_at"],
        "offline": h["offline"],
        "splits": [{"ts": s.ts, "share": s.share, "action": s.action, "reason": s.reason}
                   for s in h["splits"]],
        "decisions": [{"ts": t, "stage": st, "decision": d, **json.loads(b)}
                      for t, st, d, b in h["decisions"]],
    }  # fmt: skip


def _print_ab(chain: dict[str, Any]) -> None:
    from datetime import UTC, datetime

    def when(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    if "error" in chain:
        out.print(f"A/B {chain['experiment']}: {chain['error']}", highlight=False, markup=False)
        return
    off = chain["offline"]
    head = f"production A/B {chain['experiment']}"
    head += f" (locked {chain['locked_at']})" if chain["locked_at"] else " (not locked)"
    if off:
        head += f" follows offline run {off['run_id']} (verdict {off['verdict']})"
    t = table("time", "event", "stage", "detail", title=head)
    events = [(s["ts"], s["action"], s["share"], s["reason"]) for s in chain["splits"]]
    events += [(d["ts"], f"decision: {d['decision']}", d["stage"], (d.get("reasons") or [""])[0])
               for d in chain["decisions"]]  # fmt: skip
    for ts, what, share, detail in sorted(events, key=lambda e: e[0]):
        row(t, when(ts), what, f"{share * 100:g}%", detail)
    out.print(t)


def history(
    plan: PlanOpt = DEFAULT_PLAN,
    as_json: JsonOpt = False,
    ab: Annotated[
        Path | None, typer.Option("--ab", help="A/B experiment (default: ab.yaml by the plan).")
    ] = None,
) -> None:
    """List the runs of this plan (verdict, primary metric with CI, guardrails) and the A/B
    experiment that followed: plan lock → offline verdict → A/B stages and decisions."""
    chain = _ab_chain(ab if ab is not None else plan.resolve().parent / "ab.yaml")
    from heldout.results._store import RunStore

    store_path = plan.resolve().parent / ".heldout" / "runs.sqlite"
    rows = guard(lambda: RunStore(store_path).list()) if store_path.is_file() else []
    from heldout.results._iterations import iterations, stalled

    its = iterations(rows)
    stuck = stalled(its)
    if as_json:
        runs = [
            HistoryRun(
                **{k: r[k] for k in HistoryRun.model_fields if k not in ("verdict", "gates")},
                verdict=r["verdict"],
                gates=_gates(r["folder"]),
            )
            for r in rows
        ]
        print_json(
            HistoryOutput(
                store=str(store_path), runs=runs, stalled=stuck,
                iterations=[
                    HistoryIteration(
                        previous=it.previous, run=it.run, candidate=it.candidate,
                        delta=None if it.comparison is None else it.comparison.delta.estimate,
                        delta_low=None if it.comparison is None else it.comparison.delta.low,
                        delta_high=None if it.comparison is None else it.comparison.delta.high,
                        significant_gain=it.gain, not_compared=it.reason,
                    )
                    for it in its
                ],
                ab=chain,
            )
        )  # fmt: skip
        return
    if not rows:
        out.print("no runs yet")
        if chain:
            _print_ab(chain)
        return
    t = table(
        "run", "created", "verdict", "metric", "base", "candidate", "delta [CI]", "guardrails"
    )

    def num(x: float | None, signed: bool = False) -> str:
        return "n/a" if x is None else (f"{x:+.4f}" if signed else f"{x:.4f}")

    for r in rows:
        row(
            t,
            r["run_id"],
            r["created_at"],
            "smoke: not a verdict" if r["verdict"] == "smoke" else r["verdict"],
            r["metric"],
            num(r["base"]),
            num(r["candidate"]),
            f"{num(r['delta'], True)} [{num(r['delta_low'], True)}, {num(r['delta_high'], True)}]",
            r["gates"],
        )
    out.print(t)
    if its:
        it_t = table(
            "run", "against", "new candidate", "delta [CI]", "gain?",
            title="iterations: each candidate against the previous one, paired on the gold set",
        )  # fmt: skip
        for it in its:
            c = it.comparison
            if c is None:
                row(it_t, it.run, it.previous, it.candidate, "not compared", it.reason or "")
                continue
            d = c.delta
            gain = "yes" if it.gain else ("worse" if c.real_loss else "no significant gain")
            ci = f"{num(d.estimate, True)} [{num(d.low, True)}, {num(d.high, True)}]"
            row(it_t, it.run, it.previous, it.candidate, ci, gain)
        out.print(it_t)
    if stuck:
        out.print(
            f"[yellow]{stuck} iterations in a row brought no significant gain:[/] the problem is "
            "usually data quality, not model size; look at where the last run fails (heldout "
            "flywheel --run <run>) before training again",
            highlight=False,
        )
    if chain:
        _print_ab(chain)


def compare_cmd(
    run_a: Annotated[str, typer.Argument(help="Earlier run (folder or id).")],
    run_b: Annotated[str, typer.Argument(help="Later run (folder or id).")],
    plan: PlanOpt = DEFAULT_PLAN,
    as_json: JsonOpt = False,
) -> None:
    """Compare the candidates of two runs on the same frozen gold set, paired by sample id."""
    from heldout.results import compare_runs
    from heldout.runner._records import interval_record

    a = guard(lambda: run_folder(run_a, plan))
    b = guard(lambda: run_folder(run_b, plan))
    c = guard(lambda: compare_runs(a, b))
    conclusion = (
        "B is better" if c.real_gain else ("B is worse" if c.real_loss else "no real difference")
    )
    if as_json:
        print_json(
            CompareOutput(
                run_a=str(a),
                run_b=str(b),
                metric=c.metric,
                n=c.n,
                higher_is_better=c.higher_is_better,
                score_a=interval_record(c.base),
                score_b=interval_record(c.candidate),
                delta=interval_record(c.delta),
                test=c.test,
                p_value=c.p_value if math.isfinite(c.p_value) else None,
                fixed=c.fixed,
                broken=c.broken,
                conclusion=conclusion,
            )
        )
        return
    d = c.delta
    out.print(
        f"{c.metric} on n={c.n}: run A {c.base.estimate:.4f} [{c.base.low:.4f}, {c.base.high:.4f}]"
        f" → run B {c.candidate.estimate:.4f} [{c.candidate.low:.4f}, {c.candidate.high:.4f}]; "
        f"delta {d.estimate:+.4f} [{d.low:+.4f}, {d.high:+.4f}] ({d.method}; {c.test}, "
        f"p={c.p_value:.3g}"
        + (f", {c.fixed} fixed, {c.broken} broken" if c.fixed is not None else "")
        + ")",
        highlight=False,
        markup=False,
    )
    out.print(f"[bold]{conclusion}[/]")

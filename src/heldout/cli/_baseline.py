"""``heldout baseline``: the best prompt for the base model, measured before training."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from heldout.cli._console import DEFAULT_PLAN, PlanOpt, err, guard, out, row, table

__all__ = ["baseline"]


def _record(result: Any, loaded: Any) -> Path:
    """The baseline as a run: a folder with baseline.json, listed by 'heldout history'."""
    from heldout.results._store import RunStore

    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-baseline"
    folder = loaded.root / ".heldout" / "runs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "baseline.json").write_text(json.dumps(_as_json(result), indent=2), encoding="utf-8")
    RunStore(loaded.root / ".heldout" / "runs.sqlite").add_baseline(
        run_id=run_id, plan_name=loaded.plan.name, created_at=created, metric=result.metric,
        value=result.gold.estimate, low=result.gold.low, high=result.gold.high, folder=folder,
    )  # fmt: skip
    return Path(folder)


def _iv(iv: Any) -> dict[str, Any]:
    return {"estimate": iv.estimate, "low": iv.low, "high": iv.high, "method": iv.method}


def _as_json(r: Any) -> dict[str, Any]:
    return {
        "metric": r.metric,
        "chosen_on": r.chosen_on,
        "dev_n": r.dev_n,
        "gold_n": r.gold_n,
        "best": r.best.label,
        "gold": _iv(r.gold),
        "entries": [
            {
                "label": e.label,
                "model": e.model,
                "prompt": e.prompt.model_dump(),
                "score": _iv(e.score),
                "n": e.n,
                "best_minus_this": None if e.versus_best is None else _iv(e.versus_best.delta),
                "p": None if e.versus_best is None else e.versus_best.p_value,
                "p_holm": e.p_holm,
            }
            for e in r.entries
        ],
        "suggestions": [
            {"field": s.field, "value": s.value, "reasons": list(s.reasons)} for s in r.suggestions
        ],
        "warnings": r.warnings,
        "requests": r.requests,
        "cached": r.cached,
    }


def baseline(
    plan: PlanOpt = DEFAULT_PLAN,
    write: Annotated[
        bool,
        typer.Option(
            "--write", help="Write baseline: and the chosen prompt into the plan (comments kept)."
        ),
    ] = False,
    use_gold: Annotated[
        bool,
        typer.Option(
            "--use-gold",
            help="Choose the prompt on the gold set (optimistic; recorded in the plan).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Measure each candidate prompt (and other baselines) for the base model on the
    development split, compare the best with the others, and measure the winner on the gold
    set: the baseline to beat, before any training."""
    from heldout.plan import load_plan
    from heldout.plan._write import write_baseline
    from heldout.runner._baseline import measure_baseline

    loaded = guard(lambda: load_plan(plan))
    result = guard(lambda: measure_baseline(loaded, use_gold=use_gold or None))
    if as_json:
        print(json.dumps(_as_json(result), indent=2))
    else:
        where = "development split" if result.chosen_on == "dev" else "GOLD SET (optimistic)"
        t = table(
            "model · prompt", result.metric, "n", "best − this [CI]", "p (Holm)",
            title=f"on the {where}, best first",
        )  # fmt: skip
        for e in result.entries:
            s = e.score
            vs = "—"
            p = "—"
            if e.versus_best is not None:
                d = e.versus_best.delta
                vs = f"{d.estimate:+.4f} [{d.low:+.4f}, {d.high:+.4f}]"
                p = f"{e.versus_best.p_value:.3g} ({e.p_holm:.3g})"
            row(t, e.label, f"{s.estimate:.4f} [{s.low:.4f}, {s.high:.4f}]", str(e.n), vs, p)
        out.print(t)
        g = result.gold
        chosen = next(e for e in result.entries if e.model == "base").prompt.label
        out.print(
            f"baseline: {result.metric} {g.estimate:.4f} [{g.low:.4f}, {g.high:.4f}] — the base "
            f"model with {chosen!r} on the gold set (n={result.gold_n})",
            highlight=False,
        )
        for sug in result.suggestions:
            out.print(
                f"suggested {sug.field}: {sug.value:g} (you decide; not written)", highlight=False
            )
            for reason in sug.reasons:
                out.print(f"  - {reason}", highlight=False)
        for w in result.warnings:
            err.print(f"[yellow]warning:[/] {w}", highlight=False)
    if write:
        winner = next(e for e in result.entries if e.model == "base")
        when = time.strftime("%Y-%m-%d", time.gmtime())
        how = "dev split" if result.chosen_on == "dev" else "the GOLD SET (optimistic)"
        note = (
            f"heldout baseline {when}: base model, prompt {winner.prompt.label!r} chosen on "
            f"{how} (n={result.dev_n}), measured on the gold set (n={result.gold_n})"
        )
        plan_prompt = winner.prompt.name == "plan prompt"
        guard(
            lambda: write_baseline(
                plan, baseline=result.gold.estimate, note=note,
                prompt_file=None if plan_prompt else winner.prompt.file,
                template=None if plan_prompt else winner.prompt.template,
                chosen_on_gold=result.chosen_on == "gold",
            )
        )  # fmt: skip
        folder = guard(lambda: _record(result, loaded))
        (out if not as_json else err).print(
            f"wrote baseline {result.gold.estimate:.4f} into {plan}; recorded in {folder}",
            highlight=False,
        )

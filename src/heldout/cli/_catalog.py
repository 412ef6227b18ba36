"""What heldout offers and what a gold set can show: ``metrics``, ``suites``, ``power`` and
``schema`` (the JSON Schema of every document heldout writes)."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from heldout.cli._console import DEFAULT_PLAN, JsonOpt, PlanOpt, fail, guard, out, print_json
from heldout.cli._console import row as add_row
from heldout.cli._console import table as make_table
from heldout.cli._outputs import (
    SCHEMAS,
    MetricInfo,
    MetricsOutput,
    PowerOutput,
    SuiteInfo,
    SuitesOutput,
)

__all__ = ["list_metrics", "list_suites", "power", "schema"]


def list_metrics(
    shape: Annotated[str | None, typer.Option(help="Only metrics of this shape.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the registered metrics with their shapes and direction."""
    from heldout.metrics import get_metric, metric_families, metric_names
    from heldout.plan import SHAPES

    if shape is not None and shape not in SHAPES:
        fail(f"--shape: unknown shape {shape!r}; known: {', '.join(SHAPES)}", 2)
    infos = []
    for name in metric_names(shape):
        spec = get_metric(name)
        infos.append(
            MetricInfo(
                name=name,
                shapes=sorted(spec.shapes),
                higher_is_better=spec.higher_is_better,
                description=spec.description,
            )
        )
    if shape in (None, "classification"):
        for family, usage in metric_families().items():
            what = "F-beta of one class, or macro" if family == "fbeta" else f"{family} of a class"
            infos.append(
                MetricInfo(
                    name=usage,
                    shapes=["classification"],
                    higher_is_better=True,
                    description=what,
                    family=True,
                )
            )
    if as_json:
        print_json(MetricsOutput(metrics=infos))
        return
    table = make_table("metric", "shapes", "better", "description")
    for m in infos:
        add_row(
            table,
            m.name,
            ", ".join(m.shapes),
            "higher" if m.higher_is_better else "lower",
            m.description,
        )
    out.print(table)
    out.print(
        "a class metric works as primary_metric, in task.secondary_metrics, or as a guardrail: "
        "{metric: 'recall[pii]', max_drop: 0.02}; 'recall[*]' gates every class",
        markup=False,
    )


def list_suites(as_json: JsonOpt = False) -> None:
    """List the built-in regression suites: grader, size and what each guards."""
    from heldout.stats._power import DEFAULT_GUARD_DISCORDANCE, resolvable_margin
    from heldout.suites import BUILTIN_SUITES

    assumes = (
        f"95% confidence, 80% power, models disagreeing on {DEFAULT_GUARD_DISCORDANCE:.0%} of "
        "prompts, nothing got worse"
    )
    infos = []
    for suite in BUILTIN_SUITES.values():
        data = suite.path.read_bytes()
        n = data.count(b"\n")
        infos.append(
            SuiteInfo(
                name=suite.name,
                grader=suite.metric,
                prompts=n,
                resolves=resolvable_margin(n),
                sha256=hashlib.sha256(data).hexdigest(),
                description=suite.description,
            )
        )
    if as_json:
        print_json(SuitesOutput(resolves_assumes=assumes, suites=infos))
        return
    table = make_table("suite", "grader", "prompts", "resolves", "sha256", "what it guards")
    for s in infos:
        add_row(
            table, s.name, s.grader, str(s.prompts), f"{s.resolves:.3f}", s.sha256[:12],
            s.description,
        )  # fmt: skip
    out.print(table)
    out.print(
        f"resolves: the smallest max_drop the suite passes with 80% chance when nothing got "
        f"worse (95% confidence, models disagreeing on {DEFAULT_GUARD_DISCORDANCE:.0%} of "
        "prompts); a smaller max_drop mostly ends unresolved: bring a larger suite with 'data'"
    )
    out.print("use one in the plan: guardrails: [{suite: general, max_drop: 0.05}]", markup=False)


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
    as_json: JsonOpt = False,
) -> None:
    """How many paired samples detect a lift, or what lift a gold set of n can detect.

    With a plan, the same calculation as 'plan validate' and 'heldout run' (the metric decides
    binary, paired t or resampled); without one, binary unless --sd is given."""
    from heldout.plan import plan_power
    from heldout.stats import assess_power

    use_plan = plan.is_file() and base_rate is None and sd is None
    if use_plan:
        from heldout.plan import load_plan

        loaded = guard(lambda: load_plan(plan))
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
            fail(f"no power calculation fits {p.primary_metric} at baseline {p.baseline}", 2)
    else:
        if base_rate is None and sd is None:
            fail("give --base-rate (binary metrics) or --sd (continuous), or a plan", 2)
        if lift is None and n is None:
            fail("give --lift, --n or both", 2)
        kind = "continuous" if sd is not None else "binary"
        pa = guard(
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
        fail(f"power not computed: {pa.note}", 2)
    d = pa.detectable_lift
    finite = d if d is not None and math.isfinite(d) else None
    if as_json:
        print_json(
            PowerOutput(
                metric_kind=pa.kind, n=pa.n, lift=pa.lift, n_needed=pa.n_needed,
                detectable_lift=finite, power_at_n=pa.power_at_n, method=pa.method,
                assumption=pa.assumption, source=pa.source, discordance=pa.discordance,
                paired_sd=pa.paired_sd,
            )
        )  # fmt: skip
        return
    table = make_table("question", "answer")
    add_row(table, "method", f"{pa.method} ({pa.kind} metric)")
    add_row(table, "assumed", f"{pa.assumption}; from: {pa.source}")
    if lift is not None or use_plan:
        add_row(table, f"paired samples to detect +{pa.lift:g}", f"{pa.n_needed:,}")
    if n is not None or use_plan:
        add_row(
            table,
            f"smallest lift {pa.n:,} samples detect",
            f"{finite:.4f}" if finite is not None else "none: too few samples",
        )
        if pa.power_at_n is not None and (lift is not None or use_plan):
            add_row(table, f"power of {pa.n:,} samples for +{pa.lift:g}", f"{pa.power_at_n:.3f}")
    out.print(table)


def schema(
    name: Annotated[
        str, typer.Argument(help=f"One of: plan, {', '.join(SCHEMAS)}.", show_default=False)
    ],
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of results.json, of the plan, or of a command's --json output."""
    from heldout.plan import plan_json_schema

    body: dict[str, Any]
    if name == "plan":
        body = plan_json_schema()
    elif name in SCHEMAS:
        body = SCHEMAS[name].model_json_schema()
        body["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    else:
        fail(f"unknown schema {name!r}; known: plan, {', '.join(SCHEMAS)}", 2)
    text = json.dumps(body, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}", highlight=False)

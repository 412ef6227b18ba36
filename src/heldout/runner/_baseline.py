"""``heldout baseline``: measure the best prompt for the base model before training.

Each candidate prompt (the plan's own first, then ``baseline_search.prompts``) and each
other baseline model (``baseline_search.models``, with the plan's prompt) is scored on the
**development split** — never on the frozen gold set unless ``use_gold`` says so: choosing
the best of k prompts on the held-out set inflates the very bar the candidate is later held
to. The best is compared paired with every other (is the winner really better? Holm-adjusted
p-values over the k − 1 comparisons), then the winning prompt is measured once on the gold
set: that number is the baseline. Requests go through the response cache exactly as
``heldout run`` sends them, so the run reuses the base model's gold-set answers.

What it suggests (never writes): a ``success_threshold`` from the lift the gold set can
detect at the planned power and the realistic size of a fine-tune's lift (roughly 10–15
points on the target metric, plus better consistency — not magic), and the smallest margin
each guardrail's samples resolve.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heldout.backends import Backend, ResponseCache, make_backend
from heldout.data import load_samples, normalize
from heldout.errors import HeldoutError
from heldout.plan import (
    LoadedPlan,
    PromptCandidate,
    SuiteGuardrail,
    plan_power,
    task_metric_options,
)
from heldout.runner._datasets import Dataset, gold_dataset, outputs, requests_for
from heldout.runner._generate import GenerationSink, generate_async
from heldout.stats import Comparison, Interval, StatsOptions, compare, holm, score_interval
from heldout.stats._power import resolvable_margin

__all__ = ["BaselineEntry", "BaselineResult", "Suggestion", "measure_baseline"]

#: A fine-tune's realistic lift on its target metric (the method: "roughly 10–15 points").
REALISTIC_LIFT = (0.10, 0.15)


@dataclass(frozen=True, slots=True)
class BaselineEntry:
    """One model with one prompt, scored on the development split."""

    label: str  # "base · plan prompt", "bigger · plan prompt"
    model: str  # "base" or a baseline_search.models name
    prompt: PromptCandidate
    score: Interval
    n: int
    versus_best: Comparison | None = None  # best − this, paired
    p_holm: float | None = None


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A value heldout proposes and the reasons; the user decides."""

    field: str
    value: float
    reasons: tuple[str, ...]


@dataclass(slots=True)
class BaselineResult:
    metric: str
    higher_is_better: bool
    chosen_on: str  # "dev" or "gold"
    entries: list[BaselineEntry]  # best first
    best: BaselineEntry
    gold: Interval  # the winner (base model, best prompt) on the gold set
    gold_n: int
    dev_n: int
    suggestions: list[Suggestion] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    requests: int = 0
    cached: int = 0


def _template(loaded: LoadedPlan, p: PromptCandidate) -> str:
    if p.template is not None:
        return p.template
    assert p.file is not None
    return loaded.resolve(p.file).read_text(encoding="utf-8")


def _plan_prompt(loaded: LoadedPlan) -> PromptCandidate:
    task = loaded.plan.task
    if task.prompt is not None:
        return PromptCandidate(name="plan prompt", file=task.prompt)
    return PromptCandidate(name="plan prompt", template=loaded.template)


def _dataset(loaded: LoadedPlan, gold: Dataset, path: Path, name: str) -> Dataset:
    samples = load_samples(path, loaded.fields)
    options = task_metric_options(
        loaded.plan.task, labels=gold.options.labels, schema=gold.options.schema,
        inputs=tuple(s.input for s in samples),
    )  # fmt: skip
    return dataclasses.replace(gold, name=name, path=path, samples=samples, options=options)


def _overlap(dev: Dataset, gold: Dataset) -> int:
    seen = {normalize(s.input) for s in gold.samples}
    return sum(normalize(s.input) in seen for s in dev.samples)


async def measure_baseline_async(
    loaded: LoadedPlan,
    *,
    backends: Mapping[str, Backend] | None = None,
    use_gold: bool | None = None,
    cache: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> BaselineResult:
    """Measure every prompt and baseline (module docstring); ``use_gold`` overrides the plan."""
    plan = loaded.plan
    search = plan.baseline_search
    on_gold = bool(search.use_gold if use_gold is None else use_gold) if search else bool(use_gold)
    gold = gold_dataset(loaded)
    if on_gold:
        dev = gold
    elif search is None or search.dev_data is None:
        raise HeldoutError(
            "baseline_search.dev_data: give a development split (gold-set format) to choose "
            "the prompt on, or pass --use-gold to choose on the gold set (optimistic; recorded)"
        )
    else:
        dev = _dataset(loaded, gold, loaded.resolve(search.dev_data), "dev")
        shared = _overlap(dev, gold)
        if shared:
            raise HeldoutError(
                f"baseline_search.dev_data: {shared} of its {len(dev.samples)} inputs are also "
                f"in the gold set {gold.path.name}; a development split must not overlap the "
                "frozen gold set (remove them, or run 'heldout leak' to find near-duplicates)"
            )
    prompts = [_plan_prompt(loaded), *(search.prompts if search else [])]
    given = dict(backends or {})
    models: dict[str, Backend] = {
        "base": given.get("base")
        or make_backend(plan.models.base, root=loaded.root, seed=plan.stats.seed)
    }
    for name, model_spec in (search.models if search else {}).items():
        models[name] = given.get(name) or make_backend(
            model_spec, root=loaded.root, seed=plan.stats.seed
        )
    stats = StatsOptions(plan.stats.confidence, plan.stats.resamples, plan.stats.seed)
    calibrated = plan.task.shape == "classification"  # as heldout run asks for the gold set
    store = ResponseCache(loaded.root / ".heldout" / "cache.sqlite") if cache else None
    folder = loaded.root / ".heldout" / "baseline"
    folder.mkdir(parents=True, exist_ok=True)
    sink = GenerationSink(folder / "generations.jsonl")
    counts = {"requests": 0, "cached": 0}

    async def score(model: str, ds: Dataset) -> Any:
        reqs = requests_for(ds, calibrated)
        outs = await generate_async(
            models[model], reqs, role="base" if model == "base" else f"baseline:{model}",
            dataset=ds.name, cache=store, sink=sink,
            progress=(lambda d, t: progress(f"{model} · {ds.name}", d, t)) if progress else None,
        )  # fmt: skip
        counts["requests"] += len(outs)
        counts["cached"] += sum(g.cached for g in outs.values())
        failed = [g for g in outs.values() if not g.ok]
        if failed:
            raise HeldoutError(
                f"{model}: {len(failed)} request(s) failed after retries (e.g. {failed[0].error}); "
                "rerun 'heldout baseline' to retry only those"
            )
        return ds.spec(ds.targets, outputs(ds, outs, False), options=ds.options)

    try:
        entries: list[tuple[str, str, PromptCandidate, Any]] = []
        for p in prompts:
            ds = dataclasses.replace(dev, template=_template(loaded, p))
            entries.append((f"base · {p.label}", "base", p, await score("base", ds)))
        for name in models:
            if name != "base":
                entries.append((f"{name} · {prompts[0].label}", name, prompts[0],
                                await score(name, dev)))  # fmt: skip
        spec = dev.spec
        sign = 1.0 if spec.higher_is_better else -1.0
        ranked = sorted(entries, key=lambda e: -sign * e[3].aggregate)
        best_result = ranked[0][3]
        compared = [compare(r, best_result, spec, stats) for *_, r in ranked[1:]]
        adjusted = holm([c.p_value if math.isfinite(c.p_value) else 1.0 for c in compared])
        out = [
            BaselineEntry(label, model, p, score_interval(r, spec, stats), r.per_sample.size,
                          compared[i - 1] if i else None, adjusted[i - 1] if i else None)
            for i, (label, model, p, r) in enumerate(ranked)
        ]  # fmt: skip
        best = out[0]
        # the winning prompt with the base model, measured once on the gold set
        winner = next(e for e in out if e.model == "base")
        gold_ds = dataclasses.replace(gold, template=_template(loaded, winner.prompt))
        gold_result = await score("base", gold_ds)
    finally:
        sink.close()
        if store is not None:
            store.close()
    gold_iv = score_interval(gold_result, spec, stats)
    result = BaselineResult(
        metric=spec.name, higher_is_better=spec.higher_is_better,
        chosen_on="gold" if on_gold else "dev", entries=out, best=best, gold=gold_iv,
        gold_n=len(gold.samples), dev_n=len(dev.samples), requests=counts["requests"],
        cached=counts["cached"],
    )  # fmt: skip
    if best.model != "base":
        result.warnings.append(
            f"the best on the development split is {best.label}, not the base model: the "
            f"baseline written is the base model's best prompt ({winner.label}); a fine-tune "
            f"that does not beat {best.model} may not be worth shipping"
        )
    if on_gold:
        result.warnings.append(
            "the prompt was chosen on the gold set itself: the baseline is optimistic (the "
            "best of several prompts on the held-out set), and every later report says so"
        )
    runner_up = out[1] if len(out) > 1 else None
    vs = runner_up.versus_best if runner_up is not None else None
    if runner_up is not None and vs is not None and not vs.real_gain:
        result.warnings.append(
            f"{best.label} is not reliably better than {runner_up.label} on the development "
            f"split (paired {vs.test}, p={vs.p_value:.3g}): either prompt is a fair baseline"
        )
    result.suggestions = _suggest(
        loaded, gold_iv.estimate, len(gold.samples), spec.higher_is_better
    )
    return result


def measure_baseline(loaded: LoadedPlan, **kwargs: Any) -> BaselineResult:
    """:func:`measure_baseline_async` from synchronous code."""
    return asyncio.run(measure_baseline_async(loaded, **kwargs))


def _suggest(
    loaded: LoadedPlan, baseline: float, n: int, higher_is_better: bool
) -> list[Suggestion]:
    plan = loaded.plan
    measured = plan.model_copy(update={"baseline": baseline})
    pa = plan_power(measured, n)
    detectable = pa.detectable_lift if pa is not None else None
    lo, hi = REALISTIC_LIFT
    reasons = [
        f"a fine-tune typically lifts its target metric by about {lo * 100:.0f}–{hi * 100:.0f} "
        "points (plus better consistency), not more"
    ]
    lift = lo
    if detectable is not None and math.isfinite(detectable):
        reasons.insert(
            0,
            f"the gold set of {n:,} detects a lift of {detectable:.3g} at {plan.stats.power:.0%} "
            "power: a smaller bar could be cleared without the run being able to show it",
        )
        lift = max(lo, detectable)
        if detectable > hi:
            reasons.append(
                f"the gold set cannot detect a realistic lift (needs {detectable:.3g} > {hi:.0%}): "
                "add samples rather than raising the bar"
            )
    sign = 1.0 if higher_is_better else -1.0
    value = baseline + sign * lift
    value = min(1.0, value) if sign > 0 else max(0.0, value)
    out = [Suggestion("success_threshold", round(value, 4), tuple(reasons))]
    for i, g in enumerate(plan.guardrails):
        if isinstance(g, SuiteGuardrail):
            size = len(loaded.suite_samples.get(g.suite) or [])
            if size:
                margin = resolvable_margin(size, confidence=plan.stats.confidence)
                out.append(
                    Suggestion(
                        f"guardrails[{i}].max_drop", round(margin, 3),
                        (f"suite {g.suite} (n={size}) resolves a margin of {margin:.3f} with 80% "
                         "chance when nothing changed; a smaller max_drop stays unresolved",),
                    )
                )  # fmt: skip
    return out

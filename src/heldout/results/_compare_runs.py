"""Compare two iterations of a fine-tune from stored runs: candidate A vs candidate B, paired
by sample id on the same frozen gold set, re-scored from stored outputs (no model called)."""

from __future__ import annotations

import json
from pathlib import Path

from heldout.errors import HeldoutError
from heldout.metrics import MetricOptions, get_metric
from heldout.results._samples import read_samples
from heldout.results._store import load_run
from heldout.stats import Comparison, StatsOptions, align_ids, compare

__all__ = ["compare_runs"]


def compare_runs(folder_a: Path, folder_b: Path) -> Comparison:
    """Paired comparison of run B's candidate against run A's on A's primary metric."""
    a, b = load_run(folder_a), load_run(folder_b)
    for name, run in (("A", a), ("B", b)):
        if run.smoke is not None:
            raise HeldoutError(
                f"run {name} ({run.run_id}) is a smoke run ({run.smoke.gold_run} of "
                f"{run.smoke.gold_total} gold samples): compare two full runs"
            )
    gold_a = next((d for d in a.datasets if d.name == "gold"), None)
    gold_b = next((d for d in b.datasets if d.name == "gold"), None)
    if gold_a is None or gold_b is None:
        raise HeldoutError("both runs need a gold dataset")
    if gold_a.sha256 != gold_b.sha256:
        raise HeldoutError(
            f"the runs used different gold sets (sha256 {gold_a.sha256[:12]}… vs "
            f"{gold_b.sha256[:12]}…): iterations must be compared on the same frozen set"
        )
    if a.primary_metric != b.primary_metric:
        raise HeldoutError(f"primary metrics differ: {a.primary_metric} vs {b.primary_metric}")
    rows_a = [
        r for r in read_samples(folder_a) if r["dataset"] == "gold" and r["model"] == "candidate"
    ]
    rows_b = [
        r for r in read_samples(folder_b) if r["dataset"] == "gold" and r["model"] == "candidate"
    ]
    if not rows_a or not rows_b:
        raise HeldoutError("a run folder has no samples.jsonl with candidate outputs")
    order = align_ids([r["id"] for r in rows_a], [r["id"] for r in rows_b])
    rows_b = [rows_b[i] for i in order]
    spec = get_metric(a.primary_metric)
    details = a.metric_details.get("candidate", {}).get("report") or {}
    labels = tuple(details["labels"]) if "labels" in details else None
    plan_path = Path(a.plan_path)
    options = MetricOptions(labels=labels, inputs=[r["input"] for r in rows_a])
    if plan_path.is_file():
        from heldout.plan import load_plan, task_metric_options

        task = load_plan(plan_path, check_data=False).plan.task
        schema = None
        if task.schema_file:
            schema = json.loads((plan_path.parent / task.schema_file).read_text(encoding="utf-8"))
        options = task_metric_options(task, labels=labels, schema=schema, inputs=options.inputs)
    targets = [r["target"] for r in rows_a]
    res_a = spec(targets, [r["output"] or "" for r in rows_a], options=options)
    res_b = spec(targets, [r["output"] or "" for r in rows_b], options=options)
    stats = StatsOptions(
        confidence=a.stats["confidence"], resamples=a.stats["resamples"], seed=a.stats["seed"]
    )
    return compare(res_a, res_b, spec, stats)

"""``heldout ab analyze`` on 10 million request events (issue #20: ≤ 10 s).

Writes a synthetic production log — 10M requests of 500k users (Parquet: unit, arm, stage,
ts, status, latency_ms, cost, completion_tokens) and one ``resolved`` outcome per user — then
times the analysis exactly as the command runs it (per-unit reduction in DuckDB, SRM, the
primary with its confidence sequence at 12 looks, error rate and cost per request by the
delta method, p95 latency by a 400-replicate unit bootstrap). The peer: pandas groupby per
unit + GrowthBook's gbstats on the primary alone, the way one would do it by hand.

    .venv/bin/python benchmarks/bench_ab_analyze.py [--events 10000000] [--units 500000]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def build(folder: Path, events: int, units: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    names = np.array([f"user-{i:07d}" for i in range(units)], dtype=object)
    buckets = np.array(
        [
            int.from_bytes(hashlib.sha256(f"s\x00{u}".encode()).digest()[:8], "big") % 10_000
            for u in names
        ]
    )
    arm_of = np.where(buckets < 5000, "treatment", "control")
    uid = rng.integers(0, units, events)
    treated = arm_of[uid] == "treatment"
    pq.write_table(
        pa.table(
            {
                "unit": pa.array(names[uid], pa.string()),
                "arm": pa.array(arm_of[uid], pa.string()),
                "stage": np.full(events, 0.5),
                "ts": 1.79e9 + np.sort(rng.random(events)) * 86_400 * 7,
                "status": np.where(rng.random(events) < 0.002, 500, 200),
                "latency_ms": rng.lognormal(6, 0.5, events) * np.where(treated, 1.02, 1.0),
                "cost": rng.gamma(2.0, 0.0005, events),
                "completion_tokens": rng.integers(10, 400, events),
            }
        ),
        folder / "requests.parquet",
    )
    resolved = (rng.random(units) < np.where(arm_of == "treatment", 0.61, 0.60)).astype(float)
    pq.write_table(
        pa.table(
            {
                "unit": pa.array(names, pa.string()),
                "arm": pa.array(arm_of, pa.string()),
                "stage": np.full(units, 0.5),
                "ts": np.full(units, 1.8e9),
                "name": ["resolved"] * units,
                "value": resolved,
            }
        ),
        folder / "outcomes.parquet",
    )
    (folder / "ab.yaml").write_text(
        "name: bench\nsalt: s\narms:\n  control: {base_url: 'http://127.0.0.1:1/v1'}\n"
        "  treatment: {base_url: 'http://127.0.0.1:2/v1'}\nstages: [0.5, 1.0]\n"
        "primary: {outcome: resolved}\nplanned_units: 500000\nmin_units_per_stage: 1000\n"
        "guardrails:\n  - {metric: error_rate, max_increase: 0.01}\n"
        "  - {metric: cost_per_request, max_increase: 0.1, relative: true}\n"
        "  - {metric: latency_p95, max_increase: 0.1, relative: true}\n"
    )


def peer(folder: Path) -> tuple[float, float]:
    import pandas as pd
    from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
    from gbstats.models.statistics import ProportionStatistic

    r = pd.read_parquet(folder / "requests.parquet", columns=["unit", "arm"])
    o = pd.read_parquet(folder / "outcomes.parquet")
    per = r.groupby(["arm", "unit"]).size().rename("n").reset_index()
    per = per.merge(o[["unit", "value"]], on="unit", how="left").fillna({"value": 0.0})
    stats = {
        a: ProportionStatistic(n=int((g := per[per.arm == a]).shape[0]), sum=float(g.value.sum()))
        for a in ("control", "treatment")
    }
    res = TwoSidedTTest(
        stats["control"], stats["treatment"], FrequentistConfig(difference_type="absolute")
    ).compute_result()
    return float(res.expected), float(res.ci[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--units", type=int, default=500_000)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-ab-analyze-"))
    t = time.perf_counter()
    build(folder, args.events, args.units, 0)
    print(
        f"built {args.events:,} events of {args.units:,} units in {time.perf_counter() - t:.1f} s"
    )
    from heldout.ab import analyze_experiment

    t = time.perf_counter()
    a = analyze_experiment(
        folder / "ab.yaml",
        events=str(folder / "requests.parquet"),
        outcomes=str(folder / "outcomes.parquet"),
    )
    ours = time.perf_counter() - t
    st = a.stages[0]
    m = {x.name: x for x in st.metrics}
    print(
        f"heldout ab analyze: {ours:.2f} s — {st.units:,} units, {st.requests:,} requests, "
        f"decision {a.decision.decision}"
    )
    for name, x in m.items():
        e = x.effect
        print(
            f"  {name}: {e.estimate:+.5g} [{e.sequential.low:+.5g}, {e.sequential.high:+.5g}] "
            f"({x.status})"
        )
    t = time.perf_counter()
    est, low = peer(folder)
    theirs = time.perf_counter() - t
    e = m["resolved"].effect
    print(
        f"pandas + gbstats (primary only): {theirs:.2f} s; ratio {theirs / ours:.2f}x; "
        f"primary {est:+.6g} vs ours {e.estimate:+.6g}, fixed low {low:+.6g} vs "
        f"{e.fixed.low:+.6g}"
    )


if __name__ == "__main__":
    main()

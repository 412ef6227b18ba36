"""Seeded A/A simulation through ``heldout.ab.analyze_experiment`` exactly as ``heldout ab
analyze`` calls it: 300 experiments of 1,600 users with no true effect, each analysed with
its 12 looks over time. The always-valid interval ever excludes 0 in at most 5% of them (the
expected rate is well below: Monte Carlo SD at 5% is 1.3 points); the fixed-horizon interval
checked at the same 12 looks does far more often (≥ 10%), which is why peeking needs the
sequence; and no A/A experiment is ever shipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from heldout.ab import analyze_experiment, assign

from ._helpers import write_exp

pytest.importorskip("duckdb")


def test_aa_with_peeking_stays_valid_and_never_ships(tmp_path: Path) -> None:
    path = write_exp(tmp_path, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1", guardrails=[],
                     min_units_per_stage=100, planned_units=1600)  # fmt: skip
    rng = np.random.default_rng(2026)
    units = [f"u{i}" for i in range(1600)]
    arms = [assign(u, "salt-1", 0.5) for u in units]
    reps, seq_hits, naive_hits, shipped = 300, 0, 0, 0
    for _ in range(reps):
        ts = np.sort(rng.random(len(units))) * 30 * 86_400  # 30 days of arrivals
        resolved = (rng.random(len(units)) < 0.3).astype(float)
        req = pa.table({"unit": units, "arm": arms, "stage": [0.5] * len(units), "ts": ts})
        out = pa.table({"unit": units, "arm": arms, "stage": [0.5] * len(units), "ts": ts,
                        "name": ["resolved"] * len(units), "value": resolved})  # fmt: skip
        pq.write_table(req, tmp_path / "r.parquet")
        pq.write_table(out, tmp_path / "o.parquet")
        a = analyze_experiment(path, events=str(tmp_path / "r.parquet"),
                               outcomes=str(tmp_path / "o.parquet"))  # fmt: skip
        looks = a.stages[0].looks
        assert len(looks) == 12
        seq_hits += any(x.low > 0 or x.high < 0 for x in looks)
        naive_hits += any(x.fixed_low > 0 or x.fixed_high < 0 for x in looks)
        shipped += a.decision.decision == "ship"
    assert seq_hits / reps <= 0.05
    assert naive_hits / reps >= 0.10
    assert shipped <= seq_hits  # a ship needs the sequence to exclude 0 at the last look
    assert shipped / reps <= 0.05

"""``heldout ab analyze`` end to end: events in the store or exported (JSONL, CSV, Parquet,
DuckDB) reduced per unit, every number checked against gbstats / scipy on the per-unit values
the test generated itself; the decisions (SRM and mixed units → rollback, a guardrail beyond
its margin → rollback, too few units → hold, ship), exit codes, reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from scipy import stats as sps

from heldout.ab import analyze_experiment, assign
from heldout.ab._store import EventStore
from heldout.errors import DataError

from ._helpers import write_exp

gb_stats = pytest.importorskip("gbstats.models.statistics")
gb_tests = pytest.importorskip("gbstats.frequentist.tests")
duckdb = pytest.importorskip("duckdb")

GUARDS = [
    {"metric": "error_rate", "max_increase": 0.02},
    {"metric": "cost_per_request", "max_increase": 0.25, "relative": True},
    {"metric": "latency_p95", "max_increase": 0.5, "relative": True},
    {"outcome": "escalated", "per": "unit", "max_increase": 0.05},
]


def _events(n_units: int, seed: int, share: float = 0.5, *, p_c: float = 0.30, p_t: float = 0.36,
            cost_t: float = 1.0, err_t: float = 0.0, drop_treatment: float = 0.0,
            salt: str = "salt-1"):  # fmt: skip
    """Requests and outcomes of ``n_units`` users; also the per-unit truth for the oracles."""
    rng = np.random.default_rng(seed)
    t0 = 1_790_000_000.0
    req, out, truth = [], [], {"control": [], "treatment": []}
    for i in range(n_units):
        unit = f"u{i:06d}"
        arm = assign(unit, salt, share)
        if arm == "treatment" and rng.random() < drop_treatment:
            continue
        k = int(rng.integers(1, 5))
        cost_sum, errors = 0.0, 0
        for j in range(k):
            bad = rng.random() < (err_t if arm == "treatment" else 0.0)
            errors += bad
            cost = float(rng.gamma(2.0, 0.5)) * (cost_t if arm == "treatment" else 1.0)
            cost_sum += cost
            req.append({"id": f"{unit}-{j}", "ts": t0 + i + j * 0.1, "unit": unit, "arm": arm,
                        "stage": share, "status": 500 if bad else 200,
                        "latency_ms": float(rng.lognormal(5, 0.4)), "cost": cost,
                        "completion_tokens": 10})  # fmt: skip
        resolved = float(rng.random() < (p_t if arm == "treatment" else p_c))
        escalated = float(rng.random() < 0.1)
        out.append({"ts": t0 + i + 0.5, "unit": unit, "arm": arm, "stage": share,
                    "name": "resolved", "value": resolved})  # fmt: skip
        out.append({"ts": t0 + i + 0.6, "unit": unit, "arm": arm, "stage": share,
                    "name": "escalated", "value": escalated})  # fmt: skip
        truth[arm].append((resolved, k, cost_sum, errors, escalated))
    return req, out, {a: np.array(v) for a, v in truth.items()}


def _store(folder: Path, req, out) -> None:
    store = EventStore(folder / "events.sqlite")
    cols = ("id", "ts", "unit", "arm", "stage", "upstream", "model", "status", "error",
            "latency_ms", "prompt_tokens", "completion_tokens", "cost", "stream", "prompt")  # fmt: skip
    store.add_requests([tuple(r.get(c) for c in cols) for r in req])
    store.add_outcomes([(o["ts"], None, o["unit"], o["arm"], o["stage"], o["name"], o["value"])
                        for o in out])  # fmt: skip
    store.set_split(req[0]["stage"], "start")
    store.close()


def _exp(folder: Path, **over) -> Path:
    base = {"stages": [0.5, 1.0], "guardrails": GUARDS, "min_units_per_stage": 1000,
            "planned_units": 4000, "srm_alpha": 0.001}  # fmt: skip
    base.update(over)
    return write_exp(folder, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1", **base)


def _metric(a, name):
    st = a.stages[-1]
    return next(m for m in st.metrics if m.name == name)


def _gb(a, b, relative=False, sequential=False, tuning=4000):
    kind = "relative" if relative else "absolute"
    if sequential:
        cfg = gb_tests.SequentialConfig(difference_type=kind, sequential_tuning_parameter=tuning)
        return gb_tests.SequentialTwoSidedTTest(a, b, cfg).compute_result()
    return gb_tests.TwoSidedTTest(
        a, b, gb_tests.FrequentistConfig(difference_type=kind)
    ).compute_result()


def _mean(v):
    return gb_stats.SampleMeanStatistic(
        n=v.size, sum=float(v.sum()), sum_squares=float((v**2).sum())
    )


def test_store_analysis_equals_gbstats_and_scipy_on_the_per_unit_values(tmp_path: Path) -> None:
    req, out, truth = _events(4000, seed=1)
    path = _exp(tmp_path)
    _store(tmp_path, req, out)
    a = analyze_experiment(path)
    st = a.stages[0]
    c, t = truth["control"], truth["treatment"]
    assert (st.units_control, st.units_treatment) == (len(c), len(t))
    assert st.requests == len(req)
    assert st.srm_p == pytest.approx(sps.chisquare([len(c), len(t)], [2000, 2000]).pvalue, rel=1e-9)
    # primary: a per-unit proportion
    pc = gb_stats.ProportionStatistic(n=len(c), sum=float(c[:, 0].sum()))
    pt = gb_stats.ProportionStatistic(n=len(t), sum=float(t[:, 0].sum()))
    m = _metric(a, "resolved")
    fixed, seq = _gb(pc, pt), _gb(pc, pt, sequential=True)
    assert m.effect.estimate == pytest.approx(fixed.expected, rel=1e-9)
    assert [m.effect.fixed.low, m.effect.fixed.high] == pytest.approx(fixed.ci, rel=1e-9)
    assert [m.effect.sequential.low, m.effect.sequential.high] == pytest.approx(seq.ci, rel=1e-9)
    assert m.effect.p_sequential == pytest.approx(seq.p_value, rel=1e-6)

    # cost per request: a ratio of per-unit sums, delta method, relative
    def ratio(v):
        return gb_stats.RatioStatistic(n=len(v), m_statistic=_mean(v[:, 2]), d_statistic=_mean(v[:, 1]),
                                       m_d_sum_of_products=float((v[:, 2] * v[:, 1]).sum()))  # fmt: skip

    m = _metric(a, "cost_per_request")
    fixed, seq = _gb(ratio(c), ratio(t), relative=True), _gb(ratio(c), ratio(t), True, True)
    assert m.effect.estimate == pytest.approx(fixed.expected, rel=1e-9)
    assert [m.effect.sequential.low, m.effect.sequential.high] == pytest.approx(seq.ci, rel=1e-9)
    assert m.status == "pass"
    # a unit outcome guardrail
    m = _metric(a, "escalated")
    ec = gb_stats.ProportionStatistic(n=len(c), sum=float(c[:, 4].sum()))
    et = gb_stats.ProportionStatistic(n=len(t), sum=float(t[:, 4].sum()))
    assert [m.effect.sequential.low, m.effect.sequential.high] == pytest.approx(
        _gb(ec, et, sequential=True).ci, rel=1e-9)  # fmt: skip
    # latency p95: the exact quantile of each arm's requests
    lat = {arm: np.array([r["latency_ms"] for r in req if r["arm"] == arm]) for arm in truth}
    m = _metric(a, "latency_p95")
    assert m.effect.control.mean == pytest.approx(np.quantile(lat["control"], 0.95))
    assert m.effect.treatment.mean == pytest.approx(np.quantile(lat["treatment"], 0.95))
    assert a.decision.decision == "ship"  # +6 points on 4,000 units, guardrails within margins
    assert a.decision.exit_code == 0
    assert len(st.looks) == 12
    assert st.looks[-1].units == st.units
    assert st.looks[0].units < st.looks[-1].units  # each look sees only what came before it


def test_exported_files_give_the_same_analysis_as_the_store(tmp_path: Path) -> None:
    req, out, _ = _events(1500, seed=2)
    path = _exp(tmp_path)
    _store(tmp_path, req, out)
    ref = analyze_experiment(path, record=False)
    rt, ot = pa.Table.from_pylist(req), pa.Table.from_pylist(out)
    pq.write_table(rt, tmp_path / "r.parquet")
    pq.write_table(ot, tmp_path / "o.parquet")
    pcsv.write_csv(rt, tmp_path / "r.csv")
    pcsv.write_csv(ot, tmp_path / "o.csv")
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in req))
    (tmp_path / "o.jsonl").write_text("".join(json.dumps(o) + "\n" for o in out))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute(f"CREATE TABLE reqs AS SELECT * FROM read_parquet('{tmp_path / 'r.parquet'}')")
    con.execute(f"CREATE TABLE outs AS SELECT * FROM read_parquet('{tmp_path / 'o.parquet'}')")
    con.close()
    # a warehouse log with the outcome joined into the request rows, outcomes by unit only
    wide = [dict(r, resolved=None) for r in req]
    for o in out:
        if o["name"] == "resolved":
            first = next(w for w in wide if w["unit"] == o["unit"])
            first["resolved"] = o["value"]
    pq.write_table(pa.Table.from_pylist(wide), tmp_path / "wide.parquet")
    esc = [{"ts": o["ts"], "unit": o["unit"], "name": o["name"], "value": o["value"]}
           for o in out if o["name"] == "escalated"]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(esc), tmp_path / "esc.parquet")

    def key(a):
        return [(m.name, round(m.effect.estimate, 12), round(m.effect.sequential.low, 12))
                for m in a.stages[0].metrics if not m.name.startswith("latency")]  # fmt: skip

    for r, o in [("r.parquet", "o.parquet"), ("r.csv", "o.csv"), ("r.jsonl", "o.jsonl"),
                 (f"{tmp_path / 'w.duckdb'}:reqs", f"{tmp_path / 'w.duckdb'}:outs"),
                 ("wide.parquet", "esc.parquet")]:  # fmt: skip
        r = r if ":" in r else str(tmp_path / r)
        o = o if ":" in o else str(tmp_path / o)
        got = analyze_experiment(path, events=r, outcomes=o)
        assert key(got) == key(ref), r
        assert got.decision.decision == ref.decision.decision


def test_sample_ratio_mismatch_stops_everything(tmp_path: Path) -> None:
    """100,000 units of which 4% of the treatment units never show up (a 51/49 split): the
    SRM check fires and the decision is rollback, though the primary looks like a win."""
    req, out, _ = _events(100_000, seed=3, drop_treatment=0.04, p_t=0.40)
    path = _exp(tmp_path)
    pq.write_table(pa.Table.from_pylist(req), tmp_path / "r.parquet")
    pq.write_table(pa.Table.from_pylist(out), tmp_path / "o.parquet")
    a = analyze_experiment(path, events=str(tmp_path / "r.parquet"),
                           outcomes=str(tmp_path / "o.parquet"))  # fmt: skip
    assert a.decision.decision == "rollback"
    assert a.decision.reasons[0].startswith("rollback: assignment is broken: sample ratio mismatch")
    assert _metric(a, "resolved").status == "better"  # what the outcomes say does not matter
    assert a.decision.exit_code == 1


def test_units_in_both_arms_mean_broken_assignment(tmp_path: Path) -> None:
    req, out, _ = _events(1200, seed=4)
    other = "treatment" if req[0]["arm"] == "control" else "control"
    req.append(dict(req[0], id="moved", arm=other))  # one unit served by the other arm once
    path = _exp(tmp_path)
    pq.write_table(pa.Table.from_pylist(req), tmp_path / "r.parquet")
    pq.write_table(pa.Table.from_pylist(out), tmp_path / "o.parquet")
    a = analyze_experiment(
        path, events=str(tmp_path / "r.parquet"), outcomes=str(tmp_path / "o.parquet")
    )
    assert a.stages[0].mixed_units == 1
    assert a.decision.decision == "rollback"
    assert "1 units were served by both arms" in " ".join(a.decision.reasons)


def test_guardrail_beyond_its_margin_rolls_back_and_too_few_units_hold(tmp_path: Path) -> None:
    req, out, _ = _events(3000, seed=5, cost_t=1.6)  # treatment costs 60% more per request
    path = _exp(tmp_path)
    _store(tmp_path, req, out)
    a = analyze_experiment(path)
    assert a.decision.decision == "rollback"
    assert any("guardrail cost_per_request beyond its margin" in r for r in a.decision.reasons)
    assert _metric(a, "cost_per_request").loss
    req, out, _ = _events(400, seed=6)
    path = _exp(tmp_path / "few")
    _store(tmp_path / "few", req, out)
    a = analyze_experiment(path)
    assert a.decision.decision == "hold"
    assert a.decision.reasons[0] == "400 units so far; the stage needs 1000 (600 more)"
    assert a.decision.more_units is not None
    assert a.decision.more_units >= 600
    assert a.decision.exit_code == 4


def test_bad_exports_get_a_clear_error(tmp_path: Path) -> None:
    path = _exp(tmp_path)
    (tmp_path / "a.jsonl").write_text('{"unit": "u1", "variant": "B"}\n')
    with pytest.raises(DataError, match=r"missing column.*arm"):
        analyze_experiment(path, events=str(tmp_path / "a.jsonl"))
    (tmp_path / "b.jsonl").write_text('{"unit": "u1", "arm": "B"}\n')
    with pytest.raises(DataError, match=r"column 'arm'.*'B' \(1 rows\)"):
        analyze_experiment(path, events=str(tmp_path / "b.jsonl"))
    with pytest.raises(DataError, match="file not found"):
        analyze_experiment(path, events=str(tmp_path / "nope.parquet"))
    (tmp_path / "c.xlsx").write_text("x")
    with pytest.raises(DataError, match="unknown file type"):
        analyze_experiment(path, events=str(tmp_path / "c.xlsx"))
    (tmp_path / "d.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="DuckDB cannot read it"):
        analyze_experiment(path, events=str(tmp_path / "d.parquet"))


def test_cuped_narrows_the_interval_and_equals_gbstats(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    req, out = [], []
    ys = {"control": [], "treatment": []}
    for i in range(3000):
        unit = f"u{i}"
        arm = assign(unit, "salt-1", 0.5)
        x = float(rng.normal(5, 2))
        y = x + rng.normal(0.3 if arm == "treatment" else 0.0, 1.0)
        req.append({"id": unit, "ts": 1e9 + i, "unit": unit, "arm": arm, "stage": 0.5})
        out += [{"ts": 1e9 + i, "unit": unit, "arm": arm, "stage": 0.5, "name": "spend", "value": y},
                {"ts": 1e9 - 5, "unit": unit, "arm": arm, "stage": 0.5, "name": "pre_spend", "value": x}]  # fmt: skip
        ys[arm].append((y, x))
    pq.write_table(pa.Table.from_pylist(req), tmp_path / "r.parquet")
    pq.write_table(pa.Table.from_pylist(out), tmp_path / "o.parquet")
    kw = {"primary": {"outcome": "spend"}, "guardrails": []}
    plain = analyze_experiment(_exp(tmp_path / "a", **kw), events=str(tmp_path / "r.parquet"),
                               outcomes=str(tmp_path / "o.parquet"))  # fmt: skip
    adj = analyze_experiment(_exp(tmp_path / "b", cuped={"covariate": "pre_spend"}, **kw),
                             events=str(tmp_path / "r.parquet"), outcomes=str(tmp_path / "o.parquet"))  # fmt: skip
    p, q = _metric(plain, "spend").effect, _metric(adj, "spend").effect
    assert (q.fixed.high - q.fixed.low) < 0.6 * (p.fixed.high - p.fixed.low)
    c, t = np.array(ys["control"]), np.array(ys["treatment"])
    yy, xx = np.concatenate([c[:, 0], t[:, 0]]), np.concatenate([c[:, 1], t[:, 1]])
    theta = float(np.cov(yy, xx)[0, 1] / np.var(xx, ddof=1))

    def reg(v):
        return gb_stats.RegressionAdjustedStatistic(
            n=len(v), post_statistic=_mean(v[:, 0]), pre_statistic=_mean(v[:, 1]),
            post_pre_sum_of_products=float((v[:, 0] * v[:, 1]).sum()), theta=theta)  # fmt: skip

    ref = _gb(reg(c), reg(t))
    assert q.estimate == pytest.approx(ref.expected, rel=1e-9)
    assert [q.fixed.low, q.fixed.high] == pytest.approx(ref.ci, rel=1e-9)


def test_unit_bootstrap_of_a_quantile_matches_a_brute_force_unit_bootstrap() -> None:
    """The binned Poisson bootstrap against resampling whole units with replacement and
    taking np.quantile of their pooled requests (2,000 replicates): the standard errors
    agree within 15% (Monte Carlo error of each is ≈ 3–4%)."""
    from heldout.ab import quantile_effect

    rng = np.random.default_rng(9)

    def arm(n: int, scale: float):
        k = rng.integers(1, 8, n)
        unit_speed = rng.lognormal(0, 0.5, n)  # a unit's requests are correlated
        uid = np.repeat(np.arange(n), k)
        lat = rng.lognormal(5, 0.3, uid.size) * unit_speed[uid] * scale
        return lat, uid

    c, t = arm(600, 1.0), arm(600, 1.1)
    ours = quantile_effect(c, t, 0.95, reps=1000, seed=1)
    brute = []
    for _ in range(2000):
        qs = []
        for lat, uid in (c, t):
            n = uid.max() + 1
            pick = rng.integers(0, n, n)
            starts = np.searchsorted(uid, np.arange(n))
            ends = np.searchsorted(uid, np.arange(n), side="right")
            qs.append(np.quantile(np.concatenate([lat[starts[p] : ends[p]] for p in pick]), 0.95))
        brute.append(qs[1] - qs[0])
    se_brute = float(np.std(brute, ddof=1))
    se_ours = (ours.fixed.high - ours.fixed.low) / (2 * 1.96)
    assert se_ours == pytest.approx(se_brute, rel=0.15)
    assert ours.estimate == pytest.approx(np.quantile(t[0], 0.95) - np.quantile(c[0], 0.95))


def test_srm_detects_a_one_point_imbalance_at_100k_units() -> None:
    """1,000 experiments of 100,000 units split 51/49 instead of 50/50 (one arm one
    percentage point off): the SRM check at GrowthBook's 0.001 fires in every one
    (z ≈ 6.3; power > 0.9999). At 50.5/49.5 (a 1% relative imbalance) it fires in about
    45% of them at 0.001 and 88% at 0.05 — too small a shift for 100k units to show reliably."""
    from heldout.ab import srm_p_value

    rng = np.random.default_rng(12)
    n = 100_000
    hits = [srm_p_value([x, n - x], [0.5, 0.5]) < 0.001 for x in rng.binomial(n, 0.51, 1000)]
    assert sum(hits) == 1000
    half = [srm_p_value([x, n - x], [0.5, 0.5]) for x in rng.binomial(n, 0.505, 2000)]
    assert 0.40 < np.mean(np.array(half) < 0.001) < 0.50  # theory 0.45, MC SD 0.011
    assert 0.86 < np.mean(np.array(half) < 0.05) < 0.92

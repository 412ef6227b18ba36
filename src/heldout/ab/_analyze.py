"""``heldout ab analyze``: per-unit metrics, SRM, sequential inference and a decision.

For every comparative stage (a treatment share below 100%) the events of that stage are
reduced to one row per unit (a user's requests are correlated: the unit is the sample), and

- the sample-ratio-mismatch check compares the units per arm with the configured split
  (chi-square); any unit served by both arms within one stage is counted too. Either stops
  the analysis: **rollback: assignment is broken**, whatever the outcomes say;
- the primary outcome and each guardrail get treatment − control (or relative) with the
  always-valid confidence sequence (peeking every day stays valid) and, beside it, the
  fixed-horizon Welch interval, valid once at the planned number of units; latency
  quantiles use a unit bootstrap; CUPED adjusts the primary by a pre-period covariate;
- the primary's confidence sequence is recomputed at 12 looks over the stage's time span
  (each look sees only the events before it), for the report's chart.

The decision of the current stage, with reasons: ``rollback`` (SRM, a guardrail beyond its
margin, or the primary significantly worse), ``hold`` (too few units, a guardrail or the final
stage's primary unresolved: with an estimate of the units still needed), ``ramp`` (the next
stage) or ``ship`` (the last comparative stage passed, the primary significantly better).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from heldout.ab._plan import Experiment, Guardrail, Outcome
from heldout.ab._quantile import quantile_effect
from heldout.ab._stats import (
    Effect,
    Summary,
    cuped,
    effect,
    mean_summary,
    proportion_summary,
    ratio_summary,
    srm_p_value,
)

__all__ = ["EXIT", "Analysis", "Decision", "Look", "MetricResult", "StageResult", "analyze"]

F64 = npt.NDArray[np.float64]
LOOKS = 12
DecisionName = Literal["ramp", "hold", "rollback", "ship"]
#: Exit codes of ``heldout ab analyze``: go on (ramp or ship), roll back, wait.
EXIT: dict[str, int] = {"ramp": 0, "ship": 0, "rollback": 1, "hold": 4}
QUANTILES = {"latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99}


@dataclass(frozen=True, slots=True)
class MetricResult:
    name: str
    role: Literal["primary", "guardrail"]
    per: str
    higher_is_better: bool
    relative: bool
    margin: float | None
    effect: Effect
    status: str  # primary: better | worse | no difference yet; guardrail: pass | fail | unresolved
    more_units: int | None
    method: str
    note: str = ""

    @property
    def loss(self) -> bool:
        return self.status in ("worse", "fail")


@dataclass(frozen=True, slots=True)
class Look:
    ts: float
    units: int
    estimate: float
    low: float
    high: float
    fixed_low: float
    fixed_high: float


@dataclass(slots=True)
class StageResult:
    share: float
    since: float
    until: float
    requests: int
    units_control: int
    units_treatment: int
    srm_p: float
    mixed_units: int
    metrics: list[MetricResult] = field(default_factory=list)
    looks: list[Look] = field(default_factory=list)
    cuped_theta: float | None = None

    @property
    def units(self) -> int:
        return self.units_control + self.units_treatment


@dataclass(frozen=True, slots=True)
class Decision:
    decision: DecisionName
    stage: float
    next_share: float | None
    reasons: tuple[str, ...]
    more_units: int | None = None

    @property
    def exit_code(self) -> int:
        return EXIT[self.decision]


@dataclass(slots=True)
class Analysis:
    experiment: str
    source: str
    stages: list[StageResult]
    decision: Decision
    offline: dict[str, Any] | None = None
    lock: dict[str, Any] | None = None
    splits: list[dict[str, Any]] = field(default_factory=list)
    live_share: float | None = None


# -- per-unit values --------------------------------------------------------------------
@dataclass(slots=True)
class _Arm:
    """One arm of one stage: per-unit rows by look bucket."""

    units: int
    uid: npt.NDArray[np.int64]
    bucket: npt.NDArray[np.int64]
    cols: dict[str, F64]
    o_uid: dict[str, npt.NDArray[np.int64]]
    o_bucket: dict[str, npt.NDArray[np.int64]]
    o_sum: dict[str, F64]
    o_cnt: dict[str, F64]
    first: npt.NDArray[np.int64]  # each unit's first bucket
    latency: tuple[F64, npt.NDArray[np.int64]]  # every request's latency and unit (for quantiles)

    def sums(self, col: str, upto: int) -> F64:
        m = self.bucket <= upto
        out = np.bincount(self.uid[m], weights=self.cols[col][m], minlength=self.units)
        return out.astype(np.float64)

    def outcome(self, name: str, upto: int) -> tuple[F64, F64]:
        if name not in self.o_uid:
            z = np.zeros(self.units)
            return z, z
        m = self.o_bucket[name] <= upto
        u = self.o_uid[name][m]
        s = np.bincount(u, weights=self.o_sum[name][m], minlength=self.units)
        c = np.bincount(u, weights=self.o_cnt[name][m], minlength=self.units)
        return s.astype(np.float64), c.astype(np.float64)

    def active(self, upto: int) -> npt.NDArray[np.bool_]:
        return self.first <= upto


def _summary(arm: _Arm, metric: str, per: str, upto: int, outcome: bool) -> Summary:
    act = arm.active(upto)
    if outcome:
        s, c = arm.outcome(metric, upto)
        if per == "request":
            return ratio_summary(s[act], arm.sums("n", upto)[act])
        vals = np.divide(s, c, out=np.zeros_like(s), where=c > 0)[act]
        binary = bool(np.isin(vals, (0.0, 1.0)).all())
        return proportion_summary(vals) if binary else mean_summary(vals)
    n = arm.sums("n", upto)[act]
    if metric == "requests_per_unit":
        return mean_summary(n)
    num, den = {
        "error_rate": ("e", "n"),
        "latency_mean": ("lat", "nlat"),
        "cost_per_request": ("cost", "ncost"),
        "tokens_per_request": ("tok", "ntok"),
    }[metric]
    return ratio_summary(arm.sums(num, upto)[act], arm.sums(den, upto)[act])


def _column(res: dict[str, Any], name: str) -> tuple[F64, npt.NDArray[np.bool_] | None]:
    """A fetched column as float64 values (0 where NULL) and which are present (None: all)."""
    x = res[name]
    if not isinstance(x, np.ma.MaskedArray) or not x.mask.any():
        return np.asarray(np.ma.getdata(x), dtype=np.float64), None
    present = ~np.ma.getmaskarray(x)
    values = np.asarray(np.ma.getdata(x), dtype=np.float64)
    return np.where(present, values, 0.0), present


def _fetch_arm(con: Any, stage: float, arm: str, t0: float, span: float, names: list[str]) -> _Arm:
    scaled = f"floor((ts - {t0!r}) / {span!r} * {LOOKS})"
    bucket = f"LEAST({LOOKS - 1}, GREATEST(0, CAST({scaled} AS BIGINT)))"
    units = int(con.execute("SELECT count(*) FROM ids WHERE arm = ?", [arm]).fetchall()[0][0])
    # the arm's requests as columns, reduced to (unit, look bucket) cells here: a bincount over
    # millions of rows is several times faster than DuckDB's GROUP BY plus fetching its result
    res = con.sql(  # with integer unit ids, joined straight into the fetch (no table between)
        "SELECT i.uid, r.ts, r.err, r.lat, r.cost, r.tok FROM r JOIN ids i "
        "ON r.unit = i.unit AND r.arm = i.arm WHERE r.stage = ? AND r.arm = ?",
        params=[stage, arm],
    ).fetchnumpy()
    req_uid = np.asarray(res["uid"], dtype=np.int64)
    ts, has_ts = _column(res, "ts")
    with np.errstate(invalid="ignore"):
        cell = np.floor((ts - t0) / span * LOOKS)
    ok = np.isfinite(cell) if has_ts is None else has_ts & np.isfinite(cell)
    cell = np.where(ok, cell, 0.0)  # like SQL's GREATEST(0, NULL) = 0
    key = req_uid * LOOKS + np.clip(cell, 0, LOOKS - 1).astype(np.int64)
    size = units * LOOKS
    n = np.bincount(key, minlength=size)
    nz = np.flatnonzero(n)
    uid, b = nz // LOOKS, nz % LOOKS
    cols = {"n": n[nz].astype(np.float64)}
    for col, total, count in (
        ("err", "e", None),
        ("lat", "lat", "nlat"),
        ("cost", "cost", "ncost"),
        ("tok", "tok", "ntok"),
    ):
        values, present = _column(res, col)
        cols[total] = np.asarray(np.bincount(key, values, size)[nz], dtype=np.float64)
        if count is not None:
            cols[count] = (
                cols["n"]
                if present is None
                else np.asarray(np.bincount(key, present, size)[nz], dtype=np.float64)
            )
        if col == "lat":  # the quantile guardrail bootstraps requests' latencies by unit
            lat = (values, req_uid) if present is None else (values[present], req_uid[present])
    first = np.full(units, LOOKS, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, uid[1:] != uid[:-1]])  # cells run by unit, then bucket
    first[uid[starts]] = b[starts]
    o_uid, o_b, o_s, o_c = {}, {}, {}, {}
    if names:
        ores = con.sql(  # lazy: fetchnumpy reads the result once
            f"SELECT o.name, i.uid, {bucket} AS b, sum(value) AS s, count(value) AS c "
            "FROM o JOIN ids i ON o.unit = i.unit AND o.arm = i.arm "
            f"WHERE o.stage = ? AND o.arm = ? AND o.name IN ({','.join('?' * len(names))}) "
            "AND value IS NOT NULL GROUP BY ALL",
            params=[stage, arm, *names],
        ).fetchnumpy()
        nm = np.asarray(ores["name"], dtype=object)
        for name in names:
            m = nm == name
            o_uid[name] = np.asarray(ores["uid"], dtype=np.int64)[m]
            o_b[name] = np.asarray(ores["b"], dtype=np.int64)[m]
            o_s[name] = np.asarray(ores["s"], dtype=np.float64)[m]
            o_c[name] = np.asarray(ores["c"], dtype=np.float64)[m]
            np.minimum.at(first, o_uid[name], o_b[name])
    return _Arm(units, uid, b, cols, o_uid, o_b, o_s, o_c, first, lat)


# -- decisions on one metric ------------------------------------------------------------
def _more_units(eff: Effect, target: float, n: int) -> int | None:
    """Units still needed (roughly) for the confidence sequence to clear ``target``."""
    half = (eff.sequential.high - eff.sequential.low) / 2
    gap = abs(eff.estimate - target)
    if not math.isfinite(half) or half <= 0 or gap <= 1e-12:
        return None
    need = n * (half / gap) ** 2 * 1.15  # the sequence narrows a little slower than 1/√n
    return max(1, math.ceil(need - n))


def _primary_status(eff: Effect, hib: bool, n: int) -> tuple[str, int | None]:
    lo, hi = eff.sequential.low, eff.sequential.high
    if not math.isfinite(eff.estimate):
        return "not measurable", None
    if (hib and lo > 0) or (not hib and hi < 0):
        return "better", None
    if (hib and hi < 0) or (not hib and lo > 0):
        return "worse", None
    return "no difference yet", _more_units(eff, 0.0, n)


def _guard_status(eff: Effect, g: Guardrail, n: int) -> tuple[str, int | None]:
    lo, hi = eff.sequential.low, eff.sequential.high
    m = g.max_increase
    if not math.isfinite(eff.estimate):
        return "unresolved", None
    if g.higher_is_better:
        if lo > -m:
            return "pass", None
        if hi < -m:
            return "fail", None
        return "unresolved", _more_units(eff, -m, n)
    if hi < m:
        return "pass", None
    if lo > m:
        return "fail", None
    return "unresolved", _more_units(eff, m, n)


def _stage(
    con: Any, exp: Experiment, share: float, t0: float, t1: float, requests: int, seed: int
) -> StageResult:
    con.execute("DROP TABLE IF EXISTS ids")
    con.execute(
        "CREATE TEMP TABLE ids AS SELECT arm, unit, CAST(row_number() OVER (PARTITION BY arm "
        "ORDER BY unit) - 1 AS BIGINT) AS uid FROM (SELECT DISTINCT arm, unit FROM "
        "(SELECT arm, unit FROM r WHERE stage = $1 UNION ALL SELECT arm, unit FROM o "
        "WHERE stage = $1))",
        [share],
    )
    counts = dict(con.execute("SELECT arm, count(*) FROM ids GROUP BY arm").fetchall())
    mixed = int(
        con.execute(
            "SELECT count(*) FROM (SELECT unit FROM ids GROUP BY unit HAVING count(*) > 1)"
        ).fetchall()[0][0]
    )
    nc, nt = int(counts.get("control", 0)), int(counts.get("treatment", 0))
    st = StageResult(
        share, t0, t1, requests, nc, nt, srm_p_value([nc, nt], [1 - share, share]), mixed
    )
    span = max(t1 - t0, 1e-9)
    arms = {
        a: _fetch_arm(con, share, a, t0, span, exp.outcome_names) for a in ("control", "treatment")
    }
    tuning = float(exp.planned_units)
    last = LOOKS - 1
    p = exp.primary
    p_outcome = p.outcome not in _BUILTIN_NAMES
    for k in range(LOOKS):
        c = _summary(arms["control"], p.outcome, p.per, k, p_outcome)
        t = _summary(arms["treatment"], p.outcome, p.per, k, p_outcome)
        if c.n < 2 or t.n < 2:
            continue
        e = effect(c, t, relative=p.relative, alpha=exp.alpha, tuning=tuning)
        st.looks.append(
            Look(
                t0 + span * (k + 1) / LOOKS,
                c.n + t.n,
                e.estimate,
                e.sequential.low,
                e.sequential.high,
                e.fixed.low,
                e.fixed.high,
            )
        )
    st.metrics.append(_primary(con, exp, arms, st, tuning, p, p_outcome, last))
    for g in exp.guardrails:
        st.metrics.append(_guardrail(con, exp, arms, share, st, tuning, g, last, seed))
    return st


_BUILTIN_NAMES = {
    "error_rate",
    "latency_mean",
    "cost_per_request",
    "tokens_per_request",
    "requests_per_unit",
}


def _primary(
    con: Any,
    exp: Experiment,
    arms: dict[str, _Arm],
    st: StageResult,
    tuning: float,
    p: Outcome,
    p_outcome: bool,
    last: int,
) -> MetricResult:
    c = _summary(arms["control"], p.outcome, p.per, last, p_outcome)
    t = _summary(arms["treatment"], p.outcome, p.per, last, p_outcome)
    method = "delta-method ratio" if p.per == "request" or not p_outcome else "per-unit mean"
    note = ""
    if exp.cuped is not None and p_outcome and p.per == "unit":
        cov = exp.cuped.covariate
        con.execute("DROP TABLE IF EXISTS cov")
        con.execute(
            "CREATE TEMP TABLE cov AS SELECT unit, avg(value) AS x FROM o WHERE name = ? "
            "GROUP BY unit",
            [cov],
        )
        ys, xs = [], []
        for a in ("control", "treatment"):
            arm = arms[a]
            s, cnt = arm.outcome(p.outcome, last)
            y = np.divide(s, cnt, out=np.zeros_like(s), where=cnt > 0)
            x = np.zeros(arm.units)
            got = con.sql(  # lazy: fetchnumpy reads the result once
                "SELECT i.uid, cov.x FROM ids i JOIN cov ON cov.unit = i.unit WHERE i.arm = ?",
                params=[a],
            ).fetchnumpy()
            x[np.asarray(got["uid"], dtype=np.int64)] = np.asarray(got["x"], dtype=np.float64)
            act = arm.active(last)
            ys.append(y[act])
            xs.append(x[act])
        c, t, theta = cuped(ys[0], xs[0], ys[1], xs[1])
        st.cuped_theta = theta
        method = f"per-unit mean, CUPED on {cov} (θ = {theta:.3g})"
    elif exp.cuped is not None:
        note = "CUPED applies to per-unit outcomes only; not applied"
    e = effect(c, t, relative=p.relative, alpha=exp.alpha, tuning=tuning)
    status, more = _primary_status(e, p.higher_is_better, st.units)
    return MetricResult(
        p.outcome,
        "primary",
        p.per,
        p.higher_is_better,
        p.relative,
        None,
        e,
        status,
        more,
        method,
        note,
    )


def _guardrail(
    con: Any,
    exp: Experiment,
    arms: dict[str, _Arm],
    share: float,
    st: StageResult,
    tuning: float,
    g: Guardrail,
    last: int,
    seed: int,
) -> MetricResult:
    name = g.name
    if name in QUANTILES:
        e = quantile_effect(
            arms["control"].latency,
            arms["treatment"].latency,
            QUANTILES[name],
            relative=g.relative,
            alpha=exp.alpha,
            tuning=tuning,
            seed=seed,
        )
        method = "unit bootstrap (400 Poisson replicates)"
    else:
        outcome = g.outcome is not None
        c = _summary(arms["control"], name, g.per, last, outcome)
        t = _summary(arms["treatment"], name, g.per, last, outcome)
        e = effect(c, t, relative=g.relative, alpha=exp.alpha, tuning=tuning)
        method = (
            "per-unit mean"
            if name == "requests_per_unit" or (outcome and g.per == "unit")
            else "delta-method ratio"
        )
    status, more = _guard_status(e, g, st.units)
    return MetricResult(
        name,
        "guardrail",
        g.per,
        g.higher_is_better,
        g.relative,
        g.max_increase,
        e,
        status,
        more,
        method,
    )


# -- the decision -----------------------------------------------------------------------
def _pct(x: float) -> str:
    return f"{x * 100:g}%"


def _fmt(m: MetricResult) -> str:
    e = m.effect
    unit = "" if not m.relative else " (relative)"
    return f"{m.name} {e.estimate:+.4g}{unit} [{e.sequential.low:+.4g}, {e.sequential.high:+.4g}]"


def decide(exp: Experiment, st: StageResult) -> Decision:
    s = st.share
    comp = exp.comparative
    later = [x for x in exp.stages if x > s]
    nxt = later[0] if later else None
    final = s >= comp[-1]
    if st.srm_p < exp.srm_alpha or st.mixed_units:
        why = []
        if st.srm_p < exp.srm_alpha:
            exp_t = _pct(s)
            got = st.units_treatment / st.units if st.units else 0.0
            why.append(
                f"rollback: assignment is broken: sample ratio mismatch at stage {_pct(s)} "
                f"(p = {st.srm_p:.2g} < {exp.srm_alpha}): {st.units_treatment} of {st.units} "
                f"units in treatment ({got:.2%}, configured {exp_t}); find the cause (unit id "
                "missing, bots, a crashing arm) before reading any outcome"
            )
        if st.mixed_units:
            why.append(
                f"rollback: assignment is broken: {st.mixed_units} units were served by both "
                f"arms in stage {_pct(s)} (the unit id or the salt is not stable)"
            )
        return Decision("rollback", s, 0.0, tuple(why))
    losses = [m for m in st.metrics if m.loss]
    if losses:
        why = []
        for m in losses:
            if m.role == "primary":
                why.append(f"the primary outcome is significantly worse: {_fmt(m)}")
            else:
                side = "drop" if m.higher_is_better else "increase"
                why.append(
                    f"guardrail {m.name} beyond its margin ({side} ≤ {m.margin:g}): {_fmt(m)}"
                )
        return Decision("rollback", s, 0.0, tuple(why))
    reasons: list[str] = []
    more: list[int] = []
    if st.units < exp.min_units_per_stage:
        need = exp.min_units_per_stage - st.units
        reasons.append(
            f"{st.units} units so far; the stage needs {exp.min_units_per_stage} ({need} more)"
        )
        more.append(need)
    for m in st.metrics:
        if m.role == "guardrail" and m.status == "unresolved":
            hint = f" (about {m.more_units} more units)" if m.more_units else ""
            reasons.append(
                f"guardrail {m.name} not yet within its margin {m.margin:g}: {_fmt(m)}{hint}"
            )
            if m.more_units:
                more.append(m.more_units)
    primary = next(m for m in st.metrics if m.role == "primary")
    if final and primary.status != "better":
        hint = f"; about {primary.more_units} more units to tell" if primary.more_units else ""
        planned = ""
        if st.units >= exp.planned_units:
            planned = (
                f"; the planned {exp.planned_units} units are reached (fixed-horizon "
                f"p = {primary.effect.p_value:.3g}): without a gain, end the experiment"
            )
        reasons.append(
            "final stage: the primary outcome is not yet significantly better: "
            f"{_fmt(primary)}{hint}{planned}"
        )
        if primary.more_units:
            more.append(primary.more_units)
    if reasons:
        return Decision("hold", s, None, tuple(reasons), max(more) if more else None)
    if final:
        return Decision(
            "ship",
            s,
            1.0,
            (
                f"final comparative stage {_pct(s)} passed: {_fmt(primary)}, every guardrail "
                "within its margin; ramp to 100%",
            ),
        )
    return Decision(
        "ramp",
        s,
        nxt,
        (
            f"stage {_pct(s)}: {st.units} units, no guardrail beyond its margin, the primary "
            f"not worse ({_fmt(primary)}); next stage {_pct(nxt or 1.0)}",
        ),
    )


def analyze(
    exp: Experiment, con: Any, *, current: float | None = None, source: str = "", seed: int = 0
) -> Analysis:
    """Analyse every comparative stage in ``con`` (tables ``r`` and ``o``, see
    :mod:`heldout.ab._events`) and decide on ``current`` (default: the highest stage seen)."""
    rows = con.execute(
        "SELECT stage, min(ts), max(ts), count(*) FROM r WHERE stage > 0 AND stage < 1 "
        "GROUP BY stage ORDER BY stage"
    ).fetchall()
    stages = [_stage(con, exp, float(s), float(a), float(b), int(n), seed) for s, a, b, n in rows]
    if not stages:
        from heldout.errors import DataError, Problem

        raise DataError(
            [
                Problem(
                    source or "events",
                    "no request of a comparative stage (a treatment share "
                    "between 0 and 100%) with a unit id; nothing to analyse yet",
                )
            ]
        )
    live = current
    pick = current if current is not None and 0 < current < 1 else stages[-1].share
    st = next((x for x in stages if abs(x.share - pick) < 1e-12), stages[-1])
    d = decide(exp, st)
    if live == 0:
        d = Decision(
            "rollback", st.share, 0.0, ("already rolled back (treatment share 0)", *d.reasons)
        )
    elif live is not None and live >= 1:
        d = Decision("ship", st.share, 1.0, ("already shipped (treatment share 100%)", *d.reasons))
    return Analysis(exp.name, source, stages, d, live_share=live)

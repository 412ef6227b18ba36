"""The verdict case by case, and the guardrail's error rates by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from heldout.metrics import get_metric
from heldout.stats import Comparison, Interval, StatsOptions, compare, paired_proportion_interval
from heldout.verdict import (
    GateResult,
    PowerCheck,
    decide,
    noninferiority_gate,
    slice_gate,
)


def _cmp(
    cand: tuple[float, float, float],
    delta: tuple[float, float, float],
    *,
    higher: bool = True,
    base: tuple[float, float, float] = (0.7, 0.65, 0.75),
) -> Comparison:
    iv = lambda t, m: Interval(t[0], t[1], t[2], 0.95, m)  # noqa: E731
    return Comparison(
        metric="accuracy" if higher else "error_rate",
        n=200,
        higher_is_better=higher,
        base=iv(base, "wilson"),
        candidate=iv(cand, "wilson"),
        delta=iv(delta, "tango-score"),
        p_value=0.001,
        test="mcnemar-exact",
        fixed=40,
        broken=10,
    )


def _gate(
    status_change: tuple[float, float, float], margin: float = 0.02, **kw: object
) -> GateResult:
    return noninferiority_gate(
        "general",
        Interval(*status_change, 0.95, "tango-score"),
        margin,
        100,
        **kw,  # type: ignore[arg-type]
    )


def test_success() -> None:
    v = decide(_cmp((0.97, 0.955, 0.985), (0.27, 0.2, 0.33)), baseline=0.72, success_threshold=0.95)
    assert v.status == "success"
    assert v.exit_code == 0
    assert "clears the bar 0.95" in v.reasons[0]
    assert "delta +0.2700 [+0.2000, +0.3300]" in v.reasons[1]
    assert "40 fixed, 10 broken" in v.reasons[1]


def test_point_clears_bar_but_ci_does_not_is_inconclusive() -> None:
    primary = _cmp((0.96, 0.91, 0.985), (0.26, 0.2, 0.32))
    v = decide(primary, baseline=0.72, success_threshold=0.95)
    assert v.status == "inconclusive"
    assert v.exit_code == 1
    assert "straddles the bar 0.95" in v.reasons[0]
    # teams that pre-registered the point rule get success
    v2 = decide(primary, baseline=0.72, success_threshold=0.95, bar_rule="point")
    assert v2.status == "success"


def test_improved_but_short() -> None:
    v = decide(_cmp((0.83, 0.79, 0.87), (0.13, 0.08, 0.18)), baseline=0.72, success_threshold=0.95)
    assert v.status == "improved_but_short"
    assert "below the bar 0.95" in v.reasons[0]


def test_no_gain_over_base() -> None:
    v = decide(_cmp((0.74, 0.69, 0.79), (0.02, -0.03, 0.07)), baseline=0.6, success_threshold=0.95)
    assert v.status == "no_gain"
    assert v.reasons[0].startswith("no real lift over the base model")


def test_significant_loss_is_named_as_a_regression() -> None:
    v = decide(_cmp((0.55, 0.48, 0.62), (-0.15, -0.21, -0.09)), baseline=0.6, success_threshold=0.9)
    assert v.status == "no_gain"
    assert v.reasons[0].startswith("the candidate is significantly WORSE than the base model")
    assert "-0.1500 [-0.2100, -0.0900] excludes 0 on the losing side" in v.reasons[0]
    assert not any("includes 0 or worse" in r for r in v.reasons)
    # lower is better: an error rate that rose significantly is a regression too
    up = _cmp((0.4, 0.35, 0.45), (0.1, 0.05, 0.15), higher=False, base=(0.3, 0.25, 0.35))
    assert (
        decide(up, baseline=0.3, success_threshold=0.1)
        .reasons[0]
        .startswith("the candidate is significantly WORSE")
    )


def test_no_gain_over_preregistered_baseline() -> None:
    # real lift over a weak base, but not over the best prompt measured before training
    v = decide(_cmp((0.74, 0.70, 0.78), (0.1, 0.05, 0.15)), baseline=0.72, success_threshold=0.9)
    assert v.status == "no_gain"
    assert "pre-registered baseline 0.72" in v.reasons[0]


def test_underpowered_no_gain_is_inconclusive() -> None:
    power = PowerCheck(n=40, n_needed=600, detectable_lift=0.2, min_detectable_lift=0.05)
    v = decide(
        _cmp((0.74, 0.6, 0.85), (0.02, -0.1, 0.14)),
        baseline=0.6,
        success_threshold=0.9,
        power=power,
    )
    assert v.status == "inconclusive"
    assert "too small to detect" in v.reasons[0]
    assert any("below the 600 needed" in w for w in v.warnings)


def test_failed_guardrail_blocks_even_a_success() -> None:
    gate = _gate((-0.17, -0.25, -0.09))
    assert gate.status == "fail"
    v = decide(
        _cmp((0.97, 0.955, 0.985), (0.27, 0.2, 0.33)),
        baseline=0.72,
        success_threshold=0.95,
        gates=[gate],
    )
    assert v.status == "blocked"
    assert v.reasons[0].startswith("guardrail failed: general: change -0.1700")


def test_unresolved_guardrail_is_inconclusive_unless_warn() -> None:
    gate = _gate((-0.01, -0.06, 0.04))
    assert gate.status == "unresolved"
    assert gate.samples_to_resolve is not None
    assert gate.samples_to_resolve > 100
    primary = _cmp((0.97, 0.955, 0.985), (0.27, 0.2, 0.33))
    assert decide(primary, baseline=0.72, success_threshold=0.95, gates=[gate]).status == (
        "inconclusive"
    )
    warn = _gate((-0.01, -0.06, 0.04), unresolved="warn")
    v = decide(primary, baseline=0.72, success_threshold=0.95, gates=[warn])
    assert v.status == "success"
    assert v.warnings
    assert "unresolved guardrail" in v.warnings[0]


def test_fail_rules() -> None:
    change = (-0.04, -0.07, -0.01)  # point below −0.02, CI straddles it
    assert _gate(change).status == "unresolved"
    assert _gate(change, fail_when="point").status == "fail"
    assert _gate((0.0, -0.015, 0.015)).status == "pass"


def test_lower_is_better_metric() -> None:
    # error rate: candidate 0.05 vs base 0.3; lower is better
    primary = _cmp((0.05, 0.03, 0.08), (-0.25, -0.3, -0.2), higher=False, base=(0.3, 0.25, 0.35))
    assert primary.real_gain
    v = decide(primary, baseline=0.28, success_threshold=0.1)
    assert v.status == "success"


def test_slice_gate_gates_every_eligible_slice() -> None:
    spec = get_metric("accuracy")
    y = ["a"] * 60
    base = spec(y, ["a"] * 60)
    cand = spec(y, ["a"] * 30 + ["b"] * 25 + ["a"] * 5)
    opts = StatsOptions()
    en = compare(base, cand, spec, opts, rows=np.arange(0, 30))
    fr = compare(base, cand, spec, opts, rows=np.arange(30, 57))
    de = compare(base, cand, spec, opts, rows=np.arange(57, 60))
    gate = slice_gate("slices[language]", [("en", en), ("fr", fr), ("de", de)], 0.15, 10)
    assert gate.status == "fail"
    assert [(p.label, p.status) for p in gate.parts] == [("en", "pass"), ("fr", "fail")]
    assert "deciding slice fr" in gate.detail
    assert "fr fail" in gate.detail
    assert "en pass" in gate.detail
    assert "1 slice(s) under 10 samples not gated" in gate.detail


def _slice_cmp(delta: tuple[float, float, float], n: int) -> Comparison:
    c = _cmp((0.8, 0.7, 0.9), delta)
    return Comparison(**{**{f: getattr(c, f) for f in c.__slots__}, "n": n})  # type: ignore[arg-type]


def test_slice_gate_is_intersection_union() -> None:
    """A small slice whose interval straddles the margin keeps the gate unresolved even when
    the slice with the worst point estimate passes (the old rule looked at that one only)."""
    worst_point = _slice_cmp((-0.01, -0.03, 0.01), 400)  # passes at margin 0.05
    small = _slice_cmp((0.02, -0.12, 0.16), 25)  # better point estimate, cannot tell
    gate = slice_gate("slices lang", [("lang=en", worst_point), ("lang=fr", small)], 0.05, 20)
    assert gate.status == "unresolved"
    assert {p.label: p.status for p in gate.parts} == {"lang=en": "pass", "lang=fr": "unresolved"}
    assert gate.change.low == pytest.approx(-0.12)  # the deciding slice is the open one
    # the gold set must grow until the small slice resolves: 425 · need(fr) / 25
    need_fr = next(p.samples_to_resolve for p in gate.parts if p.label == "lang=fr")
    assert need_fr is not None
    assert gate.samples_to_resolve == -(-425 * need_fr // 25)
    both_pass = slice_gate(
        "slices lang",
        [("lang=en", worst_point), ("lang=fr", _slice_cmp((0.02, -0.04, 0.08), 25))],
        0.05,
        20,
    )
    assert both_pass.status == "pass"


def test_no_correction_across_gates() -> None:
    """Intersection-union: each gate keeps its own status; a gate without a p-value (no
    eligible slice) changes nothing else (it used to switch Holm off for every gate)."""
    marginal = _gate((0.0, -0.0195, 0.0195))
    strong = _gate((0.05, 0.03, 0.07))
    empty = slice_gate("slices lang", [("lang=xx", _slice_cmp((0.0, -0.5, 0.5), 3))], 0.05, 20)
    assert empty.status == "unresolved"
    assert empty.p_noninferiority is None
    assert [marginal.status, strong.status] == ["pass", "pass"]
    primary = _cmp((0.97, 0.955, 0.985), (0.27, 0.2, 0.33))
    assert (
        decide(
            primary, baseline=0.72, success_threshold=0.95, gates=[marginal, marginal, strong]
        ).status
        == "success"
    )
    v = decide(primary, baseline=0.72, success_threshold=0.95, gates=[marginal, strong, empty])
    assert v.status == "inconclusive"
    assert [r.split(":")[0] for r in v.reasons[:1]] == ["guardrail unresolved"]


@pytest.mark.slow
@pytest.mark.parametrize("n", [100, 400])
def test_gate_rarely_blocks_at_the_margin(n: int) -> None:
    """True drop == margin: the default (CI) rule fails ≤ 5% (≈2.5%), the point rule ≈ 50%."""
    rng = np.random.default_rng(n)
    margin, p_broken, p_fixed = 0.05, 0.12, 0.07  # true change −0.05
    counts = rng.multinomial(n, [p_fixed, p_broken, 1 - p_fixed - p_broken], size=4000)
    fails_ci = fails_point = passes = 0
    for f, b, _ in counts:
        ci = paired_proportion_interval(int(f), int(b), n)
        fails_ci += _gate((ci.estimate, ci.low, ci.high), margin).status == "fail"
        fails_point += (
            _gate((ci.estimate, ci.low, ci.high), margin, fail_when="point").status == "fail"
        )
        passes += _gate((ci.estimate, ci.low, ci.high), margin).status == "pass"
    assert fails_ci / 4000 <= 0.05
    assert fails_point / 4000 > 0.35
    assert passes / 4000 <= 0.05  # a drop of exactly the margin is rarely called non-inferior

"""Gates and the verdict: turn comparisons into ``success``, ``improved_but_short``,
``no_gain``, ``blocked`` or ``inconclusive``, each with the numbers behind it.

A guardrail compares candidate − base on its suite, oriented so that positive is better, and
has three outcomes (non-inferiority with margin ``max_drop``):

- **pass**: the lower CI bound is above −max_drop (non-inferiority shown);
- **fail**: the whole CI lies below −max_drop (``fail_when: ci``, the default), or the point
  estimate does (``fail_when: point``);
- **unresolved**: anything else: the data cannot tell; we say how many samples would.

Why ``ci`` is the default fail rule: at a true drop exactly equal to the tolerated margin, the
point rule blocks about half the time; the CI rule blocks at most (1 − confidence)/2 of the time
(shown by simulation in tests/test_verdict.py). Unresolved never ships: the verdict is then
``inconclusive`` and ``heldout run`` exits non-zero, unless the plan says ``unresolved: warn``.

No multiplicity correction is applied across guardrails, by design: heldout ships only when
*every* gate passes, an intersection–union test (Berger 1982). Shipping a candidate that truly
breaks any one guardrail needs that guardrail's own test to pass wrongly, which happens at most
(1 − confidence)/2 of the time whatever the number of gates; a correction (Holm, Bonferroni)
would only make the rule more conservative. The same rule holds inside a slice guardrail:
every eligible slice is a gate of its own. results.json records the rule
(``stats.gate_rule``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from heldout.errors import HeldoutError
from heldout.stats import Comparison, Interval
from heldout.stats._special import norm_cdf, norm_ppf

__all__ = [
    "GATE_RULE",
    "GatePart",
    "GateResult",
    "PowerCheck",
    "Verdict",
    "VerdictStatus",
    "decide",
    "noninferiority_gate",
    "slice_gate",
]

#: How gates combine, recorded in results.json: ship only if every gate passes; no correction.
GATE_RULE = "intersection-union: every gate (and every eligible slice) must pass; no correction"

VerdictStatus = Literal[
    "success", "improved_but_short", "no_gain", "blocked", "inconclusive", "smoke"
]
GateStatus = Literal["pass", "fail", "unresolved"]
GateKind = Literal["suite", "calibration", "slice", "metric", "judge"]


@dataclass(frozen=True, slots=True)
class GatePart:
    """One slice of a slice guardrail, gated on its own (intersection–union)."""

    label: str
    status: GateStatus
    change: Interval
    n: int
    samples_to_resolve: int | None = None


@dataclass(frozen=True, slots=True)
class GateResult:
    """One guardrail's outcome. ``change`` is oriented so that positive means better."""

    name: str
    kind: GateKind
    status: GateStatus
    change: Interval
    margin: float
    n: int
    fail_when: Literal["point", "ci"] = "ci"
    unresolved: Literal["inconclusive", "warn"] = "inconclusive"
    samples_to_resolve: int | None = None
    p_noninferiority: float | None = None
    detail: str = ""
    parts: tuple[GatePart, ...] = ()
    #: Why this gate is measured and reported but cannot decide the verdict (a judge that
    #: does not agree with the human labels on what it gates); None for a gate that decides.
    untrusted: str | None = None

    @property
    def blocks(self) -> bool:
        return self.status == "fail" and self.untrusted is None

    @property
    def makes_inconclusive(self) -> bool:
        return (
            self.status == "unresolved"
            and self.unresolved == "inconclusive"
            and self.untrusted is None
        )

    def describe(self) -> str:
        c = self.change
        text = (
            f"{self.name}: change {c.estimate:+.4f} [{c.low:+.4f}, {c.high:+.4f}] vs allowed "
            f"drop {self.margin:.4f} (n={self.n}) → {self.status}"
        )
        if self.status == "unresolved":
            more = (
                f"~{self.samples_to_resolve} samples would resolve it"
                if self.samples_to_resolve
                else "more samples will not resolve it at this estimate"
            )
            text += f" ({more})"
        if self.p_noninferiority is not None and not self.parts:
            text += f"; non-inferiority p={self.p_noninferiority:.3g}"
        if self.detail:
            text += f"; {self.detail}"
        if self.untrusted is not None:
            text += f"; NOT GATED: {self.untrusted}"
        return text


def _samples_to_resolve(change: Interval, margin: float, n: int) -> int | None:
    """Samples at which the interval, shrinking as 1/sqrt(n) around the same estimate, would
    clear −margin."""
    half = (change.high - change.low) / 2
    distance = abs(change.estimate + margin)
    if not math.isfinite(half) or half <= 0 or distance < 1e-12:
        return None
    return max(n + 1, math.ceil(n * (half / distance) ** 2))


def noninferiority_gate(
    name: str,
    change: Interval,
    margin: float,
    n: int,
    *,
    kind: GateKind = "suite",
    fail_when: Literal["point", "ci"] = "ci",
    unresolved: Literal["inconclusive", "warn"] = "inconclusive",
    detail: str = "",
) -> GateResult:
    """Three-outcome non-inferiority check of ``change`` (positive = better) at ``margin``."""
    if margin < 0:
        raise HeldoutError(f"{name}: the allowed drop must be ≥ 0, got {margin}")
    if not (math.isfinite(change.low) and math.isfinite(change.high)):
        status: GateStatus = "unresolved"
    elif change.low > -margin:
        status = "pass"
    elif (fail_when == "ci" and change.high < -margin) or (
        fail_when == "point" and change.estimate < -margin
    ):
        status = "fail"
    else:
        status = "unresolved"
    z = norm_ppf(0.5 + change.confidence / 2)
    se = (change.high - change.low) / (2 * z)
    p = (
        norm_cdf(-((change.estimate + margin) / se))
        if se > 0 and math.isfinite(se)
        else (0.0 if change.estimate > -margin else 1.0)
    )
    return GateResult(
        name=name,
        kind=kind,
        status=status,
        change=change,
        margin=margin,
        n=n,
        fail_when=fail_when,
        unresolved=unresolved,
        samples_to_resolve=_samples_to_resolve(change, margin, n)
        if status == "unresolved"
        else None,
        p_noninferiority=p,
        detail=detail,
    )


def slice_gate(
    name: str,
    slices: Sequence[tuple[str, Comparison]],
    margin: float,
    min_size: int,
    *,
    fail_when: Literal["point", "ci"] = "ci",
    unresolved: Literal["inconclusive", "warn"] = "inconclusive",
    kind: GateKind = "slice",
    units: tuple[str, str] = ("slice", "slices"),
) -> GateResult:
    """Every eligible slice (n ≥ ``min_size``) is a non-inferiority gate of its own, combined
    as an intersection–union test: **pass** only when every eligible slice passes, **fail**
    when any fails, **unresolved** otherwise. Smaller slices are listed, not gated.

    ``change`` is the deciding slice's: the worst failing one, else the one whose lower bound
    is lowest (the furthest from passing). ``parts`` holds each slice's own outcome. The same
    rule gates every class of a per-class metric (``kind="metric"``, ``units=("class",
    "classes")``).
    """
    eligible = [(label, c) for label, c in slices if c.n >= min_size]
    tiny = [label for label, c in slices if c.n < min_size]
    note = f"{len(tiny)} slice(s) under {min_size} samples not gated" if tiny else ""
    if not eligible:
        nan = Interval(float("nan"), float("nan"), float("nan"), 0.95, "none")
        return GateResult(
            name,
            kind,
            "unresolved",
            nan,
            margin,
            0,
            fail_when,
            unresolved,
            detail=f"no slice has ≥ {min_size} samples; {note}".rstrip("; "),
        )
    gated = [
        (label, noninferiority_gate(label, c.improvement, margin, c.n, fail_when=fail_when))
        for label, c in eligible
    ]
    parts = tuple(
        GatePart(label, g.status, g.change, g.n, g.samples_to_resolve) for label, g in gated
    )
    failing = [(label, g) for label, g in gated if g.status == "fail"]
    if failing:
        status: GateStatus = "fail"
        label, decisive = min(failing, key=lambda lg: lg[1].change.estimate)
    else:
        status = "pass" if all(g.status == "pass" for _, g in gated) else "unresolved"
        label, decisive = min(gated, key=lambda lg: lg[1].change.low)
    counts = {s: sum(p.status == s for p in parts) for s in ("fail", "unresolved", "pass")}
    summary = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    each = "; ".join(
        f"{p.label} {p.status} {p.change.estimate:+.3f} [{p.change.low:+.3f}, "
        f"{p.change.high:+.3f}] n={p.n}"
        for p in sorted(parts, key=lambda p: ("fail", "unresolved", "pass").index(p.status))
    )
    one, many = units
    detail = f"{len(parts)} {many} gated ({summary}), deciding {one} {label}: {each}"
    need = None
    if status == "unresolved":  # the gold set must grow until the slowest slice resolves
        total = sum(c.n for _, c in slices)
        ratios = [p.samples_to_resolve / p.n for p in parts if p.samples_to_resolve]
        need = math.ceil(total * max(ratios)) if ratios else None
    return GateResult(
        name,
        kind,
        status,
        decisive.change,
        margin,
        decisive.n,
        fail_when,
        unresolved,
        samples_to_resolve=need,
        p_noninferiority=max(g.p_noninferiority or 0.0 for _, g in gated),
        detail=detail + (f"; {note}" if note else ""),
        parts=parts,
    )


@dataclass(frozen=True, slots=True)
class PowerCheck:
    """Whether the gold set can detect the pre-registered minimum lift."""

    n: int
    n_needed: int | None
    detectable_lift: float | None
    min_detectable_lift: float
    #: What the numbers rest on and where it came from, and what the plan assumed before the
    #: run when that differs (so a run and ``plan validate`` never disagree without a reason).
    basis: str = ""

    @property
    def underpowered(self) -> bool:
        return self.n_needed is not None and self.n < self.n_needed


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision, why, and the exit code a CI job gates on (0 only for success)."""

    status: VerdictStatus
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "success" else 1

    @property
    def headline(self) -> str:
        return f"{self.status}: {self.reasons[0]}" if self.reasons else self.status


def _fmt(i: Interval) -> str:
    return f"{i.estimate:.4f} [{i.low:.4f}, {i.high:.4f}]"


def decide(
    primary: Comparison,
    *,
    baseline: float,
    success_threshold: float,
    gates: Sequence[GateResult] = (),
    power: PowerCheck | None = None,
    bar_rule: Literal["ci", "point"] = "ci",
) -> Verdict:
    """The verdict from the primary comparison, the pre-registered numbers and the gates.

    Order: a failed gate blocks; an unresolved gate (policy ``inconclusive``) makes the
    verdict inconclusive; otherwise the primary metric decides. The bar is cleared when the
    candidate's whole CI is on the right side of ``success_threshold`` (``bar_rule: ci``) or
    its point estimate is (``point``); a CI straddling the bar is inconclusive, never a pass.
    """
    hib = primary.higher_is_better
    cand, base, imp = primary.candidate, primary.base, primary.improvement
    lo_good = cand.low if hib else -cand.high  # candidate bound in the "better" direction
    sign = 1 if hib else -1
    reasons: list[str] = []
    warnings: list[str] = []
    test = f"{primary.test}, p={primary.p_value:.3g}"
    if primary.fixed is not None:
        test += f", {primary.fixed} fixed, {primary.broken} broken"
    lift_line = (
        f"{primary.metric}: candidate {_fmt(cand)} vs base {_fmt(base)} on n={primary.n}: "
        f"delta {primary.delta.estimate:+.4f} [{primary.delta.low:+.4f}, "
        f"{primary.delta.high:+.4f}] ({primary.delta.method}; {test})"
    )
    failed = [g for g in gates if g.blocks]
    open_gates = [g for g in gates if g.makes_inconclusive]
    for g in gates:
        if g.untrusted is not None:
            warnings.append("guardrail reported, not gated: " + g.describe())
        elif g.status == "unresolved" and g.unresolved == "warn":
            warnings.append("unresolved guardrail (plan: warn) " + g.describe())
    if power is not None and power.underpowered:
        warnings.append(
            f"gold set of {power.n} samples is below the {power.n_needed} needed to detect a "
            f"lift of {power.min_detectable_lift} at the planned power"
            + (f" (it can detect ~{power.detectable_lift:.3f})" if power.detectable_lift else "")
            + (f"; {power.basis}" if power.basis else "")
        )
    if failed:
        reasons += [f"guardrail failed: {g.describe()}" for g in failed]
        reasons.append(lift_line)
        return Verdict("blocked", reasons, warnings)
    if open_gates:
        reasons += [f"guardrail unresolved: {g.describe()}" for g in open_gates]
        reasons.append(lift_line)
        return Verdict("inconclusive", reasons, warnings)

    beats_base = imp.low > 0
    beats_baseline = sign * (cand.low if hib else cand.high) > sign * baseline
    if not beats_base or not beats_baseline:
        if primary.real_loss:
            reasons.append(
                f"the candidate is significantly WORSE than the base model on {primary.metric}: "
                f"delta {primary.delta.estimate:+.4f} [{primary.delta.low:+.4f}, "
                f"{primary.delta.high:+.4f}] excludes 0 on the losing side"
            )
        elif not beats_base:
            reasons.append(
                f"no real lift over the base model: delta CI [{primary.delta.low:+.4f}, "
                f"{primary.delta.high:+.4f}] includes 0 or worse"
            )
        if not beats_baseline:
            bound = "lower" if hib else "upper"
            reasons.append(
                f"no real gain over the pre-registered baseline {baseline}: candidate CI "
                f"{bound} bound {cand.low if hib else cand.high:.4f}"
            )
        reasons.append(lift_line)
        if power is not None and power.underpowered:
            reasons.insert(
                0,
                "no detectable lift, but the gold set is too small to detect the "
                f"pre-registered lift of {power.min_detectable_lift}",
            )
            return Verdict("inconclusive", reasons, warnings)
        return Verdict("no_gain", reasons, warnings)

    clears = (
        (lo_good >= sign * success_threshold)
        if bar_rule == "ci"
        else (sign * cand.estimate >= sign * success_threshold)
    )
    short = sign * (cand.high if hib else cand.low) < sign * success_threshold
    if bar_rule == "point":
        short = not clears
    bar = f"bar {success_threshold} ({'whole CI' if bar_rule == 'ci' else 'point estimate'})"
    if clears:
        reasons.append(f"candidate {_fmt(cand)} clears the {bar} with a real lift over base")
        reasons.append(lift_line)
        return Verdict("success", reasons, warnings)
    if short:
        reasons.append(f"real lift, but candidate {_fmt(cand)} is below the {bar}")
        reasons.append(lift_line)
        return Verdict("improved_but_short", reasons, warnings)
    reasons.append(
        f"real lift, but the candidate's CI {_fmt(cand)} straddles the {bar}: too few samples "
        "to tell whether it clears it"
    )
    reasons.append(lift_line)
    return Verdict("inconclusive", reasons, warnings)

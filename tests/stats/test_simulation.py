"""The statistics proven by seeded simulation through the public API, as `heldout run` calls it.

Every cell builds metric results with the registered metrics (or their per-sample arrays),
compares them with :func:`heldout.stats.compare` and gates them with the verdict's gate
functions, exactly as ``runner/_gates.py`` does. Binary cells are computed *exactly* (the sum
over every (fixed, broken) outcome), so they carry no Monte Carlo error at all; simulated
cells use enough replications that each assertion sits at least 3 standard errors from its
threshold (the margin is asserted too, so a change that eats it fails loudly).

``python tests/stats/test_simulation.py`` prints the table published in docs/statistics.md.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from functools import cache

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats as sps

from heldout.metrics import MetricOptions, MetricResult, get_metric
from heldout.stats import (
    StatsOptions,
    compare,
    compare_slices,
    paired_proportion_interval,
    paired_t_power,
    paired_t_samples_needed,
    power_of,
    samples_needed,
)
from heldout.stats._intervals import mcnemar_score_p
from heldout.stats._power import noninferiority_pass_chance
from heldout.stats._special import log_factorials
from heldout.verdict import noninferiority_gate, slice_gate

pytestmark = pytest.mark.slow

F64 = npt.NDArray[np.float64]
OPTS = StatsOptions(resamples=200)  # the jackknife, t and score intervals draw no resamples
LABELS = ("neg", "neu", "pos")

# --------------------------------------------------------------------- binary, exactly


def _cells(n: int, p_fixed: float, p_broken: float) -> list[tuple[int, int, float]]:
    """Every (fixed, broken) outcome of n pairs with probability above 1e-12."""
    lf = log_factorials(n)
    f = np.arange(n + 1)[:, None]
    b = np.arange(n + 1)[None, :]
    rest = np.clip(n - f - b, 0, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = (
            lf[n]
            - lf[f]
            - lf[b]
            - lf[rest]
            + f * math.log(p_fixed)
            + b * math.log(p_broken)
            + rest * math.log(1 - p_fixed - p_broken)
        )
    p = np.where(f + b <= n, np.exp(lp), 0.0)
    return [(int(i), int(j), float(p[i, j])) for i, j in np.argwhere(p > 1e-12)]


BINARY_GRID = [
    (pf, pb)
    for pf in (0.01, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3)
    for pb in (0.01, 0.03, 0.05, 0.1, 0.15, 0.2)
]


@cache
def binary_coverage(n: int) -> tuple[float, float, float, float]:
    """Exact coverage of the delta's interval over a grid of (P(fixed), P(broken)) from rare
    (2% discordant) to common (50%) disagreement: mean, min, max, share of cells < 0.94."""
    covs = []
    for pf, pb in BINARY_GRID:
        truth, hit, tot = pf - pb, 0.0, 0.0
        for f, b, p in _cells(n, pf, pb):
            ci = paired_proportion_interval(f, b, n)
            hit += p * (ci.low <= truth <= ci.high)
            tot += p
        covs.append(hit / tot)
    c = np.array(covs)
    return float(c.mean()), float(c.min()), float(c.max()), float(np.mean(c < 0.94))


@cache
def binary_size(n: int) -> dict[float, float]:
    """Exact P(p ≤ α) under no difference, worst over discordance 2%–40%, per α."""
    out = {}
    for alpha in (0.01, 0.05, 0.1):
        worst = 0.0
        for psi in (0.02, 0.05, 0.1, 0.2, 0.4):
            cells = _cells(n, psi / 2, psi / 2)
            tot = sum(p for *_, p in cells)
            rej = sum(p for f, b, p in cells if mcnemar_score_p(f, b) <= alpha)
            worst = max(worst, rej / tot)
        out[alpha] = worst
    return out


def test_compare_gives_the_interval_enumerated_here() -> None:
    """The exact cells use paired_proportion_interval; compare() must give the same."""
    spec = get_metric("exact_match")
    for f, b, n in ((3, 1, 30), (12, 7, 100), (0, 0, 30)):
        base = np.r_[np.zeros(f), np.ones(b), np.ones(n - f - b)]
        cand = np.r_[np.ones(f), np.zeros(b), np.ones(n - f - b)]
        c = compare(_mean("exact_match", base), _mean("exact_match", cand), spec, OPTS)
        ref = paired_proportion_interval(f, b, n)
        assert (c.delta.low, c.delta.high) == (ref.low, ref.high)
        assert c.p_value == mcnemar_score_p(f, b)


@pytest.mark.parametrize("n", [30, 100, 1000])
def test_binary_coverage_exact(n: int) -> None:
    mean, low, _, share = binary_coverage(n)
    # discrete data: coverage oscillates around 95%; with rare discordance at n = 30 the
    # interval over-covers (few discordant pairs), it never falls far below
    assert 0.945 <= mean <= (0.97 if n == 30 else 0.955)
    assert low >= 0.93
    assert share <= 0.05


@pytest.mark.parametrize("n", [30, 100, 1000])
def test_binary_p_values_keep_their_size_exact(n: int) -> None:
    for alpha, size in binary_size(n).items():
        assert size <= 1.1 * alpha, (alpha, size)


# --------------------------------------------------------------------- continuous


def _mean(name: str, values: F64) -> MetricResult:
    return MetricResult(name, float(values.mean()), values)


def _token_f1_like(rng: np.random.Generator, n: int) -> tuple[F64, F64]:
    """Per-sample scores like token F1 / ROUGE: point masses at 0 and 1 plus a continuum."""
    u = rng.random(n)
    base = np.where(u < 0.3, 0.0, np.where(u < 0.6, 1.0, rng.beta(2, 2, n)))
    same = rng.random(n) < 0.25
    cand = np.where(same, base, np.clip(base + rng.normal(0.08, 0.25, n), 0.0, 1.0))
    return base, cand


@cache
def _continuous_truth() -> tuple[float, float]:
    b, c = _token_f1_like(np.random.default_rng(99), 4_000_000)
    d = c - b
    return float(d.mean()), float(d.std())


@cache
def continuous_coverage(n: int, sims: int) -> float:
    truth, _ = _continuous_truth()
    spec = get_metric("token_f1")
    rng = np.random.default_rng(1000 + n)
    hits = 0
    for _ in range(sims):
        b, c = _token_f1_like(rng, n)
        d = compare(_mean("token_f1", b), _mean("token_f1", c), spec, OPTS).delta
        hits += d.low <= truth <= d.high
    return hits / sims


@cache
def continuous_null(n: int, sims: int) -> tuple[float, float]:
    """Rejection rate at 0.05 and the KS p-value of uniformity, under exchangeable pairs."""
    spec = get_metric("token_f1")
    rng = np.random.default_rng(2000 + n)
    ps = []
    for _ in range(sims):
        b, c = _token_f1_like(rng, n)
        swap = rng.random(n) < 0.5  # swapping within pairs makes the true delta exactly 0
        b, c = np.where(swap, c, b), np.where(swap, b, c)
        ps.append(compare(_mean("token_f1", b), _mean("token_f1", c), spec, OPTS).p_value)
    p = np.array(ps)
    return float(np.mean(p <= 0.05)), float(sps.kstest(p, "uniform").pvalue)


def _se(p: float, sims: int) -> float:
    return math.sqrt(p * (1 - p) / sims)


CONTINUOUS_SIMS = 20_000


@pytest.mark.parametrize("n", [30, 100, 1000])
def test_continuous_coverage(n: int) -> None:
    cov = continuous_coverage(n, CONTINUOUS_SIMS)
    se = _se(0.95, CONTINUOUS_SIMS)
    assert 0.94 + 3 * se <= cov <= 0.96 - 3 * se


@pytest.mark.parametrize("n", [30, 1000])
def test_continuous_p_values_are_uniform_under_the_null(n: int) -> None:
    rate, ks = continuous_null(n, 10_000)
    assert abs(rate - 0.05) <= 0.01 - 3 * _se(0.05, 10_000)
    assert ks > 0.001


# --------------------------------------------------------------------- F1-type


def _classify(rng: np.random.Generator, n: int) -> tuple[list[str], list[str], list[str]]:
    """3 labels (50/30/20%), shared hard samples, unparseable outputs (micro F1 ≠ accuracy)."""
    y = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    hard = rng.random(n) < 0.35
    names = np.array([*LABELS, "I cannot tell"], dtype=object)

    def model(easy: float, difficult: float, unparseable: float) -> list[str]:
        ok = np.where(hard, rng.random(n) < difficult, rng.random(n) < easy)
        wrong = (y + rng.integers(1, 3, n)) % 3
        pred = np.where(ok, y, wrong)
        pred = np.where(~ok & (rng.random(n) < unparseable), 3, pred)
        return list(names[pred])

    return list(names[y]), model(0.9, 0.45, 0.3), model(0.93, 0.6, 0.1)


def _f1_results(metric: str, y: list[str], b: list[str], c: list[str]) -> tuple[MetricResult, ...]:
    spec, opts = get_metric(metric), MetricOptions(labels=LABELS)
    return spec(y, b, options=opts), spec(y, c, options=opts)


@cache
def _f1_truth(metric: str) -> float:
    y, b, c = _classify(np.random.default_rng(123), 1_000_000)
    rb, rc = _f1_results(metric, y, b, c)
    return rc.aggregate - rb.aggregate


@cache
def f1_coverage(metric: str, n: int, sims: int) -> float:
    truth = _f1_truth(metric)
    spec = get_metric(metric)
    rng = np.random.default_rng(3000 + n)
    hits = 0
    for _ in range(sims):
        rb, rc = _f1_results(metric, *_classify(rng, n))
        d = compare(rb, rc, spec, OPTS).delta
        hits += d.low <= truth <= d.high
    return hits / sims


@cache
def f1_null(metric: str, n: int, sims: int) -> float:
    spec = get_metric(metric)
    rng = np.random.default_rng(4000 + n)
    rejections = 0
    for _ in range(sims):
        y, b, c = _classify(rng, n)
        swap = rng.random(n) < 0.5
        b2 = [cc if s else bb for bb, cc, s in zip(b, c, swap, strict=True)]
        c2 = [bb if s else cc for bb, cc, s in zip(b, c, swap, strict=True)]
        rejections += compare(*_f1_results(metric, y, b2, c2), spec, OPTS).p_value <= 0.05
    return rejections / sims


F1_SIMS = {30: 12_000, 100: 12_000, 1000: 15_000}


@pytest.mark.parametrize("metric", ["micro_f1", "macro_f1"])
@pytest.mark.parametrize("n", [30, 100, 1000])
def test_f1_coverage(metric: str, n: int) -> None:
    sims = F1_SIMS[n]
    cov = f1_coverage(metric, n, sims)
    assert 0.94 + 2.5 * _se(0.95, sims) <= cov <= 0.96 - 2.5 * _se(0.95, sims), cov


@pytest.mark.parametrize("n", [30, 300])
def test_f1_p_values_keep_their_size(n: int) -> None:
    """Never anti-conservative; at n = 30 the jackknife SE is a little large (rate ≈ 0.04)."""
    rate = f1_null("macro_f1", n, 8_000)
    se = _se(0.05, 8_000)
    assert 0.03 + 3 * se <= rate <= 0.05 + 0.005 - 3 * se, rate


# --------------------------------------------------------------------- gates


def _binary_pairs(rng: np.random.Generator, n: int, pf: float, pb: float) -> tuple[F64, F64]:
    u = rng.random(n)
    base = np.where(u < pf, 0.0, np.where(u < pf + pb, 1.0, (rng.random(n) < 0.8) * 1.0))
    cand = np.where(u < pf, 1.0, np.where(u < pf + pb, 0.0, base))
    return base, cand


@cache
def suite_gate(n: int, margin: float, true_change: float, psi: float, sims: int) -> float:
    """Share of simulated suites whose gate passes (compare + noninferiority_gate)."""
    spec = get_metric("exact_match")
    pf, pb = (psi + true_change) / 2, (psi - true_change) / 2
    rng = np.random.default_rng(5000 + n)
    passes = 0
    for _ in range(sims):
        b, c = _binary_pairs(rng, n, pf, pb)
        cmp = compare(_mean("exact_match", b), _mean("exact_match", c), spec, OPTS)
        passes += noninferiority_gate("suite", cmp.improvement, margin, n).status == "pass"
    return passes / sims


@pytest.mark.parametrize("n", [80, 400])
def test_suite_gate_rarely_passes_a_drop_at_the_margin(n: int) -> None:
    rate = suite_gate(n, 0.05, -0.05, 0.2, 4_000)
    assert rate <= 0.05 - 3 * _se(0.05, 4_000)


@pytest.mark.parametrize(("n", "margin"), [(80, 0.05), (80, 0.1), (400, 0.05)])
def test_resolvability_estimate_matches_simulation(n: int, margin: float) -> None:
    """What validate says a guardrail's chance to pass is, when nothing got worse."""
    sim = suite_gate(n, margin, 0.0, 0.1, 4_000)
    exact = noninferiority_pass_chance(n, margin, discordance=0.1)
    assert abs(sim - exact) <= 4 * _se(exact, 4_000)


SLICE_SIZES = [(200, 40), (300, 120, 30), (150, 100, 60, 40, 25, 20)]


@cache
def slice_gate_at_margin(sizes: tuple[int, ...], margin: float, sims: int) -> float:
    """The smallest slice drops by exactly the margin, the others not at all; the share of
    simulated runs whose slice gate passes (compare_slices + slice_gate, as a run does)."""
    spec = get_metric("exact_match")
    meta = [{"lang": f"s{k}"} for k, size in enumerate(sizes) for _ in range(size)]
    small = int(np.argmin(sizes))
    rng = np.random.default_rng(6000 + sum(sizes))
    passes = 0
    for _ in range(sims):
        parts = [
            _binary_pairs(rng, size, *((0.1, 0.15) if k == small else (0.1, 0.1)))
            for k, size in enumerate(sizes)
        ]
        b = np.concatenate([p[0] for p in parts])
        c = np.concatenate([p[1] for p in parts])
        per = compare_slices(
            meta, ["lang"], _mean("exact_match", b), _mean("exact_match", c), spec, OPTS
        )
        gate = slice_gate("slices lang", [(s.value, s.comparison) for s in per], margin, 20)
        passes += gate.status == "pass"
    return passes / sims


@pytest.mark.parametrize("sizes", SLICE_SIZES)
def test_slice_gate_false_pass_at_the_margin(sizes: tuple[int, ...]) -> None:
    rate = slice_gate_at_margin(tuple(sizes), 0.05, 2_000)
    assert rate <= 0.05 - 3 * _se(0.05, 2_000)


# --------------------------------------------------------------------- power


@cache
def continuous_power(sims: int) -> tuple[int, float, float]:
    """At the n paired_t_samples_needed asks for (with the true SD), the share of runs whose
    delta interval excludes 0 on the good side; and the formula's power there."""
    truth, sd = _continuous_truth()
    lift = truth / 2  # detect half the simulated lift: shrink the candidate's gain
    n = paired_t_samples_needed(lift, sd)
    spec = get_metric("token_f1")
    rng = np.random.default_rng(7000)
    hits = 0
    for _ in range(sims):
        b, c = _token_f1_like(rng, n)
        c = b + (c - b) - (truth - lift)  # same SD, mean difference = lift
        hits += compare(_mean("token_f1", b), _mean("token_f1", c), spec, OPTS).real_gain
    return n, hits / sims, paired_t_power(n, lift, sd)


def test_continuous_power_matches_simulation() -> None:
    n, sim, formula = continuous_power(4_000)
    assert n > 100
    assert formula >= 0.8
    assert abs(sim - formula) <= 4 * _se(0.8, 4_000)


@cache
def binary_power(
    base_rate: float, lift: float, discordance: float, sims: int
) -> tuple[int, float, float]:
    """At the n samples_needed asks for, the share of simulated runs whose delta interval
    (compare, as a run does) excludes 0 on the good side; and the exact power there."""
    n = samples_needed(base_rate, lift, discordance=discordance).n
    spec = get_metric("exact_match")
    rng = np.random.default_rng(8000 + n)
    pf, pb = (discordance + lift) / 2, (discordance - lift) / 2
    hits = 0
    for _ in range(sims):
        b, c = _binary_pairs(rng, n, pf, pb)
        hits += compare(_mean("exact_match", b), _mean("exact_match", c), spec, OPTS).real_gain
    return n, hits / sims, power_of(n, base_rate, lift, discordance=discordance)


@pytest.mark.parametrize(("base_rate", "lift", "discordance"), [(0.7, 0.1, 0.2), (0.5, 0.05, 0.15)])
def test_binary_power_matches_simulation(base_rate: float, lift: float, discordance: float) -> None:
    n, sim, exact = binary_power(base_rate, lift, discordance, 4_000)
    assert exact >= 0.8
    assert abs(sim - exact) <= 4 * _se(0.8, 4_000), (n, sim, exact)


# --------------------------------------------------------------------- the table


def _rows() -> list[tuple[str, str, Callable[[], str]]]:
    rows: list[tuple[str, str, Callable[[], str]]] = []
    for n in (30, 100, 1000):
        rows.append(
            (
                f"binary delta (Tango score), n={n}",
                "exact over 42 (fixed, broken) cells",
                lambda n=n: "mean {:.4f}, min {:.4f}, max {:.4f}, {:.0%} of cells < 0.94".format(
                    *binary_coverage(n)
                ),
            )
        )
        rows.append(
            (
                f"binary p (McNemar score) size, n={n}",
                "exact, worst over discordance 2–40%",
                lambda n=n: ", ".join(f"α={a}: {v:.4f}" for a, v in binary_size(n).items()),
            )
        )
    for n in (30, 100, 1000):
        rows.append(
            (
                f"continuous delta (paired t), n={n}",
                f"{CONTINUOUS_SIMS:,} sims",
                lambda n=n: f"{continuous_coverage(n, CONTINUOUS_SIMS):.4f}",
            )
        )
    for n in (30, 1000):
        rows.append(
            (
                f"continuous p (paired t) under the null, n={n}",
                "10,000 sims",
                lambda n=n: "P(p≤0.05) {:.4f}, KS p {:.3f}".format(*continuous_null(n, 10_000)),
            )
        )
    for metric in ("micro_f1", "macro_f1"):
        for n in (30, 100, 1000):
            rows.append(
                (
                    f"{metric} delta (jackknife t), n={n}",
                    f"{F1_SIMS[n]:,} sims",
                    lambda m=metric, n=n: f"{f1_coverage(m, n, F1_SIMS[n]):.4f}",
                )
            )
    for n in (30, 300):
        rows.append(
            (
                f"macro_f1 p (jackknife t) under the null, n={n}",
                "8,000 sims",
                lambda n=n: f"P(p≤0.05) {f1_null('macro_f1', n, 8_000):.4f}",
            )
        )
    for n in (80, 400):
        rows.append(
            (
                f"suite gate, true drop = margin 0.05, n={n}",
                "4,000 sims",
                lambda n=n: f"false pass {suite_gate(n, 0.05, -0.05, 0.2, 4_000):.4f}",
            )
        )
    for n, m in ((80, 0.05), (80, 0.1), (400, 0.05)):
        rows.append(
            (
                f"suite gate, no drop, n={n}, margin {m} (10% discordant)",
                "4,000 sims vs exact",
                lambda n=n, m=m: (
                    f"pass {suite_gate(n, m, 0.0, 0.1, 4_000):.4f} "
                    f"(exact {noninferiority_pass_chance(n, m, discordance=0.1):.4f})"
                ),
            )
        )
    for sizes in SLICE_SIZES:
        rows.append(
            (
                f"slice gate, smallest slice at the margin, sizes {sizes}",
                "2,000 sims",
                lambda s=sizes: f"false pass {slice_gate_at_margin(tuple(s), 0.05, 2_000):.4f}",
            )
        )
    for args in ((0.7, 0.1, 0.2), (0.5, 0.05, 0.15)):
        rows.append(
            (
                f"binary power at the n it asks for (base {args[0]}, lift {args[1]}, "
                f"discordance {args[2]})",
                "4,000 sims",
                lambda a=args: "n={}, simulated {:.4f}, exact {:.4f}".format(
                    *binary_power(*a, 4_000)
                ),
            )
        )
    rows.append(
        (
            "paired-t power at the n it asks for",
            "4,000 sims",
            lambda: "n={}, simulated {:.4f}, formula {:.4f}".format(*continuous_power(4_000)),
        )
    )
    return rows


if __name__ == "__main__":
    print("| cell | how | result |\n|---|---|---|")
    for name, how, value in _rows():
        print(f"| {name} | {how} | {value()} |", flush=True)
    sys.exit(0)

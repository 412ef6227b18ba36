"""Power against a hand-worked textbook calculation, and the two directions agree."""

from __future__ import annotations

import math

import pytest

from heldout.errors import HeldoutError
from heldout.stats import detectable_lift, power_of, samples_needed


def test_connor_formula_hand_worked() -> None:
    # Connor (1987): n = (z_.975 √ψ + z_.8 √(ψ − δ²))² / δ² with ψ = 0.2, δ = 0.1:
    # (1.959964·0.447214 + 0.841621·0.435890)² / 0.01 = 1.243377² / 0.01 = 154.6 → 155
    from heldout.stats._power import _connor_n, _connor_power

    assert _connor_n(0.2, 0.1, 0.05, 0.8) == pytest.approx(154.6, abs=0.05)
    assert _connor_power(155, 0.2, 0.1, 0.05) == pytest.approx(0.8, abs=0.002)
    # the exact power of the decision rule is a little higher here, so fewer samples do
    r = samples_needed(0.7, 0.1, discordance=0.2)
    assert r.method == "exact"
    assert 135 <= r.n <= 155
    assert r.power >= 0.8
    assert power_of(r.n - 1, 0.7, 0.1, discordance=0.2) < 0.8


def test_exact_power_matches_a_direct_sum() -> None:
    from scipy import stats as sps

    n, pf, pb = 40, 0.2, 0.05
    z = sps.norm.isf(0.025)
    total = 0.0
    for f in range(n + 1):
        for b in range(n + 1 - f):
            if f - b > z * max(f + b, 1) ** 0.5:
                total += sps.multinomial.pmf([f, b, n - f - b], n, [pf, pb, 1 - pf - pb])
    assert power_of(n, 0.5, pf - pb, discordance=pf + pb) == pytest.approx(total, abs=1e-10)


def test_default_discordance_assumes_independent_errors() -> None:
    r = samples_needed(0.72, 0.05)
    assert r.discordance == pytest.approx(0.72 * 0.23 + 0.77 * 0.28)
    # independence is the conservative default: correlated models need fewer samples
    assert samples_needed(0.72, 0.05, discordance=0.1).n < r.n


def test_detectable_lift_inverts_samples_needed() -> None:
    for base, lift in ((0.72, 0.05), (0.5, 0.1), (0.9, 0.05)):
        n = samples_needed(base, lift).n
        found = detectable_lift(n, base)
        assert found == pytest.approx(lift, abs=2e-3)
        assert power_of(n, base, lift) == pytest.approx(0.8, abs=0.01)
        assert power_of(n, base, lift) >= 0.8


def test_bad_inputs() -> None:
    with pytest.raises(HeldoutError, match="lift must be > 0"):
        samples_needed(0.9, 0.2)
    with pytest.raises(HeldoutError, match="discordance must be between"):
        samples_needed(0.5, 0.2, discordance=0.1)


@pytest.mark.parametrize(("lift", "sd"), [(0.05, 0.3), (0.1, 0.25), (0.02, 0.2), (0.03, 0.28)])
def test_paired_t_power_matches_statsmodels(lift: float, sd: float) -> None:
    from statsmodels.stats.power import TTestPower

    from heldout.stats import paired_t_power, paired_t_samples_needed
    from heldout.stats._power import paired_t_detectable_lift

    ref = TTestPower()
    n = paired_t_samples_needed(lift, sd)
    assert n == math.ceil(ref.solve_power(effect_size=lift / sd, alpha=0.05, power=0.8))
    for m in (10, 57, n):
        assert paired_t_power(m, lift, sd) == pytest.approx(ref.power(lift / sd, m, 0.05))
    es = ref.solve_power(nobs=200, alpha=0.05, power=0.8)
    assert paired_t_detectable_lift(200, sd) == pytest.approx(es * sd, rel=1e-4)  # its solver tol


def test_rouge_like_power_is_not_the_binary_formula() -> None:
    """The reported defect: ROUGE-L got the binary formula's 16,698 samples; the paired t with
    the measured SD of differences needs a few hundred (statsmodels agrees)."""
    from statsmodels.stats.power import TTestPower

    from heldout.stats import assess_power

    pa = assess_power("continuous", n=400, lift=0.02, alpha=0.05, power=0.8, paired_sd=0.135)
    ref = math.ceil(TTestPower().solve_power(effect_size=0.02 / 0.135, alpha=0.05, power=0.8))
    assert pa.n_needed == ref
    assert 300 < ref < 400
    assert pa.method == "paired t (noncentral t)"
    missing = assess_power("resampled", n=400, lift=0.02, alpha=0.05, power=0.8)
    assert missing.n_needed is None
    assert "declare stats.paired_sd" in missing.describe()


def test_bad_power_inputs_are_clear_errors() -> None:
    from heldout.stats import paired_t_power

    with pytest.raises(HeldoutError, match="SD of paired differences must be > 0"):
        paired_t_power(50, 0.1, 0.0)
    with pytest.raises(HeldoutError, match="n ≥ 2"):
        paired_t_power(1, 0.1, 0.2)

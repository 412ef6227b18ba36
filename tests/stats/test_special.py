"""Our special functions against scipy.special, which the statistics no longer import."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from heldout.stats._special import binom_half_cdf, log_factorials, norm_cdf, norm_ppf, t_ppf


def test_norm_cdf_matches_ndtr_including_tails() -> None:
    for x in np.concatenate([np.linspace(-38, 8, 2001), [0.0, -1e-9, 1e-9]]):
        want = float(special.ndtr(x))
        assert norm_cdf(float(x)) == pytest.approx(want, rel=1e-11, abs=1e-300)


def test_norm_ppf_matches_ndtri() -> None:
    ps = np.concatenate([np.logspace(-300, -1, 600), np.linspace(0.01, 0.99, 981)])
    ps = np.concatenate([ps, 1 - np.logspace(-15, -1, 100)])
    for p in ps:
        assert norm_ppf(float(p)) == pytest.approx(float(special.ndtri(p)), rel=1e-12)
    assert norm_ppf(0.0) == -math.inf
    assert norm_ppf(1.0) == math.inf
    assert math.isnan(norm_ppf(-0.1))
    assert math.isnan(norm_ppf(1.5))


def test_log_factorials_match_gammaln() -> None:
    for n in (0, 1, 2, 10, 1000, 200_000):
        got = log_factorials(n)
        want = special.gammaln(np.arange(n + 1) + 1.0)
        assert got.shape == (n + 1,)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 5, 30, 101, 1000, 20_000])
def test_binom_half_cdf_matches_bdtr(n: int) -> None:
    for k in sorted({0, 1, n // 3, n // 2 - 1, n // 2, n - 1, n} - {-1}):
        want = float(special.bdtr(k, n, 0.5))
        assert binom_half_cdf(k, n) == pytest.approx(want, rel=1e-9, abs=1e-300)


def test_binom_half_cdf_edges() -> None:
    assert binom_half_cdf(-1, 10) == 0.0
    assert binom_half_cdf(10, 10) == 1.0
    assert binom_half_cdf(0, 0) == 1.0
    assert binom_half_cdf(0, 2000) == pytest.approx(float(special.bdtr(0, 2000, 0.5)), rel=1e-9)
    with pytest.raises(ValueError, match="n must be"):
        binom_half_cdf(0, -1)


def test_t_ppf_is_stdtrit() -> None:
    for df in (1, 2, 9, 99, 10_000):
        for q in (0.6, 0.975, 0.995):
            assert t_ppf(df, q) == pytest.approx(float(special.stdtrit(df, q)), rel=1e-14)

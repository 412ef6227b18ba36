"""Stable-key assignment: stable, monotone in the ramp, all control on rollback, re-randomised
by a new salt, and a split within binomial error of the target on 1M ids."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from heldout.ab import BUCKETS, assign, bucket


@given(st.text(min_size=1, max_size=40), st.text(max_size=12), st.floats(0, 1), st.floats(0, 1))
def test_stable_and_monotone(unit: str, salt: str, s1: float, s2: float) -> None:
    lo, hi = sorted((s1, s2))
    assert assign(unit, salt, lo) == assign(unit, salt, lo)
    if assign(unit, salt, lo) == "treatment":
        assert assign(unit, salt, hi) == "treatment"  # ramping up never moves a unit back
    assert assign(unit, salt, 0.0) == "control"  # rollback
    assert assign(unit, salt, 1.0) == "treatment"
    assert 0 <= bucket(unit, salt) < BUCKETS


def test_split_within_binomial_error_on_a_million_ids() -> None:
    ids = [f"user-{i}" for i in range(1_000_000)]
    for share in (0.05, 0.10, 0.50):
        k = sum(assign(u, "exp-1", share) == "treatment" for u in ids[:: 1 if share == 0.10 else 4])
        n = len(ids[:: 1 if share == 0.10 else 4])
        assert abs(k - n * share) < 4 * math.sqrt(n * share * (1 - share)), (share, k, n)


def test_a_new_salt_re_randomises() -> None:
    ids = [f"u{i}" for i in range(200_000)]
    one = [assign(u, "salt-a", 0.1) == "treatment" for u in ids]
    two = [assign(u, "salt-b", 0.1) == "treatment" for u in ids]
    both = sum(a and b for a, b in zip(one, two, strict=True))
    # independent: 1% of units in treatment under both salts (SD ≈ 44)
    assert abs(both - 2000) < 4 * math.sqrt(200_000 * 0.01 * 0.99)

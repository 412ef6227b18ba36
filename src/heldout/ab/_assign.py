"""Stable-key assignment: a unit (user or tenant id) always lands in the same arm.

``bucket(unit, salt)`` hashes salt and unit (SHA-256) into one of 10,000 buckets; a unit is
in treatment while its bucket is below the treatment share in basis points. Ramping up only
raises that share, so a unit in treatment at 10% is still in treatment at 25% (the buckets
below 1,000 are below 2,500); a rollback (share 0) sends everyone to control; a new salt
re-randomises every unit.
"""

from __future__ import annotations

import hashlib
from typing import Literal

__all__ = ["BUCKETS", "Arm", "assign", "bucket"]

BUCKETS = 10_000
Arm = Literal["control", "treatment"]


def bucket(unit: str, salt: str) -> int:
    """The unit's bucket in [0, 10,000), fixed for a given salt."""
    digest = hashlib.sha256(f"{salt}\x00{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def assign(unit: str, salt: str, treatment_share: float) -> Arm:
    """The unit's arm when ``treatment_share`` (0–1) of units get the treatment."""
    if not 0.0 <= treatment_share <= 1.0:
        raise ValueError(f"treatment share must be in [0, 1], got {treatment_share}")
    return "treatment" if bucket(unit, salt) < round(treatment_share * BUCKETS) else "control"

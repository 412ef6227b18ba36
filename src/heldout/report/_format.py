"""How reports write numbers."""

from __future__ import annotations

__all__ = ["fmt"]


def fmt(x: float | None, digits: int = 4, signed: bool = False) -> str:
    """A number for humans; missing values say so."""
    if x is None:
        return "n/a"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"

"""Input checks shared by the metric packs: aligned lengths, text predictions, references."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from heldout.errors import MetricInputError

__all__ = ["check_aligned", "text_references"]


def check_aligned(y_true: Sequence[Any], y_pred: Sequence[Any], what: str) -> None:
    """Equal, non-zero lengths; ``what`` names the metrics in the error."""
    if len(y_true) != len(y_pred):
        raise MetricInputError(
            f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}; they must align"
        )
    if not y_true:
        raise MetricInputError(f"no samples: {what} need at least one")


def text_references(y_true: Sequence[Any], y_pred: Sequence[Any], what: str) -> list[list[str]]:
    """Each reference as a non-empty list of strings; predictions must be strings."""
    check_aligned(y_true, y_pred, what)
    refs: list[list[str]] = []
    for i, (t, p) in enumerate(zip(y_true, y_pred, strict=True)):
        if not isinstance(p, str):
            raise MetricInputError(f"prediction {i} is {type(p).__name__}, not a string")
        r = [t] if isinstance(t, str) else t
        if not isinstance(r, list) or not r or not all(isinstance(x, str) for x in r):
            raise MetricInputError(
                f"reference {i} must be a string or a non-empty list of strings, got {t!r}"
            )
        refs.append(r)
    return refs

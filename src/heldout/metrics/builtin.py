"""Importing this module registers heldout's built-in metric packs."""

from heldout.metrics import (
    classification,
    extraction,
    open_text,
    qa,
    structured,
    summarization,
)

__all__ = [
    "classification",
    "extraction",
    "open_text",
    "qa",
    "structured",
    "summarization",
]

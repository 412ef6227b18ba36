"""Importing this module registers heldout's built-in metric packs."""

from heldout.metrics import (
    classification,
    extraction,
    graders,
    open_text,
    qa,
    structured,
    summarization,
)

__all__ = [
    "classification",
    "extraction",
    "graders",
    "open_text",
    "qa",
    "structured",
    "summarization",
]

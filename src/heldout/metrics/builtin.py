"""Importing this module registers heldout's built-in metric packs."""

from heldout.metrics import classification, qa, structured

__all__ = ["classification", "qa", "structured"]

"""Gold-set samples, loaders with integrity checks, prompt templates and the leak check."""

from heldout.data._goldset import iter_samples, load_samples
from heldout.data._leak import (
    LeakHit,
    LeakOptions,
    LeakReport,
    find_leaks,
    iter_train_texts,
    normalize,
)
from heldout.data._readers import detect_format, iter_records, jsonl_lines
from heldout.data._sample import FieldMap, Sample
from heldout.data._template import DEFAULT_TEMPLATE, placeholders, render

__all__ = [
    "DEFAULT_TEMPLATE",
    "FieldMap",
    "LeakHit",
    "LeakOptions",
    "LeakReport",
    "Sample",
    "detect_format",
    "find_leaks",
    "iter_records",
    "iter_samples",
    "iter_train_texts",
    "jsonl_lines",
    "load_samples",
    "normalize",
    "placeholders",
    "render",
]

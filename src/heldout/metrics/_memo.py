"""Share one expensive pass among the metrics computed on the same outputs.

A run scores each model's outputs with several metrics of one family (accuracy and three F1
averages; span precision, recall, F1 and macro F1; ROUGE-1/2/L/Lsum), each of which would parse
or tokenise every output again. :func:`shared` keeps the last few results of such a pass,
keyed by the *identity* of the input sequences, and only for tuples: a tuple cannot change
after it is made, and the entry holds it, so its id cannot be reused while cached. Lists (what
a caller may mutate between calls) are always recomputed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

__all__ = ["shared"]

T = TypeVar("T")

_SIZE = 8
_entries: list[tuple[tuple[Sequence[Any], ...], Hashable, Any]] = []
_lock = threading.Lock()


def shared(inputs: tuple[Sequence[Any], ...], key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()``, or its cached result for the same tuples and ``key``."""
    if not all(isinstance(x, tuple) for x in inputs):
        return compute()
    with _lock:
        for held, k, value in _entries:
            if k == key and all(a is b for a, b in zip(held, inputs, strict=True)):
                return value  # type: ignore[no-any-return]
    value = compute()
    with _lock:
        _entries.insert(0, (inputs, key, value))
        del _entries[_SIZE:]
    return value

"""A run's per-sample rows held as columns: one block per (dataset, model).

A block refers to what the run already holds (sample ids, inputs, targets, the generations'
text) and adds only numpy columns: one float64 array per metric and one flag code per row.
Nothing becomes a per-row dict unless a report or a caller asks for that row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["FLAGS", "SampleBlock", "SampleTable", "flag_code", "flag_names"]

#: The review flags in the order a row lists them; bit ``k`` of a flag code is ``FLAGS[k]``.
#: ``truncated``: the server said the output was cut off at the token limit
#: (``finish_reason: length``).
FLAGS = ("failed", "unparseable", "regression", "fix", "truncated")
_BIT = {name: 1 << k for k, name in enumerate(FLAGS)}


def flag_code(flags: Iterable[str]) -> int:
    code = 0
    for f in flags:
        code |= _BIT.get(f, 0)  # a flag this version does not know keeps its name only
    return code


def flag_names(code: int) -> list[str]:
    return [name for name in FLAGS if code & _BIT[name]]


@dataclass(frozen=True, slots=True)
class SampleBlock:
    """The rows of one dataset and model, aligned by sample.

    ``scores`` maps each metric to its per-sample values; ``missing`` marks, per metric, rows
    that lack it (only blocks read back from arbitrary rows have any). ``flag_lists``, when
    set, keeps each row's flags in the order they were given (rows read back from a file);
    otherwise a row's flags are ``codes`` in ``FLAGS`` order.
    """

    dataset: str
    model: str
    ids: Sequence[str]
    inputs: Sequence[Any]
    targets: Sequence[Any]
    outputs: Sequence[str | None]
    errors: Sequence[str | None]
    metadata: Sequence[Mapping[str, Any]]
    scores: Mapping[str, NDArray[np.float64]]
    codes: NDArray[np.uint8]
    missing: Mapping[str, NDArray[np.bool_]] = field(default_factory=dict)
    flag_lists: Sequence[list[str]] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def where(self, flag: str) -> NDArray[np.intp]:
        """Indices of the rows that carry ``flag``."""
        return np.flatnonzero(self.codes & _BIT[flag])

    def flags(self, i: int) -> list[str]:
        if self.flag_lists is not None:
            return list(self.flag_lists[i])
        return flag_names(int(self.codes[i]))

    def row_scores(self, i: int) -> dict[str, float]:
        return {
            m: float(v[i])
            for m, v in self.scores.items()
            if not (m in self.missing and self.missing[m][i])
        }

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as samples.jsonl stores it."""
        return {
            "dataset": self.dataset,
            "id": self.ids[i],
            "model": self.model,
            "input": self.inputs[i],
            "target": self.targets[i],
            "output": self.outputs[i],
            "error": self.errors[i],
            "metadata": dict(self.metadata[i]),
            "scores": self.row_scores(i),
            "flags": self.flags(i),
        }


@dataclass(frozen=True, slots=True)
class SampleTable:
    """Every row of a run, block by block, in the order samples.jsonl lists them."""

    blocks: tuple[SampleBlock, ...]

    def __len__(self) -> int:
        return sum(len(b) for b in self.blocks)

    def rows(self) -> Iterator[dict[str, Any]]:
        for b in self.blocks:
            for i in range(len(b)):
                yield b.row(i)

    def metrics(self) -> list[str]:
        return sorted({m for b in self.blocks for m in b.scores})

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> SampleTable:
        """Rows as samples.jsonl stores them, in their order (consecutive rows of one
        dataset and model share a block)."""
        groups: list[list[Mapping[str, Any]]] = []
        for r in rows:
            if groups and (groups[-1][0]["dataset"], groups[-1][0]["model"]) == (
                r["dataset"],
                r["model"],
            ):
                groups[-1].append(r)
            else:
                groups.append([r])
        return cls(tuple(_block_of(g) for g in groups))


def _block_of(rows: list[Mapping[str, Any]]) -> SampleBlock:
    names = list(dict.fromkeys(m for r in rows for m in r["scores"]))
    scores = {
        m: np.array([float(r["scores"].get(m, np.nan)) for r in rows], dtype=np.float64)
        for m in names
    }
    missing = {
        m: mask
        for m in names
        if (mask := np.array([m not in r["scores"] for r in rows], dtype=bool)).any()
    }
    flag_lists = [list(r["flags"]) for r in rows]
    return SampleBlock(
        dataset=rows[0]["dataset"],
        model=rows[0]["model"],
        ids=[r["id"] for r in rows],
        inputs=[r["input"] for r in rows],
        targets=[r["target"] for r in rows],
        outputs=[r["output"] for r in rows],
        errors=[r["error"] for r in rows],
        metadata=[r.get("metadata") or {} for r in rows],
        scores=scores,
        codes=np.array([flag_code(f) for f in flag_lists], dtype=np.uint8),
        missing=missing,
        flag_lists=flag_lists,
    )

"""The one exception tree of heldout.

Every error a user can cause derives from :class:`HeldoutError`; its message says what was
wrong, where (file, line, field or YAML path) and how to fix it. The CLI maps any
``HeldoutError`` to exit code 2 ("bad input or configuration")::

    HeldoutError
    ├── PlanError                 the plan (heldout.yaml) is invalid; lists every problem
    ├── LockError                 heldout.lock is missing, unreadable or does not match
    │   └── PlanChangedError      plan or referenced files changed since they were locked
    ├── DataError                 a gold set / training file is malformed; lists every problem
    ├── TemplateError             a prompt template names a field a sample lacks
    ├── UnknownNameError          an unknown metric, backend, suite ...; lists the known ones
    ├── MetricInputError          inputs to a metric are inconsistent (length, type, labels)
    ├── FailedGenerationsError    requests failed after all retries; never scored silently
    └── MissingDependencyError    an optional extra is not installed; names the pip command
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "DataError",
    "FailedGenerationsError",
    "HeldoutError",
    "LockError",
    "MetricInputError",
    "MissingDependencyError",
    "PlanChangedError",
    "PlanError",
    "Problem",
    "TemplateError",
    "UnknownNameError",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found while checking user input.

    ``where`` locates it: a YAML path (``guardrails[2].max_drop``), or ``file:line`` with an
    optional field (``data/gold.jsonl:14: field 'id'``).
    """

    where: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text} (line {self.line})" if self.line is not None else text


class HeldoutError(Exception):
    """Base class of every error heldout raises on bad input or configuration."""


class _ProblemsError(HeldoutError):
    """An error that carries every problem found, not just the first."""

    headline = "problems found"

    def __init__(self, problems: Iterable[Problem], *, source: str = "", more: int = 0) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        self.more = more
        super().__init__(self._render())

    def _render(self) -> str:
        n = len(self.problems) + self.more
        head = f"{self.source}: " if self.source else ""
        lines = [f"{head}{n} {self.headline}:"]
        lines += [f"  - {p}" for p in self.problems]
        if self.more:
            lines.append(f"  ... and {self.more} more (fix these first)")
        return "\n".join(lines)


class PlanError(_ProblemsError):
    """The plan is invalid. ``problems`` holds every problem with its YAML path."""

    headline = "problem(s) in the plan"


class DataError(_ProblemsError):
    """A data file is malformed. ``problems`` name file, line and field."""

    headline = "problem(s) in the data"


class LockError(HeldoutError):
    """The lock file is missing or unreadable."""


class PlanChangedError(LockError):
    """The plan or a file it references changed since ``heldout plan lock``."""

    def __init__(
        self,
        changes: Sequence[str],
        lock_path: str,
        *,
        what: str = "the plan",
        fix: str = "Re-lock with 'heldout plan lock' if the change is intended before training, "
        "or pass --allow-changed-plan to run anyway (the report will say so).",
    ) -> None:
        self.changes = tuple(changes)
        lines = [f"{what} changed since it was locked ({lock_path}):"]
        lines += [f"  - {c}" for c in changes]
        lines.append(fix)
        super().__init__("\n".join(lines))


class TemplateError(HeldoutError):
    """A prompt template could not be rendered for a sample."""


class UnknownNameError(HeldoutError, KeyError):
    """An unknown name (metric, backend, suite ...) was asked for."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(sorted(known))
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known) or '(none)'}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class MetricInputError(HeldoutError, ValueError):
    """Inputs to a metric are inconsistent: lengths, types or labels."""


class MissingDependencyError(HeldoutError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, module: str, extra: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"{module} is not installed; it is needed here. Install it with: "
            f"pip install 'heldout[{extra}]'"
        )


class FailedGenerationsError(HeldoutError):
    """Some requests failed after all retries; the run refuses to score them silently."""

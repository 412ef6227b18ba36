"""The data flywheel: failures from runs, production and your own files become the next
training and evaluation candidates and a labelling queue — never part of the frozen gold set.

:func:`flywheel` is what ``heldout flywheel`` calls; :func:`ingest` what ``heldout flywheel
ingest`` calls. See :mod:`heldout.flywheel._build` for the selection and the outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from heldout.errors import HeldoutError
from heldout.flywheel._build import FlywheelResult, build, leak_filter, stratified
from heldout.flywheel._ingest import IngestResult
from heldout.flywheel._ingest import ingest as _ingest
from heldout.flywheel._sources import Candidate, from_events, from_file, from_run
from heldout.plan import LoadedPlan

__all__ = [
    "Candidate",
    "FlywheelResult",
    "IngestResult",
    "flywheel",
    "from_events",
    "from_file",
    "from_run",
    "gold_unchanged",
    "ingest",
    "leak_filter",
    "stratified",
]


def gold_unchanged(loaded: LoadedPlan) -> str | None:
    """Refuse to go on if the gold set changed since the plan was locked; a warning when the
    plan was never locked (its gold set cannot be verified)."""
    from heldout.plan import default_lock_path, diff_lock, read_lock

    path = default_lock_path(loaded)
    if not path.is_file():
        return (
            "the plan is not locked, so the gold set's integrity cannot be verified (heldout "
            "plan lock); the candidates were still checked against the gold set as it is"
        )
    changed = [c for c in diff_lock(loaded, read_lock(path)) if c.startswith("task.data")]
    if changed:
        raise HeldoutError(
            f"the gold set changed since the lock ({'; '.join(changed)}): the flywheel never "
            "runs against a gold set that is not the locked one; restore it, or lock a new "
            "gold version explicitly"
        )
    return None


def _train_file(loaded: LoadedPlan, train: Path | None) -> Path | None:
    if train is not None:
        return train
    if loaded.plan.train_sample is not None:
        return loaded.resolve(loaded.plan.train_sample.data)
    return None


def flywheel(
    loaded: LoadedPlan,
    *,
    runs: Sequence[Path] = (),
    events: Sequence[Path] = (),
    files: Sequence[Path] = (),
    by: str | None = None,
    train: Path | None = None,
    out: Path,
    n: int = 500,
    cap: int | None = None,
    eval_share: float = 0.2,
    seed: int = 0,
    low_score: float = 0.5,
) -> FlywheelResult:
    """Build the next dataset from failures (see :mod:`heldout.flywheel._build`)."""
    if not (runs or events or files):
        raise HeldoutError("give at least one source: --run, --events or --file")
    warning = gold_unchanged(loaded)
    sources: list[tuple[str, Iterable[Candidate]]] = []
    sources += [(f"run {p.name}", from_run(p, low_score=low_score)) for p in runs]
    sources += [(f"events {p.name}", from_events(p, by=by)) for p in events]
    sources += [(f"file {p.name}", from_file(p)) for p in files]
    result = build(
        sources, gold=loaded.samples, train=_train_file(loaded, train), out=out, n=n, cap=cap,
        eval_share=eval_share, seed=seed,
    )  # fmt: skip
    if warning:
        result.warnings.append(warning)
    return result


def ingest(
    loaded: LoadedPlan, labels: Path, folder: Path, *, train: Path | None = None
) -> IngestResult:
    """Merge graded items from ``labels`` into the candidates in ``folder``."""
    gold_unchanged(loaded)
    return _ingest(labels, folder, gold=loaded.samples, train=_train_file(loaded, train))

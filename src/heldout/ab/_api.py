"""The A/B journey as Python calls; ``heldout ab ...`` calls these."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from heldout.ab._analyze import Analysis, analyze
from heldout.ab._assign import Arm
from heldout.ab._assign import assign as _assign
from heldout.ab._plan import (
    Experiment,
    LoadedExperiment,
    check_ab_lock,
    load_experiment,
    offline_summary,
)
from heldout.ab._store import EventStore, Split
from heldout.errors import HeldoutError

__all__ = ["analyze_experiment", "assign", "live_share", "ramp", "rollback"]


def live_share(loaded: LoadedExperiment) -> float:
    """The treatment share in force: the store's latest split, else the first stage."""
    if loaded.store_path.is_file():
        split = EventStore(loaded.store_path).current_split()
        if split is not None:
            return split.share
    return loaded.experiment.stages[0]


def assign(
    unit_id: str, experiment: Experiment | LoadedExperiment | Path | str, share: float | None = None
) -> Arm:
    """The arm of ``unit_id`` at treatment ``share``. ``experiment`` is an Experiment (default
    share: its first stage), a loaded experiment or the path of an ``ab.yaml`` (default: the
    live share in its event store), or a bare salt (``share`` required)."""
    if isinstance(experiment, str):
        if share is None:
            raise HeldoutError("assign(unit, salt, share): with a bare salt, give the share")
        return _assign(unit_id, experiment, share)
    if isinstance(experiment, Path):
        experiment = load_experiment(experiment)
    if isinstance(experiment, LoadedExperiment):
        s = live_share(experiment) if share is None else share
        return _assign(unit_id, experiment.experiment.salt, s)
    return _assign(unit_id, experiment.salt, experiment.stages[0] if share is None else share)


def _last_decision(store: EventStore, share: float) -> tuple[str, str] | None:
    for _, stage, decision, body in reversed(store.decisions()):
        if abs(stage - share) < 1e-12:
            return decision, body
    return None


def ramp(loaded: LoadedExperiment, *, to: float | None = None, force: bool = False) -> Split:
    """Move to the next stage (or ``to``): only after the analysis of the current stage said
    ramp or ship, unless ``force`` (recorded as forced)."""
    exp = loaded.experiment
    check_ab_lock(loaded)
    store = EventStore(loaded.store_path)
    current = store.current_split()
    share = current.share if current is not None else 0.0
    if to is None:
        later = [s for s in exp.stages if s > share + 1e-12]
        if not later:
            raise HeldoutError(f"already at the last stage ({share * 100:g}%): nothing to ramp to")
        to = later[0]
    if not 0 < to <= 1:
        raise HeldoutError(f"--to is a treatment share in (0, 1], got {to}")
    if to <= share:
        raise HeldoutError(
            f"a ramp only raises the treatment share ({share * 100:g}% now); to lower it, "
            "use 'heldout ab rollback'"
        )
    last = _last_decision(store, share) if current is not None else None
    said = last[0] if last else None
    if not force and current is not None and current.share > 0 and said not in ("ramp", "ship"):
        why = f"the last analysis of this stage said {said}" if said else "no analysis of "
        why += "" if said else f"stage {share * 100:g}% is recorded"
        raise HeldoutError(
            f"{why}; run 'heldout ab analyze' first (it records its decision), or pass "
            "--force to ramp anyway (recorded as forced)"
        )
    reason = f"{'forced ' if force else ''}ramp {share * 100:g}% → {to * 100:g}%"
    if said:
        reason += f" after decision {said}"
    return store.set_split(to, "ramp", reason)


def rollback(loaded: LoadedExperiment, reason: str = "") -> Split:
    """Send every unit to control now (the proxy picks it up within 100 ms)."""
    store = EventStore(loaded.store_path)
    return store.set_split(0.0, "rollback", reason or "manual rollback")


def analyze_experiment(
    path: str | Path,
    *,
    events: str | None = None,
    outcomes: str | None = None,
    share: float | None = None,
    record: bool = True,
    seed: int = 0,
    source: str | None = None,
) -> Analysis:
    """Analyse the experiment at ``path`` on its event store, or on exported ``events``
    (and ``outcomes``) tables; with ``record``, the decision is written into the store."""
    from heldout.ab import _events

    loaded = load_experiment(path)
    exp = loaded.experiment
    lock = check_ab_lock(loaded, require=False)
    splits: list[Split] = []
    if events is not None:
        con = _events.load_files(events, outcomes, exp.outcome_names, share or exp.stages[0])
        live = share
        where = source or events
        store = None
    else:
        if not loaded.store_path.is_file():
            raise HeldoutError(
                f"{loaded.store_path}: no event store yet; start the proxy (heldout ab serve) "
                "or pass --events with exported events"
            )
        store = EventStore(loaded.store_path)
        con = _events.load_store(store)
        splits = store.splits()
        cur = store.current_split()
        live = share if share is not None else (cur.share if cur else None)
        where = source or str(loaded.store_path)
    result = analyze(exp, con, current=live, source=where, seed=seed)
    result.offline = offline_summary(loaded)
    result.lock = lock
    result.splits = [
        {"ts": s.ts, "share": s.share, "action": s.action, "reason": s.reason} for s in splits
    ]
    if record and store is not None:
        d = result.decision
        store.add_decision(
            d.stage, d.decision, json.dumps({"reasons": list(d.reasons), "more": d.more_units})
        )
    return result


def history_rows(loaded: LoadedExperiment) -> dict[str, Any]:
    """Splits and decisions of the experiment, for ``heldout history``."""
    store = EventStore(loaded.store_path) if loaded.store_path.is_file() else None
    lock = check_ab_lock(loaded, require=False) if loaded.lock_path.is_file() else None
    return {
        "experiment": loaded.experiment.name,
        "locked_at": lock.get("locked_at") if lock else None,
        "offline": (lock or {}).get("offline") or offline_summary(loaded),
        "splits": [] if store is None else store.splits(),
        "decisions": [] if store is None else store.decisions(),
    }

"""``heldout.lock``: sha256 of the canonical plan and of every pre-registered file.

The canonical plan is the validated plan dumped as JSON with sorted keys, so key order, comments
and formatting do not change the hash; content does. ``models.candidate`` is left out of the
locked content: the candidate is the product of training and is named after the lock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from heldout._version import __version__
from heldout.errors import LockError, PlanChangedError
from heldout.plan._load import LoadedPlan, referenced_files

__all__ = [
    "LOCK_NAME",
    "LockStatus",
    "canonical_plan",
    "check_lock",
    "default_lock_path",
    "diff_lock",
    "lm_eval_entries",
    "plan_sha256",
    "read_lock",
    "sha256_file",
    "write_lock",
]

LOCK_NAME = "heldout.lock"
LOCK_VERSION = 1
UNLOCKED = ("models.candidate", "models.*.ray", "tracking", "train_sample")


def canonical_plan(loaded: LoadedPlan) -> dict[str, Any]:
    """The locked content of the plan as plain JSON data: not the candidate model (made
    after the lock), where a local model runs (Ray), where runs are logged (tracking), nor
    the training rows scored for the overfitting check (training data changes between
    rounds, and the check is reported, never gated)."""
    data = loaded.plan.model_dump(mode="json", by_alias=True)
    data["models"].pop("candidate", None)
    for spec in data["models"].values():
        if isinstance(spec, dict):
            spec.pop("ray", None)
    data.pop("tracking", None)
    data.pop("train_sample", None)
    return data


def _canonical_bytes(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def plan_sha256(loaded: LoadedPlan) -> str:
    return hashlib.sha256(_canonical_bytes(canonical_plan(loaded))).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_entries(loaded: LoadedPlan) -> dict[str, dict[str, str]]:
    return {
        key: {"path": rel, "sha256": sha256_file(loaded.resolve(rel))}
        for key, rel in referenced_files(loaded.plan).items()
    }


def lm_eval_entries(loaded: LoadedPlan) -> dict[str, dict[str, Any]]:
    """Each lm-eval task the plan guards with: version, config hash and the sha256 of the
    documents used (after limit and the seeded sample). Empty without lm-eval guardrails;
    loading the tasks needs lm-eval and their datasets on this machine."""
    from heldout.plan._model import LmEvalGuardrail

    if not any(isinstance(g, LmEvalGuardrail) for g in loaded.plan.guardrails):
        return {}
    from heldout.harness import harness_guards

    return {t.name: t.lock_entry() for guard in harness_guards(loaded) for t in guard.tasks}


def default_lock_path(loaded: LoadedPlan) -> Path:
    return loaded.root / LOCK_NAME


def write_lock(loaded: LoadedPlan, path: Path | None = None) -> Path:
    """Write the lock next to the plan (or at ``path``); return where it was written."""
    path = path or default_lock_path(loaded)
    body = {
        "lock_version": LOCK_VERSION,
        "heldout_version": __version__,
        "locked_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "plan_file": loaded.path.name,
        "plan_sha256": plan_sha256(loaded),
        "unlocked": list(UNLOCKED),
        "plan": canonical_plan(loaded),
        "files": _file_entries(loaded),
    }
    tasks = lm_eval_entries(loaded)
    if tasks:
        body["lm_eval"] = tasks
    tmp = path.with_suffix(".lock.tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_lock(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise LockError(f"{path}: no lock file; run 'heldout plan lock' before training")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LockError(f"{path}: unreadable lock file ({exc}); re-create it") from None
    if not isinstance(body, dict) or body.get("lock_version") != LOCK_VERSION:
        raise LockError(f"{path}: unknown lock format; re-create it with 'heldout plan lock'")
    return body


def _diff(old: Any, new: Any, path: str, out: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            sub = f"{path}.{key}" if path else key
            if key not in new:
                out.append(f"{sub}: removed (was {json.dumps(old[key])})")
            elif key not in old:
                out.append(f"{sub}: added ({json.dumps(new[key])})")
            else:
                _diff(old[key], new[key], sub, out)
    elif isinstance(old, list) and isinstance(new, list):
        for i, (a, b) in enumerate(zip(old, new, strict=False)):
            _diff(a, b, f"{path}[{i}]", out)
        for i in range(len(new), len(old)):
            out.append(f"{path}[{i}]: removed (was {json.dumps(old[i])})")
        for i in range(len(old), len(new)):
            out.append(f"{path}[{i}]: added ({json.dumps(new[i])})")
    elif old != new:
        out.append(f"{path}: {json.dumps(old)} → {json.dumps(new)}")


def _as_current(locked: Any, loaded: LoadedPlan) -> Any:
    """The locked plan as this version of heldout reads it: a field that a newer heldout
    added with its default is the same plan, not a change. The locked content is validated
    by the current plan model and dumped as the current plan is; if it no longer validates,
    it is compared as it was written (every difference then shows)."""
    from pydantic import ValidationError

    from heldout.plan._model import Plan

    if not isinstance(locked, dict) or not isinstance(locked.get("models"), dict):
        return locked
    data = {**locked, "models": {**locked["models"]}}
    data["models"]["candidate"] = loaded.plan.models.candidate.model_dump(
        mode="json", by_alias=True
    )
    try:
        plan = Plan.model_validate(data)
    except ValidationError:
        return locked
    return canonical_plan(LoadedPlan(plan=plan, path=loaded.path))


def diff_lock(loaded: LoadedPlan, lock: dict[str, Any]) -> list[str]:
    """Human-readable list of what changed since the lock; empty when nothing did."""
    changes: list[str] = []
    if lock.get("plan_sha256") != plan_sha256(loaded):
        locked = _as_current(lock.get("plan", {}), loaded)
        _diff(locked, canonical_plan(loaded), "", changes)
        if not changes and locked is lock.get("plan", {}):
            changes.append("plan content changed (hash differs)")
    old_files: dict[str, dict[str, str]] = lock.get("files", {})
    new_files = referenced_files(loaded.plan)
    for key in sorted(set(old_files) | set(new_files)):
        old = old_files.get(key)
        rel = new_files.get(key)
        if rel is None:
            continue  # the plan diff above already names the removed reference
        current = loaded.resolve(rel)
        if not current.is_file():
            changes.append(f"{key} ({rel}): file is missing")
            continue
        digest = sha256_file(current)
        if old is None:
            changes.append(f"{key} ({rel}): not in the lock")
        elif old.get("sha256") != digest:
            changes.append(
                f"{key} ({rel}): content changed (sha256 {old.get('sha256', '')[:12]}… → "
                f"{digest[:12]}…)"
            )
    old_tasks: dict[str, dict[str, Any]] = lock.get("lm_eval") or {}
    new_tasks = lm_eval_entries(loaded)
    for name in sorted(set(old_tasks) | set(new_tasks)):
        was, now = old_tasks.get(name), new_tasks.get(name)
        if was is None or now is None:
            changes.append(f"lm_eval task {name}: {'added' if was is None else 'removed'}")
            continue
        for key in sorted(set(was) | set(now)):
            if was.get(key) != now.get(key):
                what = {
                    "config_sha256": "task config changed",
                    "docs_sha256": "documents changed (dataset version, limit or sample)",
                    "version": "task version changed",
                    "documents": "documents used",
                    "of": "documents in the task",
                }.get(key, f"{key} changed")
                changes.append(
                    f"lm_eval task {name}: {what} ({json.dumps(was.get(key))} → "
                    f"{json.dumps(now.get(key))})"
                )
    return changes


@dataclass(frozen=True, slots=True)
class LockStatus:
    """What a run records about pre-registration."""

    lock_path: str
    locked: bool
    changes: tuple[str, ...] = field(default_factory=tuple)
    overridden: bool = False
    locked_at: str | None = None
    plan_sha256: str | None = None

    @property
    def matches(self) -> bool:
        return self.locked and not self.changes


def check_lock(
    loaded: LoadedPlan, *, allow_changed: bool = False, lock_path: Path | None = None
) -> LockStatus:
    """Compare the plan with its lock.

    Raises :class:`PlanChangedError` when something changed, unless ``allow_changed``; then the
    returned status has ``overridden=True`` so results and reports can say so. A plan that was
    never locked is allowed and recorded as ``locked=False``.
    """
    path = lock_path or default_lock_path(loaded)
    if not path.is_file():
        return LockStatus(lock_path=str(path), locked=False, plan_sha256=plan_sha256(loaded))
    lock = read_lock(path)
    changes = diff_lock(loaded, lock)
    if changes and not allow_changed:
        raise PlanChangedError(changes, str(path))
    return LockStatus(
        lock_path=str(path),
        locked=True,
        changes=tuple(changes),
        overridden=bool(changes),
        locked_at=lock.get("locked_at"),
        plan_sha256=lock.get("plan_sha256"),
    )

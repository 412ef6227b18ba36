"""The lock: what changes its hash, what does not, and how a changed plan is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from heldout.errors import LockError, PlanChangedError
from heldout.plan import check_lock, diff_lock, load_plan, plan_sha256, read_lock, write_lock


def _lock(project: Path) -> Path:
    return write_lock(load_plan(project / "heldout.yaml"))


def _changes(project: Path) -> list[str]:
    loaded = load_plan(project / "heldout.yaml")
    return diff_lock(loaded, read_lock(project / "heldout.lock"))


def test_lock_contents(project: Path) -> None:
    path = _lock(project)
    body = json.loads(path.read_text())
    assert body["lock_version"] == 1
    assert set(body["files"]) == {
        "task.data",
        "task.prompt",
        "guardrails[0].data",
        "guardrails[1].data",
    }
    assert len(body["files"]["task.data"]["sha256"]) == 64
    assert body["locked_at"].endswith("Z")
    assert body["unlocked"] == ["models.candidate", "models.*.ray", "tracking", "train_sample"]
    assert "candidate" not in body["plan"]["models"]


def test_unchanged_plan_verifies(project: Path) -> None:
    _lock(project)
    assert _changes(project) == []
    status = check_lock(load_plan(project / "heldout.yaml"))
    assert status.matches
    assert not status.overridden


def test_reordered_keys_and_comments_do_not_change_the_hash(project: Path) -> None:
    before = plan_sha256(load_plan(project / "heldout.yaml"))
    _lock(project)
    path = project / "heldout.yaml"
    data = yaml.safe_load(path.read_text())
    reordered = dict(reversed(list(data.items())))
    reordered["task"] = dict(reversed(list(data["task"].items())))
    path.write_text("# reformatted\n" + yaml.safe_dump(reordered, sort_keys=False, indent=4))
    assert plan_sha256(load_plan(path)) == before
    assert _changes(project) == []


def test_changed_threshold_is_named(project: Path) -> None:
    _lock(project)
    path = project / "heldout.yaml"
    path.write_text(path.read_text().replace("success_threshold: 0.85", "success_threshold: 0.8"))
    assert _changes(project) == ["success_threshold: 0.85 → 0.8"]


def test_one_byte_change_in_gold_set_is_detected(project: Path) -> None:
    _lock(project)
    gold = project / "data" / "gold.jsonl"
    raw = bytearray(gold.read_bytes())
    i = raw.index(b"perfectly")
    raw[i] = ord("P")
    gold.write_bytes(bytes(raw))
    (change,) = _changes(project)
    assert change.startswith("task.data (data/gold.jsonl): content changed (sha256 ")


def test_candidate_is_not_locked(project: Path) -> None:
    _lock(project)
    path = project / "heldout.yaml"
    path.write_text(path.read_text().replace("models/lora-v1", "models/lora-v2"))
    assert _changes(project) == []


def test_changed_plan_is_refused_unless_allowed(project: Path) -> None:
    _lock(project)
    path = project / "heldout.yaml"
    path.write_text(path.read_text().replace("max_drop: 0.02}", "max_drop: 0.05}", 1))
    loaded = load_plan(path)
    with pytest.raises(PlanChangedError) as info:
        check_lock(loaded)
    assert info.value.changes == ("guardrails[0].max_drop: 0.02 → 0.05",)
    assert "--allow-changed-plan" in str(info.value)
    status = check_lock(loaded, allow_changed=True)
    assert status.overridden
    assert status.changes == ("guardrails[0].max_drop: 0.02 → 0.05",)


def test_no_lock_is_recorded_not_refused(project: Path) -> None:
    status = check_lock(load_plan(project / "heldout.yaml"))
    assert not status.locked
    assert not status.matches


def test_unreadable_lock(project: Path) -> None:
    (project / "heldout.lock").write_text("{not json")
    with pytest.raises(LockError, match="unreadable lock file"):
        check_lock(load_plan(project / "heldout.yaml"))


def test_added_and_removed_references(project: Path) -> None:
    _lock(project)
    path = project / "heldout.yaml"
    (project / "extra.jsonl").write_text('{"id": 1, "input": "2+2?", "target": "4"}\n')
    text = path.read_text().replace(
        "  - {slices: [language], max_drop: 0.15, min_size: 3}",
        "  - {slices: [language], max_drop: 0.15, min_size: 3}\n"
        "  - {suite: extra, data: extra.jsonl, max_drop: 0.05}",
    )
    path.write_text(text)
    changes = _changes(project)
    assert any(c.startswith("guardrails[3]: added") for c in changes)
    assert "guardrails[3].data (extra.jsonl): not in the lock" in changes


def test_a_lock_from_before_a_new_default_field_still_matches(project: Path) -> None:
    """A newer heldout adds plan fields with defaults (models.<role>.missing, epoch, filter,
    task.label_match ...): a lock written without them is the same plan, and a real change
    is still caught."""
    path = _lock(project)
    body = json.loads(path.read_text())
    old = body["plan"]
    del old["task"]["label_match"]
    del old["models"]["base"]["missing"]
    del old["models"]["base"]["epoch"]
    body["plan_sha256"] = "0" * 64  # its hash was of the older, shorter dump
    path.write_text(json.dumps(body))
    assert _changes(project) == []
    loaded = load_plan(project / "heldout.yaml")
    assert check_lock(loaded).matches
    old["baseline"] = 0.5
    path.write_text(json.dumps(body))
    assert _changes(project) == ["baseline: 0.5 → 0.72"]
    old["retired_field"] = 1  # a lock this version cannot read as a plan: shown as written
    path.write_text(json.dumps(body))
    changes = _changes(project)
    assert "retired_field: removed (was 1)" in changes
    assert 'task.label_match: added ("strict")' in changes
    with pytest.raises(PlanChangedError):
        check_lock(loaded)

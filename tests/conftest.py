from __future__ import annotations

import json
from pathlib import Path

import pytest

from heldout.plan import write_starter


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A starter project (heldout.yaml, prompt, gold set, train file) in a temp folder."""
    write_starter(tmp_path)
    return tmp_path


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path

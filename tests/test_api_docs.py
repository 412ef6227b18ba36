"""docs/api.md is executed, block by block, as a Jupyter kernel runs cells: one namespace,
top-level ``await`` allowed, inside a running event loop (so ``heldout.evaluate`` must work
there too)."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import re
import types
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_page_has_examples() -> None:
    assert len(_blocks()) >= 8


def test_api_page_runs_like_a_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    namespace: dict[str, object] = {"__name__": "__notebook__"}
    printed = io.StringIO()

    async def kernel() -> None:
        for i, source in enumerate(_blocks()):
            code = compile(
                source, f"{DOC}:block{i + 1}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
            )
            with contextlib.redirect_stdout(printed):
                result = eval(code, namespace)
                if isinstance(result, types.CoroutineType):
                    await result

    asyncio.run(kernel())
    out = printed.getvalue()
    assert "inconclusive 1" in out
    assert "smoke run: not a verdict (3 of 12 gold samples, --limit 3)" in out
    assert "primary_metric" in out  # the PlanError names the field
    assert "(a Plan object built in Python)" in out

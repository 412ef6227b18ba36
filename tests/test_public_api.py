"""The public API is what __all__ lists, and importing heldout stays light."""

from __future__ import annotations

import subprocess
import sys

import heldout
import heldout.data
import heldout.metrics
import heldout.plan


def test_all_is_honest() -> None:
    for module in (heldout, heldout.data, heldout.metrics, heldout.plan):
        assert sorted(module.__all__) == sorted(set(module.__all__))
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name} is in __all__ but missing"


def test_import_is_light() -> None:
    code = (
        "import sys, heldout, heldout.cli; "
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'duckdb', 'openai', 'pyarrow', "
        "'sklearn') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_error_derives_from_heldout_error() -> None:
    import inspect

    from heldout import errors

    classes = [
        c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__
    ]
    assert classes
    for cls in classes:
        if cls is not errors.Problem:
            assert issubclass(cls, errors.HeldoutError), cls

"""One registry of backends: plan model spec → Backend instance (heavy ones imported lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from heldout.backends._base import Backend
from heldout.backends._mock import MockBackend
from heldout.errors import UnknownNameError
from heldout.plan import FileModel, HFModel, MockModel, OpenAIModel

__all__ = ["BACKEND_NAMES", "make_backend"]

BACKEND_NAMES = ("file", "hf", "mock", "openai")


def make_backend(spec: Any, *, root: Path, seed: int = 0) -> Backend:
    """Build the backend a plan's model entry describes (paths relative to ``root``)."""
    if isinstance(spec, OpenAIModel):
        from heldout.backends._openai import OpenAIBackend

        return OpenAIBackend(spec, seed=seed)
    if isinstance(spec, HFModel) and spec.ray is not None:
        from heldout.backends._ray import RayHFBackend

        return RayHFBackend(spec, root=root)
    if isinstance(spec, HFModel):
        from heldout.backends._hf import HFBackend

        return HFBackend(spec, root=root)
    if isinstance(spec, FileModel):
        from heldout.backends._file import FileBackend

        return FileBackend(spec, root=root)
    if isinstance(spec, MockModel):
        return MockBackend(spec.name, outputs=spec.outputs, default=spec.default)
    name = getattr(spec, "backend", type(spec).__name__)
    raise UnknownNameError("backend", str(name), BACKEND_NAMES)

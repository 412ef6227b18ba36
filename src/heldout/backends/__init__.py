"""Model backends: OpenAI-compatible servers, local transformers (+PEFT), precomputed files,
and a deterministic mock; plus the response cache. Unknown names raise listing known ones."""

from heldout.backends._base import Backend, Generation, OnResult, Request
from heldout.backends._cache import ResponseCache, cache_key
from heldout.backends._factory import BACKEND_NAMES, make_backend
from heldout.backends._mock import MockBackend

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "Generation",
    "MockBackend",
    "OnResult",
    "Request",
    "ResponseCache",
    "cache_key",
    "make_backend",
]

"""The Backend protocol and the request/generation records every backend shares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Backend", "Generation", "OnResult", "Request"]


@dataclass(frozen=True, slots=True)
class Request:
    """One prompt for one sample. ``choices`` asks for per-label log-probabilities."""

    sample_id: str
    prompt: str
    choices: tuple[str, ...] | None = None


@dataclass(slots=True)
class Generation:
    """What a model returned for one request (or why it failed), as persisted."""

    sample_id: str
    text: str | None
    error: str | None = None
    latency_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    choice_logprobs: dict[str, float] | None = None
    attempts: int = 1
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: The model's probability for its own answer, when a source gives only that (a file's
    #: ``confidence`` column); label probabilities (``choice_logprobs``) take precedence.
    confidence: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None

    def to_json(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies every field, a hot spot at thousands/s
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Generation:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


OnResult = Callable[[Generation], None]


class Backend(Protocol):
    """A source of model outputs.

    ``identity`` names everything that changes outputs (backend, model, adapter, sampling
    parameters): it keys the response cache. ``generate`` must call ``on_result`` once per
    request, as soon as that request finishes (success or final failure), so callers can
    persist each result before the next arrives.
    """

    def identity(self) -> dict[str, Any]: ...

    def generate(self, requests: Sequence[Request], on_result: OnResult) -> Awaitable[None]: ...

    def close(self) -> Awaitable[None]: ...

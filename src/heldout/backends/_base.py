"""The Backend protocol and the request/generation records every backend shares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["Backend", "Generation", "OnResult", "Request"]


@dataclass(frozen=True, slots=True)
class Request:
    """One prompt for one sample. ``choices`` asks for per-label log-probabilities.

    lm-evaluation-harness tasks add two things (``heldout.harness``): a ``loglikelihood``
    request scores ``continuation`` after ``prompt`` (its summed token log-probability and
    whether greedy decoding would produce it) instead of generating; a generation may carry
    its own ``stop`` strings and ``max_tokens`` (the task's ``until`` and ``max_gen_toks``),
    which replace the model's sampling parameters for it. ``raw`` sends the prompt exactly
    as given (lm-eval formats its own prompts: no chat template is applied around them).
    """

    sample_id: str
    prompt: str
    choices: tuple[str, ...] | None = None
    kind: Literal["generate", "loglikelihood"] = "generate"
    continuation: str | None = None
    stop: tuple[str, ...] | None = None
    max_tokens: int | None = None
    raw: bool = False

    def overrides(self) -> dict[str, Any]:
        """The fields beyond prompt and choices that change the output (for the cache key):
        empty for a plain request, so plain requests keep the keys they always had."""
        out: dict[str, Any] = {}
        if self.kind != "generate":
            out["kind"] = self.kind
            out["continuation"] = self.continuation
        if self.stop is not None:
            out["stop"] = list(self.stop)
        if self.max_tokens is not None:
            out["max_tokens"] = self.max_tokens
        if self.raw:
            out["raw"] = True
        return out


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
    #: A ``loglikelihood`` request's answer: log P(continuation | prompt), summed over its
    #: tokens, and whether greedy decoding would have produced the continuation.
    loglikelihood: float | None = None
    is_greedy: bool | None = None

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

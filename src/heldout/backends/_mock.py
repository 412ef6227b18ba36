"""A deterministic, public test double: scripted outputs per sample id or from a function."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from heldout.backends._base import Generation, OnResult, Request

__all__ = ["MockBackend"]


class MockBackend:
    """Returns scripted outputs. Use it in your own tests as heldout does.

    ``outputs`` maps sample id → text; ``fn`` computes the text from the request; ``default``
    answers ids in neither (None makes them fail with a recorded error). ``choice_logprobs``
    maps sample id → label log-probabilities.

    Example::

        backend = MockBackend("fine-tuned", outputs={"s1": "positive"}, default="neutral")
    """

    def __init__(
        self,
        name: str = "mock",
        *,
        outputs: Mapping[str, str] | None = None,
        fn: Callable[[Request], str] | None = None,
        default: str | None = None,
        choice_logprobs: Mapping[str, Mapping[str, float]] | None = None,
        loglikelihood: Callable[[Request], tuple[float, bool]] | None = None,
    ) -> None:
        self.name = name
        self.outputs = dict(outputs or {})
        self.fn = fn
        self.default = default
        self.choice_logprobs = {k: dict(v) for k, v in (choice_logprobs or {}).items()}
        self.loglikelihood = loglikelihood
        self.calls: list[str] = []

    def loglikelihood_support(self) -> str | None:
        """Why this backend cannot score log-likelihood requests (None: it can)."""
        if self.loglikelihood is None:
            return "a mock without a loglikelihood function returns text only"
        return None

    def identity(self) -> dict[str, Any]:
        return {"backend": "mock", "name": self.name}

    async def generate(self, requests: Sequence[Request], on_result: OnResult) -> None:
        for req in requests:
            self.calls.append(req.sample_id)
            if req.kind == "loglikelihood":
                if self.loglikelihood is None:
                    on_result(Generation(req.sample_id, None, error="mock cannot score this"))
                else:
                    ll, greedy = self.loglikelihood(req)
                    on_result(Generation(req.sample_id, "", loglikelihood=ll, is_greedy=greedy))
                continue
            text = self.outputs.get(req.sample_id)
            if text is None and self.fn is not None:
                text = self.fn(req)
            if text is None:
                text = self.default
            lp = self.choice_logprobs.get(req.sample_id) if req.choices else None
            if text is None:
                on_result(Generation(req.sample_id, None, error="mock has no output for this id"))
            else:
                on_result(Generation(req.sample_id, text, choice_logprobs=lp))

    async def close(self) -> None:
        return None

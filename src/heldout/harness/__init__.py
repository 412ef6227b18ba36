"""lm-evaluation-harness tasks as guardrails (``pip install 'heldout[lm-eval]'``).

A guardrail names lm-eval tasks; lm-eval builds the requests, applies its filters and computes
its metrics; heldout sends the requests through the plan's backends (cache, resume, retries,
replicas, rate limits) and compares base and candidate per document, paired::

    guardrails:
      - {lm_eval: {tasks: [gsm8k, ifeval, mmlu_stem], limit: 500}, max_drop: 0.02}

:func:`heldout_lm` is the bridge: an ``lm_eval.api.model.LM`` answered by heldout, usable on
its own with ``lm_eval.simple_evaluate(model=heldout_lm(backend_responder(backend)), ...)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from heldout.backends import Backend, Generation, Request
from heldout.harness._score import GuardScores, Responder, heldout_lm, score_guard
from heldout.harness._tasks import (
    LM_EVAL_BINARY,
    HarnessGuard,
    HarnessTask,
    harness_guards,
    load_guard,
    loglikelihood_problem,
)

__all__ = [
    "LM_EVAL_BINARY",
    "GuardScores",
    "HarnessGuard",
    "HarnessTask",
    "Responder",
    "backend_responder",
    "harness_guards",
    "heldout_lm",
    "load_guard",
    "loglikelihood_problem",
    "score_guard",
]


def backend_responder(backend: Backend) -> Responder:
    """Answers lm-eval's requests with a heldout backend, synchronously (one event loop per
    batch of requests lm-eval sends; no cache: use ``heldout run`` for cached, resumable
    runs)."""

    def respond(requests: Sequence[Request]) -> dict[str, Generation]:
        out: dict[str, Generation] = {}

        async def go() -> None:
            try:
                await backend.generate(requests, lambda g: out.__setitem__(g.sample_id, g))
            finally:
                await backend.close()

        asyncio.run(go())
        return out

    return respond

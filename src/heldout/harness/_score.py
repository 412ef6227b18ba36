"""Scoring through lm-eval itself: an ``lm_eval.api.model.LM`` whose answers come from heldout.

:func:`heldout_lm` wraps any source of heldout :class:`Generation` results as an lm-eval model;
:func:`score_guard` hands it, with the tasks heldout loaded, to lm-eval's own ``evaluate``
(per-sample logging on), so lm-eval applies its filters and computes its metrics, and heldout
reads back one score per document.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from heldout.backends import Generation, Request
from heldout.errors import FailedGenerationsError, HeldoutError
from heldout.harness._tasks import HarnessGuard, HarnessTask, quiet_lm_eval, to_request

__all__ = ["GuardScores", "heldout_lm", "score_guard"]

#: Answers heldout's requests: request ids → generations (any order, every id present).
Responder = Callable[[Sequence[Request]], dict[str, Generation]]


def heldout_lm(respond: Responder, *, failed_as_wrong: bool = False) -> Any:
    """An lm-eval model (``lm_eval.api.model.LM``) that answers through ``respond``.

    ``respond`` gets heldout requests (ids ``r0``, ``r1``, ... per call) and returns their
    generations: from a heldout backend (``heldout.harness.backend_responder``) or from the
    answers a run already has. A failed answer raises :class:`FailedGenerationsError`, or with
    ``failed_as_wrong`` answers "" (generation) or -inf (log-likelihood): that document then
    loses, and the caller scores it as wrong.
    """
    from lm_eval.api.model import LM

    def answer(instances: Sequence[Any]) -> list[Generation]:
        reqs = [
            to_request(f"r{i}", inst.request_type, inst.args) for i, inst in enumerate(instances)
        ]
        got = respond(reqs)
        out = []
        for r in reqs:
            g = got.get(r.sample_id)
            if g is None or not g.ok:
                if not failed_as_wrong:
                    why = "no answer" if g is None else g.error
                    raise FailedGenerationsError(f"lm-eval request {r.sample_id}: {why}")
                g = Generation(r.sample_id, None, error="failed")
            out.append(g)
        return out

    class HeldoutLM(LM):  # type: ignore[misc]
        """lm-eval's view of a heldout model."""

        def loglikelihood(self, requests: Any, disable_tqdm: bool = False) -> list[Any]:
            res = []
            for g in answer(requests):
                if g.ok and g.loglikelihood is None:
                    raise HeldoutError(
                        "the backend answered a log-likelihood request without a "
                        "log-probability; it cannot score multiple-choice tasks"
                    )
                ll = g.loglikelihood if g.ok and g.loglikelihood is not None else -math.inf
                res.append((float(ll), bool(g.is_greedy) if g.ok else False))
            return res

        def generate_until(self, requests: Any, disable_tqdm: bool = False) -> list[str]:
            return [(g.text or "") if g.ok else "" for g in answer(requests)]

        def loglikelihood_rolling(self, requests: Any, disable_tqdm: bool = False) -> list[Any]:
            raise HeldoutError("perplexity tasks (loglikelihood_rolling) are not supported")

    return HeldoutLM()


@dataclass(frozen=True, slots=True)
class GuardScores:
    """One model's per-document scores on a guard's tasks, in the guard's document order,
    what each document's answer was (lm-eval's filtered response), and lm-eval's own
    aggregate per task (the mean of those scores, for cross-checking)."""

    scores: np.ndarray
    shown: list[str]
    failed: list[bool]
    aggregates: dict[str, float]


def score_guard(
    guard: HarnessGuard,
    generations: dict[str, Generation],
    *,
    sample_ids: Sequence[str],
    failed_as_wrong: bool = False,
) -> GuardScores:
    """Each document's score from lm-eval's ``evaluate``, fed this model's answers to the
    requests heldout sent (``generations`` by request id). Requests are rebuilt by lm-eval
    with the same few-shot seed, so each is looked up by its content: a request heldout
    never sent is an error, never a guess."""
    from lm_eval.evaluator import evaluate

    by_content: dict[tuple[Any, ...], Generation] = {}
    for t in guard.tasks:
        for r in t.requests:
            g = generations.get(r.sample_id)
            if g is not None:
                by_content[_content(r)] = g

    def respond(reqs: Sequence[Request]) -> dict[str, Generation]:
        out = {}
        for r in reqs:
            g = by_content.get(_content(r))
            if g is None:
                raise HeldoutError(
                    "lm-eval built a request heldout did not send (the task's prompts are not "
                    f"reproducible: {r.prompt[:80]!r}); rerun, and report it if it persists"
                )
            out[r.sample_id] = g
        return out

    wanted = set(sample_ids)
    by_task: dict[str, list[int]] = {}
    for t in guard.tasks:
        by_task[t.name] = [i for i in t.indices if t.doc_id(i) in wanted]
    tasks = {t.name: t for t in guard.tasks if by_task[t.name]}
    for t in tasks.values():  # the same few-shot examples as when the requests were built
        t.task.set_fewshot_seed(seed=guard.guardrail.lm_eval.fewshot_seed)
    lm = heldout_lm(respond, failed_as_wrong=failed_as_wrong)
    with quiet_lm_eval():
        res = evaluate(
            lm=lm,
            task_dict={"tasks": {n: t.task for n, t in tasks.items()}, "groups": {}},
            samples={n: by_task[n] for n in tasks},
            bootstrap_iters=0,
            log_samples=True,
        )
    if res is None:
        raise HeldoutError("lm-eval returned no results")
    value: dict[str, float] = {}
    shown: dict[str, str] = {}
    aggregates: dict[str, float] = {}
    for name, t in tasks.items():
        key = f"{t.metric},{t.filter}"
        agg = res["results"].get(name, {}).get(key)
        if isinstance(agg, int | float):
            aggregates[name] = float(agg)
        for sample in res["samples"][name]:
            if sample["filter"] != t.filter:
                continue
            sid = t.doc_id(int(sample["doc_id"]))
            value[sid] = _number(sample[t.metric], name, t.metric)
            shown[sid] = _shown(t, int(sample["doc_id"]), sample["filtered_resps"])
    failed = []
    for sid in sample_ids:
        task = _task_of(guard, sid)
        ids = task.doc_requests[int(sid.rsplit("/", 1)[1])]
        failed.append(any(not generations[i].ok for i in ids if i in generations))
    worst = 0.0 if guard.higher_is_better else math.inf
    scores = np.array(
        [worst if bad else value[sid] for sid, bad in zip(sample_ids, failed, strict=True)],
        dtype=np.float64,
    )
    return GuardScores(scores, [shown[s] for s in sample_ids], failed, aggregates)


def _content(r: Request) -> tuple[Any, ...]:
    return (r.kind, r.prompt, r.continuation, r.stop, r.max_tokens)


def _task_of(guard: HarnessGuard, sid: str) -> HarnessTask:
    name = sid.rsplit("/", 1)[0]
    return next(t for t in guard.tasks if t.name == name)


def _number(value: Any, task: str, metric: str) -> float:
    if isinstance(value, bool | int | float) and not isinstance(value, complex):
        return float(value)
    raise HeldoutError(
        f"lm-eval's {metric!r} of task {task!r} is not a number per document ({value!r}); "
        "choose a per-document metric with lm_eval.metric"
    )


def _shown(t: HarnessTask, index: int, filtered: Any) -> str:
    """What the model answered, for the report: the filtered text of a generation, the
    choice with the highest log-likelihood of a multiple-choice document."""
    if t.output_type == "generate_until":
        first = filtered[0] if isinstance(filtered, list) and filtered else filtered
        return str(first)
    try:
        lls = [float(x[0]) if isinstance(x, list | tuple) else float(x) for x in filtered]
    except (TypeError, ValueError):
        return str(filtered)
    options = t.choices.get(index) or []
    if not lls:
        return ""
    best = int(np.argmax(lls))
    return options[best].strip() if best < len(options) else str(best)

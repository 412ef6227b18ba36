"""lm-evaluation-harness tasks, loaded once: which documents, which requests, which fingerprint.

lm-eval builds every request (prompt, few-shot context, stop strings, answer choices) exactly
as its own ``evaluate`` does; heldout only chooses the documents (a seeded sample, stratified
by the reference answer, under ``limit``) and records what was used, so that a changed task
or dataset is a changed plan.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from heldout.backends import Request
from heldout.errors import HeldoutError, MissingDependencyError
from heldout.plan import LmEvalGuardrail, LoadedPlan

__all__ = [
    "LM_EVAL_BINARY",
    "HarnessGuard",
    "HarnessTask",
    "harness_guards",
    "load_guard",
    "loglikelihood_problem",
    "quiet_lm_eval",
]

#: lm-eval metrics whose per-document value is 0 or 1 (plan-time power uses the paired test).
LM_EVAL_BINARY = frozenset(
    {"acc", "acc_norm", "exact_match", "prompt_level_strict_acc", "prompt_level_loose_acc"}
)

#: Targets with at most this many distinct values are sampled per value (stratified).
STRATA_MAX = 50


@dataclass(slots=True)
class HarnessTask:
    """One lm-eval task (a leaf: groups are flattened) with the documents heldout uses."""

    name: str
    version: str | None
    output_type: str
    config_sha256: str
    docs_sha256: str
    #: Indices of the documents used, in the task's evaluation split, ascending.
    indices: list[int]
    n_total: int
    metric: str
    filter: str
    higher_is_better: bool
    #: The lm-eval Task object (requests are rebuilt from it, with the same seeds, to score).
    task: Any
    requests: list[Request]
    #: Per document index: the ids of its requests, in lm-eval's order.
    doc_requests: dict[int, list[str]]
    prompts: dict[int, str]
    targets: dict[int, Any]
    choices: dict[int, list[str]] = field(default_factory=dict)

    def doc_id(self, index: int) -> str:
        """The sample id of a document: ``task/index``."""
        return f"{self.name}/{index}"

    def lock_entry(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "output_type": self.output_type,
            "config_sha256": self.config_sha256,
            "docs_sha256": self.docs_sha256,
            "documents": len(self.indices),
            "of": self.n_total,
            "metric": self.metric,
            "filter": self.filter,
        }


@dataclass(slots=True)
class HarnessGuard:
    """The tasks a plan names in one place (a task, or a group flattened to its tasks)."""

    name: str
    tasks: list[HarnessTask]
    guardrail: LmEvalGuardrail

    @property
    def metric(self) -> str:
        return self.tasks[0].metric

    @property
    def higher_is_better(self) -> bool:
        return self.tasks[0].higher_is_better

    @property
    def is_group(self) -> bool:
        return len(self.tasks) > 1 or self.tasks[0].name != self.name

    def requests(self, sample_ids: set[str] | None = None) -> list[Request]:
        """Every request of these documents (all of them when ``sample_ids`` is None)."""
        out: list[Request] = []
        for t in self.tasks:
            for index in t.indices:
                if sample_ids is None or t.doc_id(index) in sample_ids:
                    ids = set(t.doc_requests[index])
                    out += [r for r in t.requests if r.sample_id in ids]
        return out

    @property
    def needs_loglikelihood(self) -> bool:
        return any(t.output_type in ("multiple_choice", "loglikelihood") for t in self.tasks)


@contextlib.contextmanager
def quiet_lm_eval() -> Iterator[None]:
    """The CLI owns the terminal: no progress bars, dataset chatter or INFO logs from lm-eval
    and the datasets library while a task loads or scores."""
    old = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    loggers = [logging.getLogger(n) for n in ("lm_eval", "lm-eval", "datasets", "evaluate")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.suppress(ImportError):
            import datasets

            datasets.disable_progress_bars()
        # tqdm reads TQDM_DISABLE when it is imported: its bars (lm-eval's request building)
        # are written to stderr, which is held here and dropped
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        if old is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = old


def _task_manager(include: tuple[str, ...], defaults: bool) -> Any:
    key = (include, defaults, json.dumps([_folder_stamp(Path(p)) for p in include]))
    if key not in _MANAGERS:
        from lm_eval.tasks import TaskManager

        _MANAGERS[key] = TaskManager(include_path=list(include) or None, include_defaults=defaults)
    return _MANAGERS[key]


_MANAGERS: dict[tuple[tuple[str, ...], bool, str], Any] = {}
_GUARDS: dict[str, list[HarnessGuard]] = {}


def harness_guards(loaded: LoadedPlan) -> list[HarnessGuard]:
    """Every lm-eval guardrail's tasks, loaded once per process and plan content."""
    out: list[HarnessGuard] = []
    for g in loaded.plan.guardrails:
        if isinstance(g, LmEvalGuardrail):
            out += load_guard(g, loaded.root)
    return out


def load_guard(g: LmEvalGuardrail, root: Path) -> list[HarnessGuard]:
    """The tasks of one lm-eval guardrail: one :class:`HarnessGuard` per name it lists."""
    include = tuple(str((root / p).resolve()) for p in g.lm_eval.include_path)
    # an edited task file or its data (in the include folders) is loaded afresh
    stamps = [_folder_stamp(Path(p)) for p in include]
    key = json.dumps([g.model_dump(mode="json"), include, stamps, str(root)], sort_keys=True)
    if key in _GUARDS:
        return _GUARDS[key]
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise MissingDependencyError("lm-evaluation-harness", "lm-eval") from None
    spec = g.lm_eval
    # relative data_files in a task's YAML resolve from the plan's folder, as heldout's paths do
    with quiet_lm_eval(), contextlib.chdir(root):
        manager = _task_manager(include, False) if include else None
        if manager is None or any(n not in manager.all_tasks for n in spec.tasks):
            manager = _task_manager(include, True)
        unknown = [n for n in spec.tasks if n not in manager.all_tasks]
        if unknown:
            raise HeldoutError(
                f"guardrails: lm_eval task(s) {', '.join(map(repr, unknown))} not found in "
                "lm-eval's task zoo"
                + (f" or in include_path ({', '.join(include)})" if include else "")
                + "; check the names with 'lm-eval ls tasks', or put your task YAML's folder "
                "in include_path"
            )
        guards = []
        for name in spec.tasks:
            try:
                loaded = manager.load([name])
            except Exception as exc:  # a task's dataset or config lm-eval could not load
                raise HeldoutError(
                    f"guardrails: lm-eval could not load task {name!r}: "
                    f"{type(exc).__name__}: {exc}. Its dataset must be on this machine (run "
                    "it once with lm-eval while online; heldout never downloads during a run)"
                ) from None
            leaves = _leaves(name, loaded)
            tasks = [_prepare(leaf, loaded["tasks"][leaf], g) for leaf in leaves]
            metrics = {t.metric for t in tasks}
            if len(metrics) > 1:
                raise HeldoutError(
                    f"guardrails: lm-eval group {name!r} mixes metrics "
                    f"({', '.join(sorted(metrics))}): a group is gated on one per-document "
                    "score; list its tasks separately or set lm_eval.metric"
                )
            guards.append(HarnessGuard(name, tasks, g))
    _GUARDS[key] = guards
    return guards


def _folder_stamp(folder: Path) -> list[tuple[str, int, int]]:
    """Names, sizes and modification times of the files under ``folder``."""
    if not folder.is_dir():
        return []
    return [
        (str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns)
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    ]


def _leaves(name: str, loaded: dict[str, Any]) -> list[str]:
    tasks, group_map = loaded["tasks"], loaded.get("group_map", {})
    if name in tasks:
        return [name]
    out: list[str] = []
    for child in group_map.get(name, []):
        out += [c for c in _leaves(child, loaded) if c not in out]
    if not out:
        raise HeldoutError(f"guardrails: lm-eval group {name!r} holds no task")
    return out


def _configure(task: Any, g: LmEvalGuardrail) -> None:
    """What lm-eval's simple_evaluate does to each task before evaluating it."""
    n = g.lm_eval.num_fewshot
    if n is not None:
        if task.get_config("num_fewshot") != 0:
            task.set_config(key="num_fewshot", value=n)
    elif task.get_config("num_fewshot") is None:
        task.set_config(key="num_fewshot", value=0)
    task.set_fewshot_seed(seed=g.lm_eval.fewshot_seed)


def _choose_metric(name: str, task: Any, g: LmEvalGuardrail) -> tuple[str, bool]:
    from lm_eval.api.metrics import mean

    aggregation = task.aggregation()
    higher = task.higher_is_better()
    means = [m for m, fn in aggregation.items() if fn is mean]
    wanted = g.lm_eval.metric
    if wanted is not None:
        if wanted not in aggregation:
            raise HeldoutError(
                f"guardrails: lm_eval.metric {wanted!r} is not a metric of task {name!r} "
                f"(it has {', '.join(aggregation) or 'none'})"
            )
        if wanted not in means:
            raise HeldoutError(
                f"guardrails: task {name!r} aggregates {wanted!r} across documents, not as a "
                "mean of per-document scores, so it cannot be compared per document; choose "
                f"one of {', '.join(means) or '(none)'}"
            )
        return wanted, bool(higher.get(wanted, True))
    if not means:
        raise HeldoutError(
            f"guardrails: task {name!r} has no metric that is a mean of per-document scores "
            f"(it has {', '.join(aggregation) or 'none'}); it cannot be compared per document"
        )
    return means[0], bool(higher.get(means[0], True))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _select(name: str, docs: Sequence[Any], targets: list[str], g: LmEvalGuardrail) -> list[int]:
    """All documents, or under ``limit`` a seeded sample stratified by the reference answer
    (each answer keeps its share, by largest remainders) when there are few distinct ones."""
    n, limit = len(docs), g.lm_eval.limit
    if limit is None or limit >= n:
        return list(range(n))
    rng = np.random.default_rng([g.lm_eval.seed, zlib.crc32(name.encode())])
    strata: dict[str, list[int]] = {}
    for i, t in enumerate(targets):
        strata.setdefault(t, []).append(i)
    if len(strata) > STRATA_MAX:
        return sorted(int(i) for i in rng.choice(n, size=limit, replace=False))
    keys = sorted(strata)
    exact = np.array([len(strata[k]) * limit / n for k in keys])
    take = np.floor(exact).astype(int)
    order = np.argsort(-(exact - take), kind="stable")
    take[order[: limit - int(take.sum())]] += 1
    chosen: list[int] = []
    for k, m in zip(keys, take.tolist(), strict=True):
        members = strata[k]
        chosen += [members[int(j)] for j in rng.choice(len(members), size=m, replace=False)]
    return sorted(chosen)


def _prepare(name: str, task: Any, g: LmEvalGuardrail) -> HarnessTask:
    output_type = str(task.OUTPUT_TYPE)
    if output_type == "loglikelihood_rolling":
        raise HeldoutError(
            f"guardrails: task {name!r} scores perplexity (loglikelihood_rolling): a corpus "
            "measure, not a per-document score heldout can pair; use a generate_until or "
            "multiple_choice task"
        )
    _configure(task, g)
    metric, higher = _choose_metric(name, task, g)
    docs = list(task.eval_docs)
    targets = [_canonical(task.doc_to_target(d)) for d in docs]
    indices = _select(name, docs, targets, g)
    config = task.dump_config()
    if isinstance(config.get("metadata"), dict):
        config["metadata"] = {k: v for k, v in config["metadata"].items() if k != "config_source"}
    digest = hashlib.sha256()
    for i in indices:
        digest.update(f"{i}\x00{_canonical(docs[i])}\n".encode())
    task.build_all_requests(samples=indices, rank=0, world_size=1)
    filters = list(task._filters) if getattr(task, "_filters", None) else []
    names = [getattr(f, "name", "none") for f in filters] or ["none"]
    chosen_filter = g.lm_eval.filter or names[0]
    if chosen_filter not in names:
        raise HeldoutError(
            f"guardrails: lm_eval.filter {chosen_filter!r} is not a filter of task {name!r} "
            f"(it has {', '.join(names)})"
        )
    requests: list[Request] = []
    doc_requests: dict[int, list[str]] = {}
    prompts: dict[int, str] = {}
    choices: dict[int, list[str]] = {}
    for inst in task.instances:
        index = indices[inst.doc_id]
        rid = f"{name}/{index}/{inst.idx}"
        doc_requests.setdefault(index, []).append(rid)
        requests.append(to_request(rid, inst.request_type, inst.args))
        prompts.setdefault(index, str(inst.args[0]))
        if inst.request_type == "loglikelihood":
            choices.setdefault(index, []).append(str(inst.args[1]))
    version = task.VERSION
    return HarnessTask(
        name=name,
        version=None if version is None else str(version),
        output_type=output_type,
        config_sha256=hashlib.sha256(_canonical(config).encode()).hexdigest(),
        docs_sha256=digest.hexdigest(),
        indices=indices,
        n_total=len(docs),
        metric=metric,
        filter=chosen_filter,
        higher_is_better=higher,
        task=task,
        requests=requests,
        doc_requests=doc_requests,
        prompts=prompts,
        targets={i: task.doc_to_target(docs[i]) for i in indices},
        choices=choices,
    )


def to_request(rid: str, request_type: str, args: tuple[Any, ...]) -> Request:
    """A heldout request for one lm-eval instance (``generate_until`` or ``loglikelihood``)."""
    if request_type == "loglikelihood":
        context, continuation = args
        return Request(
            rid, str(context), kind="loglikelihood", continuation=str(continuation), raw=True
        )
    if request_type == "generate_until":
        context, kwargs = args[0], dict(args[1] or {})
        until = kwargs.get("until")
        stops = [until] if isinstance(until, str) else list(until or [])
        max_tokens = kwargs.get("max_gen_toks")
        return Request(
            rid,
            str(context),
            stop=tuple(str(s) for s in stops),
            max_tokens=int(max_tokens) if max_tokens is not None else 256,
            raw=True,
        )
    raise HeldoutError(
        f"lm-eval request type {request_type!r} is not supported (generate_until and "
        "loglikelihood are)"
    )


def loglikelihood_problem(backend: object) -> str | None:
    """Why a backend cannot answer log-likelihood requests (multiple-choice tasks), or None.
    Backends say so with ``loglikelihood_support()``; one that does not say is assumed able."""
    check = getattr(backend, "loglikelihood_support", None)
    return check() if callable(check) else None

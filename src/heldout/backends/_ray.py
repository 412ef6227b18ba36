"""The ``hf`` backend on Ray actors (``pip install 'heldout[ray]'``): past one device.

Each actor builds the ordinary :class:`~heldout.backends._hf.HFBackend` once (model, adapter
and the adapter check). The driver loads only the tokenizer: it orders the requests by length
as the single-process backend does, cuts the same batches and hands them to whichever actor
is free (two batches queued per actor). Every finished batch is reported at once, so it
reaches the response cache and the generations file while the others run: kill -9 and a
resume keep working. An actor that dies (a lost node, an out-of-memory kill) loses only its
unfinished batches, which go to the surviving actors; when no actor is left, the samples not
yet answered fail with the reason.

On a cluster: ``ray start --head`` on one node, ``ray start --address HEAD:6379`` on the
others, and ``RAY_ADDRESS=HEAD:6379`` (or ``ray.address``) where ``heldout run`` runs; every
node needs the same Python environment and the model's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from heldout.backends._base import Generation, OnResult, Request
from heldout.backends._hf import hf_identity, hf_paths, length_order
from heldout.errors import HeldoutError, MissingDependencyError
from heldout.plan import HFModel

__all__ = ["RayHFBackend"]

_QUEUED_PER_ACTOR = 2


class _Worker:
    """Runs on an actor: one HFBackend, batches in, JSON generations out."""

    def __init__(self, spec: dict[str, Any], root: str) -> None:
        from heldout.backends._hf import HFBackend

        self.backend = HFBackend(HFModel.model_validate(spec), root=Path(root))

    def record(self) -> dict[str, Any]:
        return dict(self.backend.record)

    def pid(self) -> int:
        return os.getpid()

    def run(self, batch: list[Request]) -> list[dict[str, Any]]:
        out: list[Generation] = []
        asyncio.run(self.backend.generate(batch, out.append))
        return [g.to_json() for g in out]


class RayHFBackend:
    """Same outputs, cache key and record as ``HFBackend``, generated on ``replicas`` actors."""

    def __init__(self, spec: HFModel, *, root: Path) -> None:
        try:
            import ray
        except ImportError:
            raise MissingDependencyError("ray", "ray") from None
        assert spec.ray is not None
        self.spec = spec
        self.root = root
        self.options = spec.ray
        model_path, _ = hf_paths(spec, root)
        from transformers import AutoTokenizer

        from heldout.backends._hf import quiet_transformers

        quiet_transformers()
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        self._ray = ray
        self._started_ray = False
        if not ray.is_initialized():
            address = self.options.address or os.environ.get("RAY_ADDRESS") or None
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
                configure_logging=False,
            )
            self._started_ray = True
        worker = ray.remote(num_cpus=self.options.num_cpus, num_gpus=self.options.num_gpus)(_Worker)
        spec_json = spec.model_copy(update={"ray": None}).model_dump(mode="json")
        self.actors: list[Any] = [
            worker.remote(spec_json, str(root)) for _ in range(self.options.replicas)
        ]
        try:  # each actor loads the model and checks the adapter before any sample is sent
            records = ray.get([a.record.remote() for a in self.actors])
        except ray.exceptions.RayError as exc:
            self._kill_all()
            raise HeldoutError(f"models: a Ray actor failed to load the model: {exc}") from None
        self.record: dict[str, Any] = {
            **records[0],
            "ray": {"replicas": self.options.replicas, "lost_actors": 0, "rerun_batches": 0},
        }

    def identity(self) -> dict[str, Any]:
        return hf_identity(self.spec, self.root)

    async def generate(self, requests: Sequence[Request], on_result: OnResult) -> None:
        ray = self._ray
        order = length_order(self.tokenizer, requests)
        size = self.spec.batch_size
        todo: deque[list[Request]] = deque(
            [requests[i] for i in order[start : start + size]]
            for start in range(0, len(order), size)
        )
        live = list(self.actors)
        running: dict[asyncio.Future[Any], tuple[Any, list[Request]]] = {}
        queued = dict.fromkeys(map(id, live), 0)

        def submit() -> None:
            for actor in live:
                while todo and queued[id(actor)] < _QUEUED_PER_ACTOR:
                    batch = todo.popleft()
                    ref = actor.run.remote(list(batch))
                    running[asyncio.wrap_future(ref.future())] = (actor, batch)
                    queued[id(actor)] += 1

        stats = self.record["ray"]
        submit()
        while running:
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                actor, batch = running.pop(fut)
                queued[id(actor)] -= 1
                try:
                    results = fut.result()
                except ray.exceptions.RayActorError:
                    if actor in live:
                        live.remove(actor)
                        stats["lost_actors"] += 1
                    todo.appendleft(batch)
                    stats["rerun_batches"] += 1
                    continue
                for g in results:
                    on_result(Generation.from_json(g))
            if not live:  # what the dead actors still held will never come back
                todo.extend(batch for _, batch in running.values())
                break
            submit()
        for batch in todo:  # every actor died: what is left fails, with the reason
            for r in batch:
                on_result(
                    Generation(
                        r.sample_id, None, "every Ray actor of this model died; rerun to resume"
                    )
                )
        todo.clear()

    def _kill_all(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):  # an actor already gone
                self._ray.kill(actor)
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False

    async def close(self) -> None:
        self._kill_all()

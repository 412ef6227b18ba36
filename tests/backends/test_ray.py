"""The hf backend on a local Ray with two CPU actors (tiny model built in the test)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("torch")
pytest.importorskip("transformers")

from heldout.backends import Generation, Request  # noqa: E402
from heldout.backends._factory import make_backend  # noqa: E402
from heldout.backends._hf import HFBackend  # noqa: E402
from heldout.backends._ray import RayHFBackend  # noqa: E402
from heldout.plan import HFModel  # noqa: E402
from tests.backends._collect import collect  # noqa: E402
from tests.backends.test_hf import WORDS, tiny  # noqa: E402, F401

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _spec(replicas: int = 2, **kw: Any) -> HFModel:
    return HFModel.model_validate(
        {
            "backend": "hf",
            "model": "base",
            "adapter": "adapter",
            "batch_size": 2,
            "params": {"max_tokens": 5},
            "ray": {"replicas": replicas, "num_cpus": 1},
            **kw,
        }
    )


def _requests(n: int) -> list[Request]:
    rng = random.Random(1)
    return [
        Request(f"s{i}", " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 25))))
        for i in range(n)
    ]


def test_two_actors_give_the_single_process_outputs_and_cache_key(
    tiny: Path,  # noqa: F811
    local_ray: None,
) -> None:
    reqs = _requests(40)
    single = HFBackend(_spec(ray=None), root=tiny)
    expected = {g.sample_id: g.text for g in collect(single, reqs)}
    backend = make_backend(_spec(), root=tiny)
    assert isinstance(backend, RayHFBackend)
    assert backend.identity() == single.identity()  # the same response cache
    assert backend.record["adapter_applied"] is True  # each actor checked the adapter
    pids = set(ray.get([a.pid.remote() for a in backend.actors]))
    got = collect(backend, reqs)
    assert len(pids) == 2  # two processes, each with its own model
    assert Counter(g.sample_id for g in got) == Counter(r.sample_id for r in reqs)
    assert {g.sample_id: g.text for g in got} == expected


def test_a_killed_actor_loses_no_finished_sample(tiny: Path, local_ray: None) -> None:  # noqa: F811
    reqs = _requests(60)
    expected = {g.sample_id: g.text for g in collect(HFBackend(_spec(ray=None), root=tiny), reqs)}
    backend = RayHFBackend(_spec(), root=tiny)
    victim = backend.actors[0]
    killed: list[int] = []

    def kill_once(out: list[Generation]) -> None:
        if not killed and len(out) >= 6:
            killed.append(len(out))
            ray.kill(victim, no_restart=True)

    got = collect(backend, reqs, then=kill_once)
    assert killed
    ids = Counter(g.sample_id for g in got)
    assert set(ids) == {r.sample_id for r in reqs}
    assert set(ids.values()) == {1}  # nothing reported twice, nothing lost
    assert all(g.ok for g in got)
    assert {g.sample_id: g.text for g in got} == expected
    stats = backend.record["ray"]
    assert stats["lost_actors"] == 1
    assert stats["rerun_batches"] >= 1  # its queued batches went to the other actor


def test_when_every_actor_dies_the_rest_fail_with_the_reason(
    tiny: Path,  # noqa: F811
    local_ray: None,
) -> None:
    backend = RayHFBackend(_spec(replicas=1), root=tiny)

    def kill(out: list[Generation]) -> None:
        if len(out) == 2:
            ray.kill(backend.actors[0], no_restart=True)

    reqs = _requests(30)
    got = collect(backend, reqs, then=kill)
    assert Counter(g.sample_id for g in got) == Counter(r.sample_id for r in reqs)  # all, once
    failed = [g for g in got if not g.ok]
    assert failed
    assert all(
        "every Ray actor of this model died; rerun to resume" in (g.error or "") for g in failed
    )
    assert sum(g.ok for g in got) >= 2  # what finished before stays finished


def test_where_a_model_runs_is_not_part_of_the_lock(tmp_path: Path) -> None:
    from heldout.plan import load_plan
    from heldout.plan._lock import canonical_plan
    from tests.runner.test_run import make_project

    hashes = []
    for ray_block in ("", ", ray: {replicas: 4, num_gpus: 1}"):
        make_project(
            tmp_path,
            models=f"""  base: {{backend: hf, model: base{ray_block}}}
  candidate: {{backend: hf, model: base, adapter: a}}""",
        )
        (tmp_path / "base").mkdir(exist_ok=True)
        (tmp_path / "a").mkdir(exist_ok=True)
        hashes.append(canonical_plan(load_plan(tmp_path / "heldout.yaml")))
    assert hashes[0] == hashes[1]

"""``heldout ab demo``: the production A/B journey end to end, on this machine, simulated.

Two local OpenAI-compatible upstreams stand in for the incumbent (control) and the fine-tune
(treatment); simulated users — seeded — send chat requests through the real proxy, read the
answer and post whether their issue was resolved (the fine-tune's users resolve more often).
After each batch of traffic the experiment is analysed exactly as ``heldout ab analyze`` does
it; a ``ramp`` decision moves to the next stage through ``heldout.ab.ramp``, ``hold`` sends
another batch, ``rollback`` ends it. Everything is labelled a simulation.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from heldout.ab._analyze import Analysis

__all__ = ["DemoStage", "run_ab_demo"]


@dataclass(frozen=True, slots=True)
class DemoStage:
    share: float
    batch: int
    units: int
    requests: int
    decision: str
    reasons: tuple[str, ...]


@dataclass(slots=True)
class DemoResult:
    folder: Path
    stages: list[DemoStage] = field(default_factory=list)
    final: Analysis | None = None
    seconds: float = 0.0
    requests: int = 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _upstream(name: str, port: int, rng: random.Random) -> Any:
    from aiohttp import web

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(0.002 + rng.random() * 0.002)
        text = f"[{name}] here is how to fix it"
        return web.json_response(
            {
                "id": "chatcmpl-demo",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def write_experiment(folder: Path, control: int, treatment: int) -> Path:
    exp = {
        "name": "support-bot-lora-ab",
        "arms": {
            "control": {
                "base_url": f"http://127.0.0.1:{control}/v1",
                "model": "base",
                "price": {"prompt": 0.5, "completion": 1.5},
            },
            "treatment": {
                "base_url": f"http://127.0.0.1:{treatment}/v1",
                "model": "base-lora",
                "price": {"prompt": 0.5, "completion": 1.5},
            },
        },
        "unit": {"kind": "user", "header": "X-Heldout-Unit", "field": "user"},
        "salt": "support-bot-2026-12",
        "stages": [0.05, 0.1, 0.25, 0.5, 1.0],
        "primary": {"outcome": "resolved", "per": "unit", "higher_is_better": True},
        "guardrails": [
            {"metric": "error_rate", "max_increase": 0.02},
            {"metric": "cost_per_request", "max_increase": 0.2, "relative": True},
            {"outcome": "escalated", "per": "unit", "max_increase": 0.05},
        ],
        "min_units_per_stage": 1500,
        "planned_units": 3000,
        "alpha": 0.05,
        "store": "events.sqlite",
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ab.yaml"
    path.write_text(
        "# Simulated A/B experiment written by 'heldout ab demo'\n"
        + yaml.safe_dump(exp, sort_keys=False),
        encoding="utf-8",
    )
    return path


async def _traffic(port: int, units: list[str], rng: random.Random, rates: dict[str, float]) -> int:
    import aiohttp

    sem = asyncio.Semaphore(16)
    sent = 0

    async def user(session: aiohttp.ClientSession, unit: str, k: int, u: float, esc: float) -> None:
        nonlocal sent
        async with sem:
            arm = "control"
            for _ in range(k):
                async with session.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    json={
                        "model": "support-bot",
                        "user": unit,
                        "messages": [{"role": "user", "content": "my order is late"}],
                    },
                ) as resp:
                    await resp.read()
                    arm = resp.headers.get("X-Heldout-Arm", arm)
                    sent += 1
            resolved = u < rates[arm]
            outcomes = [
                {"unit": unit, "name": "resolved", "value": resolved},
                {"unit": unit, "name": "escalated", "value": (not resolved) and esc < 0.3},
            ]
            async with session.post(
                f"http://127.0.0.1:{port}/v1/outcomes", json={"outcomes": outcomes}
            ) as resp:
                await resp.read()

    plan = [(u, 1 + int(rng.random() * 2), rng.random(), rng.random()) for u in units]
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(user(session, u, k, a, b) for u, k, a, b in plan))
    return sent


async def _run(
    folder: Path, seed: int, on_stage: Callable[[DemoStage], None], max_batches: int
) -> DemoResult:
    from heldout.ab._api import analyze_experiment, ramp
    from heldout.ab._plan import load_experiment, write_ab_lock
    from heldout.ab._proxy import Proxy
    from heldout.ab._store import EventStore

    rng = random.Random(seed)
    ports = [_free_port() for _ in range(3)]
    ups = [await _upstream("base", ports[0], rng), await _upstream("lora", ports[1], rng)]
    path = write_experiment(folder, ports[0], ports[1])
    store_file = folder / "events.sqlite"
    for suffix in ("", "-wal", "-shm", ".heldout-journal"):
        Path(f"{store_file}{suffix}").unlink(missing_ok=True)
    loaded = load_experiment(path)
    write_ab_lock(loaded)
    store = EventStore(loaded.store_path)
    proxy = Proxy(loaded, store, seed=seed)
    await proxy.listen("127.0.0.1", ports[2])
    result = DemoResult(folder)
    t0 = time.perf_counter()
    rates = {"control": 0.55, "treatment": 0.65}
    next_unit = 0
    loop = asyncio.get_running_loop()
    try:
        for batch in range(max_batches):
            share = proxy.share
            n = 1500 if share < 0.25 else 1000
            units = [f"user-{i:06d}" for i in range(next_unit, next_unit + n)]
            next_unit += n
            result.requests += await _traffic(ports[2], units, rng, rates)
            proxy.journal.flush()  # the analysis reads the tables from its own store

            def work() -> Analysis:
                return analyze_experiment(path, source="simulation (heldout ab demo)", seed=seed)

            analysis = await loop.run_in_executor(None, work)
            st = next(s for s in analysis.stages if abs(s.share - share) < 1e-12)
            d = analysis.decision
            stage = DemoStage(share, batch + 1, st.units, st.requests, d.decision, d.reasons)
            result.stages.append(stage)
            on_stage(stage)
            result.final = analysis
            if d.decision == "rollback":
                break
            if d.decision in ("ramp", "ship"):
                await loop.run_in_executor(None, lambda: ramp(loaded))
                await asyncio.sleep(0.25)  # the proxy re-reads the split every 100 ms
                if d.decision == "ship":
                    break
    finally:
        await proxy.shutdown()
        for up in ups:
            await up.cleanup()
    result.seconds = time.perf_counter() - t0
    return result


def run_ab_demo(
    folder: Path,
    *,
    seed: int = 0,
    on_stage: Callable[[DemoStage], None] | None = None,
    max_batches: int = 12,
) -> DemoResult:
    """Run the simulated experiment in ``folder``; ``on_stage`` hears each batch's decision."""
    return asyncio.run(_run(folder, seed, on_stage or (lambda s: None), max_batches))

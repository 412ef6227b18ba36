"""Shared pieces of the A/B tests: an experiment file, the proxy in a thread, HTTP calls."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from heldout.ab._plan import LoadedExperiment, load_experiment, write_ab_lock
from heldout.ab._proxy import Proxy
from heldout.ab._store import EventStore


def write_exp(folder: Path, control: str, treatment: str, **over: Any) -> Path:
    exp: dict[str, Any] = {
        "name": "exp",
        "arms": {
            "control": {"base_url": control, "model": "base",
                        "price": {"prompt": 1.0, "completion": 2.0}},
            "treatment": {"base_url": treatment, "model": "lora",
                          "price": {"prompt": 1.0, "completion": 4.0}},
        },
        "salt": "salt-1",
        "stages": [0.5, 1.0],
        "primary": {"outcome": "resolved"},
        "guardrails": [{"metric": "error_rate", "max_increase": 0.02}],
        "min_units_per_stage": 100,
        "planned_units": 1000,
        "store": "events.sqlite",
    }  # fmt: skip
    for key, value in over.items():
        exp[key] = value
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ab.yaml"
    path.write_text(yaml.safe_dump(exp, sort_keys=False), encoding="utf-8")
    write_ab_lock(load_experiment(path))
    return path


class ProxyThread:
    """``heldout ab serve`` in a thread of this process, on a free port."""

    def __init__(self, path: Path) -> None:
        self.loaded: LoadedExperiment = load_experiment(path)
        self.store = EventStore(self.loaded.store_path)
        self.proxy = Proxy(self.loaded, self.store, seed=0)
        self.port = 0
        self._ready = threading.Event()
        self.loop_errors: list[dict[str, Any]] = []  # what asyncio would log: must stay empty
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self) -> None:
        self.port = await self.proxy.listen("127.0.0.1", 0)
        self._ready.set()

    def __enter__(self) -> ProxyThread:
        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.set_exception_handler(lambda loop, ctx: self.loop_errors.append(ctx))
            self._loop.run_until_complete(self._serve())
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        fut = asyncio.run_coroutine_threadsafe(self.proxy.shutdown(), self._loop)
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self.store.close()
        assert self.loop_errors == [], self.loop_errors


def post(url: str, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None
         ) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def chat(prompt: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "client-model", "messages": [{"role": "user", "content": prompt}], **extra}

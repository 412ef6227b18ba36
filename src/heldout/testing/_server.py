"""A fake OpenAI-compatible server (chat and completions) for tests and benchmarks.

It answers on 127.0.0.1 only, counts every request per prompt, and can be scripted to fail
(429 with Retry-After, 500), to be slow (timeouts), and to return top log-probabilities.
Run it in a thread (:meth:`FakeOpenAIServer.start`) or as a process
(``python -m heldout.testing._server --port N``).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FAULTS", "FakeOpenAIServer", "ServerScript"]


@dataclass
class ServerScript:
    """How the server behaves. ``answer`` maps the prompt to the reply text.

    ``fail`` maps a prompt to a list of statuses to return on its first attempts (e.g.
    ``[429, 500]``); ``retry_after`` is sent with 429s; ``delay_s`` delays every answer;
    ``slow`` maps a prompt to a delay for its first attempt only (to trigger timeouts);
    ``drop`` maps a prompt to how many of its first attempts get the connection closed
    without an answer (a connection error on the client). ``faults`` maps a prompt to what
    its first attempts get, one of :data:`FAULTS` each: a status ("429", "500", "503"), "drop",
    "timeout" (sleeps ``timeout_s``), a 200 whose body is "not-json", "not-utf8",
    "no-choices", "truncated" (Content-Length larger than what is sent), "html" (an HTML
    error page) or "huge" (``huge_bytes`` of text), or "echo-auth" / "echo-auth-500" (a 401
    or 500 whose body echoes the request headers, as some proxies do), or "bad-logprobs" (a
    good answer whose logprobs are malformed), or "stream-drop" (a streamed answer whose connection
    is cut after its first chunk; streaming: ``"stream": true`` gets server-sent events).
    ``logprobs`` False ignores a request for token log-probabilities, as some servers do.
    ``retry_after_header`` is sent verbatim with 429s ("86400", "soon", an HTTP date) instead
    of ``retry_after``.
    """

    answer: Callable[[str], str] = lambda prompt: "ok"
    fail: dict[str, list[int]] = field(default_factory=dict)
    retry_after: float | None = None
    delay_s: float = 0.0
    slow: dict[str, float] = field(default_factory=dict)
    top_logprobs: dict[str, float] | None = None
    drop: dict[str, int] = field(default_factory=dict)
    faults: dict[str, list[str]] = field(default_factory=dict)
    retry_after_header: str | None = None
    timeout_s: float = 5.0
    huge_bytes: int = 2_000_000
    #: Whether token log-probabilities are returned when asked (some servers ignore it).
    logprobs: bool = True
    #: Cut each answer at the request's ``max_tokens`` (whitespace tokens) and say
    #: ``finish_reason: length``, as a real server does; off by default.
    honor_max_tokens: bool = False


FAULTS = (
    "429",
    "500",
    "503",
    "drop",
    "timeout",
    "not-json",
    "not-utf8",
    "no-choices",
    "truncated",
    "html",
    "huge",
    "echo-auth",
    "echo-auth-500",
    "bad-logprobs",
    "stream-drop",
)


class FakeOpenAIServer:
    """Serves /v1/chat/completions and /v1/completions on 127.0.0.1:port."""

    def __init__(self, script: ServerScript | None = None, port: int = 0) -> None:
        self.script = script or ServerScript()
        self.port = port
        self.requests: Counter[str] = Counter()
        self.completed: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {}
        self.faulted: Counter[str] = Counter()
        #: Every request body and its headers, in arrival order.
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Requests and completions per prompt, copied on the server's own thread (reading
        the counters from another thread while requests arrive would race)."""

        def take() -> dict[str, dict[str, int]]:
            return {"requests": dict(self.requests), "completed": dict(self.completed)}

        loop = self._loop
        if loop is None or not loop.is_running():
            return take()
        done: concurrent.futures.Future[dict[str, dict[str, int]]] = concurrent.futures.Future()
        loop.call_soon_threadsafe(lambda: done.set_result(take()))
        return done.result(timeout=10)

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.json()
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        chat = request.path.endswith("/chat/completions")
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        self.requests[prompt] += 1
        self.times.setdefault(prompt, []).append(time.monotonic())
        attempt = self.requests[prompt]
        if attempt <= self.script.drop.get(prompt, 0) and request.transport is not None:
            request.transport.abort()  # no status line: the client sees a dropped connection
            return web.Response()
        scripted = [f for f in self.script.faults.get(prompt, []) if f != "stream-drop"]
        if attempt <= len(scripted):
            self.faulted[scripted[attempt - 1]] += 1
            return await self._fault(request, scripted[attempt - 1])
        fails = self.script.fail.get(prompt, [])
        if attempt <= len(fails):
            status = fails[attempt - 1]
            headers = {}
            if status == 429 and self.script.retry_after is not None:
                headers["Retry-After"] = str(self.script.retry_after)
            return web.json_response(
                {"error": {"message": f"scripted {status}"}}, status=status, headers=headers
            )
        delay = self.script.delay_s + (self.script.slow.get(prompt, 0.0) if attempt == 1 else 0.0)
        if delay:
            await asyncio.sleep(delay)
        text = self.script.answer(prompt)
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if self.script.honor_max_tokens and isinstance(limit, int) and len(text.split()) > limit:
            text = " ".join(text.split()[:limit])
            choice["finish_reason"] = "length"
        tokens = text.split() or [text]
        token_lps = [-0.1 * (i + 1) for i in range(len(tokens))]
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
            if body.get("logprobs") and self.script.top_logprobs:
                tops = [{"token": t, "logprob": lp} for t, lp in self.script.top_logprobs.items()]
                choice["logprobs"] = {
                    "content": [{"token": text, "logprob": -0.1, "top_logprobs": tops}]
                }
            elif body.get("logprobs") and self.script.logprobs:
                choice["logprobs"] = {
                    "content": [
                        {"token": t, "logprob": lp, "top_logprobs": []}
                        for t, lp in zip(tokens, token_lps, strict=True)
                    ]
                }
        else:
            choice["text"] = text
            if body.get("logprobs") and self.script.top_logprobs:
                choice["logprobs"] = {"top_logprobs": [dict(self.script.top_logprobs)]}
            elif body.get("logprobs") and self.script.logprobs:
                choice["logprobs"] = {"tokens": tokens, "token_logprobs": token_lps}
        self.completed[prompt] += 1
        if chat and body.get("stream"):
            return await self._stream(request, body, text, prompt)
        return web.json_response(
            {
                "id": "x",
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()),
                "model": str(body.get("model", "fake")),
                "choices": [choice],
                "usage": {
                    "prompt_tokens": len(prompt.split()),
                    "completion_tokens": len(text.split()),
                    "total_tokens": len(prompt.split()) + len(text.split()),
                },
            }
        )

    async def _stream(self, request: Any, body: dict[str, Any], text: str, prompt: str) -> Any:
        """Server-sent events as vLLM and OpenAI send them: one chunk per word, a usage
        chunk when ``stream_options.include_usage``, then ``data: [DONE]``. A prompt scripted
        with the fault "stream-drop" loses its connection after the first chunk."""
        from aiohttp import web

        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        model = str(body.get("model", "fake"))
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            chunk = {
                "id": "x",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            if "stream-drop" in self.script.faults.get(prompt, []) and request.transport:
                request.transport.abort()
                return resp
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {
                "prompt_tokens": len(prompt.split()),
                "completion_tokens": len(words),
                "total_tokens": len(prompt.split()) + len(words),
            }
            done = {
                "id": "x",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await resp.write(f"data: {json.dumps(done)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _fault(self, request: Any, kind: str) -> Any:
        from aiohttp import web

        if kind in ("429", "500", "503"):
            headers = {}
            if kind == "429":
                if self.script.retry_after_header is not None:
                    headers["Retry-After"] = self.script.retry_after_header
                elif self.script.retry_after is not None:
                    headers["Retry-After"] = str(self.script.retry_after)
            return web.json_response(
                {"error": {"message": f"scripted {kind}"}}, status=int(kind), headers=headers
            )
        if kind == "drop" and request.transport is not None:
            request.transport.abort()
            return web.Response()
        if kind == "timeout":
            await asyncio.sleep(self.script.timeout_s)
            return web.json_response({"error": "too late"}, status=504)
        if kind == "not-json":
            return web.Response(body=b'{"choices": [{"message": ', content_type="application/json")
        if kind == "not-utf8":
            return web.Response(body=b'{"choices": "\xff\xfe"}', content_type="application/json")
        if kind == "no-choices":
            return web.json_response({"id": "x", "object": "chat.completion"})
        if kind == "html":
            return web.Response(
                text="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"
            )
        if kind == "huge":
            return web.Response(text="x" * self.script.huge_bytes, content_type="text/plain")
        if kind == "bad-logprobs":  # a fine answer whose logprobs have the wrong shape
            return web.json_response(
                {
                    "choices": [
                        {
                            "message": {"role": "assistant", "content": "positive"},
                            "logprobs": {"content": [{"top_logprobs": "garbage"}]},
                        }
                    ]
                }
            )
        if kind in ("echo-auth", "echo-auth-500"):
            echoed = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
            status = 401 if kind == "echo-auth" else 500
            return web.Response(text=f"request was:\n{echoed}", status=status)
        if kind == "truncated":
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.content_length = 10_000
            await resp.prepare(request)
            await resp.write(b'{"id": "x", "choices": [')
            if request.transport is not None:
                request.transport.close()
            return resp
        raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")

    async def _serve(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/completions", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()

    def start(self) -> FakeOpenAIServer:
        """Start in a background thread; returns once it accepts connections."""
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
        self._loop = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """Run as a process: answers "ok", logs request counts to --log (JSON) on SIGTERM."""
    import signal

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--log", default=None)
    args = ap.parse_args()
    server = FakeOpenAIServer(
        ServerScript(answer=lambda p: "answer: " + p[-8:], delay_s=args.delay), port=args.port
    )

    def dump(*_: object) -> None:
        if args.log:
            with open(args.log, "w", encoding="utf-8") as fh:
                json.dump(server.snapshot(), fh)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, dump)
    server.start()
    print(f"listening on {server.port}", flush=True)
    try:
        while True:
            time.sleep(0.5)
            if args.log:
                with open(args.log + ".tmp", "w", encoding="utf-8") as fh:
                    json.dump(server.snapshot(), fh)
    except KeyboardInterrupt:
        dump()


if __name__ == "__main__":
    main()

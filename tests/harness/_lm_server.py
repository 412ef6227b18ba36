"""A vLLM-like OpenAI-compatible completions server on 127.0.0.1, answered by a real (tiny)
transformers model: greedy generation with stop strings, and ``echo`` + ``logprobs`` prompt
scoring. Prompts come as text (heldout) or token ids (lm-eval's local-completions)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import torch
import transformers
from aiohttp import web


class ModelServer:
    def __init__(self, model_dir: Path) -> None:
        self.tok = transformers.AutoTokenizer.from_pretrained(str(model_dir))
        self.model = transformers.AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
        self.port = 0
        self.requests = 0
        self.bodies: list[dict[str, Any]] = []
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _ids(self, prompt: Any) -> tuple[list[int], list[int] | None]:
        """Token ids and each token's character offset (text prompts only)."""
        if isinstance(prompt, str):
            enc = self.tok(prompt, return_offsets_mapping=True)
            return list(enc["input_ids"]), [a for a, _ in enc["offset_mapping"]]
        return [int(i) for i in prompt], None

    def _one(self, prompt: Any, body: dict[str, Any], index: int) -> dict[str, Any]:
        ids, offsets = self._ids(prompt)
        max_tokens = int(body.get("max_tokens", 16))
        with torch.inference_mode():
            out = self.model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=self.tok.pad_token_id,
            )
        new = out[0, len(ids) :].tolist()
        text = self.tok.decode(new, skip_special_tokens=True)
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else stops
        finish = "length" if len(new) >= max_tokens else "stop"
        for s in stops:
            if s in text:
                text, finish = text[: text.index(s)], "stop"
        choice: dict[str, Any] = {"index": index, "text": text, "finish_reason": finish}
        if body.get("echo") and body.get("logprobs") is not None:
            full = ids + new[:1]
            with torch.inference_mode():
                logp = torch.log_softmax(self.model(torch.tensor([full])).logits[0].float(), -1)
            values: list[float | None] = [None]
            tops: list[dict[str, float] | None] = [None]
            for pos in range(1, len(full)):
                row = logp[pos - 1]
                values.append(float(row[full[pos]]))
                best = int(row.argmax())
                tops.append({self.tok.convert_ids_to_tokens(best): float(row[best])})
            text_prompt = prompt if isinstance(prompt, str) else self.tok.decode(ids)
            if offsets is None:
                offsets = list(range(len(ids)))
            choice["text"] = text_prompt + self.tok.decode(new[:1])
            choice["logprobs"] = {
                "tokens": self.tok.convert_ids_to_tokens(full),
                "token_logprobs": values,
                "top_logprobs": tops,
                "text_offset": [*offsets, len(text_prompt)],
            }
        return choice

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests += 1
        self.bodies.append(body)
        prompt = body["prompt"]
        prompts = (
            prompt
            if isinstance(prompt, list) and prompt and isinstance(prompt[0], list | str)
            else [prompt]
        )
        choices = [self._one(p, body, i) for i, p in enumerate(prompts)]
        return web.json_response(
            {
                "id": "cmpl-1",
                "object": "text_completion",
                "model": body.get("model"),
                "choices": choices,
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/completions", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()

    def __enter__(self) -> ModelServer:
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("model server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        loop = self._loop

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        loop.close()

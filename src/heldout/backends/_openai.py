"""Any OpenAI-compatible server (vLLM, SGLang, TGI, Ollama, llama.cpp, OpenAI) over aiohttp.

aiohttp was chosen by measurement (benchmarks/bench_openai.py): at concurrency 64 against a
local server it keeps its connection pool busy where httpx's collapses. Requests run in a
fixed pool of ``concurrency`` workers; transient failures (429, 5xx, timeouts, connection
errors) are retried with exponential backoff and full jitter, never sooner than a
``Retry-After`` header asks. Other 4xx answers fail at once with the server's message.
``base_url`` may list replicas of one model: attempts are spread and failed over by
``backends/_fleet.py``, and a retry after a dead replica goes to a live one without waiting.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib.util
import logging
import math
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from heldout._json import load_json
from heldout.backends._base import Generation, OnResult, Request
from heldout.backends._fleet import Fleet, Replica
from heldout.backends._rate import TokenBucket
from heldout.errors import HeldoutError, MissingDependencyError
from heldout.plan import OpenAIModel

__all__ = ["OpenAIBackend", "choice_logprobs_from_top", "parse_retry_after"]

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


def choice_logprobs_from_top(top: dict[str, float], choices: Sequence[str]) -> dict[str, float]:
    """Label log-probabilities from the first generated token's top log-probabilities.

    A label gets the summed probability of the top tokens that begin it (case and surrounding
    space ignored): " Pos" and "positive" both count for "positive". Labels no top token
    begins get -inf: their probability is below what the server reported.
    """
    out: dict[str, float] = {}
    for label in choices:
        want = label.strip().casefold()
        mass = sum(
            math.exp(lp)
            for tok, lp in top.items()
            if tok.strip() and want.startswith(tok.strip().casefold())
        )
        out[label] = math.log(mass) if mass > 0 else -math.inf
    return out


log = logging.getLogger("heldout.backends.openai")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, either RFC 9110 form: delay-seconds
    ("120") or an HTTP date ("Wed, 21 Oct 2015 07:28:00 GMT"). None when absent or garbage
    (the caller notes it and falls back to its own backoff); never negative."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        seconds = float(text)  # not RFC 9110, but servers send "1.5"
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return max(0.0, parsed.timestamp() - (time.time() if now is None else now))


async def _read_capped(resp: Any, cap: int) -> bytes | None:
    """The whole body, or None as soon as it is known to exceed ``cap`` bytes."""
    length = resp.content_length
    if length is not None:
        return None if length > cap else bytes(await resp.read())
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        buf += chunk
        if len(buf) > cap:
            return None
    return bytes(buf)


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None, kind: str = "") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.kind = kind or message.split(":")[0]


@dataclass(frozen=True, slots=True)
class _Failure:
    """An attempt that may be retried: why, and what that says about the replica."""

    message: str
    kind: str
    retry_after: float | None = None
    refused: bool = False  # the replica refused the connection: take it out
    connection: bool = False  # refused or dropped: another replica may answer at once


class OpenAIBackend:
    """Async client for the chat or completions endpoint of an OpenAI-compatible server."""

    def __init__(
        self,
        spec: OpenAIModel,
        *,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        seed: int = 0,
    ) -> None:
        # found, not imported: a rerun answered from the cache never pays for aiohttp (0.2 s)
        if importlib.util.find_spec("aiohttp") is None:
            raise MissingDependencyError("aiohttp", "openai")
        self.spec = spec
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._jitter = random.Random(seed)
        self._api_key: str | None = None
        if spec.api_key_env:
            key = os.environ.get(spec.api_key_env)
            if not key:
                raise HeldoutError(
                    f"models: environment variable {spec.api_key_env} (api_key_env) is not set; "
                    "export the API key there (it is never written to the plan or results)"
                )
            self._api_key = key
        self._session: Any = None
        #: Seconds spent starting the client (importing aiohttp, the connection pool), only
        #: paid when a request is sent; the runner reports it apart from generation.
        self.startup_s = 0.0
        self._fleet = Fleet(spec.urls)
        self._rpm = TokenBucket(spec.requests_per_minute) if spec.requests_per_minute else None
        self._tpm = TokenBucket(spec.tokens_per_minute) if spec.tokens_per_minute else None
        #: Why attempts were retried, and what was ignored or refused, for the model record.
        self.events: Counter[str] = Counter()
        self.notes: Counter[str] = Counter()

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be stored or printed (the API key, extra header values)."""
        keys = (self._api_key,) if self._api_key else ()
        return keys + tuple(v for v in self.spec.extra_headers.values() if len(v) >= 4)

    @property
    def record(self) -> dict[str, Any]:
        """What the run stores about this backend: retried attempts by reason, and what was
        ignored (unreadable Retry-After, malformed logprobs) or refused (oversized bodies)."""
        out: dict[str, Any] = {}
        if self.events:
            out["retries_by_reason"] = dict(sorted(self.events.items()))
        if self.notes:
            out["notes"] = dict(sorted(self.notes.items()))
        if len(self._fleet) > 1:
            out["replicas"] = self._fleet.record()
        return out

    def identity(self) -> dict[str, Any]:
        s = self.spec
        out: dict[str, Any] = {
            "backend": "openai",
            "base_url": s.urls[0],  # a fleet's first replica: adding replicas keeps the cache
            "model": s.model,
            "endpoint": s.endpoint,
            "params": s.params.model_dump(mode="json"),
        }
        if s.revision is not None:  # absent, not null, so that older cache keys stay valid
            out["revision"] = s.revision
        # what changes the answers is in the cache key, each only when set (older keys hold)
        if s.system_prompt is not None:
            out["system_prompt"] = s.system_prompt
        if s.messages is not None:
            out["messages"] = [m.model_dump() for m in s.messages]
        if s.extra_body:
            out["extra_body"] = s.extra_body
        if s.logprobs:
            out["logprobs"] = True
        return out

    def loglikelihood_support(self) -> str | None:
        """Why this backend cannot score log-likelihood requests (None: it can)."""
        if self.spec.endpoint == "chat":
            return (
                "the chat endpoint returns no log-probabilities of a given prompt; use "
                "endpoint: completions on a server that echoes prompt logprobs (vLLM, SGLang, "
                "llama.cpp's server)"
            )
        return None

    def _url(self, replica: Replica) -> str:
        path = "chat/completions" if self.spec.endpoint == "chat" else "completions"
        return f"{replica.url}/{path}"

    def _body(self, req: Request) -> dict[str, Any]:
        p = self.spec.params
        if req.kind == "loglikelihood":
            # vLLM-style prompt scoring, as lm-eval's local-completions asks for it: the
            # prompt echoed with each token's log-probability and its most likely token
            body: dict[str, Any] = {
                "model": self.spec.model,
                "prompt": req.prompt + (req.continuation or ""),
                "temperature": 0,
                "max_tokens": 1,
                "logprobs": 1,
                "echo": True,
            }
            if p.seed is not None:
                body["seed"] = p.seed
            return {**body, **self.spec.extra_body}
        body = {
            "model": self.spec.model,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens if req.max_tokens is None else req.max_tokens,
        }
        stop = p.stop if req.stop is None else list(req.stop)
        if stop:
            body["stop"] = stop
        if p.seed is not None:
            body["seed"] = p.seed
        spec = self.spec
        if spec.endpoint == "chat":
            body["messages"] = self._messages(req.prompt)
            if req.choices or spec.logprobs:
                body["logprobs"] = True
            if req.choices:
                body["top_logprobs"] = 20
        else:
            body["prompt"] = req.prompt
            if req.choices:
                body["logprobs"] = 20
            elif spec.logprobs:
                body["logprobs"] = 1
        return {**body, **spec.extra_body}

    async def _within_limits(self, body: dict[str, Any]) -> None:
        """Wait for the plan's requests- and tokens-per-minute budgets (every attempt
        counts, retries too)."""
        if self._rpm is not None:
            await self._rpm.take(1)
        if self._tpm is not None:
            text = body.get("prompt") or "".join(m["content"] for m in body.get("messages", []))
            await self._tpm.take(len(str(text)) / 4 + self.spec.params.max_tokens)

    def _messages(self, prompt: str) -> list[dict[str, str]]:
        """The chat messages: the plan's template with '{prompt}' filled in (str.replace,
        so braces in few-shot examples stay as written), or the prompt as one user turn."""
        spec = self.spec
        if spec.messages is not None:
            return [
                {"role": m.role, "content": m.content.replace("{prompt}", prompt)}
                for m in spec.messages
            ]
        out = [{"role": "user", "content": prompt}]
        if spec.system_prompt is not None:
            out.insert(0, {"role": "system", "content": spec.system_prompt})
        return out

    def _token_logprobs(self, choice: dict[str, Any]) -> list[float] | None:
        """Each generated token's log-probability, as the server returned them."""
        logprobs = choice.get("logprobs")
        if not isinstance(logprobs, dict):
            return None
        if self.spec.endpoint == "chat":
            content = logprobs.get("content")
            if not isinstance(content, list) or not content:
                return None
            return [float(t["logprob"]) for t in content]
        values = logprobs.get("token_logprobs")
        if not isinstance(values, list) or not values:
            return None
        return [float(v) for v in values if v is not None]

    def _decode(self, raw: bytes, content_type: str) -> dict[str, Any]:
        """The JSON object of a 200 answer; anything else is a retryable malformed response."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Retryable(
                f"malformed response: body is not UTF-8 (byte {exc.start})", kind="malformed body"
            ) from None
        try:
            data = load_json(text)
        except ValueError:
            what = (
                "an HTML page" if "html" in content_type or text.lstrip()[:1] == "<" else "not JSON"
            )
            raise _Retryable(
                f"malformed response: {what} ({len(raw)} bytes): {text[:120]!r}",
                kind="malformed body",
            ) from None
        if not isinstance(data, dict):
            raise _Retryable(
                f"malformed response: JSON {type(data).__name__}, not an object",
                kind="malformed body",
            )
        return data

    def _parse(
        self, req: Request, data: dict[str, Any], latency: float, attempts: int
    ) -> Generation:
        if req.kind == "loglikelihood":
            return self._parse_loglikelihood(req, data, latency, attempts)
        try:
            choice = data["choices"][0]
            chat = self.spec.endpoint == "chat"
            text = choice["message"]["content"] if chat else choice["text"]
        except (KeyError, IndexError, TypeError) as exc:
            raise _Retryable(
                f"malformed response ({exc!r}): {str(data)[:200]}", kind="malformed body"
            ) from None
        raw_usage = data.get("usage")
        usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
        pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
        pt = pt if isinstance(pt, int) and not isinstance(pt, bool) else None
        ct = ct if isinstance(ct, int) and not isinstance(ct, bool) else None
        cost = None
        s = self.spec
        if (
            s.price_per_1k_input is not None
            and s.price_per_1k_output is not None
            and pt is not None
        ):
            cost = pt / 1000 * s.price_per_1k_input + (ct or 0) / 1000 * s.price_per_1k_output
        lp = None
        if req.choices:
            try:
                top = self._top_logprobs(choice)
            except (KeyError, IndexError, TypeError, ValueError, AttributeError):
                top = None  # malformed logprobs: the answer stands, without probabilities
                self.notes["malformed logprobs (ignored)"] += 1
            lp = choice_logprobs_from_top(top, req.choices) if top is not None else None
        extra: dict[str, Any] = {}
        finish = choice.get("finish_reason") if isinstance(choice, dict) else None
        if isinstance(finish, str) and finish:  # "length": cut off at max_tokens
            extra["finish_reason"] = finish[:40]
        if self.spec.logprobs:
            try:
                tokens = self._token_logprobs(choice)
            except (KeyError, TypeError, ValueError):
                tokens = None
            if tokens is None:  # asked, and the server did not say: counted, not guessed
                self.notes["token logprobs asked, none returned"] += 1
            else:
                extra["token_logprobs"] = tokens
        return Generation(
            req.sample_id,
            text if isinstance(text, str) else None,
            None if isinstance(text, str) else "response has no text",
            latency,
            pt,
            ct,
            cost,
            lp,
            attempts,
            extra=extra,
        )

    def _parse_loglikelihood(
        self, req: Request, data: dict[str, Any], latency: float, attempts: int
    ) -> Generation:
        """log P(continuation | prompt) from an echoed prompt's token log-probabilities.

        The continuation's tokens are the echoed ones starting at or after the end of the
        prompt without its trailing whitespace (lm-eval moves that whitespace into the
        continuation); the last token, generated because max_tokens is 1, is not part of it.
        Greedy: each of them is the most likely token at its place (lm-eval's rule)."""
        try:
            logprobs = data["choices"][0]["logprobs"]
            values = logprobs["token_logprobs"]
            offsets = logprobs["text_offset"]
            tops = logprobs.get("top_logprobs")
            if not (isinstance(values, list) and isinstance(offsets, list)):
                raise TypeError("token_logprobs and text_offset must be lists")
            if len(values) != len(offsets) or len(values) < 2:
                raise ValueError(f"{len(values)} token log-probabilities, {len(offsets)} offsets")
            start = len(req.prompt.rstrip())
            picked = [i for i in range(len(values) - 1) if int(offsets[i]) >= start]
            if not picked:
                raise ValueError("no echoed token belongs to the continuation")
            total = 0.0
            greedy = True
            for i in picked:
                v = values[i]
                if v is None or isinstance(v, bool):
                    raise ValueError(f"token {i} has no log-probability")
                total += float(v)
                top = tops[i] if isinstance(tops, list) and i < len(tops) else None
                if isinstance(top, dict) and top:
                    greedy = greedy and float(v) >= max(float(x) for x in top.values())
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise _Retryable(
                "malformed response: a log-likelihood request needs the echoed prompt's "
                f"token_logprobs and text_offset (vLLM: echo + logprobs) ({exc}): "
                f"{str(data)[:200]}",
                kind="malformed body",
            ) from None
        raw_usage = data.get("usage")
        usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
        pt = usage.get("prompt_tokens")
        pt = pt if isinstance(pt, int) and not isinstance(pt, bool) else None
        cost = None
        if self.spec.price_per_1k_input is not None and pt is not None:
            cost = pt / 1000 * self.spec.price_per_1k_input
        return Generation(
            req.sample_id, "", None, latency, pt, None, cost, None, attempts,
            loglikelihood=total, is_greedy=greedy,
        )  # fmt: skip

    def _top_logprobs(self, choice: dict[str, Any]) -> dict[str, float] | None:
        logprobs = choice.get("logprobs")
        if not logprobs:
            return None
        if self.spec.endpoint == "chat":
            content = logprobs.get("content") or []
            if not content:
                return None
            return {t["token"]: float(t["logprob"]) for t in content[0].get("top_logprobs", [])}
        tops = logprobs.get("top_logprobs") or []
        return {k: float(v) for k, v in tops[0].items()} if tops else None

    async def _session_get(self) -> Any:
        if self._session is None:
            began = time.perf_counter()
            import aiohttp

            headers = {**self.spec.extra_headers, "Content-Type": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            # plain http needs no TLS context (building one costs ~40 ms per session)
            tls = any(u.startswith("https") for u in self.spec.urls)
            self._session = aiohttp.ClientSession(
                headers=headers,
                connector=aiohttp.TCPConnector(
                    limit=self.spec.concurrency, ttl_dns_cache=300, ssl=tls
                ),
                timeout=aiohttp.ClientTimeout(total=self.spec.timeout_s),
            )
            self.startup_s += time.perf_counter() - began
        return self._session

    async def _one(self, req: Request) -> Generation:
        session = await self._session_get()
        body = self._body(req)
        spec = self.spec
        fleet = self._fleet
        url = last = ""
        attempts = 0
        began = time.monotonic()
        for attempt in range(spec.max_retries + 1):
            attempts = attempt + 1
            await self._within_limits(body)
            replica = fleet.acquire()
            url = self._url(replica)
            outcome = await self._attempt(session, req, body, url, attempts)
            if not isinstance(outcome, _Failure):
                fleet.release(replica, ok=True)
                if len(fleet) > 1:
                    outcome.extra["replica"] = replica.url
                return outcome
            fleet.release(replica, ok=False, refused=outcome.refused)
            last, wait_at_least = outcome.message, outcome.retry_after
            self.events[outcome.kind] += 1
            if attempt == spec.max_retries:
                break
            if outcome.connection and fleet.another_is_healthy(replica):
                self.events["failover to another replica"] += 1
                continue  # the replica is gone, not busy: a live one can answer at once
            backoff = self._jitter.uniform(
                0, min(self.backoff_cap_s, self.backoff_base_s * 2**attempt)
            )
            wait = max(backoff, min(wait_at_least or 0.0, spec.max_retry_wait_s))
            if time.monotonic() - began + wait > spec.max_retry_time_s:
                last += (
                    f" (stopped: retrying would exceed max_retry_time_s={spec.max_retry_time_s:g})"
                )
                break
            await asyncio.sleep(wait)
        return Generation(
            req.sample_id,
            None,
            f"sample {req.sample_id!r}: giving up after {attempts} attempt(s) to {url}: {last}",
            attempts=attempts,
        )

    async def _attempt(
        self, session: Any, req: Request, body: dict[str, Any], url: str, attempts: int
    ) -> Generation | _Failure:
        """One POST: the sample's final Generation, or a failure worth retrying."""
        import aiohttp

        spec = self.spec
        start = time.perf_counter()
        try:
            async with session.post(url, json=body) as resp:
                raw = await _read_capped(resp, spec.max_response_bytes)
                if raw is None:
                    self.notes["response over max_response_bytes (sample failed)"] += 1
                    return Generation(
                        req.sample_id,
                        None,
                        f"sample {req.sample_id!r}: response from {url} is over "
                        f"{spec.max_response_bytes:,} bytes (max_response_bytes); not stored",
                        time.perf_counter() - start,
                        attempts=attempts,
                    )
                if resp.status == 200:
                    data = self._decode(raw, resp.headers.get("Content-Type", ""))
                    return self._parse(req, data, time.perf_counter() - start, attempts)
                text = raw[:300].decode("utf-8", "replace")
                if resp.status not in RETRY_STATUS:
                    return Generation(
                        req.sample_id,
                        None,
                        f"sample {req.sample_id!r}: HTTP {resp.status} from {url}: {text}",
                        time.perf_counter() - start,
                        attempts=attempts,
                    )
                header = resp.headers.get("Retry-After")
                wait = parse_retry_after(header)
                if header is not None and wait is None:
                    self.notes["unreadable Retry-After (ignored)"] += 1
                    log.info("ignoring Retry-After %r from %s: not seconds or a date", header, url)
                return _Failure(f"HTTP {resp.status}: {text}", f"HTTP {resp.status}", wait)
        except _Retryable as exc:
            return _Failure(str(exc), exc.kind, exc.retry_after)
        except (TimeoutError, aiohttp.ClientError) as exc:
            refused = isinstance(exc, aiohttp.ClientConnectorError)
            dropped = isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)
            return _Failure(
                f"{type(exc).__name__}: {exc}",
                type(exc).__name__,
                refused=refused,
                connection=refused or dropped,
            )

    async def generate(self, requests: Sequence[Request], on_result: OnResult) -> None:
        queue: asyncio.Queue[Request] = asyncio.Queue()
        for r in requests:
            queue.put_nowait(r)

        async def worker() -> None:
            while True:
                try:
                    req = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                on_result(await self._one(req))

        n = min(self.spec.concurrency, max(1, len(requests)))
        await asyncio.gather(*(worker() for _ in range(n)))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None  # a later call opens a new one (on its own event loop)
            self._session = None

"""``heldout ab serve``: an OpenAI-compatible routing proxy in front of control and treatment.

Each request's unit comes from a header (``X-Heldout-Unit`` by default) or the body's ``user``
field; its arm from :func:`heldout.ab.assign` at the live treatment share. The request goes to
that arm's upstream (its ``model`` written in when the experiment names one); the response —
JSON or server-sent events — is passed back byte for byte, with ``X-Heldout-Request-Id`` and
``X-Heldout-Arm`` headers added. One event per request (time, unit, arm, upstream, status,
latency, tokens, cost; no prompt text unless ``log_prompts`` samples it) is in the store's
journal before the response ends, and committed to its tables within 50 ms (see
:mod:`heldout.ab._journal`). A failing upstream is answered 502 and counted against its arm;
it is never retried on the other arm. Authorization is forwarded (or replaced by the arm's own
key) and never stored. The upstream client is :mod:`heldout.ab._upstream` (keep-alive
HTTP/1.1 parsed by httptools); bodies are requested uncompressed so ``usage`` can be read.

Outcomes arrive at ``POST /v1/outcomes``: ``{"request_id" | "unit", "name", "value"}``, one or
a list (``{"outcomes": [...]}``); acknowledged once journaled. ``GET /ab/status`` tells the
live split. The split is re-read from the store every 100 ms: ``heldout ab ramp`` and
``heldout ab rollback`` need no restart.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import sqlite3
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from heldout.ab._assign import Arm, assign
from heldout.ab._plan import ArmSpec, LoadedExperiment
from heldout.ab._server import Request, Response, Server, Stream, json_response, serve
from heldout.ab._store import EventStore
from heldout.ab._upstream import UpstreamClient, UpstreamError

__all__ = ["Proxy"]

_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
_KEEP_RESPONSE = {"content-type", "cache-control", "x-request-id", "openai-processing-ms"}
_POLL_S = 0.1
_RETRY_S = 0.5
_FLUSH_S = 0.05  # journaled events reach the tables in groups, 50 ms at most after
_RECENT = 200_000
_MAX_BODY = 64 * 1024**2


def _error(status: int, message: str, kind: str = "invalid_request_error") -> Response:
    return json_response({"error": {"message": message, "type": kind}}, status)


class Proxy:
    """The proxy's state: the experiment, the store, the live split, the upstream session."""

    def __init__(self, loaded: LoadedExperiment, store: EventStore, *, seed: int | None = None):
        self.loaded = loaded
        self.exp = loaded.experiment
        self.store = store
        split = store.current_split()
        if split is None:
            split = store.set_split(self.exp.stages[0], "start", "first stage (proxy started)")
        self.journal = store.open_journal()
        self._flush_due = False
        self.share = split.share
        self.split_ts = split.ts
        self._client: UpstreamClient | None = None
        self._recent: OrderedDict[str, tuple[str, str, float]] = OrderedDict()
        self._rng = random.Random(seed)
        self._poller: asyncio.Task[None] | None = None
        self._server: Server | None = None
        self._timeouts = {
            "control": self.exp.arms.control.timeout_s,
            "treatment": self.exp.arms.treatment.timeout_s,
        }
        self._keys = {
            arm: (os.environ.get(spec.api_key_env, "") if spec.api_key_env else None)
            for arm, spec in (
                ("control", self.exp.arms.control),
                ("treatment", self.exp.arms.treatment),
            )
        }

    # -- lifecycle ------------------------------------------------------------------------
    async def listen(self, host: str, port: int) -> int:
        """Serve on ``host:port`` (0: a free one); the port listened on. Raises ``OSError``
        when the address cannot be used."""
        self._client = UpstreamClient()
        self.store.start()
        self._poller = asyncio.create_task(self._poll())
        try:
            self._server = await serve(self.handle, host, port, max_body=_MAX_BODY)
        except BaseException:
            await self.shutdown()
            raise
        return self._server.port

    async def shutdown(self) -> None:
        """Stop listening, let requests in progress finish, commit the journal."""
        if self._server is not None:
            await self._server.close()
            self._server = None
        if self._poller is not None:
            self._poller.cancel()
        if self._client is not None:
            await self._client.close()
        await asyncio.get_running_loop().run_in_executor(None, self.store.stop)
        self.store.close_journal()

    async def handle(self, request: Request, stream: Stream) -> Response | None:
        path, method = request.path, request.method
        if path == "/v1/outcomes":
            return await self.outcomes(request) if method == "POST" else _not_allowed("POST")
        if path == "/v1/models":
            return await self.models(request) if method == "GET" else _not_allowed("GET")
        if path == "/ab/status":
            return self.status() if method == "GET" else _not_allowed("GET")
        if path.startswith("/v1/") and len(path) > 4:
            tail = path[4:]
            if {".", ".."} & set(unquote(tail).split("/")):
                return _error(404, f"no route {path!r}: dot segments are not forwarded")
            if method != "POST":
                return _not_allowed("POST")
            return await self.route(request, tail, stream)
        return _error(404, f"no route {path[:200]!r} (the proxy serves POST /v1/...)")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(_POLL_S)
            try:  # a read of the WAL store is never blocked by a writer: fine on the loop
                split = self.store.current_split()
            except Exception:  # a busy or briefly locked store: try again next tick
                continue
            if split is not None and split.ts != self.split_ts:
                self.share, self.split_ts = split.share, split.ts

    # -- routing --------------------------------------------------------------------------
    def _unit(self, request: Request, body: dict[str, Any]) -> str | None:
        unit = request.headers.get(self.exp.unit.header.lower())
        if not unit and self.exp.unit.field:
            value = body.get(self.exp.unit.field)
            unit = str(value) if isinstance(value, str | int) and value != "" else None
        return unit or None

    def _spec(self, arm: Arm) -> ArmSpec:
        return self.exp.arms.treatment if arm == "treatment" else self.exp.arms.control

    def _headers(self, request: Request, arm: Arm) -> dict[str, str]:
        headers = {k: v for k, v in request.items if k.lower() not in _HOP}
        key = self._keys[arm]
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _cost(self, spec: ArmSpec, usage: dict[str, Any] | None) -> tuple[Any, Any, float | None]:
        if not isinstance(usage, dict):
            return None, None, None
        pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not isinstance(pt, int) or not isinstance(ct, int):
            return None, None, None
        return pt, ct, (pt * spec.price.prompt + ct * spec.price.completion) / 1e6

    def _record(
        self, requests: Sequence[tuple[Any, ...]] = (), outcomes: Sequence[tuple[Any, ...]] = ()
    ) -> None:
        """Journal the rows (they survive a crash once this returns) and commit them to the
        tables within 50 ms, after the response is sent, with every other event of that time
        (one transaction for all: at 200 requests/s about ten)."""
        self.journal.append(requests, outcomes)
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_later(_FLUSH_S, self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        try:
            if self.journal.flush(wait=False):
                return
            delay = _FLUSH_S  # a reader thread's flush was running: take the next turn
        except (sqlite3.Error, OSError):  # a locked or full disk: the rows wait in the journal
            delay = _RETRY_S
        self._flush_due = True
        asyncio.get_running_loop().call_later(delay, self._flush)

    def _log(self, row: tuple[Any, ...], rid: str, unit: str | None, arm: Arm) -> None:
        if unit is not None:
            self._recent[rid] = (unit, arm, self.share)
            if len(self._recent) > _RECENT:
                self._recent.popitem(last=False)
        self._record(requests=[row])

    async def route(self, request: Request, tail: str, stream_to: Stream) -> Response | None:
        raw = request.body
        try:
            body = json.loads(raw) if raw else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the request body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "the request body must be a JSON object")
        unit = self._unit(request, body)
        if unit is None and self.exp.unit.missing == "reject":
            return _error(
                400,
                f"no unit id: send the {self.exp.unit.header} header or the "
                f"'{self.exp.unit.field}' field",
            )
        share = self.share
        arm: Arm = "control" if unit is None else assign(unit, self.exp.salt, share)
        spec = self._spec(arm)
        if spec.model is not None and "model" in body:
            body["model"] = spec.model
            raw = json.dumps(body, ensure_ascii=False).encode()
        url = f"{spec.base_url.rstrip('/')}/{tail}"
        rid = uuid.uuid4().hex
        prompt = None
        if self.exp.log_prompts and self._rng.random() < self.exp.log_prompts:
            prompt = json.dumps(body.get("messages", body.get("prompt")), ensure_ascii=False)
        stream = bool(body.get("stream"))
        assert self._client is not None
        t0 = time.perf_counter()
        ts = time.time()
        extra = {"X-Heldout-Request-Id": rid, "X-Heldout-Arm": arm}

        def row(status: int, error: str | None, usage: dict[str, Any] | None) -> tuple[Any, ...]:
            pt, ct, cost = self._cost(spec, usage)
            return (
                rid,
                ts,
                unit,
                arm,
                share,
                spec.base_url,
                body.get("model"),
                status,
                error,
                (time.perf_counter() - t0) * 1000,
                pt,
                ct,
                cost,
                int(stream),
                prompt,
            )

        try:
            upstream = await self._client.request(
                "POST",
                url,
                headers=self._headers(request, arm),
                body=raw,
                timeout=self._timeouts[arm],
            )
        except (UpstreamError, TimeoutError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"[:300]
            self._log(row(502, reason, None), rid, unit, arm)
            failed = _error(502, f"upstream {arm} failed: {reason}", "upstream_error")
            failed.headers.update(extra)
            return failed
        try:
            headers = {k: v for k, v in upstream.headers.items() if k.lower() in _KEEP_RESPONSE}
            headers.update(extra)
            if not stream or upstream.status != 200:
                try:
                    data = await upstream.read()
                except (UpstreamError, TimeoutError) as exc:
                    reason = f"{type(exc).__name__}: {exc}"[:300]
                    self._log(row(502, reason, None), rid, unit, arm)
                    return _error(502, f"upstream {arm} failed: {reason}", "upstream_error")
                usage = None
                error = None if upstream.status < 400 else data[:300].decode("utf-8", "replace")
                if upstream.status == 200 and b'"usage"' in data:
                    try:
                        parsed = json.loads(data)
                        usage = parsed.get("usage") if isinstance(parsed, dict) else None
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        error = "upstream sent a body that is not JSON"
                self._log(row(upstream.status, error, usage), rid, unit, arm)
                return Response(upstream.status, data, headers)
            usage, status, error = None, 200, None
            pending = b""
            try:
                stream_to.start(200, headers)
                async for chunk in upstream.chunks():
                    await stream_to.write(chunk)
                    pending += chunk
                    if b"\n" in pending:
                        *lines, pending = pending.split(b"\n")
                        for line in lines:
                            if line.startswith(b"data:") and b'"usage"' in line:
                                try:
                                    got = json.loads(line[5:]).get("usage")
                                    usage = got if isinstance(got, dict) else usage
                                except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                                    pass
            except (UpstreamError, TimeoutError) as exc:
                status, error = 502, f"stream broke: {type(exc).__name__}: {exc}"[:300]
            except (ConnectionResetError, asyncio.CancelledError):
                self._log(row(499, "client went away", usage), rid, unit, arm)
                raise
            self._log(row(status, error, usage), rid, unit, arm)
            await stream_to.end()
            return None
        finally:
            upstream.release()

    async def models(self, request: Request) -> Response:
        spec = self.exp.arms.control
        assert self._client is not None
        try:
            upstream = await self._client.request(
                "GET",
                f"{spec.base_url.rstrip('/')}/models",
                headers=self._headers(request, "control"),
                timeout=spec.timeout_s,
            )
            try:
                data = await upstream.read()
            finally:
                upstream.release()
            ctype = upstream.headers.get("Content-Type", "application/json")
            return Response(upstream.status, data, {"Content-Type": ctype})
        except (UpstreamError, TimeoutError, OSError) as exc:
            return _error(502, f"upstream control failed: {exc}", "upstream_error")

    # -- outcomes and status --------------------------------------------------------------
    def _outcome_row(self, item: Any, i: int, now: float) -> tuple[Any, ...] | str:
        if not isinstance(item, dict):
            return f"outcomes[{i}]: must be an object with request_id or unit, name, value"
        name, value = item.get("name"), item.get("value")
        if not isinstance(name, str) or not name:
            return f"outcomes[{i}].name: required (a string such as 'resolved')"
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, int | float) or not math.isfinite(value):
            return f"outcomes[{i}].value: must be a finite number or true/false"
        ts = item.get("ts", now)
        if not isinstance(ts, int | float) or isinstance(ts, bool):
            return f"outcomes[{i}].ts: must be a Unix time in seconds"
        rid, unit = item.get("request_id"), item.get("unit")
        if isinstance(rid, str) and rid:
            found = self._recent.get(rid) or self.store.request_arm(rid)
            if found is None or found[0] is None:
                return f"outcomes[{i}].request_id: no request {rid!r} was routed with a unit"
            unit_id, arm, stage = found
            return (float(ts), rid, unit_id, arm, stage, name, float(value))
        if isinstance(unit, str | int) and not isinstance(unit, bool) and str(unit):
            unit_id = str(unit)
            arm = assign(unit_id, self.exp.salt, self.share)
            return (float(ts), None, unit_id, arm, self.share, name, float(value))
        return f"outcomes[{i}]: needs 'request_id' (from X-Heldout-Request-Id) or 'unit'"

    async def outcomes(self, request: Request) -> Response:
        try:
            payload = json.loads(request.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the body is not JSON")
        items = payload.get("outcomes") if isinstance(payload, dict) else payload
        if isinstance(payload, dict) and "outcomes" not in payload:
            items = [payload]
        if not isinstance(items, list) or not items:
            return _error(400, "send an outcome object, a list of them, or {'outcomes': [...]}")
        now = time.time()
        rows: list[tuple[Any, ...]] = []
        problems: list[str] = []
        for i, item in enumerate(items):
            got = self._outcome_row(item, i, now)
            if isinstance(got, str):
                problems.append(got)
            else:
                rows.append(got)
        if problems:
            return _error(400, "; ".join(str(p) for p in problems[:10]) + " (nothing was stored)")
        self._record(outcomes=rows)
        return json_response({"accepted": len(rows)})

    def status(self) -> Response:
        return json_response(
            {
                "experiment": self.exp.name,
                "treatment_share": self.share,
                "split_since": self.split_ts,
                "stages": self.exp.stages,
            }
        )


def _not_allowed(method: str) -> Response:
    response = _error(405, f"this route takes {method}")
    response.headers["Allow"] = method
    return response

"""The proxy's upstream client against servers that misbehave the way real ones do.

The upstream here is a raw TCP server (no HTTP library to tidy its replies): each request's
``X-Mode`` header picks what it does — a close-delimited body, a Content-Length that lies,
garbage instead of a status line, a kept-alive connection dropped under the next request, a
chunked body one byte per packet, silence, ``100 Continue``, bytes after the reply, gzip
when asked.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from heldout.ab._upstream import UpstreamClient, UpstreamError
from tests.ab._helpers import ProxyThread, chat, post, write_exp

COMPLETION = json.dumps(
    {
        "id": "c1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }
).encode()


class RawServer:
    """An HTTP/1.1-ish server written on bare sockets; records what it was sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.connections = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        k, v = k.strip().lower(), v.strip()
                        headers[k] = f"{headers[k]}, {v}" if k in headers else v
                n = int(headers.get("content-length", "0"))
                if n:
                    await reader.readexactly(n)
                headers[":line"] = lines[0]
                self.requests.append(headers)
                served += 1
                if not await self._reply(headers.get("x-mode", "ok"), headers, served, writer):
                    return
        finally:
            writer.close()

    async def _reply(
        self, mode: str, headers: dict[str, str], served: int, w: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False closes the connection."""
        ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        if mode == "ok":
            w.write(ok % len(COMPLETION) + COMPLETION)
        elif mode == "http10-close":  # no length: the body ends when the connection does
            w.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + COMPLETION)
            await w.drain()
            return False
        elif mode == "short":  # promises 500 bytes, sends 20, hangs up
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + COMPLETION[:20])
            await w.drain()
            return False
        elif mode == "garbage":
            w.write(b"HELLO THERE\r\n\r\n")
            await w.drain()
            return False
        elif mode == "stale":  # answers the first request, drops the connection on the next
            if served >= 2:
                return False
            w.write(ok % len(COMPLETION) + COMPLETION)
        elif mode == "bytewise":  # chunked, one byte per packet
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(len(COMPLETION)):
                w.write(b"1\r\n" + COMPLETION[i : i + 1] + b"\r\n")
                await w.drain()
                await asyncio.sleep(0)
            w.write(b"0\r\n\r\n")
        elif mode == "silent":
            await asyncio.sleep(30)
            return False
        elif mode == "continue":
            w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await w.drain()
            w.write(ok % len(COMPLETION) + COMPLETION)
        elif mode == "trailing-junk":
            w.write(ok % len(COMPLETION) + COMPLETION + b"JUNKJUNK")
        elif mode == "gzip-if-asked":
            if "gzip" in headers.get("accept-encoding", ""):
                body = gzip.compress(COMPLETION)
                w.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body
                )
            else:
                w.write(ok % len(COMPLETION) + COMPLETION)
        elif mode == "big-stream":  # 8 MiB of server-sent events, chunked
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
            w.write(b"Transfer-Encoding: chunked\r\n\r\n")
            line = b"data: " + b"x" * 1018 + b"\n\n"
            for _ in range(8192):
                w.write(b"%x\r\n%s\r\n" % (len(line), line))
                await w.drain()
            w.write(b"0\r\n\r\n")
        await w.drain()
        return True

    def __enter__(self) -> RawServer:
        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            loop.run_forever()
            server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()

            async def drain() -> None:
                await asyncio.gather(*tasks, return_exceptions=True)

            loop.run_until_complete(drain())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def raw() -> Iterator[RawServer]:
    with RawServer() as server:
        yield server


async def _post(client: UpstreamClient, url: str, mode: str, timeout: float = 5.0) -> Any:
    reply = await client.request(
        "POST", f"{url}/v1/chat/completions", headers={"X-Mode": mode}, body=b"{}", timeout=timeout
    )
    try:
        return reply.status, await reply.read()
    finally:
        reply.release()


def test_well_formed_replies_of_every_framing_arrive_whole(raw: RawServer) -> None:
    async def go() -> list[Any]:
        client = UpstreamClient()
        try:
            return [
                await _post(client, raw.url, m)
                for m in ("ok", "http10-close", "bytewise", "continue")
            ]
        finally:
            await client.close()

    assert asyncio.run(go()) == [(200, COMPLETION)] * 4


def test_cut_malformed_and_silent_replies_raise_and_never_hang(raw: RawServer) -> None:
    async def go() -> None:
        client = UpstreamClient()
        try:
            with pytest.raises(UpstreamError, match="closed the connection while sending"):
                await _post(client, raw.url, "short")
            with pytest.raises(UpstreamError, match="malformed HTTP reply"):
                await _post(client, raw.url, "garbage")
            t = time.perf_counter()
            with pytest.raises(TimeoutError):
                await _post(client, raw.url, "silent", timeout=0.5)
            assert time.perf_counter() - t < 2
            with pytest.raises(ConnectionRefusedError):
                await _post(client, "http://127.0.0.1:1", "ok")
        finally:
            await client.close()

    asyncio.run(go())


def test_connections_are_reused_dead_ones_are_not_and_one_lost_under_us_is_retried_once(
    raw: RawServer,
) -> None:
    async def go() -> list[Any]:
        client = UpstreamClient()
        try:
            got = [await _post(client, raw.url, "ok") for _ in range(5)]
            assert raw.connections == 1  # kept alive
            got.append(await _post(client, raw.url, "trailing-junk"))
            got.append(await _post(client, raw.url, "ok"))  # junk after a reply: not reused
            assert raw.connections == 2
            # 'stale' answers a connection's first request and drops it on the second: both
            # requests below land on a connection's second turn, die there and are retried
            got.append(await _post(client, raw.url, "stale"))
            got.append(await _post(client, raw.url, "stale"))
            return got
        finally:
            await client.close()

    assert asyncio.run(go()) == [(200, COMPLETION)] * 9
    assert [r["x-mode"] for r in raw.requests[7:]] == ["stale"] * 4  # each sent twice, no more
    assert raw.connections == 4


def test_headers_that_would_split_the_request_are_dropped_and_encoding_is_identity(
    raw: RawServer,
) -> None:
    async def go() -> None:
        client = UpstreamClient()
        try:
            reply = await client.request(
                "POST",
                f"{raw.url}/v1/x",
                headers={"X-Evil": "a\r\nX-Injected: 1", "Accept-Encoding": "gzip, br"},
                body=b"{}",
                timeout=5,
            )
            await reply.read()
            reply.release()
        finally:
            await client.close()

    asyncio.run(go())
    (seen,) = raw.requests
    assert "x-injected" not in seen
    assert "x-evil" not in seen
    assert seen["accept-encoding"] == "identity"
    assert seen[":line"] == "POST /v1/x HTTP/1.1"


def test_a_large_stream_passes_whole_through_a_paused_reader(raw: RawServer) -> None:
    async def go() -> bytes:
        client = UpstreamClient()
        try:
            reply = await client.request(
                "POST", f"{raw.url}/v1/x", headers={"X-Mode": "big-stream"}, body=b"{}", timeout=30
            )
            parts = []
            async for chunk in reply.chunks():
                parts.append(chunk)
                await asyncio.sleep(0.02)  # a slow reader: the upstream is paused meanwhile
            reply.release()
            return parts
        finally:
            await client.close()

    parts = asyncio.run(go())
    assert b"".join(parts) == (b"data: " + b"x" * 1018 + b"\n\n") * 8192
    # never more than ~1 MiB held for a reader that lags (one socket read past the mark)
    assert max(len(p) for p in parts) < 1.5 * 1024**2


def test_proxy_gets_identity_bodies_so_clients_asking_for_gzip_still_get_usable_json(
    tmp_path: Path, raw: RawServer
) -> None:
    path = write_exp(tmp_path, f"{raw.url}/v1", f"{raw.url}/v1")
    with ProxyThread(path) as px:
        got = [
            post(
                f"{px.url}/v1/chat/completions",
                chat(user=f"u{i}"),
                {"Accept-Encoding": "gzip", "X-Mode": mode},
            )
            for i, mode in enumerate(["gzip-if-asked", "http10-close", "short", "garbage"])
        ]
    assert [g[0] for g in got] == [200, 200, 502, 502]
    assert json.loads(got[0][2]) == json.loads(COMPLETION)
    assert json.loads(got[1][2]) == json.loads(COMPLETION)
    with sqlite3.connect(tmp_path / "events.sqlite") as db:
        rows = {
            u: (s, pt, ct, e)
            for u, s, pt, ct, e in db.execute(
                "SELECT unit, status, prompt_tokens, completion_tokens, error FROM requests"
            )
        }
    assert rows["u0"][:3] == (200, 7, 3)
    assert rows["u1"][:3] == (200, 7, 3)
    assert rows["u2"][0] == 502
    assert "closed the connection" in rows["u2"][3]
    assert rows["u3"][0] == 502
    assert "malformed" in rows["u3"][3]


def test_https_upstreams_are_verified(tmp_path: Path) -> None:
    import ssl

    import trustme

    ca, other = trustme.CA(), trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)

    async def go() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(COMPLETION) + COMPLETION
                )
                await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        stranger = ssl.create_default_context()
        other.configure_trust(stranger)
        good, bad = UpstreamClient(trusting), UpstreamClient(stranger)
        try:
            assert await _post(good, url, "ok") == (200, COMPLETION)
            with pytest.raises(ssl.SSLCertVerificationError):
                await _post(bad, url, "ok")
        finally:
            await good.close()
            await bad.close()
            server.close()
            await server.wait_closed()

    asyncio.run(go())


def test_a_request_cancelled_while_waiting_closes_its_connection(raw: RawServer) -> None:
    async def go() -> None:
        client = UpstreamClient()
        try:
            task = asyncio.create_task(_post(client, raw.url, "silent", timeout=30))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not client._busy  # nothing left holding a connection
            assert await _post(client, raw.url, "ok") == (200, COMPLETION)
        finally:
            await client.close()

    asyncio.run(go())
    assert raw.connections == 2  # the cancelled one was not handed to the next request

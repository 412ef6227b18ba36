"""The proxy's HTTP server against clients as they are: pipelining, HTTP/1.0, Expect, chunked
bodies, malformed and oversized requests, clients that vanish or read slowly, handlers that
fail, and a shutdown with requests in flight. Responses are read by http.client, urllib's
parser, except where the raw bytes are the point."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from heldout.ab import _server
from heldout.ab._server import Request, Response, Server, Stream, serve


class App:
    """A handler that echoes, streams, fails or waits, by path."""

    def __init__(self) -> None:
        self.seen: list[Request] = []
        self.stream_error: BaseException | None = None
        self.release = asyncio.Event()

    async def __call__(self, request: Request, stream: Stream) -> Response | None:
        self.seen.append(request)
        if request.path == "/fail":
            raise RuntimeError("a bug")
        if request.path == "/inject":
            return Response(200, b"x", {"X-Ok": "1", "X-Bad": "a\r\nSet-Cookie: p=1"})
        if request.path.startswith("/stream/"):
            n = int(request.path.rsplit("/", 1)[1])
            stream.start(200, {"Content-Type": "text/event-stream"})
            try:
                for i in range(n):
                    await stream.write(b"data: %d %b\n\n" % (i, b"x" * 1000))
                    if n < 100:
                        await asyncio.sleep(0.01)
                await stream.end()
            except ConnectionResetError as exc:
                self.stream_error = exc
            return None
        if request.path == "/wait":
            await self.release.wait()
        body = json.dumps(
            {"method": request.method, "path": request.path, "size": len(request.body),
             "body": request.body.decode("latin-1")[:50], "unit": request.headers.get("x-unit")}
        ).encode()  # fmt: skip
        return Response(200, body, {"Content-Type": "application/json"})


class Running:
    def __init__(self, app: App) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.server: Server | None = None
        self.loop_errors: list[dict[str, Any]] = []  # what asyncio would log: must stay empty
        self.loop.set_exception_handler(lambda loop, context: self.loop_errors.append(context))
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)

            async def begin() -> None:
                self.app.release = asyncio.Event()
                self.server = await serve(app, "127.0.0.1", 0, max_body=100_000)
                started.set()

            self.loop.run_until_complete(begin())
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(10)
        assert self.server is not None
        self.port = self.server.port

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(20)

    def raw(self, data: bytes, *, wait: float = 5.0) -> bytes:
        """Send bytes, read until the server closes (or ``wait`` passes)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=wait) as sock:
            sock.sendall(data)
            got = b""
            try:
                while chunk := sock.recv(65536):
                    got += chunk
            except TimeoutError:
                pass
            return got

    def get(self, path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()


@pytest.fixture
def running() -> Iterator[Running]:
    r = Running(App())
    yield r
    assert r.server is not None
    r.call(r.server.close())
    r.loop.call_soon_threadsafe(r.loop.stop)
    r.thread.join(10)
    r.loop.close()
    assert r.loop_errors == []


def test_keep_alive_pipelining_and_chunked_bodies(running: Running) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
    for i in range(3):  # one connection, three requests
        conn.request("POST", f"/v1/x{i}?q=1", body=b"a" * i, headers={"X-Unit": "u\u00e9".encode()})
        resp = conn.getresponse()
        got = json.loads(resp.read())
        assert (resp.status, got["path"], got["size"]) == (200, f"/v1/x{i}", i)
    assert got["unit"] == "u\u00e9"  # UTF-8 header bytes read as aiohttp reads them
    conn.request("POST", "/chunked", body=iter([b"hello ", b"world"]), encode_chunked=True)
    assert json.loads(conn.getresponse().read())["body"] == "hello world"
    conn.close()

    two = (b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n1"
           b"GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")  # fmt: skip
    got_raw = running.raw(two)
    assert got_raw.count(b"HTTP/1.1 200 OK") == 2
    assert got_raw.index(b'"/a"') < got_raw.index(b'"/b"')  # answered in order
    assert b"Connection: close" in got_raw.split(b'"/a"')[1]  # and closed after the second


def test_http_10_expect_continue_and_injected_headers(running: Running) -> None:
    got = running.raw(b"GET /old HTTP/1.0\r\n\r\n")  # the server closes: raw() returns
    assert got.startswith(b"HTTP/1.1 200 OK")
    assert b"Connection: close" in got
    streamed = running.raw(b"GET /stream/3 HTTP/1.0\r\n\r\n")
    assert b"Transfer-Encoding" not in streamed
    assert streamed.count(b"data: ") == 3
    assert streamed.endswith(b"\n\n")  # no chunk framing: the close ends it

    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as sock:
        sock.sendall(b"POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 5\r\n\r\n")  # fmt: skip
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"abcde")
        assert b'"size": 5' in sock.recv(1000)

    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
    conn.request("GET", "/inject")
    resp = conn.getresponse()
    assert resp.getheader("X-Ok") == "1"
    assert resp.getheader("X-Bad") is None
    assert resp.getheader("Set-Cookie") is None
    conn.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\n" + b"X-A: " + b"b" * 70_000 + b"\r\n\r\n", 431),
        (b"POST / HTTP/1.1\r\nContent-Length: 100001\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
         + b"".join(b"ffff\r\n" + b"z" * 0xFFFF + b"\r\n" for _ in range(2)), 413),
        (b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 400),
    ],
    ids=["garbage", "bad-length", "bad-header", "long-url", "huge-headers", "big-body",
         "big-chunked-body", "upgrade"],
)  # fmt: skip
def test_bad_requests_are_answered_with_their_status_and_closed(
    running: Running, request_bytes: bytes, status: int
) -> None:
    got = running.raw(request_bytes)
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), got[:200]
    assert b"Connection: close" in head
    assert "message" in json.loads(body)["error"]
    assert running.app.seen == []  # the handler never saw it
    assert running.get("/after") == 200  # the server is fine


def test_a_failing_handler_gets_500_and_the_connection_is_not_reused(running: Running) -> None:
    got = running.raw(b"GET /fail HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 500 Internal Server Error")
    assert b"RuntimeError" in got
    assert b"a bug" not in got
    assert b"/next" not in got
    (logged,) = running.loop_errors  # reported where asyncio reports errors, not swallowed
    assert isinstance(logged["exception"], RuntimeError)
    assert "GET /fail" in logged["message"]
    running.loop_errors.clear()
    head = running.raw(b"HEAD /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert head.endswith(b"\r\n\r\n")  # a HEAD answer has no body
    assert b"Content-Length: " in head


def test_a_slow_reader_gets_a_large_stream_whole_and_a_vanished_one_is_noticed(
    running: Running,
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=20)
    conn.request("GET", "/stream/5000")  # 5 MB, far past the socket buffers
    resp = conn.getresponse()
    time.sleep(0.5)  # the server fills the socket and must wait, not buffer without bound
    assert running.server is not None
    (conn_state,) = [c for c in running.server._connections if c.busy]
    assert conn_state.transport is not None
    assert conn_state.transport.get_write_buffer_size() < 256 * 1024  # not the 5 MB
    body = b""
    while chunk := resp.read(65536):
        body += chunk
    assert body.count(b"data: ") == 5000
    assert body.startswith(b"data: 0 ")
    assert running.app.stream_error is None
    conn.close()

    sock = socket.create_connection(("127.0.0.1", running.port), timeout=5)
    sock.sendall(b"GET /stream/50 HTTP/1.1\r\nHost: h\r\n\r\n")
    sock.recv(100)
    sock.close()  # gone mid-stream
    deadline = time.time() + 10
    while running.app.stream_error is None and time.time() < deadline:
        time.sleep(0.05)
    assert isinstance(running.app.stream_error, ConnectionResetError)


def test_idle_connections_close_and_shutdown_finishes_requests_in_flight(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_server, "_KEEPALIVE_S", 0.3)
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as idle:
        t = time.time()
        assert idle.recv(10) == b""  # closed by the server, not by our timeout
        assert time.time() - t < 4

    waiting = socket.create_connection(("127.0.0.1", running.port), timeout=10)
    waiting.sendall(b"GET /wait HTTP/1.1\r\nHost: h\r\n\r\n")
    deadline = time.time() + 5
    while not any(r.path == "/wait" for r in running.app.seen) and time.time() < deadline:
        time.sleep(0.02)
    assert running.server is not None
    closing = asyncio.run_coroutine_threadsafe(running.server.close(), running.loop)
    time.sleep(0.2)
    assert not closing.done()  # it waits for the request in progress
    running.loop.call_soon_threadsafe(running.app.release.set)
    closing.result(10)
    got = waiting.recv(1000)
    waiting.close()
    assert got.startswith(b"HTTP/1.1 200 OK")
    assert b'"/wait"' in got
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", running.port), timeout=2)


def test_a_client_that_leaves_before_its_answer_breaks_nothing(running: Running) -> None:
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as sock:
        sock.sendall(b"GET /wait HTTP/1.1\r\nHost: h\r\n\r\n")
        deadline = time.time() + 5
        while not running.app.seen and time.time() < deadline:
            time.sleep(0.02)
    time.sleep(0.2)  # the server sees the close
    running.loop.call_soon_threadsafe(running.app.release.set)
    time.sleep(0.2)
    assert running.get("/after") == 200

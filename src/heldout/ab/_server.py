"""The proxy's HTTP/1.1 server: asyncio protocols with llhttp (via httptools) parsing requests.

aiohttp's web server, in front of a handler that did nothing, took 0.27-0.64 ms more per
request than a bare httptools protocol (six interleaved rounds at 200 requests/s on a 2-core
machine): a third to a half of all the proxy added (~0.9 ms). The proxy needs little of it
— four routes, whole request bodies, a response either whole or streamed — so this module
does that much, with the parser Node.js, uvicorn and aiohttp's own C parser use:

- keep-alive and pipelining (requests on one connection are answered in order); HTTP/1.0
  clients answered and closed (a stream to one ends with the close); ``Expect:
  100-continue`` answered; chunked request bodies;
- a malformed request is answered 400 and its connection closed; a request line over
  8 KiB is answered 414, headers over 64 KiB 431, a body over ``max_body`` 413;
- a streamed response is sent chunked, waits while the client's socket is full, and raises
  ``ConnectionResetError`` from :meth:`Stream.write` once the client is gone;
- idle kept-alive connections close after 75 s; :meth:`Server.close` stops listening, lets
  requests in progress finish (up to 10 s) and closes the rest.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast

import httptools

__all__ = ["Request", "Response", "Server", "Stream", "json_response", "serve"]

_MAX_URL = 8 * 1024
_MAX_HEADERS = 64 * 1024
_KEEPALIVE_S = 75.0
_CLOSE_WAIT_S = 10.0
_LINGER_S = 2.0
_QUEUE = 16  # pipelined requests waiting on one connection before it stops reading


@dataclass(slots=True)
class Request:
    method: str
    path: str  # as sent, without the query
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    items: list[tuple[str, str]]  # the headers as sent, in order
    body: bytes
    keep_alive: bool
    http_10: bool


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data).encode(), {"Content-Type": "application/json"})


Handler = Callable[[Request, "Stream"], Awaitable[Response | None]]


def _head(status: int, headers: dict[str, str], framing: str, keep_alive: bool) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    for name, value in headers.items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value or ":" in name:
            continue  # never split the response
        lines.append(f"{name}: {value}")
    if framing:
        lines.append(framing)
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


class Stream:
    """The way back to one request's client: a whole :class:`Response` (returned by the
    handler) or a streamed one (:meth:`start`, :meth:`write`, :meth:`end`)."""

    def __init__(self, conn: _Connection, request: Request) -> None:
        self._conn = conn
        self._request = request
        self._chunked = not request.http_10
        self.started = False
        self.ended = False

    def start(self, status: int, headers: dict[str, str]) -> None:
        framing = "Transfer-Encoding: chunked" if self._chunked else ""
        keep = self._request.keep_alive and self._chunked
        self._request.keep_alive = keep
        self.started = True
        self._conn.write(_head(status, headers, framing, keep))

    async def write(self, data: bytes) -> None:
        if not data:
            return
        if self._chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        self._conn.write(data)
        await self._conn.drain()

    async def end(self) -> None:
        if self._chunked:
            self._conn.write(b"0\r\n\r\n")
        self.ended = True
        await self._conn.drain()


class _Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Connection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self._server = server
        self._loop = server.loop
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._queue: deque[Request] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._paused_reading = False
        self._can_write: asyncio.Future[None] | None = None
        self._write_paused = False
        self._idle: asyncio.TimerHandle | None = None
        self._reject: _Reject | None = None
        self._draining = False
        self._url = bytearray()
        self._items: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_size = 0

    # -- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._server._connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._server._connections.discard(self)
        if self._idle is not None:
            self._idle.cancel()
        self._queue.clear()
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)  # the writer wakes, finds the client gone

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._draining:  # after a refusal: read and drop, so the client sees the answer
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            reject = self._reject
            if reject is not None:
                self._fail(reject.status, str(reject))
            else:
                self._fail(400, f"malformed HTTP request ({exc})")

    # -- httptools callbacks --------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self._reject = None
        self._url.clear()
        self._items = []
        self._header_bytes = 0
        self._body = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > _MAX_URL:
            self._reject = _Reject(414, f"the request line is over {_MAX_URL} bytes")
            raise self._reject

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > _MAX_HEADERS:
            self._reject = _Reject(431, f"the request headers are over {_MAX_HEADERS} bytes")
            raise self._reject
        self._items.append(  # as the upstream client encodes them: forwarded byte for byte
            (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
        )

    def on_headers_complete(self) -> None:
        for name, value in self._items:
            lowered = name.lower()
            if lowered == "content-length" and value.strip().isdigit():
                if int(value) > self._server.max_body:
                    self._reject = _Reject(413, self._too_large())
                    raise self._reject
            elif lowered == "expect" and value.strip().lower() == "100-continue":
                self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._server.max_body:
            self._reject = _Reject(413, self._too_large())
            raise self._reject
        self._body.append(body)

    def on_message_complete(self) -> None:
        target = bytes(self._url).decode("utf-8", "surrogateescape")
        headers = {name.lower(): value for name, value in self._items}
        http_10 = self._parser.get_http_version() == "1.0"
        self._queue.append(
            Request(
                method=self._parser.get_method().decode("ascii", "replace"),
                path=target.partition("?")[0],
                headers=headers,
                items=self._items,
                body=b"".join(self._body),
                keep_alive=self._parser.should_keep_alive() and not http_10,
                http_10=http_10,
            )
        )
        if self._worker is None:
            self._worker = self._loop.create_task(self._work())
        elif len(self._queue) >= _QUEUE and self.transport is not None:
            self._paused_reading = True
            self.transport.pause_reading()

    # -- answering ------------------------------------------------------------------------
    def _too_large(self) -> str:
        return f"the request body is over {self._server.max_body} bytes"

    async def _work(self) -> None:
        try:
            while self._queue and self.transport is not None:
                request = self._queue.popleft()
                if self._paused_reading and len(self._queue) < _QUEUE // 2:
                    self._paused_reading = False
                    self.transport.resume_reading()
                stream = Stream(self, request)
                try:
                    response = await self._server.handler(request, stream)
                except Exception as exc:  # a bug in a handler: 500, and no reuse
                    if not isinstance(exc, ConnectionResetError):  # logged where asyncio logs
                        where = f"handling {request.method} {request.path[:200]}"
                        context = {"message": where, "exception": exc, "protocol": self}
                        self._loop.call_exception_handler(context)
                    if stream.started:
                        self.close()
                        return
                    request.keep_alive = False
                    message = f"internal error: {type(exc).__name__}"
                    response = json_response({"error": {"message": message}}, 500)
                if self.transport is None:  # the client left while its request was handled
                    return
                if response is not None and not stream.started:
                    length = f"Content-Length: {len(response.body)}"
                    head = _head(response.status, response.headers, length, request.keep_alive)
                    self.write(head if request.method == "HEAD" else head + response.body)
                elif not stream.ended:  # a stream left open by its handler cannot be reused
                    self.close()
                    return
                if not request.keep_alive:
                    self.close()
                    return
        finally:
            self._worker = None
        self._arm_idle()

    def write(self, data: bytes) -> None:
        if self.transport is None:
            raise ConnectionResetError("the client closed the connection")
        self.transport.write(data)

    async def drain(self) -> None:
        if self.transport is None:
            raise ConnectionResetError("the client closed the connection")
        if self._write_paused:
            self._can_write = self._loop.create_future()
            await self._can_write
            if self.transport is None:
                raise ConnectionResetError("the client closed the connection")

    def _fail(self, status: int, message: str) -> None:
        """Answer a request that cannot be parsed, and close: the byte stream is lost.

        The close lingers (up to 2 s, reading and dropping what still arrives): closing a
        socket with unread bytes resets it, and the reset can discard the answer before the
        client reads it — a client still sending a refused 100 MB body would see only
        "connection reset".
        """
        self._queue.clear()
        transport = self.transport
        if transport is None:
            return
        body = json.dumps({"error": {"message": message, "type": "invalid_request_error"}})
        head = _head(status, {"Content-Type": "application/json"},
                     f"Content-Length: {len(body)}", False)  # fmt: skip
        transport.write(head + body.encode())
        self._draining = True
        if transport.can_write_eof():
            transport.write_eof()
            self._loop.call_later(_LINGER_S, self.close)
        else:
            self.close()

    def _arm_idle(self) -> None:
        if self.transport is not None and self._worker is None:
            if self._idle is not None:
                self._idle.cancel()
            self._idle = self._loop.call_later(_KEEPALIVE_S, self.close)

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Server:
    """A listening socket serving ``handler``; :meth:`close` shuts it down gracefully."""

    def __init__(self, handler: Handler, *, max_body: int) -> None:
        self.handler = handler
        self.max_body = max_body
        self.loop = asyncio.get_running_loop()
        self._connections: set[_Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    async def listen(self, host: str, port: int) -> None:
        self._server = await self.loop.create_server(lambda: _Connection(self), host, port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            if not conn.busy:
                conn.close()
        workers = [c._worker for c in self._connections if c._worker is not None]
        if workers:
            await asyncio.wait(workers, timeout=_CLOSE_WAIT_S)
        for conn in list(self._connections):
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()


async def serve(handler: Handler, host: str, port: int, *, max_body: int) -> Server:
    """Listen on ``host:port`` (0: a free port, then in ``.port``)."""
    server = Server(handler, max_body=max_body)
    await server.listen(host, port)
    return server

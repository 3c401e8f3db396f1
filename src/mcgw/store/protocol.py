"""The Store API's HTTP/1.x connection: an :class:`asyncio.Protocol` over ``httptools``.

Every answer is computed synchronously when the request's last byte arrives, so a
connection is either reading a request or idle; pipelined requests are answered in order
as the parser completes them. Keep-alive follows the request (HTTP/1.1 unless
``connection: close``; HTTP/1.0 only with ``connection: keep-alive``). Bodies, sized or
chunked, are read and counted but not kept (``Expect: 100-continue`` is granted). When
the peer stops reading, reading pauses too, so a client cannot make the server buffer
without bound.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

import httptools

from mcgw.store import payload, requestlog

_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"
_HEALTHZ = b"/healthz"
_HEALTHZ_QUERY = b"/healthz?"
_HEAD = b"HEAD"
_HOST = b"host"
_EXPECT = b"expect"
_CONTINUE_TOKEN = b"100-continue"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_BAD_REQUEST = b"bad request\n"


class Shared:
    """What every connection of one server uses: built once, read per request."""

    __slots__ = ("clock", "closing", "connections", "heads", "log", "payload")

    def __init__(self, answer: payload.Payload, log: requestlog.RequestLog) -> None:
        self.payload = answer
        self.log = log
        self.heads = payload.Heads()
        self.clock = payload.Clock()
        self.connections: set[StoreProtocol] = set()
        self.closing = False
        """Set on shutdown: answer what is in progress, then close."""


class StoreProtocol(asyncio.Protocol):
    """One client connection."""

    __slots__ = (
        "_body_size",
        "_busy",
        "_expect_continue",
        "_headers",
        "_host",
        "_parser",
        "_shared",
        "_started",
        "_transport",
        "_url",
    )

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._host = b""
        self._body_size = 0
        self._started = 0.0
        self._busy = False
        """A request has begun and not been answered yet."""
        self._expect_continue = False

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._shared.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._shared.connections.discard(self)
        self._transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Upgrade and CONNECT are not served; the request before them was answered.
            self.close()
        except httptools.HttpParserError:
            self._answer_bad_request()

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._busy = True
        self._started = time.perf_counter()
        self._url = b""
        self._headers = []
        self._host = b""
        self._body_size = 0
        self._expect_continue = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        if len(name) == 4 and name.lower() == _HOST:
            self._host = value
        elif len(name) == 6 and name.lower() == _EXPECT:
            self._expect_continue = value.lower() == _CONTINUE_TOKEN

    def on_headers_complete(self) -> None:
        # A client that asked may wait (curl: 1 s) for leave to send its body: give it.
        if self._expect_continue and self._transport is not None:
            self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)

    def on_message_complete(self) -> None:
        transport = self._transport
        if transport is None:
            return
        shared = self._shared
        parser = self._parser
        method = parser.get_method()
        url = self._url
        http10 = parser.get_http_version() == "1.0"
        keep_alive = parser.should_keep_alive() and not shared.closing
        clock = shared.clock
        clock.advance(time.time())
        if url == _HEALTHZ or url.startswith(_HEALTHZ_QUERY):
            content_type = _TEXT
            body = payload.HEALTHZ_BODY
        else:
            content_type = _JSON
            body = shared.payload.render(
                method.decode("latin-1"),
                url.decode("latin-1"),
                self._host.decode("latin-1"),
                [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self._headers],
                self._body_size,
                clock.timestamp,
            )
        head = shared.heads.head(
            200, content_type, len(body), clock.date, http10=http10, keep_alive=keep_alive
        )
        if method == _HEAD:
            transport.write(head)
        else:
            transport.writelines((head, body))
        self._busy = False
        shared.log.record(method, url, 200, time.perf_counter() - self._started)
        if not keep_alive:
            transport.close()
            self._transport = None

    # shutdown

    def close(self) -> None:
        """Close now if idle; otherwise after the request in progress is answered."""
        if self._transport is not None and not self._busy:
            self._transport.close()
            self._transport = None

    def abort(self) -> None:
        """Drop the connection whatever its state (shutdown deadline passed)."""
        if self._transport is not None:
            self._transport.abort()
            self._transport = None

    def _answer_bad_request(self) -> None:
        transport = self._transport
        if transport is None:
            return
        shared = self._shared
        shared.clock.advance(time.time())
        head = shared.heads.head(
            400, _TEXT, len(_BAD_REQUEST), shared.clock.date, http10=False, keep_alive=False
        )
        transport.writelines((head, _BAD_REQUEST))
        transport.close()
        self._transport = None
        shared.log.record(b"-", self._url, 400, time.perf_counter() - self._started)

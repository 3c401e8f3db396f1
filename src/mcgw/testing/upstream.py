"""A scripted HTTP/1.1 origin server on loopback, for proxy tests.

:class:`FakeUpstream` listens on 127.0.0.1 and an ephemeral port in the running
loop. Each request is recorded as a :class:`Seen` and answered by a :class:`Reply`
(a fixed one, or one computed per request by a handler), which can also misbehave:
close without answering, reset, hang, or cut the body short.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Self

import httptools

_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Action(StrEnum):
    REPLY = "reply"
    """Send the response."""
    CLOSE = "close"
    """Close the connection (FIN) without sending anything."""
    RESET = "reset"
    """Reset the connection (RST) without sending anything."""
    HANG = "hang"
    """Never answer; keep the connection open."""
    PARTIAL = "partial"
    """Send the headers and half the body, then close."""


@dataclass(frozen=True, slots=True)
class Reply:
    """How to answer one request."""

    status: int = 200
    body: bytes = b"ok"
    headers: tuple[tuple[str, str], ...] = ()
    chunks: tuple[bytes, ...] | None = None
    """Send these as a chunked body instead of ``body`` with Content-Length."""
    close_delimited: bool = False
    """Send ``body`` without framing and close after it (HTTP/1.0 style)."""
    delay_s: float = 0.0
    """Seconds to wait before answering."""
    close: bool = False
    """Add ``Connection: close`` and close after the response."""
    action: Action = Action.REPLY


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the upstream received it."""

    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    connection: int
    """Which connection it came on: 1 for the first one accepted."""
    index: int
    """Position on its connection: 0 for the first request."""

    def header(self, name: str) -> str | None:
        """Return the first value of header ``name`` (any case), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]


Handler = Callable[[Seen], Reply]


@dataclass(slots=True)
class _Parsing:
    target: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)


class _Conn(asyncio.Protocol):
    def __init__(self, server: FakeUpstream, number: int) -> None:
        self.server = server
        self.number = number
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.cur = _Parsing()
        self.index = 0
        self.queue: deque[Seen] = deque()
        self.busy = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server._open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server._open.discard(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(_BAD_REQUEST)
            self._close()

    def on_url(self, url: bytes) -> None:
        self.cur.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.cur.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.cur.body.append(body)

    def on_message_complete(self) -> None:
        cur, self.cur = self.cur, _Parsing()
        seen = Seen(
            method=self.parser.get_method().decode("ascii"),
            target=cur.target.decode("latin-1"),
            version=self.parser.get_http_version(),
            headers=tuple(cur.headers),
            body=b"".join(cur.body),
            connection=self.number,
            index=self.index,
        )
        self.index += 1
        self.server.seen.append(seen)
        self.queue.append(seen)
        if not self.busy:
            self._next()

    def _next(self) -> None:
        if not self.queue or self.closed:
            self.busy = False
            return
        self.busy = True
        seen = self.queue.popleft()
        reply = self.server.reply_for(seen)
        if reply.delay_s > 0:
            asyncio.get_running_loop().call_later(reply.delay_s, self._answer, seen, reply)
        else:
            self._answer(seen, reply)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def _answer(self, seen: Seen, reply: Reply) -> None:
        if self.closed or self.transport is None:
            return
        if reply.action is Action.CLOSE:
            self._close()
            return
        if reply.action is Action.RESET:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.closed = True
            self.transport.abort()
            return
        if reply.action is Action.HANG:
            return
        head = [f"HTTP/1.1 {reply.status} Status\r\n".encode()]
        head += [f"{k}: {v}\r\n".encode("latin-1") for k, v in reply.headers]
        head_only = seen.method == "HEAD" or reply.status in (204, 304)
        if reply.chunks is not None:
            head.append(b"Transfer-Encoding: chunked\r\n")
            body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in reply.chunks if c) + b"0\r\n\r\n"
        elif reply.close_delimited:
            body = reply.body
        else:
            head.append(b"Content-Length: %d\r\n" % len(reply.body))
            body = reply.body
        close = reply.close or reply.close_delimited or reply.action is Action.PARTIAL
        if close:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        if head_only:
            body = b""
        if reply.action is Action.PARTIAL:
            body = body[: len(body) // 2]
        self._write(b"".join(head) + body)
        if close:
            self._close()
            return
        self._next()


class FakeUpstream:
    """An HTTP/1.1 server on loopback answering with scripted replies.

    Args:
        reply: the reply to every request, or a handler computing one per request;
            by default ``200`` with body ``name``.
        name: used in the default body, to tell upstreams apart.
    """

    def __init__(self, reply: Reply | Handler | None = None, *, name: str = "upstream") -> None:
        self.name = name
        self.reply: Reply | Handler = reply if reply is not None else Reply(body=name.encode())
        self.seen: list[Seen] = []
        """Every complete request received, in arrival order."""
        self.connections = 0
        """How many connections were accepted so far."""
        self._open: set[_Conn] = set()
        self._server: asyncio.Server | None = None
        self.host = "127.0.0.1"
        self.port = 0

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def reply_for(self, seen: Seen) -> Reply:
        return self.reply if isinstance(self.reply, Reply) else self.reply(seen)

    def _accept(self) -> _Conn:
        self.connections += 1
        return _Conn(self, self.connections)

    async def start(self) -> Self:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accept, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def close_connections(self) -> None:
        """Close every open connection (FIN), as an upstream's idle timeout would."""
        for conn in list(self._open):
            conn._close()

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
            self.close_connections()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def closed_port() -> int:
    """Return a loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

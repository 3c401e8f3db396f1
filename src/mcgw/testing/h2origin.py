"""An HTTP/2 (prior knowledge, "h2c") origin server on loopback, written with h2.

:class:`H2Origin` listens on 127.0.0.1 and an ephemeral port in the running loop.
Each request, once its stream ends, is recorded as an :class:`H2Request` and answered
by the handler's :class:`H2Reply`, which can also misbehave: wait, reset the stream,
close the connection, leave out Content-Length. Response bodies respect the client's
flow-control windows, so a reader that does not acknowledge DATA holds the reply back
(:attr:`H2Origin.blocked` counts replies waiting for credit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

import h2.config
import h2.connection
import h2.events
import h2.exceptions


@dataclass(slots=True)
class H2Request:
    """One request the origin saw, whole."""

    connection: int
    """Which connection it came on: 1 for the first accepted, and so on."""
    stream_id: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class H2Reply:
    """How to answer one request."""

    status: int = 200
    body: bytes = b"ok"
    headers: tuple[tuple[str, str], ...] = ()
    content_length: bool = True
    """Send a content-length header (else the body's length shows only at its end)."""
    delay_s: float = 0.0
    """Seconds to wait before answering."""
    reset: int | None = None
    """Reset the stream with this error code instead of answering."""
    close: bool = False
    """Close the TCP connection instead of answering."""


Handler = Callable[[H2Request], H2Reply]
"""Computes the reply to each request."""


@dataclass(slots=True)
class H2Origin:
    """An h2c server answering each request with ``handler(request)``; an async context manager."""

    handler: Handler = field(default=lambda req: H2Reply(body=req.body or b"ok"))
    seen: list[H2Request] = field(default_factory=list)
    connections: int = 0
    in_flight: int = 0
    """Requests being answered right now."""
    blocked: int = 0
    """Replies waiting for flow-control credit right now."""
    max_in_flight: int = 0
    server: asyncio.Server | None = None
    transports: list[asyncio.Transport] = field(default_factory=list)

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _H2Server(self), "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for t in self.transports:
            t.close()


class _H2Server(asyncio.Protocol):
    def __init__(self, origin: H2Origin) -> None:
        self.origin = origin
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="latin-1")
        )
        self.transport: asyncio.Transport | None = None
        self.requests: dict[int, tuple[dict[str, str], bytearray]] = {}
        self.window = asyncio.Event()
        self.number = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.origin.transports.append(self.transport)  # type: ignore[arg-type]
        self.origin.connections += 1
        self.number = self.origin.connections
        self.h2.initiate_connection()
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            assert self.transport is not None
            self.transport.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                self.requests[ev.stream_id] = (dict(ev.headers), bytearray())  # type: ignore[arg-type]
            elif isinstance(ev, h2.events.DataReceived):
                self.requests[ev.stream_id][1].extend(ev.data)
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                headers, body = self.requests.pop(ev.stream_id)
                req = H2Request(self.number, ev.stream_id, headers, bytes(body))
                asyncio.get_running_loop().create_task(self.respond(req))
            elif isinstance(ev, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                self.window.set()
        self.flush()

    async def respond(self, req: H2Request) -> None:
        origin = self.origin
        origin.seen.append(req)
        origin.in_flight += 1
        origin.max_in_flight = max(origin.max_in_flight, origin.in_flight)
        try:
            reply = origin.handler(req)
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            assert self.transport is not None
            if reply.close:
                self.transport.close()
                return
            sid = req.stream_id
            if reply.reset is not None:
                self.h2.reset_stream(sid, reply.reset)
                self.flush()
                return
            headers = [(":status", str(reply.status)), *reply.headers]
            if reply.content_length:
                headers.append(("content-length", str(len(reply.body))))
            self.h2.send_headers(sid, headers, end_stream=not reply.body)
            self.flush()
            body = memoryview(reply.body)
            sent = 0
            while sent < len(body):
                n = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
                if n <= 0:
                    self.window.clear()
                    origin.blocked += 1
                    try:
                        await self.window.wait()
                    finally:
                        origin.blocked -= 1
                    continue
                chunk = bytes(body[sent : sent + n])
                sent += len(chunk)
                self.h2.send_data(sid, chunk, end_stream=sent >= len(body))
                self.flush()
        except h2.exceptions.StreamClosedError:
            pass
        finally:
            origin.in_flight -= 1

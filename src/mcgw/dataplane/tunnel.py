"""Byte relay between a client and an endpoint after ``101 Switching Protocols``.

A WebSocket handshake (``Connection: upgrade`` + ``Upgrade: websocket``) is proxied
like any request; when the endpoint accepts it, the client connection hands both
sockets to a :class:`Tunnel` and leaves. From then on the proxy only copies bytes:

* each side is an :class:`End`, installed with ``transport.set_protocol``, so the
  HTTP machinery of either side sees nothing more;
* backpressure both ways: a full write buffer on one side pauses reading on the other;
* a FIN is passed on as a FIN (half-close), the second FIN or any side's loss closes
  both; closing flushes what is buffered first;
* :attr:`Tunnel.last_active` lets the owner's timeout sweep close an idle tunnel
  without a timer per tunnel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

_CONNECTION = b"connection"
_UPGRADE = b"upgrade"


def is_websocket_upgrade(method: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request asks to switch to WebSocket (RFC 6455 4.1, RFC 9110 7.8).

    Args:
        method: the request method (a handshake is a GET).
        headers: the request's header fields as received, any case.
    """
    if method != b"GET":
        return False
    connection_upgrade = websocket = False
    for name, value in headers:
        lower = name.lower()
        if lower == _CONNECTION:
            if any(t.strip().lower() == _UPGRADE for t in value.split(b",")):
                connection_upgrade = True
        elif lower == _UPGRADE and any(
            # A list of protocols, each maybe with a version: "websocket", "foo/2".
            t.strip().lower().split(b"/")[0] == b"websocket"
            for t in value.split(b",")
        ):
            websocket = True
    return connection_upgrade and websocket


class End(asyncio.Protocol):
    """One side of a :class:`Tunnel`: what it reads is written to the other side."""

    __slots__ = ("eof", "peer", "transport", "tunnel")

    def __init__(self, tunnel: Tunnel, transport: asyncio.Transport) -> None:
        self.tunnel = tunnel
        self.transport = transport
        self.peer: End = self
        self.eof = False
        """This side sent its FIN."""

    def data_received(self, data: bytes) -> None:
        self.tunnel.last_active = time.monotonic()
        self.peer.transport.write(data)

    def eof_received(self) -> bool | None:
        self.eof = True
        peer = self.peer
        if peer.eof or not peer.transport.can_write_eof():
            self.tunnel.close()
            return None
        peer.transport.write_eof()
        # Keep this transport open: the other direction may still carry bytes.
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.tunnel.close()

    def pause_writing(self) -> None:
        self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.peer.transport.is_closing():
            self.peer.transport.resume_reading()


class Tunnel:
    """Relays bytes between a client and an endpoint socket until either closes.

    Args:
        client: the client's transport (its 101 response already written).
        upstream: the endpoint's transport.
        on_close: called once when the tunnel closes, with the tunnel.
    """

    __slots__ = ("_on_close", "client", "closed", "last_active", "upstream")

    def __init__(
        self,
        client: asyncio.Transport,
        upstream: asyncio.Transport,
        on_close: Callable[[Tunnel], None],
    ) -> None:
        self.client = End(self, client)
        self.upstream = End(self, upstream)
        self.client.peer = self.upstream
        self.upstream.peer = self.client
        self._on_close = on_close
        self.closed = False
        self.last_active = time.monotonic()
        """Monotonic time bytes last moved either way."""

    def start(
        self,
        to_upstream: bytes = b"",
        to_client: bytes = b"",
        *,
        client_write_paused: bool = False,
        upstream_write_paused: bool = False,
    ) -> None:
        """Take both transports over and relay.

        Args:
            to_upstream: client bytes read past the request head.
            to_client: endpoint bytes read past the 101 head.
            client_write_paused: the client's write buffer is full right now.
            upstream_write_paused: the endpoint's write buffer is full right now.
        """
        client, up = self.client.transport, self.upstream.transport
        client.set_protocol(self.client)
        up.set_protocol(self.upstream)
        if to_upstream:
            up.write(to_upstream)
        if to_client:
            client.write(to_client)
        # Whoever paused reading before (the HTTP side) is gone: set it from the
        # write buffers as they are now.
        if client_write_paused:
            up.pause_reading()
        else:
            up.resume_reading()
        if upstream_write_paused:
            client.pause_reading()
        else:
            client.resume_reading()

    def close(self) -> None:
        """Close both sides after flushing what they hold (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.client.transport.close()
        self.upstream.transport.close()
        self._on_close(self)

    def abort(self) -> None:
        """Cut both sides now."""
        self.client.transport.abort()
        self.upstream.transport.abort()
        self.close()

"""Connections to endpoints: a keep-alive pool and the HTTP/1.1 response side.

Two layers, kept apart so the first can be tested without sockets:

* :class:`PoolBook` is pure bookkeeping: the idle connections per (address, port),
  most recently used last, and which connections to close (expired, over the
  per-endpoint limit). It never touches a socket; it returns what to close.
* :class:`Pool` and :class:`UpstreamConnection` do the I/O: TCP connects with a
  timeout, one response parser per connection (httptools), and the hand-off of
  every parsed piece to the :class:`Sink` (the client connection proxying it).

An upstream connection carries one request at a time (no pipelining). Response
headers are filtered here (hop-by-hop ones dropped, ``Via`` appended); framing is
reported to the sink, which re-frames for its client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from functools import partial
from typing import Generic, Protocol, TypeVar

import httptools

from mcgw.ir import table

Key = tuple[str, int]
"""(address, port) of an endpoint."""

T = TypeVar("T")

_CRLF = b"\r\n"
_CONNECTION = 1
_CONTENT_LENGTH = 2
_TRANSFER_ENCODING = 3
_VIA = 4
_HOP = 5
_RESPONSE_SPECIAL = {
    b"connection": _CONNECTION,
    b"content-length": _CONTENT_LENGTH,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"via": _VIA,
    b"keep-alive": _HOP,
    b"proxy-connection": _HOP,
    b"te": _HOP,
    b"trailer": _HOP,
    b"upgrade": _HOP,
}
"""Response headers the proxy does not pass through as they are (lower-case)."""

_PASS = 0
"""Header kind of a name passed through as it is."""

_NAME_CACHE_MAX = 1024
"""Bound on :func:`header_kind`'s cache of raw names; it restarts when full."""

_NOT_LISTED = frozenset({b"close", b"keep-alive", b""})
"""Connection tokens that name no header."""

_listed_cache: dict[bytes, frozenset[bytes]] = {}
"""Connection header value → the header names it lists (bounded like the name cache)."""


def header_kind(special: dict[bytes, int], cache: dict[bytes, int], name: bytes) -> int:
    """Return ``special[name.lower()]``, or 0, remembering the answer per raw ``name``.

    Peers send the same few header names in the same case on every message, so a
    lookup of the name as received usually answers without lower-casing it. Called
    on a cache miss only: callers try ``cache.get(name)`` inline first.
    """
    kind = special.get(name.lower(), _PASS)
    if len(cache) >= _NAME_CACHE_MAX:
        cache.clear()
    cache[name] = kind
    return kind


_response_kinds: dict[bytes, int] = {}


class PoolBook(Generic[T]):
    """Idle keep-alive connections per endpoint: bookkeeping only.

    Args:
        idle_s: seconds an idle connection stays reusable.
        max_idle: most idle connections kept per endpoint.
    """

    __slots__ = ("_idle", "idle_s", "max_idle")

    def __init__(self, idle_s: float, max_idle: int) -> None:
        self.idle_s = idle_s
        self.max_idle = max_idle
        self._idle: dict[Key, list[tuple[T, float]]] = {}
        """Per endpoint, (connection, idle since), oldest first."""

    # take and give run once per request: they answer "nothing to close" with the
    # shared empty tuple rather than a new list.

    def take(self, key: Key, now: float) -> tuple[T | None, tuple[T, ...]]:
        """Return the most recently used reusable connection, and expired ones to close."""
        idle = self._idle.get(key)
        if not idle:
            return None, ()
        conn, since = idle.pop()
        if since + self.idle_s > now:
            return conn, ()
        # The freshest one expired, so did every older one.
        expired = (conn, *(c for c, _ in idle))
        del self._idle[key]
        return None, expired

    def give(self, key: Key, conn: T, now: float) -> tuple[T, ...]:
        """Make ``conn`` reusable; return connections to close (over the limit)."""
        idle = self._idle.get(key)
        if idle is None:
            idle = self._idle[key] = []
        idle.append((conn, now))
        if len(idle) <= self.max_idle:
            return ()
        excess = len(idle) - self.max_idle
        closing = tuple(c for c, _ in idle[:excess])
        del idle[:excess]
        return closing

    def forget(self, key: Key, conn: T) -> bool:
        """Drop ``conn`` (closed by its peer while idle); return whether it was idle."""
        idle = self._idle.get(key)
        if not idle:
            return False
        for i, (c, _) in enumerate(idle):
            if c is conn:
                del idle[i]
                if not idle:
                    del self._idle[key]
                return True
        return False

    def expire(self, now: float) -> list[T]:
        """Remove and return every connection idle for ``idle_s`` or more."""
        closing: list[T] = []
        limit = now - self.idle_s
        for key in list(self._idle):
            idle = self._idle[key]
            n = 0
            while n < len(idle) and idle[n][1] <= limit:
                n += 1
            if n:
                closing.extend(c for c, _ in idle[:n])
                del idle[:n]
                if not idle:
                    del self._idle[key]
        return closing

    def drop(self, key: Key) -> list[T]:
        """Remove and return the idle connections to ``key``."""
        return [c for c, _ in self._idle.pop(key, ())]

    def drain(self) -> list[T]:
        """Remove and return every idle connection."""
        closing = [c for idle in self._idle.values() for c, _ in idle]
        self._idle.clear()
        return closing

    def idle_count(self, key: Key | None = None) -> int:
        """Return the number of idle connections (to ``key``, or in total)."""
        if key is not None:
            return len(self._idle.get(key, ()))
        return sum(len(idle) for idle in self._idle.values())


class Writer(Protocol):
    """Where the client connection writes the request (a socket, or an HTTP/2 stream)."""

    def write(self, data: bytes) -> None: ...

    def writelines(self, data: Iterable[bytes]) -> None: ...

    def is_closing(self) -> bool: ...


class Upstream(Protocol):
    """What carries one exchange to an endpoint: an :class:`UpstreamConnection`, or
    an ``h2upstream.Stream`` for ``h2c`` backends."""

    closed: bool
    write_paused: bool
    request_sent: bool
    """The whole request went out (an HTTP/1.1 connection is reusable only then)."""

    @property
    def transport(self) -> Writer: ...

    def attach(self, sink: Sink, expect_body: bool, upgrade: bool = False) -> None: ...

    def abandon(self) -> None: ...

    def close(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class Sink(Protocol):
    """The side a response is proxied to (``protocol.ClientConnection``)."""

    def upstream_head(
        self,
        status: int,
        reason: bytes,
        lines: list[bytes],
        content_length: int,
        chunked: bool,
        has_body: bool,
    ) -> None:
        """Response headers arrived: ``lines`` are filtered header lines (CRLF-ended)."""

    def upstream_body(self, data: bytes) -> None:
        """A piece of the (de-chunked) response body arrived."""

    def upstream_flush(self) -> None:
        """One network read was parsed: write what was collected."""

    def upstream_done(self, conn: Upstream) -> None:
        """The response is complete; ``conn`` is already pooled or closed."""

    def upstream_lost(self, conn: Upstream, got_bytes: bool) -> None:
        """The connection closed or broke before the response was complete."""

    def upstream_upgrade(self, conn: UpstreamConnection, lines: list[bytes], rest: bytes) -> None:
        """The endpoint accepted an upgrade (101): ``conn`` is the sink's to take over.

        ``lines`` are the 101's filtered header lines, ``rest`` the bytes read past it.
        """

    def upstream_pause(self) -> None:
        """The upstream write buffer is full: stop reading the request body."""

    def upstream_resume(self) -> None:
        """The upstream write buffer drained."""


class UpstreamConnection(asyncio.Protocol):
    """One TCP connection to an endpoint, parsing HTTP/1.1 responses."""

    __slots__ = (
        "chunked",
        "close_delimited",
        "closed",
        "conn_tokens",
        "content_length",
        "done",
        "expect_body",
        "got_bytes",
        "head_done",
        "informational",
        "keep_alive",
        "key",
        "lines",
        "parser",
        "pool",
        "read_paused",
        "reason",
        "request_sent",
        "sink",
        "transport",
        "upgrade",
        "via_in",
        "via_line",
        "via_value",
        "write_paused",
    )

    def __init__(self, pool: Pool, key: Key) -> None:
        self.pool = pool
        self.key = key
        self.via_value = pool.via
        self.via_line = pool.via_line
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpResponseParser(self)
        self.sink: Sink | None = None
        self.closed = False
        self.read_paused = False
        self.write_paused = False
        self.expect_body = True
        self.upgrade = False
        """The request asks for a WebSocket upgrade: a 101 hands the socket over."""
        self._reset()

    def _reset(self) -> None:
        self.reason = b""
        self.lines: list[bytes] = []
        self.content_length = -1
        self.chunked = False
        self.conn_tokens: bytes | None = None
        self.via_in: bytes | None = None
        self.head_done = False
        self.done = False
        self.got_bytes = False
        self.informational = False
        self.keep_alive = False
        self.close_delimited = False
        self.request_sent = False

    # -- used by the sink -------------------------------------------------------

    def attach(self, sink: Sink, expect_body: bool, upgrade: bool = False) -> None:
        """Start an exchange: responses now go to ``sink``.

        Args:
            expect_body: False for HEAD, whose response has headers only.
            upgrade: the request asks to switch to WebSocket.
        """
        self._reset()
        self.sink = sink
        self.expect_body = expect_body
        self.upgrade = upgrade

    def abandon(self) -> None:
        """Give up the exchange (timeout, client gone): the connection is closed."""
        self.sink = None
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def pause_reading(self) -> None:
        if not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    # -- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.pool.live.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.live.discard(self)
        sink = self.sink
        if sink is None:
            self.pool.forget(self)
            return
        self.sink = None
        if self.head_done and self.close_delimited:
            # The body ran until the close: that is its end.
            sink.upstream_done(self)
        else:
            sink.upstream_lost(self, self.got_bytes)

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is None:
            # Nobody asked: a broken or confused peer. Not reusable.
            self.close()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.sink = None
            self.close()
            sink.upstream_lost(self, True)
            return
        except httptools.HttpParserUpgrade as exc:
            self.sink = None
            if not (self.upgrade and self.head_done):
                # A 101 nobody asked for: the stream cannot be parsed any further.
                self.close()
                sink.upstream_lost(self, True)
                return
            # The socket is no longer an HTTP connection of this pool.
            self.pool.live.discard(self)
            self.closed = True
            lines = self.lines
            if self.conn_tokens is not None:
                lines = filter_connection_listed(lines, self.conn_tokens)
            if self.via_in is None:
                lines.append(self.via_line)
            else:
                lines.append(b"Via: " + self.via_in + b", " + self.via_value + _CRLF)
            sink.upstream_upgrade(self, lines, data[exc.args[0] :])
            return
        if self.done:
            self.sink = None
            self.done = False
            if self.keep_alive and self.request_sent and not self.closed:
                self.pool.give(self)
            else:
                self.close()
            sink.upstream_done(self)
        elif self.sink is sink:
            sink.upstream_flush()

    def eof_received(self) -> bool | None:
        return None

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.sink is not None:
            self.sink.upstream_pause()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.sink is not None:
            self.sink.upstream_resume()

    # -- httptools callbacks --------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        kind = _response_kinds.get(name)
        if kind is None:
            kind = header_kind(_RESPONSE_SPECIAL, _response_kinds, name)
        if kind == _PASS:
            self.lines.append(name + b": " + value + _CRLF)
        elif kind == _CONTENT_LENGTH:
            self.content_length = int(value)
        elif kind == _TRANSFER_ENCODING:
            self.chunked = value.rstrip().lower().endswith(b"chunked")
        elif kind == _CONNECTION:
            tokens = self.conn_tokens
            self.conn_tokens = value if tokens is None else tokens + b"," + value
        elif kind == _VIA:
            self.via_in = value if self.via_in is None else self.via_in + b", " + value

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            if status == 101 and self.upgrade:
                # Switching protocols: data_received hands the socket to the sink.
                self.head_done = True
                return
            # 100 Continue and friends: the proxy answers Expect itself.
            self.informational = True
            return
        self.head_done = True
        self.keep_alive = self.parser.should_keep_alive()
        lines = self.lines
        if self.conn_tokens is not None:
            lines = filter_connection_listed(lines, self.conn_tokens)
        if self.via_in is None:
            lines.append(self.via_line)
        else:
            lines.append(b"Via: " + self.via_in + b", " + self.via_value + _CRLF)
        has_body = self.expect_body and status != 204 and status != 304
        self.close_delimited = has_body and self.content_length < 0 and not self.chunked
        if self.close_delimited:
            self.keep_alive = False
        sink = self.sink
        if sink is not None:
            sink.upstream_head(
                status, self.reason, lines, self.content_length, self.chunked, has_body
            )
        if not self.expect_body:
            # httptools cannot be told the request was HEAD: it would wait for a
            # Content-Length body that never comes. Start the next one afresh.
            self.parser = httptools.HttpResponseParser(self)
            self.done = True

    def on_body(self, body: bytes) -> None:
        sink = self.sink
        if sink is not None:
            sink.upstream_body(body)

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            self.reason = b""
            self.lines = []
            self.content_length = -1
            self.chunked = False
            self.conn_tokens = None
            self.via_in = None
            return
        self.done = True


def filter_connection_listed(lines: list[bytes], tokens: bytes) -> list[bytes]:
    """Return ``lines`` without the headers a Connection header lists (RFC 9110 7.6.1)."""
    # Usually ``keep-alive`` or ``close`` on every message: remember what a value lists.
    drop = _listed_cache.get(tokens)
    if drop is None:
        drop = frozenset(t.strip().lower() for t in tokens.split(b",")) - _NOT_LISTED
        if len(_listed_cache) >= _NAME_CACHE_MAX:
            _listed_cache.clear()
        _listed_cache[tokens] = drop
    if not drop:
        return lines
    return [line for line in lines if line.split(b":", 1)[0].strip().lower() not in drop]


def absolute_form(target: bytes) -> tuple[bytes, bytes, bytes] | None:
    """Split an absolute-form request target (``http://host:port/p?q``, RFC 9112 3.2.2).

    Shared by the HTTP/1.1 client side (routing, origin-form upstream) and the h2c
    hop (``:authority``, ``:path``), so both read such a target the same way.

    Returns:
        (authority, path, query): ``host[:port]`` without userinfo (an IPv6 host in
        brackets), the path (``/`` when empty) and the query without ``?``; None for
        any other form (origin-form, ``*``, authority-form) or an unparsable target.
    """
    if target[:1] == b"/" or target == b"*":
        return None
    try:
        url = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        return None
    host = url.host
    if not url.schema or not host:
        return None
    if b":" in host:
        host = b"[" + host + b"]"
    authority = host if url.port is None else b"%s:%d" % (host, url.port)
    return authority, url.path or b"/", url.query or b""


class Pool:
    """Keep-alive connections to endpoints, reused most-recently-used first.

    Args:
        connect_timeout_s: seconds a TCP connect may take.
        idle_s: seconds an idle connection stays reusable.
        max_idle: most idle connections kept per endpoint.
        via: the proxy's ``Via`` value, appended to responses.
    """

    __slots__ = (
        "_book",
        "_clock",
        "_cut_at",
        "_drain_s",
        "_serving",
        "connect_timeout_s",
        "live",
        "retired",
        "via",
        "via_line",
    )

    def __init__(
        self, *, connect_timeout_s: float, idle_s: float, max_idle: int, via: bytes
    ) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.via = via
        self.via_line = b"Via: " + via + _CRLF
        """The ``Via`` header line of responses that had none, built once."""
        self._book: PoolBook[UpstreamConnection] = PoolBook(idle_s, max_idle)
        self._clock = time.monotonic
        self.live: set[UpstreamConnection] = set()
        """Every open connection, idle or busy (for shutdown)."""
        self._serving: frozenset[Key] | None = None
        """Ready endpoints of the current route table (None before the first)."""
        self.retired: set[Key] = set()
        """Endpoints that left the table (or are no longer ready): connections to them
        are closed when idle, never pooled again (mutated in place, never rebound)."""
        self._cut_at: dict[Key, float] = {}
        """Retired endpoints with a draining timeout → when their busy connections are
        cut."""
        self._drain_s: dict[Key, float] = {}
        """Endpoint → its backends' draining timeout, in the current table."""

    def take(self, key: Key) -> UpstreamConnection | None:
        """Return an idle connection to ``key``, or None (then :meth:`connect`)."""
        conn, expired = self._book.take(key, self._clock())
        for stale in expired:
            stale.close()
        return conn

    def give(self, conn: UpstreamConnection) -> None:
        """Return a connection whose response is complete."""
        if self.retired and conn.key in self.retired:
            conn.close()  # Its endpoint is draining: nothing new goes there.
            return
        if conn.read_paused:
            conn.resume_reading()
        for extra in self._book.give(conn.key, conn, self._clock()):
            extra.close()

    def forget(self, conn: UpstreamConnection) -> None:
        """Drop a connection its peer closed while idle."""
        self._book.forget(conn.key, conn)

    def expire(self) -> None:
        """Close connections idle for too long, and those to endpoints whose draining
        timeout is over (called periodically)."""
        now = self._clock()
        for conn in self._book.expire(now):
            conn.close()
        if self._cut_at:
            over = {key for key, at in self._cut_at.items() if at <= now}
            if over:
                for key in over:
                    del self._cut_at[key]
                for conn in [c for c in self.live if c.key in over]:
                    conn.close()

    def update(self, route_table: table.RouteTable) -> None:
        """Drain the endpoints ``route_table`` no longer serves (connection draining).

        An endpoint that left (gone from the table, or not ready) gets no new request
        (the balancer sees to that); here its idle connections close now, busy ones
        close when their response ends, and, when its backend's GCPBackendPolicy sets
        ``connectionDraining.drainingTimeoutSec``, those still busy then are cut.
        """
        serving: set[Key] = set()
        timeouts: dict[Key, float] = {}
        for backend in route_table.backends:
            drain_s = backend.draining_timeout_s
            for group in backend.groups:
                for endpoint in group.endpoints:
                    key = (endpoint.address, endpoint.port)
                    if endpoint.ready:
                        serving.add(key)
                    if drain_s is not None:
                        # Several backends may name one endpoint: the longest wins.
                        timeouts[key] = max(drain_s, timeouts.get(key, 0.0))
        previous = self._serving
        previous_drain_s = self._drain_s
        self._serving = frozenset(serving)
        self._drain_s = timeouts
        busy = {c.key for c in self.live}
        # Forget retired endpoints that serve again or have no connection left.
        self.retired.intersection_update(busy - serving)
        for key in serving:
            self._cut_at.pop(key, None)
        if previous is None:
            return
        now = self._clock()
        for key in previous - serving:
            for conn in self._book.drop(key):
                conn.close()
            if key not in busy:
                continue
            self.retired.add(key)
            # A key gone from the table keeps the timeout its backend had.
            drain_s = timeouts.get(key, previous_drain_s.get(key))
            if drain_s is not None:
                self._cut_at[key] = now + drain_s

    def idle_count(self, key: Key | None = None) -> int:
        return self._book.idle_count(key)

    async def connect(self, key: Key) -> UpstreamConnection:
        """Open a new connection to ``key``.

        Raises:
            OSError: refused, unreachable, reset.
            TimeoutError: not connected within ``connect_timeout_s``.
        """
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout_s):
            _, conn = await loop.create_connection(partial(UpstreamConnection, self, key), *key)
        return conn

    def close(self) -> None:
        """Close every connection, idle or busy."""
        self._book.drain()
        for conn in list(self.live):
            conn.sink = None
            conn.close()

"""Cleartext HTTP/2 to endpoints of ``h2c`` backends (appProtocol ``kubernetes.io/h2c``).

The client side stays HTTP/1.1; only the hop to the endpoint speaks HTTP/2 with prior
knowledge (RFC 9113 3.3), through the ``h2`` state machine. Requests share one
connection per endpoint as streams.

A :class:`Stream` stands in for :class:`upstream.UpstreamConnection` towards the
client connection (both satisfy :class:`upstream.Upstream`): the client connection
writes the HTTP/1.1 request it built, head and framed body, to ``stream.transport``,
and the stream turns it back into HEADERS and DATA frames. Re-parsing our own
well-formed head costs little and keeps the HTTP/1.1 path free of any HTTP/2 case.
Responses reach the same :class:`upstream.Sink` callbacks as HTTP/1.1 ones.

Pure pieces, tested without sockets:

* :func:`request_headers`: HTTP/1.1 head fields → HTTP/2 header block.
* :func:`response_head`: HTTP/2 response headers → status line parts and header lines
  for an HTTP/1.1 client (no pseudo-headers, no hop-by-hop fields, ``Via`` added).
* :class:`Outbox`: request body bytes waiting for flow-control credit.
* :class:`ConnBook`: which connection takes new streams per endpoint, stream counts,
  idle times, which connections to close.

Flow control: request DATA goes out only within the peer's windows; beyond
:data:`HIGH_WATER` buffered bytes the stream reports ``write_paused`` and the sink
stops reading its client. Response DATA is acknowledged (window handed back) as it is
passed on, unless the sink paused the stream because its client is slow: then the
credit is held back until it resumes, so a slow client throttles its stream only.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import time
from collections import deque
from collections.abc import Iterable
from functools import partial
from typing import Generic, TypeVar

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import httptools

from mcgw.dataplane import upstream

C = TypeVar("C")

HIGH_WATER = 64 * 1024
"""Request body bytes buffered per stream before the sink is told to stop reading."""
LOW_WATER = 16 * 1024
"""Buffered bytes at or below which a paused sink is told to read again."""
STREAM_WINDOW = 1024 * 1024
"""Receive window per stream we advertise (INITIAL_WINDOW_SIZE)."""
CONNECTION_WINDOW = 16 * 1024 * 1024
"""Receive window of a whole connection: several paused streams cannot starve it."""

_CRLF = b"\r\n"
_REFUSED = h2.errors.ErrorCodes.REFUSED_STREAM

_REQUEST_DROP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"http2-settings",
        b"host",
    }
)
"""Request fields HTTP/2 forbids (RFC 9113 8.2.2) or carries as a pseudo-header."""

_RESPONSE_DROP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"te",
        b"trailer",
    }
)
"""Response fields an HTTP/1.1 client must not get from the endpoint as they are."""

_PHRASES = {s.value: s.phrase.encode("latin-1") for s in http.HTTPStatus}
"""Reason phrases for the status line: HTTP/2 carries none."""


class BadResponse(ValueError):
    """An HTTP/2 response head the proxy cannot relay (no valid ``:status``)."""


def request_headers(
    method: bytes,
    target: bytes,
    fields: Iterable[tuple[bytes, bytes]],
    default_authority: bytes,
) -> list[tuple[bytes, bytes]]:
    """Return the HTTP/2 header block of an HTTP/1.1 request.

    Args:
        method: request method.
        target: request target, origin-form (``/p?q``), ``*`` or absolute-form (whose
            authority then wins over Host).
        fields: header fields as sent on HTTP/1.1 (any case, framing included).
        default_authority: ``:authority`` when the request has no Host (HTTP/1.0).

    Returns:
        Pseudo-headers first, then lower-case fields, hop-by-hop ones dropped
        (``te`` kept only as ``trailers``, the one value HTTP/2 allows).
    """
    authority = b""
    rest: list[tuple[bytes, bytes]] = []
    for name, value in fields:
        lower = name.lower()
        if lower in _REQUEST_DROP:
            if lower == b"host" and not authority:
                authority = value
        elif lower == b"te":
            if value.strip().lower() == b"trailers":
                rest.append((lower, b"trailers"))
        else:
            rest.append((lower, value))
    path = target
    absolute = upstream.absolute_form(target)
    if absolute is not None:
        # RFC 9112 3.2.2: the target's authority wins over any Host field.
        authority, path, query = absolute
        if query:
            path += b"?" + query
    return [
        (b":method", method),
        (b":scheme", b"http"),
        (b":authority", authority or default_authority),
        (b":path", path),
        *rest,
    ]


def response_head(
    headers: Iterable[tuple[bytes, bytes]], via_value: bytes
) -> tuple[int, bytes, list[bytes], int]:
    """Map an HTTP/2 response head to what an HTTP/1.1 client gets.

    Args:
        headers: the response's header block (lower-case names, pseudo-headers first).
        via_value: the proxy's ``Via`` value, appended to any the endpoint sent.

    Returns:
        (status, reason phrase, CRLF-ended header lines, Content-Length or -1).

    Raises:
        BadResponse: no ``:status``, or one that is not a number.
    """
    status = -1
    content_length = -1
    via_in: bytes | None = None
    lines: list[bytes] = []
    for name, value in headers:
        if name[:1] == b":":
            if name == b":status":
                try:
                    status = int(value)
                except ValueError:
                    raise BadResponse(f"bad :status {value!r}") from None
        elif name == b"content-length":
            try:
                content_length = int(value)
            except ValueError:
                raise BadResponse(f"bad content-length {value!r}") from None
        elif name == b"via":
            via_in = value if via_in is None else via_in + b", " + value
        elif name not in _RESPONSE_DROP:
            lines.append(name + b": " + value + _CRLF)
    if not 100 <= status <= 999:
        raise BadResponse("response without a valid :status")
    lines.append(b"Via: " + (via_value if via_in is None else via_in + b", " + via_value) + _CRLF)
    return status, _PHRASES.get(status, b""), lines, content_length


class Outbox:
    """Request body bytes of one stream waiting for flow-control credit."""

    __slots__ = ("_pieces", "ended", "size")

    def __init__(self) -> None:
        self._pieces: deque[bytes | memoryview] = deque()
        self.size = 0
        """Bytes waiting."""
        self.ended = False
        """The whole body has been pushed (END_STREAM follows the last byte)."""

    def push(self, data: bytes) -> None:
        if data:
            self._pieces.append(data)
            self.size += len(data)

    def take(self, window: int, max_frame: int) -> list[bytes | memoryview]:
        """Remove and return DATA payloads: each at most ``max_frame``, ``window`` in all."""
        out: list[bytes | memoryview] = []
        pieces = self._pieces
        while pieces and window > 0:
            piece = pieces[0]
            n = min(len(piece), window, max_frame)
            if n == len(piece):
                pieces.popleft()
            else:
                # Views, not copies: a large piece leaves in many frames.
                view = memoryview(piece)
                pieces[0] = view[n:]
                piece = view[:n]
            out.append(piece)
            window -= n
            self.size -= n
        return out

    def clear(self) -> None:
        self._pieces.clear()
        self.size = 0


class _Entry:
    __slots__ = ("idle_since", "key", "retired", "streams")

    def __init__(self, key: upstream.Key, now: float) -> None:
        self.key = key
        self.streams = 0
        self.idle_since = now
        self.retired = False


class ConnBook(Generic[C]):
    """HTTP/2 connections per endpoint: bookkeeping only, no sockets.

    Each endpoint has at most one *current* connection taking new streams; a retired
    one (GOAWAY received, stream limit reached, replaced) finishes its streams and is
    then closed. A current connection without streams for ``idle_s`` is closed.

    Args:
        idle_s: seconds a connection without streams is kept.
    """

    __slots__ = ("_current", "_entries", "idle_s")

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self._current: dict[upstream.Key, C] = {}
        self._entries: dict[C, _Entry] = {}

    def current(self, key: upstream.Key) -> C | None:
        """Return the connection new streams to ``key`` go to, if any."""
        return self._current.get(key)

    def add(self, key: upstream.Key, conn: C, now: float) -> list[C]:
        """Make ``conn`` the current connection to ``key``; return connections to close."""
        old = self._current.get(key)
        self._current[key] = conn
        self._entries[conn] = _Entry(key, now)
        if old is not None:
            return self.retire(old)
        return []

    def retire(self, conn: C) -> list[C]:
        """Take no new streams on ``conn``; return it if it can be closed now."""
        entry = self._entries.get(conn)
        if entry is None:
            return []
        entry.retired = True
        if self._current.get(entry.key) is conn:
            del self._current[entry.key]
        if entry.streams == 0:
            del self._entries[conn]
            return [conn]
        return []

    def opened(self, conn: C) -> None:
        """A stream was opened on ``conn``."""
        entry = self._entries.get(conn)
        if entry is not None:
            entry.streams += 1

    def finished(self, conn: C, now: float) -> bool:
        """A stream of ``conn`` ended; return whether ``conn`` should now be closed."""
        entry = self._entries.get(conn)
        if entry is None:
            return False
        entry.streams -= 1
        if entry.streams > 0:
            return False
        entry.idle_since = now
        if entry.retired:
            del self._entries[conn]
            return True
        return False

    def forget(self, conn: C) -> None:
        """Drop ``conn`` (closed)."""
        entry = self._entries.pop(conn, None)
        if entry is not None and self._current.get(entry.key) is conn:
            del self._current[entry.key]

    def expire(self, now: float) -> list[C]:
        """Remove and return connections without streams for ``idle_s`` or more."""
        limit = now - self.idle_s
        closing = [c for c, e in self._entries.items() if e.streams == 0 and e.idle_since <= limit]
        for conn in closing:
            self.forget(conn)
        return closing

    def streams(self, conn: C) -> int:
        entry = self._entries.get(conn)
        return 0 if entry is None else entry.streams

    def drain(self) -> list[C]:
        """Remove and return every connection."""
        conns = list(self._entries)
        self._entries.clear()
        self._current.clear()
        return conns


class Stream:
    """One request/response exchange on a :class:`Connection` (an :class:`upstream.Upstream`).

    Its ``transport`` is itself: it accepts the HTTP/1.1 request bytes the client
    connection writes and sends them as HTTP/2 frames.
    """

    __slots__ = (
        "_fields",
        "_head_sent",
        "_method",
        "_outbox",
        "_parser",
        "_target",
        "_unacked",
        "closed",
        "conn",
        "expect_body",
        "got_head",
        "id",
        "local_ended",
        "read_paused",
        "request_sent",
        "sink",
        "write_paused",
    )

    def __init__(self, conn: Connection, stream_id: int) -> None:
        self.conn = conn
        self.id = stream_id
        self.sink: upstream.Sink | None = None
        self.expect_body = True
        self.closed = False
        self.request_sent = False
        self.write_paused = False
        self.read_paused = False
        self.got_head = False
        self.local_ended = False
        self._parser = httptools.HttpRequestParser(self)
        self._method: bytes | None = None
        self._target = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._head_sent = False
        self._outbox = Outbox()
        self._unacked = 0

    # -- upstream.Upstream -------------------------------------------------------

    @property
    def transport(self) -> Stream:
        return self

    def attach(self, sink: upstream.Sink, expect_body: bool, upgrade: bool = False) -> None:
        """Start the exchange: responses go to ``sink`` (``upgrade`` is not for HTTP/2)."""
        self.sink = sink
        self.expect_body = expect_body

    def abandon(self) -> None:
        """Give up the exchange: the stream is reset, the connection lives on."""
        self.sink = None
        if not self.closed:
            self._end(h2.errors.ErrorCodes.CANCEL)

    def close(self) -> None:
        self.abandon()

    def pause_reading(self) -> None:
        self.read_paused = True

    def resume_reading(self) -> None:
        if not self.read_paused:
            return
        self.read_paused = False
        if self._unacked and not self.closed:
            n, self._unacked = self._unacked, 0
            self.conn.h2.acknowledge_received_data(n, self.id)
            self.conn.flush()

    # -- the transport side: HTTP/1.1 request bytes in ---------------------------------

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            # Our own framing: cannot happen short of a bug. Fail the exchange.
            self._lost(True)
            return
        self._pump()

    def writelines(self, pieces: Iterable[bytes]) -> None:
        self.write(b"".join(pieces))

    def is_closing(self) -> bool:
        return self.closed or self.conn.closed

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self._target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields.append((name, value))

    def on_headers_complete(self) -> None:
        self._method = self._parser.get_method()

    def on_body(self, body: bytes) -> None:
        self._outbox.push(body)

    def on_message_complete(self) -> None:
        self._outbox.ended = True

    # -- sending -------------------------------------------------------------------

    def _pump(self) -> None:
        """Send what flow control allows: the head, body bytes, END_STREAM."""
        if self.closed or self._method is None:
            return
        conn = self.conn
        h = conn.h2
        box = self._outbox
        try:
            if not self._head_sent:
                self._head_sent = True
                end = box.ended and not box.size
                fields = request_headers(self._method, self._target, self._fields, conn.authority)
                self._fields = []
                h.send_headers(self.id, fields, end_stream=end)
                if end:
                    self.local_ended = self.request_sent = True
            if not self.local_ended:
                if box.size:
                    window = h.local_flow_control_window(self.id)
                    for piece in box.take(window, h.max_outbound_frame_size):
                        h.send_data(self.id, piece)
                if box.ended and not box.size:
                    h.end_stream(self.id)
                    self.local_ended = self.request_sent = True
        except h2.exceptions.StreamClosedError:
            # Reset by the peer meanwhile: its StreamReset event settles the exchange.
            box.clear()
        conn.flush()
        self._check_pause()

    def _check_pause(self) -> None:
        size = self._outbox.size
        if self.write_paused:
            if size <= LOW_WATER and not self.conn.write_paused:
                self.write_paused = False
                if self.sink is not None:
                    self.sink.upstream_resume()
        elif size > HIGH_WATER or self.conn.write_paused:
            self.write_paused = True
            if self.sink is not None:
                self.sink.upstream_pause()

    # -- receiving (called by the connection) ----------------------------------------

    def _on_head(self, headers: list[tuple[bytes, bytes]], ended: bool) -> None:
        sink = self.sink
        try:
            status, reason, lines, length = response_head(headers, self.conn.pool.via)
        except BadResponse:
            self._end(h2.errors.ErrorCodes.PROTOCOL_ERROR)
            if sink is not None:
                self.sink = None
                sink.upstream_lost(self, True)
            return
        self.got_head = True
        has_body = self.expect_body and status != 204 and status != 304
        if ended and has_body and length < 0:
            length = 0
        if sink is not None:
            sink.upstream_head(status, reason, lines, length, False, has_body)

    def _on_data(self, data: bytes, flow_length: int) -> None:
        sink = self.sink
        if sink is not None and self.got_head and self.expect_body and data:
            sink.upstream_body(data)
        if self.read_paused:
            self._unacked += flow_length
        elif flow_length:
            self.conn.h2.acknowledge_received_data(flow_length, self.id)

    def _on_end(self) -> None:
        sink = self.sink
        self.sink = None
        if not self.local_ended:
            # Answered before the whole request was sent (e.g. an early error): the
            # rest of the body is not wanted (RFC 9113 8.1).
            self._end(h2.errors.ErrorCodes.NO_ERROR)
        else:
            self._release()
        if sink is not None:
            sink.upstream_done(self)

    def _on_reset(self, error_code: int) -> None:
        self._release()
        sink = self.sink
        if sink is not None:
            self.sink = None
            # REFUSED_STREAM promises the request was not processed: safe to retry.
            sink.upstream_lost(self, self.got_head or error_code != _REFUSED)

    def _lost(self, got_bytes: bool) -> None:
        """The connection failed under this stream."""
        self._release()
        sink = self.sink
        if sink is not None:
            self.sink = None
            sink.upstream_lost(self, got_bytes or self.got_head)

    def _end(self, code: int) -> None:
        if not self.conn.closed:
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self.conn.h2.reset_stream(self.id, code)
            self.conn.flush()
        self._release()

    def _release(self) -> None:
        if not self.closed:
            self.closed = True
            self._outbox.clear()
            self.conn.stream_closed(self)


class Connection(asyncio.Protocol):
    """One TCP connection to an endpoint speaking HTTP/2 with prior knowledge."""

    __slots__ = (
        "authority",
        "closed",
        "goaway",
        "h2",
        "key",
        "pool",
        "streams",
        "transport",
        "write_paused",
    )

    def __init__(self, pool: Pool, key: upstream.Key) -> None:
        self.pool = pool
        self.key = key
        self.authority = b"%s:%d" % (key[0].encode("latin-1"), key[1])
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            },
        )
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.streams: dict[int, Stream] = {}
        self.closed = False
        self.goaway = False
        self.write_paused = False

    def usable(self) -> bool:
        """Whether a new stream may be opened here."""
        h = self.h2
        return (
            not self.closed
            and not self.goaway
            and h.open_outbound_streams < h.remote_settings.max_concurrent_streams
            and h.highest_outbound_stream_id
            < h2.connection.H2Connection.HIGHEST_ALLOWED_STREAM_ID - 2
        )

    def open_stream(self) -> Stream:
        stream = Stream(self, self.h2.get_next_available_stream_id())
        self.streams[stream.id] = stream
        self.pool.book.opened(self)
        return stream

    def stream_closed(self, stream: Stream) -> None:
        if self.streams.pop(stream.id, None) is not None and self.pool.book.finished(
            self, time.monotonic()
        ):
            self.close()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.pool.book.forget(self)
            self.transport.close()

    # -- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        h = self.h2
        h.initiate_connection()
        h.increment_flow_control_window(CONNECTION_WINDOW - h.inbound_flow_control_window)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.book.forget(self)
        for stream in list(self.streams.values()):
            stream._lost(False)
        self.streams.clear()

    def pause_writing(self) -> None:
        self.write_paused = True
        for stream in list(self.streams.values()):
            stream._check_pause()

    def resume_writing(self) -> None:
        self.write_paused = False
        for stream in list(self.streams.values()):
            stream._check_pause()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            # Not HTTP/2 (an HTTP/1.1-only endpoint) or broken: nothing here is usable.
            self.flush()
            self.close()
            for lost in list(self.streams.values()):
                lost._lost(True)
            return
        streams = self.streams
        touched: list[Stream] = []
        for ev in events:
            if isinstance(ev, h2.events.DataReceived):
                stream = streams.get(ev.stream_id)
                if stream is None:
                    # A stream we reset: hand its credit back to the connection anyway.
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    continue
                stream._on_data(ev.data, ev.flow_controlled_length)
                touched.append(stream)
            elif isinstance(ev, h2.events.ResponseReceived):
                stream = streams.get(ev.stream_id)
                if stream is not None:
                    stream._on_head(ev.headers, ev.stream_ended is not None)
                    touched.append(stream)
            elif isinstance(ev, h2.events.StreamEnded):
                stream = streams.get(ev.stream_id)
                if stream is not None:
                    stream._on_end()
            elif isinstance(ev, h2.events.StreamReset):
                stream = streams.get(ev.stream_id)
                if stream is not None:
                    stream._on_reset(ev.error_code)
            elif isinstance(ev, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                if isinstance(ev, h2.events.WindowUpdated) and ev.stream_id:
                    stream = streams.get(ev.stream_id)
                    if stream is not None:
                        stream._pump()
                else:
                    for each in list(streams.values()):
                        each._pump()
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self._goaway(ev.last_stream_id)
        self.flush()
        for t in touched:
            sink = t.sink
            if sink is not None:
                sink.upstream_flush()

    def _goaway(self, last_stream_id: int | None) -> None:
        self.goaway = True
        for conn in self.pool.book.retire(self):
            conn.close()
        last = last_stream_id if last_stream_id is not None else 0
        for stream in list(self.streams.values()):
            if stream.id > last:
                # Never processed by the endpoint (RFC 9113 6.8): retryable.
                stream._lost(False)


class Pool:
    """HTTP/2 connections to endpoints: one shared per endpoint, streams on demand.

    Args:
        connect_timeout_s: seconds a TCP connect may take.
        idle_s: seconds a connection without streams is kept.
        via: the proxy's ``Via`` value, appended to responses.
    """

    __slots__ = ("_connecting", "book", "connect_timeout_s", "via")

    def __init__(self, *, connect_timeout_s: float, idle_s: float, via: bytes) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.via = via
        self.book: ConnBook[Connection] = ConnBook(idle_s)
        self._connecting: dict[upstream.Key, asyncio.Task[Connection]] = {}

    def stream(self, key: upstream.Key) -> Stream | None:
        """Return a new stream on the current connection to ``key``, or None (then :meth:`open`)."""
        conn = self.book.current(key)
        if conn is None:
            return None
        if not conn.usable():
            for done in self.book.retire(conn):
                done.close()
            return None
        return conn.open_stream()

    async def open(self, key: upstream.Key) -> Stream:
        """Return a new stream to ``key``, connecting if needed (one connect shared by all).

        Raises:
            OSError: refused, unreachable, reset, or no connection takes a stream.
            TimeoutError: not connected within ``connect_timeout_s``.
        """
        for _ in range(3):
            stream = self.stream(key)
            if stream is not None:
                return stream
            task = self._connecting.get(key)
            if task is None:
                # A task of its own: the requester that started it may give up
                # (client gone) without cancelling the connect the others wait for.
                task = asyncio.get_running_loop().create_task(self._connect(key))
                self._connecting[key] = task
                task.add_done_callback(partial(self._connected, key))
            conn = await asyncio.shield(task)
            if conn.usable():
                return conn.open_stream()
        raise ConnectionError(f"no HTTP/2 connection to {key[0]}:{key[1]} takes a stream")

    def _connected(self, key: upstream.Key, task: asyncio.Task[Connection]) -> None:
        self._connecting.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have given up

    async def _connect(self, key: upstream.Key) -> Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout_s):
            _, conn = await loop.create_connection(partial(Connection, self, key), *key)
        for old in self.book.add(key, conn, time.monotonic()):
            old.close()
        return conn

    def expire(self) -> None:
        """Close connections without streams for too long (called periodically)."""
        for conn in self.book.expire(time.monotonic()):
            conn.close()

    def close(self) -> None:
        """Close every connection."""
        for conn in self.book.drain():
            conn.close()

"""Cleartext HTTP/2 from clients (prior knowledge, RFC 9113 3.3) on HTTP listeners.

A client connection whose first bytes are the HTTP/2 connection preface is handed
over by :class:`protocol.ClientConnection` (the request parser stops on ``PRI``, so
HTTP/1.1 clients pay nothing) to a :class:`ServerConnection`, which runs the ``h2``
state machine. ``Upgrade: h2c`` from HTTP/1.1 is not supported (RFC 9113 deprecates
it): such a request is answered over HTTP/1.1, the upgrade ignored.

Each stream is one request through the same pipeline as HTTP/1.1 ones: a
:class:`Stream` is the in-memory transport of a private
:class:`protocol.ClientConnection`, fed the request as HTTP/1.1 bytes (pseudo-headers
turned into the request line and ``Host``, the body framed with Content-Length or
chunks) and writing back an HTTP/1.1 response that is parsed and sent as HEADERS
and DATA frames. Routing, filters, retries, balancing, pools, timeouts and the
access log are thus exactly those of HTTP/1.1.

Flow control: request DATA is acknowledged as the stream's connection consumes it;
while that connection paused reading (its upstream is slow) DATA is held and not
acknowledged, so the client stops at its window. Response DATA goes out within the
client's windows; beyond :data:`HIGH_WATER` unsent bytes the stream's connection is
told to stop reading its upstream. RST_STREAM cancels the stream's request (its
upstream attempt is abandoned); draining sends GOAWAY and closes when the streams in
flight are done; a connection without streams for ``idle_timeout_s`` is closed.

Pure pieces, tested without sockets: :func:`preface_rest`, :func:`request_head`,
:func:`response_headers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterable

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import httptools
from hyperframe.frame import GoAwayFrame

from mcgw.dataplane import h2upstream, protocol

PREFACE_LINE = b"PRI * HTTP/2.0\r\n\r\n"
"""The part of the connection preface the HTTP/1.1 request parser consumes."""
MAX_CONCURRENT_STREAMS = 100
"""Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS)."""
STREAM_WINDOW = 256 * 1024
"""Request body bytes a client may send on a stream ahead of our acknowledgements."""
CONNECTION_WINDOW = 4 * 1024 * 1024
"""The same for all the streams of a connection."""
HIGH_WATER = 64 * 1024
"""Response bytes waiting for window per stream before its upstream stops being read."""
LOW_WATER = 16 * 1024
"""Waiting bytes at or below which the upstream is read again."""

_CRLF = b"\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_CHUNKED_LINE = b"transfer-encoding: chunked\r\n"

_RESPONSE_DROP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
"""Response fields HTTP/2 forbids (RFC 9113 8.2.2): the HTTP/1.1 framing of our own
private connection."""

_CANCEL = h2.errors.ErrorCodes.CANCEL
_INTERNAL = h2.errors.ErrorCodes.INTERNAL_ERROR
_REFUSED = h2.errors.ErrorCodes.REFUSED_STREAM

_NOT_ALLOWED = [(b":status", b"405"), (b"content-length", b"0")]


def preface_rest(data: bytes) -> bytes:
    """Return what follows :data:`PREFACE_LINE` in ``data``, the read that completed it.

    The request parser stops right after the preface's first 18 bytes, which may have
    begun in earlier reads: ``data`` starts with some tail of them.
    """
    for k in range(min(len(PREFACE_LINE), len(data)), 0, -1):
        if PREFACE_LINE.endswith(data[:k]):
            return data[k:]
    return data


def request_head(headers: Iterable[tuple[bytes, bytes]], ended: bool) -> tuple[bytes, bool] | None:
    """Map an HTTP/2 request header block to an HTTP/1.1 request head.

    Args:
        headers: the block as ``h2`` validated it (lower-case names, cookies joined).
        ended: the block ended the stream: the request has no body.

    Returns:
        (head, chunked): the head ends with the blank line; ``chunked`` when the body
        follows as chunks (it has no Content-Length). None for a request without
        ``:path`` (CONNECT), which is not proxied.
    """
    method = path = authority = None
    lines: list[bytes] = []
    has_length = False
    for name, value in headers:
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":authority":
                authority = value
        elif name == b"host":
            if authority is None:
                authority = value
        else:
            if name == b"content-length":
                has_length = True
            lines.append(name + b": " + value + _CRLF)
    if method is None or not path:
        return None
    chunked = not ended and not has_length
    parts = [method, b" ", path, b" HTTP/1.1\r\n"]
    if authority is not None:
        parts += (b"host: ", authority, _CRLF)
    parts += lines
    if chunked:
        parts.append(_CHUNKED_LINE)
    parts.append(_CRLF)
    return b"".join(parts), chunked


def response_headers(
    status: int, fields: Iterable[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """Map an HTTP/1.1 response head (as our own connection wrote it) to an HTTP/2 block."""
    out = [(b":status", b"%d" % status)]
    for name, value in fields:
        lower = name.lower()
        if lower not in _RESPONSE_DROP:
            out.append((lower, value))
    return out


class Stream:
    """One HTTP/2 stream: the in-memory transport of the request's own client connection.

    It feeds the request to ``conn`` (``asyncio.Protocol`` calls) and takes what
    ``conn`` writes (``asyncio.Transport`` calls): an HTTP/1.1 response, parsed here.
    """

    __slots__ = (
        "_fields",
        "_informational",
        "_parser",
        "_pending",
        "_reading_paused",
        "_status",
        "_told_pause",
        "chunked",
        "closed",
        "conn",
        "done",
        "head",
        "head_only",
        "id",
        "outbox",
        "owner",
    )

    def __init__(self, owner: ServerConnection, stream_id: int, chunked: bool, head: bool) -> None:
        self.owner = owner
        self.id = stream_id
        self.chunked = chunked
        """The request body is fed as chunks (no Content-Length)."""
        self.head_only = head
        """A HEAD request: the response has no body whatever its Content-Length says."""
        self.conn = protocol.ClientConnection(owner.ctx, owner.listener)
        self.conn.serve_h2_stream()
        self.closed = False
        """The stream is over on our side (ended, reset, or the connection gone)."""
        self.done = False
        """The whole response was parsed."""
        self.head: list[tuple[bytes, bytes]] | None = None
        """The response header block waiting to be sent."""
        self.outbox = h2upstream.Outbox()
        self._parser = httptools.HttpResponseParser(self)
        self._status = 0
        self._fields: list[tuple[bytes, bytes]] = []
        self._informational = False
        self._pending: deque[tuple[bytes, int]] = deque()
        """Request bytes (and their flow-controlled length) held while reading is paused."""
        self._reading_paused = False
        self._told_pause = False

    # -- request side (called by the owner) ---------------------------------------

    def start(self, head: bytes) -> None:
        self.conn.connection_made(self)  # type: ignore[arg-type]
        self.conn.data_received(head)

    def feed(self, data: bytes, flow_length: int) -> None:
        """Request bytes (already framed) for the stream's connection."""
        if self.closed:
            self._ack(flow_length)
            return
        if self._reading_paused or self._pending:
            self._pending.append((data, flow_length))
            return
        self.conn.data_received(data)
        self._ack(flow_length)

    def _ack(self, flow_length: int) -> None:
        if flow_length and not self.owner.closed:
            # The stream may be closed already: the connection window is still owed.
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self.owner.h2.acknowledge_received_data(flow_length, self.id)

    def _feed_pending(self) -> None:
        pending = self._pending
        while pending and not self._reading_paused and not self.closed:
            data, flow_length = pending.popleft()
            self.conn.data_received(data)
            self._ack(flow_length)
        self.owner.flush()

    def cancel(self) -> None:
        """The client reset the stream or went away: give up the request."""
        if not self.closed:
            self._release()
            self.conn.connection_lost(None)

    # -- asyncio.Transport for the stream's connection ----------------------------

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.owner.transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            if self._pending:
                # Not from inside the connection's own call: as a transport would.
                asyncio.get_running_loop().call_soon(self._feed_pending)

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            # Our own connection's framing: cannot happen short of a bug.
            self._reset(_INTERNAL)
            return
        self.pump()
        self.owner.flush()

    def writelines(self, pieces: Iterable[bytes]) -> None:
        self.write(b"".join(pieces))

    def close(self) -> None:
        """The stream's connection is done with it (after its response, or cutting it)."""
        if self.closed:
            return
        if self.done:
            # The response is whole; what the windows hold back still goes out.
            self.pump()
        else:
            # Closed before the end of its response: the client must not take a cut
            # body for a whole one.
            self._reset(_INTERNAL)
        self.owner.flush()

    def abort(self) -> None:
        self.close()

    # -- httptools callbacks: the response --------------------------------------------

    def on_status(self, status: bytes) -> None:
        pass

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        fields, self._fields = self._fields, []
        if status < 200:
            # 100 Continue (the proxy answers Expect itself): an informational block.
            self._informational = True
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.owner.h2.send_headers(self.id, [(b":status", b"%d" % status)])
            return
        self.head = response_headers(status, fields)
        if self.head_only:
            self.done = True

    def on_body(self, body: bytes) -> None:
        if not self.head_only:
            self.outbox.push(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self.done = True

    # -- sending ---------------------------------------------------------------------

    def pump(self) -> None:
        """Send what the client's windows allow: the head, DATA, END_STREAM."""
        if self.closed or self.owner.closed:
            return
        h = self.owner.h2
        box = self.outbox
        try:
            head = self.head
            if head is not None:
                self.head = None
                end = self.done and not box.size
                h.send_headers(self.id, head, end_stream=end)
                if end:
                    self._finish()
                    return
            if box.size and not self.owner.write_paused:
                window = h.local_flow_control_window(self.id)
                for piece in box.take(window, h.max_outbound_frame_size):
                    h.send_data(self.id, piece)
            if self.done and not box.size and self.head is None:
                h.end_stream(self.id)
                self._finish()
                return
        except h2.exceptions.StreamClosedError:
            # Reset by the client meanwhile: its StreamReset event cancels the request.
            box.clear()
            return
        size = box.size
        if self._told_pause:
            if size <= LOW_WATER:
                self._told_pause = False
                self.conn.resume_writing()
        elif size > HIGH_WATER:
            self._told_pause = True
            self.conn.pause_writing()

    def _finish(self) -> None:
        """The response went out whole: the stream's connection can go."""
        self._release()
        # After the connection's current call (it logs the request on its way out).
        asyncio.get_running_loop().call_soon(self.conn.connection_lost, None)

    def _reset(self, code: int) -> None:
        if not self.closed:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.owner.h2.reset_stream(self.id, code)
            self._release()
            asyncio.get_running_loop().call_soon(self.conn.connection_lost, None)

    def _release(self) -> None:
        if not self.closed:
            self.closed = True
            self.outbox.clear()
            held = sum(n for _, n in self._pending)
            self._pending.clear()
            self.owner.stream_closed(self)
            # Held request bytes were never acknowledged: the connection window is owed.
            self._ack(held)


class ServerConnection(asyncio.Protocol):
    """A client connection speaking HTTP/2; one :class:`Stream` per request.

    Registered in ``ctx.connections`` (the server's sweeper calls :meth:`check`, a
    graceful close :meth:`drain`) in place of the client connection it came from.
    """

    __slots__ = (
        "_goaway_sent",
        "_idle_s",
        "_idle_since",
        "_last_stream",
        "closed",
        "ctx",
        "draining",
        "h2",
        "listener",
        "streams",
        "transport",
        "write_paused",
    )

    def __init__(self, ctx: protocol.Context, listener: str, transport: asyncio.Transport) -> None:
        self.ctx = ctx
        self.listener = listener
        self.transport = transport
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: ctx.settings.max_header_bytes,
            },
        )
        self.streams: dict[int, Stream] = {}
        self.closed = False
        self.draining = False
        self.write_paused = False
        self._goaway_sent = False
        self._last_stream = 0
        self._idle_s = ctx.settings.idle_timeout_s
        self._idle_since = time.monotonic()

    def start(self, early: bytes) -> None:
        """Take over the transport; ``early`` is what followed the preface's first line."""
        self.ctx.connections.add(self)
        h = self.h2
        h.initiate_connection()
        h.increment_flow_control_window(CONNECTION_WINDOW - h.inbound_flow_control_window)
        self.flush()
        self.transport.set_protocol(self)
        # h2 checks the whole preface: give it back the part already parsed.
        self.data_received(PREFACE_LINE + early)

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.closed:
            self.transport.write(data)

    def stream_closed(self, stream: Stream) -> None:
        if self.streams.pop(stream.id, None) is not None and not self.streams:
            self._idle_since = time.monotonic()
            if self.draining:
                self._close()

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ctx.connections.discard(self)
        for stream in list(self.streams.values()):
            stream.cancel()
        self.streams.clear()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        for stream in list(self.streams.values()):
            stream.pump()
        self.flush()

    def eof_received(self) -> bool | None:
        return None

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.h2.close_connection(h2.errors.ErrorCodes.PROTOCOL_ERROR)
            self.flush()
            self._close()
            return
        streams = self.streams
        for ev in events:
            if isinstance(ev, h2.events.DataReceived):
                stream = streams.get(ev.stream_id)
                length = ev.flow_controlled_length or 0
                data_ = ev.data or b""
                if stream is None:
                    self._ack_orphan(length, ev.stream_id)
                elif stream.chunked:
                    if data_:
                        stream.feed(b"%x\r\n%b\r\n" % (len(data_), data_), length)
                    else:
                        stream.feed(b"", length)
                else:
                    stream.feed(data_, length)
            elif isinstance(ev, h2.events.RequestReceived):
                self._request(ev)
            elif isinstance(ev, h2.events.StreamEnded):
                stream = streams.get(ev.stream_id)
                if stream is not None and stream.chunked:
                    stream.feed(_LAST_CHUNK, 0)
            elif isinstance(ev, h2.events.StreamReset):
                stream = streams.get(ev.stream_id)
                if stream is not None:
                    stream.cancel()
            elif isinstance(ev, h2.events.WindowUpdated):
                if ev.stream_id:
                    stream = streams.get(ev.stream_id)
                    if stream is not None:
                        stream.pump()
                else:
                    for each in list(streams.values()):
                        each.pump()
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                for each in list(streams.values()):
                    each.pump()
            elif isinstance(ev, h2.events.ConnectionTerminated):
                # The client is leaving; h2 sends nothing more after a GOAWAY.
                self._close()
                return
        self.flush()

    def _ack_orphan(self, length: int, stream_id: int | None) -> None:
        """DATA of a stream we no longer track: hand the connection credit back."""
        if length and stream_id:
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self.h2.acknowledge_received_data(length, stream_id)

    def _request(self, ev: h2.events.RequestReceived) -> None:
        sid = ev.stream_id
        assert sid is not None
        self._last_stream = max(self._last_stream, sid)
        h = self.h2
        if self.draining:
            h.reset_stream(sid, _REFUSED)
            return
        ended = ev.stream_ended is not None
        mapped = request_head(ev.headers or (), ended)
        if mapped is None:
            h.send_headers(sid, _NOT_ALLOWED, end_stream=True)
            if not ended:
                h.reset_stream(sid, h2.errors.ErrorCodes.NO_ERROR)
            return
        head, chunked = mapped
        stream = Stream(self, sid, chunked, head[:5] == b"HEAD ")
        self.streams[sid] = stream
        stream.start(head)

    # -- called by the server -----------------------------------------------------------

    def check(self, now: float) -> None:
        """Close the connection when it had no stream for ``idle_timeout_s``."""
        if not self.streams and not self.closed and now - self._idle_since >= self._idle_s:
            self._goaway()
            self._close()

    def drain(self) -> None:
        """Say GOAWAY, finish the streams in flight, then close."""
        self.draining = True
        if not self.streams:
            self._goaway()
            self._close()
            return
        if not self._goaway_sent and not self.closed:
            # h2 would refuse to send anything after its own GOAWAY: this one is
            # written by hand, so the streams in flight can still finish.
            self._goaway_sent = True
            frame = GoAwayFrame(0, last_stream_id=self._last_stream, error_code=0)
            self.flush()
            self.transport.write(frame.serialize())

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.abort()

    def _goaway(self) -> None:
        if not self.closed:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.h2.close_connection(last_stream_id=self._last_stream)
            self.flush()

    def _close(self) -> None:
        if not self.closed:
            self.flush()  # Frames queued by the last stream's end go out first.
            self.closed = True
            self.transport.close()

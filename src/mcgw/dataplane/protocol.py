"""The client side of the proxy: one :class:`ClientConnection` per accepted socket.

A thin asyncio.Protocol shell over pure parts. Per connection the settings are
copied onto slotted attributes; per request the current snapshot is read once and
the request goes ``router.match`` → ``balancer.choose`` → ``balancer.pick`` → the
upstream pool. Nothing else is looked up or compiled per request.

Life of a request (an :class:`_Exchange`):

1. The strict parser (:mod:`http1`) checks the head against RFC 9112 and calls back;
   header lines to forward are built as they arrive, hop-by-hop ones dropped. Limits
   (line, header bytes and count, body) are checked on the way (414/431/413);
   malformed or ambiguous framing is 400, an unknown method or coding 501.
   X-Forwarded-For/-Proto/-Host are the gateway's own unless the peer is a trusted
   proxy (``ProxySettings.trusted_peers``), whose values are kept and appended to; the
   same trust guards the entry-region header.
2. After the network read that completed the head is parsed, the request is
   started: the head, plus whatever body arrived in the same read, goes out in
   one write, on a pooled connection if one is idle, else after a connect task.
3. Body pieces then stream straight to the upstream socket; response pieces
   collected while parsing one upstream read are written to the client at once.
   Flow control links both directions: a full write buffer on one side pauses
   reading on the other.
4. A connection failure before any response byte is retried on another endpoint
   (connect errors always; closes before the response for idempotent requests
   whose body is still replayable). A reused connection found dead is retried on a
   fresh one without blaming the endpoint.
5. After the response, one access-log record; then keep-alive, pipelined next
   request, or close.

A route with filters, timeouts or retry (``filters.RoutePlan.plain`` false) gets a
``_Filtered`` state holding what the filters decided: CORS preflights and redirects are
answered before any pick, request headers and the target are rewritten while the head
is built, mirrors are copied when the body is complete, response headers and CORS
lines are edited in ``upstream_head``, which also retries a listed status. A plain
route pays one attribute test.

Timeouts (header read 408, keep-alive idle, upstream response 504, or 408 without
blaming the endpoint when the client has not finished its body by then) are a deadline
per connection that the server's sweeper checks (:meth:`ClientConnection.check`),
so no timer is armed per request.

Pipelined requests are parsed and queued, reading pauses, and they are proxied
one after the other.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from collections import deque
from typing import TYPE_CHECKING

from mcgw.dataplane import (
    errors,
    filters,
    h2upstream,
    http1,
    mirror,
    snapshot,
    tls,
    tunnel,
    upstream,
)
from mcgw.dataplane.settings import ProxySettings
from mcgw.ir import table

if TYPE_CHECKING:
    from mcgw.dataplane import accesslog, balancer, h2server, health, metrics

log = logging.getLogger(__name__)

_CRLF = b"\r\n"

# Request headers handled rather than passed on as they are (lower-case names).
_HOST = 1
_CONTENT_LENGTH = 2
_TRANSFER_ENCODING = 3
_CONNECTION = 4
_HOP = 5
_XFF = 6
_XFP = 7
_VIA = 8
_EXPECT = 9
_USER_AGENT = 10
_TE = 11
_XFH = 12
_TRACE = 13
_REQUEST_SPECIAL = {
    b"host": _HOST,
    b"content-length": _CONTENT_LENGTH,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"connection": _CONNECTION,
    b"keep-alive": _HOP,
    b"proxy-connection": _HOP,
    b"te": _TE,
    b"trailer": _HOP,
    b"upgrade": _HOP,
    b"x-forwarded-for": _XFF,
    b"x-forwarded-proto": _XFP,
    b"x-forwarded-host": _XFH,
    b"via": _VIA,
    b"expect": _EXPECT,
    b"user-agent": _USER_AGENT,
    # Trace context, for the access log (logschema.trace_context parses them there).
    b"traceparent": _TRACE,
    b"x-cloud-trace-context": _TRACE,
}

_request_kinds: dict[bytes, int] = {}
"""Raw request header name → kind (0: passed on), see :func:`upstream.header_kind`."""

_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})

# Deadline kinds.
_NONE = 0
_HEADERS = 1
_IDLE = 2
_UPSTREAM = 3
_REQUEST = 4
"""A route's ``timeouts.request``: 504 (or a cut response), the endpoint not blamed."""
_STREAM = 5
"""A route's timeout reached after the response head: cut the connection."""
_TUNNEL = 6
"""An upgraded connection relaying bytes: closed when idle for ``tunnel_idle_timeout_s``."""
_LINGER = 7
"""A closing connection sent its FIN and drops what it reads until the client closes
too (:meth:`ClientConnection._linger`); closed anyway at its deadline."""

LINGER_S = 2.0
"""How long a draining connection waits for the client to close after the server's FIN."""
_REFUSED_LINGER_S = 0.5
"""How long a refused client's late bytes are read and dropped before the close."""

_H2C = table.BackendProtocol.H2C
_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\n"
_UPGRADE_LINES = b"Connection: Upgrade\r\nUpgrade: websocket\r\n"

# Why reading from the client is paused (bits).
_PAUSE_PIPELINE = 1
_PAUSE_BODY = 2
_PAUSE_UPSTREAM = 4
_PAUSE_DEAD = 8

_BODY_HIGH_WATER = 256 * 1024
"""Request body bytes buffered while no upstream connection is ready."""

# How the response body is framed towards the client.
_FRAME_NONE = 0
_FRAME_RAW = 1
_FRAME_CHUNKED = 2

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_XFP_LINE = b"X-Forwarded-Proto: http\r\n"
_XFP_HTTPS_LINE = b"X-Forwarded-Proto: https\r\n"
_TE_TRAILERS = b"TE: trailers\r\n"
"""The one TE an h2c hop may carry (RFC 9113 8.2.2), and gRPC needs it."""

_LOG_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
"""The access log's protocol of an HTTP/1 request, by its version: no string built per
request."""

_NO_ENTRY = ("", "gateway")
"""(entry region, how it was decided) of a request entering at the gateway's location."""
_NO_TRACE = ("", "", "")
"""The balancer's (entry region, ranking, seen) before any pick."""

_NOT_PICKED = ("", "", "", "", "", "")
"""Access-log cluster … reason of a request that reached no endpoint."""
_NO_ROUTE = ("", "", "", "", "", "no_route")
"""The same when no route matched: the reason says so."""
_LAST_CHUNK = b"0\r\n\r\n"

_REASONS = {
    400: b"Bad Request",
    404: b"Not Found",
    421: b"Misdirected Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
}


def _error_response(status: int, close: bool) -> bytes:
    reason = _REASONS.get(status, b"Error")
    body = b"%d %s\n" % (status, reason)
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"Content-Type: text/plain; charset=utf-8\r\n",
            b"Content-Length: %d\r\n" % len(body),
            b"Connection: close\r\n" if close else b"",
            b"\r\n",
            body,
        )
    )


_ERROR_RESPONSES = {
    (status, close): _error_response(status, close)
    for status in _REASONS
    for close in (False, True)
}


class Context:
    """What every client connection of one gateway shares."""

    __slots__ = (
        "access_log",
        "connections",
        "entry_header",
        "h2",
        "health",
        "holder",
        "listener_connections",
        "metrics",
        "mirrors",
        "pool",
        "settings",
        "trusted",
    )

    def __init__(
        self,
        settings: ProxySettings,
        holder: snapshot.Holder,
        pool: upstream.Pool,
        health_map: health.HealthMap,
        access_log: accesslog.AccessLog | None,
        counters: metrics.Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.holder = holder
        self.pool = pool
        self.health = health_map
        self.access_log = access_log
        self.metrics = counters
        """Request counters for /metrics; None: nothing is counted."""
        self.connections: set[ClientConnection | h2server.ServerConnection] = set()
        self.listener_connections: dict[str, int] = {}
        """Open HTTP/1 client connections per listener (``max_connections_per_listener``)."""
        self.h2 = h2upstream.Pool(
            connect_timeout_s=pool.connect_timeout_s, idle_s=settings.upstream_idle_s, via=pool.via
        )
        """Shared HTTP/2 connections to the endpoints of ``h2c`` backends."""
        self.mirrors = mirror.Mirrors(
            limit=settings.max_mirrors_in_flight, timeout_s=settings.mirror_timeout_s
        )
        self.trusted = tuple(ipaddress.ip_network(p, strict=False) for p in settings.trusted_peers)
        """Networks of trusted peers (X-Forwarded-* kept, entry-region header honoured)."""
        self.entry_header = settings.entry_region_header.lower().encode("latin-1")


class _Exchange:
    """One request and its response, from the first byte to the access log."""

    __slots__ = (
        "affinity",
        "attempts",
        "backend",
        "body",
        "body_done",
        "body_size",
        "buffered",
        "chunked",
        "conn_tokens",
        "content_length",
        "continue_sent",
        "counted",
        "details",
        "entry",
        "exclude",
        "expect_continue",
        "extra",
        "failures",
        "frame",
        "fresh",
        "h2",
        "head",
        "head_done",
        "header_bytes",
        "header_count",
        "headers",
        "host",
        "keep_alive",
        "key",
        "lines",
        "logged",
        "method",
        "pick",
        "replayable",
        "response_bytes",
        "response_keep",
        "response_started",
        "reused",
        "route",
        "sent",
        "set_cookie",
        "snap",
        "start",
        "status",
        "target",
        "te",
        "te_trailers",
        "timeout_s",
        "trace",
        "trace_in",
        "upgrade",
        "upstream",
        "user_agent",
        "version",
        "via_in",
        "xff_in",
    )

    def __init__(self, start: float) -> None:
        self.start = start
        self.method = b""
        self.target = b""
        self.version = "1.1"
        self.keep_alive = True
        self.headers: list[tuple[bytes, bytes]] = []
        self.lines: list[bytes] = []
        self.header_bytes = 0
        self.header_count = 0
        self.host: bytes | None = None
        self.user_agent = b""
        self.trace_in: tuple[tuple[bytes, bytes], ...] = ()
        """The trace context fields received (usually none): for the access log."""
        self.xff_in: bytes | None = None
        self.via_in: bytes | None = None
        self.conn_tokens: bytes | None = None
        self.content_length = -1
        self.chunked = False
        self.te = b""
        self.te_trailers = False
        """The client sent ``TE: trailers``: passed on to h2c backends only."""
        self.expect_continue = False
        self.continue_sent = False
        self.head_done = False
        self.head = b""
        self.body: list[bytes] = []
        """Framed body pieces not sent yet, or sent and kept for a replay."""
        self.buffered = 0
        self.body_size = 0
        self.body_done = False
        self.replayable = True
        self.snap: snapshot.Snapshot | None = None
        self.route: table.Route | None = None
        self.backend = ""
        self.timeout_s = 30.0
        self.pick: balancer.Pick | None = None
        self.key: upstream.Key = ("", 0)
        self.exclude: frozenset[upstream.Key] = frozenset()
        self.attempts = 0
        self.failures = 0
        self.fresh = False
        self.reused = False
        self.upstream: upstream.Upstream | None = None
        self.sent = False
        self.response_started = False
        self.response_keep = False
        self.response_bytes = 0
        self.frame = _FRAME_NONE
        self.status = 0
        self.details = ""
        self.logged = False
        self.h2 = False
        """The backend speaks h2c: attempts are streams of ``Context.h2``."""
        self.upgrade: bytes | None = None
        """A WebSocket handshake: the client bytes read past its head (else None)."""
        self.extra: _Filtered | None = None
        """Set only for a route with filters, timeouts or retry."""
        self.affinity: bytes | None = None
        """The session affinity key, for a backend that has affinity (else None)."""
        self.set_cookie = b""
        """The affinity cookie's Set-Cookie line, when the response must carry one."""
        self.counted: upstream.Key | None = None
        """The endpoint this request counts as in flight to (LEAST_REQUEST backends)."""
        self.entry = _NO_ENTRY
        """(entry region, how it was decided): set for trusted peers and client networks."""
        self.trace = _NO_TRACE
        """(entry region, ranking, seen) of the last pick: the decision trace."""


# -- filters, timeouts, retry (begin) ---------------------------------------------------

_NO_EDITS: tuple[filters.HeaderEdit, ...] = ()
_INF = float("inf")


class _Filtered:
    """The per-request state of a route that is not ``plain`` (allocated only then)."""

    __slots__ = (
        "cors",
        "cors_lines",
        "deadline",
        "mirror_keys",
        "mirrors",
        "plan",
        "response_edits",
        "retries",
        "try_end",
    )

    def __init__(self, plan: filters.RoutePlan, now: float) -> None:
        self.plan = plan
        self.cors: filters.CorsPlan | None = None
        """The CORS filter that applies (the route's, else the picked backend's)."""
        self.cors_lines = b""
        """CORS header lines for the response (the origin was allowed)."""
        self.response_edits = _NO_EDITS
        """ResponseHeaderModifiers, in the order to apply (backend's, then route's)."""
        self.mirrors: tuple[filters.MirrorPlan, ...] = ()
        self.mirror_keys: list[upstream.Key] = []
        """Mirror endpoints waiting for the end of the request body."""
        self.deadline = now + plan.request_s if plan.request_s else 0.0
        """Monotonic end of ``timeouts.request``; 0.0: none."""
        self.try_end = _INF
        """Monotonic end of the current try when ``timeouts.backendRequest`` is set."""
        self.retries = plan.retries if plan.retry_codes else 0
        """Retries on a listed status still allowed."""


def _with_edits(
    fx: _Filtered, status_line: bytes, lines: list[bytes], body: bytes, close: bool
) -> bytes:
    """A response made by the gateway, with the route's response headers and CORS."""
    for edit in fx.response_edits:
        lines = edit.apply(lines)
    return b"".join(
        (
            status_line,
            *lines,
            fx.cors_lines,
            b"Connection: close\r\n" if close else b"",
            _CRLF,
            body,
        )
    )


# -- filters, timeouts, retry (end) -----------------------------------------------------


class _ParseAbort(Exception):
    """Raised inside a parser callback to stop parsing (the reason is kept aside)."""


class _StopReading(Exception):
    """Raised inside a parser callback to stop reading without an error response."""


class ClientConnection(asyncio.Protocol):
    """One accepted client connection, proxying its requests one at a time."""

    __slots__ = (
        "_access_log",
        "_active",
        "_body_b0",
        "_body_limit",
        "_body_t0",
        "_body_timeout",
        "_closed",
        "_connect_task",
        "_ctx",
        "_current",
        "_deadline",
        "_deadline_kind",
        "_debug",
        "_draining",
        "_entry",
        "_entry_snap",
        "_failing",
        "_forward",
        "_forward_host",
        "_forward_line",
        "_half_closed",
        "_header_timeout",
        "_health",
        "_holder",
        "_idle_timeout",
        "_late_error",
        "_line_limit",
        "_listener",
        "_log_protocol",
        "_max_header_bytes",
        "_max_headers",
        "_max_pipelined",
        "_max_retries",
        "_metrics",
        "_min_body_rate",
        "_out",
        "_parse_dead",
        "_parse_error",
        "_parser",
        "_pending_start",
        "_pipeline",
        "_pool",
        "_read_pause",
        "_remote_ip",
        "_replay_limit",
        "_scheme",
        "_server_ip",
        "_sni",
        "_transport",
        "_trusted",
        "_tunnel",
        "_tunnel_idle",
        "_via_line",
        "_via_value",
        "_wall_offset",
        "_write_paused",
        "_xff_line",
        "_xff_value",
    )

    def __init__(self, ctx: Context, listener: str) -> None:
        self._ctx = ctx
        self._listener = listener
        s = ctx.settings
        self._holder = ctx.holder
        self._pool = ctx.pool
        self._health = ctx.health
        # report_success only resets counts of consecutive failures: skip the call
        # while no endpoint has one (the dict is mutated in place, never rebound).
        self._failing = ctx.health.failing
        self._access_log = ctx.access_log
        self._metrics = ctx.metrics
        self._log_protocol = ""
        """The access log's protocol when not the parsed one (see :meth:`serve_h2_stream`)."""
        self._line_limit = s.max_request_line_bytes
        self._max_header_bytes = s.max_header_bytes
        self._max_headers = s.max_headers
        self._body_limit = s.max_body_bytes
        self._header_timeout = s.header_read_timeout_s
        self._idle_timeout = s.idle_timeout_s
        self._max_retries = s.max_connect_retries
        self._replay_limit = s.retry_buffer_bytes
        self._via_value = s.via.encode("latin-1")
        self._tunnel: tunnel.Tunnel | None = None
        self._tunnel_idle = s.tunnel_idle_timeout_s
        self._via_line = b"Via: " + self._via_value + _CRLF
        self._debug = s.debug_headers
        self._transport: asyncio.Transport = None  # type: ignore[assignment]
        self._parser = http1.RequestParser(
            self,
            max_target=s.max_request_line_bytes,
            # The header bytes, and per line ": " CRLF and some OWS.
            max_fields=s.max_header_bytes + 8 * s.max_headers + 64,
        )
        self._body_timeout = s.body_timeout_s
        self._min_body_rate = s.min_body_rate_bps
        self._body_t0 = 0.0
        """Monotonic start of the body-rate window of the active request (0.0: none)."""
        self._body_b0 = 0
        """Body bytes the active request had received at ``_body_t0``."""
        self._max_pipelined = s.max_pipelined_requests
        self._late_error: tuple[_Exchange, errors.ProxyError] | None = None
        """A pipelined request that failed to parse, answered when its turn comes."""
        self._current: _Exchange | None = None
        """The request being parsed."""
        self._active: _Exchange | None = None
        """The request being proxied (the oldest one not yet answered)."""
        self._pipeline: deque[_Exchange] = deque()
        self._pending_start = False
        self._parse_error: errors.ProxyError | None = None
        self._parse_dead = False
        self._read_pause = 0
        self._write_paused = False
        self._closed = False
        self._draining = False
        self._half_closed = False
        self._deadline = 0.0
        self._deadline_kind = _NONE
        self._connect_task: asyncio.Task[None] | None = None
        self._out: list[bytes] = []
        self._remote_ip = ""
        self._server_ip = ""
        self._xff_value = b""
        self._xff_line = b""
        self._forward = b""
        self._scheme = "http"
        self._sni: tuple[str, tls.Choice] | None = None
        self._forward_host: bytes | None = None
        self._forward_line = b""
        self._wall_offset = 0.0
        self._trusted = False
        """The peer is a trusted proxy (:attr:`ProxySettings.trusted_peers`)."""
        self._entry_snap: snapshot.Snapshot | None = None
        self._entry = _NO_ENTRY
        """The peer's entry region by the client networks of ``_entry_snap``."""

    def serve_h2_stream(self) -> None:
        """Mark this connection as one HTTP/2 stream's (fed HTTP/1.1 by h2server): its
        requests are logged as ``HTTP/2``, the protocol the client spoke."""
        self._log_protocol = "HTTP/2"

    # -- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self._remote_ip = str(peer[0]) if peer else ""
        self._server_ip = str(sock[0]) if sock else ""
        self._xff_value = self._remote_ip.encode("latin-1")
        self._xff_line = b"X-Forwarded-For: " + self._xff_value + _CRLF
        if transport.get_extra_info("sslcontext") is None:
            self._forward = self._xff_line + self._via_line + _XFP_LINE
        else:
            # TLS was terminated here (an HTTPS listener, or an h2 stream of one).
            self._scheme = "https"
            self._forward = self._xff_line + self._via_line + _XFP_HTTPS_LINE
            self._sni = tls.sni_of(transport)
        trusted = self._ctx.trusted
        if trusted:
            self._trusted = _in_networks(self._remote_ip, trusted)
        now = time.monotonic()
        self._wall_offset = time.time() - now
        self._deadline = now + self._header_timeout
        self._deadline_kind = _HEADERS
        counts = self._ctx.listener_connections
        open_now = counts.get(self._listener, 0)
        if open_now >= self._ctx.settings.max_connections_per_listener:
            # Over the listener's limit: say so and close, before reading anything.
            self._closed = True
            self._parse_dead = True
            self._deadline_kind = _NONE
            transport.write(_ERROR_RESPONSES[503, True])  # type: ignore[attr-defined]
            transport.close()
            return
        counts[self._listener] = open_now + 1
        self._ctx.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._deadline_kind = _NONE
        if self in self._ctx.connections:
            self._ctx.connections.discard(self)
            self._ctx.listener_connections[self._listener] -= 1
        if self._connect_task is not None:
            self._connect_task.cancel()
            self._connect_task = None
        ex = self._active
        if ex is not None:
            up = ex.upstream
            if up is not None:
                ex.upstream = None
                up.abandon()
            if ex.head_done and not ex.logged:
                if not ex.response_started:
                    ex.details = "client_disconnected_before_any_response"
                else:
                    ex.details = "client_disconnected_after_partial_response"
                self._log(ex, time.monotonic())
        self._active = None
        self._pipeline.clear()

    def eof_received(self) -> bool | None:
        if self._active is not None:
            # A half-closed client still wants its response; close after it.
            self._half_closed = True
            return True
        return None

    def data_received(self, data: bytes) -> None:
        if self._parse_dead:
            return
        try:
            self._parser.feed_data(data)
        except http1.Upgrade as exc:
            # The parser stops after an upgrade request: this connection ends with its
            # response, or becomes a tunnel if it is a WebSocket handshake the endpoint
            # accepts. Other upgrades are forwarded without the header.
            self._dead()
            ex = self._active
            if (
                ex is not None
                and ex.head_done
                and not self._pipeline
                and tunnel.is_websocket_upgrade(ex.method, ex.headers)
            ):
                self._upgrade_request(ex, data[exc.offset :])
        except http1.H2Preface:
            # -- HTTP/2 prior knowledge (begin): the preface's PRI line opens a connection.
            ex = self._current
            if ex is not None and ex is self._active and not self._pipeline:
                self._to_h2(data)
                return
            # -- HTTP/2 prior knowledge (end)
            self._parse_failed(errors.VersionNotSupported("HTTP/2 preface after requests"))
        except _StopReading:
            pass
        except _ParseAbort:
            err = self._parse_error or errors.BadRequest()
            self._parse_error = None
            self._parse_failed(err)
        except errors.ProxyError as err:
            self._parse_failed(err)
        if self._pending_start:
            self._pending_start = False
            ex = self._active
            if ex is not None:
                self._start(ex)

    def _parse_failed(self, err: errors.ProxyError) -> None:
        """The parser refused a request: answer it (in turn) and close; read no more."""
        ex = self._current or self._active
        if ex is not None and ex is not self._active:
            # A later pipelined request is broken: it is answered after the ones before
            # it (see _finish), then the connection closes. (The parser reads nothing
            # more; _parse_dead would close before that answer.)
            self._pause(_PAUSE_DEAD)
            self._late_error = (ex, err)
            return
        self._dead()
        if ex is None:
            return
        self._pending_start = False
        self._fail(ex, err)

    def _to_h2(self, data: bytes) -> None:
        """Hand this connection over to an HTTP/2 server connection."""
        # Imported here: h2server builds on this module.
        from mcgw.dataplane import h2server

        self._current = self._active = None
        self._closed = True
        self._deadline_kind = _NONE
        self._ctx.connections.discard(self)
        self._ctx.listener_connections[self._listener] -= 1  # HTTP/2 ones are not counted
        conn = h2server.ServerConnection(self._ctx, self._listener, self._transport)
        conn.start(h2server.preface_rest(data))

    def pause_writing(self) -> None:
        self._write_paused = True
        ex = self._active
        if ex is not None and ex.upstream is not None:
            ex.upstream.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        ex = self._active
        if ex is not None and ex.upstream is not None:
            ex.upstream.resume_reading()

    # -- parser callbacks -----------------------------------------------------

    def on_message_begin(self) -> None:
        ex = _Exchange(time.monotonic())
        self._current = ex
        if self._active is None:
            self._active = ex
            if self._deadline_kind != _HEADERS:
                # After a keep-alive wait; a connection's first request keeps the
                # deadline set when it was accepted (late first bytes do not extend it).
                self._deadline = ex.start + self._header_timeout
                self._deadline_kind = _HEADERS
        else:
            if len(self._pipeline) >= self._max_pipelined:
                # Read no further: the requests queued are answered, then the
                # connection closes and the client retries the rest.
                self._current = None
                self._pause(_PAUSE_DEAD)  # not _dead(): the queued ones are answered
                raise _StopReading
            self._pipeline.append(ex)
            self._pause(_PAUSE_PIPELINE)

    def on_url(self, url: bytes) -> None:
        ex = self._current
        assert ex is not None
        ex.target += url
        if len(ex.target) > self._line_limit:
            self._parse_error = errors.UriTooLong("request target too long")
            raise _ParseAbort

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self._current
        assert ex is not None
        ex.header_bytes += len(name) + len(value)
        ex.header_count += 1
        if ex.header_bytes > self._max_header_bytes or ex.header_count > self._max_headers:
            self._parse_error = errors.HeadersTooLarge("request headers too large")
            raise _ParseAbort
        ex.headers.append((name, value))
        kind = _request_kinds.get(name)
        if kind is None:
            kind = upstream.header_kind(_REQUEST_SPECIAL, _request_kinds, name)
        if not kind:
            ex.lines.append(name + b": " + value + _CRLF)
        elif kind == _HOST:
            if ex.host is not None:
                self._parse_error = errors.BadRequest("several Host headers")
                raise _ParseAbort
            ex.host = value
            ex.lines.append(name + b": " + value + _CRLF)
        elif kind == _USER_AGENT:
            ex.user_agent = value
            ex.lines.append(name + b": " + value + _CRLF)
        elif kind == _CONTENT_LENGTH:
            if ex.content_length >= 0:
                self._parse_error = errors.BadRequest("several Content-Length headers")
                raise _ParseAbort
            # The parser checked it is digits; more than 18 are beyond any limit.
            ex.content_length = int(value) if len(value) < 19 else self._body_limit + 1
        elif kind == _TRANSFER_ENCODING:
            ex.te = value if not ex.te else ex.te + b", " + value
            ex.chunked = True
        elif kind == _CONNECTION:
            ex.conn_tokens = value if ex.conn_tokens is None else ex.conn_tokens + b"," + value
        elif kind == _XFF:
            ex.xff_in = value if ex.xff_in is None else ex.xff_in + b", " + value
        elif kind == _VIA:
            ex.via_in = value if ex.via_in is None else ex.via_in + b", " + value
        elif kind == _EXPECT:
            if value.lower() == b"100-continue":
                ex.expect_continue = True
            else:
                ex.lines.append(name + b": " + value + _CRLF)
        elif kind == _TRACE:
            ex.trace_in += ((name, value),)
            ex.lines.append(name + b": " + value + _CRLF)
        elif kind == _TE and b"trailers" in (t.strip() for t in value.lower().split(b",")):
            # TE is hop-by-hop, dropped like _HOP; ``trailers`` is re-added towards h2c
            # endpoints only, where gRPC requires it.
            ex.te_trailers = True
        # _HOP, _XFP and other TE values: dropped (X-Forwarded-Proto is set by the proxy).

    def on_headers_complete(self) -> None:
        ex = self._current
        assert ex is not None
        parser = self._parser
        ex.method = parser.get_method()
        ex.version = parser.get_http_version()
        ex.keep_alive = parser.should_keep_alive()
        if ex.host is None and ex.version == "1.1":
            self._parse_error = errors.BadRequest("HTTP/1.1 request without Host")
            raise _ParseAbort
        if ex.chunked and ex.content_length >= 0:
            self._parse_error = errors.BadRequest("both Content-Length and Transfer-Encoding")
            raise _ParseAbort
        if ex.content_length > self._body_limit:
            self._parse_error = errors.BodyTooLarge()
            raise _ParseAbort
        if ex.chunked:
            ex.te = b"chunked"  # the parser accepts only a final chunked: re-framed as such
        ex.head_done = True
        if ex is self._active:
            self._deadline_kind = _NONE
            self._pending_start = True
            if ex.chunked or ex.content_length > 0:
                self._body_t0 = time.monotonic()
                self._body_b0 = 0

    def on_body(self, body: bytes) -> None:
        ex = self._current
        assert ex is not None
        n = len(body)
        ex.body_size += n
        if ex.body_size > self._body_limit:
            self._parse_error = errors.BodyTooLarge()
            raise _ParseAbort
        up = ex.upstream
        if ex.sent and up is not None:
            if ex.chunked:
                up.transport.writelines((b"%x\r\n" % n, body, _CRLF))
            else:
                up.transport.write(body)
            if ex.replayable:
                if ex.body_size > self._replay_limit:
                    ex.replayable = False
                    ex.body = []
                elif ex.chunked:
                    ex.body += (b"%x\r\n" % n, body, _CRLF)
                else:
                    ex.body.append(body)
            return
        if ex.sent or ex.response_started:
            # Answered already (an error) or the upstream is gone: discard.
            return
        if ex.chunked:
            ex.body += (b"%x\r\n" % n, body, _CRLF)
        else:
            ex.body.append(body)
        ex.buffered += n
        if ex.buffered > _BODY_HIGH_WATER:
            self._pause(_PAUSE_BODY)

    def on_message_complete(self) -> None:
        ex = self._current
        assert ex is not None
        self._current = None
        self._body_t0 = 0.0
        ex.body_done = True
        fx = ex.extra
        if fx is not None and fx.mirror_keys:
            self._mirror_late(ex, fx)
        if not ex.chunked:
            up = ex.upstream
            if ex.sent and up is not None:
                up.request_sent = True
            return
        up = ex.upstream
        if ex.sent and up is not None:
            up.transport.write(_LAST_CHUNK)
            up.request_sent = True
            if ex.replayable:
                ex.body.append(_LAST_CHUNK)
        elif not ex.sent and not ex.response_started:
            ex.body.append(_LAST_CHUNK)

    # -- flow control helpers -------------------------------------------------

    def _pause(self, bit: int) -> None:
        if not self._read_pause and not self._closed:
            self._transport.pause_reading()
        self._read_pause |= bit

    def _resume(self, bit: int) -> None:
        if self._read_pause & bit:
            self._read_pause &= ~bit
            if not self._read_pause and not self._closed:
                self._transport.resume_reading()

    def _dead(self) -> None:
        """The parser cannot go on: read no more, close after the current response."""
        self._parse_dead = True
        self._pause(_PAUSE_DEAD)

    # -- proxying ---------------------------------------------------------------

    def _start(self, ex: _Exchange) -> None:
        snap = self._holder.current
        ex.snap = snap
        if snap is None:
            self._fail(ex, errors.NoRoute("no route table yet"))
            return
        if self._trusted or snap.client_networks:
            ex.entry = self._entry_region(ex, snap)
        target = ex.target
        if target[:1] == b"/":
            path, _, query = target.partition(b"?")
        else:
            path, query, target = self._other_form(ex, target)
        if ex.host is None:
            ex.lines.append(self._default_host())
        elif self._sni is not None and self._sni[1].misdirected(self._sni[0], ex.host):
            self._fail(ex, errors.Misdirected())
            return
        plan = snap.router.find(self._listener, ex.host or b"", path, query, ex.headers, ex.method)
        if plan is None:
            self._fail(ex, errors.NoRoute())
            return
        route = ex.route = plan.route
        fx: _Filtered | None = None
        if not plan.plain:
            fx = ex.extra = _Filtered(plan, time.monotonic())
            if fx.deadline:
                self._deadline = fx.deadline
                self._deadline_kind = _REQUEST
            stage = plan.stage
            if stage is not None:
                if stage.response is not None:
                    fx.response_edits = (stage.response,)
                if self._stage_answers(ex, fx, stage, path, query):
                    return
        chosen = snap.balancer.choose(route)
        name = None if chosen is None else chosen.backend
        backend = None if name is None else snap.backends.get(name)
        if backend is None:
            self._fail(ex, errors.InvalidBackend())
            return
        ex.backend = backend.name
        ex.timeout_s = backend.timeout_s
        affine = snap.balancer.affine
        if affine:
            affinity = affine.get(backend.name)
            if affinity is not None:
                ex.affinity = self._affinity_key(ex, affinity)
        if backend.protocol is _H2C and ex.upgrade is None:
            ex.h2 = True
        lines = ex.lines
        if fx is not None:
            edited = self._edit_request(ex, fx, chosen, path, query, target)
            if edited is None:
                return
            target, lines = edited
        parts = [ex.method, b" ", target, b" HTTP/1.1\r\n"]
        parts += (
            lines
            if ex.conn_tokens is None
            else upstream.filter_connection_listed(lines, ex.conn_tokens)
        )
        if self._trusted:
            self._forwarded_trusted(ex, parts)
        elif ex.via_in is None:
            # The common case: the connection's precomputed XFF, Via and XFP lines (an
            # untrusted peer's X-Forwarded-For is not carried on), and X-Forwarded-Host,
            # rebuilt only when the Host differs from the connection's previous one.
            host = ex.host or b""
            if host != self._forward_host:
                self._forward_host = host
                self._forward_line = self._forward + b"X-Forwarded-Host: " + host + _CRLF
            parts.append(self._forward_line)
        else:
            parts.append(self._xff_line)
            parts.append(b"Via: " + ex.via_in + b", " + self._via_value + _CRLF)
            parts.append(_XFP_LINE if self._scheme == "http" else _XFP_HTTPS_LINE)
            parts.append(b"X-Forwarded-Host: " + (ex.host or b"") + _CRLF)
        if ex.te_trailers and ex.h2:
            parts.append(_TE_TRAILERS)  # After the Connection filter: TE is listed there.
        if ex.chunked:
            parts.append(b"Transfer-Encoding: " + ex.te + _CRLF)
        elif ex.content_length >= 0:
            parts.append(b"Content-Length: %d\r\n" % ex.content_length)
        parts.append(_CRLF)
        ex.head = b"".join(parts)
        if fx is not None and fx.mirrors:
            self._mirror(ex, fx)
        self._attempt(ex)

    # -- trusted peers and entry regions (begin) ------------------------------------

    def _forwarded_trusted(self, ex: _Exchange, parts: list[bytes]) -> None:
        """X-Forwarded-* and Via from a trusted proxy: its values are kept, the peer
        appended to X-Forwarded-For, the gateway's own filling in what is missing."""
        if ex.xff_in is None:
            parts.append(self._xff_line)
        else:
            parts.append(b"X-Forwarded-For: " + ex.xff_in + b", " + self._xff_value + _CRLF)
        if ex.via_in is None:
            parts.append(self._via_line)
        else:
            parts.append(b"Via: " + ex.via_in + b", " + self._via_value + _CRLF)
        proto = host = None
        for name, value in ex.headers:
            lower = name.lower()
            if lower == b"x-forwarded-proto" and proto is None:
                proto = value
            elif lower == b"x-forwarded-host" and host is None:
                host = value
        if proto is None:
            parts.append(_XFP_LINE if self._scheme == "http" else _XFP_HTTPS_LINE)
        else:
            parts.append(b"X-Forwarded-Proto: " + proto + _CRLF)
        parts.append(b"X-Forwarded-Host: " + (host or ex.host or b"") + _CRLF)

    def _entry_region(self, ex: _Exchange, snap: snapshot.Snapshot) -> tuple[str, str]:
        """Where ``ex`` entered: a trusted peer's header, else the client's network,
        else the gateway's location (``_NO_ENTRY``)."""
        if self._trusted:
            header = self._ctx.entry_header
            if header:
                for name, value in ex.headers:
                    if name.lower() == header:
                        region = value.strip().decode("latin-1").lower()
                        if snap.balancer.ranks_from(region):
                            return (region, "header")
                        break
            if ex.xff_in is not None and snap.client_networks:
                # The client is the address the trusted proxy saw: the last hop it added.
                client = ex.xff_in.rpartition(b",")[2].strip().decode("latin-1")
                region = snap.client_region(client)
                return (region, "client") if region else _NO_ENTRY
        if self._entry_snap is not snap:
            self._entry_snap = snap
            region = snap.client_region(self._remote_ip) if snap.client_networks else ""
            self._entry = (region, "client") if region else _NO_ENTRY
        return self._entry

    # -- trusted peers and entry regions (end) --------------------------------------

    def _other_form(self, ex: _Exchange, target: bytes) -> tuple[bytes, bytes, bytes]:
        """Path and query to route on, and the target to forward, of a request whose
        target is not origin-form.

        Absolute-form (RFC 9112 3.2.2): its authority replaces any Host, for routing and
        upstream, and the endpoint gets origin-form, so a target naming another host
        than Host can reach only what that host's routes allow. ``*`` and anything
        else are routed and forwarded as they are.
        """
        absolute = upstream.absolute_form(target)
        if absolute is None:
            return target, b"", target
        authority, path, query = absolute
        host_line = b"Host: " + authority + _CRLF
        if ex.host is None:
            ex.lines.append(host_line)
        else:
            ex.lines = [host_line if ln[:5].lower() == b"host:" else ln for ln in ex.lines]
        ex.host = authority
        return path, query, filters.with_query(path, query)

    def _default_host(self) -> bytes:
        """The Host line of a request that came without one (HTTP/1.0).

        RFC 9112 3.3 makes the authority of such a request the server's own address:
        the address and port the client connected to (not the Service's name, which
        the client never used and a URLRewrite can set if an endpoint needs it).
        """
        sock = self._transport.get_extra_info("sockname")
        if not sock:
            return b"Host: localhost\r\n"
        host = str(sock[0])
        if ":" in host:
            host = f"[{host}]"
        port = int(sock[1])
        authority = host if port == 80 else f"{host}:{port}"
        return b"Host: " + authority.encode("latin-1") + _CRLF

    # -- filters, timeouts, retry (begin) ---------------------------------------------

    def _stage_answers(
        self, ex: _Exchange, fx: _Filtered, stage: filters.Stage, path: bytes, query: bytes
    ) -> bool:
        """Apply the CORS and redirect parts of ``stage``; True when they answered."""
        cors = stage.cors
        if cors is not None and fx.cors is None:
            fx.cors = cors
            origin, method, names = filters.origin_headers(ex.headers)
            if origin is not None:
                if ex.method == b"OPTIONS" and method is not None:
                    self._answer(
                        ex, 200, [cors.preflight_lines(origin, method, names)], "cors_preflight"
                    )
                    return True
                fx.cors_lines = cors.actual_lines(origin)
        redirect = stage.redirect
        if redirect is not None:
            location = redirect.location(ex.host or b"", path, query)
            self._answer(ex, redirect.status, [b"Location: " + location + _CRLF], "redirect")
            return True
        return False

    def _edit_request(
        self,
        ex: _Exchange,
        fx: _Filtered,
        chosen: table.WeightedBackend | None,
        path: bytes,
        query: bytes,
        target: bytes,
    ) -> tuple[bytes, list[bytes]] | None:
        """Apply the route's then the picked backend's request filters.

        Returns:
            (target, header lines) to forward, or None when the request was answered.
        """
        plan = fx.plan
        backend_stage = (
            plan.backend_stages.get(id(chosen)) if plan.backend_stages and chosen else None
        )
        if backend_stage is not None:
            if backend_stage.response is not None:
                fx.response_edits = (backend_stage.response, *fx.response_edits)
            if self._stage_answers(ex, fx, backend_stage, path, query):
                return None
        lines = ex.lines
        new_path = path
        for stage in (plan.stage, backend_stage):
            if stage is None:
                continue
            if stage.request is not None:
                lines = stage.request.apply(lines)
            rewrite = stage.rewrite
            if rewrite is not None:
                if rewrite.host is not None:
                    lines = rewrite.host.apply(lines)
                if rewrite.path is not None:
                    new_path = rewrite.path.apply(new_path)
            if stage.mirrors:
                fx.mirrors += stage.mirrors
        if new_path is not path:
            target = filters.with_query(new_path, query)
        return target, lines

    def _answer(self, ex: _Exchange, status: int, lines: list[bytes], details: str) -> None:
        """Answer ``ex`` at the gateway (redirect, CORS preflight), forwarding nothing."""
        fx = ex.extra
        assert fx is not None
        close = (
            not ex.body_done
            or not ex.keep_alive
            or self._draining
            or self._parse_dead
            or self._half_closed
        )
        status_line = b"HTTP/1.1 %d %s\r\n" % (status, filters.REASONS.get(status, b"OK"))
        lines.append(b"Content-Length: 0\r\n")
        response = _with_edits(fx, status_line, lines, b"", close)
        ex.status = status
        ex.details = details
        ex.response_started = True
        ex.response_keep = not close
        ex.response_bytes = len(response)
        if not self._closed:
            self._transport.write(response)
        self._finish(ex)

    def _mirror(self, ex: _Exchange, fx: _Filtered) -> None:
        """Send the request's copies now, or when its body is complete."""
        snap = ex.snap
        assert snap is not None
        keys = fx.mirror_keys
        for plan in fx.mirrors:
            if plan.due(random.random()):
                pick = snap.balancer.pick(plan.backend, frozenset())
                if pick is not None:
                    keys.append(pick.key)
        if keys and ex.body_done:
            data = b"".join((ex.head, *ex.body))
            mirrors = self._ctx.mirrors
            for key in keys:
                mirrors.send(key, data)
            keys.clear()

    def _mirror_late(self, ex: _Exchange, fx: _Filtered) -> None:
        """The body of a request with mirrors pending is complete: send the copies."""
        keys = fx.mirror_keys
        if ex.replayable:
            # Every body piece is still held (sent ones are kept for replay).
            tail = (_LAST_CHUNK,) if ex.chunked else ()
            data = b"".join((ex.head, *ex.body, *tail))
            mirrors = self._ctx.mirrors
            for key in keys:
                mirrors.send(key, data)
        # A body beyond the replay buffer is not held: its copies are dropped.
        keys.clear()

    def _arm(self, ex: _Exchange, fx: _Filtered) -> None:
        """Set the deadline of a try just sent, from the route's timeouts."""
        try_s = fx.plan.try_s
        if try_s is None:
            try_end = self._deadline  # Backend.timeout_s, to the response head.
            fx.try_end = _INF
        elif try_s > 0:
            try_end = fx.try_end = time.monotonic() + try_s
        else:
            try_end = fx.try_end = _INF
        if fx.deadline and fx.deadline <= try_end:
            self._deadline = fx.deadline
            self._deadline_kind = _REQUEST
        elif try_end != _INF:
            self._deadline = try_end
            self._deadline_kind = _UPSTREAM
        else:
            self._deadline_kind = _NONE

    def _retry_status(self, ex: _Exchange, fx: _Filtered, status: int) -> None:
        """The try answered a status listed in the route's retry: try again later."""
        conn = ex.upstream
        ex.upstream = None
        if conn is not None:
            conn.abandon()
        fx.retries -= 1
        ex.sent = False
        ex.status = status
        ex.details = f"retry_on_status_{status}"
        snap = ex.snap
        assert snap is not None
        backend = snap.backends.get(ex.backend)
        if backend is not None and sum(len(g.endpoints) for g in backend.groups) > 1:
            ex.exclude = ex.exclude | {ex.key}  # Another endpoint when there is one.
        if fx.deadline:
            self._deadline = fx.deadline
            self._deadline_kind = _REQUEST
        else:
            self._deadline_kind = _NONE
        self._resume(_PAUSE_UPSTREAM)
        asyncio.get_running_loop().call_later(fx.plan.backoff_s, self._retry_later, ex)

    def _retry_later(self, ex: _Exchange) -> None:
        if self._active is ex and not self._closed and not ex.response_started:
            self._attempt(ex)

    # -- filters, timeouts, retry (end) -----------------------------------------------

    def _affinity_key(self, ex: _Exchange, affinity: table.SessionAffinity) -> bytes:
        """The request's session affinity key (``b""``: none; picked as usual)."""
        kind = affinity.type
        if kind is table.AffinityType.CLIENT_IP:
            return self._xff_value
        if kind is table.AffinityType.HEADER_FIELD:
            wanted = affinity.header.encode("latin-1")
            for name, value in ex.headers:
                if name.lower() == wanted:
                    return value
            return b""
        cookie = affinity.cookie_name.encode("latin-1")
        for name, value in ex.headers:
            if name.lower() == b"cookie":
                for pair in value.split(b";"):
                    key, _, found = pair.strip().partition(b"=")
                    if key == cookie:
                        return found
        return b""

    def _attempt(self, ex: _Exchange) -> None:
        snap = ex.snap
        assert snap is not None
        picker = snap.balancer
        pick = picker.pick(ex.backend, ex.exclude, ex.affinity, ex.entry[0])
        ex.trace = picker.trace
        if pick is None:
            if ex.failures:
                self._fail(ex, errors.UpstreamFailed(details=ex.details or None))
            else:
                self._fail(ex, errors.NoHealthyUpstream())
            return
        ex.pick = pick
        if ex.affinity is not None:
            ex.set_cookie = picker.cookie(ex.backend, pick, ex.affinity)
        if picker.counted and ex.backend in picker.counted:
            if ex.counted is not None:
                picker.release(ex.counted)
            picker.acquire(pick.key)
            ex.counted = pick.key
        ex.attempts += 1
        key = ex.key = pick.key
        if ex.h2:
            self._attempt_h2(ex, key)
            return
        if not ex.fresh:
            conn = self._pool.take(key)
            if conn is not None:
                if conn.closed or conn.transport.is_closing():
                    conn.close()
                else:
                    self._send(ex, conn, True)
                    return
        self._connect_task = asyncio.get_running_loop().create_task(self._connect(ex, key))

    async def _connect(self, ex: _Exchange, key: upstream.Key) -> None:
        try:
            conn = await self._pool.connect(key)
        except (OSError, TimeoutError):
            if self._active is ex and not self._closed:
                self._connect_task = None
                self._health.report_failure(*key)
                self._retry(ex, key, "failed_to_connect_to_backend")
            return
        if self._active is not ex or self._closed or ex.response_started:
            self._pool.give(conn)
            return
        self._connect_task = None
        self._send(ex, conn, False)

    def _send(self, ex: _Exchange, conn: upstream.Upstream, reused: bool) -> None:
        ex.upstream = conn
        ex.reused = reused
        ex.fresh = False
        conn.attach(self, ex.method != b"HEAD", ex.upgrade is not None)
        if self._write_paused:
            conn.pause_reading()
        if ex.body:
            conn.transport.write(b"".join((ex.head, *ex.body)))
        else:
            conn.transport.write(ex.head)
        ex.sent = True
        if ex.body_done:
            conn.request_sent = True
        elif ex.expect_continue and not ex.continue_sent:
            ex.continue_sent = True
            self._transport.write(_CONTINUE)
        if ex.body_size > self._replay_limit:
            ex.replayable = False
            ex.body = []
        ex.buffered = 0
        if conn.write_paused:
            self._resume(_PAUSE_BODY)
            self._pause(_PAUSE_UPSTREAM)
        elif self._read_pause:  # (tested first: reading is rarely paused)
            self._resume(_PAUSE_BODY | _PAUSE_UPSTREAM)
        self._deadline = time.monotonic() + ex.timeout_s
        self._deadline_kind = _UPSTREAM
        if ex.extra is not None:
            self._arm(ex, ex.extra)

    def _retry(self, ex: _Exchange, key: upstream.Key, details: str) -> None:
        """The attempt on ``key`` failed before any response byte: try elsewhere."""
        ex.upstream = None
        ex.sent = False
        ex.failures += 1
        ex.details = details
        if ex.failures > self._max_retries:
            self._fail(ex, errors.UpstreamFailed(details=details))
            return
        ex.exclude = ex.exclude | {key}
        self._attempt(ex)

    # -- upstream.Sink ---------------------------------------------------------

    def upstream_head(
        self,
        status: int,
        reason: bytes,
        lines: list[bytes],
        content_length: int,
        chunked: bool,
        has_body: bool,
    ) -> None:
        ex = self._active
        assert ex is not None
        self._deadline_kind = _NONE
        if status >= 500:
            # Passive outlier detection: consecutive 5xx answers eject the endpoint.
            self._health.report_error_status(*ex.key)
        fx = ex.extra
        if fx is not None:
            if fx.retries and ex.replayable and status in fx.plan.retry_codes:
                self._retry_status(ex, fx, status)
                return
            for edit in fx.response_edits:
                lines = edit.apply(lines)
            if fx.cors_lines:
                lines.append(fx.cors_lines)
            end = min(fx.deadline or _INF, fx.try_end)
            if end != _INF:
                self._deadline = end
                self._deadline_kind = _STREAM
        ex.response_started = True
        ex.status = status
        keep = ex.keep_alive and not self._draining and not self._parse_dead
        parts = [b"HTTP/1.1 %d " % status, reason, _CRLF]
        parts += lines
        if ex.set_cookie:
            parts.append(ex.set_cookie)
        if not has_body:
            ex.frame = _FRAME_NONE
            if content_length >= 0:
                parts.append(b"Content-Length: %d\r\n" % content_length)
        elif content_length >= 0:
            ex.frame = _FRAME_RAW
            parts.append(b"Content-Length: %d\r\n" % content_length)
        elif ex.version == "1.1":
            ex.frame = _FRAME_CHUNKED
            parts.append(b"Transfer-Encoding: chunked\r\n")
        else:
            # An HTTP/1.0 client knows no chunks: the close ends the body.
            ex.frame = _FRAME_RAW
            keep = False
        if not keep:
            parts.append(b"Connection: close\r\n")
        elif ex.version == "1.0":
            parts.append(b"Connection: keep-alive\r\n")
        if self._debug:
            parts.append(self._debug_headers(ex))
        parts.append(_CRLF)
        ex.response_keep = keep
        head = b"".join(parts)
        ex.response_bytes += len(head)
        self._out.append(head)

    def upstream_body(self, data: bytes) -> None:
        ex = self._active
        assert ex is not None
        ex.response_bytes += len(data)
        if ex.frame == _FRAME_CHUNKED:
            self._out += (b"%x\r\n" % len(data), data, _CRLF)
        else:
            self._out.append(data)

    def upstream_flush(self) -> None:
        out = self._out
        if out:
            if len(out) == 1:
                self._transport.write(out[0])
            else:
                self._transport.writelines(out)
            out.clear()

    def upstream_done(self, conn: upstream.Upstream) -> None:
        ex = self._active
        if ex is None or ex.upstream is not conn:
            return
        ex.upstream = None
        if ex.frame == _FRAME_CHUNKED:
            self._out.append(_LAST_CHUNK)
        self.upstream_flush()
        ex.details = "response_sent_by_backend"
        if self._failing and ex.status < 500:
            self._health.report_success(*ex.key)
        if self._read_pause:
            self._resume(_PAUSE_UPSTREAM)
        self._finish(ex)

    def upstream_lost(self, conn: upstream.Upstream, got_bytes: bool) -> None:
        ex = self._active
        if ex is None or ex.upstream is not conn:
            return
        ex.upstream = None
        self._resume(_PAUSE_UPSTREAM)
        key = ex.key
        if ex.response_started:
            self.upstream_flush()
            ex.details = "backend_connection_closed_after_partial_response_sent"
            ex.response_keep = False
            self._health.report_failure(*key)
            self._log(ex, time.monotonic())
            self._close()
            return
        if got_bytes:
            self._health.report_failure(*key)
            self._fail(ex, errors.UpstreamFailed(details="backend_response_corrupted"))
            return
        retry = ex.replayable and (not ex.sent or ex.method in _IDEMPOTENT)
        if not retry:
            if not ex.reused:
                # A reused connection closed before any byte is most likely one the
                # endpoint closed while idle (see below): not its fault.
                self._health.report_failure(*key)
            self._fail(
                ex,
                errors.UpstreamFailed(
                    details="backend_connection_closed_before_data_sent_to_client"
                ),
            )
            return
        if ex.reused:
            # Most likely a keep-alive connection the endpoint closed while idle:
            # not the endpoint's fault. Try again on a fresh connection.
            ex.upstream = None
            ex.sent = False
            ex.fresh = True
            self._attempt(ex)
            return
        self._health.report_failure(*key)
        self._retry(ex, key, "backend_connection_closed_before_data_sent_to_client")

    def upstream_pause(self) -> None:
        self._pause(_PAUSE_UPSTREAM)

    def upstream_resume(self) -> None:
        self._resume(_PAUSE_UPSTREAM)

    # -- h2c backends and WebSocket upgrades (begin) -----------------------------------

    def _attempt_h2(self, ex: _Exchange, key: upstream.Key) -> None:
        """Try ``ex`` as a new stream on the endpoint's shared HTTP/2 connection."""
        stream = self._ctx.h2.stream(key)
        if stream is not None:
            # After a stream lost on a reused connection, the next one counts as fresh:
            # a second loss is the endpoint's.
            self._send(ex, stream, not ex.fresh)
            return
        self._connect_task = asyncio.get_running_loop().create_task(self._connect_h2(ex, key))

    async def _connect_h2(self, ex: _Exchange, key: upstream.Key) -> None:
        try:
            stream = await self._ctx.h2.open(key)
        except (OSError, TimeoutError):
            if self._active is ex and not self._closed:
                self._connect_task = None
                self._health.report_failure(*key)
                self._retry(ex, key, "failed_to_connect_to_backend")
            return
        if self._active is not ex or self._closed or ex.response_started:
            stream.abandon()
            return
        self._connect_task = None
        self._send(ex, stream, False)

    def _upgrade_request(self, ex: _Exchange, early: bytes) -> None:
        """Forward ``ex`` as a WebSocket handshake: Connection and Upgrade kept."""
        ex.upgrade = early
        if ex.conn_tokens is not None:
            # Drop what Connection lists now, while it still names only those fields.
            ex.lines = upstream.filter_connection_listed(ex.lines, ex.conn_tokens)
            ex.conn_tokens = None
        ex.lines.append(_UPGRADE_LINES)

    def upstream_upgrade(
        self, conn: upstream.UpstreamConnection, lines: list[bytes], rest: bytes
    ) -> None:
        ex = self._active
        if ex is None or ex.upstream is not conn or self._closed:
            conn.transport.close()
            return
        ex.upstream = None
        fx = ex.extra
        if fx is not None:
            for edit in fx.response_edits:
                lines = edit.apply(lines)
            if fx.cors_lines:
                lines.append(fx.cors_lines)
        head = b"".join((_SWITCHING, *lines, _UPGRADE_LINES, _CRLF))
        ex.status = 101
        ex.response_started = True
        ex.response_bytes = len(head)
        ex.details = "response_sent_by_backend"
        self._transport.write(head)
        now = time.monotonic()
        self._log(ex, now)
        self._active = None
        t = self._tunnel = tunnel.Tunnel(self._transport, conn.transport, self._tunnel_closed)
        t.start(
            ex.upgrade or b"",
            rest,
            client_write_paused=self._write_paused,
            upstream_write_paused=conn.write_paused,
        )
        if not t.closed:
            self._deadline = now + self._tunnel_idle
            self._deadline_kind = _TUNNEL

    def _tunnel_closed(self, t: tunnel.Tunnel) -> None:
        self._closed = True
        self._deadline_kind = _NONE
        self._ctx.connections.discard(self)

    def _check_tunnel(self, now: float) -> None:
        t = self._tunnel
        if t is None or t.closed:
            return
        idle_until = t.last_active + self._tunnel_idle
        if now >= idle_until:
            t.close()
        else:
            self._deadline = idle_until
            self._deadline_kind = _TUNNEL

    # -- h2c backends and WebSocket upgrades (end) -------------------------------------

    # -- ending requests --------------------------------------------------------

    def _fail(self, ex: _Exchange, err: errors.ProxyError) -> None:
        """Answer ``ex`` with ``err`` (or cut the connection if a response began)."""
        up = ex.upstream
        if up is not None:
            ex.upstream = None
            up.abandon()
        if self._connect_task is not None:
            self._connect_task.cancel()
            self._connect_task = None
        ex.details = err.details
        if ex.response_started:
            self._log(ex, time.monotonic())
            self._close()
            return
        close = (
            err.close
            or not ex.body_done
            or not ex.keep_alive
            or self._draining
            or self._parse_dead
            or self._half_closed
        )
        ex.status = err.status
        ex.response_started = True
        ex.response_keep = not close
        fx = ex.extra
        if fx is not None and (fx.response_edits or fx.cors_lines):
            reason = _REASONS.get(err.status, b"Error")
            body = b"%d %s\n" % (err.status, reason)
            head = [
                b"Content-Type: text/plain; charset=utf-8\r\n",
                b"Content-Length: %d\r\n" % len(body),
            ]
            status_line = b"HTTP/1.1 %d %s\r\n" % (err.status, reason)
            response = _with_edits(fx, status_line, head, body, close)
        else:
            response = _ERROR_RESPONSES[err.status, close]
        ex.response_bytes = len(response)
        if not self._closed:
            self._transport.write(response)
        self._finish(ex)

    def _finish(self, ex: _Exchange) -> None:
        # One clock read serves the access log's latency and the next deadline.
        now = time.monotonic()
        self._log(ex, now)
        if (
            not ex.response_keep
            or not ex.body_done
            or self._parse_dead
            or self._draining
            or self._half_closed
        ):
            if self._parse_dead and not self._half_closed:
                self._linger(_REFUSED_LINGER_S)
            else:
                self._close()
            return
        self._active = None
        pipeline = self._pipeline
        if pipeline:
            nxt = pipeline.popleft()
            if not pipeline:
                self._resume(_PAUSE_PIPELINE)
            self._active = nxt
            late = self._late_error
            if late is not None and late[0] is nxt:
                self._late_error = None
                self._fail(nxt, late[1])
                return
            if nxt.head_done:
                self._deadline_kind = _NONE
                self._start(nxt)
            else:
                self._deadline = now + self._header_timeout
                self._deadline_kind = _HEADERS
            return
        if self._read_pause & _PAUSE_DEAD:
            self._close()  # reading stopped (pipeline limit): no request will follow
            return
        self._deadline = now + self._idle_timeout
        self._deadline_kind = _IDLE

    def _close(self) -> None:
        self._deadline_kind = _NONE
        self._active = None
        self._pipeline.clear()
        if not self._closed:
            if self._draining:
                self._linger(LINGER_S)
            else:
                self._closed = True
                self._transport.close()

    def _linger(self, seconds: float) -> None:
        """Close gently (RFC 9112 9.6): FIN now, after the buffered response bytes, then
        read and drop what the client still sends until it closes too or ``seconds``
        pass. Closing a socket with unread bytes sends a reset, which can destroy the
        response before the client reads it (a refused request's error) and meets a
        request sent while the gateway was closing (a drain) with an error instead of an
        orderly end the client can retry on."""
        self._active = None
        self._pipeline.clear()
        if self._closed:
            return
        self._closed = True
        self._parse_dead = True  # data_received drops everything from now on
        transport = self._transport
        # (An HTTP/2 stream's in-memory transport cannot half-close: it just closes.)
        if (
            not hasattr(transport, "can_write_eof")
            or transport.is_closing()
            or not transport.can_write_eof()
        ):
            self._deadline_kind = _NONE
            transport.close()
            return
        transport.write_eof()
        if self._read_pause:
            self._read_pause = 0
            transport.resume_reading()
        self._deadline = time.monotonic() + seconds
        self._deadline_kind = _LINGER

    def _log(self, ex: _Exchange, now: float) -> None:
        """Queue the access record of ``ex`` (once), ``now`` being its end (monotonic)."""
        if ex.logged:
            return
        ex.logged = True
        if ex.counted is not None and ex.snap is not None:
            ex.snap.balancer.release(ex.counted)
            ex.counted = None
        # What the metrics and the access record share, worked out once: the route's
        # name and the pick's fields (cluster … reason, a tuple built with the pick).
        pick = ex.pick
        route = ex.route
        route_name = "" if route is None else route.name
        picked = (
            pick.log_fields
            if pick is not None
            else (_NOT_PICKED if route is not None else _NO_ROUTE)
        )
        counters = self._metrics
        if counters is not None:
            # -- metrics (begin): one dict hit and a bisect, see dataplane.metrics.
            counters.observe(
                (self._listener, route_name, ex.backend, picked, ex.status, ex.details),
                now - ex.start,
            )
            # -- metrics (end)
        sink = self._access_log
        if sink is None or (sink.sampling and not sink.keep(ex.backend)):
            return
        snap = ex.snap
        # A plain tuple in AccessRecord's field order, not an AccessRecord: the NamedTuple
        # would cost a copy here and another before it can be marshalled to the writer.
        # What the writer can work out is left to it: the request line's bytes are not
        # decoded, and the pick's, the decision trace's and the entry's fields go as the
        # tuples they are (prebuilt with the pick: marshal refers to a tuple it already
        # wrote in the batch, where six strings would each be looked up).
        # test_access_log_records_each_response checks every field lands in place.
        sink.write(
            (
                ex.start + self._wall_offset,
                ex.method,
                self._scheme,
                ex.host or b"",
                ex.target,
                self._log_protocol or _LOG_PROTOCOLS.get(ex.version) or "HTTP/" + ex.version,
                ex.status,
                now - ex.start,
                ex.header_bytes + ex.body_size,
                ex.response_bytes,
                self._remote_ip,
                self._server_ip,
                ex.user_agent,
                ex.trace_in,
                "" if snap is None else snap.gateways.get(self._listener, ""),
                route_name,
                ex.backend,
                picked,
                ex.trace,
                ex.entry,
                "" if snap is None else snap.entry_region,
                ex.attempts,
                ex.details,
            ),
            now,
        )

    def _debug_headers(self, ex: _Exchange) -> bytes:
        pick = ex.pick
        route = "" if ex.route is None else ex.route.name
        parts = [b"x-mcgw-route: " + route.encode() + _CRLF]
        if pick is not None:
            parts.append(b"x-mcgw-cluster: " + pick.group.cluster.encode() + _CRLF)
            parts.append(
                b"x-mcgw-endpoint: %s:%d\r\n" % (pick.endpoint.address.encode(), pick.endpoint.port)
            )
            parts.append(b"x-mcgw-reason: " + pick.reason.encode() + _CRLF)
        parts.append(b"x-mcgw-attempts: %d\r\n" % ex.attempts)
        entry, ranking, seen = ex.trace
        if entry:
            parts.append(
                b"x-mcgw-entry-region: %s (%s)\r\n" % (entry.encode(), ex.entry[1].encode())
            )
        if ranking:
            parts.append(b"x-mcgw-ranking: " + ranking.encode() + _CRLF)
        if seen:
            parts.append(b"x-mcgw-seen: " + seen.encode() + _CRLF)
        return b"".join(parts)

    # -- called by the server -----------------------------------------------------

    def check(self, now: float) -> None:
        """Enforce this connection's deadline (called by the server's sweeper)."""
        if self._body_t0 and now - self._body_t0 > self._body_timeout:
            self._check_body_rate(now)
        kind = self._deadline_kind
        if kind == _NONE or now < self._deadline:
            return
        self._deadline_kind = _NONE
        if kind == _IDLE:
            self._close()
        elif kind == _HEADERS:
            ex = self._active
            self._dead()
            if ex is None:
                # Nothing of a request yet: say why, but there is nothing to log.
                self._transport.write(_ERROR_RESPONSES[408, True])
                self._close()
                return
            self._fail(ex, errors.RequestTimeout())
        elif kind == _UPSTREAM:
            ex = self._active
            if ex is None or ex.response_started:
                return
            if not ex.body_done:
                # The client is still uploading: the wait is its doing, not the
                # endpoint's, which must not be ejected for it (slow clients would
                # take every endpoint out).
                self._fail(ex, errors.RequestTimeout())
                return
            self._health.report_failure(*ex.key)
            self._fail(ex, errors.UpstreamTimeout())
        elif kind == _TUNNEL:
            self._check_tunnel(now)
        elif kind == _LINGER:
            self._deadline_kind = _NONE
            self._transport.close()
        elif kind in (_REQUEST, _STREAM):
            # The route's own timeouts: 504 before any response byte, else a cut.
            ex = self._active
            if ex is not None:
                self._fail(ex, errors.UpstreamTimeout(details="request_timeout"))

    def _check_body_rate(self, now: float) -> None:
        """408 and close when the active request's body is slower than the least rate.

        Past ``body_timeout_s`` of grace, the client must have sent on average
        ``min_body_rate_bps`` since; trickling a byte now and then does not extend it.
        Time the gateway does not read (paused for a slow backend) restarts the window.
        """
        ex = self._active
        if ex is None or ex.body_done or ex.response_started or self._closed:
            self._body_t0 = 0.0
            return
        if self._read_pause:
            self._body_t0 = now
            self._body_b0 = ex.body_size
            return
        due = (now - self._body_t0 - self._body_timeout) * self._min_body_rate
        if ex.body_size - self._body_b0 < due:
            self._body_t0 = 0.0
            self._dead()
            self._fail(ex, errors.SlowClient())

    @property
    def listener(self) -> str:
        """The name of the route-table listener that accepted this connection."""
        return self._listener

    def drain(self) -> None:
        """Finish the request in flight (its response says ``Connection: close``), then
        close; close now if idle. Either way the close lingers (:meth:`_linger`)."""
        if self._closed:
            return
        self._draining = True
        if self._active is None:
            self._close()

    def abort(self) -> None:
        """Cut the connection (end of a drain deadline)."""
        if not self._closed:
            self._closed = True
            self._transport.abort()


def _in_networks(
    address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    """Whether ``address`` (a peer's) lies in one of ``networks``; once per connection."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # A Unix socket or an in-memory stream: no address to trust.
    return any(ip.version == net.version and ip in net for net in networks)

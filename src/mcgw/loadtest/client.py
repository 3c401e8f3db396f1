"""The load tester's own HTTP/1.1 client: one keep-alive connection per VU, every phase
timed with ``perf_counter_ns`` the way k6 reports it.

Phases of one request (k6's names; all in nanoseconds here):

* ``blocked``: from the request's start until a connection is ready to write to —
  a few microseconds on a reused connection, DNS and TCP connect on a new one;
* ``connecting``: the TCP connect alone (0 when the connection is reused);
* ``tls_handshaking``: the TLS handshake of a new ``https`` connection (0 when reused
  or plain HTTP);
* ``sending``: writing the request;
* ``waiting``: from the request written to the first byte of the response (TTFB);
* ``receiving``: from the first to the last byte of the response.

It does not share code with the data plane on purpose: a measuring instrument should
not carry the bugs of the thing it measures.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import time
import types
import typing
import urllib.parse
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httptools

from mcgw.loadtest import errors

USER_AGENT = "mcgw-load/0.1 (k6-compatible)"

_now = time.perf_counter_ns


@dataclass(frozen=True, slots=True)
class Target:
    """Where requests go, resolved once per run."""

    host_header: str
    """``Host`` as the URL names it (``store.example.com``, with the port if not 80)."""
    connect_host: str
    connect_port: int
    target: str
    """Path and query, as sent on the request line."""
    scheme: str = "http"
    """``http`` or ``https``."""
    server_name: str = ""
    """https: the name the certificate must carry (SNI): the URL's host, not the
    ``hosts`` override's address."""


def parse_target(url: str, host_map: tuple[tuple[str, str], ...] = ()) -> Target:
    """Resolve ``url`` against k6-style ``hosts`` overrides.

    ``host_map`` keys are ``host`` or ``host:port``; values ``ip`` or ``ip:port``. A key
    with a port wins over one without.

    Raises:
        LoadError: not an ``http://`` URL, or a malformed override.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise errors.LoadError(f"unsupported URL {url!r}: only http:// and https:// are")
    if not parts.hostname:
        raise errors.LoadError(f"URL {url!r} has no host")
    try:
        default_port = 443 if parts.scheme == "https" else 80
        port = parts.port or default_port
    except ValueError as exc:
        raise errors.LoadError(f"URL {url!r}: {exc}") from exc
    host = parts.hostname
    host_header = host if port == default_port else f"{host}:{port}"
    if ":" in host:  # IPv6 literal: brackets back on for the Host header
        host_header = f"[{host}]" if port == default_port else f"[{host}]:{port}"
    overrides = dict(host_map)
    mapped = overrides.get(f"{host}:{port}") or overrides.get(host)
    connect_host, connect_port = host, port
    if mapped:
        addr, sep, mapped_port = mapped.rpartition(":")
        if not sep or not mapped_port.isdigit() or addr.endswith(":"):
            addr, mapped_port = mapped, str(port)  # no port (or a bare IPv6 address)
        connect_host, connect_port = addr.strip("[]"), int(mapped_port)
    path = parts.path or "/"
    target = f"{path}?{parts.query}" if parts.query else path
    return Target(host_header, connect_host, connect_port, target, parts.scheme, host)


def build_request(
    target: Target,
    method: str = "GET",
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
) -> bytes:
    """Encode the request once; every iteration writes the same bytes."""
    names = {name.lower() for name, _ in headers}
    lines = [f"{method.upper()} {target.target} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {target.host_header}")
    if "user-agent" not in names:
        lines.append(f"User-Agent: {USER_AGENT}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    if (body or method.upper() in ("POST", "PUT", "PATCH")) and "content-length" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@functools.cache
def tls_context(insecure: bool) -> ssl.SSLContext:
    """The client TLS context (one per process): the system's trust store, or no
    verification at all with k6's ``insecureSkipTLSVerify``."""
    ctx = ssl.create_default_context()
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class Result(typing.NamedTuple):
    """One request's outcome and timings (nanoseconds).

    A named tuple, not a dataclass: the fast path makes one per request with
    ``tuple.__new__`` (C, where a dataclass's ``__init__`` ran 14 attribute stores in
    Python), the fields read through C descriptors, and the runner's batched recording
    takes the columns of a batch with one ``zip(*batch)``.
    """

    status: int
    """HTTP status, or 0 when no response arrived."""
    error: str
    """Empty on a response; else what went wrong (``connection refused``, ``timeout``…)."""
    blocked: int
    connecting: int
    sending: int
    waiting: int
    receiving: int
    bytes_sent: int
    bytes_received: int
    cluster: str = ""
    zone: str = ""
    head: bytes = b""
    """The response head as received (status line and header fields, maybe the start
    of the body; :func:`split_head` reads it), only when the client captures responses
    (scripts)."""
    body: bytes = b""
    """Response body, only when the client captures it (scripts)."""
    tls: int = 0
    """``http_req_tls_handshaking``: the TLS handshake of a new https connection."""

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The header fields (captured responses only)."""
        return split_head(self.head) if self.head else []

    @property
    def set_cookie(self) -> bool:
        """Whether the response may set cookies: a quick look, no copy (``Cookie`` in any
        usual case; a false alarm only costs a look at the headers)."""
        head = self.head
        return b"ookie" in head or b"OOKIE" in head

    @property
    def duration(self) -> int:
        """``http_req_duration``: sending + waiting + receiving."""
        return self.sending + self.waiting + self.receiving


_new_result = tuple.__new__
_join = b"".join
"""Joins chunks; of one chunk, returns that very object (CPython's ``bytes.join``), so
one call replaces a length test and an index."""


class _Lost(Exception):
    """The connection closed before the response was complete."""


def split_head(head: bytes) -> list[tuple[bytes, bytes]]:
    """The header fields of a raw response head (status line, fields, maybe the start of
    the body): (name, value) pairs as sent, whitespace around the value stripped."""
    end = head.find(b"\r\n\r\n")
    lines = (head if end < 0 else head[:end]).split(b"\r\n")[1:]
    fields = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if colon:
            fields.append((name.strip(), value.strip()))
    return fields


def _head_field(head_lower: bytes, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case) in a lower-cased raw head."""
    end = head_lower.find(b"\r\n\r\n")
    at = head_lower.find(b"\r\n" + name + b":", 0, end if end >= 0 else len(head_lower))
    if at < 0:
        return None
    start = at + len(name) + 3
    stop = head_lower.find(b"\r\n", start)
    return head_lower[start : stop if stop >= 0 else len(head_lower)].strip()


class _Connection(asyncio.Protocol):
    """One TCP connection; httptools parses responses, callbacks stamp the times.

    No per-header callback (httptools calls only the callbacks a protocol defines, and
    ~10 Python calls per response were a tenth of a request's cost): the bytes up to the
    end of the head are kept as received and read only when something needs a header —
    a script's ``res.headers``, the cookie jar, the breakdown, a response cut short.

    The parser's callbacks are C where they only record (see :meth:`_callbacks`): a
    Python method called from C costs ~600 instructions a response, ``list.clear`` ~50.
    """

    __slots__ = (
        "_backoff",
        "_body",
        "_collect",
        "_head",
        "_in_head",
        "_memo",
        "_memo_body",
        "_quick",
        "_repeated",
        "_skip",
        "_waiter",
        "cluster",
        "done_ns",
        "first_byte_ns",
        "keep_alive",
        "lost",
        "owner",
        "parser",
        "received",
        "transport",
        "zone",
    )
    _plain_finish: typing.ClassVar[bool] = True
    """Without ``collect``, :meth:`finish` releases the response and returns its body."""
    _keeps_body: typing.ClassVar[bool] = False
    """The parser hands the body over (on_body): a remembered response's is handed over too."""

    def __init__(self, collect: bool) -> None:
        self._collect = collect
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._body: list[bytes] = []
        self._head: list[bytes] = []
        self._in_head: list[bool] = [True]
        """Not empty while the response's head is incomplete: the parser's
        on_headers_complete is this list's ``clear``."""
        self._memo = b""
        """The bytes of this connection's last response when they were one read, exactly
        one final response, and left the parser between responses (see data_received)."""
        self._memo_body = b""
        self._repeated = False
        """The remembered response came again."""
        self._skip = 0
        self._backoff = 0
        """Responses not to remember (see data_received): a server whose every response
        differs costs the remembering once in up to 256 responses, not every time."""
        self.parser = httptools.HttpResponseParser(self._callbacks())
        self.lost = False
        self.keep_alive = True
        self.first_byte_ns = 0
        self.done_ns = 0
        self.received = 0
        self.cluster = ""
        self.zone = ""
        self.owner: Client | None = None
        """The client whose :meth:`Client.send` request is in flight (its outcome goes to
        the client's callbacks instead of ``_waiter``); None for :meth:`Client.request`."""
        self._quick = not collect and self._plain_finish
        """:meth:`finish` only releases the response and returns its body (no breakdown
        to read): on_message_complete does that itself."""

    def _callbacks(self) -> object:
        """What the parser calls (httptools looks them up once, on the object it is given)."""
        return types.SimpleNamespace(
            on_headers_complete=self._in_head.clear,
            on_message_complete=self.on_message_complete,
        )

    @property
    def headers_complete(self) -> bool:
        return not self._in_head

    def _head_again(self) -> None:
        """A (final) response's head is awaited again."""
        if not self._in_head:
            self._in_head.append(True)

    # -- asyncio.Protocol --
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not a subclass of asyncio.Transport, only a duck of it.
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.first_byte_ns:
            self.first_byte_ns = _now()
        self.received += len(data)
        if self._waiter is None:
            return  # bytes nobody asked for: the connection is not reusable
        if data == self._memo:
            # The same bytes as the last response, which was one read and left the parser
            # between responses: the same response again, so what parsing it would do is
            # done without the parser (~3.5k instructions of ~43k a request). The parser
            # still reports its status (kept until the next response begins); it was
            # kept alive (see _remember).
            if self._in_head:
                # (the remembered object, equal to data: the cookie check that follows
                # compares heads, and the same object compares without reading it)
                self._head.append(self._memo)
                self._in_head.clear()  # (= on_headers_complete)
            if self._memo_body:
                self._body.append(self._memo_body)  # (= on_body)
            self._repeated = True
            self.on_message_complete(True)
            return
        if self._memo:  # a remembered response, not repeated this time
            if self._repeated:
                self._backoff = 0
            else:  # remembered for nothing: remember less often
                self._backoff = self._skip = min(2 * self._backoff + 1, 255)
            self._memo = b""
            self._repeated = False
        if self._in_head:  # (= not self.headers_complete)
            self._head.append(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(_Lost("protocol upgrade not supported"))
            return
        except httptools.HttpParserError as exc:
            self._fail(_Lost(f"bad response: {exc}"))
            return
        if self._skip:
            self._skip -= 1
        elif not self._in_head and (head := self._head) and head[0] is data:
            self._remember(data)  # (this read began the response: the parser was idle)

    def _remember(self, data: bytes) -> None:
        """``data`` began a response and the parser has its head: remember it (see
        data_received) if it is one final, kept-alive response, complete, with nothing
        after it — told by a parser of its own (this runs once per distinct response)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            return  # (not complete: a body still to come)
        if not self.keep_alive:
            return  # (the connection's last response)
        seen = _Seen()
        seen.parser = httptools.HttpResponseParser(seen)
        try:
            seen.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            return
        if seen.messages == [True]:  # one response, begun and completed, final, kept alive
            self._memo = data
            self._memo_body = b"".join(seen.body) if self._keeps_body else b""

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self.headers_complete and self.parser.get_status_code() and not self._framed():
            # A response without Content-Length or chunking ends when the connection does.
            self.keep_alive = False
            self.done_ns = _now()
            if self.owner is not None:
                self.owner._complete(self)
            else:
                waiter.set_result(None)
        else:
            self._fail(_Lost("connection reset by peer" if exc else "connection closed"))

    def _framed(self) -> bool:
        head = self.head().lower()
        return (
            _head_field(head, b"content-length") is not None
            or _head_field(head, b"transfer-encoding") is not None
        )

    # -- httptools callbacks (see _callbacks) --
    def on_message_complete(self, remembered: bool = False) -> None:
        # (remembered: the response is the remembered one, kept alive — the parser, which
        # did not see it, is between responses and reads no longer keep-alive then)
        done = self.done_ns = _now()
        parser = self.parser
        self.keep_alive = remembered or parser.should_keep_alive()
        client = self.owner
        if client is None or not self._quick:
            self._completed(client)
            return
        # = client._complete(self) with finish() and client._resolve() inline: this runs
        # for every fast-path response, and each of those calls cost ~600 instructions.
        status = parser.get_status_code()
        if status < 200:
            self.interim()
            return
        self.owner = None
        client._inflight = None
        client.busy = False
        self._waiter = None
        chunks = self._body
        if chunks:
            body = _join(chunks)  # (of one chunk: that chunk itself, as chunks[0])
            chunks.clear()
        else:
            body = b""
        fut = client._fut
        assert fut is not None
        if fut.done():  # the VU was interrupted: nobody records this response
            client._drop()
            return
        first_byte = self.first_byte_ns
        head = _join(self._head) if client._capture else b""  # (= self.head(), inline)
        sent = client._sent
        sent_start = client._sent_start
        result = _new_result(
            Result,
            (
                status,
                "",
                sent_start - client._start,
                0,
                sent - sent_start,
                first_byte - sent,
                done - first_byte,
                len(client._raw),
                self.received,
                "",  # (cluster and zone: only read with the breakdown, not quick)
                "",
                head,
                body,
                0,
            ),
        )
        if not self.keep_alive:
            client._drop()
        on_result = client._on_result
        if on_result is None:
            fut.set_result(result)
            return
        client.done_ns = done
        try:
            value = on_result(client, result, client._ctx)
        except BaseException as exc:  # the VU gets it where it awaits (e.g. --throw)
            fut.set_exception(exc)
        else:
            if value.__class__ is asyncio.Task:
                _chain(fut, value)
            else:
                fut.set_result(value)

    def _completed(self, client: Client | None) -> None:
        """The response is complete (done_ns and keep_alive set): to ``client``
        (:meth:`Client.send`) or the waiter (:meth:`Client.request`)."""
        if client is not None:
            client._complete(self)
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self.parser.get_status_code() < 200:
                self.interim()
                return
            waiter.set_result(None)

    def interim(self) -> None:
        """A 1xx interim response (103 Early Hints, an unasked 100 Continue) is complete:
        the final response follows, its head after this one's, as Go's client (so k6)
        skips them."""
        head = self.head()
        end = head.find(b"\r\n\r\n")
        self._head.clear()
        if 0 <= end < len(head) - 4:
            self._head.append(head[end + 4 :])
        self._head_again()

    # -- use --
    def _fail(self, exc: Exception) -> None:
        self.keep_alive = False
        if self.owner is not None:
            self.owner._broken(self, exc)
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def expire(self) -> None:
        """The request's deadline passed: its waiter raises TimeoutError."""
        if self.owner is not None:
            self.owner._broken(self, TimeoutError())
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(TimeoutError())

    def start(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        self._waiter = waiter = loop.create_future()
        self._head = []
        self.first_byte_ns = 0
        self.done_ns = 0
        self.received = 0
        self._head_again()
        return waiter

    def head(self) -> bytes:
        """The response's bytes up to its head's end (and maybe some body after it)."""
        head = self._head
        return head[0] if len(head) == 1 else b"".join(head)

    def finish(self) -> bytes:
        """Release the response; returns its body (with _BodyConnection)."""
        self._waiter = None
        if not self._collect:
            return b""
        # The breakdown: x-mcgw-cluster/zone headers, else a whereami JSON body.
        head = self.head().lower()
        cluster = _head_field(head, b"x-mcgw-cluster")
        zone = _head_field(head, b"x-mcgw-zone")
        self.cluster = cluster.decode("latin-1") if cluster is not None else ""
        self.zone = zone.decode("latin-1") if zone is not None else ""
        body = b"".join(self._body)
        self._body.clear()
        if not self.cluster and body and b"json" in (_head_field(head, b"content-type") or b""):
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                self.cluster = str(doc.get("cluster_name") or "")
                self.zone = self.zone or str(doc.get("zone") or "")
        return body

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Seen:
    """What a parser saw in one read (:meth:`_Connection._remember`)."""

    def __init__(self) -> None:
        self.parser: httptools.HttpResponseParser | None = None
        self.messages: list[bool] = []
        """Per response begun: whether it completed as a final, kept-alive one."""
        self.body: list[bytes] = []

    def on_message_begin(self) -> None:
        self.messages.append(False)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        assert parser is not None
        self.messages[-1] = parser.get_status_code() >= 200 and parser.should_keep_alive()


class _BodyConnection(_Connection):
    """A connection whose response bodies are kept (scripts read them; the breakdown
    may need the whereami JSON)."""

    __slots__ = ()
    _keeps_body = True

    def _callbacks(self) -> object:
        return types.SimpleNamespace(
            on_headers_complete=self._in_head.clear,
            on_body=self._body.append,
            on_message_complete=self.on_message_complete,
        )

    def finish(self) -> bytes:
        if self._collect:
            return super().finish()
        self._waiter = None
        body = self._body
        if not body:
            return b""
        out = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        return out


class _HeadConnection(_Connection):
    """A connection for HEAD requests only: a response ends with its head, whatever
    Content-Length or Transfer-Encoding it announces (RFC 9110 §9.3.2: the GET's, with no
    body). httptools cannot be told the request was HEAD (llhttp skips a body only when
    on_headers_complete returns 1, which its binding never does), so the response is
    complete at the head and the parser, left expecting a body, is replaced before the
    next request (in finish). A class of its own so that other requests pay nothing for it."""

    __slots__ = ()
    _plain_finish = False  # (finish replaces the parser)

    def _callbacks(self) -> object:
        # (no on_message_complete: the response is complete at the head already)
        return types.SimpleNamespace(on_headers_complete=self.on_headers_complete)

    def _remember(self, data: bytes) -> None:
        return  # (the parser is replaced after each response: nothing to skip)

    def on_headers_complete(self) -> None:
        self._in_head.clear()
        self.done_ns = _now()
        parser = self.parser
        # llhttp's keep-alive answer also asks whether the body ends with the connection
        # (no Content-Length, no Transfer-Encoding), but a HEAD response has no body
        # (RFC 9112 §6.3): only the version and Connection decide.
        self.keep_alive = parser.should_keep_alive() or _persistent(
            parser.get_http_version(), self.head()
        )
        self._completed(self.owner)

    def finish(self) -> bytes:
        # Every path that ends a (final) response calls this: the parser, still waiting
        # for the body it was announced, is replaced (the running one, if this is called
        # from its callback, only returns).
        self.parser = httptools.HttpResponseParser(self._callbacks())
        return super().finish()


def _persistent(version: str, head: bytes) -> bool:
    """Whether a response's connection persists, by its version and Connection header
    alone (RFC 9112 §9.3): HTTP/1.1 unless ``close``, HTTP/1.0 only with ``keep-alive``."""
    value = _head_field(head.lower(), b"connection")
    tokens = {t.strip() for t in value.split(b",")} if value is not None else set()
    if version == "1.0":
        return b"keep-alive" in tokens and b"close" not in tokens
    return b"close" not in tokens


def _chain(fut: asyncio.Future[Any], task: asyncio.Task[Any]) -> None:
    """Resolve ``fut`` with ``task``'s outcome (``on_result`` returned a task: the result
    needs more requests, e.g. a redirect to follow); cancelling ``fut`` cancels the task."""

    def done(task: asyncio.Task[Any]) -> None:
        if fut.done():
            return
        if task.cancelled():
            fut.cancel()
        elif (exc := task.exception()) is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(task.result())

    def cancelled(fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            task.cancel()

    task.add_done_callback(done)
    fut.add_done_callback(cancelled)


class _Writes:
    """The :meth:`Client.send` writes due in the loop's next pass, for one loop: one
    ``call_soon`` per pass writes them all (a loop Handle per request cost more than the
    rest of the write's Python), in the order the VUs sent them."""

    __slots__ = ("_due",)

    def __init__(self) -> None:
        self._due: list[Client] = []
        # (No reference to the loop: it is this object's weak key.)

    def _flush(self) -> None:
        due = self._due
        self._due = []
        loop_time = 0.0
        for client in due:
            # Each client's write, inline here (a method call per request cost ~600
            # instructions of ~50k).
            conn = client._pending
            if conn is None:
                continue  # resolved before its write (the connection was lost)
            client._pending = None
            fut = client._fut
            assert fut is not None
            if fut.done():  # cancelled before it went out: the connection is still clean
                client.busy = False
                continue
            start = _now()
            client._start = start
            if conn.lost or not conn.keep_alive or conn.transport is None:
                client._retry()
                continue
            # The request goes out now: its outcome comes to this client, the
            # connection's per-response state starts afresh (inline: a method call here
            # cost ~1 % of a request's instructions).
            conn.owner = client
            conn._waiter = fut
            conn._head.clear()  # (head() hands out bytes, never the list)
            conn.first_byte_ns = 0  # (done_ns: always set at the end, before it is read)
            conn.received = 0
            if not conn._in_head:  # = conn._head_again(), inline
                conn._in_head.append(True)
            if not loop_time:  # one reading per pass (the clock has 1 ms steps in uvloop)
                loop_time = client._loop.time()
            deadline = loop_time + client._send_timeout_s
            if client._timer is None or deadline < client._timer_at:
                client._arm(deadline, conn)
            else:  # = _arm's common case, inlined
                client._deadline = deadline
                client._inflight = conn
            sent_start = _now()
            conn.transport.write(client._raw)
            client._sent = _now()
            client._sent_start = sent_start


_WRITES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Writes] = weakref.WeakKeyDictionary()


def _writes(loop: asyncio.AbstractEventLoop) -> _Writes:
    writes = _WRITES.get(loop)
    if writes is None:
        writes = _WRITES[loop] = _Writes()
    return writes


OnResult = Callable[["Client", Result, Any], object]
"""What a :meth:`Client.send` future resolves to: ``on_result(client, result, context)``
(or the exception it raises; when it returns a task, that task's outcome)."""


class Client:
    """One VU's HTTP client: a single connection, opened on demand and kept alive.

    Two ways to send. :meth:`request` is a coroutine for any request (it connects when
    needed). :meth:`send` is the per-request fast path on a kept-alive connection: no
    coroutine, no frames to resume — the write goes out in the loop's next pass (with the
    other VUs' writes), and the protocol callback that completes the response builds the
    :class:`Result`, hands it to ``on_result`` and resolves the one future the VU awaits.

    A client made with ``head=True`` sends HEAD requests only (their responses have no
    body whatever they announce); other methods take another client.
    """

    __slots__ = (
        "_capture",
        "_collect",
        "_conn",
        "_ctx",
        "_deadline",
        "_fut",
        "_inflight",
        "_insecure",
        "_loop",
        "_on_result",
        "_pending",
        "_protocol",
        "_raw",
        "_request",
        "_retrying",
        "_send_timeout_s",
        "_sent",
        "_sent_start",
        "_start",
        "_target",
        "_timeout_s",
        "_timer",
        "_timer_at",
        "_writes",
        "busy",
        "done_ns",
    )

    def __init__(
        self,
        target: Target,
        request: bytes = b"",
        *,
        timeout_s: float,
        collect: bool = False,
        capture: bool = False,
        insecure: bool = False,
        on_result: OnResult | None = None,
        head: bool = False,
    ) -> None:
        self._target = target
        self._insecure = insecure
        kind = _BodyConnection if (capture or collect) else _Connection
        if head:  # every request of this client is HEAD (see _HeadConnection)
            kind = _HeadConnection
        self._protocol = functools.partial(kind, collect)
        self._request = request
        self._timeout_s = timeout_s
        self._collect = collect
        self._capture = capture
        self._conn: _Connection | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._deadline = 0.0
        self._inflight: _Connection | None = None
        # send()'s request in flight (one at a time).
        self._on_result = on_result
        self._writes = _writes(self._loop)
        self.busy = False
        """A :meth:`send` request is in flight (take another client from a pool)."""
        self.done_ns = 0
        """When ``on_result`` is called (the clock read as the response completed): the
        callback need not read it again."""
        self._send_timeout_s = timeout_s
        self._fut: asyncio.Future[Any] | None = None
        self._ctx: Any = None
        self._raw = b""
        self._pending: _Connection | None = None
        self._start = 0
        self._sent_start = 0
        self._sent = 0
        self._retrying: asyncio.Task[None] | None = None

    def send(
        self, raw: bytes, context: Any = None, timeout_s: float | None = None
    ) -> asyncio.Future[Any] | None:
        """The fast path: ``raw`` on the kept-alive connection, or None when there is none
        (or a request is in flight) — then use :meth:`request`.

        The request's clock starts when it is written, in the loop's next pass (as
        :meth:`request` after ``runner.yield_once``). The future resolves to
        ``on_result(self, result, context)``; network trouble is a Result, as with
        :meth:`request` (a kept-alive connection found closed is retried once on a new
        one). If the future is cancelled the connection is dropped on the outcome.
        """
        conn = self._conn
        if conn is None or conn.lost or not conn.keep_alive or self.busy:
            return None
        self.busy = True
        self._fut = fut = self._loop.create_future()
        self._ctx = context
        self._raw = raw
        self._send_timeout_s = self._timeout_s if timeout_s is None else timeout_s
        self._pending = conn
        writes = self._writes  # = writes.add(self), inline: (a call less per request)
        due = writes._due
        due.append(self)
        if len(due) == 1:  # the pass's first: one call_soon writes them all
            self._loop.call_soon(writes._flush)
        return fut

    def _complete(self, conn: _Connection) -> None:
        """The response is complete (from the protocol callback; its common case is
        inlined in :meth:`_Connection.on_message_complete`)."""
        status = conn.parser.get_status_code()
        if status < 200:
            conn.interim()
            return
        conn.owner = None
        self._inflight = None
        self.busy = False
        body = conn.finish()
        fut = self._fut
        assert fut is not None
        if fut.done():  # the VU was interrupted: nobody records this response
            self._drop()
            return
        first_byte = conn.first_byte_ns
        raw = self._raw
        if self._capture:  # = conn.head(), inline
            chunks = conn._head
            head = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        else:
            head = b""
        result = _new_result(
            Result,
            (
                status,
                "",
                self._sent_start - self._start,
                0,
                self._sent - self._sent_start,
                first_byte - self._sent,
                conn.done_ns - first_byte,
                len(raw),
                conn.received,
                conn.cluster,
                conn.zone,
                head,
                body,
                0,
            ),
        )
        if not conn.keep_alive:
            self._drop()
        self._resolve(fut, result)

    def _broken(self, conn: _Connection, exc: BaseException) -> None:
        """The request failed: lost connection, bad response or timeout."""
        conn.owner = None
        self._inflight = None
        conn.finish()
        self._drop()
        fut = self._fut
        assert fut is not None
        if fut.done():
            self.busy = False
            return
        if isinstance(exc, TimeoutError):
            self.busy = False
            self._resolve(fut, _failure(self._start, "request timeout"))
        elif conn.received == 0:
            # A kept-alive connection the server had already closed: retry once on a new
            # one, as Go's transport (and so k6) does.
            self._retry()
        else:
            self.busy = False
            now = _now()
            self._resolve(
                fut,
                Result(
                    status=0,
                    error=str(exc),
                    blocked=self._sent_start - self._start,
                    connecting=0,
                    sending=self._sent - self._sent_start,
                    waiting=(conn.first_byte_ns or now) - self._sent,
                    receiving=0,
                    bytes_sent=len(self._raw),
                    bytes_received=conn.received,
                ),
            )

    def _retry(self) -> None:
        self._inflight = None
        self._retrying = self._loop.create_task(self._resend())

    async def _resend(self) -> None:
        fut = self._fut
        assert fut is not None
        try:
            result = await self.request(self._raw, self._send_timeout_s, retry=False)
        finally:
            self.busy = False
            self._retrying = None
        if not fut.done():
            self._resolve(fut, result)

    def _resolve(self, fut: asyncio.Future[Any], result: Result) -> None:
        on_result = self._on_result
        if on_result is None:
            fut.set_result(result)
            return
        self.done_ns = _now()
        try:
            value = on_result(self, result, self._ctx)
        except BaseException as exc:  # the VU gets it where it awaits (e.g. --throw)
            fut.set_exception(exc)
        else:
            if value.__class__ is asyncio.Task:
                _chain(fut, value)
            else:
                fut.set_result(value)

    async def request(
        self, request: bytes | None = None, timeout_s: float | None = None, *, retry: bool = True
    ) -> Result:
        """Send the request (the one given at construction by default) and wait for the
        whole response.

        Never raises for network trouble: refused connections, resets and timeouts come
        back as a :class:`Result` with ``status=0`` and ``error`` set.
        """
        if self.busy and self._retrying is None:
            self._abandon()  # a send() whose VU was interrupted: its connection is unusable
        start = _now()
        raw = self._request if request is None else request
        deadline = self._loop.time() + (self._timeout_s if timeout_s is None else timeout_s)
        try:
            # One coroutine for the common case (a kept-alive connection): the exchange
            # is inlined here, only a new connection takes a further await.
            for _ in range(2):
                conn = self._conn
                connecting = 0
                tls = 0
                reused = conn is not None and not conn.lost and conn.keep_alive
                if not reused:
                    opened = await self._connect(start, deadline)
                    if isinstance(opened, Result):
                        return opened
                    conn, connecting, tls = opened
                assert conn is not None and conn.transport is not None
                waiter = conn.start(self._loop)
                self._arm(deadline, conn)
                sent_start = _now()
                conn.transport.write(raw)
                sent = _now()
                try:
                    await waiter
                except _Lost as exc:
                    conn.finish()
                    self._drop()
                    if reused and retry and conn.received == 0:
                        # A kept-alive connection the server had already closed: retry
                        # once on a new one, as Go's transport (and so k6) does.
                        continue
                    return Result(
                        status=0,
                        error=str(exc),
                        blocked=sent_start - start,
                        connecting=connecting,
                        tls=tls,
                        sending=sent - sent_start,
                        waiting=(conn.first_byte_ns or _now()) - sent,
                        receiving=0,
                        bytes_sent=len(raw),
                        bytes_received=conn.received,
                    )
                except (asyncio.CancelledError, TimeoutError):
                    self._drop()
                    raise
                finally:
                    self._inflight = None
                status = conn.parser.get_status_code()  # (finish may replace the parser)
                body = conn.finish()
                first_byte = conn.first_byte_ns
                head = conn.head() if self._capture else b""
                result = Result(
                    status,
                    "",
                    sent_start - start,
                    connecting,
                    sent - sent_start,
                    first_byte - sent,
                    conn.done_ns - first_byte,
                    len(raw),
                    conn.received,
                    conn.cluster,
                    conn.zone,
                    head,
                    body,
                    tls,
                )
                if not conn.keep_alive:
                    self._drop()
                return result
            raise AssertionError("unreachable: the retry returns")
        except TimeoutError:
            self._drop()
            return _failure(start, "request timeout")

    async def _connect(self, start: int, deadline: float) -> tuple[_Connection, int, int] | Result:
        """A new connection (TLS too for https): it with the connect and handshake
        times, or the failure as a Result; raises TimeoutError past ``deadline``."""
        self._drop()
        t = _now()
        # The deadline's TimeoutError is raised by the context's exit, outside the
        # OSError handlers (TimeoutError is an OSError).
        async with asyncio.timeout_at(deadline):
            try:
                _, conn = await self._loop.create_connection(
                    self._protocol,
                    self._target.connect_host,
                    self._target.connect_port,
                )
            except ConnectionRefusedError:
                return _failure(start, "connection refused")
            except OSError as exc:
                return _failure(start, f"dial: {exc.strerror or exc}")
        connecting = _now() - t
        tls = 0
        if self._target.scheme == "https":
            t = _now()
            async with asyncio.timeout_at(deadline):
                try:
                    assert conn.transport is not None
                    upgraded = await self._loop.start_tls(
                        conn.transport,
                        conn,
                        tls_context(self._insecure),
                        server_hostname=self._target.server_name,
                    )
                    conn.transport = typing.cast(asyncio.Transport, upgraded)
                except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
                    conn.close()
                    return _failure(start, f"tls: {exc}")
            tls = _now() - t
        self._conn = conn
        return conn, connecting, tls

    # The deadline of the request in flight. Not asyncio.timeout (a Timeout object,
    # current_task() and a timer per request) and not a timer per request either: one
    # timer per client, re-armed only when it fires early — deadlines only move later
    # while requests follow each other, so a 60 s timeout costs one wake-up a minute.
    def _arm(self, deadline: float, conn: _Connection) -> None:
        self._deadline = deadline
        self._inflight = conn
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    def _on_timer(self) -> None:
        self._timer = None
        conn = self._inflight
        if conn is None:
            return
        if self._loop.time() >= self._deadline:
            conn.expire()
        else:
            self._timer = self._loop.call_at(self._deadline, self._on_timer)
            self._timer_at = self._deadline

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _abandon(self) -> None:
        fut = self._fut
        if fut is not None and not fut.done():
            # Its VU is gone (or was interrupted): cancelled, rather than failed by the
            # connection's loss below — an exception nobody retrieves is logged when the
            # future is collected. (A redirect's follow task chained to it is cancelled.)
            fut.cancel()
        if self._conn is not None:
            self._conn.owner = None
        self._pending = None
        self.busy = False
        self._drop()

    def close(self) -> None:
        """Close the VU's connection."""
        self._abandon()
        if self._retrying is not None:
            self._retrying.cancel()
            self._retrying = None
        self._inflight = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _failure(start: int, error: str) -> Result:
    return Result(
        status=0,
        error=error,
        blocked=_now() - start,
        connecting=0,
        sending=0,
        waiting=0,
        receiving=0,
        bytes_sent=0,
        bytes_received=0,
    )

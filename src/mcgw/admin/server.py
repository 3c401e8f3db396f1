"""The admin HTTP server: a few GET routes on a loopback address of its own.

A small :class:`asyncio.Protocol` over ``httptools`` (the data plane's parser):
HTTP/1.1 with keep-alive, GET and HEAD only, every answer computed synchronously
when the request is complete; it never upgrades a connection nor tunnels CONNECT. It
shares the gateway's event loop, so what it reads (snapshot, health map, counters) is
consistent without locks; answers are small and a scrape folds a few hundred cells at
most.

A sampler task reads the counters once a second (:class:`stats.Sampler`): the
recent rates, percentiles and the dashboard's history come from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from importlib import resources
from typing import Any

import httptools

from mcgw.admin import exposition, sources, views
from mcgw.errors import McgwError

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = ("127.0.0.1", 19000)
"""Where ``mcgw up`` / ``mcgw serve`` put the admin server unless told otherwise."""

SAMPLE_INTERVAL_S = 1.0

_JSON = "application/json"
_HTML = "text/html; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
_METHODS = (b"GET", b"HEAD")
_ALLOW = ", ".join(m.decode() for m in _METHODS)
"""What a 405 names in ``Allow`` (RFC 9110 §15.5.6: it must)."""
_NOT_ALLOWED = b"405 Method Not Allowed: the admin API is read-only\n"
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 400: "Bad Request"}
_REASONS[503] = "Service Unavailable"
_REASONS[500] = "Internal Server Error"

Answer = tuple[int, str, bytes]
"""(status, content type, body)."""


class AdminError(McgwError):
    """The admin server could not start (its address is taken, say)."""


def parse_address(text: str) -> tuple[str, int] | None:
    """Parse ``--admin``: ``HOST:PORT``, ``:PORT`` (loopback), ``PORT`` or ``off``.

    Returns:
        (host, port), or None for ``off``.

    Raises:
        ValueError: none of those forms.
    """
    if text.strip().lower() in ("off", "none", "false", "no"):
        return None
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or DEFAULT_ADDRESS[0]
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(
            f"--admin {text!r}: expected HOST:PORT (e.g. 127.0.0.1:19000), PORT, or off"
        )
    return host, int(port)


def _json(doc: Any, status: int = 200) -> Answer:
    return status, _JSON, json.dumps(doc, separators=(",", ":")).encode()


def dashboard_html() -> bytes:
    """The dashboard page (shipped as package data)."""
    return resources.files("mcgw.admin").joinpath("dashboard.html").read_bytes()


class Routes:
    """Path → answer, for one :class:`sources.Sources`."""

    def __init__(self, src: sources.Sources) -> None:
        self.src = src
        self._dashboard = dashboard_html()
        self.table: dict[str, Callable[[], Answer]] = {
            "/": self._index,
            "/healthz": lambda: _json(views.health(src)),
            "/readyz": self._ready,
            "/api/routes": lambda: _json(views.routes(src)),
            "/api/endpoints": lambda: _json(views.endpoints(src)),
            "/api/stats": lambda: _json(views.stats_doc(src)),
            "/metrics": lambda: (200, exposition.CONTENT_TYPE, exposition.render(src)),
            "/dashboard": lambda: (200, _HTML, self._dashboard),
        }

    def _index(self) -> Answer:
        return _json({"endpoints": sorted(p for p in self.table if p != "/")})

    def _ready(self) -> Answer:
        ready, doc = views.readiness(self.src)
        return _json(doc, 200 if ready else 503)

    def answer(self, method: bytes, target: bytes) -> Answer:
        if method not in _METHODS:
            return 405, _TEXT, _NOT_ALLOWED
        if target.startswith((b"http://", b"https://")):
            # The absolute form (RFC 9112 §3.2.2), as a client sends through a proxy:
            # the path is what follows the authority.
            target = b"/" + target.partition(b"://")[2].partition(b"/")[2]
        path = target.partition(b"?")[0].decode("latin-1")
        if len(path) > 1:
            path = path.rstrip("/")
        handler = self.table.get(path)
        if handler is None:
            return 404, _TEXT, b"404 Not Found; see / for the list of endpoints\n"
        try:
            return handler()
        except Exception:
            log.exception("admin: %s failed", path)
            return 500, _TEXT, b"500 Internal Server Error\n"


class _Connection(asyncio.Protocol):
    def __init__(self, routes: Routes, connections: set[_Connection]) -> None:
        self._routes = routes
        self._connections = connections
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._target = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # A request offering an upgrade (Connection: Upgrade) or a CONNECT: the parser
            # stops after it (HttpParserUpgrade is no HttpParserError), once
            # on_message_complete has answered it and closed the connection. Closing
            # again is a no-op, and there in case a parser ever stops sooner.
            self.close()
        except httptools.HttpParserError:
            self._write(400, _TEXT, b"400 Bad Request\n", keep=False, head=False)

    def on_message_begin(self) -> None:
        self._target = b""

    def on_url(self, url: bytes) -> None:
        self._target += url

    def on_headers_complete(self) -> None:
        method = self._parser.get_method()
        if method not in _METHODS and not self._parser.should_upgrade():
            # Refused before any body: a client that sent `Expect: 100-continue` is
            # waiting for a word before it sends one, and a body is never read here.
            self._write(405, _TEXT, _NOT_ALLOWED, keep=False, head=False)

    def on_message_complete(self) -> None:
        method = self._parser.get_method()
        status, ctype, body = self._routes.answer(method, self._target)
        # A request offering an upgrade, or a CONNECT, is answered as plain HTTP/1.1 (RFC
        # 9110 §7.8 lets a server ignore the offer; CONNECT is a 405), then the connection
        # closes: the parser stops at the end of such a request's headers, so where a
        # next request would start is unknown. Nothing that polls the admin API upgrades.
        keep = self._parser.should_keep_alive() and not self._parser.should_upgrade()
        self._write(status, ctype, body, keep=keep, head=method == b"HEAD")

    def _write(self, status: int, ctype: str, body: bytes, *, keep: bool, head: bool) -> None:
        t = self._transport
        if t is None or t.is_closing():
            return
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
        ]
        if status == 405:
            lines.append(f"Allow: {_ALLOW}")
        if not keep:
            lines.append("Connection: close")
        t.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else body))
        if not keep:
            t.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class AdminServer:
    """Serves the admin API for ``src`` on ``host:port`` (port 0: any free one).

    Args:
        src: what to show.
        host: a loopback address by default; the admin API has no authentication.
        port: 0 binds an ephemeral port (tests); :attr:`address` tells which.
    """

    def __init__(self, src: sources.Sources, host: str, port: int) -> None:
        self.src = src
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._connections: set[_Connection] = set()

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("admin server not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    async def start(self) -> None:
        """Bind and start sampling.

        Raises:
            AdminError: the address cannot be bound.
        """
        routes = Routes(self.src)
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _Connection(routes, self._connections),
                self.host,
                self.port,
                reuse_address=True,
            )
        except OSError as exc:
            raise AdminError(
                f"admin server: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
                " (choose another with --admin HOST:PORT, or --admin off)"
            ) from exc
        self.src.sampler.take(self.src.reading())
        self._sampler = loop.create_task(self._sample(), name="admin sampler")

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL_S)
            self.src.sampler.take(self.src.reading())

    async def close(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        if self._server is not None:
            self._server.close()
            for conn in list(self._connections):
                conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

"""A byte-exact HTTP/1.1 client over one loopback connection, for proxy tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field

import httptools


@dataclass(slots=True)
class Response:
    """One parsed response."""

    status: int = 0
    version: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    chunked: bool = False
    """Whether it came with ``Transfer-Encoding: chunked``."""

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


class RawClient:
    """Send raw bytes, read back whole responses, on one connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ready: deque[Response] = deque()
        self._cur = Response()
        self._body: list[bytes] = []
        self._head_request = False
        self._parser = httptools.HttpResponseParser(self)
        self.eof = False
        self._broken = False

    @classmethod
    async def connect(cls, address: tuple[str, int]) -> RawClient:
        reader, writer = await asyncio.open_connection(*address)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def request(
        self,
        method: str = "GET",
        target: str = "/",
        *,
        host: str = "example.com",
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes | None = None,
        version: str = "1.1",
        timeout_s: float = 5.0,
    ) -> Response:
        """Send one request (Content-Length framing when ``body`` is given), read its response."""
        lines = [f"{method} {target} HTTP/{version}", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        return await self.response(head=method == "HEAD", timeout_s=timeout_s)

    async def response(self, *, head: bool = False, timeout_s: float = 5.0) -> Response:
        """Return the next response.

        Args:
            head: the request was HEAD (the response has no body).

        Raises:
            ConnectionError: the connection ended first.
            TimeoutError: nothing complete within ``timeout_s``.
        """
        self._head_request = head
        async with asyncio.timeout(timeout_s):
            while not self._ready:
                data = await self._read()
                if not data:
                    self.eof = True
                    if self._cur.status and not self._ready and self._close_delimited():
                        # A close-delimited body ends here.
                        self._finish()
                    if not self._ready:
                        raise ConnectionError("connection closed before a complete response")
                    break
                self._parser.feed_data(data)
        return self._ready.popleft()

    async def closed(self, timeout_s: float = 5.0) -> bool:
        """Wait until the peer closes; return True if it did within ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                while await self._read():
                    pass
        except (TimeoutError, ConnectionError):
            return False
        self.eof = True
        return True

    async def _read(self) -> bytes:
        """The next bytes received; b"" at the end.

        A write that failed (the peer had closed: a request sent after ``Connection:
        close``) leaves asyncio's reader refusing every read, even of bytes received
        before, such as the response that said close: those are taken from its buffer
        first, then the connection is at its end."""
        if self._broken:
            return b""
        try:
            return await self._reader.read(65536)
        except ConnectionError:
            self._broken = True
            buffered: bytearray = getattr(self._reader, "_buffer", bytearray())
            data = bytes(buffered)
            buffered.clear()
            return data

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()

    def _close_delimited(self) -> bool:
        return not self._cur.chunked and self._cur.header("content-length") is None

    # -- httptools callbacks --------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._cur.headers.append((name.decode("latin-1"), value.decode("latin-1")))
        if name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
            self._cur.chunked = True

    def on_headers_complete(self) -> None:
        self._cur.status = self._parser.get_status_code()
        self._cur.version = self._parser.get_http_version()
        if self._cur.status < 200:
            self._cur = Response()
            return
        if self._head_request:
            self._finish()
            self._parser = httptools.HttpResponseParser(self)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._cur.status >= 200:
            self._finish()

    def _finish(self) -> None:
        self._cur.body = b"".join(self._body)
        self._body = []
        self._ready.append(self._cur)
        self._cur = Response()

"""RequestMirror copies: fire-and-forget, bounded, never in the client's way.

A copy is one whole request (head and framed body, as forwarded to the primary
backend) written on a fresh connection to one endpoint of the mirror backend; the
response head is awaited only to know when to hang up, and discarded. At most
``limit`` copies are in flight: beyond, new copies are dropped (counted), so a slow
or dead mirror can cost memory and sockets only up to that bound, and never time
of the request it copies.
"""

from __future__ import annotations

import asyncio
import contextlib

import httptools

Key = tuple[str, int]


class _Discard(asyncio.Protocol):
    """Reads a response until its head is complete, then signals ``done``."""

    __slots__ = ("done", "parser", "transport")

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._finish()

    def on_headers_complete(self) -> None:
        self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class Mirrors:
    """Sender of mirror copies for one gateway.

    Args:
        limit: most copies in flight; more are dropped.
        timeout_s: seconds one copy may take (connect, send, response head).
    """

    __slots__ = ("_tasks", "dropped", "limit", "sent", "timeout_s")

    def __init__(self, *, limit: int, timeout_s: float) -> None:
        self.limit = limit
        self.timeout_s = timeout_s
        self.sent = 0
        """Copies started."""
        self.dropped = 0
        """Copies not sent because ``limit`` were in flight."""
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def send(self, key: Key, data: bytes) -> bool:
        """Start sending ``data`` to endpoint ``key``; return False when dropped."""
        if len(self._tasks) >= self.limit:
            self.dropped += 1
            return False
        self.sent += 1
        task = asyncio.get_running_loop().create_task(self._copy(key, data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _copy(self, key: Key, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        transport: asyncio.BaseTransport | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                transport, _ = await loop.create_connection(lambda: _Discard(done), *key)
                transport.write(data)
                await done
        except (OSError, TimeoutError):
            pass  # A mirror's failure is nobody's business.
        finally:
            if transport is not None:
                transport.close()

    def close(self) -> None:
        """Cancel every copy in flight."""
        for task in list(self._tasks):
            task.cancel()

    async def wait_closed(self) -> None:
        tasks = list(self._tasks)
        if tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)

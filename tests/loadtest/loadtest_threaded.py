"""The loopback test server on its own thread and loop, for tests that run the CLI (which
runs its own event loop on the calling thread)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator

import loadtest_server as fake


@contextlib.contextmanager
def serving(
    behaviour: fake.Behaviour | None = None, tls: ssl.SSLContext | None = None
) -> Iterator[fake.Server]:
    ready = threading.Event()
    holder: list[fake.Server] = []
    stop: list[asyncio.Event] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        loops.append(asyncio.get_running_loop())
        stop.append(asyncio.Event())
        async with fake.serve(behaviour, tls) as server:
            holder.append(server)
            ready.set()
            await stop[0].wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5), "test server did not start"
    try:
        yield holder[0]
    finally:
        loops[0].call_soon_threadsafe(stop[0].set)
        thread.join(5)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.contextmanager
def handling(handle: Handler) -> Iterator[int]:
    """A server on 127.0.0.1 whose connections ``handle`` serves, on its own thread and
    loop (for tests with a server of their own making); yields its port."""
    ready = threading.Event()
    box: list[tuple[asyncio.AbstractEventLoop, asyncio.Event, int]] = []

    async def main() -> None:
        stop = asyncio.Event()
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        box.append((asyncio.get_running_loop(), stop, srv.sockets[0].getsockname()[1]))
        ready.set()
        await stop.wait()
        srv.close()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5), "test server did not start"
    loop, stop, port = box[0]
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)


async def read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The next request head on a connection (through its blank line); None once the
    client has closed it."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None

"""The loopback test server on its own thread and loop, for tests that run the CLI (which
runs its own event loop on the calling thread)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterator

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

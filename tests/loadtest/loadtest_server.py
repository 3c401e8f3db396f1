"""A tiny HTTP/1.1 server on 127.0.0.1 for the load tester's tests.

It counts what it sees (requests, connections, Host headers, targets) so tests can
compare the load tester's numbers with the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class Behaviour:
    status: int = 200
    delay_s: float = 0.0
    """Wait before answering (a slow backend)."""
    body: bytes = b'{"ok": true}'
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    close: bool = False
    """Answer with ``Connection: close`` and close."""
    unframed: bool = False
    """No Content-Length: the body ends when the connection closes."""
    drop_after_s: float | None = None
    """Close idle keep-alive connections this long after each response, silently."""
    respond: bool = True
    """False: read requests and never answer."""
    status_by_path: bool = False
    """``/status/NNN`` answers NNN (others ``status``)."""


@dataclass
class Server:
    port: int
    behaviour: Behaviour
    requests: int = 0
    connections: int = 0
    hosts: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    cookies: list[str] = field(default_factory=list)
    """Each request's Cookie header ("" when it had none)."""


async def _handle(
    server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    server.connections += 1
    b = server.behaviour
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            server.requests += 1
            server.targets.append(lines[0].split(" ")[1])
            cookie = ""
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "host":
                    server.hosts.append(value.strip())
                elif name.lower() == "cookie":
                    cookie = value.strip()
            server.cookies.append(cookie)
            if not b.respond:
                await asyncio.sleep(3600)
            if b.delay_s:
                await asyncio.sleep(b.delay_s)
            status = b.status
            target = server.targets[-1]
            if b.status_by_path and target.startswith("/status/"):
                status = int(target.removeprefix("/status/"))
            reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}.get(status, "X")
            out = [f"HTTP/1.1 {status} {reason}"]
            out += [f"{k}: {v}" for k, v in b.headers]
            if not b.unframed:
                out.append(f"Content-Length: {len(b.body)}")
            if b.close or b.unframed:
                out.append("Connection: close")
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + b.body)
            await writer.drain()
            if b.close or b.unframed:
                return
            if b.drop_after_s is not None:
                try:
                    async with asyncio.timeout(b.drop_after_s):
                        await reader.readuntil(b"\r\n\r\n")
                except TimeoutError:
                    return  # idle: close without a word, as servers with keep-alive timeouts do
                raise AssertionError("test client sent a request before the drop")
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def serve(
    behaviour: Behaviour | None = None, tls: ssl.SSLContext | None = None
) -> AsyncIterator[Server]:
    """Run the server on an ephemeral loopback port for the duration of the block
    (HTTPS with ``tls``)."""
    state = Server(port=0, behaviour=behaviour or Behaviour())
    tasks: set[asyncio.Task[None]] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await _handle(state, reader, writer)
        except asyncio.CancelledError:
            pass  # shutting down; a cancelled stream handler only makes asyncio log noise
        finally:
            tasks.discard(task)

    srv = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=tls)
    state.port = srv.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        srv.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await srv.wait_closed()


def whereami(cluster: str, zone: str) -> bytes:
    return json.dumps({"cluster_name": cluster, "zone": zone, "pod_name": "store-0"}).encode()

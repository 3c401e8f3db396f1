"""Running the Store API: listen, serve until told to stop, exit cleanly.

:func:`serve` starts a server on the running loop and returns a :class:`StoreServer`
handle (tests use it in-process); :func:`run` is the whole life of a pod's process on
uvloop: serve until SIGTERM or SIGINT, stop accepting, let requests in progress finish
(bounded by a grace period), flush the log, return 0.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from typing import IO

import uvloop

from mcgw.store import errors, payload, protocol, requestlog
from mcgw.store import settings as settings_

GRACE_S = 5.0
"""How long requests in progress may take to finish once a stop is asked for."""


class StoreServer:
    """A running Store API server; returned by :func:`serve`."""

    def __init__(
        self, server: asyncio.Server, shared: protocol.Shared, log: requestlog.RequestLog
    ) -> None:
        self._server = server
        self._shared = shared
        self._log = log
        self._closed = False
        sockname = server.sockets[0].getsockname()
        self.host: str = sockname[0]
        """Address listened on."""
        self.port: int = sockname[1]
        """Port listened on (the one picked when ``PORT=0``)."""

    async def close(self, grace_s: float = GRACE_S) -> None:
        """Stop accepting, finish requests in progress (up to ``grace_s``), flush the log."""
        if self._closed:
            return
        self._closed = True
        shared = self._shared
        shared.closing = True
        self._server.close()
        for conn in list(shared.connections):
            conn.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while shared.connections and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(shared.connections):
            conn.abort()
        await self._server.wait_closed()
        self._log.close()

    async def __aenter__(self) -> StoreServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def serve(settings: settings_.Settings, *, log: IO[bytes] | None = None) -> StoreServer:
    """Start serving on the running loop and return once listening.

    Args:
        settings: what to answer and where to listen.
        log: where request lines go; default stdout.

    Raises:
        StoreError: the address cannot be listened on.
    """
    request_log = requestlog.RequestLog(
        sys.stdout.buffer if log is None else log, settings.log_interval_s
    )
    shared = protocol.Shared(payload.Payload(settings), request_log)
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: protocol.StoreProtocol(shared),
            settings.host,
            settings.port,
            family=socket.AF_INET if ":" not in settings.host else socket.AF_INET6,
            reuse_address=True,
            backlog=1024,
        )
    except OSError as exc:
        raise errors.StoreError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from exc
    request_log.start()
    handle = StoreServer(server, shared, request_log)
    request_log.line(
        "INFO",
        f"mcgw-store listening on http://{handle.host}:{handle.port}",
        host=handle.host,
        port=handle.port,
        pod_name=settings.pod_name,
        cluster_name=settings.cluster_name,
        zone=settings.zone,
    )
    return handle


async def _serve_until_stopped(settings: settings_.Settings, log: IO[bytes] | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await serve(settings, log=log)
    try:
        await stop.wait()
    finally:
        await server.close()


def run(settings: settings_.Settings, *, log: IO[bytes] | None = None) -> None:
    """Serve on uvloop until SIGTERM or SIGINT, then shut down gracefully.

    Raises:
        StoreError: the server could not start.
    """
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve_until_stopped(settings, log))


def main() -> int:
    """``python -m mcgw.store``: configure from the environment and serve.

    Returns:
        The process exit code: 0 after a requested stop, 1 if the server could not start.
    """
    try:
        run(settings_.Settings.from_env())
    except errors.StoreError as exc:
        error_log = requestlog.RequestLog(sys.stderr.buffer)
        error_log.line("ERROR", str(exc))
        return 1
    return 0

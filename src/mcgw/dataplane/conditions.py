"""Warning conditions the running gateway finds by itself, loudly.

A health check whose path answers ``404`` while the pod runs is almost always a
configuration mistake (HealthCheckPolicy ``requestPath`` naming a path the application
does not serve): the endpoint is alive yet never healthy, so its region silently
loses its traffic. :class:`ProbeWatch` is the health checker's prober
(:data:`mcgw.dataplane.health.Prober`): it sends the same GET as
:func:`mcgw.dataplane.health.http_probe`, keeps the status, logs a warning when a
probe target starts answering 404 (and when it stops), and lists the current ones
(:meth:`ProbeWatch.warnings`) for ``mcgw status --probe`` and the gateway's callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)

HEALTH_CHECK_NOT_FOUND = "HealthCheckPathNotFound"
"""Reason of the condition: the check's path answers 404 while the endpoint runs."""


async def probe_status(address: str, port: int, request: bytes, timeout_s: float) -> int | None:
    """Send one health-check request; the response's status, or None if none came
    (refused, reset, timed out, not HTTP)."""
    try:
        async with asyncio.timeout(timeout_s if timeout_s > 0 else None):
            reader, writer = await asyncio.open_connection(address, port)
            try:
                writer.write(request)
                status_line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, ValueError):
        return None
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None
    return int(parts[1])


def not_found_message(address: str, port: int, path: str) -> str:
    return (
        f"{HEALTH_CHECK_NOT_FOUND}: the health check GET {path} on {address}:{port} answers "
        "404 while the endpoint runs, so it is never healthy and gets no traffic; set the "
        "HealthCheckPolicy's spec.default.config.httpHealthCheck.requestPath to a path it "
        "serves"
    )


class ProbeWatch:
    """A health-check prober that remembers which targets answer 404."""

    __slots__ = ("_not_found",)

    def __init__(self) -> None:
        self._not_found: dict[tuple[str, int, str], str] = {}

    async def __call__(self, address: str, port: int, request: bytes, timeout_s: float) -> bool:
        status = await probe_status(address, port, request, timeout_s)
        key = (address, port, _path(request))
        if status == 404:
            if key not in self._not_found:
                message = self._not_found[key] = not_found_message(*key)
                log.warning("%s", message)
        elif key in self._not_found and status is not None:
            del self._not_found[key]
            log.info("health check GET %s on %s:%d answers %d now", key[2], address, port, status)
        return status == 200

    def warnings(self) -> tuple[str, ...]:
        """The current warning conditions, one message each, sorted."""
        return tuple(sorted(self._not_found.values()))


def _path(request: bytes) -> str:
    parts = request.split(b" ", 2)
    return parts[1].decode("latin-1") if len(parts) > 2 else "/"

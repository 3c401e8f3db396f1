"""Measured round trips from the gateway to each region, as a ranking source.

Without measurements regions are ranked by the table's round trips: estimates from
distance, or the Fleet's ``spec.latencies``. With ``ProxySettings.measure_rtt`` the
gateway measures instead: every ``rtt_probe_interval_s`` it opens a fresh connection to
a few ready endpoints of each region and sends the backend's health-check GET; the time
from the start of the connect to the first response byte covers two round trips (the
TCP handshake, then the request), so half of it is the sample. A region's round trip
is the smallest sample of the round (queueing only ever adds time).

The measurements re-rank the gateway location's ranking only (the gateway cannot
measure from other entry regions). :meth:`RttMeter.adjust` returns the table with
that ranking replaced; the gateway swaps in a new snapshot when a round changes the
order, so per request nothing is measured or sorted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable

from mcgw.ir import table

log = logging.getLogger(__name__)

SAMPLES_PER_REGION = 3
"""Endpoints probed per region and round."""


async def sample_ms(address: str, port: int, request: bytes, timeout_s: float) -> float | None:
    """Half the time from connect to the first response byte, in ms; None on failure."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(address, port)
            try:
                writer.write(request)
                first = await reader.read(1)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return None
    if not first:
        return None
    return (loop.time() - start) * 1000.0 / 2


class RttMeter:
    """Measures the round trip to every region of the current table, periodically.

    Args:
        interval_s: time between two rounds.
        on_change: called (on the loop) when a round changes the measured order.
        timeout_s: a probe slower than this counts as no answer.
    """

    def __init__(
        self,
        interval_s: float,
        on_change: Callable[[], None],
        *,
        timeout_s: float = 2.0,
    ) -> None:
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._on_change = on_change
        self._targets: dict[str, list[tuple[str, int, bytes]]] = {}
        self.measured: dict[str, float] = {}
        """Region → measured round trip (ms) of the last round that reached it."""
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0

    def update(self, route_table: table.RouteTable) -> None:
        """Measure the regions of ``route_table`` from now on (starts the rounds)."""
        targets: dict[str, list[tuple[str, int, bytes]]] = {}
        for backend in route_table.backends:
            check = backend.health_check
            for group in backend.groups:
                chosen = targets.setdefault(group.region, [])
                for ep in group.endpoints:
                    if not ep.ready or len(chosen) >= SAMPLES_PER_REGION:
                        continue
                    port = check.port if check.port is not None else ep.port
                    host = f"[{ep.address}]" if ":" in ep.address else ep.address
                    request = (
                        f"GET {check.path} HTTP/1.1\r\nHost: {host}\r\n"
                        "User-Agent: mcgw-rtt\r\nConnection: close\r\n\r\n"
                    ).encode("latin-1")
                    if all((a, p) != (ep.address, port) for a, p, _ in chosen):
                        chosen.append((ep.address, port, request))
        self._targets = {region: found for region, found in targets.items() if found}
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="rtt meter")

    def adjust(self, route_table: table.RouteTable) -> table.RouteTable:
        """``route_table`` with the gateway location's ranking by measured round trip:
        measured regions first, by their measurement; the others after, as they were."""
        measured = self.measured
        if not measured:
            return route_table
        locality = route_table.locality
        known = tuple(sorted((ms, r) for r, ms in measured.items()))
        rest = tuple((r, ms) for r, ms in locality.region_rtt_ms if r not in measured)
        ranking = tuple((r, round(ms, 1)) for ms, r in known) + rest
        if ranking == locality.region_rtt_ms:
            return route_table
        # Sorted closest first as the IR requires: unmeasured regions may not fit
        # after the measured ones by value, so they rank by position alone.
        return dataclasses.replace(
            route_table, locality=dataclasses.replace(locality, region_rtt_ms=ranking)
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def measure_once(self) -> None:
        """One round over every region; calls ``on_change`` if the order changed."""
        regions = sorted(self._targets)
        samples = await asyncio.gather(
            *(
                asyncio.gather(*(sample_ms(a, p, req, self.timeout_s) for a, p, req in found))
                for found in (self._targets[r] for r in regions)
            )
        )
        before = sorted(self.measured, key=lambda r: (self.measured[r], r))
        for region, got in zip(regions, samples, strict=True):
            values = [ms for ms in got if ms is not None]
            if values:
                self.measured[region] = min(values)
        for region in [r for r in self.measured if r not in self._targets]:
            del self.measured[region]
        self.rounds += 1
        after = sorted(self.measured, key=lambda r: (self.measured[r], r))
        if after != before:
            log.info(
                "measured round trips: %s",
                ", ".join(f"{r} {self.measured[r]:.1f} ms" for r in after),
            )
            self._on_change()

    async def _run(self) -> None:
        while True:
            try:
                await self.measure_once()
            except Exception:  # A failed round must not end the meter.
                log.exception("round-trip measurement failed")
            await asyncio.sleep(self.interval_s)

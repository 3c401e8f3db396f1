"""Endpoint health: active HTTP checks and passive ejection, merged into one map.

The balancer asks :meth:`HealthMap.healthy` for every candidate endpoint, so that
call is a set membership test in the common case. Two sources feed the map:

* **Active checks** (:class:`HealthChecker`): for every endpoint of every backend
  in the route table, an HTTP ``GET`` of the backend's
  :class:`mcgw.ir.table.HealthCheck` path, one connection per probe, GKE's
  semantics: ``200`` is a success, anything else, a timeout or a refused
  connection is a failure; ``unhealthy_threshold`` consecutive failures take a
  healthy endpoint out, ``healthy_threshold`` consecutive successes bring it back.
  One task per (address, probe port, path), so endpoints sharing a check share
  the probe; probes of one task never overlap.
* **Passive reports** (:meth:`HealthMap.report_failure`, from the proxy when a
  connection to an endpoint fails or it answers 5xx): the endpoint is out at once.
  If it is actively checked, only ``healthy_threshold`` successful probes bring it
  back; otherwise it comes back by itself after ``ejection_s``.

Endpoints the map has never heard of are healthy, and so is an endpoint when its
first check is still to come: a restarted gateway serves at once, and the passive
path plus the proxy's retry cover a dead endpoint until checks catch up.

Everything runs on one event loop; nothing here is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mcgw.ir import table

log = logging.getLogger(__name__)

Key = tuple[str, int]
"""(address, port) of an endpoint: its serving port, not the probe's."""

ProbeKey = tuple[str, int, str]
"""(address, probe port, path): one active-check task."""

Prober = Callable[[str, int, bytes, float], Awaitable[bool]]
"""(address, port, request bytes, timeout_s) -> success: one health-check probe."""

ChangeCallback = Callable[[str, int, bool], None]
"""Called with (address, port, healthy) whenever an endpoint changes state."""

_MAX_COUNT = 1 << 16
"""Consecutive-result counters stop here; thresholds are small."""


@dataclass(slots=True)
class _Checked:
    """State of an actively checked endpoint."""

    healthy: bool = True
    successes: int = 0
    failures: int = 0
    probes: int = 0
    """How many probe tasks cover this endpoint (several checks may name it)."""


class HealthMap:
    """Which endpoints may receive traffic, as far as health is concerned.

    Args:
        ejection_s: how long a passive failure keeps an endpoint without active
            check out (Envoy's outlier detection default base ejection time).
        failure_threshold: consecutive passive failures that eject an endpoint;
            :meth:`report_success` resets the count. 1 ejects on the first failure.
        clock: monotonic seconds, injectable for tests.
        on_change: called on every transition, e.g. for logs or metrics.
    """

    __slots__ = (
        "_checked",
        "_clock",
        "_ejected_until",
        "_failures",
        "down",
        "ejection_s",
        "failure_threshold",
        "on_change",
    )

    def __init__(
        self,
        *,
        ejection_s: float = 30.0,
        failure_threshold: int = 1,
        clock: Callable[[], float] = time.monotonic,
        on_change: ChangeCallback | None = None,
    ) -> None:
        self.ejection_s = ejection_s
        self.failure_threshold = failure_threshold
        self.on_change = on_change
        self._clock = clock
        self.down: set[Key] = set()
        """Every endpoint that is out, for whatever reason (expired ejections too, until
        :meth:`healthy` notices): an endpoint not in it is healthy without asking, which
        is the balancer's fast path. Mutated in place, never rebound."""
        self._checked: dict[Key, _Checked] = {}
        self._ejected_until: dict[Key, float] = {}
        """Passive ejections of endpoints without active check."""
        self._failures: dict[Key, int] = {}
        """Consecutive passive failures below ``failure_threshold``."""

    def healthy(self, address: str, port: int) -> bool:
        """Return whether the endpoint may receive traffic (unknown ones may)."""
        key = (address, port)
        if key not in self.down:
            return True
        until = self._ejected_until.get(key)
        if until is not None and self._clock() >= until:
            del self._ejected_until[key]
            self._set(key, healthy=True, cause="ejection over")
            return True
        return False

    def report_failure(self, address: str, port: int) -> None:
        """Record a failed request (connect error, reset, 5xx) to the endpoint."""
        key = (address, port)
        if self.failure_threshold > 1:
            count = self._failures.get(key, 0) + 1
            if count < self.failure_threshold:
                self._failures[key] = count
                return
            self._failures.pop(key, None)
        state = self._checked.get(key)
        if state is not None:
            # Out until the active check has seen it answer again.
            state.successes = 0
            if state.healthy:
                state.healthy = False
                self._set(key, healthy=False, cause="passive failure")
            return
        self._ejected_until[key] = self._clock() + self.ejection_s
        if key not in self.down:
            self._set(key, healthy=False, cause="passive failure")

    def report_success(self, address: str, port: int) -> None:
        """Record a successful request: resets the consecutive passive failures."""
        if self._failures:
            self._failures.pop((address, port), None)

    def unhealthy(self) -> frozenset[Key]:
        """Return the endpoints currently out (expired ejections included)."""
        return frozenset(self.down)

    # -- used by HealthChecker -------------------------------------------------

    def _watch(self, key: Key) -> None:
        state = self._checked.get(key)
        if state is None:
            # A pending passive ejection carries over: out until probes pass.
            until = self._ejected_until.pop(key, None)
            ejected = until is not None and self._clock() < until
            state = self._checked[key] = _Checked(healthy=not ejected)
            if until is not None and not ejected:
                self._set(key, healthy=True, cause="ejection over")
        state.probes += 1

    def _unwatch(self, key: Key) -> None:
        state = self._checked.get(key)
        if state is None:
            return
        state.probes -= 1
        if state.probes > 0:
            return
        del self._checked[key]
        if not state.healthy:
            # No check will bring it back any more: let it serve again later.
            self._ejected_until[key] = self._clock() + self.ejection_s

    def _record(self, key: Key, ok: bool, check: table.HealthCheck) -> None:
        state = self._checked.get(key)
        if state is None:
            return
        if ok:
            state.failures = 0
            state.successes = min(state.successes + 1, _MAX_COUNT)
            if not state.healthy and state.successes >= check.healthy_threshold:
                state.healthy = True
                self._set(key, healthy=True, cause="health check passed")
        else:
            state.successes = 0
            state.failures = min(state.failures + 1, _MAX_COUNT)
            if state.healthy and state.failures >= check.unhealthy_threshold:
                state.healthy = False
                self._set(key, healthy=False, cause="health check failed")

    def _set(self, key: Key, *, healthy: bool, cause: str) -> None:
        if healthy:
            self.down.discard(key)
            log.info("endpoint %s:%d healthy (%s)", key[0], key[1], cause)
        else:
            self.down.add(key)
            log.warning("endpoint %s:%d unhealthy (%s)", key[0], key[1], cause)
        if self.on_change is not None:
            self.on_change(key[0], key[1], healthy)


class _Probe:
    """One active-check task and what it reports on."""

    __slots__ = ("check", "key", "request", "targets", "task")

    def __init__(self, key: ProbeKey, check: table.HealthCheck, targets: frozenset[Key]) -> None:
        self.key = key
        self.check = check
        self.targets = targets
        address, _, path = key
        host = f"[{address}]" if ":" in address else address
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
            "User-Agent: mcgw-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        ).encode("latin-1")
        self.task: asyncio.Task[None] | None = None


class HealthChecker:
    """Runs the active checks of a route table and feeds a :class:`HealthMap`.

    Args:
        health_map: where results go.
        loop: the loop to run on; by default the running loop at the first
            :meth:`update`.
        probe: sends one probe; the default is an HTTP GET over a new connection.
            Tests inject scripted results.
    """

    __slots__ = ("_loop", "_map", "_probe", "_probes")

    def __init__(
        self,
        health_map: HealthMap,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        probe: Prober | None = None,
    ) -> None:
        self._map = health_map
        self._loop = loop
        self._probe: Prober = probe if probe is not None else http_probe
        self._probes: dict[ProbeKey, _Probe] = {}

    @property
    def probes(self) -> frozenset[ProbeKey]:
        """The (address, probe port, path) triples being checked."""
        return frozenset(self._probes)

    def update(self, route_table: table.RouteTable) -> None:
        """Check exactly the endpoints of ``route_table`` from now on.

        Probes of endpoints that stay keep running, with their state; probes of
        endpoints that left are cancelled. Call it from the loop, with every new
        table version.
        """
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        wanted: dict[ProbeKey, tuple[table.HealthCheck, set[Key]]] = {}
        for backend in route_table.backends:
            check = backend.health_check
            for group in backend.groups:
                for endpoint in group.endpoints:
                    port = check.port if check.port is not None else endpoint.port
                    probe_key = (endpoint.address, port, check.path)
                    # Two backends sharing a probe: the first one's timings win.
                    entry = wanted.setdefault(probe_key, (check, set()))
                    entry[1].add((endpoint.address, endpoint.port))

        # Watch new targets before unwatching old ones so that an endpoint whose
        # check merely changed keeps its state.
        for probe_key, (check, targets) in wanted.items():
            frozen = frozenset(targets)
            probe = self._probes.get(probe_key)
            if probe is None:
                probe = self._probes[probe_key] = _Probe(probe_key, check, frozen)
                for key in frozen:
                    self._map._watch(key)
                probe.task = loop.create_task(
                    self._run(probe), name=f"health-check {probe_key[0]}:{probe_key[1]}"
                )
                probe.task.add_done_callback(_log_crash)
            else:
                for key in frozen - probe.targets:
                    self._map._watch(key)
                for key in probe.targets - frozen:
                    self._map._unwatch(key)
                probe.check = check
                probe.targets = frozen
        for probe_key in [k for k in self._probes if k not in wanted]:
            self._stop(self._probes.pop(probe_key))

    async def close(self) -> None:
        """Cancel every check and wait for them to end."""
        probes = list(self._probes.values())
        self._probes.clear()
        for probe in probes:
            self._stop(probe)
        tasks = [p.task for p in probes if p.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    def _stop(self, probe: _Probe) -> None:
        if probe.task is not None:
            probe.task.cancel()
        for key in probe.targets:
            self._map._unwatch(key)

    async def _run(self, probe: _Probe) -> None:
        assert self._loop is not None
        clock = self._loop.time
        address, port, _ = probe.key
        while True:
            check = probe.check
            started = clock()
            ok = await self._probe(address, port, probe.request, check.timeout_s)
            for key in probe.targets:
                self._map._record(key, ok, check)
            await asyncio.sleep(max(0.0, check.interval_s - (clock() - started)))


async def http_probe(address: str, port: int, request: bytes, timeout_s: float) -> bool:
    """Send one health-check request; True iff the answer's status is 200."""
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
        # Refused, reset, unreachable, timed out, or a status line over the limit.
        return False
    parts = status_line.split(None, 2)
    return len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1] == b"200"


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("health check %s crashed", task.get_name(), exc_info=task.exception())

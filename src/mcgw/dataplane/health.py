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
* **Passive reports** (:meth:`HealthMap.report_failure` for gateway errors: connect
  failure, reset, timeout; :meth:`HealthMap.report_error_status` for 5xx answers):
  outlier detection as GCP's backend services do it (see :class:`HealthMap`):
  consecutive errors eject the endpoint for a time that grows with each ejection, at
  most a bounded share of a backend's endpoints at once. An actively checked endpoint
  also comes back once ``healthy_threshold`` probes have passed since its ejection.

Endpoints the map has never heard of are healthy, and so is an endpoint when its
first check is still to come: a restarted gateway serves at once, and the passive
path plus the proxy's retry cover a dead endpoint until checks catch up.

Everything runs on one event loop; nothing here is thread-safe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mcgw.dataplane import conditions
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

    Passive outlier detection (GCP's backend service ``outlierDetection`` semantics,
    which are Envoy's): ``failure_threshold`` consecutive gateway errors (connect
    failure, reset, timeout) or ``consecutive_5xx`` consecutive 5xx answers (gateway
    errors count there too) eject the endpoint for ``ejection_s`` × the number of
    times it was ejected, at most ``max_ejection_s``; the count goes down by one for
    every ``ejection_s`` the endpoint then serves without being ejected. An ejection
    that would put more than ``max_ejection_percent`` of a backend's ready endpoints
    out is not made (so the only endpoint of a backend is never ejected: the gateway
    would answer 503 for it, for a whole ejection time after it recovered). An
    actively checked endpoint also comes back, earlier, once ``healthy_threshold``
    probes in a row have passed since its ejection.

    Args:
        ejection_s: base ejection time (GCP's and Envoy's default, 30 s).
        max_ejection_s: cap of the growing ejection time (Envoy's default, 300 s).
        failure_threshold: consecutive gateway errors that eject. mcgw's default is 1:
            a refused connection means the pod is gone, and the retry on another
            endpoint must not be followed by more requests to it.
        consecutive_5xx: consecutive 5xx answers that eject (GCP's and Envoy's 5).
        max_ejection_percent: GCP's default, 50 (Envoy's is 10, which with the
            pod-sized backends of a fleet would leave dead pods of a lost cluster in).
        clock: monotonic seconds, injectable for tests.
        on_change: called on every transition, e.g. for logs or metrics.
    """

    __slots__ = (
        "_checked",
        "_clock",
        "_ejected",
        "_ejections",
        "_members",
        "_mirrored",
        "consecutive_5xx",
        "down",
        "ejection_s",
        "failing",
        "failure_threshold",
        "max_ejection_percent",
        "max_ejection_s",
        "on_change",
        "on_eject",
    )

    def __init__(
        self,
        *,
        ejection_s: float = 30.0,
        max_ejection_s: float = 300.0,
        failure_threshold: int = 1,
        consecutive_5xx: int = 5,
        max_ejection_percent: int = 50,
        clock: Callable[[], float] = time.monotonic,
        on_change: ChangeCallback | None = None,
    ) -> None:
        self.ejection_s = ejection_s
        self.max_ejection_s = max_ejection_s
        self.failure_threshold = failure_threshold
        self.consecutive_5xx = consecutive_5xx
        self.max_ejection_percent = max_ejection_percent
        self.on_change = on_change
        self._clock = clock
        self.down: set[Key] = set()
        """Every endpoint that is out, for whatever reason (expired ejections too, until
        :meth:`healthy` notices): an endpoint not in it is healthy without asking, which
        is the balancer's fast path. Mutated in place, never rebound."""
        self.failing: dict[Key, list[int]] = {}
        """Consecutive [gateway errors, 5xx] of endpoints that have some, below the
        thresholds. Empty most of the time: the proxy reports successes only when it
        is not (mutated in place, never rebound)."""
        self._checked: dict[Key, _Checked] = {}
        self._ejected: dict[Key, float] = {}
        """Passive ejections: endpoint → end of its ejection (monotonic)."""
        self._ejections: dict[Key, tuple[int, float]] = {}
        """Endpoint → (times ejected, end of the last ejection): the growing time."""
        self._members: dict[Key, tuple[frozenset[Key], ...]] = {}
        """Endpoint → the ready endpoints of each backend it belongs to (see update)."""
        self._mirrored: set[Key] = set()
        """Worker processes: endpoints the control plane says are out (:meth:`mirror`)."""
        self.on_eject: Callable[[str, int, float], None] | None = None
        """Called with (address, port, seconds) when this map ejects an endpoint
        passively: a worker process reports it to the control plane."""

    def healthy(self, address: str, port: int) -> bool:
        """Return whether the endpoint may receive traffic (unknown ones may)."""
        key = (address, port)
        if key not in self.down:
            return True
        if self._out(key):
            return False
        self._set(key, healthy=True, cause="ejection over")
        return True

    def report_failure(self, address: str, port: int) -> None:
        """Record a gateway error (connect error, reset, timeout) with the endpoint."""
        key = (address, port)
        counts = self.failing.get(key)
        if counts is None:
            counts = self.failing[key] = [0, 0]
        counts[0] += 1
        counts[1] += 1
        if counts[0] >= self.failure_threshold or counts[1] >= self.consecutive_5xx:
            self._eject(key, "gateway error" if counts[0] >= self.failure_threshold else "5xx")

    def report_error_status(self, address: str, port: int) -> None:
        """Record a 5xx answer from the endpoint."""
        key = (address, port)
        counts = self.failing.get(key)
        if counts is None:
            counts = self.failing[key] = [0, 0]
        counts[1] += 1
        if counts[1] >= self.consecutive_5xx:
            self._eject(key, "consecutive 5xx")

    def report_success(self, address: str, port: int) -> None:
        """Record a successful answer: resets the consecutive counts."""
        if self.failing:
            self.failing.pop((address, port), None)

    def unhealthy(self) -> frozenset[Key]:
        """Return the endpoints currently out (expired ejections included)."""
        return frozenset(self.down)

    def ejected(self) -> dict[Key, float]:
        """Passively ejected endpoints → seconds of ejection left (for explain, tests)."""
        now = self._clock()
        return {key: until - now for key, until in self._ejected.items() if until > now}

    def update(self, route_table: table.RouteTable) -> None:
        """Learn which endpoints make up each backend, for ``max_ejection_percent``.

        Call with every table version; endpoints no backend holds any more forget
        their ejection history.
        """
        members: dict[Key, list[frozenset[Key]]] = {}
        for backend in route_table.backends:
            ready = frozenset(
                (e.address, e.port) for g in backend.groups for e in g.endpoints if e.ready
            )
            for key in ready:
                members.setdefault(key, []).append(ready)
        self._members = {key: tuple(sets) for key, sets in members.items()}
        for key in [k for k in self._ejections if k not in members and k not in self._ejected]:
            del self._ejections[key]

    def _eject(self, key: Key, cause: str) -> None:
        self.failing.pop(key, None)
        now = self._clock()
        until = self._ejected.get(key)
        if until is not None and until > now:
            return  # Out already (a request that was in flight when it was ejected).
        if not self._may_eject(key, now):
            log.debug("endpoint %s:%d not ejected (%s): too many ejected already", *key, cause)
            return
        count, last_end = self._ejections.get(key, (0, now))
        if count and self.ejection_s > 0:
            # One step back for every base ejection time served since the last one.
            count = max(0, count - int(max(0.0, now - last_end) // self.ejection_s))
        count += 1
        until = now + min(self.ejection_s * count, max(self.max_ejection_s, self.ejection_s))
        self._ejected[key] = until
        self._ejections[key] = (count, until)
        state = self._checked.get(key)
        if state is not None:
            state.successes = 0  # Probes count from the ejection on.
        if key not in self.down:
            self._set(key, healthy=False, cause=f"ejected: {cause}, #{count}")
        if self.on_eject is not None:
            self.on_eject(key[0], key[1], until - now)

    def _may_eject(self, key: Key, now: float) -> bool:
        for members in self._members.get(key, ()):
            ejected = sum(1 for k in members if k != key and self._ejected.get(k, 0.0) > now)
            if (ejected + 1) * 100 > self.max_ejection_percent * len(members):
                return False
        return True

    def _out(self, key: Key) -> bool:
        """Whether the endpoint is out now (ejected, or failed by its active check)."""
        until = self._ejected.get(key)
        if until is not None and self._clock() >= until:
            del self._ejected[key]
            until = None
        state = self._checked.get(key)
        return (
            until is not None
            or (state is not None and not state.healthy)
            or (bool(self._mirrored) and key in self._mirrored)
        )

    def _refresh(self, key: Key, cause: str) -> None:
        out = self._out(key)
        if out != (key in self.down):
            self._set(key, healthy=not out, cause=cause)

    # -- shared by worker processes (mcgw.dataplane.workers) -----------------

    def adopt(self, address: str, port: int, seconds: float) -> None:
        """Control plane: a worker ejected the endpoint for ``seconds``; hold it out
        here too (unless it is out already), so that every worker hears of it."""
        key = (address, port)
        now = self._clock()
        if self._ejected.get(key, 0.0) > now:
            return
        self._ejected[key] = now + seconds
        state = self._checked.get(key)
        if state is not None:
            state.successes = 0  # Probes count from the ejection on.
        if key not in self.down:
            self._set(key, healthy=False, cause=f"ejected by a worker for {seconds:.0f} s")

    def mirror(self, address: str, port: int, healthy: bool) -> None:
        """Worker: the control plane's verdict on the endpoint. Out: out here until it
        says otherwise; back: this worker's own ejection of it ends too."""
        key = (address, port)
        if healthy:
            self._mirrored.discard(key)
            self._ejected.pop(key, None)
            self.failing.pop(key, None)
            self._refresh(key, "control plane: healthy")
        else:
            self._mirrored.add(key)
            self._refresh(key, "control plane: unhealthy")

    def expire(self) -> None:
        """Notice ejections that ended (:meth:`healthy` does it lazily, per endpoint):
        the control plane calls it periodically so that workers hear of the return."""
        for address, port in list(self.down):
            self.healthy(address, port)

    # -- used by HealthChecker -------------------------------------------------

    def _watch(self, key: Key) -> None:
        state = self._checked.get(key)
        if state is None:
            # A pending passive ejection carries over: out until it ends, or until
            # probes pass.
            state = self._checked[key] = _Checked()
            self._refresh(key, "ejection over")
        state.probes += 1

    def _unwatch(self, key: Key) -> None:
        state = self._checked.get(key)
        if state is None:
            return
        state.probes -= 1
        if state.probes > 0:
            return
        del self._checked[key]
        if not state.healthy and key not in self._ejected:
            # No check will bring it back any more: let it serve again later.
            self._ejected[key] = self._clock() + self.ejection_s

    def _record(self, key: Key, ok: bool, check: table.HealthCheck) -> None:
        state = self._checked.get(key)
        if state is None:
            return
        if ok:
            state.failures = 0
            state.successes = min(state.successes + 1, _MAX_COUNT)
            if state.successes >= check.healthy_threshold:
                state.healthy = True
                # Probes passed since the ejection: it answers again.
                self._ejected.pop(key, None)
            self._refresh(key, "health check passed")
        else:
            state.successes = 0
            state.failures = min(state.failures + 1, _MAX_COUNT)
            if state.failures >= check.unhealthy_threshold:
                state.healthy = False
            self._refresh(key, "health check failed")

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
    """Send one health-check request; True iff the answer's status is 200 (refused,
    reset, unreachable, timed out or not HTTP: False)."""
    return await conditions.probe_status(address, port, request, timeout_s) == 200


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("health check %s crashed", task.get_name(), exc_info=task.exception())

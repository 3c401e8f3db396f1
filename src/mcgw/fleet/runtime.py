"""The local fleet: a fleet's Deployments running as OS processes, watched like pods.

:class:`FleetRuntime` plans the pods (:mod:`mcgw.fleet.pods`), starts one process per
container in its own process group, captures its output as container logs
(:mod:`mcgw.fleet.containerlog`), waits until each pod accepts TCP connections on its
address, and from then on keeps the set of ready pods, from which it publishes
EndpointSlices (:mod:`mcgw.fleet.endpoints`).

With latency simulation on (the Fleet's ``spec.network.simulateLatency``, or the
``simulate_latency`` argument), every pod sits behind a relay that delays its traffic
by the round trip between the gateway and the pod's region (:mod:`mcgw.fleet.relay`),
and the EndpointSlices publish the relays' addresses instead of the pods'. Readiness
probes still go straight to the pods, as the kubelet's do.

A pod is ready once every container with a port accepts connections; it stops being
ready when it is asked to stop (terminating) or when any of its processes exits.

A pod that dies without being asked to (a crash, ``kill -9``, :meth:`FleetRuntime.kill_pod`)
is restarted like a Deployment's pod under ``restartPolicy: Always``: same name, same
address, after a crash back-off (:class:`mcgw.fleet.pods.Backoff`); its restart count
goes up and it rejoins its Services once it accepts connections again. A pod stopped on
purpose (:meth:`FleetRuntime.stop_cluster`, :meth:`FleetRuntime.close`) stays stopped.

No process outlives the runtime: :meth:`FleetRuntime.close` stops everything, and a
:func:`weakref.finalize` safety net (run at garbage collection or interpreter exit)
SIGKILLs every process group still recorded, by id.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import signal
import socket
import sys
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from mcgw import logfiles
from mcgw.config import core
from mcgw.config import resources as config_resources
from mcgw.fleet import containerlog, endpoints, errors, relay
from mcgw.fleet import pods as pods_

DEFAULT_GRACE_S = 5.0
"""SIGTERM → SIGKILL delay when the pod template sets no terminationGracePeriodSeconds."""

DEFAULT_RESTART = pods_.Backoff()
"""How dead pods come back unless told otherwise: 1 s doubling to 30 s."""

_READY_POLL_S = 0.05
_LINE_LIMIT = 1 << 20
"""Longest line kept whole; a longer one is cut into pieces of this size."""
_TAIL_LINES = 5
"""stderr lines kept per pod to explain a failed start."""

_BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")
"""Variables a pod inherits from the runtime's environment; the rest would leak the
host's settings (an ``ECHO_HEADERS`` in the shell, say) into every pod."""


FIRST_OCTET_ENV = "MCGW_FLEET_FIRST_OCTET"
"""Environment variable: the default ``first_octet`` of a :class:`FleetRuntime`."""


def _first_octet() -> int:
    text = os.environ.get(FIRST_OCTET_ENV, "1")
    try:
        octet = int(text)
    except ValueError:
        octet = 0
    if not 1 <= octet <= 254:
        raise errors.FleetError(
            f"{FIRST_OCTET_ENV}={text!r}: give a number from 1 to 254 (the second octet of "
            "the first cluster's pod addresses, 127.<octet>.*)"
        )
    return octet


@dataclasses.dataclass(frozen=True, slots=True)
class PodInfo:
    """A pod as seen from outside, at the moment :meth:`FleetRuntime.pods` was called."""

    name: str
    cluster: str
    namespace: str
    deployment: str
    address: str
    """The pod's IP: its own loopback address."""
    port: int
    """Port of its first container that has one (0 when none has)."""
    pid: int
    """Process id of its first container (its process group id too)."""
    ready: bool
    labels: tuple[tuple[str, str], ...]
    """Labels (template labels and ``pod-template-hash``), sorted."""
    restarts: int = 0
    """How often it was restarted after dying (a pod's ``restartCount``)."""


class _Pod:
    """A running pod's mutable state; only the runtime touches it."""

    def __init__(self, plan: pods_.PodPlan) -> None:
        self.plan = plan
        self.procs: list[asyncio.subprocess.Process] = []
        self.ready = False
        self.terminating = False
        self.exited = asyncio.Event()
        """Set once any of its processes has exited: the pod is dead."""
        self.exit_codes: dict[str, int] = {}
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self.tasks: list[asyncio.Task[None]] = []
        self.watchers: list[asyncio.Task[None]] = []
        """The tasks waiting for this life's processes to exit."""
        self.restarts = 0
        self.crashes = 0
        """Consecutive crashes, for the back-off (reset after a long enough run)."""
        self.started_at = 0.0
        """``time.monotonic()`` when this life's processes were started."""
        self.restarter: asyncio.Task[None] | None = None

    @property
    def all_exited(self) -> bool:
        return all(p.returncode is not None for p in self.procs)

    def info(self) -> PodInfo:
        plan = self.plan
        return PodInfo(
            name=plan.name,
            cluster=plan.cluster,
            namespace=plan.namespace,
            deployment=plan.deployment,
            address=plan.address,
            port=plan.port,
            pid=self.procs[0].pid if self.procs else 0,
            ready=self.ready,
            labels=plan.labels,
            restarts=self.restarts,
        )


def _kill_groups(groups: set[int]) -> None:
    """The safety net: SIGKILL each recorded process group. Must not raise."""
    for pgid in list(groups):
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
    groups.clear()


def _check_free(plans: tuple[pods_.PodPlan, ...], links: tuple[relay.Link, ...] = ()) -> None:
    """Fail before starting anything if a pod's address is already listened on.

    Otherwise the readiness probe would reach the other listener (another fleet, most
    likely) and call a pod ready that is about to die of EADDRINUSE.
    """
    wanted = [
        (plan.address, container.port)
        for plan in plans
        for container in plan.containers
        if container.port is not None
    ]
    wanted.extend(link.listen for link in links)
    busy: list[str] = []
    for address, port in wanted:
        with socket.socket() as probe:
            # With SO_REUSEADDR, bind fails only if something listens there, not
            # because of connections lingering in TIME_WAIT.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, port))
            except OSError as exc:
                busy.append(f"{address}:{port} ({exc.strerror})")
    if busy:
        raise errors.PodStartError(
            "pod addresses already in use (is another fleet running? give it another "
            "first_octet): " + ", ".join(busy)
        )


class FleetRuntime:
    """Runs a fleet's Deployments as local processes; see the module docstring."""

    def __init__(
        self,
        resources: config_resources.Resources,
        log_dir: Path,
        *,
        python: str = sys.executable,
        ready_timeout_s: float = 20,
        grace_s: float = DEFAULT_GRACE_S,
        first_octet: int | None = None,
        simulate_latency: bool | None = None,
        restart: pods_.Backoff | None = DEFAULT_RESTART,
        on_event: Callable[[str], None] | None = None,
        log_retention: logfiles.Retention | None = None,
    ) -> None:
        """
        Args:
            resources: the fleet; its Deployments become pods.
            log_dir: where ``containers-<time>-<pid>.jsonl`` files are written.
            log_retention: their size, count and age limits (:mod:`mcgw.logfiles`).
            python: interpreter that runs the Store API for whereami images.
            ready_timeout_s: how long :meth:`start` waits for every pod to accept connections.
            grace_s: SIGTERM → SIGKILL delay for pods whose template sets none.
            first_octet: pods of the first cluster get ``127.<first_octet>.*``, the next
                cluster's the octet after; another fleet on the machine needs its own block.
                None: :data:`FIRST_OCTET_ENV` if set (so a long ``mcgw up``, a soak run,
                can live beside the tests' fleets), else 1.
            simulate_latency: put each pod behind a latency relay (see the module
                docstring); None: as the Fleet's ``spec.network.simulateLatency`` says.
            restart: back-off for restarting pods that die; None: a dead pod stays dead.
            on_event: called with a line for each pod death and restart (what
                ``kubectl get events`` would show); None: not reported.
        """
        self._resources = resources
        self._log_dir = log_dir
        self._python = python
        self._ready_timeout_s = ready_timeout_s
        self._log_retention = log_retention
        self._grace_s = grace_s
        self._first_octet = _first_octet() if first_octet is None else first_octet
        self._simulate_latency = (
            resources.fleet.spec.network.simulate_latency
            if simulate_latency is None
            else simulate_latency
        )
        self._links: tuple[relay.Link, ...] = ()
        self._relays: dict[str, list[relay.Relay]] = {}
        """Per pod name, its running relays."""
        self._relayed: dict[str, str] = {}
        """Pod address → its relay's address (empty without latency simulation)."""
        self._warnings: tuple[str, ...] = ()
        self._pods: dict[str, _Pod] = {}
        self._log: containerlog.ContainerLog | None = None
        self._groups: set[int] = set()
        self._finalizer = weakref.finalize(self, _kill_groups, self._groups)
        self._version = 0
        self._changed = asyncio.Event()
        self._started = False
        self._closed = False
        self._restart = restart
        self._on_event = on_event
        self._running = False
        """Set once :meth:`start` succeeded: from then on dead pods are restarted."""

    # lifecycle

    async def start(self) -> None:
        """Start every pod and wait until each accepts connections.

        Raises:
            NotRunnableError: some Deployment cannot run locally; nothing was started.
            PodStartError: a pod exited or was not ready in time; everything was stopped.
            FleetError: a latency relay cannot listen; everything was stopped.
        """
        if self._started:
            raise errors.FleetError("the fleet runtime was already started")
        self._started = True
        plans = pods_.plan(self._resources, python=self._python, first_octet=self._first_octet)
        if self._simulate_latency:
            try:
                self._links, self._warnings = relay.links(self._resources, plans)
            except errors.FleetError as exc:
                raise errors.NotRunnableError((str(exc),)) from None
            self._relayed = {link.target[0]: link.listen[0] for link in self._links}
        _check_free(plans, self._links)
        self._log = containerlog.ContainerLog(self._log_dir, retention=self._log_retention)
        try:
            # Relays first: they connect to their pod only when a client comes.
            started = await relay.start_all(self._links)
            for one in started:
                self._relays.setdefault(one.link.pod, []).append(one)
            for plan in plans:
                await self._spawn(plan)
            await self._wait_ready(list(self._pods.values()))
        except BaseException:
            await self.close()
            raise
        self._running = True
        for pod in self._pods.values():
            if pod.exited.is_set() and not pod.terminating:
                self._schedule_restart(pod)  # died between its probe and now

    async def close(self) -> None:
        """Stop every pod (SIGTERM, then SIGKILL after the grace period), flush the logs.

        Idempotent; leaves no process behind.
        """
        if self._closed:
            return
        self._closed = True
        try:
            await self._cancel_restarts(list(self._pods.values()))
            await asyncio.gather(*(self._stop(pod) for pod in self._pods.values()))
            await asyncio.gather(*(r.close() for rs in self._relays.values() for r in rs))
            tasks = [t for pod in self._pods.values() for t in pod.tasks]
            # Readers end at EOF; a grandchild holding a pipe open must not hang close().
            _, pending = await asyncio.wait(tasks, timeout=1.0) if tasks else (set(), set())
            for task in pending:
                task.cancel()
        finally:
            _kill_groups(self._groups)
            if self._log is not None:
                self._log.close()

    async def __aenter__(self) -> FleetRuntime:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # observing

    @property
    def log_path(self) -> Path | None:
        """The container log file written last, once a line was."""
        return None if self._log is None else self._log.path

    def flush_logs(self) -> None:
        """Write the container log lines read so far (pods flush their own output every
        ``LOG_INTERVAL``; this covers the fleet's side)."""
        if self._log is not None:
            self._log.flush()

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the user should know about the started fleet (e.g. a region whose
        latency is unknown, so its relays add no delay)."""
        return self._warnings

    def links(self) -> tuple[relay.Link, ...]:
        """The latency relays, once started (empty without latency simulation)."""
        return self._links

    def pods(self) -> tuple[PodInfo, ...]:
        """Every pod started, in plan order (cluster, Deployment, replica)."""
        return tuple(pod.info() for pod in self._pods.values())

    def endpoint_slices(self) -> dict[str, tuple[core.EndpointSlice, ...]]:
        """Per cluster, the EndpointSlices of its Services for the ready pods."""
        return self._slices(self._resources)

    def with_endpoints(self, resources: config_resources.Resources) -> config_resources.Resources:
        """Return ``resources`` with the fleet's EndpointSlices in each cluster.

        Slices the fleet published before are replaced; hand-written ones are kept.
        Services are read from ``resources``, so a newer snapshot may be passed.
        """
        published = self._slices(resources)
        return dataclasses.replace(
            resources,
            clusters=tuple(
                endpoints.replace(cluster, published[cluster.name])
                for cluster in resources.clusters
            ),
        )

    @property
    def version(self) -> int:
        """Counts changes of the set of ready pods."""
        return self._version

    @property
    def changes(self) -> asyncio.Event:
        """An event set at the next change of the set of ready pods (a new one after)."""
        return self._changed

    async def wait_changed(self, since: int | None = None) -> None:
        """Return after the set of ready pods changes.

        Args:
            since: a :attr:`version` seen earlier; if it is already stale, return at once
                (so a change between two calls is never missed).
        """
        if since is not None and since != self._version:
            return
        await self._changed.wait()

    # acting

    async def stop_cluster(self, name: str) -> None:
        """Stop every pod of cluster ``name``: SIGTERM, SIGKILL after the grace period.

        Raises:
            FleetError: no such cluster.
        """
        if name not in {c.name for c in self._resources.clusters}:
            raise errors.FleetError(f"no cluster {name!r} in the fleet")
        await asyncio.gather(
            *(self._stop(pod) for pod in self._pods.values() if pod.plan.cluster == name)
        )

    async def start_cluster(self, name: str) -> None:
        """Start again every pod of cluster ``name`` that is not running (after
        :meth:`stop_cluster`, or crashes), with its name, address and relay, and wait
        until each accepts connections: the cluster recovers.

        Raises:
            FleetError: no such cluster, or the runtime is not running.
            PodStartError: a pod exited or was not ready in time (it stays down).
        """
        if name not in {c.name for c in self._resources.clusters}:
            raise errors.FleetError(f"no cluster {name!r} in the fleet")
        if not self._started or self._closed:
            raise errors.FleetError("the fleet runtime is not running")
        dead = [
            pod for pod in self._pods.values() if pod.plan.cluster == name and pod.exited.is_set()
        ]
        # A pod that crashed may be waiting out its restart back-off: starting it here
        # replaces that restart (two processes would want one address).
        await self._cancel_restarts(dead)
        fresh: list[_Pod] = []
        for old in dead:
            # Its readers end at EOF; the new pod takes the name (and address) over.
            if old.tasks:
                await asyncio.wait(old.tasks, timeout=1.0)
            await self._spawn(old.plan)
            fresh.append(self._pods[old.plan.name])
            for one in self._relays.get(old.plan.name, ()):
                await one.start()
        await self._wait_ready(fresh)

    async def kill_pod(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to every process of pod ``name``, as a crash or an OOM kill would.

        The pod is not marked terminating: it stays in its Services until it exits. For
        signals that end a process, waits (up to the grace period) until it has exited.

        Raises:
            FleetError: no such pod.
        """
        pod = self._pods.get(name)
        if pod is None:
            raise errors.FleetError(f"no pod {name!r} in the fleet")
        self._signal(pod, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pod.exited.wait(), self._grace_for(pod))

    # internals

    def _slices(self, res: config_resources.Resources) -> dict[str, tuple[core.EndpointSlice, ...]]:
        ready = [pod.plan for pod in self._pods.values() if pod.ready]
        if self._relayed:
            # Slices publish where the gateway should connect: the relay, same ports.
            ready = [
                dataclasses.replace(p, address=self._relayed.get(p.address, p.address))
                for p in ready
            ]
        return {cluster.name: endpoints.slices(cluster, ready) for cluster in res.clusters}

    def _fire(self) -> None:
        self._version += 1
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def _set_ready(self, pod: _Pod, ready: bool) -> None:
        if pod.ready != ready:
            pod.ready = ready
            self._fire()

    def _grace_for(self, pod: _Pod) -> float:
        return self._grace_s if pod.plan.grace_s is None else pod.plan.grace_s

    async def _spawn(self, plan: pods_.PodPlan) -> None:
        pod = _Pod(plan)
        self._pods[plan.name] = pod
        await self._launch(pod)

    async def _launch(self, pod: _Pod) -> None:
        """Start the pod's containers (its first life, or the next after a restart)."""
        plan = pod.plan
        pod.started_at = time.monotonic()
        base = {k: os.environ[k] for k in _BASE_ENV if k in os.environ}
        assert self._log is not None
        for container in plan.containers:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *container.argv,
                    env={**base, "PYTHONUNBUFFERED": "1", **dict(container.env)},
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                    limit=_LINE_LIMIT,
                )
            except OSError as exc:
                raise errors.PodStartError(
                    f"pod {plan.name} (cluster {plan.cluster}): cannot run container "
                    f"{container.name!r} {' '.join(container.argv)!r}: {exc}"
                ) from exc
            # start_new_session: the process leads its own group, so pgid == pid.
            self._groups.add(proc.pid)
            pod.procs.append(proc)
            source = containerlog.Source(
                project_id=plan.project,
                cluster=plan.cluster,
                zone=plan.zone,
                namespace=plan.namespace,
                pod=plan.name,
                container=container.name,
                labels=plan.labels,
            )
            assert proc.stdout is not None and proc.stderr is not None
            pod.tasks.append(asyncio.create_task(self._read(proc.stdout, "stdout", source, pod)))
            pod.tasks.append(asyncio.create_task(self._read(proc.stderr, "stderr", source, pod)))
            watcher = asyncio.create_task(self._watch(pod, container.name, proc))
            pod.tasks.append(watcher)
            pod.watchers.append(watcher)

    async def _read(
        self, stream: asyncio.StreamReader, name: str, source: containerlog.Source, pod: _Pod
    ) -> None:
        log = self._log
        assert log is not None
        while True:
            try:
                chunk = await stream.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                chunk = exc.partial  # EOF: the last line may lack its newline
                if not chunk:
                    return
            except asyncio.LimitOverrunError as exc:
                chunk = await stream.readexactly(exc.consumed)
            text = chunk.decode("utf-8", "replace").rstrip("\r\n")
            log.append(time.time(), text, name, source)
            if name == "stderr":
                pod.stderr_tail.append(text)

    async def _watch(self, pod: _Pod, container: str, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        # The group id stays recorded until close(): children of the container's
        # command (a shell's, say) may outlive it and must be stopped with the pod.
        pod.exit_codes[container] = code
        if not pod.exited.is_set():
            pod.exited.set()
            self._set_ready(pod, False)
            # Like the dead pod's address, its relay now refuses connections.
            for one in self._relays.get(pod.plan.name, ()):
                one.stop_listening()
            if not pod.terminating:
                # Any process of a pod ending kills the pod: make the others follow.
                self._signal(pod, signal.SIGTERM)
                if self._running and not self._closed:
                    self._schedule_restart(pod)

    async def _wait_ready(self, todo: list[_Pod]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ready_timeout_s
        tasks = [asyncio.create_task(self._probe(pod, deadline)) for pod in todo]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _probe(self, pod: _Pod, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        plan = pod.plan
        for container in plan.containers:
            if container.port is None:
                continue
            while True:
                if pod.exited.is_set():
                    raise errors.PodStartError(self._explain(pod, "exited while starting"))
                try:
                    _, writer = await asyncio.open_connection(plan.address, container.port)
                except OSError:
                    if loop.time() >= deadline:
                        raise errors.PodStartError(
                            self._explain(
                                pod,
                                f"did not accept connections on {plan.address}:"
                                f"{container.port} within {self._ready_timeout_s:g} s",
                            )
                        ) from None
                    await asyncio.sleep(_READY_POLL_S)
                    continue
                writer.close()
                break
        if not pod.exited.is_set() and not pod.terminating:
            self._set_ready(pod, True)

    def _explain(self, pod: _Pod, what: str) -> str:
        plan = pod.plan
        codes = ", ".join(f"{c} exit code {code}" for c, code in pod.exit_codes.items())
        tail = "\n".join(f"    {line}" for line in pod.stderr_tail)
        return (
            f"pod {plan.name} (cluster {plan.cluster}, Deployment "
            f"{plan.namespace}/{plan.deployment}) {what}"
            + (f" ({codes})" if codes else "")
            + (f"; last stderr lines:\n{tail}" if tail else "")
        )

    def _signal(self, pod: _Pod, sig: int) -> None:
        # The whole process group, even when its leader has exited: what the
        # container's command started belongs to the pod too.
        for proc in pod.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)

    async def _stop(self, pod: _Pod) -> None:
        # Asked to stop: a pod that died just before must not come back either.
        pod.terminating = True
        await self._cancel_restarts([pod])
        if pod.all_exited:
            self._set_ready(pod, False)
            self._signal(pod, signal.SIGKILL)  # leftovers of an exited leader
            return
        pod.terminating = True
        self._set_ready(pod, False)
        self._signal(pod, signal.SIGTERM)
        waits = [proc.wait() for proc in pod.procs]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), self._grace_for(pod))
        except TimeoutError:
            self._signal(pod, signal.SIGKILL)
            await asyncio.gather(*(proc.wait() for proc in pod.procs))

    # restarts (restartPolicy: Always)

    def _event(self, line: str) -> None:
        if self._on_event is not None:
            self._on_event(line)

    def _schedule_restart(self, pod: _Pod) -> None:
        if self._restart is None or pod.terminating:
            return
        if pod.restarter is None or pod.restarter.done():
            pod.restarter = asyncio.create_task(self._restart_pod(pod, self._restart))

    async def _cancel_restarts(self, pods: list[_Pod]) -> None:
        tasks = [p.restarter for p in pods if p.restarter is not None and not p.restarter.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _restart_pod(self, pod: _Pod, backoff: pods_.Backoff) -> None:
        """Wait for every process of the dead pod to end, back off, start it again and
        probe it until it accepts connections (or dies again, which schedules the next
        restart). Cancelled when the pod is asked to stop."""
        plan = pod.plan
        ran_s = time.monotonic() - pod.started_at
        # The others were sent SIGTERM when the first one ended; a pod that ignores it
        # is killed after its grace period, as the kubelet would.
        waits = asyncio.gather(*(proc.wait() for proc in pod.procs))
        try:
            await asyncio.wait_for(waits, self._grace_for(pod))
        except TimeoutError:
            self._signal(pod, signal.SIGKILL)
            await asyncio.gather(*(proc.wait() for proc in pod.procs))
        # Their watchers record the exit codes; the next life must not see them finish.
        await asyncio.gather(*pod.watchers, return_exceptions=True)
        wait_s, pod.crashes = backoff.delay(pod.crashes, ran_s)
        codes = ", ".join(f"{c} exit code {code}" for c, code in pod.exit_codes.items())
        self._event(
            f"pod {plan.cluster}/{plan.namespace}/{plan.name} died ({codes}) after "
            f"{ran_s:.1f} s; restarting in {wait_s:g} s (restart {pod.restarts + 1})"
        )
        await asyncio.sleep(wait_s)
        if pod.terminating or self._closed:
            return
        pod.tasks = [t for t in pod.tasks if not t.done()]
        pod.watchers = []
        pod.procs = []
        pod.exit_codes = {}
        pod.exited = asyncio.Event()
        pod.restarts += 1
        try:
            await self._launch(pod)
            for one in self._relays.get(plan.name, ()):
                await one.start()
        except errors.FleetError as exc:  # PodStartError too: cannot exec, relay busy
            self._event(f"pod {plan.name}: restart failed: {exc}")
            pod.exited.set()
            self._signal(pod, signal.SIGTERM)
            # Its own task is still this one: hand over to a fresh one.
            pod.restarter = asyncio.create_task(self._restart_pod(pod, backoff))
            return
        loop = asyncio.get_running_loop()
        while not pod.exited.is_set() and not pod.terminating:
            try:
                await self._probe(pod, loop.time() + self._ready_timeout_s)
            except errors.PodStartError as exc:
                if pod.exited.is_set() or pod.terminating:
                    return  # its watcher schedules the next restart
                self._event(f"{exc}; still probing")  # the kubelet keeps probing too
                continue
            if pod.ready:
                self._event(
                    f"pod {plan.cluster}/{plan.namespace}/{plan.name} ready again "
                    f"(restartCount {pod.restarts})"
                )
            return

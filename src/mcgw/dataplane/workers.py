"""Worker processes: N data-plane processes on the same listeners, one control plane.

``mcgw serve|up --workers N`` runs the controller (files, fleet, translation) once, in
the parent process, and N worker processes that each run a whole
:class:`mcgw.dataplane.server.Gateway` (``python -m mcgw.dataplane.workers FD``).
Every worker binds every listener with ``SO_REUSEPORT``; the kernel spreads new
connections between them, and a connection stays with the worker that accepted it.

The parent (:class:`Workers`) talks to each worker over its own socketpair, in frames
of a 4-byte big-endian length and one JSON object (``{"t": <type>, ...}``):

* **Route tables.** ``table`` carries the table in the IR codec's plain form and the
  TLS key pairs beside it (PEM; they never touch disk). Every worker applies it and
  answers ``applied`` (its bound addresses) or ``failed``; :meth:`Workers.apply`
  returns when all have, so every worker serves the same table version. When one
  fails, those that applied go back to the previous table and the error is raised,
  exactly as a single gateway leaves a failed reload.
* **Health: one authority, the parent's** :class:`mcgw.dataplane.health.HealthMap`.
  Active health checks run once, in the parent. A worker's passive outlier detection
  ejects at once in that worker (its own retry needs no round trip) and reports the
  ejection (``ejected``, with its duration); the parent adopts it. Every transition
  of the parent's map (a check failed or passed, an ejection adopted or over) is sent
  to every worker (``health``), which mirrors it (:meth:`HealthMap.mirror`): all
  workers agree within one message, and the admin API reads the parent's map.
* **Request rates for the capacity waterfall.** Each worker sends its window counts
  per capacity-aware backend and region (``tick``, every :data:`TICK_S`); the parent
  answers every other worker with the sum of everyone else's latest counts
  (``rates``), which the balancer adds to its own (:meth:`balancer.Balancer.share`):
  a region is full when all workers' requests together reach its capacity (the
  parent's own balancer holds the sum of all, for the admin API's region rates). The
  figure is at most about two ticks old; messages beat shared memory here because the
  counters are rebuilt with every table version and nothing would have to agree on
  a layout.
* **Metrics.** Workers send a snapshot of their counters (``metrics``) every
  :data:`METRICS_S`; the parent sums the latest snapshot of every worker (plus the
  last snapshot of workers that died) into :attr:`Workers.metrics`, which the admin
  API and ``/metrics`` read as they read one gateway's. Per worker: client
  connections (summed in :attr:`Workers.connections`), the access log (one file per
  worker process, named by pid, all read by ``mcgw logs query``), LEAST_REQUEST's
  requests in flight and round-robin cursors.
* **Crashes.** A worker that exits unasked is started again, with the current table
  and health; the other workers and their connections never notice. The listening
  sockets stay open in the other workers, so the port is served throughout.
* **Stopping.** :meth:`Workers.close` sends SIGTERM to every worker: each drains as
  one gateway does (stop accepting, finish in flight, close idle connections) and
  exits 0. A worker whose parent vanished (its socketpair closes) drains and exits too.

Listener ports given as 0 (any free port) are chosen once by the parent, which keeps
a bound, never-listening ``SO_REUSEPORT`` socket on each so that every worker binds
the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mcgw.dataplane import accesslog, balancer, health, metrics, router, server, snapshot
from mcgw.dataplane.settings import ProxySettings
from mcgw.errors import McgwError
from mcgw.ir import codec, table

log = logging.getLogger(__name__)

TICK_S = 0.05
"""How often a worker reports its request counts (and the parent expires ejections)."""
METRICS_S = 0.5
"""How often a worker sends a snapshot of its request counters."""
RESTART_DELAY_S = 0.5
"""Pause before starting a crashed worker again (a crash loop stays slow)."""
START_TIMEOUT_S = 30.0
"""Time a worker gets to start and answer a table."""

_HEADER = struct.Struct("!I")
_MAX_FRAME = 256 * 1024 * 1024

Message = dict[str, Any]


class WorkerError(McgwError):
    """A worker process failed to start, or refused a route table."""


# -- framing -------------------------------------------------------------------------


def frame(message: Message) -> bytes:
    """One frame: the length of the JSON body, then the body."""
    body = json.dumps(message, separators=(",", ":")).encode()
    return _HEADER.pack(len(body)) + body


async def receive(reader: asyncio.StreamReader) -> Message | None:
    """The next message, or None at the end of the stream."""
    try:
        head = await reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(head)
        if size > _MAX_FRAME:
            raise WorkerError(f"frame of {size} bytes refused")
        body = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    message: Message = json.loads(body)
    return message


def settings_to_wire(settings: ProxySettings) -> Message:
    data = dataclasses.asdict(settings)
    if settings.access_log_dir is not None:
        data["access_log_dir"] = str(settings.access_log_dir)
    return data


def settings_from_wire(data: Message) -> ProxySettings:
    # JSON made every tuple a list (port_map's pairs too): settings hold tuples.
    values = {key: _tuples(value) for key, value in data.items()}
    if values["access_log_dir"] is not None:
        values["access_log_dir"] = Path(values["access_log_dir"])
    return ProxySettings(**values)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(item) for item in value) if isinstance(value, list) else value


def key_pairs_to_wire(key_pairs: Mapping[str, table.KeyPair]) -> dict[str, list[str]]:
    return {
        name: [pair.cert_pem.decode("latin-1"), pair.key_pem.decode("latin-1")]
        for name, pair in key_pairs.items()
    }


def key_pairs_from_wire(data: Mapping[str, list[str]]) -> dict[str, table.KeyPair]:
    return {
        name: table.KeyPair(cert.encode("latin-1"), key.encode("latin-1"))
        for name, (cert, key) in data.items()
    }


def cells_to_wire(counters: metrics.Metrics) -> list[list[Any]]:
    return [[list(key), cell.count, cell.sum_s, cell.buckets] for key, cell in counters.cells()]


# -- the parent's side ---------------------------------------------------------------


class MergedMetrics:
    """The request counters of every worker, summed: what :class:`metrics.Metrics`
    offers its readers (``cells()`` and ``started``)."""

    __slots__ = ("_latest", "_retired", "started")

    def __init__(self, started: float) -> None:
        self.started = started
        self._latest: dict[int, list[list[Any]]] = {}
        """Worker index → its last snapshot."""
        self._retired: dict[tuple[object, ...], metrics.Cell] = {}
        """The last snapshots of workers that died: their requests still count."""

    def update(self, index: int, snapshot_cells: list[list[Any]]) -> None:
        self._latest[index] = snapshot_cells

    def retire(self, index: int) -> None:
        for key, cell in self._fold(self._latest.pop(index, [])).items():
            _add(self._retired, key, cell.count, cell.sum_s, cell.buckets)

    def cells(self) -> list[tuple[metrics.Key, metrics.Cell]]:
        total: dict[tuple[object, ...], metrics.Cell] = {}
        for key, cell in self._retired.items():
            _add(total, key, cell.count, cell.sum_s, cell.buckets)
        for cells in self._latest.values():
            for key, cell in self._fold(cells).items():
                _add(total, key, cell.count, cell.sum_s, cell.buckets)
        return [(metrics.Key(*key), cell) for key, cell in total.items()]  # type: ignore[arg-type]

    @staticmethod
    def _fold(cells: list[list[Any]]) -> dict[tuple[object, ...], metrics.Cell]:
        out: dict[tuple[object, ...], metrics.Cell] = {}
        for raw_key, count, sum_s, buckets in cells:
            listener, route, backend, picked, status, details = raw_key
            key = (listener, route, backend, tuple(picked), status, details)
            _add(out, key, count, sum_s, buckets)
        return out


def _add(
    into: dict[tuple[object, ...], metrics.Cell],
    key: tuple[object, ...],
    count: int,
    sum_s: float,
    buckets: list[int],
) -> None:
    cell = into.get(key)
    if cell is None:
        cell = into[key] = metrics.Cell()
    cell.count += count
    cell.sum_s += sum_s
    for i, n in enumerate(buckets):
        cell.buckets[i] += n


class _Worker:
    """The parent's handle on one worker process."""

    __slots__ = (
        "addresses",
        "connections",
        "counts",
        "exited",
        "index",
        "pending",
        "pid",
        "proc",
        "reader",
        "task",
        "version",
        "writer",
    )

    def __init__(
        self,
        index: int,
        proc: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.index = index
        self.proc = proc
        self.pid = proc.pid
        self.reader = reader
        self.writer = writer
        self.version = ""
        self.addresses: dict[str, tuple[str, int]] = {}
        self.connections = 0
        self.counts: dict[str, dict[str, int]] = {}
        self.pending: dict[str, list[asyncio.Future[Message]]] = {}
        """Table version (or ``flush``) → the answers awaited."""
        self.task: asyncio.Task[None] | None = None
        self.exited = False
        """Set once the process is gone: what is asked of it after that is answered
        ``exited`` at once (a reload may pick its workers just before one dies)."""

    def send(self, message: Message) -> None:
        if not self.writer.is_closing():
            self.writer.write(frame(message))

    def expect(self, what: str) -> asyncio.Future[Message]:
        waiter: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        if self.exited:
            waiter.set_result({"t": "exited"})
        else:
            self.pending.setdefault(what, []).append(waiter)
        return waiter

    def answer(self, what: str, message: Message) -> None:
        for waiter in self.pending.pop(what, []):
            if not waiter.done():
                waiter.set_result(message)


class Workers:
    """N worker processes serving the route tables this object is given.

    Offers what the admin API reads of a :class:`server.Gateway` (``holder``,
    ``health``, ``metrics``, ``connections``, ``draining``, :meth:`addresses`) and what
    the CLI drives (:meth:`apply`, :meth:`close`).

    Args:
        settings: the gateway settings every worker runs with (``reuse_port`` is
            forced on; ports 0 are resolved once; active health checks run here).
        count: how many workers.
    """

    def __init__(self, settings: ProxySettings, count: int) -> None:
        if count < 1:
            raise ValueError("workers: at least one")
        self.count = count
        self.settings = settings
        self.holder = snapshot.Holder()
        """The table in force, compiled here too: the admin API reads it."""
        self.health = health.HealthMap()
        self.health.on_change = self._health_changed
        self._checker: health.HealthChecker | None = None
        self.metrics: MergedMetrics | None = (
            MergedMetrics(time.time()) if settings.metrics else None
        )
        self.restarts = 0
        """Workers started again after they exited unasked."""
        self._workers: list[_Worker | None] = [None] * count
        self._reserved: list[socket.socket] = []
        self._worker_settings: ProxySettings | None = None
        self._table: table.RouteTable | None = None
        self._key_pairs: Mapping[str, table.KeyPair] = {}
        self._expirer: asyncio.Task[None] | None = None
        self._closing = False
        self._access_logs: dict[int, tuple[int, ...]] = {}
        """Worker pid → its access log's counts (AccessLogStats.to_wire), as last sent."""

    # -- what the admin API reads -----------------------------------------------------

    @property
    def connections(self) -> int:
        """Client connections open in all workers (as last reported)."""
        return sum(w.connections for w in self._workers if w is not None)

    @property
    def draining(self) -> bool:
        """True once :meth:`close` began: the workers were told to drain. (Their
        listeners stay in :meth:`addresses`, as last reported, so readiness needs this.)"""
        return self._closing

    @property
    def access_log_stats(self) -> accesslog.AccessLogStats:
        """Access-log counts summed over every worker process there has been."""
        return accesslog.AccessLogStats.total(self._access_logs.values())

    def addresses(self) -> dict[str, tuple[str, int]]:
        """Listener name → (host, port) bound (every worker binds the same)."""
        for worker in self._workers:
            if worker is not None and worker.addresses:
                return dict(worker.addresses)
        return {}

    def pids(self) -> list[int]:
        """The worker processes' ids, by worker index."""
        return [w.pid for w in self._workers if w is not None]

    def versions(self) -> list[str]:
        """The table version each worker serves, by worker index."""
        return [w.version for w in self._workers if w is not None]

    # -- life cycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker (with no table yet).

        Raises:
            WorkerError: a worker did not start.
        """
        port_map = []
        for port, local in self.settings.port_map:
            if local == 0:
                local = self._reserve()
            port_map.append((port, local))
        self._worker_settings = dataclasses.replace(
            self.settings, port_map=tuple(port_map), reuse_port=True, active_health_checks=False
        )
        try:
            for index in range(self.count):
                await self._spawn(index)
        except BaseException:
            await self.close(0.0)
            raise
        self._expirer = asyncio.get_running_loop().create_task(self._expire())

    def _reserve(self) -> int:
        """A free port, held by a bound socket that never listens (so it gets no
        connection) until :meth:`close`: every worker binds the same port."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("0.0.0.0", 0))
        self._reserved.append(sock)
        port: int = sock.getsockname()[1]
        return port

    async def _spawn(self, index: int) -> _Worker:
        assert self._worker_settings is not None
        ours, theirs = socket.socketpair()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "mcgw.dataplane.workers",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours)
        worker = _Worker(index, proc, reader, writer)
        worker.send(
            {"t": "start", "index": index, "settings": settings_to_wire(self._worker_settings)}
        )
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                hello = await receive(reader)
                if hello is None or hello.get("t") != "hello":
                    raise WorkerError(f"worker {index} (pid {proc.pid}) exited while starting")
                worker.send({"t": "health", "down": sorted(self._down())})
                self._workers[index] = worker
                worker.task = asyncio.get_running_loop().create_task(self._follow(worker))
                # Until it serves the table in force (a reload may finish meanwhile).
                while self._table is not None and worker.version != self._table.version:
                    if proc.returncode is not None:
                        raise WorkerError(f"worker {index} (pid {proc.pid}) exited while starting")
                    await self._apply_one(worker, self._table, self._key_pairs)
        except BaseException:
            self._workers[index] = None
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        log.info("worker %d started, pid %d", index, proc.pid)
        return worker

    def _down(self) -> list[list[Any]]:
        return [[a, p] for a, p in list(self.health.down) if not self.health.healthy(a, p)]

    async def apply(
        self,
        route_table: table.RouteTable,
        key_pairs: Mapping[str, table.KeyPair] | None = None,
    ) -> None:
        """Make every worker serve ``route_table``; return when all do.

        Raises:
            WorkerError: a worker refused it (a listener could not be bound, a
                certificate was refused): the workers serve the previous table.
        """
        pairs = key_pairs or {}
        workers = [w for w in self._workers if w is not None]
        results = await asyncio.gather(
            *(self._apply_one(w, route_table, pairs) for w in workers), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            if self._table is not None:
                back = [
                    self._apply_one(w, self._table, self._key_pairs)
                    for w, r in zip(workers, results, strict=True)
                    if not isinstance(r, BaseException)
                ]
                await asyncio.gather(*back, return_exceptions=True)
            first = failures[0]
            if isinstance(first, WorkerError):
                raise first
            raise WorkerError(f"workers: table {route_table.version} not applied: {first}")
        self._table, self._key_pairs = route_table, pairs
        # A worker restarted meanwhile may have caught up with the previous table.
        late = [w for w in self._workers if w is not None and w.version != route_table.version]
        for worker, result in zip(
            late,
            await asyncio.gather(
                *(self._apply_one(w, route_table, pairs) for w in late), return_exceptions=True
            ),
            strict=True,
        ):
            if isinstance(result, BaseException):
                log.error("worker %d: table %s: %s", worker.index, route_table.version, result)
        self.holder.swap(
            snapshot.Snapshot(
                route_table,
                router.compile(route_table),
                balancer.Balancer(route_table, self.health),
            )
        )
        self.health.update(route_table)
        if self.settings.active_health_checks:
            if self._checker is None:
                self._checker = health.HealthChecker(self.health)
            self._checker.update(route_table)

    async def _apply_one(
        self, worker: _Worker, route_table: table.RouteTable, key_pairs: Mapping[str, table.KeyPair]
    ) -> None:
        version = route_table.version
        waiter = worker.expect(version)
        worker.send(
            {
                "t": "table",
                "table": codec.encode(route_table),
                "key_pairs": key_pairs_to_wire(key_pairs),
            }
        )
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                answer = await waiter
        except TimeoutError:
            raise WorkerError(f"worker {worker.index}: no answer to table {version}") from None
        if answer["t"] == "exited":
            return  # it is restarted with the table in force, whatever that will be
        if answer["t"] != "applied":
            raise WorkerError(str(answer.get("error", "table refused")))

    async def flush_logs(self) -> None:
        """Have every worker write its queued access-log records."""
        waiters = []
        for worker in self._workers:
            if worker is None:
                continue
            waiters.append(worker.expect("flush"))
            worker.send({"t": "flush"})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await asyncio.gather(*waiters, return_exceptions=True)

    async def _follow(self, worker: _Worker) -> None:
        """Read one worker's messages until it exits; start it again if unasked."""
        while True:
            message = await receive(worker.reader)
            if message is None:
                break
            try:
                self._handle(worker, message)
            except Exception:
                log.exception("worker %d: bad message %.200r", worker.index, message)
        code = await worker.proc.wait()
        worker.exited = True
        for what in list(worker.pending):
            worker.answer(what, {"t": "exited"})
        worker.writer.close()
        if self.metrics is not None:
            self.metrics.retire(worker.index)
        if self._closing or self._workers[worker.index] is not worker:
            return
        self._workers[worker.index] = None
        log.error(
            "worker %d (pid %d) exited with %s; starting it again", worker.index, worker.pid, code
        )
        print(
            f"workers: worker {worker.index} (pid {worker.pid}) exited with {code}; restarting",
            file=sys.stderr,
            flush=True,
        )
        await asyncio.sleep(RESTART_DELAY_S)
        while not self._closing:
            try:
                new = await self._spawn(worker.index)
            except (WorkerError, OSError, TimeoutError) as exc:
                log.error("worker %d: restart failed: %s", worker.index, exc)
                await asyncio.sleep(RESTART_DELAY_S * 4)
                continue
            self.restarts += 1
            print(
                f"workers: worker {worker.index} restarted, pid {new.pid}",
                file=sys.stderr,
                flush=True,
            )
            return

    def _handle(self, worker: _Worker, message: Message) -> None:
        kind = message["t"]
        if "log" in message:
            # By pid: a restarted worker's counts start again, its predecessor's stay.
            self._access_logs[worker.pid] = tuple(message["log"])
        if kind == "tick":
            worker.connections = message["connections"]
            counts = message["counts"]
            if counts or worker.counts:
                worker.counts = counts
                self._share_rates(worker)
        elif kind == "metrics":
            if self.metrics is not None:
                self.metrics.update(worker.index, message["cells"])
        elif kind in ("applied", "failed"):
            if kind == "applied":
                worker.version = message["version"]
                worker.addresses = {k: (h, p) for k, (h, p) in message["addresses"].items()}
            worker.answer(message["version"], message)
        elif kind == "flushed":
            worker.answer("flush", message)
        elif kind == "ejected":
            self.health.adopt(message["address"], message["port"], message["seconds"])

    def _share_rates(self, changed: _Worker) -> None:
        """Send every other worker the sum of everyone else's latest counts; keep the
        sum of all in this process's balancer, whose rates the admin API shows."""
        for worker in self._workers:
            if worker is not None and worker is not changed:
                worker.send({"t": "rates", "others": self._sum(worker)})
        snap = self.holder.current
        if snap is not None:
            snap.balancer.counts()  # starts (then slides) its window: it picks nothing
            snap.balancer.share(self._sum(None))

    def _sum(self, skip: _Worker | None) -> dict[str, dict[str, int]]:
        total: dict[str, dict[str, int]] = {}
        for other in self._workers:
            if other is None or other is skip:
                continue
            for backend, regions in other.counts.items():
                into = total.setdefault(backend, {})
                for region, n in regions.items():
                    into[region] = into.get(region, 0) + n
        return total

    def _health_changed(self, address: str, port: int, healthy: bool) -> None:
        for worker in self._workers:
            if worker is not None:
                worker.send({"t": "health", "address": address, "port": port, "ok": healthy})

    async def _expire(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.health.expire()

    async def close(self, timeout_s: float | None = None) -> None:
        """Drain every worker (SIGTERM) and wait for them to exit.

        Args:
            timeout_s: the drain deadline; ``settings.drain_timeout_s`` by default.
        """
        self._closing = True
        if self._expirer is not None:
            self._expirer.cancel()
        workers = [w for w in self._workers if w is not None]
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(signal.SIGTERM)
        drain = self.settings.drain_timeout_s if timeout_s is None else timeout_s
        for worker in workers:
            try:
                await asyncio.wait_for(worker.proc.wait(), drain + 5.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.kill()
                await worker.proc.wait()
            if worker.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker.task
        if self._checker is not None:
            await self._checker.close()
        for sock in self._reserved:
            sock.close()
        self._reserved.clear()


# -- the worker's side ---------------------------------------------------------------


async def _serve(fd: int) -> int:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    start = await receive(reader)
    if start is None or start.get("t") != "start":
        return 2
    settings = settings_from_wire(start["settings"])
    gateway = server.Gateway(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def send(message: Message) -> None:
        if not writer.is_closing():
            writer.write(frame(message))

    def ejected(address: str, port: int, seconds: float) -> None:
        send({"t": "ejected", "address": address, "port": port, "seconds": seconds})

    gateway.health.on_eject = ejected
    send({"t": "hello", "pid": os.getpid()})

    async def commands() -> None:
        try:
            await follow()
        finally:
            stop.set()  # the parent is gone (or this task failed): drain and exit

    async def follow() -> None:
        while True:
            message = await receive(reader)
            if message is None:
                return
            kind = message["t"]
            if kind == "table":
                await apply(message)
            elif kind == "rates":
                snap = gateway.holder.current
                if snap is not None:
                    snap.balancer.share(message["others"])
            elif kind == "health":
                if "down" in message:
                    for address, port in message["down"]:
                        gateway.health.mirror(address, port, False)
                else:
                    gateway.health.mirror(message["address"], message["port"], message["ok"])
            elif kind == "flush":
                await gateway.access_log.flush()
                send({"t": "flushed"})

    async def apply(message: Message) -> None:
        version = str(message["table"].get("version", ""))
        try:
            route_table = codec.decode(table.RouteTable, message["table"])
            await gateway.apply(route_table, key_pairs_from_wire(message["key_pairs"]))
        except Exception as exc:
            send({"t": "failed", "version": version, "error": str(exc)})
            return
        addresses = {k: list(v) for k, v in gateway.addresses().items()}
        send({"t": "applied", "version": route_table.version, "addresses": addresses})

    async def ticks() -> None:
        every = max(1, round(METRICS_S / TICK_S))
        n = 0
        while True:
            await asyncio.sleep(TICK_S)
            snap = gateway.holder.current
            counts = snap.balancer.counts() if snap is not None else {}
            send(
                {
                    "t": "tick",
                    "counts": counts,
                    "connections": gateway.connections,
                    "log": gateway.access_log.stats.to_wire(),
                }
            )
            n += 1
            if n % every == 0 and gateway.metrics is not None:
                send({"t": "metrics", "cells": cells_to_wire(gateway.metrics)})
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    tasks = [loop.create_task(commands()), loop.create_task(ticks())]
    try:
        await stop.wait()
    finally:
        await gateway.close()
        send({"t": "log", "log": gateway.access_log.stats.to_wire()})  # the last lines
        if gateway.metrics is not None:
            send({"t": "metrics", "cells": cells_to_wire(gateway.metrics)})
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
    return 0


def main(argv: list[str]) -> int:
    """A worker process: ``python -m mcgw.dataplane.workers FD`` (FD: its socketpair)."""
    logging.basicConfig(level=logging.WARNING, format=f"worker {os.getpid()}: %(message)s")
    server.install_loop()
    return asyncio.run(_serve(int(argv[1])))


if __name__ == "__main__":
    sys.exit(main(sys.argv))

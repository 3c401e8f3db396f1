"""Links with latency: a userspace TCP relay in front of each pod.

A laptop's loopback answers in microseconds, so a gateway in "Tokyo" would see its
"us-east1" and "us-west1" pods as equally close. With latency simulation on, the fleet
puts every pod behind a relay — a TCP forwarder in the manner of toxiproxy's latency
toxic, needing neither root nor netem — and publishes the relay's address in the
EndpointSlices instead of the pod's, so the gateway and its health checks reach pods
only through it.

Addresses: a pod at ``127.<c>.<d>.<p>`` is relayed at ``127.<c>.<128 + d>.<p>`` on the
same ports (:func:`relay_address`): each relay stays inside its fleet's own address
block, and the EndpointSlices keep their ports. It follows that a cluster may hold at
most 128 Deployments while simulating.

Timing: every byte is held for the one-way delay (half the round trip between the
gateway's location and the pod's region) in each direction, so a request and its
response pay one round trip. A new connection also pays for its TCP handshake, as on
a real network: the relay accepts at once (userspace cannot hold back a SYN-ACK), but
the client's first bytes reach the pod no sooner than three one-way delays after the
accept (SYN, SYN-ACK, then the data), and the pod's first bytes reach the client no
sooner than two. A fresh connection's first exchange thus costs two round trips, later
ones on the same connection one.

Each direction is a FIFO of ``(due time, chunk)`` with at most one timer pending
(:class:`_Pipe`): since every chunk waits the same delay, due times never decrease and
order is kept. Reading from the source pauses while more than :data:`HIGH_WATER` bytes
wait in the pipe or while the destination's transport asks to pause writing, so a
connection holds a bounded amount of memory. EOF, close and reset travel down the same
pipe after the data before them: closing either side closes the other a one-way delay
later.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import ipaddress
import typing
from collections.abc import Iterable

from mcgw.config import resources
from mcgw.fleet import endpoints, errors
from mcgw.fleet import pods as pods_
from mcgw.translate import regions

HIGH_WATER = 1 << 20
"""Bytes waiting in one direction of a connection above which its source stops being read.

With a one-way delay ``d`` this caps a connection's throughput at about
``HIGH_WATER / d`` per direction, as a TCP window would."""
LOW_WATER = HIGH_WATER // 4
"""Reading resumes once the bytes waiting drop to this."""

RELAY_OCTET_OFFSET = 128
"""Added to a pod address's third octet to give its relay's address."""

_TIMER_SLACK_S = 0.002
"""Chunks due this close to a timer's firing go with it: loop timers may fire up to a
clock tick early, and sending neighbours together saves timers."""


_CLOSE_TIMEOUT_S = 1.0


class _Mark:
    """What may travel down a pipe besides data."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_EOF: typing.Final = _Mark("eof")
"""The source half-closed: half-close the destination."""
_CLOSE: typing.Final = _Mark("close")
"""The source closed: close the destination once its buffer is written."""
_ABORT: typing.Final = _Mark("abort")
"""The source was reset: reset the destination."""


@dataclasses.dataclass(frozen=True, slots=True)
class Link:
    """One relay: where it listens, where it forwards to, how much it delays."""

    listen: tuple[str, int]
    """(address, port) the relay listens on: what the EndpointSlices publish."""
    target: tuple[str, int]
    """(address, port) of the pod."""
    one_way_s: float
    """Delay added to data in each direction: half the round trip."""
    pod: str = ""
    """Name of the pod behind it (for messages)."""


def relay_address(address: str) -> str:
    """Where a pod's relay listens: ``127.c.d.p`` → ``127.c.(128 + d).p``.

    Raises:
        FleetError: ``address`` is not a pod address of the form the fleet plans.
    """
    try:
        octets = ipaddress.IPv4Address(address).packed
    except ValueError:
        octets = b""
    if len(octets) != 4 or octets[0] != 127 or octets[2] >= RELAY_OCTET_OFFSET:
        raise errors.FleetError(
            f"{address}: cannot place a latency relay for it (pod addresses must be "
            f"127.<cluster>.<deployment < {RELAY_OCTET_OFFSET}>.<pod>)"
        )
    return f"127.{octets[1]}.{octets[2] + RELAY_OCTET_OFFSET}.{octets[3]}"


def one_way_delays(fleet: resources.Resources) -> tuple[dict[str, float], tuple[str, ...]]:
    """Per cluster name, the one-way delay (seconds) between the gateway and that cluster.

    Round trips come from the Fleet's ``spec.latencies`` when they list the pair, else
    from the translator's estimate for cloud regions (:func:`mcgw.translate.regions.locality`,
    the same numbers that rank the regions).

    Returns:
        The delays, and warnings for clusters whose region has no known round trip
        (they get no delay).
    """
    locality, warnings = regions.locality(fleet.fleet.spec, (c.region for c in fleet.clusters))
    rtt_ms = dict(locality.region_rtt_ms)
    delays = {c.name: rtt_ms.get(c.region, 0.0) / 2000.0 for c in fleet.clusters}
    return delays, tuple(f"latency simulation: {w}; its links add no delay" for w in warnings)


def links(
    fleet: resources.Resources, plans: Iterable[pods_.PodPlan]
) -> tuple[tuple[Link, ...], tuple[str, ...]]:
    """Plan the relays of a fleet's pods. Pure.

    Each pod gets a relay per port it declares (its containers' first and named ports)
    and per port its Services send to (a numeric ``targetPort`` need not be declared).
    Relays are planned once, at start: a Service added while the fleet runs that targets
    a port no relay listens on is unreachable through the relays until the next start.

    Returns:
        The links in plan order (port ascending within a pod), and warnings from
        :func:`one_way_delays`.

    Raises:
        FleetError: a pod address has no room for a relay (128 Deployments or more).
    """
    plans = tuple(plans)
    delays, warnings = one_way_delays(fleet)
    ports: dict[str, set[int]] = {plan.address: set() for plan in plans}
    for plan in plans:
        for container in plan.containers:
            if container.port is not None:
                ports[plan.address].add(container.port)
            ports[plan.address].update(number for _, number in container.ports)
    for cluster in fleet.clusters:
        for slice_ in endpoints.slices(cluster, plans):
            for endpoint in slice_.endpoints:
                for address in endpoint.addresses:
                    if address in ports:
                        ports[address].update(p.port for p in slice_.ports)
    result = [
        Link(
            listen=(relay_address(plan.address), port),
            target=(plan.address, port),
            one_way_s=delays.get(plan.cluster, 0.0),
            pod=plan.name,
        )
        for plan in plans
        for port in sorted(ports[plan.address])
    ]
    return tuple(result), warnings


class _Pipe:
    """One direction of a relayed connection: data waits its due time, then is written."""

    __slots__ = (
        "_delay",
        "_dst",
        "_dst_paused",
        "_ended",
        "_loop",
        "_not_before",
        "_on_end",
        "_queue",
        "_queued",
        "_src",
        "_src_paused",
        "_timer",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        delay: float,
        not_before: float,
        on_end: _Connection,
    ) -> None:
        self._loop = loop
        self._delay = delay
        self._not_before = not_before
        """Nothing is delivered before this loop time (the handshake's share)."""
        self._queue: collections.deque[tuple[float, bytes | _Mark]] = collections.deque()
        self._queued = 0
        self._timer: asyncio.TimerHandle | None = None
        self._src: asyncio.Transport | None = None
        self._dst: asyncio.Transport | None = None
        self._src_paused = False
        self._dst_paused = False
        self._ended = False
        """An EOF, close or abort mark went out: nothing more will."""
        self._on_end = on_end

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def queued(self) -> int:
        """Bytes waiting to be written."""
        return self._queued

    def source(self, transport: asyncio.Transport) -> None:
        self._src = transport

    def attach(self, transport: asyncio.Transport) -> None:
        """The destination is connected: deliver whatever is already due."""
        self._dst = transport
        self._flush()

    def feed(self, item: bytes | _Mark) -> None:
        """Queue data or a mark from the source, due one delay from now."""
        if self._ended:
            return
        due = max(self._loop.time() + self._delay, self._not_before)
        self._queue.append((due, item))
        if isinstance(item, bytes):
            self._queued += len(item)
            self._update_reading()
        if self._timer is None:
            self._timer = self._loop.call_at(due, self._flush)

    def set_dst_paused(self, paused: bool) -> None:
        self._dst_paused = paused
        self._update_reading()

    def cancel(self) -> None:
        """Drop everything: the connection is being torn down."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
        self._queued = 0
        self._ended = True

    def _flush(self) -> None:
        if self._timer is not None:  # called by attach() while a timer is pending
            self._timer.cancel()
        self._timer = None
        dst = self._dst
        if dst is None:
            return  # attach() flushes
        limit = self._loop.time() + _TIMER_SLACK_S
        queue = self._queue
        while queue and queue[0][0] <= limit:
            _, item = queue.popleft()
            if isinstance(item, bytes):
                self._queued -= len(item)
                if not dst.is_closing():
                    dst.write(item)
                continue
            self._end(dst, item)
            return
        if queue:
            self._timer = self._loop.call_at(queue[0][0], self._flush)
        self._update_reading()

    def _end(self, dst: asyncio.Transport, mark: _Mark) -> None:
        self._ended = True
        self._queue.clear()
        self._queued = 0
        if mark is _ABORT:
            dst.abort()
        elif mark is _EOF and dst.can_write_eof() and not dst.is_closing():
            dst.write_eof()
        else:
            dst.close()
        self._on_end.pipe_ended()

    def _update_reading(self) -> None:
        src = self._src
        if src is None or src.is_closing():
            return
        pause = self._dst_paused or self._queued > HIGH_WATER
        if pause and not self._src_paused:
            self._src_paused = True
            src.pause_reading()
        elif not pause and self._src_paused and self._queued <= LOW_WATER:
            self._src_paused = False
            src.resume_reading()


class _Side(asyncio.Protocol):
    """One socket of a relayed connection: what it reads goes into ``out``."""

    def __init__(self, conn: _Connection, out: _Pipe, back: _Pipe) -> None:
        self._conn = conn
        self._out = out
        """Carries what this side reads to the other side."""
        self._back = back
        """Carries the other side's data to this one."""
        self.transport: asyncio.Transport | None = None
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transports are not asyncio.Transport subclasses, but quack alike.
        transport = typing.cast(asyncio.Transport, transport)
        self.transport = transport
        self._out.source(transport)
        self._back.attach(transport)

    def data_received(self, data: bytes) -> None:
        self._out.feed(data)

    def eof_received(self) -> bool:
        self.eof = True
        self._out.feed(_EOF)
        return True  # stay open: the other direction may still carry data

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._conn.closing:
            return
        if exc is not None:
            self._out.feed(_ABORT)
        elif not self.eof:
            self._out.feed(_CLOSE)
        # Nothing can reach this side any more.
        self._back.cancel()
        self._conn.pipe_ended()

    def pause_writing(self) -> None:
        self._back.set_dst_paused(True)

    def resume_writing(self) -> None:
        self._back.set_dst_paused(False)


class _Connection:
    """A client connection to a relay and the relay's connection to the pod."""

    def __init__(self, relay: Relay, loop: asyncio.AbstractEventLoop) -> None:
        d = relay.link.one_way_s
        now = loop.time()
        self._relay = relay
        self.closing = False
        up = _Pipe(loop, d, now + 3 * d, self)
        down = _Pipe(loop, d, now + 2 * d, self)
        self.client = _Side(self, up, down)
        self.pod = _Side(self, down, up)
        self.pipes = (up, down)
        self.connect: asyncio.Task[None] | None = None

    def pipe_ended(self) -> None:
        """Once both directions are over (and the sockets of both sides), let go."""
        if all(p.ended for p in self.pipes):
            for side in (self.client, self.pod):
                if side.transport is not None and not side.transport.is_closing():
                    side.transport.close()
            if self.client.transport is None and self.pod.transport is None:
                self._relay.forget(self)

    def abort(self) -> None:
        self.closing = True
        for pipe in self.pipes:
            pipe.cancel()
        if self.connect is not None:
            self.connect.cancel()
        for side in (self.client, self.pod):
            if side.transport is not None:
                side.transport.abort()
        self._relay.forget(self)

    async def open(self) -> None:
        """Connect to the pod; if it refuses, reset the client as a pod would."""
        loop = asyncio.get_running_loop()
        host, port = self._relay.link.target
        try:
            await loop.create_connection(lambda: self.pod, host, port)
        except OSError:
            self.abort()


class Relay:
    """A TCP relay for one :class:`Link`; see the module docstring."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()

    @property
    def connections(self) -> int:
        """Connections open through the relay."""
        return len(self._connections)

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens, once started (the port is the real one when the link's is 0)."""
        if self._server is None or not self._server.sockets:
            return self.link.listen
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    def queued_bytes(self) -> int:
        """Bytes held back in every connection, both directions (bounded by the water marks)."""
        return sum(pipe.queued for conn in self._connections for pipe in conn.pipes)

    async def start(self) -> None:
        """Listen on the link's address.

        Raises:
            FleetError: the address cannot be listened on.
        """
        loop = asyncio.get_running_loop()
        host, port = self.link.listen
        try:
            self._server = await loop.create_server(
                self._accept, host, port, reuse_address=True, backlog=1024
            )
        except OSError as exc:
            raise errors.FleetError(
                f"latency relay for pod {self.link.pod} cannot listen on {host}:{port}: "
                f"{exc.strerror}"
            ) from exc

    def stop_listening(self) -> None:
        """Refuse new connections (the pod is gone); open ones end on their own."""
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        """Stop listening and reset every connection: nothing of the relay remains."""
        self.stop_listening()
        conns = list(self._connections)
        tasks = [c.connect for c in conns if c.connect is not None]
        for conn in conns:
            conn.abort()
        if self._server is not None:
            # uvloop's wait_closed also waits for the server's transports to go; all
            # were aborted above, but a close must not hang on one that was not.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), _CLOSE_TIMEOUT_S)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)

    def _accept(self) -> _Side:
        loop = asyncio.get_running_loop()
        conn = _Connection(self, loop)
        self._connections.add(conn)
        conn.connect = loop.create_task(conn.open())
        return conn.client


async def start_all(links: Iterable[Link]) -> list[Relay]:
    """Start a relay per link; if one fails, close those started and raise.

    Raises:
        FleetError: a relay cannot listen.
    """
    started: list[Relay] = []
    try:
        for link in links:
            relay = Relay(link)
            await relay.start()
            started.append(relay)
    except BaseException:
        await asyncio.gather(*(r.close() for r in started))
        raise
    return started

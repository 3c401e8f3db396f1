"""Latency relays: the pipe's timing on a fake clock, then real loopback connections.

The loopback tests use a round-trip table of 40 ms (us-west1) and 120 ms (us-east1)
from a Tokyo gateway, so a keep-alive request pays about 40 or 120 ms and a request on a
fresh connection about twice that (its handshake's round trip).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import statistics
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop
from fleetkit import deployment, fleet, service

from mcgw.config import fleet as fleet_config
from mcgw.config import resources
from mcgw.fleet import errors, pods, relay, runtime

T = TypeVar("T")

# fake clock: the pipe alone


class FakeTimer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[FakeTimer] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(when, callback)
        self.timers.append(timer)
        return timer

    def pending(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.cancelled]

    def advance(self, to: float) -> None:
        while True:
            due = sorted((t for t in self.pending() if t.when <= to), key=lambda t: t.when)
            if not due:
                break
            timer = due[0]
            self.timers.remove(timer)
            self.now = max(self.now, timer.when)
            timer.callback()
        self.now = to


class FakeTransport:
    def __init__(self) -> None:
        self.events: list[object] = []
        self.reading = True
        self.closing = False

    def write(self, data: bytes) -> None:
        self.events.append(data)

    def write_eof(self) -> None:
        self.events.append("eof")

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def abort(self) -> None:
        self.closing = True
        self.events.append("abort")

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        assert self.reading
        self.reading = False

    def resume_reading(self) -> None:
        assert not self.reading
        self.reading = True


class FakeConnection:
    ended = 0

    def pipe_ended(self) -> None:
        self.ended += 1


def make_pipe(
    delay: float = 0.05, not_before: float = 0.0
) -> tuple[Any, FakeLoop, FakeTransport, FakeTransport, FakeConnection]:
    loop, src, dst, conn = FakeLoop(), FakeTransport(), FakeTransport(), FakeConnection()
    pipe: Any = relay._Pipe(loop, delay, not_before, conn)  # type: ignore[arg-type]
    pipe.source(src)
    pipe.attach(dst)
    return pipe, loop, src, dst, conn


def test_data_waits_one_delay_keeps_order_with_one_timer() -> None:
    pipe, loop, _, dst, _ = make_pipe(delay=0.05)
    for i in range(100):
        loop.now = i * 0.005  # wider apart than the timer slack
        pipe.feed(b"%d," % i)
        assert len(loop.pending()) == 1  # one timer per direction, never one per chunk
    loop.advance(0.0499)
    assert dst.events == []
    loop.advance(0.0505)
    assert dst.events == [b"0,"]
    loop.advance(2.0)
    assert b"".join(e for e in dst.events if isinstance(e, bytes)) == b"".join(
        b"%d," % i for i in range(100)
    )
    assert loop.pending() == [] and pipe.queued == 0


def test_nothing_before_the_handshake_share() -> None:
    pipe, loop, _, dst, _ = make_pipe(delay=0.05, not_before=0.15)
    pipe.feed(b"GET")
    loop.advance(0.149)
    assert dst.events == []
    loop.advance(0.15)
    assert dst.events == [b"GET"]
    loop.now = 0.2
    pipe.feed(b"again")  # later data: the plain delay
    loop.advance(0.2499)
    assert dst.events == [b"GET"]
    loop.advance(0.25)
    assert dst.events == [b"GET", b"again"]


def test_source_pauses_above_high_water_and_resumes_below_low() -> None:
    pipe, loop, src, dst, _ = make_pipe(delay=0.05)
    chunk = b"x" * (64 * 1024)
    fed = 0
    while src.reading:
        pipe.feed(chunk)
        fed += len(chunk)
    assert relay.HIGH_WATER < fed <= relay.HIGH_WATER + len(chunk)
    loop.advance(0.06)
    assert src.reading and pipe.queued == 0
    assert sum(len(e) for e in dst.events if isinstance(e, bytes)) == fed


def test_destination_backpressure_pauses_the_source() -> None:
    pipe, _, src, _, _ = make_pipe()
    pipe.set_dst_paused(True)
    assert not src.reading
    pipe.set_dst_paused(False)
    assert src.reading


@pytest.mark.parametrize(
    ("mark", "expected"),
    [(relay._EOF, "eof"), (relay._CLOSE, "close"), (relay._ABORT, "abort")],
)
def test_end_marks_follow_the_data(mark: Any, expected: str) -> None:
    pipe, loop, _, dst, conn = make_pipe(delay=0.05)
    pipe.feed(b"last words")
    loop.now = 0.01
    pipe.feed(mark)
    pipe.feed(b"ignored after the end")
    loop.advance(0.055)
    assert dst.events == [b"last words"] and conn.ended == 0
    loop.advance(0.07)
    assert dst.events == [b"last words", expected] and conn.ended == 1
    assert pipe.ended and pipe.queued == 0
    pipe.feed(b"more")
    assert loop.pending() == []


def test_data_due_before_the_pod_connects_goes_once_it_does() -> None:
    loop, src, dst, conn = FakeLoop(), FakeTransport(), FakeTransport(), FakeConnection()
    pipe: Any = relay._Pipe(loop, 0.01, 0.0, conn)  # type: ignore[arg-type]
    pipe.source(src)
    pipe.feed(b"early")
    loop.advance(0.5)
    assert pipe.queued == 5
    pipe.attach(dst)
    assert dst.events == [b"early"] and loop.pending() == []


# pure planning


def tokyo_fleet(
    simulate: bool = True, latencies: tuple[tuple[str, float], ...] | None = None
) -> resources.Resources:
    """Two clusters of one whereami pod each, seen from a gateway in Tokyo."""
    app = deployment(
        "store", image="us-docker.pkg.dev/google-samples/containers/gke/whereami:v1.2.20"
    )
    svc = service("store", {"app": "store"}, [{"port": 8080}])
    res = fleet(("gke-west-1", (app,), (svc,)), ("gke-east-1", (app,), (svc,)))
    table = (("us-west1", 40.0), ("us-east1", 120.0)) if latencies is None else latencies
    spec = res.fleet.model_dump(by_alias=True)
    spec["spec"]["gateway"] = {"location": "asia-northeast1"}
    spec["spec"]["latencies"] = [
        {"from": "asia-northeast1", "to": region, "rttMs": rtt} for region, rtt in table
    ]
    spec["spec"]["network"] = {"simulateLatency": simulate}
    return dataclasses.replace(res, fleet=fleet_config.Fleet.model_validate(spec))


def test_relay_address_shifts_the_deployment_octet() -> None:
    assert relay.relay_address("127.1.0.2") == "127.1.128.2"
    assert relay.relay_address("127.61.127.254") == "127.61.255.254"
    for bad in ("127.1.128.2", "10.0.0.1", "not-an-ip"):
        with pytest.raises(errors.FleetError, match="cannot place a latency relay"):
            relay.relay_address(bad)


def test_delays_come_from_the_fleet_table_else_the_region_estimate() -> None:
    delays, warnings = relay.one_way_delays(tokyo_fleet())
    assert delays == {"gke-west-1": 0.020, "gke-east-1": 0.060}
    assert warnings == ()
    estimated, _ = relay.one_way_delays(tokyo_fleet(latencies=(("us-east1", 100.0),)))
    # us-west1 is not in the table: the translator's great-circle estimate (~110 ms).
    assert 0.045 < estimated["gke-west-1"] < 0.065
    assert estimated["gke-east-1"] == 0.050


def test_links_cover_declared_and_service_ports() -> None:
    res = tokyo_fleet()
    app = deployment(
        "app",
        annotations={"mcgw.dev/command": "sleep 1"},
        ports=[{"containerPort": 9000}, {"name": "admin", "containerPort": 9001}],
    )
    svc = service("app", {"app": "app"}, [{"port": 80, "targetPort": 9002}])
    res = dataclasses.replace(
        res,
        clusters=(dataclasses.replace(res.clusters[0], deployments=(app,), services=(svc,)),),
    )
    plans = pods.plan(res, python="python", first_octet=61)
    links, _ = relay.links(res, plans)
    assert [(link.listen, link.target, link.one_way_s) for link in links] == [
        (("127.61.128.2", port), ("127.61.0.2", port), 0.02) for port in (9000, 9001, 9002)
    ]


# real loopback


def run(main: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def http_server() -> asyncio.Server:
    """Answers every request on a connection with a tiny 200 (keep-alive)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def echo_server() -> asyncio.Server:
    """Writes back what it reads; half-closes when the client does."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
            writer.write_eof()
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def port_of(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def started(target_port: int, one_way_s: float) -> relay.Relay:
    link = relay.Link(("127.0.0.1", 0), ("127.0.0.1", target_port), one_way_s, "pod")
    [one] = await relay.start_all([link])
    return one


async def timed_requests(address: tuple[str, int], count: int) -> list[float]:
    """Seconds for each request on one keep-alive connection (the first includes connect)."""
    times: list[float] = []
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(*address)
    for _ in range(count):
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
    writer.close()
    return times


def test_a_request_pays_one_round_trip_and_a_new_connection_two() -> None:
    # Three connections through each relay: the bounds hold for the quickest first
    # request, so one stall of the machine (a full suite on 2 cores once held a first
    # request 150 ms) does not fail the test, and no delay can make a request quicker.
    async def main() -> dict[float, list[list[float]]]:
        server = await http_server()
        relays = [await started(port_of(server), d) for d in (0.020, 0.060)]
        try:
            return {
                r.link.one_way_s: [await timed_requests(r.address, 4) for _ in range(3)]
                for r in relays
            }
        finally:
            await asyncio.gather(*(r.close() for r in relays))
            server.close()

    seen = run(main())
    for d, connections in seen.items():
        rtt = 2 * d
        first = min(times[0] for times in connections)
        rest = [t for times in connections for t in times[1:]]
        assert 2 * rtt - 0.005 < first < 2 * rtt + 0.040, (d, connections)
        assert rtt - 0.005 < statistics.median(rest) < rtt + 0.030, (d, rest)


def test_a_large_body_arrives_intact_in_order_with_bounded_buffers() -> None:
    body = os.urandom(8 * 1024 * 1024)

    async def main() -> tuple[bytes, int]:
        server = await echo_server()
        one = await started(port_of(server), 0.005)
        peak = 0
        try:
            reader, writer = await asyncio.open_connection(*one.address)

            async def send() -> None:
                for i in range(0, len(body), 100_000):
                    writer.write(body[i : i + 100_000])
                    await writer.drain()
                writer.write_eof()

            sender = asyncio.create_task(send())
            received = bytearray()
            while data := await reader.read(1 << 16):
                received += data
                peak = max(peak, one.queued_bytes())
            await sender
            writer.close()
            return bytes(received), peak
        finally:
            await one.close()
            server.close()

    received, peak = run(main())
    assert len(received) == len(body) and received == body
    # Two directions, each bounded by its high-water mark plus one read.
    assert peak <= 2 * (relay.HIGH_WATER + (1 << 18))


def test_a_stalled_reader_stops_the_writer_at_the_high_water_mark() -> None:
    async def main() -> tuple[int, int]:
        accepted: list[asyncio.StreamWriter] = []

        async def stall(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)  # never reads

        server = await asyncio.start_server(stall, "127.0.0.1", 0)
        one = await started(port_of(server), 0.001)
        try:
            _, writer = await asyncio.open_connection(*one.address)
            sent = 0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    while True:
                        writer.write(b"x" * 65536)
                        sent += 65536
                        await writer.drain()
            writer.transport.abort()
            return sent, one.queued_bytes()
        finally:
            await one.close()
            server.close()
            for w in accepted:
                w.transport.abort()

    sent, queued = run(main())
    # The kernel's socket buffers hold some; the relay holds at most its mark plus a read.
    assert queued <= relay.HIGH_WATER + (1 << 18)
    assert sent < 64 * 1024 * 1024


def test_closing_either_side_closes_the_other() -> None:
    async def main() -> tuple[float, float, bytes, int]:
        peers: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        got_peer = asyncio.Event()

        async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peers.append((reader, writer))
            got_peer.set()

        server = await asyncio.start_server(keep, "127.0.0.1", 0)
        one = await started(port_of(server), 0.02)
        try:
            # The client closes: the pod reads EOF one delay (plus handshake) later.
            _, writer = await asyncio.open_connection(*one.address)
            await got_peer.wait()
            pod_reader, pod_writer = peers[0]
            start = time.perf_counter()
            writer.close()
            assert await asyncio.wait_for(pod_reader.read(), 2) == b""
            client_closed = time.perf_counter() - start
            pod_writer.close()

            # The pod answers and closes: the client gets the bytes, then EOF.
            got_peer.clear()
            reader, writer = await asyncio.open_connection(*one.address)
            await got_peer.wait()
            _, pod_writer = peers[1]
            start = time.perf_counter()
            pod_writer.write(b"bye")
            pod_writer.close()
            tail = await asyncio.wait_for(reader.read(), 2)
            pod_closed = time.perf_counter() - start
            writer.close()
            for _ in range(100):
                if one.connections == 0:
                    break
                await asyncio.sleep(0.01)
            return client_closed, pod_closed, tail, one.connections
        finally:
            await one.close()
            server.close()

    client_closed, pod_closed, tail, left = run(main())
    assert 0.015 < client_closed < 1.0 and 0.015 < pod_closed < 1.0
    assert tail == b"bye"
    assert left == 0  # both ends of both connections let go


def test_a_refused_pod_resets_the_client() -> None:
    async def main() -> None:
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[1]
        one = await started(dead, 0.01)
        try:
            reader, _ = await asyncio.open_connection(*one.address)
            with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
                await asyncio.wait_for(reader.readexactly(1), 2)
            assert one.connections == 0
        finally:
            await one.close()

    run(main())


# the fleet


def refused(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_fleet_publishes_relays_and_tokyo_reaches_us_east1_later_than_us_west1(
    tmp_path: Path,
) -> None:
    async def timed(address: tuple[str, int]) -> float:
        return statistics.median((await timed_requests(address, 4))[1:])

    async def main() -> None:
        # Opted in by the Fleet's spec.network.simulateLatency, not the argument.
        rt = runtime.FleetRuntime(tokyo_fleet(), tmp_path, first_octet=61)
        await rt.start()
        try:
            by_cluster = {p.cluster: p for p in rt.pods()}
            slices = rt.endpoint_slices()
            published = {
                name: (s[0].endpoints[0].addresses[0], s[0].ports[0].port)
                for name, s in slices.items()
            }
            assert published == {
                "gke-west-1": ("127.61.128.2", 8080),
                "gke-east-1": ("127.62.128.2", 8080),
            }
            assert [(lk.listen, lk.target, lk.one_way_s) for lk in rt.links()] == [
                (("127.61.128.2", 8080), ("127.61.0.2", 8080), 0.02),
                (("127.62.128.2", 8080), ("127.62.0.2", 8080), 0.06),
            ]
            west, east = await timed(published["gke-west-1"]), await timed(published["gke-east-1"])
            pod = by_cluster["gke-west-1"]
            direct = await timed((pod.address, pod.port))
            print(
                f"direct {direct * 1000:.1f} ms, us-west1 {west * 1000:.1f} ms, "
                f"us-east1 {east * 1000:.1f} ms"
            )
            assert direct < 0.030
            assert 0.035 < west < 0.040 + direct + 0.030
            assert 0.115 < east < 0.120 + direct + 0.030
            assert 0.060 < east - west < 0.100

            # A dead pod's relay refuses, as the pod's own address does.
            await rt.kill_pod(pod.name)
            assert refused(*published["gke-west-1"])
        finally:
            await rt.close()
        for address, port in published.values():
            assert refused(address, port)
        current = asyncio.current_task()
        assert [t for t in asyncio.all_tasks() if t is not current] == []

    run(main())


def test_the_argument_overrides_the_fleet_and_off_means_pod_addresses(tmp_path: Path) -> None:
    async def main() -> None:
        rt = runtime.FleetRuntime(tokyo_fleet(), tmp_path, first_octet=61, simulate_latency=False)
        await rt.start()
        try:
            assert rt.links() == ()
            addresses = {
                name: s[0].endpoints[0].addresses[0] for name, s in rt.endpoint_slices().items()
            }
            assert addresses == {"gke-west-1": "127.61.0.2", "gke-east-1": "127.62.0.2"}
            assert refused("127.61.128.2", 8080)
        finally:
            await rt.close()

    run(main())

"""Slow and hostile clients over real sockets: slowloris, slow POST, idle keep-alive,
connection and pipeline limits, and that none of them starves a normal client."""

from __future__ import annotations

import asyncio
import time

from mcgw.ir import table
from mcgw.testing import tables
from mcgw.testing.client import RawClient
from mcgw.testing.gateway import serve
from mcgw.testing.runner import run
from mcgw.testing.upstream import FakeUpstream


def one_backend(up: FakeUpstream) -> table.RouteTable:
    return tables.route_table([tables.route("r", "b")], [tables.backend("b", up.address)])


async def drip(c: RawClient, data: bytes, every_s: float) -> None:
    """Send ``data`` a byte at a time (until the peer closes)."""
    for i in range(len(data)):
        try:
            await c.send(data[i : i + 1])
        except ConnectionError:
            return
        await asyncio.sleep(every_s)


def test_slowloris_dripping_head_bytes_does_not_extend_the_head_deadline() -> None:
    async def main() -> None:
        async with (
            FakeUpstream() as up,
            serve(one_backend(up), header_read_timeout_s=0.5) as (
                _,
                addr,
            ),
        ):
            c = await RawClient.connect(addr)
            start = time.monotonic()
            head = b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X-Slow: " + b"a" * 200
            task = asyncio.create_task(drip(c, head, 0.05))
            r = await c.response(timeout_s=3.0)
            took = time.monotonic() - start
            assert r.status == 408
            assert await c.closed(timeout_s=1.0)
            # Bytes kept coming every 50 ms: the deadline still ended 0.5 s after accept.
            assert took < 1.2, took
            task.cancel()
            await c.close()
            assert up.connections == 0

    run(main())


def test_slow_post_below_the_least_body_rate_is_408_and_closed() -> None:
    async def main() -> None:
        async with (
            FakeUpstream() as up,
            serve(one_backend(up), body_timeout_s=0.3, min_body_rate_bps=1000) as (_, addr),
        ):
            c = await RawClient.connect(addr)
            await c.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n")
            start = time.monotonic()
            task = asyncio.create_task(drip(c, b"x" * 1000, 0.05))  # ~20 bytes/s
            r = await c.response(timeout_s=3.0)
            assert r.status == 408
            assert await c.closed(timeout_s=1.0)
            assert time.monotonic() - start < 1.5
            task.cancel()
            await c.close()

    run(main())


def test_a_body_faster_than_the_least_rate_is_served() -> None:
    async def main() -> None:
        async with (
            FakeUpstream() as up,
            # The grace (0.3 s) is longer than the client's pauses: with a grace equal to
            # them, a check landing just before the first piece would rightly refuse it.
            serve(one_backend(up), body_timeout_s=0.3, min_body_rate_bps=1000) as (_, addr),
        ):
            c = await RawClient.connect(addr)
            await c.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3000\r\n\r\n")
            for _ in range(6):  # 500 bytes every 0.1 s: 5000 bytes/s
                await asyncio.sleep(0.1)
                await c.send(b"y" * 500)
            r = await c.response(timeout_s=3.0)
            assert r.status == 200
            await c.close()
            assert up.seen[0].body == b"y" * 3000

    run(main())


def test_idle_keep_alive_connections_are_closed() -> None:
    async def main() -> None:
        async with FakeUpstream() as up, serve(one_backend(up), idle_timeout_s=0.3) as (_, addr):
            c = await RawClient.connect(addr)
            assert (await c.request()).status == 200
            start = time.monotonic()
            assert await c.closed(timeout_s=2.0)
            assert 0.2 < time.monotonic() - start < 1.0
            await c.close()

    run(main())


def test_connections_beyond_the_listener_limit_get_503() -> None:
    async def main() -> None:
        async with (
            FakeUpstream() as up,
            serve(one_backend(up), max_connections_per_listener=3) as (gw, addr),
        ):
            held = [await RawClient.connect(addr) for _ in range(3)]
            await asyncio.sleep(0.05)
            extra = await RawClient.connect(addr)
            r = await extra.response(timeout_s=2.0)
            assert r.status == 503
            assert await extra.closed(timeout_s=1.0)
            await extra.close()
            assert gw.connections == 3
            # One leaves: a new client gets in and is served.
            await held.pop().close()
            await asyncio.sleep(0.1)
            again = await RawClient.connect(addr)
            assert (await again.request()).status == 200
            for c in [*held, again]:
                await c.close()

    run(main())


def test_pipelined_requests_beyond_the_limit_are_not_read() -> None:
    async def main() -> None:
        async with (
            FakeUpstream() as up,
            serve(one_backend(up), max_pipelined_requests=2) as (
                _,
                addr,
            ),
        ):
            c = await RawClient.connect(addr)
            await c.send(b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(6)))
            got = [(await c.response(timeout_s=3.0)).status for _ in range(3)]
            assert got == [200, 200, 200]  # the one proxied and two queued
            assert await c.closed(timeout_s=1.0)
            await c.close()
            assert [s.target for s in up.seen] == ["/0", "/1", "/2"]

    run(main())


def test_slowloris_crowd_does_not_starve_a_normal_client() -> None:
    async def main() -> None:
        async with (
            FakeUpstream() as up,
            serve(one_backend(up), header_read_timeout_s=5.0) as (
                _,
                addr,
            ),
        ):
            crowd = [await RawClient.connect(addr) for _ in range(200)]
            head = b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: " + b"a" * 100
            tasks = [asyncio.create_task(drip(c, head, 0.1)) for c in crowd]
            try:
                await asyncio.sleep(0.5)
                took = []
                for _ in range(5):
                    c = await RawClient.connect(addr)
                    start = time.monotonic()
                    assert (await c.request(timeout_s=2.0)).status == 200
                    took.append(time.monotonic() - start)
                    await c.close()
                # The median (a busy shared machine may stall one of them).
                assert sorted(took)[2] < 0.5, took
            finally:
                for t in tasks:
                    t.cancel()
                for c in crowd:
                    await c.close()

    run(main(), timeout_s=30.0)


def test_a_refused_client_still_sending_gets_its_response_then_a_close() -> None:
    """After a refusal the gateway half-closes and drops what still comes for a moment,
    so the client reads its 400 instead of a reset."""

    async def main() -> None:
        async with FakeUpstream() as up, serve(one_backend(up)) as (_, addr):
            c = await RawClient.connect(addr)
            await c.send(b"POST / HTTP/1.1\r\nHost : h\r\nContent-Length: 100000\r\n\r\n")
            await asyncio.sleep(0.05)
            for _ in range(20):  # body bytes the gateway never reads as a request
                try:
                    await c.send(b"z" * 4096)
                except ConnectionError:
                    break
            r = await c.response(timeout_s=3.0)
            assert r.status == 400
            assert await c.closed(timeout_s=2.0)
            await c.close()
            assert up.connections == 0

    run(main())

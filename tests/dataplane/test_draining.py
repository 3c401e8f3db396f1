"""Connection draining: an endpoint that leaves the table gets no new request, its
requests in flight finish (up to GCPBackendPolicy connectionDraining's timeout), its
pooled idle connections close. Real loopback sockets through a real gateway."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from mcgw.dataplane import upstream
from mcgw.ir import table
from mcgw.testing import tables
from mcgw.testing.client import RawClient
from mcgw.testing.gateway import serve
from mcgw.testing.runner import run
from mcgw.testing.upstream import FakeUpstream, Reply


def with_endpoints(
    *addresses: tuple[str, int], drain_s: float | None = None, ready: bool = True
) -> table.RouteTable:
    b = tables.backend("pods", *addresses)
    if not ready:
        group = b.groups[0]
        first, *rest = group.endpoints
        eps = (dataclasses.replace(first, ready=False), *rest)
        b = dataclasses.replace(b, groups=(dataclasses.replace(group, endpoints=eps),))
    b = dataclasses.replace(b, draining_timeout_s=drain_s)
    return tables.route_table([tables.route("r", "pods")], [b])


def test_request_in_flight_to_a_removed_endpoint_completes() -> None:
    async def main() -> None:
        async with (
            FakeUpstream(Reply(body=b"slow-done", delay_s=0.8), name="leaving") as leaving,
            FakeUpstream(name="staying") as staying,
            serve(with_endpoints(leaving.address, drain_s=10.0)) as (gw, addr),
        ):
            client = await RawClient.connect(addr)
            slow = asyncio.ensure_future(client.request(timeout_s=5.0))
            while not leaving.seen:
                await asyncio.sleep(0.01)
            # The pod leaves (its EndpointSlice entry is gone) while the request runs.
            await gw.apply(with_endpoints(staying.address, drain_s=10.0))
            others = await RawClient.connect(addr)
            for _ in range(5):
                r = await others.request()
                assert r.status == 200 and r.body == b"staying"
            done = await slow
            assert done.status == 200 and done.body == b"slow-done"
            assert len(leaving.seen) == 1  # nothing new went there
            # Its connection was not pooled again: closed after the response.
            for _ in range(50):
                if leaving.open_connections == 0:
                    break
                await asyncio.sleep(0.02)
            assert leaving.open_connections == 0
            assert gw.pool.idle_count(leaving.address) == 0

    run(main())


def test_idle_pooled_connections_to_a_leaving_endpoint_close_at_once() -> None:
    async def main() -> None:
        async with (
            FakeUpstream(name="a") as a,
            FakeUpstream(name="b") as b,
            serve(with_endpoints(a.address, b.address)) as (gw, addr),
        ):
            client = await RawClient.connect(addr)
            for _ in range(4):
                assert (await client.request()).status == 200
            assert gw.pool.idle_count(a.address) == 1
            # a is no longer ready (terminating): it counts as gone.
            await gw.apply(with_endpoints(a.address, b.address, ready=False))
            assert gw.pool.idle_count(a.address) == 0
            for _ in range(50):
                if a.open_connections == 0:
                    break
                await asyncio.sleep(0.02)
            assert a.open_connections == 0
            served = len(a.seen)
            for _ in range(4):
                assert (await client.request()).body == b"b"
            assert len(a.seen) == served
            # Back: pooled and served again.
            await gw.apply(with_endpoints(a.address, b.address))
            bodies = {(await client.request()).body for _ in range(4)}
            assert bodies == {b"a", b"b"}
            assert a.address not in gw.pool.retired

    run(main())


def test_a_request_still_running_after_the_draining_timeout_is_cut() -> None:
    async def main() -> None:
        async with (
            FakeUpstream(Reply(body=b"too-late", delay_s=3.0), name="leaving") as leaving,
            FakeUpstream(name="staying") as staying,
            serve(with_endpoints(leaving.address, drain_s=0.3)) as (gw, addr),
        ):
            client = await RawClient.connect(addr)
            # A POST is not retried elsewhere once sent: the cut shows as a 502.
            started = time.monotonic()
            slow = asyncio.ensure_future(client.request("POST", body=b"order", timeout_s=5.0))
            while not leaving.seen:
                await asyncio.sleep(0.01)
            await gw.apply(with_endpoints(staying.address))
            r = await slow
            took = time.monotonic() - started
            assert r.status == 502
            assert 0.3 <= took < 1.5

    run(main())


def test_pool_update_bookkeeping_without_sockets() -> None:
    pool = upstream.Pool(connect_timeout_s=1.0, idle_s=30.0, max_idle=4, via=b"1.1 t")
    a, b = ("10.0.0.1", 80), ("10.0.0.2", 80)
    pool.update(with_endpoints(a, b, drain_s=5.0))
    assert pool.retired == set()  # the first table retires nothing
    pool.update(with_endpoints(b))
    # No live connection to it: nothing to drain, nothing remembered.
    assert pool.retired == set()

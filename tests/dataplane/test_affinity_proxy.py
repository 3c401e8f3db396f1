"""Session affinity through a real gateway on loopback, with several pods (upstreams):
the generated cookie, the client address and a header keep a client on one pod across
requests and connections, and move it when its pod goes."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter

from mcgw.ir import table
from mcgw.testing import tables
from mcgw.testing.client import RawClient
from mcgw.testing.gateway import serve
from mcgw.testing.runner import run
from mcgw.testing.upstream import FakeUpstream, Reply

Aff = table.AffinityType


def affine_table(
    ups: list[FakeUpstream], affinity: table.SessionAffinity, **fields: object
) -> table.RouteTable:
    b = tables.backend("pods", *(u.address for u in ups))
    b = dataclasses.replace(b, affinity=affinity, **fields)  # type: ignore[arg-type]
    return tables.route_table([tables.route("r", "pods")], [b])


async def pods(n: int) -> list[FakeUpstream]:
    return [await FakeUpstream(name=f"pod-{i}").start() for i in range(n)]


async def close_all(ups: list[FakeUpstream]) -> None:
    for u in ups:
        await u.close()


async def get(
    addr: tuple[str, int], headers: tuple[tuple[str, str], ...] = (), local: str = "127.0.0.1"
) -> tuple[str, str | None]:
    """One request on a new connection from ``local``: (pod that answered, Set-Cookie)."""
    reader, writer = await asyncio.open_connection(*addr, local_addr=(local, 0))
    client = RawClient(reader, writer)
    try:
        r = await client.request(headers=headers)
    finally:
        writer.close()
    assert r.status == 200, r
    return r.body.decode(), r.header("set-cookie")


def test_generated_cookie_keeps_a_client_on_its_pod_until_the_pod_goes() -> None:
    async def main() -> None:
        ups = await pods(3)
        try:
            cookie = table.SessionAffinity(
                type=Aff.GENERATED_COOKIE, cookie_name="GCLB", cookie_ttl_s=300
            )
            async with serve(affine_table(ups, cookie)) as (_, addr):
                first, set_cookie = await get(addr)
                assert set_cookie is not None
                name_value, *attributes = set_cookie.split("; ")
                assert name_value.startswith("GCLB=")
                assert attributes == ["Path=/", "HttpOnly", "Max-Age=300"]
                jar = (("Cookie", f"theme=dark; {name_value}"),)
                # Ten more requests, each on a new connection: the same pod, no new cookie.
                for _ in range(10):
                    assert await get(addr, jar) == (first, None)
                # Without the cookie, requests are spread as usual.
                spread = Counter([(await get(addr))[0] for _ in range(6)])
                assert set(spread) == {"pod-0", "pod-1", "pod-2"}
                # The pod goes away: the next request lands elsewhere (its connect fails
                # and is retried) with a new cookie, and the client sticks there.
                gone = next(u for u in ups if u.name == first)
                await gone.close()
                moved, new_cookie = await get(addr, jar)
                assert moved != first and new_cookie is not None
                jar = (("Cookie", new_cookie.split("; ")[0]),)
                for _ in range(5):
                    assert await get(addr, jar) == (moved, None)
        finally:
            await close_all(ups)

    run(main())


def test_client_ip_affinity_keeps_each_client_address_on_one_pod() -> None:
    async def main() -> None:
        ups = await pods(3)
        try:
            rt = affine_table(ups, table.SessionAffinity(type=Aff.CLIENT_IP))
            async with serve(rt) as (_, addr):
                seen: dict[str, set[str]] = {}
                for _ in range(4):
                    for i in range(2, 14):
                        local = f"127.0.0.{i}"
                        pod, set_cookie = await get(addr, local=local)
                        assert set_cookie is None
                        seen.setdefault(local, set()).add(pod)
            assert all(len(p) == 1 for p in seen.values()), seen
            # Twelve addresses over three pods: more than one pod is used.
            assert len({next(iter(p)) for p in seen.values()}) > 1
        finally:
            await close_all(ups)

    run(main())


def test_header_field_affinity_hashes_the_named_header() -> None:
    async def main() -> None:
        ups = await pods(4)
        try:
            rt = affine_table(
                ups,
                table.SessionAffinity(type=Aff.HEADER_FIELD, header="x-user-id"),
                locality_lb=table.LocalityLbAlgorithm.RING_HASH,
            )
            async with serve(rt) as (_, addr):
                users = [f"user-{i}" for i in range(12)]
                first = {u: (await get(addr, (("X-User-ID", u),)))[0] for u in users}
                for u in users:
                    for _ in range(3):
                        assert (await get(addr, (("x-user-id", u),)))[0] == first[u]
                assert len(set(first.values())) > 1
                # No header: round robin.
                spread = Counter([(await get(addr))[0] for _ in range(8)])
                assert spread == {f"pod-{i}": 2 for i in range(4)}
        finally:
            await close_all(ups)

    run(main())


def test_least_request_counts_requests_in_flight_and_releases_them() -> None:
    async def main() -> None:
        slow = await FakeUpstream(Reply(body=b"slow", delay_s=0.6), name="slow").start()
        fast = await FakeUpstream(name="fast").start()
        try:
            b = dataclasses.replace(
                tables.backend("pods", slow.address, fast.address),
                locality_lb=table.LocalityLbAlgorithm.LEAST_REQUEST,
            )
            rt = tables.route_table([tables.route("r", "pods")], [b])
            async with serve(rt) as (gw, addr):
                picker = gw.holder.current.balancer  # type: ignore[union-attr]
                # Send requests one after the other until one is held by the slow pod.
                held = []
                while not slow.seen and len(held) < 20:
                    held.append(asyncio.ensure_future(get(addr)))
                    await asyncio.sleep(0.05)
                assert picker.inflight == {slow.address: 1}
                # While the slow one is busy, the two random choices favour the fast one.
                bodies = [(await get(addr))[0] for _ in range(10)]
                assert bodies == ["fast"] * 10
                await asyncio.gather(*held)
                assert picker.inflight == {}
        finally:
            await slow.close()
            await fast.close()

    run(main())

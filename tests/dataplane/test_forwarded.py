"""Trusted peers, X-Forwarded-* and the per-request entry region, over real loopback sockets.

Clients connect from different loopback source addresses (127.0.0.1, .2, .3) to tell a
trusted proxy from an ordinary client and to place clients in the Fleet's networks.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

from mcgw.ir import table
from mcgw.testing import tables
from mcgw.testing.client import RawClient
from mcgw.testing.gateway import SETTINGS, serve
from mcgw.testing.runner import run
from mcgw.testing.upstream import FakeUpstream

BASE = replace(SETTINGS, debug_headers=True)
PROXY = "127.0.0.2"
"""Source address of the trusted proxy in these tests."""
EAST_CLIENT = "127.0.0.3"
"""A client the table's client networks place in us-east1."""
HEADER = "x-mcgw-entry-region"

SPOOFED = (
    ("X-Forwarded-For", "10.0.0.1"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "store.example.com"),
)


async def client(address: tuple[str, int], source: str = "127.0.0.1") -> RawClient:
    reader, writer = await asyncio.open_connection(*address, local_addr=(source, 0))
    return RawClient(reader, writer)


def one_backend(address: tuple[str, int]) -> table.RouteTable:
    return tables.route_table([tables.route("r", "b")], [tables.backend("b", address)])


def test_untrusted_peer_forwarded_headers_are_replaced() -> None:
    async def main() -> None:
        async with (
            FakeUpstream() as up,
            serve(one_backend(up.address), settings=BASE) as (_, addr),
        ):
            c = await client(addr)
            assert (await c.request(headers=SPOOFED)).status == 200
            await c.close()
            seen = up.seen[0]
            assert seen.header_values("x-forwarded-for") == ["127.0.0.1"]
            assert seen.header_values("x-forwarded-proto") == ["http"]
            assert seen.header_values("x-forwarded-host") == ["example.com"]

    run(main())


def test_trusted_peer_forwarded_headers_are_appended_to() -> None:
    async def main() -> None:
        settings = replace(BASE, trusted_peers=(f"{PROXY}/32",))
        async with (
            FakeUpstream() as up,
            serve(one_backend(up.address), settings=settings) as (_, addr),
        ):
            proxy = await client(addr, PROXY)
            assert (await proxy.request(headers=SPOOFED)).status == 200
            assert (await proxy.request()).status == 200
            await proxy.close()
            other = await client(addr)  # Not in the trusted network.
            assert (await other.request(headers=SPOOFED)).status == 200
            await other.close()
            kept, filled, replaced = up.seen
            assert kept.header_values("x-forwarded-for") == [f"10.0.0.1, {PROXY}"]
            assert kept.header_values("x-forwarded-proto") == ["https"]
            assert kept.header_values("x-forwarded-host") == ["store.example.com"]
            assert filled.header_values("x-forwarded-for") == [PROXY]
            assert filled.header_values("x-forwarded-proto") == ["http"]
            assert filled.header_values("x-forwarded-host") == ["example.com"]
            assert replaced.header_values("x-forwarded-for") == ["127.0.0.1"]
            assert replaced.header_values("x-forwarded-proto") == ["http"]
            assert replaced.header_values("x-forwarded-host") == ["example.com"]

    run(main())


def two_regions(west: tuple[str, int], east: tuple[str, int]) -> table.RouteTable:
    """Backend ``b`` in us-west1 and us-east1; the gateway in Tokyo (west closer);
    clients of 127.0.0.3 enter in us-east1."""
    groups = tuple(
        table.BackendGroup(
            cluster=f"gke-{side}-1",
            region=f"us-{side}1",
            zone=f"us-{side}1-a",
            endpoints=(table.Endpoint(address=a, port=p, pod=f"{side}-0"),),
        )
        for side, (a, p) in (("east", east), ("west", west))
    )
    base = tables.route_table([tables.route("r", "b")], [])
    backend = table.Backend(
        name="b", kind="Service", namespace="default", service="b", port=80, groups=groups
    )
    locality = table.Locality(
        entry_region="asia-northeast1",
        region_rtt_ms=(("us-west1", 111.4), ("us-east1", 159.4)),
        other_entries=(
            table.EntryRanking("us-east1", (("us-east1", 1.0), ("us-west1", 53.5))),
            table.EntryRanking("us-west1", (("us-west1", 1.0), ("us-east1", 53.5))),
        ),
        client_regions=(table.ClientRegion(f"{EAST_CLIENT}/32", "us-east1"),),
    )
    return replace(base, backends=(backend,), locality=locality)


def test_entry_region_from_client_network_and_trusted_header(tmp_path: Path) -> None:
    async def main() -> None:
        settings = replace(
            BASE,
            trusted_peers=(f"{PROXY}/32",),
            entry_region_header=HEADER,
            access_log_dir=tmp_path,
        )
        async with (
            FakeUpstream(name="west") as west,
            FakeUpstream(name="east") as east,
            serve(two_regions(west.address, east.address), settings=settings) as (gw, addr),
        ):
            plain = await client(addr)
            r = await plain.request(headers=((HEADER, "us-east1"),))  # untrusted: ignored
            assert r.body == b"west"
            assert r.header("x-mcgw-entry-region") == "asia-northeast1 (gateway)"
            assert r.header("x-mcgw-ranking") == "us-west1:111.4,us-east1:159.4"
            await plain.close()

            near_east = await client(addr, EAST_CLIENT)
            for _ in range(3):  # per connection, every request
                r = await near_east.request()
                assert (r.body, r.header("x-mcgw-reason")) == (b"east", "closest")
                assert r.header("x-mcgw-entry-region") == "us-east1 (client)"
                assert r.header("x-mcgw-ranking") == "us-east1:1,us-west1:53.5"
            await near_east.close()

            proxy = await client(addr, PROXY)
            r = await proxy.request(headers=((HEADER, "us-east1"),))
            assert r.body == b"east"
            assert r.header("x-mcgw-entry-region") == "us-east1 (header)"
            r = await proxy.request(headers=((HEADER, "us-west1"),))
            assert r.body == b"west"
            # A region without a ranking is not trusted blindly: the client network or
            # the gateway's location decides.
            r = await proxy.request(headers=((HEADER, "mars-north1"),))
            assert r.header("x-mcgw-entry-region") == "asia-northeast1 (gateway)"
            # No header: the client the proxy names in X-Forwarded-For is in us-east1.
            r = await proxy.request(headers=(("X-Forwarded-For", EAST_CLIENT),))
            assert (r.body, r.header("x-mcgw-entry-region")) == (b"east", "us-east1 (client)")
            await proxy.close()
            await gw.access_log.flush()

    run(main())
    lines = [
        json.loads(x) for f in sorted(tmp_path.glob("*.jsonl")) for x in f.read_text().splitlines()
    ]
    payloads = [line["jsonPayload"] for line in lines]
    assert [(p["entryRegion"], p["entrySource"], p["cluster"]) for p in payloads] == [
        ("asia-northeast1", "gateway", "gke-west-1"),
        *[("us-east1", "client", "gke-east-1")] * 3,
        ("us-east1", "header", "gke-east-1"),
        ("us-west1", "header", "gke-west-1"),
        ("asia-northeast1", "gateway", "gke-west-1"),
        ("us-east1", "client", "gke-east-1"),
    ]
    assert payloads[1]["ranking"] == "us-east1:1,us-west1:53.5"

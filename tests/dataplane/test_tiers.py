"""Priority tiers (mcgw's, beyond GKE): weights inside a tier, fail-over across tiers.
Socket-free against the balancer, and through a real gateway (the annotations that set
them: tests/translate/test_tiers_translate.py)."""

from __future__ import annotations

import dataclasses
from collections import Counter

from mcgw.dataplane import balancer
from mcgw.ir import table
from mcgw.testing import tables
from mcgw.testing.client import RawClient
from mcgw.testing.gateway import serve
from mcgw.testing.runner import run
from mcgw.testing.tables import FakeHealth
from mcgw.testing.upstream import FakeUpstream


def ep(address: str) -> table.Endpoint:
    return table.Endpoint(address=address, port=8080, pod=f"pod-{address}")


def key(address: str) -> tuple[str, int]:
    return (address, 8080)


def tiered(*tiers: table.ClusterTier, **fields: object) -> table.Backend:
    # Regions would rank "near" first: tiers must override that.
    groups = (
        table.BackendGroup("a", "near", "near-a", (ep("10.0.1.1"), ep("10.0.1.2"))),
        table.BackendGroup("b", "far", "far-a", (ep("10.0.2.1"),)),
        table.BackendGroup("c", "far", "far-b", (ep("10.0.3.1"),)),
    )
    b = table.Backend(
        name="svc",
        kind="ServiceImport",
        namespace="ns",
        service="svc",
        port=8080,
        groups=groups,
        tiers=tiers,
    )
    return dataclasses.replace(b, **fields)  # type: ignore[arg-type]


def make(b: table.Backend, view: FakeHealth | None = None) -> balancer.Balancer:
    locality = table.Locality(entry_region="near", region_rtt_ms=(("near", 1.0), ("far", 90.0)))
    rt = table.RouteTable(listeners=(), backends=(b,), locality=locality)
    return balancer.Balancer(rt, view or FakeHealth())


def clusters(b: balancer.Balancer, n: int, affinity: bytes | None = None) -> Counter[str]:
    got: Counter[str] = Counter()
    for _ in range(n):
        pick = b.pick("svc", affinity=affinity)
        assert pick is not None
        got[pick.group.cluster] += 1
    return got


TIERS = (
    table.ClusterTier("a", tier=1),
    table.ClusterTier("b", tier=0, weight=3),
    table.ClusterTier("c", tier=0, weight=1),
)


def test_weights_inside_the_first_tier_whatever_the_regions_say() -> None:
    b = make(tiered(*TIERS))
    got = clusters(b, 400)
    assert got == {"b": 300, "c": 100}
    # Smooth: never three in a row of the light one, and exact over every 4 picks.
    window = [p.group.cluster for p in (b.pick("svc") for _ in range(8)) if p is not None]
    assert Counter(window[:4]) == {"b": 3, "c": 1}
    pick = b.pick("svc")
    assert pick is not None and pick.reason == "closest"


def test_a_cluster_without_usable_endpoint_leaves_its_share_to_its_tier() -> None:
    view = FakeHealth(key("10.0.2.1"))
    got = clusters(make(tiered(*TIERS), view), 100)
    assert got == {"c": 100}


def test_fail_over_to_the_next_tier_only_when_the_tier_has_nothing_usable() -> None:
    view = FakeHealth(key("10.0.2.1"), key("10.0.3.1"))
    b = make(tiered(*TIERS), view)
    picks = [b.pick("svc") for _ in range(20)]
    assert {(p.group.cluster, p.reason) for p in picks if p is not None} == {("a", "failover")}
    assert Counter(p.endpoint.address for p in picks if p is not None) == {
        "10.0.1.1": 10,
        "10.0.1.2": 10,
    }
    view.down.discard(key("10.0.3.1"))
    assert clusters(b, 10) == {"c": 10}
    # Retries move on, across tiers too.
    retry = b.pick("svc", frozenset({key("10.0.3.1")}))
    assert retry is not None and retry.group.cluster == "a" and retry.reason == "retry"


def test_default_weight_is_the_clusters_ready_endpoints() -> None:
    b = make(tiered(table.ClusterTier("a"), table.ClusterTier("b"), table.ClusterTier("c")))
    assert clusters(b, 400) == {"a": 200, "b": 100, "c": 100}


def test_affinity_keys_stick_to_a_cluster_in_proportion_to_weights() -> None:
    affinity = table.SessionAffinity(type=table.AffinityType.HEADER_FIELD, header="x-user")
    view = FakeHealth()
    b = make(tiered(*TIERS, affinity=affinity), view)
    users = [f"u{i}".encode() for i in range(400)]
    home = {}
    for u in users:
        pick = b.pick("svc", affinity=u)
        assert pick is not None
        home[u] = pick.group.cluster
        again = b.pick("svc", affinity=u)
        assert again is not None and again.key == pick.key
    share = Counter(home.values())
    assert set(share) == {"b", "c"} and 240 < share["b"] < 360
    # c goes: only its users move (to b, the rest of their tier).
    view.down.add(key("10.0.3.1"))
    for u in users:
        pick = b.pick("svc", affinity=u)
        assert pick is not None and pick.group.cluster == "b"


def test_a_cookie_session_comes_back_with_its_tier() -> None:
    cookie = table.SessionAffinity(type=table.AffinityType.GENERATED_COOKIE, cookie_name="GCLB")
    view = FakeHealth(key("10.0.2.1"), key("10.0.3.1"))
    b = make(tiered(*TIERS, affinity=cookie), view)
    token = balancer.cookie_token(key("10.0.1.1"))
    assert clusters(b, 5, token) == {"a": 5}  # failed over, and stuck while it lasts
    view.down.clear()
    assert set(clusters(b, 8, token)) == {"b", "c"}  # tier 0 is back: so is the session


def test_tiers_through_the_gateway_fail_over_and_back() -> None:
    async def main() -> None:
        async with (
            FakeUpstream(name="primary-1") as p1,
            FakeUpstream(name="primary-2") as p2,
            FakeUpstream(name="standby") as standby,
        ):

            def table_with(*primaries: FakeUpstream) -> table.RouteTable:
                groups = [
                    table.BackendGroup(
                        f"p{i}", "r1", "r1-a", (table.Endpoint(*u.address, pod=u.name),)
                    )
                    for i, u in enumerate(primaries)
                ]
                groups.append(
                    table.BackendGroup(
                        "s", "r1", "r1-b", (table.Endpoint(*standby.address, pod="standby"),)
                    )
                )
                b = dataclasses.replace(
                    tables.backend("pods"),
                    groups=tuple(groups),
                    tiers=(
                        table.ClusterTier("p0", tier=0, weight=3),
                        table.ClusterTier("p1", tier=0, weight=1),
                        table.ClusterTier("s", tier=1),
                    ),
                )
                return tables.route_table([tables.route("r", "pods")], [b])

            async with serve(table_with(p1, p2)) as (gw, addr):
                client = await RawClient.connect(addr)
                bodies = Counter([(await client.request()).body for _ in range(40)])
                assert bodies == {b"primary-1": 30, b"primary-2": 10}
                # Both primaries lost: the standby tier serves, no request fails.
                await p1.close()
                await p2.close()
                bodies = Counter([(await client.request()).body for _ in range(10)])
                assert bodies == {b"standby": 10}
                await gw.apply(table_with())  # the primaries' cluster is gone for good
                bodies = Counter([(await client.request()).body for _ in range(5)])
                assert bodies == {b"standby": 5}

    run(main())

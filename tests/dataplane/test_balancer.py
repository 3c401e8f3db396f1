"""Balancer arithmetic, socket-free: locality ranking, fail-over, round robin, weights."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from mcgw.dataplane import balancer, health
from mcgw.ir import table
from mcgw.testing.tables import FakeHealth

WEST, EAST, EUROPE = "us-west1", "us-east1", "europe-west1"
LOCALITY = table.Locality(
    entry_region=WEST, region_rtt_ms=((WEST, 1.0), (EAST, 62.0), (EUROPE, 140.0))
)


def ep(address: str, port: int = 8080, *, ready: bool = True) -> table.Endpoint:
    return table.Endpoint(address=address, port=port, pod=f"pod-{address}", ready=ready)


def group(cluster: str, region: str, zone: str, *endpoints: table.Endpoint) -> table.BackendGroup:
    return table.BackendGroup(cluster=cluster, region=region, zone=zone, endpoints=endpoints)


def backend(name: str, *groups: table.BackendGroup) -> table.Backend:
    return table.Backend(
        name=name,
        kind="ServiceImport",
        namespace="store",
        service="store",
        port=8080,
        groups=groups,
    )


def route(name: str, *weighted: tuple[str | None, int]) -> table.Route:
    return table.Route(
        name=name,
        match=table.Match(),
        backends=tuple(table.WeightedBackend(backend=b, weight=w) for b, w in weighted),
    )


def make(
    *backends: table.Backend,
    routes: tuple[table.Route, ...] = (),
    health_view: balancer.HealthView | None = None,
) -> balancer.Balancer:
    listener = table.Listener(
        name="store/gw/80",
        address="127.0.0.1",
        port=80,
        virtual_hosts=(table.VirtualHost(hostname="*", routes=routes),),
    )
    rt = table.RouteTable(listeners=(listener,), backends=backends, locality=LOCALITY)
    view = health_view if health_view is not None else FakeHealth()
    return balancer.Balancer(rt, view)


def two_regions() -> table.Backend:
    return backend(
        "svc",
        group("gke-east-1", EAST, "us-east1-b", ep("10.2.0.1"), ep("10.2.0.2")),
        group("gke-west-1", WEST, "us-west1-a", ep("10.1.0.1"), ep("10.1.0.2")),
        group("gke-west-2", WEST, "us-west1-b", ep("10.1.1.1"), ep("10.1.1.2")),
    )


def picks(b: balancer.Balancer, n: int, name: str = "svc") -> list[balancer.Pick]:
    out = []
    for _ in range(n):
        got = b.pick(name)
        assert got is not None
        out.append(got)
    return out


# -- ranking -------------------------------------------------------------------


def test_regions_ranked_by_rtt_then_unknown_by_name() -> None:
    b = make(
        backend(
            "svc",
            group("c1", "zz-unknown1", "zz-a", ep("10.9.0.1")),
            group("c2", EAST, "us-east1-b", ep("10.2.0.1")),
            group("c3", "aa-unknown1", "aa-a", ep("10.8.0.1")),
            group("c4", WEST, "us-west1-a", ep("10.1.0.1")),
        )
    )
    assert b.regions("svc") == (WEST, EAST, "aa-unknown1", "zz-unknown1")


def test_region_order_without_locality_is_by_name() -> None:
    assert balancer.region_order(table.Locality(), {EAST, WEST, EUROPE}) == [EUROPE, EAST, WEST]


def test_group_without_endpoints_does_not_make_a_region() -> None:
    b = make(backend("svc", group("w", WEST, "us-west1-a"), group("e", EAST, "e", ep("10.2.0.1"))))
    assert b.regions("svc") == (EAST,)
    got = b.pick("svc")
    assert got is not None and got.reason == "closest" and got.group.region == EAST


# -- closest region, fail-over -------------------------------------------------


def test_closest_region_serves_everything() -> None:
    b = make(two_regions())
    got = picks(b, 1000)
    assert {p.group.region for p in got} == {WEST}
    assert {p.reason for p in got} == {"closest"}


def test_failover_to_next_region_when_closest_all_unhealthy() -> None:
    view = FakeHealth(
        ("10.1.0.1", 8080), ("10.1.0.2", 8080), ("10.1.1.1", 8080), ("10.1.1.2", 8080)
    )
    b = make(two_regions(), health_view=view)
    got = picks(b, 100)
    assert {p.group.cluster for p in got} == {"gke-east-1"}
    assert {p.reason for p in got} == {"failover"}
    # One healthy endpoint in the closest region takes everything back.
    view.down.discard(("10.1.1.2", 8080))
    got = picks(b, 100)
    assert {(p.endpoint.address, p.reason) for p in got} == {("10.1.1.2", "closest")}


def test_closest_region_with_only_unready_endpoints_is_a_failover() -> None:
    b = make(
        backend(
            "svc",
            group("w", WEST, "us-west1-a", ep("10.1.0.1", ready=False)),
            group("e", EAST, "us-east1-b", ep("10.2.0.1")),
        )
    )
    got = picks(b, 10)
    assert {(p.endpoint.address, p.reason) for p in got} == {("10.2.0.1", "failover")}


def test_unready_endpoints_never_picked() -> None:
    b = make(backend("svc", group("w", WEST, "a", ep("10.1.0.1", ready=False), ep("10.1.0.2"))))
    assert {p.endpoint.address for p in picks(b, 50)} == {"10.1.0.2"}


def test_none_when_nothing_healthy_or_unknown_backend() -> None:
    everyone = [("10.1.0.1", 8080), ("10.1.0.2", 8080), ("10.1.1.1", 8080), ("10.1.1.2", 8080)]
    view = FakeHealth(*everyone, ("10.2.0.1", 8080), ("10.2.0.2", 8080))
    b = make(two_regions(), health_view=view)
    assert b.pick("svc") is None
    assert b.pick("no-such-backend") is None
    assert make(backend("empty")).pick("empty") is None


def test_works_with_the_real_health_map() -> None:
    now = [0.0]
    hmap = health.HealthMap(ejection_s=10.0, clock=lambda: now[0])
    b = make(
        backend(
            "svc", group("w", WEST, "a", ep("10.1.0.1")), group("e", EAST, "b", ep("10.2.0.1"))
        ),
        health_view=hmap,
    )
    hmap.report_failure("10.1.0.1", 8080)
    got = b.pick("svc")
    assert got is not None and (got.endpoint.address, got.reason) == ("10.2.0.1", "failover")
    now[0] = 10.0
    got = b.pick("svc")
    assert got is not None and (got.endpoint.address, got.reason) == ("10.1.0.1", "closest")


# -- round robin inside a region -----------------------------------------------


def test_round_robin_even_across_zones_and_endpoints() -> None:
    b = make(two_regions())
    got = picks(b, 4000)
    by_endpoint = Counter(p.endpoint.address for p in got)
    assert by_endpoint == {"10.1.0.1": 1000, "10.1.0.2": 1000, "10.1.1.1": 1000, "10.1.1.2": 1000}
    # Zones alternate request by request, not in runs.
    zones = [p.group.zone for p in got[:8]]
    assert all(a != b for a, b in itertools.pairwise(zones))


def test_zone_share_in_proportion_to_endpoints() -> None:
    b = make(
        backend(
            "svc",
            group("w1", WEST, "us-west1-a", ep("10.1.0.1"), ep("10.1.0.2"), ep("10.1.0.3")),
            group("w2", WEST, "us-west1-b", ep("10.1.1.1")),
        )
    )
    got = picks(b, 400)
    assert Counter(p.group.zone for p in got) == {"us-west1-a": 300, "us-west1-b": 100}
    # The single-endpoint zone is spread out, not bunched: one in every window of 4.
    for start in range(0, 400, 4):
        window = [p.group.zone for p in got[start : start + 4]]
        assert window.count("us-west1-b") == 1


def test_unhealthy_endpoint_share_spread_evenly_over_the_rest() -> None:
    view = FakeHealth(("10.1.0.1", 8080))
    b = make(two_regions(), health_view=view)
    got = picks(b, 3000)
    assert Counter(p.endpoint.address for p in got) == {
        "10.1.0.2": 1000,
        "10.1.1.1": 1000,
        "10.1.1.2": 1000,
    }


def test_same_address_different_ports_are_distinct_endpoints() -> None:
    b = make(backend("svc", group("w", WEST, "a", ep("10.1.0.1", 8080), ep("10.1.0.1", 8081))))
    got = picks(b, 10)
    assert Counter(p.endpoint.port for p in got) == {8080: 5, 8081: 5}
    again = b.pick("svc", exclude=frozenset({("10.1.0.1", 8080)}))
    assert again is not None and again.endpoint.port == 8081


# -- retries ---------------------------------------------------------------------


def test_exclude_skips_endpoints_and_says_retry() -> None:
    b = make(two_regions())
    first = b.pick("svc")
    assert first is not None and first.reason == "closest"
    tried = frozenset({(first.endpoint.address, first.endpoint.port)})
    for _ in range(20):
        again = b.pick("svc", exclude=tried)
        assert again is not None
        assert (again.endpoint.address, again.endpoint.port) not in tried
        assert again.reason == "retry"
        assert again.group.region == WEST


def test_exclude_whole_region_falls_over_with_reason_retry() -> None:
    b = make(two_regions())
    west = frozenset(
        {("10.1.0.1", 8080), ("10.1.0.2", 8080), ("10.1.1.1", 8080), ("10.1.1.2", 8080)}
    )
    got = b.pick("svc", exclude=west)
    assert got is not None and got.group.region == EAST and got.reason == "retry"
    everything = west | {("10.2.0.1", 8080), ("10.2.0.2", 8080)}
    assert b.pick("svc", exclude=everything) is None


def test_excluded_endpoints_are_not_asked_about_health() -> None:
    view = FakeHealth(("10.1.0.1", 8080), ("10.1.0.2", 8080))
    b = make(
        backend("svc", group("w", WEST, "a", ep("10.1.0.1"), ep("10.1.0.2"))), health_view=view
    )
    assert b.pick("svc", exclude=frozenset({("10.1.0.1", 8080)})) is None
    assert view.asked == 1


def test_endpoints_not_down_are_not_asked_about_health() -> None:
    view = FakeHealth(("10.1.0.2", 8080))
    b = make(
        backend("svc", group("w", WEST, "a", ep("10.1.0.1"), ep("10.1.0.2"), ep("10.1.0.3"))),
        health_view=view,
    )
    got = picks(b, 4)
    assert [p.endpoint.address for p in got] == ["10.1.0.1", "10.1.0.3"] * 2
    # Only the endpoint in ``down`` is asked, each time its turn comes.
    assert view.asked == 2


def test_pick_carries_key_and_address_of_its_endpoint() -> None:
    b = make(backend("svc", group("w", WEST, "a", ep("10.1.0.1", 9000))))
    got = b.pick("svc")
    assert got is not None
    assert got.key == ("10.1.0.1", 9000) and got.address == "10.1.0.1:9000"
    # Picks are built once per table version: the same answer is the same object.
    assert b.pick("svc") is got


# -- weighted backendRefs ------------------------------------------------------


@pytest.mark.parametrize(
    "weights",
    [(80, 20), (50, 30, 20), (1, 1), (999, 1), (3, 7, 0)],
    ids=lambda w: "-".join(map(str, w)),
)
def test_weights_converge(weights: tuple[int, ...]) -> None:
    names = [f"b{i}" for i in range(len(weights))]
    r = route("ns/r/rule/0/match/0", *zip(names, weights, strict=True))
    b = make(routes=(r,))
    n = 10_000
    counts: Counter[str | None] = Counter()
    for _ in range(n):
        chosen = b.choose(r)
        assert chosen is not None
        counts[chosen.backend] += 1
    total = sum(weights)
    for name, weight in zip(names, weights, strict=True):
        assert abs(counts[name] / n - weight / total) <= 0.02, (name, counts)


def test_weight_zero_never_chosen_and_none_when_all_zero() -> None:
    r = route("ns/r/rule/0/match/0", ("a", 0), ("b", 5), ("c", 0))
    b = make(routes=(r,))
    assert {b.choose(r).backend for _ in range(100)} == {"b"}  # type: ignore[union-attr]
    assert b.choose(route("ns/zero/rule/0/match/0", ("a", 0), ("b", 0))) is None
    assert b.choose(route("ns/empty/rule/0/match/0")) is None


def test_unresolved_backend_ref_keeps_its_share() -> None:
    r = route("ns/r/rule/0/match/0", (None, 1), ("b", 1))
    b = make(routes=(r,))
    got = Counter(b.choose(r).backend for _ in range(100))  # type: ignore[union-attr]
    assert got == {None: 50, "b": 50}


def test_smooth_weights_do_not_bunch() -> None:
    r = route("ns/r/rule/0/match/0", ("a", 5), ("b", 1), ("c", 1))
    b = make(routes=(r,))
    seq = [b.choose(r).backend for _ in range(7)]  # type: ignore[union-attr]
    assert Counter(seq) == {"a": 5, "b": 1, "c": 1}
    assert seq[0] == "a" and "bc" not in "".join(str(s) for s in seq)


def test_choose_state_is_per_route() -> None:
    r1 = route("ns/r1/rule/0/match/0", ("a", 1), ("b", 1))
    r2 = route("ns/r2/rule/0/match/0", ("a", 1), ("b", 1))
    b = make(routes=(r1, r2))
    assert [b.choose(r1).backend for _ in range(2)] == ["a", "b"]  # type: ignore[union-attr]
    assert [b.choose(r2).backend for _ in range(2)] == ["a", "b"]  # type: ignore[union-attr]

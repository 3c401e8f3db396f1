"""Endpoint selection inside a region, socket-free: session affinity, the locality
algorithms (RANDOM, LEAST_REQUEST, RING_HASH, MAGLEV) and autoCapacityDrain."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import pytest

from mcgw.dataplane import balancer
from mcgw.ir import table
from mcgw.testing.tables import Clock, FakeHealth

WEST, EAST = "us-west1", "us-east1"
LOCALITY = table.Locality(entry_region=WEST, region_rtt_ms=((WEST, 1.0), (EAST, 60.0)))
Algo = table.LocalityLbAlgorithm
Aff = table.AffinityType
NO_AFFINITY = table.SessionAffinity()


def ep(address: str) -> table.Endpoint:
    return table.Endpoint(address=address, port=8080, pod=f"pod-{address}")


def key(address: str) -> tuple[str, int]:
    return (address, 8080)


def store(
    *groups: table.BackendGroup,
    affinity: table.SessionAffinity = NO_AFFINITY,
    locality_lb: table.LocalityLbAlgorithm = Algo.ROUND_ROBIN,
    **fields: object,
) -> table.Backend:
    if not groups:
        groups = (
            table.BackendGroup("w1", WEST, "us-west1-a", tuple(ep(f"10.1.0.{i}") for i in (1, 2))),
            table.BackendGroup("w2", WEST, "us-west1-b", tuple(ep(f"10.1.1.{i}") for i in (1, 2))),
            table.BackendGroup("e1", EAST, "us-east1-b", tuple(ep(f"10.2.0.{i}") for i in (1, 2))),
        )
    b = table.Backend(
        name="svc",
        kind="ServiceImport",
        namespace="store",
        service="store",
        port=8080,
        groups=groups,
        affinity=affinity,
        locality_lb=locality_lb,
    )
    return dataclasses.replace(b, **fields)  # type: ignore[arg-type]


def make(
    b: table.Backend, view: FakeHealth | None = None, clock: Clock | None = None
) -> balancer.Balancer:
    rt = table.RouteTable(listeners=(), backends=(b,), locality=LOCALITY)
    return balancer.Balancer(rt, view or FakeHealth(), clock or Clock())


def address(b: balancer.Balancer, affinity: bytes | None = None, **kw: object) -> str:
    got = b.pick("svc", affinity=affinity, **kw)  # type: ignore[arg-type]
    assert got is not None
    return got.endpoint.address


COOKIE = table.SessionAffinity(type=Aff.GENERATED_COOKIE, cookie_name="GCLB", cookie_ttl_s=60)
CLIENT_IP = table.SessionAffinity(type=Aff.CLIENT_IP)


# -- generated cookie ------------------------------------------------------------------


def test_cookie_names_an_endpoint_and_keeps_it_while_usable() -> None:
    view = FakeHealth()
    b = make(store(affinity=COOKIE), view)
    assert set(b.affine) == {"svc"}
    first = b.pick("svc", affinity=b"")
    assert first is not None
    line = b.cookie("svc", first, b"")
    token = balancer.cookie_token(first.key)
    assert line == b"Set-Cookie: GCLB=" + token + b"; Path=/; HttpOnly; Max-Age=60\r\n"
    assert b"10.1" not in token  # opaque: no address in it
    # Requests carrying it go there, every time, and get no new cookie.
    for _ in range(20):
        again = b.pick("svc", affinity=token)
        assert again is not None and again.key == first.key
        assert b.cookie("svc", again, token) == b""
    # Ejected: picked as usual (round robin goes on), and a new cookie names the new one.
    view.down.add(first.key)
    moved = b.pick("svc", affinity=token)
    assert moved is not None and moved.key != first.key
    new_token = balancer.cookie_token(moved.key)
    assert b.cookie("svc", moved, token) == (
        b"Set-Cookie: GCLB=" + new_token + b"; Path=/; HttpOnly; Max-Age=60\r\n"
    )
    # The client now sends the new cookie and sticks to the new endpoint, even after
    # the old one is back.
    view.down.clear()
    assert {address(b, new_token) for _ in range(10)} == {moved.endpoint.address}


def test_unknown_cookie_and_no_cookie_are_spread_as_usual() -> None:
    b = make(store(affinity=COOKIE))
    got = Counter(address(b, b"not-a-token") for _ in range(40))
    assert got == {a: 10 for a in ("10.1.0.1", "10.1.0.2", "10.1.1.1", "10.1.1.2")}


def test_cookie_of_a_session_cookie_has_no_max_age() -> None:
    b = make(store(affinity=dataclasses.replace(COOKIE, cookie_ttl_s=0)))
    pick = b.pick("svc", affinity=b"")
    assert pick is not None
    assert b.cookie("svc", pick, None).endswith(b"; Path=/; HttpOnly\r\n")


def test_cookie_sticks_across_regions_over_capacity_but_not_to_a_failed_over_region() -> None:
    clock = Clock()
    view = FakeHealth()
    # Capacity 2 RPS per endpoint: the closest region (4 endpoints) fills at 8 RPS.
    b = make(store(affinity=COOKIE, max_rate_per_endpoint=2.0), view, clock)
    east = b.pick("svc", affinity=balancer.cookie_token(key("10.2.0.1")))
    assert east is not None and east.endpoint.address == "10.2.0.1"
    assert east.reason == "failover"  # the closest region had room: not spillover
    # A session in us-east1 stays there however busy it gets.
    for _ in range(30):
        clock.now += 0.01
        assert address(b, balancer.cookie_token(key("10.2.0.1"))) == "10.2.0.1"
    assert b.rates("svc")[EAST] > 20  # and it counts
    # us-east1 falls under the failover threshold: not sticky there any more.
    b2 = make(
        store(affinity=COOKIE, failover_health_threshold=70), FakeHealth(key("10.2.0.2")), clock
    )
    clock.now += 1.0
    assert address(b2, balancer.cookie_token(key("10.2.0.1"))).startswith("10.1.")


# -- hashed keys: client address, header -----------------------------------------------


@pytest.mark.parametrize("algorithm", [Algo.ROUND_ROBIN, Algo.MAGLEV, Algo.RING_HASH])
def test_hashed_key_is_sticky_and_moves_only_when_its_endpoint_goes(
    algorithm: table.LocalityLbAlgorithm,
) -> None:
    view = FakeHealth()
    b = make(store(affinity=CLIENT_IP, locality_lb=algorithm), view)
    clients = [f"192.0.2.{i}".encode() for i in range(200)]
    before = {c: address(b, c) for c in clients}
    assert before == {c: address(b, c) for c in clients}  # sticky
    assert set(before.values()) == {"10.1.0.1", "10.1.0.2", "10.1.1.1", "10.1.1.2"}
    assert min(Counter(before.values()).values()) >= 25  # spread, roughly evenly
    view.down.add(key("10.1.0.1"))
    during = {c: address(b, c) for c in clients}
    assert during == {c: address(b, c) for c in clients}  # re-stuck, deterministically
    for c in clients:
        if before[c] != "10.1.0.1":
            assert during[c] == before[c]  # only the lost endpoint's clients moved
        else:
            assert during[c] != "10.1.0.1"
    view.down.clear()
    assert {c: address(b, c) for c in clients} == before  # and they come back


def test_hashed_key_retry_goes_elsewhere_and_fails_over_between_regions() -> None:
    view = FakeHealth()
    b = make(store(affinity=CLIENT_IP, locality_lb=Algo.MAGLEV), view)
    home = b.pick("svc", affinity=b"198.51.100.7")
    assert home is not None
    retry = b.pick("svc", frozenset({home.key}), affinity=b"198.51.100.7")
    assert retry is not None and retry.key != home.key and retry.reason == "retry"
    view.down |= {key(a) for a in ("10.1.0.1", "10.1.0.2", "10.1.1.1", "10.1.1.2")}
    away = b.pick("svc", affinity=b"198.51.100.7")
    assert away is not None and away.group.region == EAST and away.reason == "failover"


def test_the_same_key_goes_to_the_same_endpoint_in_another_balancer() -> None:
    # Another worker process, or the next table version: the hash is not salted.
    one = make(store(affinity=CLIENT_IP))
    two = make(store(affinity=CLIENT_IP))
    keys = [f"k{i}".encode() for i in range(50)]
    assert [address(one, k) for k in keys] == [address(two, k) for k in keys]


def test_ring_hash_moves_few_keys_when_an_endpoint_is_added() -> None:
    four = store(locality_lb=Algo.RING_HASH, affinity=CLIENT_IP)
    group = table.BackendGroup("w1", WEST, "a", tuple(ep(f"10.1.0.{i}") for i in range(1, 5)))
    five_group = dataclasses.replace(group, endpoints=(*group.endpoints, ep("10.1.0.5")))
    b4 = make(dataclasses.replace(four, groups=(group,)))
    b5 = make(dataclasses.replace(four, groups=(five_group,)))
    keys = [f"user-{i}".encode() for i in range(1000)]
    moved = sum(address(b4, k) != address(b5, k) for k in keys)
    assert 100 < moved < 320  # about 1/5 move (all of them to the new endpoint)
    assert all(address(b5, k) == "10.1.0.5" for k in keys if address(b4, k) != address(b5, k))


def test_requests_without_a_key_take_turns() -> None:
    b = make(store(affinity=CLIENT_IP, locality_lb=Algo.RING_HASH))
    got = Counter(address(b, b"") for _ in range(40))
    assert got == {a: 10 for a in ("10.1.0.1", "10.1.0.2", "10.1.1.1", "10.1.1.2")}


def test_hashed_key_with_the_waterfall_hashes_inside_the_region_it_chooses() -> None:
    clock = Clock()
    # 1 RPS per endpoint: 4 RPS in us-west1, then us-east1.
    b = make(store(affinity=CLIENT_IP, max_rate_per_endpoint=1.0), FakeHealth(), clock)
    seen: dict[str, set[str]] = {}
    for i in range(200):
        clock.now += 0.05  # 20 RPS offered
        client = f"c{i % 10}"
        seen.setdefault(client, set()).add(address(b, client.encode()))
    # Over capacity some requests of a client spill to us-east1 (GCP: fullness breaks
    # affinity), but inside each region a client always meets the same endpoint.
    for endpoints in seen.values():
        assert len({a for a in endpoints if a.startswith("10.1.")}) <= 1
        assert len({a for a in endpoints if a.startswith("10.2.")}) <= 1
    assert any(any(a.startswith("10.2.") for a in e) for e in seen.values())


# -- random, least request ---------------------------------------------------------------


def test_random_spreads_and_skips_unhealthy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(balancer, "_random", random.Random(7).random)
    view = FakeHealth(key("10.1.1.2"))
    b = make(store(locality_lb=Algo.RANDOM), view)
    got = Counter(address(b) for _ in range(3000))
    assert set(got) == {"10.1.0.1", "10.1.0.2", "10.1.1.1"}
    assert all(800 < n < 1200 for n in got.values()), got


def test_least_request_prefers_endpoints_with_fewer_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(balancer, "_random", random.Random(3).random)
    b = make(store(locality_lb=Algo.LEAST_REQUEST))
    assert b.counted == frozenset({"svc"})
    slow = key("10.1.0.1")
    for _ in range(5):
        b.acquire(slow)  # five slow requests stuck there
    got = Counter(address(b) for _ in range(300))
    # Two random choices: the busy endpoint wins only when drawn against itself, never.
    assert got[slow[0]] == 0
    assert set(got) == {"10.1.0.2", "10.1.1.1", "10.1.1.2"}
    for _ in range(5):
        b.release(slow)
    assert b.inflight == {}
    got = Counter(address(b) for _ in range(400))
    assert set(got) == {"10.1.0.1", "10.1.0.2", "10.1.1.1", "10.1.1.2"}


def test_least_request_balances_in_flight_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(balancer, "_random", random.Random(11).random)
    b = make(store(locality_lb=Algo.LEAST_REQUEST))
    for _ in range(400):  # requests that never finish: in flight piles up evenly
        pick = b.pick("svc")
        assert pick is not None
        b.acquire(pick.key)
    counts = sorted(b.inflight.values())
    assert len(counts) == 4 and counts[-1] - counts[0] <= 2, counts


def test_default_backend_counts_nothing_and_has_no_affinity() -> None:
    b = make(store())
    assert b.affine == {} and b.counted == frozenset()


# -- autoCapacityDrain -----------------------------------------------------------------


def test_auto_capacity_drain_empties_a_mostly_unhealthy_group() -> None:
    groups = (
        table.BackendGroup("w1", WEST, "us-west1-a", tuple(ep(f"10.1.0.{i}") for i in range(1, 6))),
        table.BackendGroup("w2", WEST, "us-west1-b", tuple(ep(f"10.1.1.{i}") for i in range(1, 3))),
    )
    # 4 of 5 endpoints of us-west1-a down: 20 % healthy, under 25 %.
    view = FakeHealth(*(key(f"10.1.0.{i}") for i in range(1, 5)))
    drained = make(store(*groups, auto_capacity_drain=True), view)
    assert {address(drained) for _ in range(20)} == {"10.1.1.1", "10.1.1.2"}
    plain = make(store(*groups), view)
    assert {address(plain) for _ in range(20)} == {"10.1.0.5", "10.1.1.1", "10.1.1.2"}


def test_auto_capacity_drain_never_drains_more_than_half_the_groups() -> None:
    groups = tuple(
        table.BackendGroup(
            f"w{z}", WEST, f"us-west1-{z}", tuple(ep(f"10.1.{z}.{i}") for i in range(1, 6))
        )
        for z in range(3)
    )
    # Every group at 20 % healthy: only one of three (half, rounded down) is drained.
    view = FakeHealth(*(key(f"10.1.{z}.{i}") for z in range(3) for i in range(1, 5)))
    b = make(store(*groups, auto_capacity_drain=True), view)
    got = {address(b) for _ in range(30)}
    assert len(got) == 2 and got <= {"10.1.0.5", "10.1.1.5", "10.1.2.5"}


def test_a_drained_group_still_serves_when_nothing_else_can() -> None:
    groups = (
        table.BackendGroup("w1", WEST, "a", tuple(ep(f"10.1.0.{i}") for i in range(1, 6))),
        table.BackendGroup("w2", WEST, "b", (ep("10.1.1.1"),)),
    )
    view = FakeHealth(*(key(f"10.1.0.{i}") for i in range(1, 5)))
    b = make(store(*groups, auto_capacity_drain=True), view)
    assert address(b) == "10.1.1.1"
    got = b.pick("svc", frozenset({key("10.1.1.1")}))
    assert got is not None and got.endpoint.address == "10.1.0.5"

"""Capacity and the waterfall between regions: GKE's published experiment, reproduced.

Two regions, two endpoints each, maxRatePerEndpoint 10: 20 requests per second of
capacity per region, the gateway next to us-west1. Offered 10 RPS → 10/0, 30 → 20/10,
60 → ~30/30. Socket-free tests drive the balancer with a fake clock at those rates; one
test runs real sockets through the gateway, from YAML through the real translator.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from mcgw.config import load
from mcgw.dataplane import balancer, server
from mcgw.dataplane.settings import ProxySettings
from mcgw.ir import table
from mcgw.testing import manifests
from mcgw.testing.client import RawClient
from mcgw.testing.runner import run
from mcgw.testing.tables import Clock, FakeHealth
from mcgw.testing.upstream import FakeUpstream
from mcgw.translate import translator

WEST, EAST, EUROPE = "us-west1", "us-east1", "europe-west1"
LOCALITY = table.Locality(
    entry_region=WEST, region_rtt_ms=((WEST, 1.0), (EAST, 53.0), (EUROPE, 140.0))
)
EXAMPLE = Path(__file__).parents[2] / "examples" / "capacity"


def ep(address: str) -> table.Endpoint:
    return table.Endpoint(address=address, port=8080, pod=f"pod-{address}")


def store(
    *,
    rate: float = 10.0,
    scaler: float = 1.0,
    algorithm: table.LbAlgorithm = table.LbAlgorithm.WATERFALL_BY_REGION,
    threshold: int = 0,
    europe: bool = False,
) -> table.Backend:
    groups = [
        table.BackendGroup("gke-east-1", EAST, "us-east1-b", (ep("10.2.0.1"), ep("10.2.0.2"))),
        table.BackendGroup("gke-west-1", WEST, "us-west1-a", (ep("10.1.0.1"), ep("10.1.0.2"))),
    ]
    if europe:
        groups.append(table.BackendGroup("gke-eu-1", EUROPE, "europe-west1-b", (ep("10.3.0.1"),)))
    return table.Backend(
        name="store",
        kind="ServiceImport",
        namespace="store",
        service="store",
        port=8080,
        groups=tuple(sorted(groups, key=lambda g: (g.cluster, g.zone))),
        max_rate_per_endpoint=rate,
        capacity_scaler=scaler,
        lb_algorithm=algorithm,
        failover_health_threshold=threshold,
    )


def make(
    backend: table.Backend, clock: Clock, health: FakeHealth | None = None
) -> balancer.Balancer:
    rt = table.RouteTable(listeners=(), backends=(backend,), locality=LOCALITY)
    return balancer.Balancer(rt, health or FakeHealth(), clock=clock)


def drive(b: balancer.Balancer, clock: Clock, rps: float, seconds: float) -> list[balancer.Pick]:
    """Offer ``rps`` evenly spaced requests per second for ``seconds`` of fake time."""
    out = []
    start = clock.now
    for i in range(round(rps * seconds)):
        clock.now = start + i / rps
        got = b.pick("store")
        assert got is not None
        out.append(got)
    clock.now = start + seconds
    return out


def per_second(picks: list[balancer.Pick], seconds: float) -> dict[str, float]:
    counts = Counter(p.group.region for p in picks)
    return {region: counts[region] / seconds for region in (WEST, EAST)}


# -- GKE's experiment ----------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "west", "east"), [(10, 10, 0), (30, 20, 10), (60, 30, 30)], ids=str
)
def test_gke_published_splits(offered: int, west: float, east: float) -> None:
    clock = Clock()
    b = make(store(), clock)
    got = per_second(drive(b, clock, offered, 10.0), 10.0)
    tolerance = 0.1 * offered
    assert abs(got[WEST] - west) <= tolerance, got
    assert abs(got[EAST] - east) <= tolerance, got


def test_steady_state_is_exact_and_spilled_requests_say_so() -> None:
    clock = Clock()
    b = make(store(), clock)
    drive(b, clock, 30, 2.0)  # warm up the window
    picks = drive(b, clock, 30, 5.0)
    assert per_second(picks, 5.0) == {WEST: 20.0, EAST: 10.0}
    assert {(p.group.region, p.reason) for p in picks} == {(WEST, "closest"), (EAST, "spillover")}
    assert b.rates("store") == pytest.approx({WEST: 20.0, EAST: 10.0}, rel=0.1)
    # Inside the closest region the endpoints share its load evenly.
    west = Counter(p.endpoint.address for p in picks if p.group.region == WEST)
    assert west == {"10.1.0.1": 50, "10.1.0.2": 50}


def test_spill_follows_the_load_down_as_the_window_slides() -> None:
    clock = Clock()
    b = make(store(), clock)
    drive(b, clock, 60, 3.0)
    clock.now += 2.0  # quiet: the window empties
    picks = drive(b, clock, 10, 2.0)
    assert {(p.group.region, p.reason) for p in picks} == {(WEST, "closest")}


def test_when_all_regions_are_full_excess_goes_in_proportion_to_capacity() -> None:
    clock = Clock()
    # Europe has one endpoint: 10 RPS of capacity, half of each US region's.
    b = make(store(europe=True), clock)
    got = Counter(p.group.region for p in drive(b, clock, 100, 10.0))
    # 50 RPS of capacity, 100 offered: each region gets twice its capacity.
    assert got[WEST] == pytest.approx(400, rel=0.05)
    assert got[EAST] == pytest.approx(400, rel=0.05)
    assert got[EUROPE] == pytest.approx(200, rel=0.05)


def test_capacity_counts_healthy_endpoints_only() -> None:
    clock = Clock()
    health = FakeHealth(("10.1.0.1", 8080))  # us-west1 down to 10 RPS
    b = make(store(), clock, health)
    got = per_second(drive(b, clock, 30, 10.0), 10.0)
    assert got[WEST] == pytest.approx(10, abs=1) and got[EAST] == pytest.approx(20, abs=1)


def test_default_capacity_keeps_the_fast_path() -> None:
    def no_clock() -> float:
        raise AssertionError("the fast path reads no clock")

    rt = table.RouteTable(listeners=(), backends=(store(rate=1e8),), locality=LOCALITY)
    b = balancer.Balancer(rt, FakeHealth(), clock=no_clock)
    picks = [b.pick("store") for _ in range(1000)]
    assert {(p.group.region, p.reason) for p in picks if p} == {(WEST, "closest")}
    assert b.rates("store") == {}


def test_drained_backend_is_still_served_by_the_closest_region() -> None:
    clock = Clock()
    b = make(store(scaler=0.0), clock)
    picks = drive(b, clock, 30, 2.0)
    assert {(p.group.region, p.reason) for p in picks} == {(WEST, "closest")}


def test_retries_say_retry_and_count() -> None:
    clock = Clock()
    b = make(store(), clock)
    west = frozenset({("10.1.0.1", 8080), ("10.1.0.2", 8080)})
    got = b.pick("store", exclude=west)
    assert got is not None and (got.group.region, got.reason) == (EAST, "retry")
    assert b.rates("store")[EAST] > 0


# -- failover threshold, other algorithms ---------------------------------------


def test_region_under_the_failover_threshold_sheds_to_the_next() -> None:
    clock = Clock()
    health = FakeHealth(("10.1.0.1", 8080))  # us-west1 at 50 % healthy
    b = make(store(rate=1e8, threshold=70), clock, health)
    picks = drive(b, clock, 10, 1.0)
    assert {(p.group.region, p.reason) for p in picks} == {(EAST, "failover")}
    # Back above the threshold (after one window bucket): the closest region again.
    health.down.clear()
    picks = drive(b, clock, 10, 1.0)[2:]
    assert {(p.group.region, p.reason) for p in picks} == {(WEST, "closest")}


def test_weak_region_still_serves_when_the_others_are_full_or_weaker() -> None:
    clock = Clock()
    health = FakeHealth(("10.1.0.1", 8080), ("10.2.0.1", 8080))  # both at 50 %
    b = make(store(rate=1e8, threshold=70), clock, health)
    picks = drive(b, clock, 10, 1.0)
    assert {(p.group.region, p.reason) for p in picks} == {(WEST, "closest")}
    # A fully unhealthy region fails over as it always did.
    health.down |= {("10.1.0.2", 8080)}
    picks = drive(b, clock, 10, 1.0)[2:]
    assert {(p.group.region, p.reason) for p in picks} == {(EAST, "failover")}


def test_spray_to_world_spreads_by_capacity() -> None:
    clock = Clock()
    b = make(store(rate=1e8, algorithm=table.LbAlgorithm.SPRAY_TO_WORLD, europe=True), clock)
    got = Counter(p.group.region for p in drive(b, clock, 50, 10.0))
    assert got[EUROPE] == 100
    assert abs(got[WEST] - 200) <= 2 and abs(got[EAST] - 200) <= 2


def test_spray_to_region_waterfalls_between_regions() -> None:
    clock = Clock()
    b = make(store(algorithm=table.LbAlgorithm.SPRAY_TO_REGION), clock)
    drive(b, clock, 30, 2.0)
    assert per_second(drive(b, clock, 30, 5.0), 5.0) == {WEST: 20.0, EAST: 10.0}


# -- the example, from YAML -------------------------------------------------------


def test_example_translates_with_its_capacity() -> None:
    result = translator.translate(load.load([EXAMPLE]).resources)
    assert not result.warnings
    policies = [s for s in result.statuses if s.kind.endswith("Policy")]
    assert {(s.kind, s.conditions[0].reason) for s in policies} == {
        ("GCPBackendPolicy", "Accepted"),
        ("GCPTrafficDistributionPolicy", "Accepted"),
    }
    (backend,) = result.table.backends
    assert backend.max_rate_per_endpoint == 10.0
    assert result.table.locality.entry_region == WEST


def test_thirty_rps_through_the_gateway_splits_twenty_ten(tmp_path: Path) -> None:
    """Real sockets: the example's Gateway, route and policies; FakeUpstreams as pods."""
    offered, seconds = 30.0, 3.0

    async def main() -> None:
        ups = [await FakeUpstream(name=f"pod-{i}").start() for i in range(4)]
        gw: server.Gateway | None = None
        try:
            config = tmp_path / "config"
            for name in ("gke-west-1", "gke-east-1"):
                (config / name).mkdir(parents=True)
            (config / "fleet.yaml").write_text((EXAMPLE / "fleet.yaml").read_text())
            gateway_yaml = (EXAMPLE / "gke-west-1" / "gateway.yaml").read_text()
            west = manifests.exported_store("us-west1-a", (ups[0].address[1], ups[1].address[1]))
            east = manifests.exported_store("us-east1-b", (ups[2].address[1], ups[3].address[1]))
            (config / "gke-west-1" / "all.yaml").write_text(gateway_yaml + west)
            (config / "gke-east-1" / "all.yaml").write_text(east)
            rt = translator.translate(load.load([config]).resources).table
            assert [len(g.endpoints) for g in rt.backends[0].groups] == [2, 2]
            settings = ProxySettings(
                port_map=((80, 0),), active_health_checks=False, access_log_dir=tmp_path / "log"
            )
            gw = server.Gateway(settings)
            await gw.apply(rt)
            (address,) = gw.addresses().values()
            clients = [await RawClient.connect(address) for _ in range(4)]
            loop = asyncio.get_running_loop()
            start = loop.time()

            async def one(c: RawClient, at: float) -> None:
                await asyncio.sleep(max(0.0, at - loop.time()))
                response = await c.request(target="/", host="store.example.com")
                assert response.status == 200

            n = int(offered * seconds)
            # Four connections take turns; requests evenly spaced at the offered rate.
            for batch in range(0, n, 4):
                await asyncio.gather(
                    *(
                        one(clients[k], start + (batch + k) / offered)
                        for k in range(min(4, n - batch))
                    )
                )
            elapsed = loop.time() - start
            for c in clients:
                await c.close()
            assert elapsed < seconds + 1.0
        finally:
            if gw is not None:
                await gw.close()
            for up in ups:
                await up.close()
        west_n = len(ups[0].seen) + len(ups[1].seen)
        east_n = len(ups[2].seen) + len(ups[3].seen)
        assert west_n + east_n == int(offered * seconds)
        # 20/10 per second, within 10 % of the offered rate.
        assert abs(west_n / seconds - 20) <= 3 and abs(east_n / seconds - 10) <= 3, (
            west_n,
            east_n,
        )

    started = time.monotonic()
    run(main(), timeout_s=20)
    assert time.monotonic() - started < 15
    lines = [
        json.loads(line)
        for f in sorted((tmp_path / "log").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    reasons = Counter(
        (entry["jsonPayload"]["cluster"], entry["jsonPayload"]["reason"]) for entry in lines
    )
    assert set(reasons) == {("gke-west-1", "closest"), ("gke-east-1", "spillover")}

"""What worker processes share, without sockets: window counts (Balancer.counts/share),
health verdicts (HealthMap.adopt/mirror/expire) and the settings sent over the pipe."""

from __future__ import annotations

import json
from pathlib import Path

from mcgw.dataplane import balancer, health, workers
from mcgw.dataplane.settings import ProxySettings
from mcgw.ir import table
from mcgw.testing.tables import Clock

WEST, EAST = "us-west1", "us-east1"
LOCALITY = table.Locality(entry_region=WEST, region_rtt_ms=((WEST, 1.0), (EAST, 53.0)))


def _backend() -> table.Backend:
    def ep(address: str) -> table.Endpoint:
        return table.Endpoint(address=address, port=8080, pod=f"pod-{address}")

    return table.Backend(
        name="store",
        kind="ServiceImport",
        namespace="store",
        service="store",
        port=8080,
        groups=(
            table.BackendGroup("gke-east-1", EAST, "us-east1-b", (ep("10.2.0.1"), ep("10.2.0.2"))),
            table.BackendGroup("gke-west-1", WEST, "us-west1-a", (ep("10.1.0.1"), ep("10.1.0.2"))),
        ),
        max_rate_per_endpoint=10.0,  # 20 RPS per region
    )


def test_two_balancers_sharing_counts_split_like_one() -> None:
    """Two workers each offered 15 RPS, telling each other their window counts every
    50 ms: together 20/10, as one gateway offered 30 RPS; without sharing each would
    keep 15 in the closest region (30/0 together)."""
    clock = Clock()
    rt = table.RouteTable(listeners=(), backends=(_backend(),), locality=LOCALITY)
    health_map = health.HealthMap(clock=clock)
    a = balancer.Balancer(rt, health_map, clock=clock)
    b = balancer.Balancer(rt, health_map, clock=clock)
    regions: list[str] = []
    start = clock.now
    for i in range(30 * 10):  # 10 s, requests alternating between the workers
        clock.now = start + i / 30
        if i % 2 == 0:  # every 1/15 s: exchange (a little late, as over the pipe)
            a.share(b.counts())
            b.share(a.counts())
        pick = (a if i % 2 else b).pick("store")
        assert pick is not None
        if clock.now - start >= 2.0:
            regions.append(pick.group.region)
    seconds = 8.0
    assert abs(regions.count(WEST) / seconds - 20) <= 3, regions.count(WEST)
    assert abs(regions.count(EAST) / seconds - 10) <= 3, regions.count(EAST)
    assert set(a.counts()["store"]) == {WEST, EAST}


def test_fast_path_backends_report_no_counts() -> None:
    backend = _backend()
    plain = table.Backend(
        name=backend.name,
        kind=backend.kind,
        namespace=backend.namespace,
        service=backend.service,
        port=backend.port,
        groups=backend.groups,
    )
    rt = table.RouteTable(listeners=(), backends=(plain,), locality=LOCALITY)
    b = balancer.Balancer(rt, health.HealthMap())
    assert b.counts() == {}
    b.share({"store": {WEST: 100}})  # nothing to share it with: no effect, no error
    pick = b.pick("store")
    assert pick is not None and pick.group.region == WEST


def test_adopted_ejection_is_reported_and_expires() -> None:
    clock = Clock()
    changes: list[tuple[str, int, bool]] = []
    parent = health.HealthMap(clock=clock, on_change=lambda a, p, ok: changes.append((a, p, ok)))
    parent.adopt("10.1.0.1", 8080, 30.0)
    assert not parent.healthy("10.1.0.1", 8080)
    parent.adopt("10.1.0.1", 8080, 30.0)  # a second worker's report: no second change
    assert changes == [("10.1.0.1", 8080, False)]
    clock.now += 29.0
    parent.expire()
    assert len(changes) == 1
    clock.now += 1.5
    parent.expire()  # noticed without anyone asking for the endpoint
    assert changes[-1] == ("10.1.0.1", 8080, True)


def test_mirrored_verdicts_override_and_end_local_ejections() -> None:
    clock = Clock()
    ejected: list[tuple[str, int, float]] = []
    worker = health.HealthMap(clock=clock, failure_threshold=1)
    worker.on_eject = lambda a, p, s: ejected.append((a, p, s))
    worker.mirror("10.1.0.2", 8080, False)  # the control plane's active check failed it
    assert not worker.healthy("10.1.0.2", 8080)
    assert ejected == []  # a mirrored verdict is not reported back
    clock.now += 3600
    assert not worker.healthy("10.1.0.2", 8080)  # until the control plane says otherwise
    worker.mirror("10.1.0.2", 8080, True)
    assert worker.healthy("10.1.0.2", 8080)

    worker.report_failure("10.1.0.1", 8080)  # a local ejection is reported ...
    assert ejected == [("10.1.0.1", 8080, 30.0)]
    assert not worker.healthy("10.1.0.1", 8080)
    worker.mirror("10.1.0.1", 8080, True)  # ... and ends when the control plane says so
    assert worker.healthy("10.1.0.1", 8080)


def test_settings_survive_the_pipe() -> None:
    settings = ProxySettings(
        port_map=((80, 8080), (443, 0)), access_log_dir=Path("var/logs"), debug_headers=True
    )
    wire = json.loads(json.dumps(workers.settings_to_wire(settings)))
    assert workers.settings_from_wire(wire) == settings
    assert hash(workers.settings_from_wire(wire)) == hash(settings)

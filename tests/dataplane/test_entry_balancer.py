"""Balancer.pick with a per-request entry region, and the decision trace it leaves (no sockets)."""

from __future__ import annotations

from collections import Counter

from mcgw import logschema
from mcgw.dataplane import balancer
from mcgw.ir import table
from mcgw.testing.tables import Clock, FakeHealth

WEST, EAST, TOKYO = "us-west1", "us-east1", "asia-northeast1"
LOCALITY = table.Locality(
    entry_region=TOKYO,
    region_rtt_ms=((WEST, 111.4), (EAST, 159.4)),
    other_entries=(
        table.EntryRanking(EAST, ((EAST, 1.0), (WEST, 53.5))),
        table.EntryRanking(WEST, ((WEST, 1.0), (EAST, 53.5))),
    ),
)


def store(rate: float = 1e8) -> table.Backend:
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
        max_rate_per_endpoint=rate,
    )


def make(
    backend: table.Backend, clock: Clock, health: FakeHealth | None = None
) -> balancer.Balancer:
    rt = table.RouteTable(listeners=(), backends=(backend,), locality=LOCALITY)
    return balancer.Balancer(rt, health or FakeHealth(), clock=clock)


def test_each_entry_region_has_its_own_ranking() -> None:
    b = make(store(), Clock())
    assert b.entry_regions() == (TOKYO, EAST, WEST)
    assert b.regions("store") == (WEST, EAST)
    assert b.regions("store", EAST) == (EAST, WEST)
    pick = b.pick("store", entry_region=EAST)
    assert pick is not None and (pick.group.region, pick.reason) == (EAST, "closest")
    assert b.trace == (EAST, "us-east1:1,us-west1:53.5", "")
    pick = b.pick("store")
    assert pick is not None and (pick.group.region, pick.reason) == (WEST, "closest")
    assert b.trace == (TOKYO, "us-west1:111.4,us-east1:159.4", "")
    # A region without a ranking of its own: the gateway's.
    pick = b.pick("store", entry_region="mars-north1")
    assert pick is not None and pick.group.region == WEST
    assert b.trace[0] == TOKYO


def test_entry_regions_share_endpoints_rings_and_health() -> None:
    b = make(store(), Clock(), FakeHealth(("10.2.0.1", 8080), ("10.2.0.2", 8080)))
    pick = b.pick("store", entry_region=EAST)
    assert pick is not None and (pick.group.region, pick.reason) == (WEST, "failover")
    # Both entries walk the same ring of us-west1: turns alternate across them.
    got = [b.pick("store", entry_region=e) for e in (TOKYO, EAST, TOKYO, EAST)]
    assert [p.endpoint.address for p in got if p] == ["10.1.0.2", "10.1.0.1"] * 2


def test_capacity_is_shared_between_entry_regions_and_the_trace_shows_it() -> None:
    # 20 rps of capacity per region; 15 rps from Tokyo and 15 from us-east1 at once.
    clock = Clock()
    b = make(store(rate=10.0), clock)
    split: Counter[tuple[str, str, str]] = Counter()
    for i in range(300):  # 10 s at 30 rps
        clock.now = 1000.0 + i / 30
        entry = TOKYO if i % 2 else EAST
        pick = b.pick("store", entry_region=entry)
        assert pick is not None
        if i >= 60:  # after the first 2 s
            split[entry, pick.group.region, pick.reason] += 1
    # us-east1's clients fill us-east1; Tokyo's go to us-west1 (its closest): nobody spills.
    assert split == {(TOKYO, WEST, "closest"): 120, (EAST, EAST, "closest"): 120}
    entry, ranking, seen = b.trace
    assert (entry, ranking) == (TOKYO, "us-west1:111.4,us-east1:159.4")
    west, east = seen.split(";")
    assert west.startswith("us-west1 ") and west.endswith("/20rps 2/2ok")
    assert east.startswith("us-east1 ") and east.endswith("/20rps 2/2ok")


def test_trace_fields_in_the_access_log_payload() -> None:
    record = logschema.AccessRecord.of(
        1.7e9, "GET", "http", "store.example.com", "/", "HTTP/1.1", 200, 0.1, 10, 20,
        "127.10.0.1", "127.0.0.1", "k6", (), "store/external-http", "r", "store",
        "gke-west-1", WEST, "us-west1-a", "pod", "10.1.0.1:8080", "closest", TOKYO, 1,
        "response_sent_by_backend", "client", "us-west1:111.4,us-east1:159.4",
        "us-west1 12/20rps 2/2ok;us-east1 0/20rps 2/2ok",
    )  # fmt: skip
    payload = logschema.access_entry(record)["jsonPayload"]
    assert (payload["entryRegion"], payload["entrySource"]) == (TOKYO, "client")
    assert payload["ranking"] == "us-west1:111.4,us-east1:159.4"
    assert payload["seen"] == "us-west1 12/20rps 2/2ok;us-east1 0/20rps 2/2ok"
    # Unset trace fields are left out: the line stays compact.
    bare = logschema.access_entry(record._replace(decision=(TOKYO, "", ""), entry=("", "")))
    assert not {"entrySource", "ranking", "seen"} & set(bare["jsonPayload"])

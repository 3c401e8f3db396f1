"""Properties of the balancer and the health map, over generated backends and histories.

Socket-free: a fake clock, the real :class:`mcgw.dataplane.health.HealthMap` fed with
passive reports, and generated backends (1-3 regions, zones, ready and not-ready
endpoints, capacity, algorithms, thresholds, autoCapacityDrain). Bounded examples, so
it runs in ``make test``; ``HYPOTHESIS_PROFILE=long`` runs many more (a few minutes:
add ``--timeout 0`` to lift pytest-timeout's limit).

Invariants checked after every step of a random history:

* a pick never raises;
* a pick is never an unhealthy (ejected), not-ready or excluded endpoint, and it is
  None only when no endpoint is usable;
* a pick with an exclusion is a ``retry``; without, the closest region's pick is
  ``closest``;
* the health map never ejects more than ``max_ejection_percent`` of a backend's ready
  endpoints at once, and an ejection ends by itself.

And, with health steady, the capacity waterfall over generated capacities: a region
farther away gets traffic only once every closer region is (nearly) at capacity, and
nothing is refused for capacity.
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from mcgw.dataplane import balancer, health
from mcgw.ir import table
from mcgw.testing.tables import Clock

REGIONS = ("us-west1", "us-east1", "europe-west1")
LOCALITY = table.Locality(
    entry_region="us-west1",
    region_rtt_ms=(("us-west1", 1.0), ("us-east1", 53.0), ("europe-west1", 140.0)),
)
NAME = "store"

settings.register_profile(
    "default",
    max_examples=75,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("long", max_examples=3000, stateful_step_count=60, deadline=None)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")


@st.composite
def backends(draw: st.DrawFn) -> table.Backend:
    """A backend over 1-3 regions, each with 1-2 zones of 1-3 endpoints, some not ready."""
    regions = draw(st.lists(st.sampled_from(REGIONS), min_size=1, max_size=3, unique=True))
    groups = []
    for r, region in enumerate(regions):
        for z in range(draw(st.integers(1, 2))):
            ready = draw(st.lists(st.booleans(), min_size=1, max_size=3))
            endpoints = tuple(
                table.Endpoint(f"10.{r}.{z}.{i + 1}", 8080, f"pod-{r}-{z}-{i}", ready=ok)
                for i, ok in enumerate(ready)
            )
            groups.append(
                table.BackendGroup(f"c-{region}", region, f"{region}-{'ab'[z]}", endpoints)
            )
    return table.Backend(
        name=NAME,
        kind="ServiceImport",
        namespace="store",
        service="store",
        port=8080,
        groups=tuple(sorted(groups, key=lambda g: (g.cluster, g.zone))),
        max_rate_per_endpoint=draw(st.sampled_from([1e8, 2.0, 10.0, 50.0])),
        capacity_scaler=draw(st.sampled_from([1.0, 0.5, 0.0])),
        lb_algorithm=draw(st.sampled_from(list(table.LbAlgorithm))),
        failover_health_threshold=draw(st.sampled_from([0, 0, 50, 70])),
        auto_capacity_drain=draw(st.booleans()),
        locality_lb=draw(
            st.sampled_from(
                [
                    table.LocalityLbAlgorithm.ROUND_ROBIN,
                    table.LocalityLbAlgorithm.RANDOM,
                    table.LocalityLbAlgorithm.LEAST_REQUEST,
                ]
            )
        ),
    )


def keys_of(backend: table.Backend, *, ready_only: bool = True) -> list[tuple[str, int]]:
    return [
        (e.address, e.port)
        for g in backend.groups
        for e in g.endpoints
        if e.ready or not ready_only
    ]


class BalancerMachine(RuleBasedStateMachine):
    """A random history of picks, passive reports and time against one backend."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.backend: table.Backend | None = None
        self.health: health.HealthMap | None = None
        self.balancer: balancer.Balancer | None = None
        self.keys: list[tuple[str, int]] = []
        self.ready: list[tuple[str, int]] = []
        self.region_of: dict[tuple[str, int], str] = {}

    @initialize(
        backend=backends(),
        ejection_s=st.sampled_from([0.5, 5.0, 30.0]),
        percent=st.sampled_from([10, 50, 100]),
    )
    def build(self, backend: table.Backend, ejection_s: float, percent: int) -> None:
        self.backend = backend
        self.health = health.HealthMap(
            ejection_s=ejection_s,
            max_ejection_s=10 * ejection_s,
            consecutive_5xx=2,
            max_ejection_percent=percent,
            clock=self.clock,
        )
        rt = table.RouteTable(listeners=(), backends=(backend,), locality=LOCALITY)
        self.health.update(rt)
        self.balancer = balancer.Balancer(rt, self.health, clock=self.clock)
        self.keys = keys_of(backend, ready_only=False)
        self.ready = keys_of(backend)
        self.region_of = {
            (e.address, e.port): g.region for g in backend.groups for e in g.endpoints
        }

    def usable(self, exclude: frozenset[tuple[str, int]]) -> set[tuple[str, int]]:
        assert self.health is not None
        return {k for k in self.ready if k not in exclude and self.health.healthy(*k)}

    @rule(data=st.data())
    def pick(self, data: st.DataObject) -> None:
        assert self.balancer is not None
        exclude = frozenset(data.draw(st.lists(st.sampled_from(self.keys), max_size=3)))
        usable = self.usable(exclude)
        got = self.balancer.pick(NAME, exclude)
        if not usable:
            assert got is None
            return
        assert got is not None, f"no pick with {sorted(usable)} usable"
        assert got.key in usable, f"picked {got.key}, usable {sorted(usable)}"
        assert got.endpoint.ready
        if exclude:
            assert got.reason == balancer.REASON_RETRY
        else:
            assert got.reason != balancer.REASON_RETRY
        regions = self.balancer.regions(NAME)
        if got.reason == balancer.REASON_CLOSEST:
            assert got.group.region == regions[0]
        if self.region_of[got.key] == regions[0] and not exclude:
            assert got.reason == balancer.REASON_CLOSEST

    @rule(seconds=st.sampled_from([0.01, 0.1, 0.35, 1.0, 7.0, 40.0]))
    def wait(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(data=st.data(), what=st.sampled_from(["failure", "5xx", "success"]))
    def report(self, data: st.DataObject, what: str) -> None:
        assert self.health is not None
        key = data.draw(st.sampled_from(self.ready or self.keys))
        if what == "failure":
            self.health.report_failure(*key)
        elif what == "5xx":
            self.health.report_error_status(*key)
        else:
            self.health.report_success(*key)

    @invariant()
    def ejections_are_bounded(self) -> None:
        if self.health is None or not self.ready:
            return
        ejected = self.health.ejected()
        out = [k for k in self.ready if k in ejected]
        assert len(out) * 100 <= self.health.max_ejection_percent * len(self.ready)
        assert all(0 < left <= self.health.max_ejection_s for left in ejected.values())


BalancerMachine.TestCase.settings = settings.get_profile(PROFILE)
test_balancer_history = BalancerMachine.TestCase


def expected_waterfall(capacities: list[float], offered: float) -> list[float]:
    """GKE's waterfall by region: fill in order; the excess spread by capacity."""
    total = sum(capacities)
    if offered >= total:
        return [c * offered / total for c in capacities]
    out, left = [], offered
    for capacity in capacities:
        take = min(capacity, left)
        out.append(take)
        left -= take
    return out


@settings(settings.get_profile(PROFILE), max_examples=25 if PROFILE == "default" else 500)
@given(
    sizes=st.lists(st.integers(1, 3), min_size=2, max_size=3),
    rate=st.sampled_from([5.0, 10.0, 20.0]),
    load=st.floats(0.2, 1.6),
)
def test_waterfall_fills_regions_in_order(sizes: list[int], rate: float, load: float) -> None:
    groups = tuple(
        table.BackendGroup(
            f"c-{region}",
            region,
            f"{region}-a",
            tuple(table.Endpoint(f"10.{r}.0.{i + 1}", 8080) for i in range(n)),
        )
        for r, (region, n) in enumerate(zip(REGIONS, sizes, strict=False))
    )
    backend = table.Backend(
        name=NAME,
        kind="ServiceImport",
        namespace="store",
        service="store",
        port=8080,
        groups=groups,
        max_rate_per_endpoint=rate,
    )
    clock = Clock()
    rt = table.RouteTable(listeners=(), backends=(backend,), locality=LOCALITY)
    b = balancer.Balancer(rt, health.HealthMap(clock=clock), clock=clock)
    capacities = [rate * n for n in sizes]
    offered = round(load * sum(capacities))
    warm, seconds = 2.0, 8.0
    counts: Counter[str] = Counter()
    total = round(offered * (warm + seconds))
    for i in range(total):
        clock.now = 1000.0 + i / offered
        got = b.pick(NAME)
        assert got is not None  # capacity is a target: nothing is refused
        if clock.now >= 1000.0 + warm:
            counts[got.group.region] += 1
    measured = [counts[region] / seconds for region in REGIONS[: len(sizes)]]
    expected = expected_waterfall(capacities, offered)
    tolerance = 0.1 * offered + 1.0
    for i, (got_rps, want) in enumerate(zip(measured, expected, strict=True)):
        assert abs(got_rps - want) <= tolerance, (measured, expected)
        if got_rps > tolerance:
            # A farther region serves only once every closer one is (nearly) full.
            for closer in range(i):
                assert measured[closer] >= capacities[closer] - tolerance, (measured, expected)

"""Which backend, which region, which pod: the balancer's arithmetic, with no I/O.

Two decisions are made per request, both against structures compiled once per route
table version in :class:`Balancer.__init__`:

1. :meth:`Balancer.choose` splits a route's traffic between its weighted backendRefs
   by smooth weighted round robin (the nginx algorithm): deterministic, exact over
   every window of ``sum(weights)`` requests, and never two picks of a small-weight
   backend in a row when a heavier one is due.
2. :meth:`Balancer.pick` chooses an endpoint of one backend the way GKE's
   multi-cluster Gateway does: backend groups (one cluster and zone each) are ranked
   by their region's round-trip time from the entry region
   (:attr:`mcgw.ir.table.Locality.region_rtt_ms`); the closest region with a healthy,
   ready endpoint serves the request; inside that region endpoints take turns, so
   each zone gets a share proportional to its healthy endpoints.

Glossary:
    plan         the per-backend compiled structure: regions closest first.
    region plan  one region of a plan: its groups and the interleaved endpoint ring.
    ring         the region's ready endpoints in serving order; a counter walks it.
    reason       why the endpoint was chosen, written to the access log:
                 ``closest`` (the closest region that has endpoints served it),
                 ``failover`` (closer regions have endpoints, none usable),
                 ``retry`` (the caller excluded endpoints that already failed).

Health is read through the small :class:`HealthView` protocol, which
:class:`mcgw.dataplane.health.HealthMap` satisfies, so this module stays pure. Its
``down`` set is tested first: an endpoint not in it is used without a call.

Every answer :meth:`Balancer.pick` can give (a :class:`Pick` per endpoint and reason,
with the endpoint's ``address:port`` and its access-log fields) is built with the
plan, so a pick allocates nothing.
The region list in a plan is the place where capacity (maxRatePerEndpoint, the
waterfall between regions) will hook in: each region plan can carry its capacity
next to its ring.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from mcgw.ir import table

REASON_CLOSEST = "closest"
REASON_FAILOVER = "failover"
REASON_RETRY = "retry"

_NO_EXCLUDE: frozenset[tuple[str, int]] = frozenset()


class HealthView(Protocol):
    """What the balancer needs to know about endpoint health."""

    @property
    def down(self) -> AbstractSet[tuple[str, int]]:
        """Endpoints that may be out: any endpoint not in it is healthy, unasked."""

    def healthy(self, address: str, port: int) -> bool:
        """Whether an endpoint in :attr:`down` is still out."""


class Pick(NamedTuple):
    endpoint: table.Endpoint
    group: table.BackendGroup
    reason: str
    """``closest``, ``failover`` or ``retry`` (see the module docstring)."""
    key: tuple[str, int]
    """(address, port) of the endpoint: the identity the health map and pool use."""
    address: str
    """``address:port``, as the access log names the endpoint."""
    log_fields: tuple[str, str, str, str, str, str]
    """cluster, region, zone, pod, address and reason: this pick's part of an access
    record (:class:`mcgw.logschema.AccessRecord`, in its field order)."""


class _Slot:
    """One endpoint of a ring, with the three answers :meth:`Balancer.pick` can give
    for it built in advance: picking allocates nothing."""

    __slots__ = ("closest", "failover", "key", "retry")

    def __init__(self, endpoint: table.Endpoint, group: table.BackendGroup) -> None:
        self.key = (endpoint.address, endpoint.port)
        self.closest = self._pick(endpoint, group, REASON_CLOSEST)
        self.failover = self._pick(endpoint, group, REASON_FAILOVER)
        self.retry = self._pick(endpoint, group, REASON_RETRY)

    def _pick(self, endpoint: table.Endpoint, group: table.BackendGroup, reason: str) -> Pick:
        address = f"{endpoint.address}:{endpoint.port}"
        fields = (group.cluster, group.region, group.zone, endpoint.pod, address, reason)
        return Pick(endpoint, group, reason, self.key, address, fields)


class _RegionPlan:
    """One region of a backend: a ring of its ready endpoints and a cursor."""

    __slots__ = ("groups", "name", "next", "ring")

    def __init__(self, name: str, groups: tuple[table.BackendGroup, ...]) -> None:
        self.name = name
        self.groups = groups
        self.ring: tuple[_Slot, ...] = _interleave(groups)
        self.next = 0

    def take(self, health: HealthView, exclude: frozenset[tuple[str, int]]) -> _Slot | None:
        """Return the next usable endpoint in ring order, or None.

        The cursor moves to just after the endpoint returned, not by one, so an
        unhealthy endpoint's turn is shared by all the others instead of falling on
        its successor: the healthy ones keep equal shares.
        """
        ring = self.ring
        size = len(ring)
        if not size:
            return None
        start = self.next
        down = health.down
        # The common case, first and without a loop: the endpoint under the cursor
        # is usable (nothing excluded, not possibly down).
        slot = ring[start]
        if not exclude and slot.key not in down:
            self.next = start + 1 if start + 1 < size else 0
            return slot
        for step in range(size):
            index = (start + step) % size
            slot = ring[index]
            key = slot.key
            if key in exclude:
                continue
            if key not in down or health.healthy(key[0], key[1]):
                self.next = index + 1 if index + 1 < size else 0
                return slot
        return None


@dataclass(frozen=True, slots=True)
class _BackendPlan:
    regions: tuple[_RegionPlan, ...]
    """Regions that have at least one endpoint (ready or not), closest first. The
    first one is the ``closest`` region even when none of its endpoints is ready:
    serving from another region is then a fail-over."""


class _Wrr:
    """Smooth weighted round robin over a route's backendRefs."""

    __slots__ = ("current", "only", "total", "wbs", "weights")

    def __init__(self, backends: tuple[table.WeightedBackend, ...]) -> None:
        chosen = tuple(wb for wb in backends if wb.weight > 0)
        self.wbs = chosen
        self.weights = tuple(wb.weight for wb in chosen)
        self.total = sum(self.weights)
        self.current = [0] * len(chosen)
        self.only: table.WeightedBackend | None = chosen[0] if len(chosen) == 1 else None

    def next(self) -> table.WeightedBackend | None:
        if self.only is not None:
            return self.only
        if not self.wbs:
            return None
        current = self.current
        best = 0
        for i, weight in enumerate(self.weights):
            current[i] += weight
            if current[i] > current[best]:
                best = i
        current[best] -= self.total
        return self.wbs[best]


def region_order(locality: table.Locality, regions: set[str]) -> list[str]:
    """Rank ``regions`` closest first.

    Listed regions keep their position in ``locality.region_rtt_ms``; the others
    follow in name order.
    """
    rank = {name: i for i, (name, _) in enumerate(locality.region_rtt_ms)}
    unlisted = len(rank)
    return sorted(regions, key=lambda name: (rank.get(name, unlisted), name))


def _interleave(groups: tuple[table.BackendGroup, ...]) -> tuple[_Slot, ...]:
    """Order the ready endpoints of ``groups`` so that zones alternate.

    Groups take turns by smooth weighted round robin with their ready endpoint count
    as weight, so a zone with 3 endpoints next to one with 1 comes out as A A B A
    rather than A B A A: every window of the ring is close to the zones' shares.
    """
    queues = [[ep for ep in group.endpoints if ep.ready] for group in groups]
    weights = [len(queue) for queue in queues]
    total = sum(weights)
    current = [0] * len(queues)
    taken = [0] * len(queues)
    ring: list[_Slot] = []
    for _ in range(total):
        best = -1
        for i, weight in enumerate(weights):
            if weight == 0:
                continue
            current[i] += weight
            if best < 0 or current[i] > current[best]:
                best = i
        current[best] -= total
        endpoint = queues[best][taken[best]]
        taken[best] += 1
        ring.append(_Slot(endpoint, groups[best]))
    return tuple(ring)


def _plan(backend: table.Backend, locality: table.Locality) -> _BackendPlan:
    by_region: dict[str, list[table.BackendGroup]] = {}
    for group in backend.groups:
        if group.endpoints:
            by_region.setdefault(group.region, []).append(group)
    return _BackendPlan(
        regions=tuple(
            _RegionPlan(name, tuple(by_region[name]))
            for name in region_order(locality, set(by_region))
        )
    )


class Balancer:
    """The load-balancing decisions for one route table version.

    Build one per table version (everything is compiled here); per call only
    counters move and the health map is read. Not thread-safe: one per event loop.
    """

    __slots__ = ("_health", "_plans", "_wrr", "table")

    def __init__(self, route_table: table.RouteTable, health: HealthView) -> None:
        self.table = route_table
        self._health = health
        self._plans = {b.name: _plan(b, route_table.locality) for b in route_table.backends}
        self._wrr: dict[str, _Wrr] = {}
        for listener in route_table.listeners:
            for vhost in listener.virtual_hosts:
                for route in vhost.routes:
                    self._wrr.setdefault(route.name, _Wrr(route.backends))

    def choose(self, route: table.Route) -> table.WeightedBackend | None:
        """Return the backendRef of ``route`` that serves the next request.

        Returns:
            A backendRef with weight > 0 (its ``backend`` may be None: an unresolved
            ref, answered 500 by the caller), or None when no ref has weight > 0.
        """
        wrr = self._wrr.get(route.name)
        if wrr is None:
            # A route from outside this table (tests, a router built from another
            # version): compile it once and keep it.
            wrr = self._wrr[route.name] = _Wrr(route.backends)
        return wrr.next()

    def pick(
        self, backend_name: str, exclude: frozenset[tuple[str, int]] = _NO_EXCLUDE
    ) -> Pick | None:
        """Return the endpoint that serves the next request to ``backend_name``.

        Args:
            backend_name: :attr:`mcgw.ir.table.Backend.name`.
            exclude: (address, port) of endpoints already tried for this request.

        Returns:
            The endpoint, its group and the reason, or None when no endpoint is
            ready, healthy and not excluded (or the backend is unknown): answer 503.
        """
        plan = self._plans.get(backend_name)
        if plan is None:
            return None
        health = self._health
        regions = plan.regions
        for region in regions:
            slot = region.take(health, exclude)
            if slot is not None:
                if exclude:
                    return slot.retry
                return slot.closest if region is regions[0] else slot.failover
        return None

    def regions(self, backend_name: str) -> tuple[str, ...]:
        """Return the regions of ``backend_name`` that have endpoints, closest first."""
        plan = self._plans.get(backend_name)
        return () if plan is None else tuple(region.name for region in plan.regions)

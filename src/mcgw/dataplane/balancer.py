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
   each zone gets a share proportional to its healthy endpoints. A request may enter
   elsewhere than at the gateway (``entry_region``): every entry region the table
   ranks (:attr:`mcgw.ir.table.Locality.other_entries`) gets a plan of its own at
   build time, sharing the regions, rings and counters, so a pick only looks the
   plan up; :attr:`Balancer.trace` then holds the entry region and ranking used.

Capacity (GCPBackendPolicy maxRatePerEndpoint × healthy endpoints × capacityScaler)
and the GCPTrafficDistributionPolicy (algorithm, failover threshold) only matter for
a backend in several regions whose capacity is set, whose threshold is set, or that
sprays to the world. Such a plan gets a :class:`_Waterfall`: requests are counted per
region and per group over a sliding window (:data:`WINDOW_S` in :data:`BUCKETS`
buckets, moved by the injectable clock at most once per bucket, so a pick costs O(1)
plus one comparison per region), and the region is chosen by the rules of
:class:`mcgw.ir.table.LbAlgorithm`. Every other plan takes the fast path: the closest
region with a usable endpoint, with no clock read and no counting.

Glossary:
    plan         the per-backend compiled structure: regions closest first.
    region plan  one region of a plan: its groups and the interleaved endpoint ring.
    ring         the region's ready endpoints in serving order; a counter walks it.
    capacity     requests per second a region is meant to take: maxRatePerEndpoint ×
                 its healthy endpoints × capacityScaler. A target, never a limit.
    reason       why the endpoint was chosen, written to the access log:
                 ``closest`` (the closest region that has endpoints served it),
                 ``spillover`` (the closest region is at capacity, or every region
                 is and the excess is spread in proportion to capacity),
                 ``failover`` (closer regions have endpoints, none usable, or too
                 few healthy ones for the failover threshold),
                 ``retry`` (the caller excluded endpoints that already failed).

Health is read through the small :class:`HealthView` protocol, which
:class:`mcgw.dataplane.health.HealthMap` satisfies, so this module stays pure. Its
``down`` set is tested first: an endpoint not in it is used without a call.

Every answer :meth:`Balancer.pick` can give (a :class:`Pick` per endpoint and reason,
with the endpoint's ``address:port`` and its access-log fields) is built with the
plan, so a pick allocates nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from mcgw.ir import table

REASON_CLOSEST = "closest"
REASON_FAILOVER = "failover"
REASON_RETRY = "retry"
REASON_SPILLOVER = "spillover"

WINDOW_S = 1.0
"""Request rates are counted over the last second ..."""
BUCKETS = 10
"""... in ten buckets of 100 ms: the window slides by a tenth of a second."""
UNLIMITED_RATE = 1e8
"""maxRatePerEndpoint × capacityScaler at or above this (GKE's default) never limits."""

_NO_EXCLUDE: frozenset[tuple[str, int]] = frozenset()
_NO_TRACE = ("", "", "")


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
    """``closest``, ``spillover``, ``failover`` or ``retry`` (see the module docstring)."""
    key: tuple[str, int]
    """(address, port) of the endpoint: the identity the health map and pool use."""
    address: str
    """``address:port``, as the access log names the endpoint."""
    log_fields: tuple[str, str, str, str, str, str]
    """cluster, region, zone, pod, address and reason: this pick's part of an access
    record (:class:`mcgw.logschema.AccessRecord`, in its field order)."""


class _Rate:
    """Requests counted in the buckets of a sliding window, and their sum."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets = [0] * BUCKETS
        self.total = 0


class _Slot:
    """One endpoint of a ring, with the four answers :meth:`Balancer.pick` can give
    for it built in advance: picking allocates nothing."""

    __slots__ = ("closest", "failover", "key", "rate", "retry", "spillover")

    def __init__(self, endpoint: table.Endpoint, group: table.BackendGroup, rate: _Rate) -> None:
        self.key = (endpoint.address, endpoint.port)
        self.closest = self._pick(endpoint, group, REASON_CLOSEST)
        self.failover = self._pick(endpoint, group, REASON_FAILOVER)
        self.retry = self._pick(endpoint, group, REASON_RETRY)
        self.spillover = self._pick(endpoint, group, REASON_SPILLOVER)
        self.rate = rate
        """The group's request count (kept by capacity-aware plans only)."""

    def _pick(self, endpoint: table.Endpoint, group: table.BackendGroup, reason: str) -> Pick:
        address = f"{endpoint.address}:{endpoint.port}"
        fields = (group.cluster, group.region, group.zone, endpoint.pod, address, reason)
        return Pick(endpoint, group, reason, self.key, address, fields)


class _RegionPlan:
    """One region of a backend: a ring of its ready endpoints and a cursor; for
    capacity-aware plans also its request count, capacity and health."""

    __slots__ = (
        "capacity",
        "fit",
        "group_rates",
        "groups",
        "healthy",
        "name",
        "next",
        "rate",
        "ring",
    )

    def __init__(self, name: str, groups: tuple[table.BackendGroup, ...]) -> None:
        self.name = name
        self.groups = groups
        self.group_rates = tuple(_Rate() for _ in groups)
        self.ring: tuple[_Slot, ...] = _interleave(groups, self.group_rates)
        self.next = 0
        self.rate = _Rate()
        self.capacity = 0.0
        """Requests per second (refreshed once per bucket)."""
        self.healthy = len(self.ring)
        """Healthy ready endpoints (refreshed once per bucket)."""
        self.fit = True
        """Has a healthy endpoint and meets the failover threshold (refreshed too)."""

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
    waterfall: _Waterfall | None = None
    """Set when capacity, the failover threshold or the algorithm can send a request
    elsewhere than the closest region with a usable endpoint."""
    rank: int = 0
    """Which of the waterfall's rankings is this plan's (one per entry region: the
    plans of one backend share their regions, counters and waterfall)."""
    trace: tuple[str, str, str] = ("", "", "")
    """(entry region, ranking, "") for the decision trace, the ranking as in
    ``us-west1:111,us-east1:159`` (round trips in ms); a waterfall's picks replace
    the empty string by what it saw (:attr:`_Waterfall.seen`)."""


class _Waterfall:
    """The capacity-aware choice of a region for one backend.

    Counts are moved out of the window once per bucket (:meth:`_advance`), which also
    refreshes each region's healthy endpoints, capacity and the order regions are
    tried in; between two buckets a pick only adds to two counters.
    """

    __slots__ = (
        "bucket_s",
        "clock",
        "index",
        "orders",
        "per_endpoint",
        "rankings",
        "rates",
        "regions",
        "seen",
        "spray",
        "threshold",
        "tick_at",
        "window_start",
    )

    def __init__(
        self,
        backend: table.Backend,
        rankings: tuple[tuple[_RegionPlan, ...], ...],
        clock: Callable[[], float],
    ) -> None:
        regions = rankings[0]
        self.regions = regions
        self.rankings = rankings
        """The regions closest first, once per entry region (a plan's ``rank``)."""
        self.orders = list(rankings)
        """Per ranking, regions in the order they are filled: closest first, those
        under the failover threshold after all others."""
        self.seen = ""
        """Each region's rate, capacity and healthy endpoints at the last refresh, for
        the decision trace: ``us-west1 12/20rps 2/2ok;us-east1 0/20rps 2/2ok``."""
        self.clock = clock
        self.per_endpoint = backend.max_rate_per_endpoint * backend.capacity_scaler
        self.threshold = backend.failover_health_threshold
        self.spray = backend.lb_algorithm is table.LbAlgorithm.SPRAY_TO_WORLD
        self.rates = tuple(r.rate for r in regions) + tuple(
            rate for r in regions for rate in r.group_rates
        )
        self.bucket_s = WINDOW_S / BUCKETS
        self.index = 0
        self.tick_at = float("-inf")
        """When the current bucket ends: the first pick starts the window."""
        self.window_start = 0.0

    def _advance(self, now: float, health: HealthView) -> None:
        bucket_s = self.bucket_s
        if self.tick_at == float("-inf"):
            # Start as if one bucket had passed, so that the first requests have
            # a budget to be measured against.
            self.window_start = now - bucket_s
            self.tick_at = now
        steps = int((now - self.tick_at) / bucket_s) + 1
        index = self.index
        for _ in range(min(steps, BUCKETS)):
            index = index + 1 if index + 1 < BUCKETS else 0
            for rate in self.rates:
                rate.total -= rate.buckets[index]
                rate.buckets[index] = 0
        self.index = index
        self.tick_at += steps * bucket_s
        self.window_start = max(self.window_start, self.tick_at - WINDOW_S)
        self._refresh(health)

    def _refresh(self, health: HealthView) -> None:
        down = health.down
        seen: list[str] = []
        span = max(self.clock() - self.window_start, self.bucket_s)
        for region in self.regions:
            healthy = 0
            for slot in region.ring:
                key = slot.key
                if key not in down or health.healthy(key[0], key[1]):
                    healthy += 1
            region.healthy = healthy
            region.capacity = self.per_endpoint * healthy
            region.fit = healthy > 0 and healthy * 100 >= self.threshold * len(region.ring)
            seen.append(
                f"{region.name} {region.rate.total / span:.3g}/{region.capacity:.3g}rps "
                f"{healthy}/{len(region.ring)}ok"
            )
        self.seen = ";".join(seen)
        for i, ranking in enumerate(self.rankings):
            self.orders[i] = tuple(r for r in ranking if r.fit) + tuple(
                r for r in ranking if not r.fit
            )

    def take(
        self, health: HealthView, exclude: frozenset[tuple[str, int]], rank: int = 0
    ) -> Pick | None:
        now = self.clock()
        if now >= self.tick_at:
            self._advance(now, health)
        span = now - self.window_start
        slot: _Slot | None = None
        chosen: _RegionPlan | None = None
        order = self.orders[rank]
        if not exclude:
            if not self.spray:
                # The waterfall: the first region in order under its capacity.
                for region in order:
                    if region.rate.total < region.capacity * span:
                        slot = region.take(health, exclude)
                        if slot is not None:
                            chosen = region
                            break
            if slot is None:
                # Every region at capacity, or spraying: the least loaded one.
                chosen = self._least_loaded(order)
                if chosen is not None:
                    slot = chosen.take(health, exclude)
        if slot is None:
            # Retries (the next region in order with an endpoint not tried yet), no
            # capacity anywhere (drained), or stale health: the first region in
            # order with a usable endpoint serves.
            for region in order:
                slot = region.take(health, exclude)
                if slot is not None:
                    chosen = region
                    break
        if slot is None or chosen is None:
            return None
        index = self.index
        rate = chosen.rate
        rate.buckets[index] += 1
        rate.total += 1
        rate = slot.rate
        rate.buckets[index] += 1
        rate.total += 1
        if exclude:
            return slot.retry
        closest = self.rankings[rank][0]
        if chosen is closest:
            return slot.closest
        if self.spray or (closest.fit and closest.rate.total >= closest.capacity * span):
            return slot.spillover
        return slot.failover

    def _least_loaded(self, order: tuple[_RegionPlan, ...]) -> _RegionPlan | None:
        """The region furthest below its share when every one is at capacity (or
        when spraying): requests spread in proportion to capacity."""
        best: _RegionPlan | None = None
        best_load = 0.0
        for region in order:
            capacity = region.capacity
            if capacity > 0.0:
                load = region.rate.total / capacity
                if best is None or load < best_load:
                    best, best_load = region, load
        return best

    def rates_per_s(self) -> dict[str, float]:
        """Region → requests per second over the window so far (for explain, tests)."""
        now = self.clock()
        span = max(now - self.window_start, self.bucket_s)
        return {region.name: region.rate.total / span for region in self.regions}


class _Wrr:
    """Smooth weighted round robin over a route's backendRefs.

    Yields positions in ``Route.backends``, not the refs themselves: the translator
    makes one Route per hostname and listener for each rule match, all named alike
    and with equal refs in the same order but as distinct objects, and callers look
    a ref's compiled filters up by identity, so each must get a ref of its own copy.
    """

    __slots__ = ("current", "only", "positions", "total", "weights")

    def __init__(self, backends: tuple[table.WeightedBackend, ...]) -> None:
        positions = tuple(i for i, wb in enumerate(backends) if wb.weight > 0)
        self.positions = positions
        self.weights = tuple(backends[i].weight for i in positions)
        self.total = sum(self.weights)
        self.current = [0] * len(positions)
        self.only = positions[0] if len(positions) == 1 else -1

    def next(self) -> int:
        """Return the position of the next backendRef; -1 when none has weight > 0."""
        if self.only >= 0:
            return self.only
        if not self.positions:
            return -1
        current = self.current
        best = 0
        for i, weight in enumerate(self.weights):
            current[i] += weight
            if current[i] > current[best]:
                best = i
        current[best] -= self.total
        return self.positions[best]


def region_order(
    locality: table.Locality | tuple[tuple[str, float], ...], regions: set[str]
) -> list[str]:
    """Rank ``regions`` closest first.

    Listed regions keep their position in ``locality.region_rtt_ms`` (or in the
    ranking given); the others follow in name order.
    """
    ranked = locality.region_rtt_ms if isinstance(locality, table.Locality) else locality
    rank = {name: i for i, (name, _) in enumerate(ranked)}
    unlisted = len(rank)
    return sorted(regions, key=lambda name: (rank.get(name, unlisted), name))


def entry_rankings(locality: table.Locality) -> dict[str, tuple[tuple[str, float], ...]]:
    """Entry region → its ranking: the gateway's location first, then the others."""
    rankings = {locality.entry_region: locality.region_rtt_ms}
    for entry in locality.other_entries:
        rankings.setdefault(entry.entry_region, entry.region_rtt_ms)
    return rankings


def _trace_ranking(ranking: tuple[tuple[str, float], ...], names: list[str]) -> str:
    rtt = dict(ranking)
    return ",".join(f"{name}:{rtt[name]:g}" if name in rtt else name for name in names)


def _interleave(
    groups: tuple[table.BackendGroup, ...], rates: tuple[_Rate, ...]
) -> tuple[_Slot, ...]:
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
        ring.append(_Slot(endpoint, groups[best], rates[best]))
    return tuple(ring)


def _plans(
    backend: table.Backend,
    rankings: dict[str, tuple[tuple[str, float], ...]],
    clock: Callable[[], float],
) -> dict[str, _BackendPlan]:
    """Entry region → the plan of ``backend`` for requests entering there. The plans
    share their regions (rings, cursors, counters) and waterfall; only the order of
    the regions differs."""
    by_region: dict[str, list[table.BackendGroup]] = {}
    for group in backend.groups:
        if group.endpoints:
            by_region.setdefault(group.region, []).append(group)
    shared = {name: _RegionPlan(name, tuple(groups)) for name, groups in by_region.items()}
    orders = {entry: region_order(ranking, set(by_region)) for entry, ranking in rankings.items()}
    ranked = tuple(tuple(shared[name] for name in order) for order in orders.values())
    waterfall = _Waterfall(backend, ranked, clock) if _needs_waterfall(backend, ranked[0]) else None
    return {
        entry: _BackendPlan(
            regions=ranked[i],
            waterfall=waterfall,
            rank=i,
            trace=(entry, _trace_ranking(rankings[entry], orders[entry]), ""),
        )
        for i, entry in enumerate(orders)
    }


def _needs_waterfall(backend: table.Backend, regions: tuple[_RegionPlan, ...]) -> bool:
    """Whether a request may go elsewhere than today's fast path sends it.

    With one region there is nowhere to spill to; with GKE's default capacity, no
    failover threshold and a waterfall algorithm, the closest region with a usable
    endpoint always has room; a capacityScaler of 0 drains every region alike, so the
    closest one serves too.
    """
    if len(regions) < 2:
        return False
    per_endpoint = backend.max_rate_per_endpoint * backend.capacity_scaler
    capped = 0.0 < per_endpoint < UNLIMITED_RATE
    spray = backend.lb_algorithm is table.LbAlgorithm.SPRAY_TO_WORLD
    return capped or spray or backend.failover_health_threshold > 0


class Balancer:
    """The load-balancing decisions for one route table version.

    Build one per table version (everything is compiled here); per call only
    counters move and the health map is read. Not thread-safe: one per event loop.
    ``clock`` (monotonic seconds) times the request-rate windows; only
    capacity-aware backends read it.
    """

    __slots__ = ("_entries", "_health", "_plans", "_wrr", "table", "trace")

    def __init__(
        self,
        route_table: table.RouteTable,
        health: HealthView,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = route_table
        self._health = health
        rankings = entry_rankings(route_table.locality)
        self._entries: dict[str, dict[str, _BackendPlan]] = {entry: {} for entry in rankings}
        """Entry region → backend name → plan (the gateway's location included)."""
        for b in route_table.backends:
            for entry, plan in _plans(b, rankings, clock).items():
                self._entries[entry][b.name] = plan
        self._plans = self._entries[route_table.locality.entry_region]
        """The plans for requests entering at the gateway's location (the default)."""
        self.trace: tuple[str, str, str] = _NO_TRACE
        """(entry region, ranking, what the waterfall saw) of the last :meth:`pick`:
        the caller's decision trace, read right after the pick (no allocation)."""
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
        # One rotation per name, so a rule's weights hold across its hostnames; the
        # ref is taken from this very copy (see _Wrr).
        i = wrr.next()
        return None if i < 0 else route.backends[i]

    def pick(
        self,
        backend_name: str,
        exclude: frozenset[tuple[str, int]] = _NO_EXCLUDE,
        entry_region: str = "",
    ) -> Pick | None:
        """Return the endpoint that serves the next request to ``backend_name``.

        Args:
            backend_name: :attr:`mcgw.ir.table.Backend.name`.
            exclude: (address, port) of endpoints already tried for this request.
            entry_region: where the request entered; empty, or a region without a
                ranking in the table: the gateway's location.

        Returns:
            The endpoint, its group and the reason, or None when no endpoint is
            ready, healthy and not excluded (or the backend is unknown): answer 503.
            :attr:`trace` then holds the entry region and ranking used.
        """
        plans = self._entries.get(entry_region, self._plans) if entry_region else self._plans
        plan = plans.get(backend_name)
        if plan is None:
            self.trace = _NO_TRACE
            return None
        health = self._health
        if plan.waterfall is not None:
            waterfall = plan.waterfall
            pick = waterfall.take(health, exclude, plan.rank)
            self.trace = (plan.trace[0], plan.trace[1], waterfall.seen)
            return pick
        self.trace = plan.trace
        regions = plan.regions
        for region in regions:
            slot = region.take(health, exclude)
            if slot is not None:
                if exclude:
                    return slot.retry
                return slot.closest if region is regions[0] else slot.failover
        return None

    def regions(self, backend_name: str, entry_region: str = "") -> tuple[str, ...]:
        """Return the regions of ``backend_name`` that have endpoints, closest first
        from ``entry_region`` (default: the gateway's location)."""
        plans = self._entries.get(entry_region, self._plans) if entry_region else self._plans
        plan = plans.get(backend_name)
        return () if plan is None else tuple(region.name for region in plan.regions)

    def entry_regions(self) -> tuple[str, ...]:
        """Every entry region with a ranking of its own, the gateway's location first."""
        return tuple(self._entries)

    def rates(self, backend_name: str) -> dict[str, float]:
        """Requests per second per region of a capacity-aware backend, over the window;
        empty for backends on the fast path (they count nothing)."""
        plan = self._plans.get(backend_name)
        if plan is None or plan.waterfall is None:
            return {}
        return plan.waterfall.rates_per_s()

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

Inside a region (or a priority tier) the endpoint is chosen by the backend's
``localityLbAlgorithm``: round robin over the ring (the default, and the fast path),
RANDOM and LEAST_REQUEST (:class:`_RandomRegion`, :class:`_LeastRegion`), or consistent
hashing of the request's session affinity key (:meth:`_RegionPlan.sticky`: a Maglev
table, or a ring for RING_HASH, built at the first key). A GENERATED_COOKIE names its
endpoint directly (:func:`cookie_token`). autoCapacityDrain and priority tiers
(:class:`_Tiers`) are decided with the plan's waterfall. None of it costs anything to a
backend that does not configure it: the plan's classes are chosen once per table.

Health is read through the small :class:`HealthView` protocol, which
:class:`mcgw.dataplane.health.HealthMap` satisfies, so this module stays pure. Its
``down`` set is tested first: an endpoint not in it is used without a call.

Every answer :meth:`Balancer.pick` can give (a :class:`Pick` per endpoint and reason,
with the endpoint's ``address:port`` and its access-log fields) is built with the
plan, so a pick allocates nothing.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
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

Key = tuple[str, int]

RING_POINTS = 128
"""Points per endpoint on a RING_HASH ring (Ketama uses 100-200)."""
_MAGLEV_SIZES = (251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521)
"""Primes for Maglev lookup tables: the smallest at least 100 × the endpoints is used."""
_MAGLEV_RETRIES = 8
"""Rehashes of a key whose Maglev entry is not usable, before walking the ring."""
DRAIN_HEALTHY_SHARE = 0.25
"""autoCapacityDrain: a group with less than this share of its endpoints healthy
counts as empty (GKE's 25 %)."""

_random = random.random


def hash64(data: bytes) -> int:
    """A 64-bit hash that is the same in every process (Python's ``hash`` is salted),
    so that several gateway workers send a key to the same endpoint."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def cookie_token(key: Key) -> bytes:
    """The GENERATED_COOKIE value naming an endpoint: opaque (no address in it),
    stable across reloads and gateway processes."""
    digest = hashlib.blake2b(f"{key[0]}:{key[1]}".encode(), digest_size=8, person=b"mcgw-gclb")
    return digest.hexdigest().encode("ascii")


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
        "hashed",
        "healthy",
        "name",
        "next",
        "rate",
        "remote",
        "ring",
        "use_ring_hash",
    )

    def __init__(
        self, name: str, groups: tuple[table.BackendGroup, ...], use_ring_hash: bool = False
    ) -> None:
        self.name = name
        self.use_ring_hash = use_ring_hash
        self.hashed: _RingHash | _Maglev | None = None
        """Consistent hashing of affinity keys over the ring, built at the first key."""
        self.groups = groups
        self.group_rates = tuple(_Rate() for _ in groups)
        self.ring: tuple[_Slot, ...] = _interleave(groups, self.group_rates)
        self.next = 0
        self.rate = _Rate()
        self.remote = 0
        """Requests other worker processes sent to this region in their window, as
        last reported (:meth:`Balancer.share`); 0 with one process."""
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

    def sticky(
        self, h: int, health: HealthView, exclude: AbstractSet[tuple[str, int]]
    ) -> _Slot | None:
        """The endpoint consistent hashing gives the key hash ``h``: the same one for
        as long as it is usable; when it is not, the next usable one the hashing
        gives (the same for every request of the key), so few keys move."""
        ring = self.ring
        if not ring:
            return None
        hashed = self.hashed
        if hashed is None:
            hashed = self.hashed = _RingHash(ring) if self.use_ring_hash else _Maglev(ring)
        slot = ring[hashed.first(h)]
        key = slot.key
        if not exclude and (key not in health.down or health.healthy(*key)):
            return slot
        for index in hashed.candidates(h):
            slot = ring[index]
            key = slot.key
            if key not in exclude and (key not in health.down or health.healthy(*key)):
                return slot
        return None


def _usable(slot: _Slot, health: HealthView, exclude: AbstractSet[tuple[str, int]]) -> bool:
    key = slot.key
    return key not in exclude and (key not in health.down or health.healthy(key[0], key[1]))


class _RandomRegion(_RegionPlan):
    """localityLbAlgorithm RANDOM: a uniformly random usable endpoint."""

    __slots__ = ()

    def take(self, health: HealthView, exclude: frozenset[tuple[str, int]]) -> _Slot | None:
        ring = self.ring
        size = len(ring)
        if not size:
            return None
        slot = ring[int(_random() * size)]
        if _usable(slot, health, exclude):
            return slot
        usable = [s for s in ring if _usable(s, health, exclude)]
        return usable[int(_random() * len(usable))] if usable else None


class _LeastRegion(_RegionPlan):
    """localityLbAlgorithm LEAST_REQUEST: of two random endpoints, the one with fewer
    requests in flight (power of two choices: near-best balance at O(1) per pick)."""

    __slots__ = ("inflight",)

    def __init__(
        self, name: str, groups: tuple[table.BackendGroup, ...], inflight: dict[Key, int]
    ) -> None:
        super().__init__(name, groups)
        self.inflight = inflight

    def take(self, health: HealthView, exclude: frozenset[tuple[str, int]]) -> _Slot | None:
        ring = self.ring
        size = len(ring)
        if size < 2:
            return super().take(health, exclude)
        a = int(_random() * size)
        b = int(_random() * (size - 1))
        if b >= a:
            b += 1
        first, second = ring[a], ring[b]
        ok_first = _usable(first, health, exclude)
        ok_second = _usable(second, health, exclude)
        if ok_first and ok_second:
            inflight = self.inflight
            if inflight.get(second.key, 0) < inflight.get(first.key, 0):
                return second
            return first
        if ok_first:
            return first
        if ok_second:
            return second
        return super().take(health, exclude)


class _RingHash:
    """RING_HASH: :data:`RING_POINTS` points per endpoint on a 64-bit ring; a key goes
    to the first point at or after its hash, and on along the ring past endpoints
    that are not usable."""

    __slots__ = ("owners", "points", "size")

    def __init__(self, ring: tuple[_Slot, ...]) -> None:
        points = sorted(
            (hash64(b"%s:%d-%d" % (slot.key[0].encode(), slot.key[1], i)), index)
            for index, slot in enumerate(ring)
            for i in range(RING_POINTS)
        )
        self.points = [p for p, _ in points]
        self.owners = [o for _, o in points]
        self.size = len(ring)

    def first(self, h: int) -> int:
        """Ring index of the endpoint that owns the key hash ``h``."""
        points = self.points
        start = bisect.bisect_left(points, h)
        return self.owners[start if start < len(points) else 0]

    def candidates(self, h: int) -> list[int]:
        """Ring indexes in the order the key tries them (each endpoint once)."""
        points = self.points
        start = bisect.bisect_left(points, h)
        seen: list[int] = []
        n = len(points)
        for step in range(n):
            owner = self.owners[(start + step) % n]
            if owner not in seen:
                seen.append(owner)
                if len(seen) == self.size:
                    break
        return seen


class _Maglev:
    """MAGLEV: a lookup table of a prime size M, filled by each endpoint in turn along
    its own permutation (Eisenbud et al., 2016); a key goes to ``table[h % M]``. When
    that endpoint is not usable the key is rehashed a few times, then walks the ring,
    so keys of a usable endpoint never move."""

    __slots__ = ("entries", "size")

    def __init__(self, ring: tuple[_Slot, ...]) -> None:
        n = len(ring)
        m = next((p for p in _MAGLEV_SIZES if p >= 100 * n), _MAGLEV_SIZES[-1])
        offsets: list[int] = []
        skips: list[int] = []
        for slot in ring:
            name = b"%s:%d" % (slot.key[0].encode(), slot.key[1])
            offsets.append(hash64(b"offset/" + name) % m)
            skips.append(hash64(b"skip/" + name) % (m - 1) + 1)
        entries = [-1] * m
        nexts = [0] * n
        filled = 0
        while filled < m:
            for i in range(n):
                j = nexts[i]
                c = (offsets[i] + j * skips[i]) % m
                while entries[c] >= 0:
                    j += 1
                    c = (offsets[i] + j * skips[i]) % m
                entries[c] = i
                nexts[i] = j + 1
                filled += 1
                if filled == m:
                    break
        self.entries = entries
        self.size = n

    def first(self, h: int) -> int:
        return self.entries[h % len(self.entries)]

    def candidates(self, h: int) -> list[int]:
        entries = self.entries
        m = len(entries)
        out: list[int] = []
        for attempt in range(_MAGLEV_RETRIES):
            index = entries[(h if attempt == 0 else hash64(b"%d/%d" % (h, attempt))) % m]
            if index not in out:
                out.append(index)
        first = out[0]
        out += [(first + k) % self.size for k in range(1, self.size)]
        return out


@dataclass(frozen=True, slots=True)
class _BackendPlan:
    regions: tuple[_RegionPlan, ...]
    """Regions that have at least one endpoint (ready or not), closest first. The
    first one is the ``closest`` region even when none of its endpoints is ready:
    serving from another region is then a fail-over."""
    waterfall: _Waterfall | _Tiers | None = None
    """Set when capacity, the failover threshold or the algorithm can send a request
    elsewhere than the closest region with a usable endpoint (or the backend has
    priority tiers)."""
    affinity: table.AffinityType = table.AffinityType.NONE
    cookies: dict[bytes, tuple[_RegionPlan, _Slot]] | None = None
    """GENERATED_COOKIE: cookie value → the endpoint it names, and its region."""
    cookie_lines: dict[Key, bytes] | None = None
    """GENERATED_COOKIE: endpoint → the Set-Cookie line naming it."""
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
        "auto_drain",
        "bucket_s",
        "clock",
        "drained",
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
        self.auto_drain = backend.auto_capacity_drain
        self.drained: frozenset[Key] = frozenset()
        """autoCapacityDrain: endpoints of the groups counted as empty (refreshed)."""
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
        drained = self.drained = self._drain(health) if self.auto_drain else frozenset()
        for region in self.regions:
            healthy = 0
            for slot in region.ring:
                key = slot.key
                if key in drained:
                    continue
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

    def _drain(self, health: HealthView) -> frozenset[Key]:
        """autoCapacityDrain: the endpoints of groups under :data:`DRAIN_HEALTHY_SHARE`
        healthy, the least healthy first, at most half of the groups."""
        down = health.down
        shares: list[tuple[float, int, list[Key]]] = []
        groups = 0
        for region in self.regions:
            members: dict[int, list[Key]] = {}
            healthy: dict[int, int] = {}
            for slot in region.ring:
                group = id(slot.rate)  # one _Rate per group
                key = slot.key
                members.setdefault(group, []).append(key)
                ok = key not in down or health.healthy(key[0], key[1])
                healthy[group] = healthy.get(group, 0) + ok
            groups += len(members)
            for group, keys in members.items():
                share = healthy[group] / len(keys)
                if share < DRAIN_HEALTHY_SHARE:
                    shares.append((share, len(shares), keys))
        shares.sort()
        return frozenset(key for _, _, keys in shares[: groups // 2] for key in keys)

    def keeps(self, key: Key, health: HealthView) -> bool:
        """Whether an affinity cookie may keep endpoint ``key`` (see _pick_affine)."""
        return True

    def fresh(self, health: HealthView) -> float:
        """Move the window if a bucket ended; return the clock's reading."""
        now = self.clock()
        if now >= self.tick_at:
            self._advance(now, health)
        return now

    def take(
        self, health: HealthView, exclude: frozenset[tuple[str, int]], h: int = -1, rank: int = 0
    ) -> Pick | None:
        """The endpoint for the next request; ``h`` >= 0 is an affinity key's hash,
        which chooses the endpoint inside the region the waterfall chooses; ``rank``
        the entry region's ranking."""
        now = self.fresh(health)
        order = self.orders[rank]
        span = now - self.window_start
        slot: _Slot | None = None
        chosen: _RegionPlan | None = None
        skip = exclude | self.drained if self.drained else exclude
        if not exclude:
            if not self.spray:
                # The waterfall: the first region in order under its capacity.
                for region in order:
                    if region.rate.total + region.remote < region.capacity * span:
                        slot = _grab(region, health, skip, h)
                        if slot is not None:
                            chosen = region
                            break
            if slot is None:
                # Every region at capacity, or spraying: the least loaded one.
                chosen = self._least_loaded(order)
                if chosen is not None:
                    slot = _grab(chosen, health, skip, h)
        if slot is None:
            # Retries (the next region in order with an endpoint not tried yet), no
            # capacity anywhere (drained), or stale health: the first region in
            # order with a usable endpoint serves; a drained group as a last resort.
            for avoid in (skip, exclude) if skip is not exclude else (exclude,):
                for region in order:
                    slot = _grab(region, health, avoid, h)
                    if slot is not None:
                        chosen = region
                        break
                if slot is not None:
                    break
        if slot is None or chosen is None:
            return None
        self.count(chosen, slot)
        if exclude:
            return slot.retry
        return self.reason(chosen, slot, span, rank)

    def count(self, region: _RegionPlan, slot: _Slot) -> None:
        """Count one request to ``slot`` of ``region`` in the window."""
        index = self.index
        rate = region.rate
        rate.buckets[index] += 1
        rate.total += 1
        rate = slot.rate
        rate.buckets[index] += 1
        rate.total += 1

    def reason(self, chosen: _RegionPlan, slot: _Slot, span: float, rank: int = 0) -> Pick:
        closest = self.rankings[rank][0]
        if chosen is closest:
            return slot.closest
        if self.spray or (
            closest.fit and closest.rate.total + closest.remote >= closest.capacity * span
        ):
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
                load = (region.rate.total + region.remote) / capacity
                if best is None or load < best_load:
                    best, best_load = region, load
        return best

    def rates_per_s(self) -> dict[str, float]:
        """Region → requests per second over the window so far (for explain, tests)."""
        now = self.clock()
        span = max(now - self.window_start, self.bucket_s)
        return {region.name: (region.rate.total + region.remote) / span for region in self.regions}


class _Tiers:
    """Priority tiers (mcgw's, beyond GKE; :attr:`mcgw.ir.table.Backend.tiers`): the
    lowest tier with a usable endpoint serves; inside it clusters share requests by
    smooth weighted round robin, or, for an affinity key, by weighted rendezvous
    hashing (the same cluster for a key while it has a usable endpoint; when it has
    none, only its keys move). Plays the part of a :class:`_Waterfall` for the plan:
    capacity and the failover threshold do not apply to tiered backends."""

    __slots__ = ("current", "drained", "first", "members", "seen", "tier_of", "window_start")

    def __init__(
        self, backend: table.Backend, inflight: dict[Key, int], clock: Callable[[], float]
    ) -> None:
        settings = {t.cluster: t for t in backend.tiers}
        by_cluster: dict[str, list[table.BackendGroup]] = {}
        for group in backend.groups:
            if group.endpoints:
                by_cluster.setdefault(group.cluster, []).append(group)
        tiers: dict[int, list[tuple[_RegionPlan, int, bytes]]] = {}
        self.tier_of: dict[Key, int] = {}
        for cluster, groups in sorted(by_cluster.items()):
            plan = _region(backend, cluster, tuple(groups), inflight)
            tier = settings.get(cluster, table.ClusterTier(cluster))
            weight = tier.weight or len(plan.ring)
            if not plan.ring or weight <= 0:
                continue
            tiers.setdefault(tier.tier, []).append((plan, weight, cluster.encode()))
            for slot in plan.ring:
                self.tier_of[slot.key] = tier.tier
        self.members = tuple(tuple(tiers[t]) for t in sorted(tiers))
        self.first = min(tiers) if tiers else 0
        self.current = tuple([0] * len(m) for m in self.members)
        self.drained: frozenset[Key] = frozenset()
        self.window_start = 0.0
        self.seen = ""
        """Nothing for the decision trace: tiers do not use capacity."""

    def fresh(self, health: HealthView) -> float:
        return 0.0

    def count(self, region: _RegionPlan, slot: _Slot) -> None:
        """Nothing is counted: tiers do not use capacity."""

    def reason(self, chosen: _RegionPlan, slot: _Slot, span: float, rank: int = 0) -> Pick:
        return slot.closest if self.tier_of.get(slot.key) == self.first else slot.failover

    def rates_per_s(self) -> dict[str, float]:
        return {}

    def keeps(self, key: Key, health: HealthView) -> bool:
        """Whether an affinity cookie may keep endpoint ``key``: only in the tier that
        serves now (a session that failed over comes back when its tier does)."""
        tier = self.tier_of.get(key)
        for members in self.members:
            for plan, _, _ in members:
                if any(_usable(slot, health, _NO_EXCLUDE) for slot in plan.ring):
                    return self.tier_of.get(plan.ring[0].key) == tier
        return False

    def take(
        self, health: HealthView, exclude: frozenset[tuple[str, int]], h: int = -1, rank: int = 0
    ) -> Pick | None:
        """As :meth:`_Waterfall.take`; tiers replace region ranking (``rank`` unused)."""
        for members, current in zip(self.members, self.current, strict=True):
            left = list(range(len(members)))
            while left:
                i = self._weighted(members, left, h) if h >= 0 else _smooth(members, current, left)
                slot = _grab(members[i][0], health, exclude, h)
                if slot is not None:
                    if exclude:
                        return slot.retry
                    return self.reason(members[i][0], slot, 0.0)
                left.remove(i)  # no usable endpoint: its share goes to the others
        return None

    @staticmethod
    def _weighted(
        members: tuple[tuple[_RegionPlan, int, bytes], ...], left: list[int], h: int
    ) -> int:
        best, best_score = left[0], -1.0
        for i in left:
            _, weight, name = members[i]
            # Weighted rendezvous: -w / ln(u) with u uniform in (0, 1) per (key, cluster).
            u = (hash64(b"%d/" % h + name) + 1) / 18446744073709551617.0
            score = -weight / math.log(u)
            if score > best_score:
                best, best_score = i, score
        return best


def _smooth(
    members: tuple[tuple[_RegionPlan, int, bytes], ...], current: list[int], left: list[int]
) -> int:
    """Smooth weighted round robin over the members still in ``left``."""
    total = 0
    best = left[0]
    for i in left:
        weight = members[i][1]
        current[i] += weight
        total += weight
        if current[i] > current[best]:
            best = i
    current[best] -= total
    return best


def _grab(
    region: _RegionPlan, health: HealthView, exclude: frozenset[tuple[str, int]], h: int
) -> _Slot | None:
    return region.take(health, exclude) if h < 0 else region.sticky(h, health, exclude)


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


def _region(
    backend: table.Backend,
    name: str,
    groups: tuple[table.BackendGroup, ...],
    inflight: dict[Key, int],
) -> _RegionPlan:
    algorithm = backend.locality_lb
    if algorithm is table.LocalityLbAlgorithm.RANDOM:
        return _RandomRegion(name, groups)
    if algorithm is table.LocalityLbAlgorithm.LEAST_REQUEST:
        return _LeastRegion(name, groups, inflight)
    # ROUND_ROBIN, and RING_HASH / MAGLEV for requests without an affinity key.
    return _RegionPlan(name, groups, algorithm is table.LocalityLbAlgorithm.RING_HASH)


def _plans(
    backend: table.Backend,
    rankings: dict[str, tuple[tuple[str, float], ...]],
    clock: Callable[[], float],
    inflight: dict[Key, int],
) -> dict[str, _BackendPlan]:
    """Entry region → the plan of ``backend`` for requests entering there. The plans
    share their regions (rings, cursors, counters), cookies and waterfall; only the
    order of the regions differs."""
    by_region: dict[str, list[table.BackendGroup]] = {}
    for group in backend.groups:
        if group.endpoints:
            by_region.setdefault(group.region, []).append(group)
    shared = {
        name: _region(backend, name, tuple(groups), inflight) for name, groups in by_region.items()
    }
    orders = {entry: region_order(ranking, set(by_region)) for entry, ranking in rankings.items()}
    ranked = tuple(tuple(shared[name] for name in order) for order in orders.values())
    affinity = backend.affinity
    cookies: dict[bytes, tuple[_RegionPlan, _Slot]] = {}
    cookie_lines: dict[Key, bytes] = {}
    if affinity.type is table.AffinityType.GENERATED_COOKIE:
        suffix = b"; Path=/; HttpOnly"
        if affinity.cookie_ttl_s > 0:
            suffix += b"; Max-Age=%d" % affinity.cookie_ttl_s
        name = affinity.cookie_name.encode("latin-1")
        for region in ranked[0]:
            for slot in region.ring:
                token = cookie_token(slot.key)
                cookies[token] = (region, slot)
                cookie_lines[slot.key] = b"Set-Cookie: " + name + b"=" + token + suffix + b"\r\n"
    waterfall: _Waterfall | _Tiers | None = None
    if backend.tiers:
        waterfall = _Tiers(backend, inflight, clock)
    elif _needs_waterfall(backend, ranked[0]):
        waterfall = _Waterfall(backend, ranked, clock)
    return {
        entry: _BackendPlan(
            regions=ranked[i],
            waterfall=waterfall,
            affinity=affinity.type,
            cookies=cookies,
            cookie_lines=cookie_lines,
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
    if backend.auto_capacity_drain and regions:
        return True
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

    __slots__ = (
        "_entries",
        "_health",
        "_plans",
        "_wrr",
        "affine",
        "counted",
        "inflight",
        "table",
        "trace",
    )

    def __init__(
        self,
        route_table: table.RouteTable,
        health: HealthView,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = route_table
        self._health = health
        self.inflight: dict[Key, int] = {}
        """Requests in flight per endpoint, for LEAST_REQUEST backends (see
        :meth:`acquire`); a reload starts a new count."""
        rankings = entry_rankings(route_table.locality)
        self._entries: dict[str, dict[str, _BackendPlan]] = {entry: {} for entry in rankings}
        """Entry region → backend name → plan (the gateway's location included)."""
        for b in route_table.backends:
            for entry, plan in _plans(b, rankings, clock, self.inflight).items():
                self._entries[entry][b.name] = plan
        self._plans = self._entries[route_table.locality.entry_region]
        """The plans for requests entering at the gateway's location (the default)."""
        self.trace: tuple[str, str, str] = _NO_TRACE
        """(entry region, ranking, what the waterfall saw) of the last :meth:`pick`:
        the caller's decision trace, read right after the pick (no allocation)."""
        self.affine: dict[str, table.SessionAffinity] = {
            b.name: b.affinity
            for b in route_table.backends
            if b.affinity.type is not table.AffinityType.NONE
        }
        """Backends with session affinity: the caller passes their requests' key to
        :meth:`pick` (empty, as usual, costs the caller one test)."""
        self.counted = frozenset(
            b.name
            for b in route_table.backends
            if b.locality_lb is table.LocalityLbAlgorithm.LEAST_REQUEST
        )
        """Backends whose requests in flight the caller reports (:meth:`acquire`)."""
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
        affinity: bytes | None = None,
        entry_region: str = "",
    ) -> Pick | None:
        """Return the endpoint that serves the next request to ``backend_name``.

        Args:
            backend_name: :attr:`mcgw.ir.table.Backend.name`.
            exclude: (address, port) of endpoints already tried for this request.
            affinity: for a backend in :attr:`affine`, the request's key: the client
                address or header value to hash, or the value of the affinity cookie
                (``b""`` when the request has none). None: no affinity.
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
        if affinity:
            return self._pick_affine(backend_name, plan, exclude, affinity, entry_region)
        waterfall = plan.waterfall
        if waterfall is not None:
            pick = waterfall.take(health, exclude, -1, plan.rank)
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

    def _pick_affine(
        self,
        backend_name: str,
        plan: _BackendPlan,
        exclude: frozenset[tuple[str, int]],
        affinity: bytes,
        entry_region: str,
    ) -> Pick | None:
        """A pick with an affinity key (see the README's session affinity section).

        A cookie naming an endpoint that is usable, in a region that serves (not failed
        over, not drained), keeps it, whatever capacity says: a session stays put, and
        still counts. A hashed key (client address, header) goes where consistent
        hashing sends it inside the region the plan chooses, so it is sticky while
        that region serves. Anything else is picked as without affinity.
        """
        health = self._health
        waterfall = plan.waterfall
        self.trace = plan.trace if waterfall is None else (*plan.trace[:2], waterfall.seen)
        if plan.affinity is table.AffinityType.GENERATED_COOKIE:
            named = plan.cookies.get(affinity) if plan.cookies else None
            if named is not None:
                region, slot = named
                if waterfall is not None:
                    now = waterfall.fresh(health)
                    if (
                        region.fit
                        and slot.key not in waterfall.drained
                        and _usable(slot, health, exclude)
                        and waterfall.keeps(slot.key, health)
                    ):
                        waterfall.count(region, slot)
                        if exclude:
                            return slot.retry
                        return waterfall.reason(
                            region, slot, now - waterfall.window_start, plan.rank
                        )
                elif _usable(slot, health, exclude):
                    if exclude:
                        return slot.retry
                    return slot.closest if region is plan.regions[0] else slot.failover
            return self.pick(backend_name, exclude, None, entry_region)
        h = hash64(affinity)
        if waterfall is not None:
            return waterfall.take(health, exclude, h, plan.rank)
        regions = plan.regions
        for region in regions:
            hashed = region.sticky(h, health, exclude)
            if hashed is not None:
                if exclude:
                    return hashed.retry
                return hashed.closest if region is regions[0] else hashed.failover
        return None

    def cookie(self, backend_name: str, pick: Pick, sent: bytes | None) -> bytes:
        """The ``Set-Cookie`` line to add to the response of ``pick``: empty unless
        the backend has GENERATED_COOKIE affinity and the request's cookie (``sent``)
        does not already name the endpoint."""
        plan = self._plans.get(backend_name)
        if plan is None or not plan.cookie_lines:
            return b""
        line = plan.cookie_lines.get(pick.key, b"")
        if sent and plan.cookies is not None:
            named = plan.cookies.get(sent)
            if named is not None and named[1].key == pick.key:
                return b""
        return line

    def acquire(self, key: Key) -> None:
        """A request to endpoint ``key`` of a backend in :attr:`counted` started."""
        self.inflight[key] = self.inflight.get(key, 0) + 1

    def release(self, key: Key) -> None:
        """That request ended (answered, failed, or moved to another endpoint)."""
        left = self.inflight.get(key, 0) - 1
        if left > 0:
            self.inflight[key] = left
        else:
            self.inflight.pop(key, None)

    def regions(self, backend_name: str, entry_region: str = "") -> tuple[str, ...]:
        """Return the regions of ``backend_name`` that have endpoints, closest first
        from ``entry_region`` (default: the gateway's location)."""
        plans = self._entries.get(entry_region, self._plans) if entry_region else self._plans
        plan = plans.get(backend_name)
        return () if plan is None else tuple(region.name for region in plan.regions)

    def entry_regions(self) -> tuple[str, ...]:
        """Every entry region with a ranking of its own, the gateway's location first."""
        return tuple(self._entries)

    def ranks_from(self, entry_region: str) -> bool:
        """Whether ``entry_region`` has a ranking of its own (no allocation: per request)."""
        return entry_region in self._entries

    def counts(self) -> dict[str, dict[str, int]]:
        """Backend → region → requests this process counted in the window, for every
        capacity-aware backend (worker processes report it to the control plane)."""
        out: dict[str, dict[str, int]] = {}
        for name, plan in self._plans.items():
            if isinstance(plan.waterfall, _Waterfall):
                plan.waterfall.fresh(self._health)  # slide the window first
                out[name] = {r.name: r.rate.total for r in plan.regions}
        return out

    def share(self, others: dict[str, dict[str, int]]) -> None:
        """Take the other worker processes' window counts (backend → region →
        requests) into the capacity decisions: a region is full when everyone's
        requests together reach its capacity."""
        for name, plan in self._plans.items():
            if isinstance(plan.waterfall, _Waterfall):
                regions = others.get(name, {})
                for region in plan.regions:
                    region.remote = regions.get(region.name, 0)

    def rates(self, backend_name: str) -> dict[str, float]:
        """Requests per second per region of a capacity-aware backend, over the window;
        empty for backends on the fast path (they count nothing)."""
        plan = self._plans.get(backend_name)
        if plan is None or plan.waterfall is None:
            return {}
        return plan.waterfall.rates_per_s()

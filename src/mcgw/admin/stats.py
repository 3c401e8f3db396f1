"""Counter cells folded into the totals people read, and their recent history.

Pure: everything here takes the cells (:meth:`mcgw.dataplane.metrics.Metrics.cells`)
and clock readings as arguments, so it is tested without sockets or sleeps.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from mcgw.dataplane import metrics

NO_BACKEND = "(none)"
"""What requests that reached no endpoint are shown under, for cluster and zone."""

HISTORY = 300
"""Samples kept (one a second: five minutes)."""

RECENT = 10
"""Samples that make the "recent" rates and percentiles (ten seconds)."""

QUANTILES = (0.5, 0.9, 0.99)


@dataclass(slots=True)
class Totals:
    """Requests, errors and latency buckets of one slice of traffic."""

    requests: int = 0
    errors: int = 0
    sum_s: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(metrics.BUCKETS_S) + 1))

    def add(self, cell: metrics.Cell, error: bool) -> None:
        self.requests += cell.count
        if error:
            self.errors += cell.count
        self.sum_s += cell.sum_s
        buckets = self.buckets
        for i, n in enumerate(cell.buckets):
            if n:
                buckets[i] += n

    def minus(self, old: Totals | None) -> Totals:
        """What happened since ``old`` was read (all of it when ``old`` is None)."""
        if old is None:
            return Totals(self.requests, self.errors, self.sum_s, list(self.buckets))
        return Totals(
            self.requests - old.requests,
            self.errors - old.errors,
            self.sum_s - old.sum_s,
            [a - b for a, b in zip(self.buckets, old.buckets, strict=True)],
        )

    def quantiles_ms(self) -> dict[str, float | None]:
        """p50, p90 and p99 in milliseconds (None without requests)."""
        out: dict[str, float | None] = {}
        for q in QUANTILES:
            value = metrics.quantile(q, self.buckets)
            out[f"p{round(q * 100)}"] = None if value is None else round(value * 1000, 2)
        return out


GroupKey = tuple[str, str, str, str]
"""(backend, cluster, region, zone): a backend group, or :data:`NO_BACKEND` twice."""


@dataclass(slots=True)
class Reading:
    """Every total at one instant."""

    at: float
    """Wall-clock seconds (the dashboard's time axis)."""
    clock: float
    """Monotonic seconds: spans are measured on this clock, since the wall clock may be
    slewed or stepped."""
    total: Totals
    groups: dict[GroupKey, Totals]
    routes: dict[str, Totals]


def read(cells: Iterable[tuple[metrics.Key, metrics.Cell]], at: float, clock: float) -> Reading:
    """Fold counter cells into totals: overall, per backend group, per route."""
    total = Totals()
    groups: dict[GroupKey, Totals] = {}
    routes: dict[str, Totals] = {}
    for key, cell in cells:
        error = metrics.is_error(key.status)
        total.add(cell, error)
        cluster, region, zone = key.picked[0], key.picked[1], key.picked[2]
        gkey = (
            (key.backend, cluster, region, zone)
            if cluster
            else (key.backend, NO_BACKEND, "", NO_BACKEND)
        )
        group = groups.get(gkey)
        if group is None:
            group = groups[gkey] = Totals()
        group.add(cell, error)
        route = routes.get(key.route)
        if route is None:
            route = routes[key.route] = Totals()
        route.add(cell, error)
    return Reading(at, clock, total, groups, routes)


def by_endpoint(cells: Iterable[tuple[metrics.Key, metrics.Cell]]) -> dict[tuple[str, str], int]:
    """(backend, ``address:port``) → requests that backend sent that endpoint.

    Keyed by backend too: a pod selected by several Services is an endpoint of each of
    their backends, and each backend's row must show only its own share (as the
    ``backend`` label of ``mcgw_http_requests_total`` does)."""
    served: dict[tuple[str, str], int] = {}
    for key, cell in cells:
        address = key.picked[4]
        if address:
            ekey = (key.backend, address)
            served[ekey] = served.get(ekey, 0) + cell.count
    return served


@dataclass(frozen=True, slots=True)
class Sample:
    """One second (or so) of traffic: the difference between two readings."""

    at: float
    """Wall-clock seconds at its end."""
    span_s: float
    total: Totals
    groups: dict[GroupKey, Totals]
    """Backend groups that served requests in the span, and what they served."""

    def by_zone(self) -> dict[tuple[str, str], Totals]:
        """(cluster, zone) → what they served in the span (backends folded)."""
        zones: dict[tuple[str, str], Totals] = {}
        for gkey, t in self.groups.items():
            into = zones.get((gkey[1], gkey[3]))
            if into is None:
                into = zones[(gkey[1], gkey[3])] = Totals()
            merge(into, t)
        return zones


class Sampler:
    """Keeps the last :data:`HISTORY` samples; feed it a :class:`Reading` about once a
    second."""

    __slots__ = ("first", "last", "samples")

    def __init__(self) -> None:
        self.samples: deque[Sample] = deque(maxlen=HISTORY)
        self.last: Reading | None = None
        """The latest reading."""
        self.first: Reading | None = None
        """The first reading, taken when sampling began."""

    def take(self, reading: Reading) -> Sample | None:
        """Record ``reading``; return the sample it closes (None for the first)."""
        previous, self.last = self.last, reading
        if previous is None:
            self.first = reading
            return None
        span = reading.clock - previous.clock
        if span <= 0:
            return None
        groups: dict[GroupKey, Totals] = {}
        for gkey, now in reading.groups.items():
            delta = now.minus(previous.groups.get(gkey))
            if delta.requests:
                groups[gkey] = delta
        sample = Sample(reading.at, span, reading.total.minus(previous.total), groups)
        self.samples.append(sample)
        return sample

    def recent(self, count: int = RECENT) -> tuple[float, Totals, dict[GroupKey, Totals]]:
        """The last ``count`` samples summed: (span_s, overall, per backend group)."""
        taken = list(self.samples)[-count:]
        span = sum(s.span_s for s in taken)
        total = Totals()
        groups: dict[GroupKey, Totals] = {}
        for s in taken:
            merge(total, s.total)
            for gkey, t in s.groups.items():
                into = groups.get(gkey)
                if into is None:
                    into = groups[gkey] = Totals()
                merge(into, t)
        return span, total, groups


def merge(into: Totals, other: Totals) -> None:
    """Add ``other`` to ``into``."""
    into.requests += other.requests
    into.errors += other.errors
    into.sum_s += other.sum_s
    into.buckets = [a + b for a, b in zip(into.buckets, other.buckets, strict=True)]

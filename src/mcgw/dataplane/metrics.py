"""Request counters for Prometheus and the admin API, kept on the hot path for pennies.

Per request, :meth:`Metrics.observe` does one dict look-up keyed by a tuple of
strings the request already holds (listener, route, backend, the pick's access-log
fields, status, statusDetails), three in-place additions and a ``bisect`` into fixed
latency buckets. Nothing is formatted, labelled or locked per request: a
:class:`Cell` per distinct key is created the first time the key is seen, and every
aggregation (labels, sums, histograms, rates) happens when someone reads, through
:meth:`Metrics.cells`: a Prometheus scrape or the admin API's sampler.

The key is finer than any label set exported (it keeps the region, pod and pick
reason): readers fold it into what they show, so label cardinality is a decision of
the reader, not of the hot path. Its size is bounded by routes × endpoints × reasons
× statuses × details, all of which are small, closed sets.

Counts come from the data plane itself, never from the access log (which can be off
or sampled). HTTP/2 streams run through private :class:`protocol.ClientConnection`
objects and are counted by the same call.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import NamedTuple

BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.125,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds (seconds, inclusive, as Prometheus ``le``) of the latency buckets;
a last one, +Inf, is implicit. Dense between 50 ms and 500 ms, where inter-region
round trips fall, so percentiles read from them are close to the truth there."""

_BUCKETS = len(BUCKETS_S) + 1


class Key(NamedTuple):
    """What a request is counted under (built by the protocol as a plain tuple)."""

    listener: str
    """Listener name ``<namespace>/<gateway>/<port>``."""
    route: str
    """Route name, empty when none matched."""
    backend: str
    """Backend name, empty when none was chosen."""
    picked: tuple[str, str, str, str, str, str]
    """cluster, region, zone, pod, ``address:port``, reason of the last pick (empty
    strings when no endpoint was picked; the reason ``no_route`` when no route matched)."""
    status: int
    """HTTP status sent, 0 when none was (the client left first)."""
    details: str
    """Cloud Load Balancing statusDetails, e.g. ``response_sent_by_backend``."""


class Cell:
    """The running totals of one key: requests, latency sum and bucket counts."""

    __slots__ = ("buckets", "count", "sum_s")

    def __init__(self) -> None:
        self.count = 0
        self.sum_s = 0.0
        self.buckets = [0] * _BUCKETS
        """Requests per latency bucket (not cumulative), +Inf last."""


class Metrics:
    """The counters of one gateway process. One event loop, no locks."""

    __slots__ = ("_cells", "started")

    def __init__(self, started: float = 0.0) -> None:
        self._cells: dict[tuple[object, ...], Cell] = {}
        self.started = started
        """Wall-clock seconds when counting began (for readers that show uptime)."""

    def observe(self, key: tuple[object, ...], seconds: float) -> None:
        """Count one finished request under ``key`` (a :class:`Key`-shaped tuple)."""
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = Cell()
        cell.count += 1
        cell.sum_s += seconds
        cell.buckets[bisect_left(BUCKETS_S, seconds)] += 1

    def cells(self) -> list[tuple[Key, Cell]]:
        """Every key seen so far with its cell (live objects: read, do not keep)."""
        return [(Key(*key), cell) for key, cell in self._cells.items()]  # type: ignore[arg-type]


def is_error(status: int) -> bool:
    """Whether a request counts as an error: a 5xx, or no response at all."""
    return status >= 500 or status == 0


def quantile(q: float, buckets: list[int] | tuple[int, ...]) -> float | None:
    """Estimate the ``q`` quantile (0-1) in seconds from per-bucket counts, as
    Prometheus' ``histogram_quantile`` does: linear inside the bucket it falls in.

    Args:
        q: the quantile, e.g. 0.99.
        buckets: counts per bucket of :data:`BUCKETS_S`, +Inf last (not cumulative).

    Returns:
        Seconds, or None when there is no count. A quantile in the +Inf bucket is
        reported as the last finite bound.
    """
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(buckets):
        if n and seen + n >= rank:
            if i >= len(BUCKETS_S):
                return BUCKETS_S[-1]
            low = BUCKETS_S[i - 1] if i else 0.0
            high = BUCKETS_S[i]
            return low + (high - low) * max(0.0, rank - seen) / n
        seen += n
    return BUCKETS_S[-1]

"""k6's metric types, a registry of them, and the immutable end-of-test summary.

Four types, as in k6: a **Counter** sums (and gives a rate per second of test time), a
**Gauge** keeps the last, min and max value, a **Rate** counts how often a value is
non-zero, a **Trend** gives avg/min/med/max/percentiles. Trends keep their samples in an
HdrHistogram (3 significant digits) so memory stays bounded however long the test runs;
count, sum, min and max are kept exactly beside it.

Units follow k6's JSON summary: time trends are in milliseconds, data in bytes, rates
are fractions. Samples are recorded in nanoseconds (time) and converted on summary.
"""

from __future__ import annotations

import bisect
import itertools
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from hdrh.histogram import HdrHistogram

MetricType = Literal["counter", "gauge", "rate", "trend"]
Contains = Literal["default", "time", "data"]

_HIGHEST_NS = 3_600 * 1_000_000_000
"""Longest time a trend resolves (1 h); longer samples are clamped to it."""

_PERCENTILE_RE = re.compile(r"^p\((\d+(?:\.\d+)?)\)$")

# HdrHistogram's record_value is pure Python and costs ~2 µs (five calls, a bin() string
# for the leading zeros), and its ctypes counter array is slow to index; a request records
# about ten trend samples. Trend.add computes the same counts index inline from these
# layout constants and bumps a plain list (same length, ~270 kB: bounded); the histogram
# is brought up to date from it when read (summary, thresholds, merge).
_LAYOUT = HdrHistogram(1, _HIGHEST_NS, 3)
_COUNTS_LEN = int(_LAYOUT.counts_len)
_UNIT = int(_LAYOUT.unit_magnitude)
_HALF_MAG = int(_LAYOUT.sub_bucket_half_count_magnitude)
_HALF = int(_LAYOUT.sub_bucket_half_count)
_MASK = int(_LAYOUT.sub_bucket_mask)
_SHIFT = _UNIT + _HALF_MAG + 1
del _LAYOUT


# With a lowest trackable value of 1 (unit magnitude 0), the index simplifies to
# (bucket << half_mag) + (value >> bucket); Trend.add relies on it.
assert _UNIT == 0 and _HALF == 1 << _HALF_MAG
_NO_MIN = 1 << 62
"""A Trend's minimum before its first sample (above any value)."""


def _counts_index(value: int) -> int:
    """HdrHistogram's counts index of ``value`` (0 ≤ value ≤ 1 h), as ``add`` inlines it."""
    bucket = (value | _MASK).bit_length() - _SHIFT
    return ((bucket + 1) << _HALF_MAG) + (value >> (bucket + _UNIT)) - _HALF


def _index_table(limit: int) -> list[int]:
    """The counts index of every value below ``limit`` (a power of two ≥ 2048), built a run
    of equal indexes at a time: HdrHistogram's index of v is v below 2048, then each index
    covers 2, 4, 8… consecutive values."""
    runs: list[Iterable[int]] = [range(2 * _HALF)]
    width = 1
    while (2 * _HALF) << (width - 1) < limit:
        low = (2 * _HALF) << (width - 1)
        first = _counts_index(low)
        runs.extend(itertools.repeat(i, 1 << width) for i in range(first, first + _HALF))
        width += 1
    return list(itertools.chain.from_iterable(runs))


_TABLE_LIMIT = 1 << 16
_INDEX_OF = _index_table(_TABLE_LIMIT)
"""Counts indexes of values below 65.5 µs (most of a request's blocked, sending, receiving
and, against a fast backend, waiting): one list lookup instead of bit_length and shifts."""


def _coarse_table(limit: int) -> list[int]:
    """The counts index of every value in [``_TABLE_LIMIT``, ``limit``) by ``value >>
    _COARSE``: exact there, as each index covers at least 64 consecutive values from
    65,536 up (entries below ``_TABLE_LIMIT >> _COARSE`` are left 0: that table serves)."""
    table = [0] * (_TABLE_LIMIT >> _COARSE)
    low = _TABLE_LIMIT
    while low < limit:
        width = (low // (2 * _HALF)).bit_length()  # each index covers 2**width values
        first = _counts_index(low)
        table.extend(
            itertools.chain.from_iterable(
                itertools.repeat(i, (1 << width) >> _COARSE) for i in range(first, first + _HALF)
            )
        )
        low <<= 1
    return table


_COARSE = 5
_COARSE_LIMIT = 1 << 21
_INDEX_COARSE = _coarse_table(_COARSE_LIMIT)
"""Counts indexes of values from 65.5 µs to 2.1 ms (a request's waiting and duration
against a near backend), by ``value >> 5``: a shift and a lookup instead of bit_length."""


def _index_low(index: int) -> int:
    """The lowest value counted at ``index`` (the inverse of _counts_index)."""
    if index < 2 * _HALF:
        return index
    bucket = (index >> _HALF_MAG) - 1
    return (index - (bucket << _HALF_MAG)) << bucket


def _index_high(index: int) -> int:
    """The highest value counted at ``index``."""
    if index < 2 * _HALF:
        return index
    bucket = (index >> _HALF_MAG) - 1
    return ((index - (bucket << _HALF_MAG) + 1) << bucket) - 1


def _first_nonzero(counts: list[int]) -> int:
    for i, n in enumerate(counts):
        if n:
            return i
    return -1


def _last_nonzero(counts: list[int]) -> int:
    for i in range(len(counts) - 1, -1, -1):
        if counts[i]:
            return i
    return -1


class Counter:
    """A sum, e.g. ``http_reqs``, ``data_sent``."""

    __slots__ = ("contains", "count", "name")
    kind: MetricType = "counter"

    def __init__(self, name: str, contains: Contains = "default") -> None:
        self.name = name
        self.contains = contains
        self.count = 0

    def add(self, value: int = 1) -> None:
        self.count += value

    def merge(self, other: Counter) -> None:
        self.count += other.count

    def stat(self, name: str, duration_s: float) -> float | None:
        if name == "count":
            return float(self.count)
        if name == "rate":
            return self.count / duration_s if duration_s > 0 else 0.0
        return None

    def summary(self, duration_s: float, stats: tuple[str, ...]) -> MetricSummary:
        rate = self.count / duration_s if duration_s > 0 else 0.0
        return MetricSummary(
            self.name, self.kind, self.contains, (("count", self.count), ("rate", rate))
        )


class Gauge:
    """The latest value with its min and max, e.g. ``vus``."""

    __slots__ = ("contains", "max", "min", "name", "value")
    kind: MetricType = "gauge"

    def __init__(self, name: str, contains: Contains = "default") -> None:
        self.name = name
        self.contains = contains
        self.value = 0.0
        self.min = float("inf")
        self.max = float("-inf")

    def set(self, value: float) -> None:
        self.value = value
        self.min = min(self.min, value)
        self.max = max(self.max, value)

    def merge(self, other: Gauge) -> None:
        # Workers' gauges (vus, vus_max) add up: each holds a share of the VUs.
        self.value += other.value
        if other.min != float("inf"):
            self.min = other.min if self.min == float("inf") else self.min + other.min
        if other.max != float("-inf"):
            self.max = other.max if self.max == float("-inf") else self.max + other.max

    def stat(self, name: str, duration_s: float) -> float | None:
        return {"value": self.value, "min": self.min, "max": self.max}.get(name)

    def summary(self, duration_s: float, stats: tuple[str, ...]) -> MetricSummary:
        low = self.min if self.min != float("inf") else 0.0
        high = self.max if self.max != float("-inf") else 0.0
        return MetricSummary(
            self.name,
            self.kind,
            self.contains,
            (("value", self.value), ("min", low), ("max", high)),
        )


class Rate:
    """The share of non-zero samples, e.g. ``http_req_failed`` (true = failed)."""

    __slots__ = ("contains", "fails", "name", "passes")
    kind: MetricType = "rate"

    def __init__(self, name: str, contains: Contains = "default") -> None:
        self.name = name
        self.contains = contains
        self.passes = 0
        self.fails = 0

    def add(self, value: bool) -> None:
        if value:
            self.passes += 1
        else:
            self.fails += 1

    def merge(self, other: Rate) -> None:
        self.passes += other.passes
        self.fails += other.fails

    def stat(self, name: str, duration_s: float) -> float | None:
        total = self.passes + self.fails
        if name in ("rate", "share"):
            return self.passes / total if total else 0.0
        if name in ("passes", "count"):
            return float(self.passes)
        if name == "fails":
            return float(self.fails)
        return None

    def summary(self, duration_s: float, stats: tuple[str, ...]) -> MetricSummary:
        total = self.passes + self.fails
        rate = self.passes / total if total else 0.0
        return MetricSummary(
            self.name,
            self.kind,
            self.contains,
            (("rate", rate), ("passes", self.passes), ("fails", self.fails)),
        )


class Trend:
    """A distribution, e.g. ``http_req_duration``. Time samples are nanoseconds."""

    __slots__ = (
        "_bulk",
        "_counts",
        "_cum",
        "_hist",
        "_lo",
        "_n",
        "contains",
        "max",
        "name",
        "total",
        "zeros",
    )
    kind: MetricType = "trend"

    def __init__(self, name: str, contains: Contains = "time") -> None:
        self.name = name
        self.contains = contains
        self._hist = HdrHistogram(1, _HIGHEST_NS, 3)
        self._counts = [0] * _COUNTS_LEN
        self._n = 0
        self.total = 0
        self._lo = _NO_MIN
        self.max = 0
        self._cum: tuple[int, list[int]] | None = None
        """Cumulative counts for percentiles, with the count they were computed at."""
        self.zeros = 0
        """Samples of 0 not folded in yet: the hot path bumps this for the metrics that
        are 0 on nearly every request (connecting and TLS on a reused connection)."""
        self._bulk: np.ndarray[Any, np.dtype[np.int64]] | None = None
        """Counts of :func:`add_rows` samples not folded into ``_counts`` yet."""

    @property
    def count(self) -> int:
        self._fold()
        return self._n

    @property
    def min(self) -> int:
        self._fold()
        return self._lo if self._n else 0

    def add(self, value: int) -> None:
        # The hot path (~5 samples per request): one comparison per bound, the counts
        # index inlined (see _counts_index), out-of-range values on the slow path.
        if value < self._lo:
            self._lo = value
        if value > self.max:
            self.max = value
        self._n += 1
        self.total += value
        if 0 <= value <= _HIGHEST_NS:
            bucket = (value | _MASK).bit_length() - _SHIFT
            self._counts[(bucket << _HALF_MAG) + (value >> bucket)] += 1
        else:
            self._add_clamped(value)

    def add_many(self, values: Sequence[int]) -> None:
        """``add`` each of ``values``: the bounds, count and sum in C (min, max, sum), one
        tight loop for the counts — how the runner records a batch of requests."""
        if not values:
            return
        low = min(values)
        high = max(values)
        if low < 0 or high > _HIGHEST_NS:
            for value in values:
                self.add(value)
            return
        if low < self._lo:
            self._lo = low
        if high > self.max:
            self.max = high
        self._n += len(values)
        self.total += sum(values)
        counts = self._counts
        # A batch of one metric usually falls in one table's range (sending and
        # receiving below 65 µs, waiting and duration above): then its loop tests no
        # range per value (~20 % less per value than the general loop below).
        if high < _TABLE_LIMIT:
            table = _INDEX_OF
            for value in values:
                counts[table[value]] += 1
        elif low >= _TABLE_LIMIT and high < _COARSE_LIMIT:
            coarse = _INDEX_COARSE
            for value in values:
                counts[coarse[value >> _COARSE]] += 1
        else:
            table = _INDEX_OF
            coarse = _INDEX_COARSE
            for value in values:
                if value < _TABLE_LIMIT:
                    counts[table[value]] += 1
                elif value < _COARSE_LIMIT:
                    counts[coarse[value >> _COARSE]] += 1
                else:
                    bucket = (value | _MASK).bit_length() - _SHIFT
                    counts[(bucket << _HALF_MAG) + (value >> bucket)] += 1

    def _add_clamped(self, value: int) -> None:
        self.total -= value
        if value < 0:
            value = 0
            self._lo = 0
        self.total += value
        self._counts[_counts_index(min(value, _HIGHEST_NS))] += 1

    def _fold(self) -> None:
        zeros = self.zeros
        if zeros:
            self.zeros = 0
            self._counts[0] += zeros
            self._n += zeros
            self._lo = 0
        bulk = self._bulk
        if bulk is not None:
            self._bulk = None
            counts = self._counts
            used = np.flatnonzero(bulk)
            for index, n in zip(used.tolist(), bulk[used].tolist(), strict=True):
                counts[index] += n

    def assign_difference(self, whole: Trend, part: Trend) -> None:
        """Become ``whole`` without the samples of ``part`` (a subset of them): how
        ``http_req_duration{expected_response:true}`` is derived from all durations
        minus the unexpected ones instead of a second sample per request. Min and max
        are exact when ``part`` is empty, else at the histogram's precision."""
        whole._fold()
        part._fold()
        self._bulk = None
        if part._n == 0:
            self._counts = list(whole._counts)
            self._n, self.total = whole._n, whole.total
            self._lo, self.max = whole._lo, whole.max
        else:
            self._counts = [a - b for a, b in zip(whole._counts, part._counts, strict=True)]
            self._n = whole._n - part._n
            self.total = whole.total - part.total
            used = [
                i for i in (_first_nonzero(self._counts), _last_nonzero(self._counts)) if i >= 0
            ]
            if used:
                self._lo = max(whole._lo, _index_low(used[0]))
                self.max = min(whole.max, _index_high(used[1]))
            else:
                self._lo, self.max = _NO_MIN, 0
        self.zeros = 0
        self._hist.total_count = -1  # stale: re-synced on the next read
        self._cum = None

    def _synced(self) -> HdrHistogram:
        """The histogram as ``record_value`` would have left it."""
        self._fold()
        hist = self._hist
        if hist.total_count != self._n:  # only add and merge change counts, and count
            hist.counts[:] = self._counts
        hist.total_count = self._n
        if self._n:
            hist.min_value = min(self.min, _HIGHEST_NS)
            hist.max_value = min(self.max, _HIGHEST_NS)
        return hist

    def merge(self, other: Trend) -> None:
        self._fold()
        other._fold()
        if other._n == 0:
            return
        mine = self._counts
        for index, n in enumerate(other._counts):
            if n:
                mine[index] += n
        self._lo = min(self._lo, other._lo)
        self.max = max(self.max, other.max)
        self._n += other._n
        self.total += other.total

    def __getstate__(self) -> dict[str, object]:
        # Workers send trends to the parent: the histogram travels HdrHistogram-encoded.
        self._fold()
        return {
            "name": self.name,
            "contains": self.contains,
            "count": self._n,
            "total": self.total,
            "min": self.min,
            "max": self.max,
            "hist": self._synced().encode(),
        }

    def __setstate__(self, state: dict[str, object]) -> None:
        self.name = str(state["name"])
        self.contains = state["contains"]  # type: ignore[assignment]
        self._n = int(state["count"])  # type: ignore[call-overload]
        self.total = int(state["total"])  # type: ignore[call-overload]
        self._lo = int(state["min"]) if self._n else _NO_MIN  # type: ignore[call-overload]
        self.max = int(state["max"])  # type: ignore[call-overload]
        self.zeros = 0
        self._bulk = None
        self._hist = HdrHistogram(1, _HIGHEST_NS, 3)
        self._hist.decode_and_add(state["hist"])
        self._counts = list(self._hist.counts)
        self._cum = None

    def stat(self, name: str, duration_s: float = 0.0) -> float | None:
        """One statistic in summary units (ms for time), for thresholds."""
        self._fold()
        scale = 1e-6 if self.contains == "time" else 1.0
        if name == "count":
            return float(self._n)
        if name == "avg":
            return (self.total / self._n if self._n else 0.0) * scale
        if name == "min":
            return self.min * scale
        if name == "max":
            return self.max * scale
        if name == "med":
            return self.percentile(50) * scale
        match = _PERCENTILE_RE.match(name)
        if match is None:
            return None
        return self.percentile(float(match.group(1))) * scale

    def percentile(self, p: float) -> int:
        """The value at percentile ``p`` (0–100), clamped to the exact min and max.

        HdrHistogram's ``get_value_at_percentile`` (the highest value equivalent to the
        first index whose cumulative count reaches the target), over cumulative counts
        computed once per state in C (``accumulate``) and searched with ``bisect``: the
        summary asks for several percentiles of a dozen trends at once.
        """
        self._fold()
        if self._n == 0:
            return 0
        if p <= 0:
            return self._lo
        if p >= 100:
            return self.max
        cumulative = self._cumulative()
        target = max(int(p * self._n / 100 + 0.5), 1)
        index = bisect.bisect_left(cumulative, target)
        value = _index_high(min(index, len(cumulative) - 1))
        return min(max(value, self._lo), self.max)

    def _cumulative(self) -> list[int]:
        cached = self._cum
        if cached is not None and cached[0] == self._n:
            return cached[1]
        cumulative = list(itertools.accumulate(self._counts))
        self._cum = (self._n, cumulative)
        return cumulative

    def summary(self, duration_s: float, stats: tuple[str, ...]) -> MetricSummary:
        self._fold()
        scale = 1e-6 if self.contains == "time" else 1.0  # ns → ms, like k6's summary
        values: list[tuple[str, float]] = []
        for stat in stats:
            if stat == "avg":
                raw: float = self.total / self._n if self._n else 0.0
            elif stat == "min":
                raw = self.min
            elif stat == "max":
                raw = self.max
            elif stat == "med":
                raw = self.percentile(50)
            elif stat == "count":
                values.append((stat, self._n))
                continue
            else:
                match = _PERCENTILE_RE.match(stat)
                if match is None:
                    raise ValueError(f"unknown trend stat {stat!r}")
                raw = self.percentile(float(match.group(1)))
            values.append((stat, raw * scale))
        return MetricSummary(self.name, self.kind, self.contains, tuple(values))


def int64_rows(columns: Sequence[Sequence[int]], spare: int = 0) -> np.ndarray[Any, Any]:
    """``columns`` (of equal length, Python ints) as the first rows of an int64 array with
    ``spare`` rows more (uninitialised). Through ``struct.pack``: numpy's own conversion of
    Python ints (dtype discovery, per-item setters) cost ~3x as much per value."""
    k = len(columns)
    n = len(columns[0])
    rows = np.empty((k + spare, n), np.int64)
    packed = struct.pack(f"{k * n}q", *itertools.chain.from_iterable(columns))
    rows[:k] = np.frombuffer(packed, np.int64).reshape(k, n)
    return rows


def add_rows(trends: Sequence[Trend], rows: np.ndarray[Any, np.dtype[np.int64]]) -> None:
    """``trends[i].add_many(rows[i])`` for each trend, the work in numpy: how the runner
    records a batch of requests (five time trends). Per value, a Python loop's ``counts[
    index] += 1`` (and min, max, sum over Python ints) cost several times numpy's
    conversion of the columns plus its vector operations, which are per batch."""
    lows = rows.min(axis=1).tolist()
    highs = rows.max(axis=1).tolist()
    if min(lows) < 0 or max(highs) > _HIGHEST_NS:  # clamped as add clamps them
        for trend, row in zip(trends, rows.tolist(), strict=True):
            trend.add_many(row)
        return
    totals = rows.sum(axis=1).tolist()
    n = rows.shape[1]
    # = Trend.add's index: bit_length from frexp's exponent (exact: values < 2**53).
    bucket = np.frexp((rows | _MASK).astype(np.float64))[1] - _SHIFT
    indexes = (bucket.astype(np.int64) << _HALF_MAG) + (rows >> bucket)
    for trend, low, high, total, index in zip(trends, lows, highs, totals, indexes, strict=True):
        if low < trend._lo:
            trend._lo = low
        if high > trend.max:
            trend.max = high
        trend._n += n
        trend.total += total
        bulk = trend._bulk
        if bulk is None:
            bulk = trend._bulk = np.zeros(_COUNTS_LEN, np.int64)
        np.add.at(bulk, index, 1)


Metric = Counter | Gauge | Rate | Trend


BUILTIN: dict[str, tuple[MetricType, Contains]] = {
    "checks": ("rate", "default"),
    "data_received": ("counter", "data"),
    "data_sent": ("counter", "data"),
    "dropped_iterations": ("counter", "default"),
    "group_duration": ("trend", "time"),
    "http_req_blocked": ("trend", "time"),
    "http_req_connecting": ("trend", "time"),
    "http_req_duration": ("trend", "time"),
    "http_req_failed": ("rate", "default"),
    "http_req_receiving": ("trend", "time"),
    "http_req_response_time": ("trend", "time"),
    "http_req_sending": ("trend", "time"),
    "http_req_tls_handshaking": ("trend", "time"),
    "http_req_waiting": ("trend", "time"),
    "http_reqs": ("counter", "default"),
    "iteration_duration": ("trend", "time"),
    "iterations": ("counter", "default"),
    "iterations_late": ("counter", "default"),
    "vus": ("gauge", "default"),
    "vus_max": ("gauge", "default"),
}
"""k6's built-in metrics, plus mcgw's ``http_req_response_time`` (from the intended
send time, open models only) and ``iterations_late``."""

Selector = tuple[tuple[str, str], ...]


def parse_submetric(name: str) -> tuple[str, Selector]:
    """``http_req_duration{status:200,method:GET}`` → ("http_req_duration", pairs)."""
    parent, brace, rest = name.partition("{")
    if not brace:
        return name.strip(), ()
    if not rest.endswith("}"):
        raise ValueError(f"bad submetric {name!r}: expected name{{tag:value,...}}")
    pairs = []
    for part in rest[:-1].split(","):
        key, colon, value = part.partition(":")
        if not colon or not key.strip():
            raise ValueError(f"bad submetric {name!r}: expected tag:value pairs")
        pairs.append((key.strip(), value.strip().strip("'\"")))
    return parent.strip(), tuple(pairs)


class Registry:
    """The run's metrics by name, created on first use (so unused ones are not shown).

    Submetrics (``metric{tag:value}``) are declared up front, as thresholds do in k6;
    a tagged sample then also lands in each of its parent's submetrics that it matches.
    """

    __slots__ = ("_metrics", "submetrics")

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}
        self.submetrics: dict[str, list[tuple[Selector, Metric]]] = {}

    def declare(self, name: str) -> Metric:
        """Create (or return) a built-in metric or a submetric of one by full name."""
        if name in self._metrics:
            return self._metrics[name]
        parent, selector = parse_submetric(name)
        kind, contains = BUILTIN.get(parent, ("trend", "default"))
        metric: Metric
        if kind == "counter":
            metric = Counter(name, contains)
        elif kind == "gauge":
            metric = Gauge(name, contains)
        elif kind == "rate":
            metric = Rate(name)
        else:
            metric = Trend(name, contains)
        self._metrics[name] = metric
        if selector:
            self.submetrics.setdefault(parent, []).append((selector, metric))
        return metric

    def get(self, name: str) -> Metric | None:
        return self._metrics.get(name)

    def names(self) -> list[str]:
        return sorted(self._metrics)

    def merge(self, other: Registry) -> None:
        """Add another registry's samples (a worker's) into this one."""
        for name, metric in other._metrics.items():
            mine = self._metrics.get(name)
            if mine is None:
                self._metrics[name] = metric
                parent, selector = parse_submetric(name)
                if selector:
                    self.submetrics.setdefault(parent, []).append((selector, metric))
            else:
                mine.merge(metric)  # type: ignore[arg-type]

    def adopt(self, metric: Metric) -> Metric:
        """Register a metric made elsewhere (a script's custom metric, or a submetric of
        one) under its name. Not in ``submetrics``: custom samples are routed to their
        submetrics by :class:`~mcgw.loadtest.custom.Recorder`, and the built-ins' tagged
        path stays off when only custom metrics have submetrics."""
        self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, contains: Contains = "default") -> Counter:
        metric = self._metrics.get(name)
        if metric is None:
            metric = self._metrics[name] = Counter(name, contains)
        assert isinstance(metric, Counter)
        return metric

    def gauge(self, name: str, contains: Contains = "default") -> Gauge:
        metric = self._metrics.get(name)
        if metric is None:
            metric = self._metrics[name] = Gauge(name, contains)
        assert isinstance(metric, Gauge)
        return metric

    def rate(self, name: str) -> Rate:
        metric = self._metrics.get(name)
        if metric is None:
            metric = self._metrics[name] = Rate(name)
        assert isinstance(metric, Rate)
        return metric

    def trend(self, name: str, contains: Contains = "time") -> Trend:
        metric = self._metrics.get(name)
        if metric is None:
            metric = self._metrics[name] = Trend(name, contains)
        assert isinstance(metric, Trend)
        return metric

    def summaries(self, duration_s: float, stats: tuple[str, ...]) -> tuple[MetricSummary, ...]:
        """Every metric's summary, sorted by name (submetrics follow their parent)."""
        return tuple(
            self._metrics[name].summary(duration_s, stats) for name in sorted(self._metrics)
        )


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """One metric at the end of the test, as k6's JSON summary has it."""

    name: str
    """``http_req_duration``, or a submetric ``http_req_duration{expected_response:true}``."""
    type: MetricType
    contains: Contains
    values: tuple[tuple[str, float], ...]
    """Counter: count, rate (per s). Gauge: value, min, max. Rate: rate, passes, fails.
    Trend: the summary trend stats, in ms for time."""

    def get(self, key: str, default: float = 0.0) -> float:
        for name, value in self.values:
            if name == key:
                return value
        return default


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    """Responses answered by one backend cluster and zone."""

    cluster: str
    zone: str
    responses: int


@dataclass(frozen=True, slots=True)
class CheckRow:
    """One ``check`` condition, within its group path (``::a::b``, "" for the root)."""

    group: str
    name: str
    passes: int
    fails: int


@dataclass(frozen=True, slots=True)
class ThresholdRow:
    """One threshold expression on one metric, evaluated at the end (or at abort)."""

    metric: str
    source: str
    ok: bool


@dataclass(frozen=True, slots=True)
class TimePoint:
    """One second of the run, for the HTML report's charts."""

    t: int
    requests: int
    failed: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    clusters: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Summary:
    """The result of a run: every metric plus the executor's final state."""

    metrics: tuple[MetricSummary, ...]
    duration_s: float
    """Wall time of the whole run (k6's ``state.testRunDurationMs`` / 1000)."""
    vus_max: int
    complete: int
    """Iterations that ran to their end."""
    interrupted: int
    """Iterations cut off at the end of the graceful stop."""
    breakdown: tuple[BreakdownRow, ...] = ()
    """Responses per (cluster, zone), most first; empty unless asked for."""
    errors: tuple[tuple[str, int], ...] = ()
    """Request errors (refused, timeout…) with their counts, most first."""
    finished: bool = True
    """False when the run was cut short (graceful stop exceeded)."""
    checks: tuple[CheckRow, ...] = ()
    thresholds: tuple[ThresholdRow, ...] = ()
    aborted: str = ""
    """Why the run stopped early (a threshold with ``abortOnFail``), or ""."""
    scenarios: tuple[object, ...] = ()
    """The :class:`~mcgw.loadtest.scenario.Scenario` objects run (for the header)."""
    timeline: tuple[TimePoint, ...] = ()
    scenario_counts: tuple[tuple[str, int, int], ...] = ()
    """Per scenario: (name, complete, interrupted) iterations."""
    abort_code: int = 0
    """The exit code of a test the script aborted (``exec.test.abort()``: 108), else 0."""

    @property
    def thresholds_ok(self) -> bool:
        return all(row.ok for row in self.thresholds)

    def metric(self, name: str) -> MetricSummary | None:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        return None

"""The counters (dataplane.metrics) and their folding (admin.stats), without sockets."""

from __future__ import annotations

import pytest

from mcgw.admin import stats
from mcgw.dataplane import metrics

WEST = ("gke-west-1", "us-west1", "us-west1-a", "pod-w", "10.0.0.1:80", "closest")
EAST = ("gke-east-1", "us-east1", "us-east1-b", "pod-e", "10.0.1.1:80", "failover")
NONE = ("", "", "", "", "", "no_route")


def _key(picked: tuple[str, ...], status: int = 200, route: str = "r") -> tuple[object, ...]:
    return ("default/gw/80", route, "b" if picked[0] else "", picked, status, "d")


def test_observe_counts_sums_and_buckets_by_upper_bound() -> None:
    m = metrics.Metrics()
    for seconds in (0.001, 0.0011, 0.1, 0.1, 20.0):
        m.observe(_key(WEST), seconds)
    ((key, cell),) = m.cells()
    assert key.picked == WEST and key.status == 200 and key.route == "r"
    assert cell.count == 5
    assert cell.sum_s == pytest.approx(20.2021)
    b = metrics.BUCKETS_S
    assert cell.buckets[b.index(0.001)] == 1  # le is inclusive
    assert cell.buckets[b.index(0.0025)] == 1
    assert cell.buckets[b.index(0.1)] == 2
    assert cell.buckets[-1] == 1  # +Inf
    assert sum(cell.buckets) == 5


def test_quantile_interpolates_inside_the_bucket() -> None:
    buckets = [0] * (len(metrics.BUCKETS_S) + 1)
    i = metrics.BUCKETS_S.index(0.2)  # (0.15, 0.2]
    buckets[i] = 100
    assert metrics.quantile(0.5, buckets) == pytest.approx(0.175)
    assert metrics.quantile(0.99, buckets) == pytest.approx(0.1995)
    assert metrics.quantile(0.5, [0] * len(buckets)) is None
    buckets[-1] = 1000
    assert metrics.quantile(0.99, buckets) == metrics.BUCKETS_S[-1]


def test_errors_are_5xx_and_unanswered() -> None:
    assert [metrics.is_error(s) for s in (0, 200, 404, 499, 500, 503)] == [
        True,
        False,
        False,
        False,
        True,
        True,
    ]


def test_read_folds_per_group_and_route() -> None:
    m = metrics.Metrics()
    for _ in range(3):
        m.observe(_key(WEST), 0.1)
    m.observe(_key(WEST, 503), 0.1)
    m.observe(_key(EAST, route="e"), 0.2)
    m.observe(_key(NONE, 404, route=""), 0.001)
    r = stats.read(m.cells(), at=10.0, clock=10.0)
    assert (r.total.requests, r.total.errors) == (6, 1)
    assert r.groups["b", "gke-west-1", "us-west1", "us-west1-a"].requests == 4
    assert r.groups["b", "gke-west-1", "us-west1", "us-west1-a"].errors == 1
    assert r.groups["", stats.NO_BACKEND, "", stats.NO_BACKEND].requests == 1
    assert {k: t.requests for k, t in r.routes.items()} == {"r": 4, "e": 1, "": 1}


def test_sample_spans_use_the_monotonic_clock_not_the_wall_clock() -> None:
    m = metrics.Metrics()
    sampler = stats.Sampler()
    sampler.take(stats.read(m.cells(), at=100.0, clock=5.0))
    for _ in range(3):
        m.observe(_key(WEST), 0.1)
    # The wall clock was slewed (0.99998 s for a second): the span is the monotonic one.
    sample = sampler.take(stats.read(m.cells(), at=100.99998, clock=6.0))
    assert sample is not None and sample.span_s == 1.0 and sample.at == 100.99998
    # A wall clock stepped back does not drop the sample.
    m.observe(_key(WEST), 0.1)
    assert sampler.take(stats.read(m.cells(), at=90.0, clock=7.0)) is not None


def test_sampler_turns_readings_into_per_second_samples() -> None:
    m = metrics.Metrics()
    sampler = stats.Sampler()
    assert sampler.take(stats.read(m.cells(), at=100.0, clock=100.0)) is None
    for _ in range(10):
        m.observe(_key(WEST), 0.1)
    first = sampler.take(stats.read(m.cells(), at=101.0, clock=101.0))
    assert first is not None and first.total.requests == 10 and first.span_s == 1.0
    for _ in range(4):
        m.observe(_key(EAST), 0.2)
    m.observe(_key(EAST, 500), 0.2)
    second = sampler.take(stats.read(m.cells(), at=103.0, clock=103.0))
    assert second is not None
    assert second.by_zone() == {
        ("gke-east-1", "us-east1-b"): second.groups["b", "gke-east-1", "us-east1", "us-east1-b"]
    }
    assert (second.total.requests, second.total.errors) == (5, 1)
    span, total, groups = sampler.recent()
    assert span == 3.0 and total.requests == 15
    assert groups["b", "gke-west-1", "us-west1", "us-west1-a"].requests == 10
    p = total.quantiles_ms()
    assert p["p50"] is not None and 75 < p["p50"] <= 100  # 10 of 15 in (75, 100] ms
    # Only the last samples make "recent".
    span1, total1, _ = sampler.recent(1)
    assert span1 == 2.0 and total1.requests == 5

"""The hot path's shortcuts in Trend give what HdrHistogram itself gives: the inlined
counts index, zeros counted apart, percentiles from cumulative counts, and the
expected-response durations derived as all minus the unexpected ones."""

from __future__ import annotations

import random

import pytest
from hdrh.histogram import HdrHistogram

from mcgw.loadtest import metrics

PERCENTILES = (0.1, 1, 10, 50, 90, 95, 99, 99.9, 99.99)


def _samples(seed: int, n: int) -> list[int]:
    rng = random.Random(seed)
    # Log-normal around tens of µs with zeros mixed in: what request phases look like.
    return [0 if rng.random() < 0.1 else int(rng.lognormvariate(11, 2.5)) for _ in range(n)]


@pytest.mark.parametrize(("seed", "n"), [(1, 1), (2, 7), (3, 500), (4, 20_000)])
def test_percentiles_match_hdrhistogram(seed: int, n: int) -> None:
    trend = metrics.Trend("t")
    reference = HdrHistogram(1, 3_600 * 10**9, 3)
    samples = _samples(seed, n)
    for v in samples:
        v = min(v, 3_600 * 10**9)
        if v == 0:
            trend.zeros += 1  # as Run.record does for connecting/TLS
        else:
            trend.add(v)
        reference.record_value(v)
    assert trend.count == n
    assert (trend.min, trend.max, trend.total) == (min(samples), max(samples), sum(samples))
    for p in PERCENTILES:
        want = min(max(reference.get_value_at_percentile(p), trend.min), trend.max)
        assert trend.percentile(p) == want, p


def test_expected_durations_are_all_minus_unexpected() -> None:
    samples = _samples(9, 3_000)
    rng = random.Random(5)
    whole, part, direct = metrics.Trend("all"), metrics.Trend("bad"), metrics.Trend("good")
    for v in samples:
        whole.add(v)
        if rng.random() < 0.2:
            part.add(v)
        else:
            direct.add(v)
    derived = metrics.Trend("derived")
    derived.assign_difference(whole, part)
    assert (derived.count, derived.total) == (direct.count, direct.total)
    for p in PERCENTILES:
        assert derived.percentile(p) == direct.percentile(p)
    # min and max at the histogram's precision (3 significant digits)
    assert derived.min == pytest.approx(direct.min, rel=1e-3, abs=1)
    assert derived.max == pytest.approx(direct.max, rel=1e-3, abs=1)
    # With nothing unexpected, the copy is exact.
    derived.assign_difference(whole, metrics.Trend("none"))
    assert (derived.min, derived.max, derived.count) == (whole.min, whole.max, whole.count)

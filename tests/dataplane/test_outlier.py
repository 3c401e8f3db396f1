"""Passive outlier detection: consecutive 5xx and gateway errors, growing ejection
times, the max ejection share. Socket-free with a fake clock, and one test through a
real gateway."""

from __future__ import annotations

from collections import Counter

from mcgw.dataplane import health
from mcgw.ir import table
from mcgw.testing import tables
from mcgw.testing.client import RawClient
from mcgw.testing.gateway import serve
from mcgw.testing.runner import run
from mcgw.testing.tables import Clock
from mcgw.testing.upstream import FakeUpstream, Reply

A = ("10.0.0.1", 80)


def hmap(clock: Clock, **kw: object) -> health.HealthMap:
    return health.HealthMap(clock=clock, **kw)  # type: ignore[arg-type]


def backend_of(n: int) -> table.RouteTable:
    eps = [(f"10.0.0.{i}", 80) for i in range(1, n + 1)]
    return tables.route_table([], [tables.backend("b", *eps)])


def test_five_consecutive_5xx_eject_and_a_success_resets_the_count() -> None:
    clock = Clock(100.0)
    m = hmap(clock)
    for _ in range(4):
        m.report_error_status(*A)
    m.report_success(*A)
    assert m.failing == {}
    for _ in range(4):
        m.report_error_status(*A)
    assert m.healthy(*A)
    m.report_error_status(*A)
    assert not m.healthy(*A)
    assert m.ejected() == {A: 30.0}
    assert m.failing == {}


def test_gateway_errors_eject_at_their_threshold_and_count_as_5xx() -> None:
    clock = Clock(100.0)
    m = hmap(clock, failure_threshold=3)
    m.report_error_status(*A)
    m.report_error_status(*A)
    m.report_failure(*A)
    m.report_failure(*A)
    assert m.healthy(*A)
    m.report_failure(*A)  # third gateway error (and fifth error of either kind)
    assert not m.healthy(*A)
    m2 = hmap(clock, failure_threshold=10)
    for _ in range(3):
        m2.report_error_status(*A)
    m2.report_failure(*A)
    m2.report_failure(*A)  # 5 errors in a row, two of them gateway errors
    assert not m2.healthy(*A)


def test_ejection_time_grows_with_each_ejection_up_to_the_cap_and_decays() -> None:
    clock = Clock(100.0)
    m = hmap(clock, ejection_s=10.0, max_ejection_s=35.0)
    lengths = []
    for _ in range(5):
        m.report_failure(*A)
        lengths.append(m.ejected()[A])
        clock.now += lengths[-1] - 0.001
        assert not m.healthy(*A)
        clock.now += 0.001
        assert m.healthy(*A)  # un-ejected when its time is over
    assert lengths == [10.0, 20.0, 30.0, 35.0, 35.0]
    # Serving without trouble brings the multiplier down, one step per base time.
    clock.now += 25.0  # two steps: the count goes from 5 to 3, the next is the 4th
    m.report_failure(*A)
    assert m.ejected()[A] == 35.0
    clock.now += 35.0 + 40.0  # four steps: from 4 to 0
    m.report_failure(*A)
    assert m.ejected()[A] == 10.0


def test_at_most_half_the_endpoints_of_a_backend_are_ejected() -> None:
    clock = Clock(100.0)
    m = hmap(clock)
    m.update(backend_of(5))
    for i in range(1, 6):
        m.report_failure(f"10.0.0.{i}", 80)
    # 2 of 5 ejected (a third would be 60 %); the others keep serving.
    assert len(m.ejected()) == 2
    assert sorted(m.unhealthy()) == [("10.0.0.1", 80), ("10.0.0.2", 80)]
    clock.now += 30.0
    assert m.healthy("10.0.0.1", 80)
    m.report_failure("10.0.0.3", 80)
    assert not m.healthy("10.0.0.3", 80)


def test_the_only_endpoint_of_a_backend_is_never_ejected_but_unknown_ones_are() -> None:
    clock = Clock(100.0)
    m = hmap(clock)
    m.update(backend_of(1))
    for _ in range(10):
        m.report_error_status("10.0.0.1", 80)
        m.report_failure("10.0.0.1", 80)
    assert m.healthy("10.0.0.1", 80)
    m.report_failure("10.9.9.9", 80)  # in no backend: nothing limits it
    assert not m.healthy("10.9.9.9", 80)


def test_max_ejection_percent_is_configurable() -> None:
    clock = Clock(100.0)
    m = hmap(clock, max_ejection_percent=100)
    m.update(backend_of(2))
    m.report_failure("10.0.0.1", 80)
    m.report_failure("10.0.0.2", 80)
    assert len(m.ejected()) == 2


def test_consecutive_5xx_through_the_gateway_move_traffic_to_the_other_endpoint() -> None:
    async def main() -> None:
        async with (
            FakeUpstream(Reply(status=500, body=b"broken"), name="bad") as bad,
            FakeUpstream(name="good") as good,
        ):
            rt = tables.route_table(
                [tables.route("r", "b")], [tables.backend("b", bad.address, good.address)]
            )
            async with serve(rt) as (gw, addr):
                client = await RawClient.connect(addr)
                statuses = [(await client.request()).status for _ in range(30)]
            # Round robin: the bad endpoint answers every other request until its fifth
            # 500 in a row; then it is ejected and the good one takes everything.
            assert Counter(statuses) == {500: 5, 200: 25}
            assert statuses[:10] == [500, 200] * 5
            assert len(bad.seen) == 5 and len(good.seen) == 25
            assert set(gw.health.ejected()) == {bad.address}

    run(main())

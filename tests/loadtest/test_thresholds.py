"""Threshold parsing, evaluation, submetrics, abortOnFail and the breakdown share."""

from __future__ import annotations

import asyncio
import time

import loadtest_server as fake
import pytest

from mcgw.loadtest import errors, metrics, options, report, runner, thresholds


def test_parse_k6_expressions() -> None:
    parsed = thresholds.parse(
        (
            ("http_req_duration", ("p(95)<200", "avg <= 100.5", "p(99.9)<1e3")),
            ("http_req_failed", ("rate<0.01",)),
            ("http_reqs", ("count>10",)),
            (
                "http_req_duration{status:200}",
                ({"threshold": "max<5", "abortOnFail": True, "delayAbortEval": "10s"},),
            ),
            ("cluster{name:gke-west-1}", ("share>0.8",)),
        )
    )
    assert [(t.stat, t.op, t.value) for t in parsed[:3]] == [
        ("p(95)", "<", 200.0),
        ("avg", "<=", 100.5),
        ("p(99.9)", "<", 1000.0),
    ]
    assert parsed[5].abort_on_fail and parsed[5].delay_abort_eval_s == 10.0
    assert parsed[5].metric == "http_req_duration{status:200}"


@pytest.mark.parametrize(
    ("metric", "expr"),
    [
        ("http_req_duration", "p95<200"),
        ("http_req_duration", "rate<0.1"),
        ("http_req_failed", "p(95)<1"),
        ("no_such_metric", "count>1"),
        ("http_req_duration{status", "avg<1"),
        ("http_reqs", "count >> 3"),
    ],
)
def test_bad_expressions_rejected(metric: str, expr: str) -> None:
    with pytest.raises(errors.LoadError):
        thresholds.parse(((metric, (expr,)),))


def test_evaluate_against_known_samples() -> None:
    reg = metrics.Registry()
    trend = reg.trend("http_req_duration")
    for ms in range(1, 101):  # 1..100 ms
        trend.add(ms * 1_000_000)
    rate = reg.rate("http_req_failed")
    for i in range(200):
        rate.add(i < 3)  # 1.5 % failed

    def ok(metric: str, expr: str) -> bool:
        (th,) = thresholds.parse(((metric, (expr,)),))
        return thresholds.evaluate(th, reg, 10.0, {})

    assert ok("http_req_duration", "p(95)<=95.1") and not ok("http_req_duration", "p(95)<94")
    assert ok("http_req_duration", "avg==50.5") and ok("http_req_duration", "med<51")
    assert ok("http_req_duration", "max==100") and ok("http_req_duration", "min==1")
    assert ok("http_req_failed", "rate<0.02") and not ok("http_req_failed", "rate<0.01")
    assert ok("http_reqs", "count<1")  # no samples: a count of 0
    assert not ok("iteration_duration", "avg<1")  # no samples: a trend fails


def test_cluster_share_from_breakdown() -> None:
    reg = metrics.Registry()
    counts = {("gke-west-1", "a"): 85, ("gke-east-1", "b"): 15}
    (west,) = thresholds.parse((("cluster{name:gke-west-1}", ("share>0.8",)),))
    (east,) = thresholds.parse((("cluster{name:gke-east-1}", ("rate>0.2",)),))
    (zone,) = thresholds.parse((("zone{name:b}", ("count==15",)),))
    assert thresholds.evaluate(west, reg, 1.0, counts)
    assert not thresholds.evaluate(east, reg, 1.0, counts)
    assert thresholds.evaluate(zone, reg, 1.0, counts)


def _run(
    opts_kwargs: dict[str, object], behaviour: fake.Behaviour | None = None
) -> metrics.Summary:
    async def go() -> metrics.Summary:
        async with fake.serve(behaviour) as server:
            opts = options.LoadOptions(url=f"http://127.0.0.1:{server.port}/", **opts_kwargs)  # type: ignore[arg-type]
            return await runner.run(opts)

    return asyncio.run(go())


def test_submetric_thresholds_and_summary_marks() -> None:
    summary = _run(
        {
            "vus": 2,
            "iterations": 10,
            "sleep_s": 0,
            "thresholds": (
                ("http_req_duration{status:200}", ("p(95)<5000",)),
                ("http_reqs{status:500}", ("count>0",)),
                ("http_req_failed", ("rate<0.5",)),
            ),
        }
    )
    rows = {(r.metric, r.source): r.ok for r in summary.thresholds}
    assert rows == {
        ("http_req_duration{status:200}", "p(95)<5000"): True,
        ("http_reqs{status:500}", "count>0"): False,
        ("http_req_failed", "rate<0.5"): True,
    }
    sub = summary.metric("http_req_duration{status:200}")
    assert sub is not None and sub.get("count", -1) in (-1, 10)
    text = "\n".join(report.metric_rows(summary, options.DEFAULT_TREND_STATS))
    assert "   ✓ http_req_failed...." in text
    assert "     ✓ { status:200 }...." in text
    assert "     ✗ { status:500 }...." in text


def test_abort_on_fail_stops_the_run() -> None:
    t0 = time.monotonic()
    summary = _run(
        {
            "vus": 2,
            "duration_s": 5.0,
            "sleep_s": 0.01,
            "thresholds": (("http_req_failed", ({"threshold": "rate<0.1", "abortOnFail": True},)),),
        },
        fake.Behaviour(status=500),
    )
    assert time.monotonic() - t0 < 3.0
    assert summary.aborted and not summary.thresholds_ok and not summary.finished


def test_breakdown_threshold_in_a_run() -> None:
    summary = _run(
        {
            "vus": 1,
            "iterations": 4,
            "sleep_s": 0,
            "thresholds": (("cluster{name:gke-west-1}", ("share==1",)),),
        },
        fake.Behaviour(body=fake.whereami("gke-west-1", "us-west1-a")),
    )
    assert summary.thresholds_ok
    assert [(r.cluster, r.responses) for r in summary.breakdown] == [("gke-west-1", 4)]

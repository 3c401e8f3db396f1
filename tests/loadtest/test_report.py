"""mcgw.loadtest.report: k6's summary layout and number formats, without sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcgw.loadtest import metrics, options, report, runner, scenario

TESTDATA = Path(__file__).parent / "testdata"
STATS = ("avg", "min", "med", "max", "p(90)", "p(95)")


def _trend(name: str, *values: float) -> metrics.MetricSummary:
    return metrics.MetricSummary(name, "trend", "time", tuple(zip(STATS, values, strict=True)))


def _counter(
    name: str, count: float, rate: float, contains: str = "default"
) -> metrics.MetricSummary:
    return metrics.MetricSummary(name, "counter", contains, (("count", count), ("rate", rate)))  # type: ignore[arg-type]


def _gauge(name: str, value: float, low: float, high: float) -> metrics.MetricSummary:
    return metrics.MetricSummary(
        name, "gauge", "default", (("value", value), ("min", low), ("max", high))
    )


# The numbers of SEED.md's k6 run, as a Summary.
SEED_SUMMARY = metrics.Summary(
    metrics=(
        _counter("data_received", 849_321, 13_896.1, "data"),
        _counter("data_sent", 129_104, 2_112.3, "data"),
        _trend("http_req_blocked", 0.72574, 0.000709, 0.00589, 38.68, 0.01541, 0.0244),
        _trend("http_req_connecting", 0.60588, 0, 0, 32.63, 0, 0),
        _trend("http_req_duration", 152.26, 112.94, 128.9, 500.83, 209.28, 245.09),
        _trend(runner.EXPECTED_DURATION, 152.26, 112.94, 128.9, 500.83, 209.28, 245.09),
        metrics.MetricSummary(
            "http_req_failed", "rate", "default", (("rate", 0.0), ("passes", 0), ("fails", 1572))
        ),
        _trend("http_req_receiving", 0.62221, 0.00645, 0.10681, 114.73, 1.25, 1.83),
        _trend("http_req_sending", 0.04668, 0.00258, 0.02243, 4.61, 0.07631, 0.14604),
        _trend("http_req_tls_handshaking", 0, 0, 0, 0, 0, 0),
        _trend("http_req_waiting", 151.59, 112.6, 127.89, 500.43, 208.39, 244.85),
        _counter("http_reqs", 1572, 25.721444),
        _trend("iteration_duration", 1150, 1110, 1130, 1530, 1210, 1240),
        _counter("iterations", 1572, 25.721444),
        _gauge("vus", 2, 2, 30),
        _gauge("vus_max", 30, 30, 30),
    ),
    duration_s=61.1,
    vus_max=30,
    complete=1572,
    interrupted=0,
)
SEED_OPTIONS = options.LoadOptions(url="http://store.example.com", vus=30, duration_s=60)


def test_render_reproduces_seed_sample_exactly() -> None:
    want = (TESTDATA / "seed_summary.txt").read_text()
    assert report.render(SEED_SUMMARY, SEED_OPTIONS) == want


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0s"),
        (0.000709, "709ns"),
        (0.00589, "5.89µs"),
        (0.0244, "24.4µs"),
        (0.72574, "725.74µs"),
        (0.999999, "999.99µs"),
        (128.9, "128.9ms"),
        (500.839, "500.83ms"),  # truncated, not rounded
        (1150, "1.15s"),
        (1000, "1s"),
        (59_999, "59.99s"),
        (60_000, "1m0s"),
        (61_100, "1m1s"),
        (3_725_000, "1h2m5s"),
    ],
)
def test_duration_format(ms: float, text: str) -> None:
    assert report.duration(ms) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (9, "9 B"),
        (849, "849 B"),
        (2_112.3, "2.1 kB"),
        (13_896.1, "14 kB"),
        (849_321, "849 kB"),
        (1_572_000, "1.6 MB"),
        (12_345_678_901, "12 GB"),
    ],
)
def test_data_format(size: float, text: str) -> None:
    assert report.data(size) == text


def test_percent_truncates() -> None:
    assert report.percent(0.0) == "0.00%"
    assert report.percent(0.99999) == "99.99%"
    assert report.percent(1.0) == "100.00%"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (30, "30s"),
        (60, "1m0s"),
        (90, "1m30s"),
        (630, "10m30s"),
        (3600, "1h0m0s"),
        (1.5, "1.5s"),
        (0.25, "250ms"),
    ],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert report.go_duration(seconds) == text


def test_elapsed_and_progress_lines() -> None:
    assert report.elapsed(12.04) == "0m12.0s"
    assert report.elapsed(61.19) == "1m01.1s"
    assert report.elapsed(5.0, max_seconds=7200) == "0h00m05.0s"
    scen = scenario.from_options(SEED_OPTIONS)
    p = runner.Progress(
        elapsed_s=12.0, vus=30, vus_max=30, complete=340, interrupted=0, scenario=scen
    )
    assert report.progress_line(p) == (
        "running (0m12.0s), 30/30 VUs, 340 complete and 0 interrupted iterations"
    )
    assert report.bar_line(p) == (
        "default   [=======>------------------------------] 30 VUs  0m12.0s/1m0s"
    )


def test_shared_iterations_header_and_bar() -> None:
    opts = options.LoadOptions(url="http://x/", vus=4, iterations=10)
    scen = scenario.from_options(opts)
    assert report.header(scen) == (
        "  scenarios: (100.00%) 1 scenario, 4 max VUs, 10m30s max duration "
        "(incl. graceful stop):\n"
        "           * default: 10 iterations shared among 4 VUs "
        "(maxDuration: 10m0s, gracefulStop: 30s)\n"
    )
    p = runner.Progress(elapsed_s=1.23, vus=0, vus_max=4, complete=10, interrupted=0, scenario=scen)
    assert report.bar_line(p, done=True) == (
        "default ✓ [======================================] 4 VUs  "
        "0m01.2s/10m0s  10/10 shared iters"
    )


def test_executor_choice() -> None:
    assert scenario.from_options(options.LoadOptions(url="http://x/")).iterations == 1
    only_duration = scenario.from_options(options.LoadOptions(url="http://x/", duration_s=5))
    assert only_duration.executor == "constant-vus"
    both = scenario.from_options(
        options.LoadOptions(url="http://x/", vus=8, duration_s=5, iterations=3)
    )
    assert (both.executor, both.vus, both.duration_s) == ("shared-iterations", 3, 5)


def test_breakdown_section_follows_the_k6_block() -> None:
    summary = metrics.Summary(
        metrics=SEED_SUMMARY.metrics,
        duration_s=61.1,
        vus_max=30,
        complete=1572,
        interrupted=0,
        breakdown=(
            metrics.BreakdownRow("gke-west-1", "us-west1-a", 1500),
            metrics.BreakdownRow("gke-east-1", "us-east1-b", 72),
        ),
    )
    text = report.render(summary, SEED_OPTIONS)
    assert text.endswith(
        "default ✓ [======================================] 30 VUs  1m0s\n"
        "\n"
        "     responses by cluster_name / zone:\n"
        "       gke-west-1 / us-west1-a...: 1500 95.42%\n"
        "       gke-east-1 / us-east1-b...: 72   4.58%\n"
    )


def test_trend_from_samples() -> None:
    reg = metrics.Registry()
    trend = reg.trend("t")
    for ns in (709, 5_890, 128_900_000, 1_150_000_000):
        trend.add(ns)
    summary = trend.summary(1.0, ("min", "max", "count", "p(99.9)"))
    assert summary.get("min") == pytest.approx(0.000709)
    assert summary.get("max") == pytest.approx(1150)
    assert summary.get("count") == 4
    assert summary.get("p(99.9)") == pytest.approx(1150, rel=1e-3)
    counter = reg.counter("c")
    counter.add(10)
    assert counter.summary(4.0, ()).get("rate") == 2.5
    assert [m.name for m in reg.summaries(1.0, STATS)] == ["c", "t"]

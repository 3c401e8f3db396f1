"""mcgw.loadtest.runner against a real loopback server: counts, limits, failures."""

from __future__ import annotations

import asyncio
import re
import socket
import time

import loadtest_server as fake
import pytest

from mcgw.loadtest import errors, metrics, options, report, runner


def _count(summary: metrics.Summary, name: str) -> float:
    metric = summary.metric(name)
    assert metric is not None, name
    return metric.get("count")


def _run(opts: options.LoadOptions, behaviour: fake.Behaviour | None = None):
    async def go() -> tuple[metrics.Summary, fake.Server]:
        async with fake.serve(behaviour) as server:
            opts_here = opts
            if "{port}" in opts.url:
                opts_here = options.LoadOptions(
                    **{**_fields(opts), "url": opts.url.replace("{port}", str(server.port))}
                )
            if opts.host_map:
                opts_here = options.LoadOptions(
                    **{
                        **_fields(opts_here),
                        "host_map": tuple(
                            (k, v.replace("{port}", str(server.port))) for k, v in opts.host_map
                        ),
                    }
                )
            summary = await runner.run(opts_here)
            return summary, server

    return asyncio.run(go())


def _fields(opts: options.LoadOptions) -> dict[str, object]:
    return {name: getattr(opts, name) for name in options.LoadOptions.__dataclass_fields__}


def test_counts_match_server_and_connections_are_kept_alive() -> None:
    opts = options.LoadOptions(url="http://127.0.0.1:{port}/", vus=3, iterations=20, sleep_s=0)
    summary, server = _run(opts)
    assert server.requests == 20
    assert _count(summary, "http_reqs") == 20
    assert _count(summary, "iterations") == 20
    assert (summary.complete, summary.interrupted) == (20, 0)
    assert server.connections == 3  # one keep-alive connection per VU
    failed = summary.metric("http_req_failed")
    assert failed is not None and (failed.get("passes"), failed.get("fails")) == (0, 20)
    assert _count(summary, "data_sent") > 20 * 40
    assert _count(summary, "data_received") > 20 * 50
    connecting = summary.metric("http_req_connecting")
    assert connecting is not None and connecting.get("med") == 0  # reused connections
    expected = summary.metric(runner.EXPECTED_DURATION)
    duration = summary.metric("http_req_duration")
    assert expected is not None and duration is not None
    assert expected.get("avg") == pytest.approx(duration.get("avg"))
    vus_max = summary.metric("vus_max")
    assert vus_max is not None and vus_max.get("value") == 3


def test_duration_respected() -> None:
    opts = options.LoadOptions(url="http://127.0.0.1:{port}/", vus=2, duration_s=1.0, sleep_s=0.05)
    t0 = time.monotonic()
    summary, server = _run(opts)
    took = time.monotonic() - t0
    assert 1.0 <= summary.duration_s < 1.5
    assert took < 2.5
    assert server.requests == _count(summary, "http_reqs") == summary.complete
    assert 20 <= summary.complete <= 42  # 2 VUs × ~1 s / ~50 ms


def test_sleep_respected() -> None:
    # k6: 2 VUs × (request + sleep 1 s) for 3 s → iterations start at 0, 1, 2 s.
    opts = options.LoadOptions(url="http://127.0.0.1:{port}/", vus=2, duration_s=3.0, sleep_s=1.0)
    summary, server = _run(opts)
    assert summary.complete == 6
    assert server.requests == 6
    it = summary.metric("iteration_duration")
    assert it is not None and 1000 <= it.get("min") < 1200


def test_failed_rate_with_500s() -> None:
    opts = options.LoadOptions(url="http://127.0.0.1:{port}/", vus=2, iterations=8, sleep_s=0)
    summary, server = _run(opts, fake.Behaviour(status=500))
    failed = summary.metric("http_req_failed")
    assert failed is not None
    assert (failed.get("rate"), failed.get("passes"), failed.get("fails")) == (1.0, 8, 0)
    assert server.requests == 8
    expected = summary.metric(runner.EXPECTED_DURATION)
    assert expected is not None and expected.get("max") == 0
    text = report.render(summary, opts)
    assert re.search(r"http_req_failed\.+: 100\.00% ✓ 8\s+✗ 0", text)


def test_host_map_sends_the_url_host_to_the_mapped_address() -> None:
    opts = options.LoadOptions(
        url="http://store.example.com/west?x=1",
        iterations=2,
        sleep_s=0,
        host_map=(("store.example.com", "127.0.0.1:{port}"),),
    )
    summary, server = _run(opts)
    assert server.hosts == ["store.example.com", "store.example.com"]
    assert server.targets == ["/west?x=1", "/west?x=1"]
    assert _count(summary, "http_reqs") == 2


def test_connection_refused_is_a_failed_request_not_a_crash() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = options.LoadOptions(url=f"http://127.0.0.1:{port}/", vus=2, iterations=4, sleep_s=0)
    summary = runner.run_sync(opts)
    failed = summary.metric("http_req_failed")
    assert failed is not None and (failed.get("passes"), failed.get("fails")) == (4, 0)
    assert summary.errors == (("connection refused", 4),)
    assert summary.complete == 4


def test_graceful_stop_interrupts_slow_iterations() -> None:
    opts = options.LoadOptions(
        url="http://127.0.0.1:{port}/", vus=2, duration_s=0.3, graceful_stop_s=0.3, sleep_s=0
    )
    t0 = time.monotonic()
    summary, _ = _run(opts, fake.Behaviour(delay_s=10))
    assert time.monotonic() - t0 < 2
    assert (summary.complete, summary.interrupted) == (0, 2)
    assert summary.metric("http_reqs") is not None and _count(summary, "http_reqs") == 0
    assert "0 complete and 2 interrupted iterations" in report.render(summary, opts)


def test_request_timeout() -> None:
    opts = options.LoadOptions(url="http://127.0.0.1:{port}/", iterations=1, timeout_s=0.3)
    summary, _ = _run(opts, fake.Behaviour(respond=False))
    assert summary.errors == (("request timeout", 1),)
    assert summary.complete == 1


def test_connection_close_and_unframed_responses() -> None:
    opts = options.LoadOptions(url="http://127.0.0.1:{port}/", vus=2, iterations=6, sleep_s=0)
    summary, server = _run(opts, fake.Behaviour(close=True))
    assert server.connections == 6 and _count(summary, "http_reqs") == 6
    assert summary.metric("http_req_failed").get("passes") == 0  # type: ignore[union-attr]
    summary, server = _run(opts, fake.Behaviour(unframed=True))
    assert server.connections == 6 and summary.errors == ()


def test_idle_connection_closed_by_server_is_retried() -> None:
    opts = options.LoadOptions(url="http://127.0.0.1:{port}/", iterations=3, sleep_s=0.2)
    summary, server = _run(opts, fake.Behaviour(drop_after_s=0.05))
    assert summary.errors == ()
    assert server.requests == 3 and server.connections == 3


def test_breakdown_from_header_and_body() -> None:
    opts = options.LoadOptions(
        url="http://127.0.0.1:{port}/", vus=2, iterations=5, sleep_s=0, breakdown=True
    )
    summary, _ = _run(opts, fake.Behaviour(body=fake.whereami("gke-west-1", "us-west1-a")))
    assert summary.breakdown == (metrics.BreakdownRow("gke-west-1", "us-west1-a", 5),)
    headers = (("Content-Type", "text/plain"), ("x-mcgw-cluster", "gke-east-1"))
    summary, _ = _run(opts, fake.Behaviour(body=b"hi", headers=headers))
    assert summary.breakdown == (metrics.BreakdownRow("gke-east-1", "", 5),)
    assert "gke-east-1 / (unknown)...: 5 100.00%" in report.render(summary, opts)


def test_progress_callback_once_a_second() -> None:
    seen: list[runner.Progress] = []
    opts = options.LoadOptions(url="http://127.0.0.1:{port}/", vus=2, duration_s=2.2, sleep_s=0.1)

    async def go() -> None:
        async with fake.serve() as server:
            o = options.LoadOptions(**{**_fields(opts), "url": f"http://127.0.0.1:{server.port}/"})
            await runner.run(o, progress=seen.append)

    asyncio.run(go())
    assert len(seen) == 3  # at 1 s, 2 s, and the final state
    assert seen[0].vus == 2 and 0.9 < seen[0].elapsed_s < 1.3
    assert re.fullmatch(
        r"running \(0m01\.\ds\), 2/2 VUs, \d+ complete and 0 interrupted iterations",
        report.progress_line(seen[0]),
    )
    assert seen[-1].vus == 0 and seen[-1].complete >= 30


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vus": 0}, "vus"),
        ({"duration_s": 0}, "duration"),
        ({"iterations": 0}, "iterations"),
        ({"sleep_s": -1}, "sleep"),
        ({"summary_trend_stats": ("avg", "p(200)")}, "trend stat"),
    ],
)
def test_bad_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(errors.LoadError, match=match):
        options.LoadOptions(url="http://x/", **kwargs)  # type: ignore[arg-type]


def test_other_schemes_are_refused_clearly() -> None:
    with pytest.raises(errors.LoadError, match="only http:// and https://"):
        runner.run_sync(options.LoadOptions(url="ftp://x/"))

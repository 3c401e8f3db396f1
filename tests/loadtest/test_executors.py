"""Executors' schedules (pure) and their iteration counts and rates (loopback server)."""

from __future__ import annotations

import asyncio
import pathlib
from dataclasses import replace

import loadtest_server as fake
import pytest

from mcgw.loadtest import errors, metrics, options, runner, scenario, script


def _count(summary: metrics.Summary, name: str) -> float:
    metric = summary.metric(name)
    return 0.0 if metric is None else metric.get("count")


def _run(
    scenarios: dict[str, dict[str, object]],
    behaviour: fake.Behaviour | None = None,
    **extra: object,
) -> tuple[metrics.Summary, fake.Server]:
    async def go() -> tuple[metrics.Summary, fake.Server]:
        async with fake.serve(behaviour) as server:
            opts = options.LoadOptions(
                url=f"http://127.0.0.1:{server.port}/",
                sleep_s=0,
                scenarios=tuple(scenarios.items()),
                **extra,  # type: ignore[arg-type]
            )
            return await runner.run(opts), server

    return asyncio.run(go())


def test_shared_and_per_vu_iterations_counts() -> None:
    summary, server = _run(
        {
            "shared": {"executor": "shared-iterations", "vus": 3, "iterations": 10},
            "pervu": {"executor": "per-vu-iterations", "vus": 2, "iterations": 4},
        }
    )
    assert server.requests == _count(summary, "iterations") == 10 + 8
    assert dict((n, c) for n, c, _ in summary.scenario_counts) == {"shared": 10, "pervu": 8}


def test_constant_arrival_rate_rate_and_response_time() -> None:
    summary, server = _run(
        {
            "open": {
                "executor": "constant-arrival-rate",
                "rate": 40,
                "timeUnit": "1s",
                "duration": "1s",
                "preAllocatedVUs": 2,
                "maxVUs": 4,
            }
        }
    )
    assert server.requests == _count(summary, "iterations") == 40
    assert _count(summary, "dropped_iterations") == 0
    rt = summary.metric("http_req_response_time")
    assert rt is not None and rt.get("max") > 0
    assert 0.95 <= summary.duration_s < 1.5


def test_arrival_rate_drops_iterations_without_free_vus() -> None:
    # 20 iterations/s, each takes 300 ms, 1 VU at most: about 1 in 6 can start.
    summary, server = _run(
        {
            "open": {
                "executor": "constant-arrival-rate",
                "rate": 20,
                "duration": "1s",
                "preAllocatedVUs": 1,
                "maxVUs": 1,
                "gracefulStop": "1s",
            }
        },
        fake.Behaviour(delay_s=0.3),
    )
    done = _count(summary, "iterations")
    dropped = _count(summary, "dropped_iterations")
    assert done == server.requests
    assert done + dropped == 20
    assert 3 <= done <= 5
    # The open model's response time counts from the intended start: never below service.
    rt, svc = summary.metric("http_req_response_time"), summary.metric("http_req_duration")
    assert rt is not None and svc is not None and rt.get("max") >= svc.get("max")


def test_ramping_vus_follows_stages() -> None:
    scen = scenario.from_config(
        "r",
        {
            "executor": "ramping-vus",
            "startVUs": 0,
            "stages": [{"duration": "1s", "target": 10}, {"duration": "1s", "target": 0}],
        },
    )
    assert [scen.target_vus(t) for t in (0, 0.5, 0.99, 1.0, 1.5, 2.5)] == [0, 5, 9, 10, 5, 0]
    assert scen.peak_vus == 10
    shares = [scen.share(i, 3) for i in range(3)]
    assert all(s is not None for s in shares)
    for t in (0.25, 0.5, 1.2):
        assert sum(s.target_vus(t) for s in shares if s) == scen.target_vus(t)


def test_ramping_vus_run_interrupts_past_graceful_ramp_down() -> None:
    summary, _ = _run(
        {
            "r": {
                "executor": "ramping-vus",
                "startVUs": 2,
                "stages": [{"duration": "500ms", "target": 2}, {"duration": "100ms", "target": 0}],
                "gracefulRampDown": "100ms",
                "gracefulStop": "100ms",
            }
        },
        fake.Behaviour(delay_s=0.4),
    )
    assert summary.duration_s < 1.5
    assert summary.interrupted >= 1
    assert summary.complete >= 2


def test_ramping_arrival_rate_schedule() -> None:
    scen = scenario.from_config(
        "ra",
        {
            "executor": "ramping-arrival-rate",
            "startRate": 0,
            "timeUnit": "1s",
            "preAllocatedVUs": 1,
            "stages": [{"duration": "2s", "target": 20}, {"duration": "1s", "target": 20}],
        },
    )
    times = list(scen.arrivals())
    # ∫ rate = 20 (ramp) + 20 (flat) = 40 iterations, ever more densely during the ramp.
    assert len(times) == 40
    assert times == sorted(times) and times[-1] < 3.0
    assert sum(1 for t in times if t < 1.0) == 5  # ∫0..1 of 10t = 5
    dealt = [list(s.arrivals()) for s in (scen.share(0, 2), scen.share(1, 2)) if s]
    assert sorted(dealt[0] + dealt[1]) == times


def test_constant_arrival_rate_schedule() -> None:
    scen = scenario.from_config(
        "c", {"executor": "constant-arrival-rate", "rate": 5, "timeUnit": "2s", "duration": "4s"}
    )
    assert list(scen.arrivals()) == [
        0.0,
        0.4,
        0.8,
        1.2000000000000002,
        1.6,
        2.0,
        2.4000000000000004,
        2.8000000000000003,
        3.2,
        3.6,
    ]


def test_graceful_stop_interrupts() -> None:
    summary, _ = _run(
        {"c": {"executor": "constant-vus", "vus": 2, "duration": "200ms", "gracefulStop": "100ms"}},
        fake.Behaviour(delay_s=1.0),
    )
    assert summary.interrupted == 2 and summary.complete == 0
    assert summary.duration_s < 0.6


def test_rps_caps_requests() -> None:
    async def go() -> tuple[metrics.Summary, fake.Server]:
        async with fake.serve() as server:
            opts = options.LoadOptions(
                url=f"http://127.0.0.1:{server.port}/", vus=4, duration_s=1.0, sleep_s=0, rps=30
            )
            return await runner.run(opts), server

    _, server = asyncio.run(go())
    assert 28 <= server.requests <= 30


@pytest.mark.parametrize("kind", ["url", "python", "js"])
def test_rps_lets_no_request_out_after_the_end(kind: str, tmp_path: pathlib.Path) -> None:
    # Many VUs queued on a small rate: each holds a slot when the second ends. None of
    # those may be sent (k6: the rate is a cap over the test's duration).
    async def go() -> tuple[metrics.Summary, fake.Server]:
        async with fake.serve() as server:
            url = f"http://127.0.0.1:{server.port}/"
            program: runner.Program | None = None
            if kind == "python":
                path = tmp_path / "s.py"
                path.write_text(f"async def default(vu):\n    await vu.http.get({url!r})\n")
                program = script.load(str(path), {})
            elif kind == "js":
                path = tmp_path / "s.js"
                path.write_text(
                    "import http from 'k6/http';\n"
                    f"export default function () {{ http.get('{url}'); }}\n"
                )
                program = script.load(str(path), {})
            opts = options.LoadOptions(
                url=url, vus=20, duration_s=1.0, sleep_s=0, rps=10, graceful_stop_s=2.0
            )
            return await runner.run(opts, program=program), server

    summary, server = asyncio.run(go())
    assert 9 <= server.requests <= 10
    assert _count(summary, "http_reqs") == server.requests
    # The queued VUs' iterations were cut (once each: they wait for the end instead of
    # spinning through cut iterations), and the run did not wait for its graceful stop.
    assert 1 <= summary.interrupted <= 20
    assert summary.duration_s < 1.5


@pytest.mark.parametrize(
    "raw",
    [
        {"executor": "nope"},
        {"executor": "constant-vus", "vus": 1},
        {"executor": "constant-vus", "vus": 1, "duration": "1s", "rate": 3},
        {"executor": "ramping-vus", "stages": []},
        {"executor": "shared-iterations", "vus": 0},
        {"executor": "constant-arrival-rate", "duration": "1s"},
    ],
)
def test_bad_scenarios_rejected(raw: dict[str, object]) -> None:
    with pytest.raises(errors.LoadError, match=r"scenarios\.s"):
        scenario.from_config("s", raw)


def test_stage_flags_make_ramping_vus() -> None:
    opts = options.LoadOptions(url="http://x/", stages=(options.parse_stage("1s:4"),))
    scen = scenario.from_options(opts)
    assert scen.executor == "ramping-vus" and scen.peak_vus == 4
    assert replace(opts, stages=()).stages == ()
    with pytest.raises(errors.LoadError):
        options.parse_stage("10")

"""Run a scenario: start the VUs, enforce the limits, collect metrics, report progress.

Each VU is a task with its own :class:`~mcgw.loadtest.client.Client` (one keep-alive
connection). An iteration is one request followed by the configured sleep, timed as
``iteration_duration``. When the scenario's duration ends VUs start no new iteration;
the ones running get ``gracefulStop`` to finish and are then cancelled and counted as
interrupted. The run therefore always ends by itself within duration + graceful stop.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass

from mcgw.loadtest import client, metrics, scenario
from mcgw.loadtest import options as options_mod

PROGRESS_INTERVAL_S = 1.0

EXPECTED_DURATION = "http_req_duration{expected_response:true}"
"""k6's submetric of http_req_duration for responses with an expected status."""


@dataclass(frozen=True, slots=True)
class Progress:
    """The run's state, handed to the progress callback once a second."""

    elapsed_s: float
    vus: int
    """VUs currently running an iteration loop."""
    vus_max: int
    complete: int
    interrupted: int
    scenario: scenario.Scenario
    iterations_started: int = 0


ProgressCallback = Callable[[Progress], None]


def _expected(status: int) -> bool:
    # k6's default expected statuses: 200–399.
    return 200 <= status < 400


class _Run:
    """The mutable state of one run; everything VUs touch lives here."""

    def __init__(self, opts: options_mod.LoadOptions, scen: scenario.Scenario) -> None:
        self.opts = opts
        self.scen = scen
        self.target = client.parse_target(opts.url, opts.host_map)
        self.request = client.build_request(self.target, opts.method, opts.headers, opts.body)
        self.registry = metrics.Registry()
        reg = self.registry
        # Resolved once: the hot path touches attributes, not the registry's dict.
        self.blocked = reg.trend("http_req_blocked")
        self.connecting = reg.trend("http_req_connecting")
        self.tls = reg.trend("http_req_tls_handshaking")
        self.sending = reg.trend("http_req_sending")
        self.waiting = reg.trend("http_req_waiting")
        self.receiving = reg.trend("http_req_receiving")
        self.duration = reg.trend("http_req_duration")
        self.expected_duration = reg.trend(EXPECTED_DURATION)
        self.failed = reg.rate("http_req_failed")
        self.reqs = reg.counter("http_reqs")
        self.sent = reg.counter("data_sent", "data")
        self.received = reg.counter("data_received", "data")
        self.iterations = reg.counter("iterations")
        self.iteration_duration = reg.trend("iteration_duration")
        self.vus = reg.gauge("vus")
        self.vus_max = reg.gauge("vus_max")
        self.active = 0
        self.complete = 0
        self.interrupted = 0
        self.started = 0
        self.breakdown: collections.Counter[tuple[str, str]] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.start_ns = time.perf_counter_ns()

    def record(self, r: client.Result) -> None:
        self.reqs.add()
        self.blocked.add(r.blocked)
        self.connecting.add(r.connecting)
        self.tls.add(0)
        self.sending.add(r.sending)
        self.waiting.add(r.waiting)
        self.receiving.add(r.receiving)
        duration = r.duration
        self.duration.add(duration)
        ok = not r.error and _expected(r.status)
        self.failed.add(not ok)
        if ok:
            self.expected_duration.add(duration)
        if r.error:
            self.errors[r.error] += 1
        self.sent.add(r.bytes_sent)
        self.received.add(r.bytes_received)
        if self.opts.breakdown and r.status:
            self.breakdown[(r.cluster, r.zone)] += 1

    def take_iteration(self) -> bool:
        """Claim the next iteration, or False when the executor has none left."""
        if self.scen.iterations is not None and self.started >= self.scen.iterations:
            return False
        self.started += 1
        return True

    def elapsed_s(self) -> float:
        return (time.perf_counter_ns() - self.start_ns) / 1e9

    def progress(self) -> Progress:
        return Progress(
            elapsed_s=self.elapsed_s(),
            vus=self.active,
            vus_max=self.scen.vus,
            complete=self.complete,
            interrupted=self.interrupted,
            scenario=self.scen,
            iterations_started=self.started,
        )


async def _vu(run: _Run, stop_at: float) -> None:
    """One VU: iterate until the executor's time or iterations are used up."""
    loop = asyncio.get_running_loop()
    vu_client = client.Client(
        run.target, run.request, timeout_s=run.opts.timeout_s, collect=run.opts.breakdown
    )
    sleep_s = run.opts.sleep_s
    run.active += 1
    try:
        while loop.time() < stop_at and run.take_iteration():
            begin = time.perf_counter_ns()
            try:
                run.record(await vu_client.request())
                if sleep_s:
                    await asyncio.sleep(sleep_s)
            except asyncio.CancelledError:
                run.interrupted += 1
                raise
            run.iteration_duration.add(time.perf_counter_ns() - begin)
            run.iterations.add()
            run.complete += 1
    finally:
        run.active -= 1
        vu_client.close()


async def run(
    options: options_mod.LoadOptions, progress: ProgressCallback | None = None
) -> metrics.Summary:
    """Run the load test described by ``options`` and return its summary.

    Args:
        options: what to request, how many VUs, for how long.
        progress: called about once a second with the run's :class:`Progress`.

    Returns:
        Every k6 built-in metric, plus the breakdown when asked for.

    Raises:
        LoadError: unusable options (the system under test failing is not an error).
    """
    scen = scenario.from_options(options)
    state = _Run(options, scen)
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + scen.duration_s
    hard_stop_at = stop_at + scen.graceful_stop_s
    state.vus_max.set(scen.vus)
    tasks = [asyncio.create_task(_vu(state, stop_at), name=f"vu-{i}") for i in range(scen.vus)]
    state.vus.set(scen.vus)

    async def ticker() -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            state.vus.set(state.active)
            if progress is not None:
                progress(state.progress())

    tick = asyncio.create_task(ticker(), name="progress")
    try:
        done, _ = await asyncio.wait(
            tasks,
            timeout=max(0.0, hard_stop_at - loop.time()),
            return_when=asyncio.FIRST_EXCEPTION,
        )
        for task in done:
            exc = None if task.cancelled() else task.exception()
            if exc is not None:
                raise exc  # a bug in mcgw, not a measurement: do not hide it
    finally:
        # VUs still running here have used up the graceful stop: cancelling them
        # counts their iterations as interrupted.
        tick.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(tick, *tasks, return_exceptions=True)
    duration_s = state.elapsed_s()
    if progress is not None:
        progress(state.progress())
    errors = tuple(sorted(state.errors.items(), key=lambda kv: (-kv[1], kv[0])))
    breakdown = tuple(
        metrics.BreakdownRow(cluster, zone, n)
        for (cluster, zone), n in sorted(
            state.breakdown.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1])
        )
    )
    return metrics.Summary(
        metrics=state.registry.summaries(duration_s, options.summary_trend_stats),
        duration_s=duration_s,
        vus_max=scen.vus,
        complete=state.complete,
        interrupted=state.interrupted,
        breakdown=breakdown,
        errors=errors,
    )


def run_sync(
    options: options_mod.LoadOptions, progress: ProgressCallback | None = None
) -> metrics.Summary:
    """:func:`run` on a fresh event loop (uvloop when installed), for callers without one."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover — uvloop is a dependency, but optional here
        return asyncio.run(run(options, progress))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(options, progress))

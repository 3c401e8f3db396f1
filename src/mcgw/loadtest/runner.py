"""Run scenarios: start the VUs, follow each executor's schedule, collect metrics.

Every VU is an asyncio task. What a VU does in one iteration is a *program*
(:class:`VuCode`): the plain-URL program here (one request, then the sleep — the fast
path, no script engine involved), or a script's (:mod:`~mcgw.loadtest.script`). The
executors only decide when iterations start:

* closed models (shared-/per-vu-iterations, constant-/ramping-vus) loop their VUs;
  ramping-vus parks VUs above the stage's target and interrupts those that do not finish
  within ``gracefulRampDown``;
* open models (constant-/ramping-arrival-rate) start iterations at their scheduled times
  on a free VU, growing the pool up to ``maxVUs``; with no free VU the iteration is
  dropped (``dropped_iterations``). Their requests also get ``http_req_response_time``,
  measured from the *intended* start (wrk2's correction for coordinated omission), and
  an iteration starting more than :data:`LATE_S` after its time counts in
  ``iterations_late``.

After its duration every scenario gives running iterations ``gracefulStop``, then
cancels them (counted as interrupted). Thresholds with ``abortOnFail`` are evaluated once
a second and stop the whole run when they fail.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mcgw.loadtest import client, custom, errors, metrics, output, scenario, thresholds
from mcgw.loadtest import options as options_mod

PROGRESS_INTERVAL_S = 1.0
LATE_S = 0.010
"""An arrival-rate iteration starting this much after its scheduled time is late."""
_LATE_NS = int(LATE_S * 1e9)

BATCH = 256
"""Results recorded per batch (a flush is also due at each second of the timeline and
before metrics are read)."""
_BIN_BATCHES = 8
"""Flushed batches whose time-trend samples are binned together (see Run._bin)."""
_BIN_VALUES = _BIN_BATCHES * BATCH
EXPECTED_DURATION = "http_req_duration{expected_response:true}"
"""k6's submetric of http_req_duration for responses with an expected status."""

_now = time.perf_counter_ns
_DEFAULT_VERDICT = object()
"""A batch index without a callback's verdict: judged by the default 200–399."""


@types.coroutine
def yield_once() -> Generator[None, None, None]:
    """One pass of the event loop (= ``asyncio.sleep(0)``, without its call).

    Awaited before each request: the VUs ready in a loop pass then run their own part
    (script, request building) back to back and their writes go out together, instead of
    alternating with the kernel's network path per request — measured ~20% less CPU per
    request for JS scripts, ~10% for Python scenarios, a few % for a plain URL, and less
    system time (the backend gets requests, and we get responses, in larger batches).
    Awaited before a request's clock starts, so no request timing includes it.
    """
    yield


@dataclass(frozen=True, slots=True)
class Progress:
    """The run's state, handed to the progress callback once a second."""

    elapsed_s: float
    """Seconds since the scenarios started (what a scenario's progress bar shows)."""
    vus: int
    """VUs currently running an iteration loop."""
    vus_max: int
    complete: int
    interrupted: int
    scenario: scenario.Scenario
    iterations_started: int = 0
    test_elapsed_s: float | None = None
    """Seconds since the test run began, setup() included, as k6's ``running (…)`` line
    counts them; None: the same as ``elapsed_s``."""


ProgressCallback = Callable[[Progress], None]


class ScriptError(errors.LoadError):
    """An exception thrown by a script (in an iteration the run goes on, as in k6; in
    setup or teardown it ends the run)."""


class TestAborted(ScriptError):
    """The script called ``exec.test.abort()``: its iteration ends, and so does the run
    (see :meth:`Run.abort_test`)."""


EXIT_ABORTED = 108
"""k6's exit code for a test the script aborted."""


class OutOfTime(Exception):
    """``--rps``: the request's slot falls after the test's end, so it is not sent; the
    iteration counts as interrupted."""


def _expected(status: int) -> bool:
    # k6's default expected statuses: 200–399.
    return 200 <= status < 400


@dataclass(eq=False, slots=True)
class VU:
    """One virtual user's identity and per-iteration state, seen by programs."""

    id: int
    """k6's ``__VU``: 1-based, unique in the run."""
    scen: scenario.Scenario
    tags: dict[str, str]
    """Tags of this VU's samples (scenario, group, user tags)."""
    iteration: int = 0
    """k6's ``__ITER``: 0-based iterations this VU completed in its scenario."""
    intended_ns: int = 0
    """Open models: when the current iteration should have started (perf_counter ns)."""
    group: str = ""
    data: object = None
    """What ``setup`` returned."""
    clients: dict[tuple[str, str, int, bool], list[client.Client]] = field(default_factory=dict)
    """Kept-alive clients by (scheme, host, port, HEAD)."""
    code: VuCode | None = None
    counts: list[int] = field(default_factory=lambda: [0, 0])
    """Its scenario's [complete, interrupted] iterations (shared with the run)."""
    in_scenario: int = 0
    """k6/execution's ``scenario.iterationInInstance`` of the current iteration (numbered
    only for scripts that use it: :meth:`Run.number_iteration`)."""

    def close(self) -> None:
        for pool in self.clients.values():
            for c in pool:
                c.close()
        self.clients.clear()
        if self.code is not None:
            self.code.close()


class VuCode(Protocol):
    """One VU's program."""

    def iteration(self, vu: VU) -> Awaitable[None]: ...

    def entry(self, vu: VU) -> tuple[Callable[[Any], Awaitable[None]], object]:
        """What :meth:`Run.iterate` calls for each iteration, and the argument it passes
        (by default ``(self.iteration, vu)``; a Python scenario hands over its own
        function and argument: no frame of ours around it). Asked at the start of each
        ``iterate``, in the task that runs the iterations (per-task set-up goes here)."""
        ...

    def describe(self, exc: Exception) -> str:
        """An exception the iteration raised, as the script's error (file:line)."""
        ...

    def close(self) -> None: ...


class Program(Protocol):
    """What each iteration does, and the test's life cycle around it."""

    def exports(self) -> frozenset[str]: ...

    async def setup(self, run: Run) -> object: ...

    async def teardown(self, run: Run, data: object) -> None: ...

    async def new_vu(self, run: Run, vu: VU) -> VuCode: ...


_SUB = 4
"""Timeline buckets per power of two (quarter octaves: ~19 % wide, plenty for charts)."""


def _bucket(us: int) -> int:
    if us < _SUB:
        return us
    exp = us.bit_length() - 3  # keep the top 3 bits: 4..7 → 4 sub-buckets per octave
    return (exp + 1) * _SUB + ((us >> exp) - _SUB)


def _bucket_counts(durations: np.ndarray[Any, Any]) -> dict[int, int]:
    """How many of ``durations`` (ns) fall in each timeline bucket (``_bucket(ns //
    1000)``), computed in numpy for a batch (a Python loop per value cost ~10x more)."""
    us = durations // 1000
    # bit_length - 3 (≥ 0): a float64's biased exponent is floor(log2(us)) + 1023 (exact:
    # µs values stay far below 2**53), read from its bits — np.frexp cost ~160
    # instructions a value.
    exp = np.maximum((us.astype(np.float64).view(np.int64) >> 52) - 1025, 0)
    tally = np.bincount((exp + 1) * _SUB + (us >> exp) - _SUB)  # (keys below ~150)
    keys = np.flatnonzero(tally)
    return dict(zip(keys.tolist(), tally[keys].tolist(), strict=True))


def _bucket_low(index: int) -> int:
    if index < _SUB:
        return index
    exp = index // _SUB - 1
    return (_SUB + index % _SUB) << exp


class _Second:
    """One second of the timeline: request count, failures and a log-bucketed latency
    histogram (µs) cheap enough for the hot path and mergeable across workers."""

    __slots__ = ("buckets", "clusters", "count", "failed")

    def __init__(self) -> None:
        self.count = 0
        self.failed = 0
        self.buckets: collections.Counter[int] = collections.Counter()
        self.clusters: collections.Counter[str] = collections.Counter()

    def __getstate__(self) -> dict[str, object]:
        return {
            "count": self.count,
            "failed": self.failed,
            "buckets": dict(self.buckets),
            "clusters": dict(self.clusters),
        }

    def __setstate__(self, state: dict[str, object]) -> None:
        self.count = int(state["count"])  # type: ignore[call-overload]
        self.failed = int(state["failed"])  # type: ignore[call-overload]
        self.buckets = collections.Counter(state["buckets"])  # type: ignore[call-overload]
        self.clusters = collections.Counter(state["clusters"])  # type: ignore[call-overload]

    def merge(self, other: _Second) -> None:
        self.count += other.count
        self.failed += other.failed
        self.buckets.update(other.buckets)
        self.clusters.update(other.clusters)

    def percentile_ms(self, p: float) -> float:
        total = sum(self.buckets.values())
        if not total:
            return 0.0
        want = total * p / 100
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= want:
                return _bucket_low(index) / 1000
        return 0.0

    def max_ms(self) -> float:
        return _bucket_low(max(self.buckets)) / 1000 if self.buckets else 0.0


@dataclass
class RawResult:
    """A run's mergeable state (what a worker process sends back)."""

    registry: metrics.Registry
    duration_s: float
    vus_max: int
    complete: int
    interrupted: int
    breakdown: collections.Counter[tuple[str, str]]
    errors: collections.Counter[str]
    checks: dict[tuple[str, str], list[int]]
    timeline: dict[int, _Second]
    aborted: str = ""
    by_scenario: dict[str, list[int]] = field(default_factory=dict)
    """Per scenario: [complete, interrupted] iterations."""
    abort_code: int = 0
    """:data:`EXIT_ABORTED` when the script aborted the test."""

    def merge(self, other: RawResult) -> None:
        self.registry.merge(other.registry)
        self.duration_s = max(self.duration_s, other.duration_s)
        self.vus_max += other.vus_max
        self.complete += other.complete
        self.interrupted += other.interrupted
        self.breakdown.update(other.breakdown)
        self.errors.update(other.errors)
        for key, (passes, fails) in other.checks.items():
            mine = self.checks.setdefault(key, [0, 0])
            mine[0] += passes
            mine[1] += fails
        for sec, bucket in other.timeline.items():
            if sec in self.timeline:
                self.timeline[sec].merge(bucket)
            else:
                self.timeline[sec] = bucket
        self.aborted = self.aborted or other.aborted
        self.abort_code = max(self.abort_code, other.abort_code)
        for name, (done, cut) in other.by_scenario.items():
            mine = self.by_scenario.setdefault(name, [0, 0])
            mine[0] += done
            mine[1] += cut


class _PlainProgram:
    """No script: every iteration requests ``options.url`` and sleeps ``sleep_s``."""

    def __init__(self, opts: options_mod.LoadOptions) -> None:
        self.opts = opts
        self.target = client.parse_target(opts.url, opts.host_map)
        self.request = client.build_request(self.target, opts.method, opts.headers, opts.body)
        self.base_tags = {
            "method": opts.method,
            "url": opts.url,
            "name": opts.url,
            "proto": "HTTP/1.1",
        }

    def exports(self) -> frozenset[str]:
        return frozenset({"default"})

    async def setup(self, run: Run) -> object:
        return None

    async def teardown(self, run: Run, data: object) -> None:
        return None

    async def new_vu(self, run: Run, vu: VU) -> VuCode:
        return _PlainVu(self, run, vu)


class _PlainVu:
    __slots__ = ("client", "program", "raw", "run", "sleep_s", "tags")

    def __init__(self, program: _PlainProgram, run: Run, vu: VU) -> None:
        self.program = program
        self.run = run
        opts = program.opts
        self.raw = program.request
        self.client = client.Client(
            program.target,
            program.request,
            timeout_s=opts.timeout_s,
            collect=run.collect,
            insecure=opts.insecure_skip_tls_verify,
            on_result=self._done,
            head=opts.method.upper() == "HEAD",
        )
        self.tags = {**program.base_tags, **vu.tags}
        self.sleep_s = opts.sleep_s

    def entry(self, vu: VU) -> tuple[Callable[[VU], Awaitable[None]], object]:
        return self.iteration, vu

    def iteration(self, vu: VU) -> Awaitable[None]:
        # On a kept-alive connection the request is recorded by the protocol callback
        # that completes it (client.Client.send), and Run.iterate awaits its future
        # directly: no coroutine of ours per request.
        if not self.sleep_s and not self.run.rps_interval:
            sent = self.client.send(self.raw, vu)
            if sent is not None:
                return sent
        return self._iteration(vu)

    async def _iteration(self, vu: VU) -> None:
        run = self.run
        sent = None if run.rps_interval else self.client.send(self.raw, vu)
        if sent is not None:
            await sent
        else:
            if run.rps_interval:
                await run.rps_wait()
            await yield_once()  # batch with the other ready VUs (see yield_once)
            run.record(await self.client.request(), vu, self.tags)
        if self.sleep_s:
            await asyncio.sleep(self.sleep_s)

    def _done(self, _: client.Client, result: client.Result, vu: VU) -> None:
        self.run.record(result, vu, self.tags)

    def describe(self, exc: Exception) -> str:
        return f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        self.client.close()


class Run:
    """The mutable state of one run; everything VUs touch lives here."""

    def __init__(
        self,
        opts: options_mod.LoadOptions,
        scenarios: tuple[scenario.Scenario, ...],
        program: Program,
        json_out: output.JsonOutput | None = None,
    ) -> None:
        self.opts = opts
        self.scenarios = scenarios
        self.program = program
        self.loop = asyncio.get_running_loop()
        custom_defs: custom.Definitions = getattr(program, "custom_metrics", {})
        self.thresholds = thresholds.parse(opts.thresholds, custom.kinds(custom_defs))
        self.registry = metrics.Registry()
        reg = self.registry
        self.custom = custom.Recorder(
            reg, json_out, custom_defs, tuple(th.metric for th in self.thresholds)
        )
        for th in self.thresholds:
            if th.metric.partition("{")[0] not in thresholds.BREAKDOWN_METRICS:
                reg.declare(th.metric)
        # Resolved once: the hot path touches attributes, not the registry's dict.
        self.blocked = reg.trend("http_req_blocked")
        self.connecting = reg.trend("http_req_connecting")
        self.tls = reg.trend("http_req_tls_handshaking")
        self.sending = reg.trend("http_req_sending")
        self.waiting = reg.trend("http_req_waiting")
        self.receiving = reg.trend("http_req_receiving")
        self.duration = reg.trend("http_req_duration")
        self.expected_duration = reg.trend(EXPECTED_DURATION)
        self.unexpected_duration = metrics.Trend("http_req_duration{expected_response:false}")
        """Not in the registry: the durations subtracted from all of them (sync_derived)."""
        self.custom.unexpected_duration = self.unexpected_duration
        self.failed = reg.rate("http_req_failed")
        self.reqs = reg.counter("http_reqs")
        self.sent = reg.counter("data_sent", "data")
        self.received = reg.counter("data_received", "data")
        self.iterations = reg.counter("iterations")
        self.iteration_duration = reg.trend("iteration_duration")
        self.vus = reg.gauge("vus")
        self.vus_max = reg.gauge("vus_max")
        self.response_time: metrics.Trend | None = None
        if any(s.open_model for s in scenarios):
            self.response_time = reg.trend("http_req_response_time")
            reg.counter("dropped_iterations")
            reg.counter("iterations_late")
        self.json = json_out
        # Tagged samples cost a dict per request: only when something reads the tags.
        self.tagged = json_out is not None or any(
            parent != "http_req_duration" or sel != (("expected_response", "true"),)
            for parent, subs in reg.submetrics.items()
            for sel, _ in subs
        )
        self.collect = opts.breakdown or any(
            th.metric.partition("{")[0] in thresholds.BREAKDOWN_METRICS for th in self.thresholds
        )
        self.rps_interval = 1.0 / opts.rps if opts.rps else 0.0
        self._rps_next = 0.0
        self.rps_end = float("inf")
        """Loop time after which ``--rps`` lets no request out: the last scenario's end."""
        self.scenario_ends: dict[str, float] = {}
        self.active = 0
        self.allocated = 0
        self.interrupted = 0
        self.next_vu_id = 1
        self.breakdown: collections.Counter[tuple[str, str]] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.checks: dict[tuple[str, str], list[int]] = {}
        self.timeline: dict[int, _Second] = {}
        self._sec_end = 0
        self._second = _Second()
        """The timeline's current second and its bucket (saves a dict lookup per request)."""
        self._batch: list[client.Result] = []
        """Results recorded but not yet added to the metrics (see _flush)."""
        self._judged: dict[int, bool | None] = {}
        """Batch index → verdict of a result judged by a response callback other than the
        default (see record_judged); None: not judged (no http_req_failed sample)."""
        self._iteration_durations: list[int] = []
        self._rows: list[np.ndarray[Any, Any]] = []
        """Time trends' samples of flushed batches, not binned yet (see _bin)."""
        self.by_scenario: dict[str, list[int]] = {s.name: [0, 0] for s in scenarios}
        self.start_ns = _now()
        """When the scenarios started (moved there after setup): the timeline's zero."""
        self.began_ns = self.start_ns
        """When the test run began, before setup: k6's ``running (…)`` counts from here."""
        self.aborted = ""
        self.abort_code = 0
        self.scenario_tasks: list[asyncio.Task[None]] = []
        self.scenario_start_ms: dict[str, float] = {}
        """When each scenario's executor started (Unix ms, k6/execution's startTime)."""
        self._numbered: dict[str, list[int]] = {}
        self.global_tags = dict(opts.tags)

    # -- recording --
    def emit(self, name: str, raw: float, tags: Mapping[str, str] | None) -> None:
        """A tagged sample: into matching submetrics and the JSON output."""
        if tags is None:
            return
        for selector, sub in self.registry.submetrics.get(name, ()):
            if all(tags.get(k) == v for k, v in selector):
                if isinstance(sub, metrics.Rate):
                    sub.add(bool(raw))
                elif isinstance(sub, metrics.Gauge):
                    sub.set(raw)
                else:
                    sub.add(int(raw))
        if self.json is not None:
            self.json.point(name, raw, tags)

    def record(self, r: client.Result, vu: VU, tags: Mapping[str, str] | None = None) -> None:
        # The hot path: the result joins a batch (see _flush); only what needs the moment
        # of completion is done here — the timeline's second, the response time from the
        # intended start, tagged samples.
        now = _now()
        if now >= self._sec_end:
            self.flush()
            self._next_second(now)
        batch = self._batch
        batch.append(r)
        if len(batch) >= BATCH:
            self.flush()
        response_time = 0 if self.response_time is None else self._response_time(r, vu, now)
        if self.tagged:
            ok = not r.error and 200 <= r.status < 400  # _expected(status)
            full = dict(tags or {})
            full["status"] = str(r.status)
            full["expected_response"] = "true" if ok else "false"
            if r.error:
                full["error"] = r.error
            self._emit_request(r, full, ok, response_time)

    def _response_time(self, r: client.Result, vu: VU, now: int) -> int:
        """Open models: the response time from the iteration's intended start (the first
        request of an iteration; later ones start on time), recorded."""
        assert self.response_time is not None
        if vu.intended_ns:
            response_time = now - vu.intended_ns
            vu.intended_ns = 0
        else:
            response_time = r.blocked + r.duration
        self.response_time.add(response_time)
        return response_time

    def record_judged(
        self, r: client.Result, vu: VU, tags: Mapping[str, str] | None, expected: bool | None
    ) -> None:
        """:meth:`record` for a response judged by a script's response callback (k6's
        ``expectedStatuses``) instead of the default 200–399: ``expected`` is the verdict,
        None when the callback is ``null`` (no ``expected_response`` tag, no
        ``http_req_failed`` sample). Off the default path: record stays as it was."""
        now = _now()
        if now >= self._sec_end:
            self.flush()
            self._next_second(now)
        batch = self._batch
        self._judged[len(batch)] = expected
        batch.append(r)
        if len(batch) >= BATCH:
            self.flush()
        response_time = 0 if self.response_time is None else self._response_time(r, vu, now)
        if self.tagged:
            full = dict(tags or {})
            full["status"] = str(r.status)
            if expected is not None:
                full["expected_response"] = "true" if expected else "false"
            if r.error:
                full["error"] = r.error
            self._emit_request(r, full, expected, response_time)

    def flush(self) -> None:
        """Record the batched results: the same samples as one ``add`` per metric and
        request, but the columns split by ``zip`` (C) and the time trends binned in numpy
        (metrics.add_rows). All in the current second."""
        if len(self._rows) >= _BIN_BATCHES or len(self._iteration_durations) >= _BIN_VALUES:
            self._bin()
        batch = self._batch
        if not batch:
            return
        self._batch = []
        n = len(batch)
        self.reqs.count += n
        # The columns of the batch (client.Result is a named tuple), in C.
        (
            statuses,
            failures,
            blocked,
            connecting,
            sending,
            waiting,
            receiving,
            sent,
            received,
            _,
            _,
            _,
            _,
            tls,
        ) = zip(*batch, strict=True)
        # The five time trends' samples as one numpy array (duration = sending + waiting
        # + receiving computed there): see metrics.add_rows.
        rows = metrics.int64_rows((blocked, sending, waiting, receiving), spare=1)
        durations = rows[4]
        np.add(rows[1], rows[2], out=durations)
        durations += rows[3]
        self._rows.append(rows)  # binned a few batches at a time (see _bin)
        # connecting and TLS are 0 on a reused connection: counted, not binned.
        for trend, values in ((self.connecting, connecting), (self.tls, tls)):
            if any(values):
                nonzero = [v for v in values if v]
                trend.zeros += n - len(nonzero)
                trend.add_many(nonzero)
            else:
                trend.zeros += n
        self.sent.count += sum(sent)
        self.received.count += sum(received)
        bucket = self._second
        bucket.count += n
        if self._judged:
            self._flush_judged(batch, durations.tolist(), bucket)
        else:
            bad = (
                []  # the usual batch, told in C
                if statuses.count(200) == n and not any(failures)
                else [i for i, r in enumerate(batch) if r.error or not 200 <= r.status < 400]
            )
            self.failed.fails += n - len(bad)
            self.failed.passes += len(bad)
            if bad:
                bucket.failed += len(bad)
                duration = durations.tolist()
                self.unexpected_duration.add_many([duration[i] for i in bad])
                self.errors.update(batch[i].error for i in bad if batch[i].error)
        bucket.buckets.update(_bucket_counts(durations))
        if self.collect:
            answered = [(r.cluster, r.zone) for r in batch if r.status]
            self.breakdown.update(answered)
            bucket.clusters.update(cluster or "(unknown)" for cluster, _ in answered)

    def _bin(self) -> None:
        """Bin the time trends' pending samples (metrics.add_rows): numpy's cost per call
        is paid once per _BIN_BATCHES batches; flush keeps the rest (counts, rates, the
        timeline) current, and sync_derived bins before anything reads a trend."""
        if self._rows:
            pending = self._rows
            self._rows = []
            rows = pending[0] if len(pending) == 1 else np.concatenate(pending, axis=1)
            metrics.add_rows(
                (self.blocked, self.sending, self.waiting, self.receiving, self.duration), rows
            )
        if self._iteration_durations:
            took = metrics.int64_rows((self._iteration_durations,))
            metrics.add_rows((self.iteration_duration,), took)
            self._iteration_durations = []

    def _flush_judged(
        self, batch: list[client.Result], duration: list[int], bucket: _Second
    ) -> None:
        """The failure accounting of a batch with results judged by a response callback:
        theirs by their verdict, the others' by the default 200–399."""
        judged = self._judged
        self._judged = {}
        failed = unjudged = 0
        outside: list[int] = []
        """Durations not in http_req_duration{expected_response:true}."""
        for i, r in enumerate(batch):
            verdict = judged.get(i, _DEFAULT_VERDICT)
            if verdict is _DEFAULT_VERDICT:
                verdict = not r.error and 200 <= r.status < 400
            if verdict is None:
                unjudged += 1
                outside.append(duration[i])
            elif not verdict:
                failed += 1
                outside.append(duration[i])
        self.failed.passes += failed
        self.failed.fails += len(batch) - failed - unjudged
        bucket.failed += failed
        if outside:
            self.unexpected_duration.add_many(outside)
        # Errors count whatever the verdict (a callback may expect status 0).
        self.errors.update(r.error for r in batch if r.error)

    def _next_second(self, now: int) -> None:
        sec = (now - self.start_ns) // 1_000_000_000
        found = self.timeline.get(sec)
        bucket = self.timeline[sec] = _Second() if found is None else found
        self._second = bucket
        self._sec_end = self.start_ns + (sec + 1) * 1_000_000_000

    def sync_derived(self) -> None:
        """Bring batched and derived metrics up to date before they are read (thresholds,
        summary)."""
        self.flush()
        self._bin()
        self.expected_duration.assign_difference(self.duration, self.unexpected_duration)

    def _emit_request(
        self, r: client.Result, tags: dict[str, str], ok: bool | None, response_time: int
    ) -> None:
        emit = self.emit
        emit("http_reqs", 1, tags)
        emit("http_req_duration", r.duration, tags)
        emit("http_req_blocked", r.blocked, tags)
        emit("http_req_connecting", r.connecting, tags)
        emit("http_req_tls_handshaking", r.tls, tags)
        emit("http_req_sending", r.sending, tags)
        emit("http_req_waiting", r.waiting, tags)
        emit("http_req_receiving", r.receiving, tags)
        if ok is not None:  # (None: a null response callback, no sample)
            emit("http_req_failed", not ok, tags)
        if self.response_time is not None:
            emit("http_req_response_time", response_time, tags)
        emit("data_sent", r.bytes_sent, tags)
        emit("data_received", r.bytes_received, tags)

    def check(self, vu: VU, name: str, ok: bool) -> None:
        counts = self.checks.setdefault((vu.group, name), [0, 0])
        counts[0 if ok else 1] += 1
        self.registry.rate("checks").add(ok)
        if self.tagged:
            self.emit("checks", ok, {**vu.tags, "group": vu.group, "check": name})

    def group_done(self, vu: VU, path: str, ns: int) -> None:
        self.registry.trend("group_duration").add(ns)
        if self.tagged:
            self.emit("group_duration", ns, {**vu.tags, "group": path})

    async def rps_wait(self) -> None:
        """Wait for this request's slot under ``--rps``.

        Raises:
            OutOfTime: the slot is at or after the end of the test (the last scenario's
                duration): no request may leave then, however many VUs are queued.
        """
        now = self.loop.time()
        slot = max(now, self._rps_next)
        # (A microsecond of slack: slots are sums of the interval, whose rounding errors
        # would otherwise let the slot that falls at the very end out, e.g. the 21st of
        # --rps 20 over 1 s.)
        if slot >= self.rps_end - 1e-6:
            # Hold the VU until the end (not a busy loop of cut iterations), then cut.
            if self.rps_end > now:
                await asyncio.sleep(self.rps_end - now)
            raise OutOfTime
        self._rps_next = slot + self.rps_interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def abort_test(self, reason: str) -> None:
        """``exec.test.abort()``: stop every scenario now (running iterations are
        interrupted; teardown still runs) and exit with k6's 108."""
        if not self.abort_code:
            self.abort_code = EXIT_ABORTED
            self.aborted = reason
        for task in self.scenario_tasks:
            task.cancel()

    def number_iteration(self, vu: VU) -> None:
        """Give the iteration ``vu`` starts its number in its scenario (k6/execution)."""
        counter = self._numbered.get(vu.scen.name)
        if counter is None:
            counter = self._numbered[vu.scen.name] = [0]
        vu.in_scenario = counter[0]
        counter[0] += 1

    def scenario_started(self, scen: scenario.Scenario, end: float) -> None:
        """A scenario's executor starts now and ends at ``end`` (loop time)."""
        self.scenario_start_ms[scen.name] = time.time() * 1000.0
        self.scenario_ends[scen.name] = end
        self.rps_end = max(self.scenario_ends.values())

    @property
    def complete(self) -> int:
        """Iterations that ran to their end."""
        return self.iterations.count

    @property
    def started(self) -> int:
        return self.complete + self.interrupted + self.active

    def elapsed_s(self) -> float:
        return (_now() - self.start_ns) / 1e9

    def progress(self) -> Progress:
        return Progress(
            elapsed_s=self.elapsed_s(),
            vus=self.active,
            vus_max=self.allocated,
            complete=self.complete,
            interrupted=self.interrupted,
            scenario=self.scenarios[0],
            iterations_started=self.started,
            test_elapsed_s=(_now() - self.began_ns) / 1e9,
        )

    # -- VUs and iterations --
    async def new_vu(self, scen: scenario.Scenario, data: object) -> VU:
        tags = {**self.global_tags, **dict(scen.tags), "scenario": scen.name, "group": ""}
        vu = VU(self.next_vu_id, scen, tags, data=data)
        vu.counts = self.by_scenario[scen.name]
        self.next_vu_id += 1
        vu.code = await self.program.new_vu(self, vu)
        self.allocated += 1
        return vu

    async def iterate(
        self, vu: VU, until: float | None = None, budget: list[int] | None = None
    ) -> None:
        """Iterations on ``vu``; script exceptions are counted, not raised.

        One iteration, or with ``until`` (loop time) iterations back to back while it is
        before ``until`` and ``budget`` (a count shared by the VUs that draw on it) lasts:
        the closed executors' loop is here rather than in a coroutine of theirs, so each
        request's resumption passes one frame less.
        """
        code = vu.code
        assert code is not None
        # ``until`` on the clock of _now (both monotonic): the iteration's start time is
        # read anyway, the loop's time() was a call more per iteration.
        until_ns = 0 if until is None else _now() + int((until - self.loop.time()) * 1e9)
        counts = vu.counts
        iterations = self.iterations
        tagged = self.tagged
        step, arg = code.entry(vu)
        # Active from here to the return: others look only while an iteration is
        # suspended, so counting the VU once per call (not per iteration) reads the same.
        self.active += 1
        try:
            while True:
                begin = _now()
                if until is not None:
                    if begin >= until_ns:
                        return
                    if budget is not None:
                        if budget[0] <= 0:
                            return
                        budget[0] -= 1
                # (else: open models run one iteration a call, from its intended start)
                elif vu.intended_ns and begin - vu.intended_ns > _LATE_NS:
                    self.registry.counter("iterations_late").add()
                error: str | None = None  # None: complete; "": interrupted, not an error
                try:
                    await step(arg)
                except asyncio.CancelledError:
                    self.interrupted += 1
                    counts[1] += 1
                    raise
                except OutOfTime:
                    error = ""
                except TestAborted:
                    error = ""
                    until = None  # this VU stops too (the run is being stopped)
                except ScriptError as exc:
                    error = f"script: {exc}"
                except Exception as exc:
                    error = f"script: {code.describe(exc)}"
                finally:
                    vu.group = ""
                vu.iteration += 1
                if error is not None:
                    if error:
                        self.errors[error] += 1
                    self.interrupted += 1
                    counts[1] += 1
                else:
                    took = _now() - begin
                    self._iteration_durations.append(took)
                    iterations.count += 1
                    if tagged:
                        self.emit("iterations", 1, vu.tags)
                        self.emit("iteration_duration", took, vu.tags)
                    counts[0] += 1
                if until is None:
                    return
        finally:
            self.active -= 1

    def dropped(self, vu_tags: Mapping[str, str]) -> None:
        self.registry.counter("dropped_iterations").add()
        if self.tagged:
            self.emit("dropped_iterations", 1, vu_tags)

    def raw(self) -> RawResult:
        self.sync_derived()
        return RawResult(
            registry=self.registry,
            duration_s=self.elapsed_s(),
            vus_max=self.allocated,
            complete=self.complete,
            interrupted=self.interrupted,
            breakdown=self.breakdown,
            errors=self.errors,
            checks=self.checks,
            timeline=self.timeline,
            aborted=self.aborted,
            by_scenario=self.by_scenario,
            abort_code=self.abort_code,
        )


# -- executors --


async def _closed(run: Run, scen: scenario.Scenario, data: object) -> None:
    loop = run.loop
    vus = [await run.new_vu(scen, data) for _ in range(scen.peak_vus)]
    run.vus_max.set(run.allocated)
    if scen.executor != "ramping-vus":
        run.vus.set(len(vus))
    start = loop.time()
    end = start + scen.duration_s
    run.scenario_started(scen, end)
    remaining = [scen.iterations or 0]

    def shared(vu: VU) -> Coroutine[None, None, None]:
        return run.iterate(vu, end, remaining)

    def per_vu(vu: VU) -> Coroutine[None, None, None]:
        return run.iterate(vu, end, [scen.iterations or 0])

    def looping(vu: VU) -> Coroutine[None, None, None]:
        return run.iterate(vu, end)

    idle = asyncio.Event()
    running: dict[int, asyncio.Task[None]] = {}
    parked_since: dict[int, float] = {}

    async def ramping(index: int, vu: VU) -> None:
        while (now := loop.time()) < end:
            if index >= scen.target_vus(now - start):
                idle.clear()
                await asyncio.sleep(0.05)
                continue
            task = asyncio.ensure_future(run.iterate(vu))
            running[index] = task
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.cancelled():
                    task.cancel()
                    raise
                # Interrupted by the ramp-down watcher: the VU carries on (parked).
            finally:
                running.pop(index, None)
                parked_since.pop(index, None)

    async def ramp_down_watch() -> None:
        while True:
            await asyncio.sleep(0.05)
            now = loop.time()
            target = scen.target_vus(now - start)
            for index, task in list(running.items()):
                if index < target:
                    parked_since.pop(index, None)
                    continue
                since = parked_since.setdefault(index, now)
                if now - since > scen.graceful_ramp_down_s:
                    task.cancel()

    body: Callable[[VU], Coroutine[None, None, None]]
    extra: list[asyncio.Task[None]] = []
    if scen.executor == "shared-iterations":
        body = shared
    elif scen.executor == "per-vu-iterations":
        body = per_vu
    elif scen.executor == "constant-vus":
        body = looping
    else:
        extra.append(asyncio.create_task(ramp_down_watch()))
        tasks = [asyncio.create_task(ramping(i, vu)) for i, vu in enumerate(vus)]
        await _finish(run, scen, end, tasks, extra, vus)
        return
    tasks = [asyncio.create_task(body(vu)) for vu in vus]
    await _finish(run, scen, end, tasks, extra, vus)


async def _open(run: Run, scen: scenario.Scenario, data: object) -> None:
    loop = run.loop
    free: list[VU] = [await run.new_vu(scen, data) for _ in range(scen.vus)]
    run.vus_max.set(run.allocated)
    everyone = list(free)
    start = loop.time()
    end = start + scen.duration_s
    run.scenario_started(scen, end)
    tasks: set[asyncio.Task[None]] = set()
    growing = [0]
    tags = {**run.global_tags, **dict(scen.tags), "scenario": scen.name}

    async def one(vu: VU) -> None:
        try:
            await run.iterate(vu)
        finally:
            free.append(vu)

    async def grow() -> None:
        try:
            vu = await run.new_vu(scen, data)
            run.vus_max.set(run.allocated)
            everyone.append(vu)
            free.append(vu)
        finally:
            growing[0] -= 1

    async def dispatch() -> None:
        n = 0
        for t in scen.arrivals():
            due = start + t
            now = loop.time()
            if due > now:
                await asyncio.sleep(due - now)
            elif n % 64 == 0:
                await asyncio.sleep(0)
            n += 1
            if loop.time() >= end:
                return
            if free:
                vu = free.pop()
                vu.intended_ns = _now() - int((loop.time() - due) * 1e9)
                task = asyncio.create_task(one(vu))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                continue
            run.dropped(tags)
            if len(everyone) + growing[0] < scen.max_vus:
                growing[0] += 1
                task = asyncio.create_task(grow())
                tasks.add(task)
                task.add_done_callback(tasks.discard)

    dispatcher = asyncio.create_task(dispatch())
    try:
        await asyncio.wait_for(asyncio.shield(dispatcher), timeout=max(0.0, end - loop.time()))
    except TimeoutError:
        dispatcher.cancel()
    # gracefulStop for the iterations still running.
    pending = [t for t in tasks if not t.done()]
    await _finish(run, scen, end, pending, [dispatcher], everyone)


async def _finish(
    run: Run,
    scen: scenario.Scenario,
    end: float,
    tasks: list[asyncio.Task[None]],
    extra: list[asyncio.Task[None]],
    vus: list[VU],
) -> None:
    """Wait for the VUs until the end plus gracefulStop, then interrupt the rest."""
    loop = run.loop
    try:
        if tasks:
            done, _ = await asyncio.wait(
                tasks,
                timeout=max(0.0, end + scen.graceful_stop_s - loop.time()),
                return_when=asyncio.FIRST_EXCEPTION,
            )
            for task in done:
                exc = None if task.cancelled() else task.exception()
                if exc is not None:
                    raise exc  # a bug in mcgw, not a measurement: do not hide it
    finally:
        for task in [*tasks, *extra]:
            task.cancel()
        await asyncio.gather(*tasks, *extra, return_exceptions=True)
        for vu in vus:
            vu.close()


async def _scenario(run: Run, scen: scenario.Scenario, data: object) -> None:
    if scen.start_time_s:
        await asyncio.sleep(scen.start_time_s)
    if scen.open_model:
        await _open(run, scen, data)
    else:
        await _closed(run, scen, data)


def plain(opts: options_mod.LoadOptions) -> Program:
    """The program of a run without a script: request ``opts.url``, then sleep."""
    return _PlainProgram(opts)


def scenarios_for(opts: options_mod.LoadOptions) -> tuple[scenario.Scenario, ...]:
    """The scenarios a run executes: the script's ``scenarios``, else the shortcut one."""
    if opts.scenarios:
        return tuple(scenario.from_config(name, raw) for name, raw in opts.scenarios)
    return (scenario.from_options(opts),)


async def run_raw(
    options: options_mod.LoadOptions,
    progress: ProgressCallback | None = None,
    program: Program | None = None,
    *,
    setup_data: object = None,
    run_setup: bool = True,
    scenarios: tuple[scenario.Scenario, ...] | None = None,
) -> RawResult:
    """Run the test and return its mergeable state (see :func:`run`)."""
    scens = scenarios if scenarios is not None else scenarios_for(options)
    prog: Program = program if program is not None else _PlainProgram(options)
    for scen in scens:
        if scen.exec_name not in prog.exports():
            raise ScriptError(f"scenario {scen.name!r}: the script exports no {scen.exec_name}()")
    json_out = output.JsonOutput.open(options.out_json) if options.out_json else None
    try:
        if json_out is not None:
            json_out.declare_thresholds(options.thresholds)
        state = Run(options, scens, prog, json_out)
        try:
            data = await prog.setup(state) if run_setup else setup_data
        except ScriptError:
            if not state.abort_code:
                raise
            data = None  # exec.test.abort() in setup: no scenario runs, teardown does
        state.sync_derived()  # setup's requests: in the timeline's seconds from the old start
        state.start_ns = _now()
        state._sec_end = 0
        now = state.loop.time()
        state.scenario_ends = {s.name: now + s.start_time_s + s.duration_s for s in scens}
        state.rps_end = max(state.scenario_ends.values())
        tasks = (
            [asyncio.create_task(_scenario(state, s, data)) for s in scens]
            if not state.abort_code
            else []
        )
        state.scenario_tasks = tasks
        ticker_task = asyncio.create_task(_ticker(state, progress, tasks))
        try:
            done = (
                (await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION))[0]
                if tasks
                else set()
            )
            for task in done:
                exc = None if task.cancelled() else task.exception()
                if exc is not None:
                    raise exc
        finally:
            ticker_task.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(ticker_task, *tasks, return_exceptions=True)
        if progress is not None:
            progress(state.progress())
        raw = state.raw()
        if run_setup:
            try:
                await prog.teardown(state, data)
            except ScriptError:
                if not state.abort_code:
                    raise
            # k6's summary comes after teardown: its requests count, as setup's do (the
            # registry is the run's own), and its test run duration, which the rates
            # divide by, runs from before setup to after teardown.
            state.sync_derived()
            raw.abort_code, raw.aborted = state.abort_code, state.aborted
            raw.duration_s = (_now() - state.began_ns) / 1e9
        return raw
    finally:
        if json_out is not None:
            json_out.close()


async def _ticker(
    state: Run, progress: ProgressCallback | None, tasks: list[asyncio.Task[None]]
) -> None:
    last_eval = 0.0
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL_S)
        state.flush()  # (bounds the batches when iterations make no requests)
        state.vus.set(state.active)
        if state.tagged:
            state.emit("vus", state.active, state.global_tags)
            state.emit("vus_max", state.allocated, state.global_tags)
        if progress is not None:
            progress(state.progress())
        elapsed = state.elapsed_s()
        if elapsed - last_eval >= 1.0:
            last_eval = elapsed
            if any(th.abort_on_fail for th in state.thresholds):
                state.sync_derived()
            for th in state.thresholds:
                if not th.abort_on_fail or elapsed < th.delay_abort_eval_s:
                    continue
                if not thresholds.evaluate(th, state.registry, elapsed, state.breakdown):
                    state.aborted = f"threshold {th.metric}: {th.source} crossed (abortOnFail)"
                    for task in tasks:
                        task.cancel()
                    return


def summarize(
    raw: RawResult,
    options: options_mod.LoadOptions,
    scens: tuple[scenario.Scenario, ...] | None = None,
) -> metrics.Summary:
    """Turn a run's state into its immutable summary, thresholds evaluated."""
    ths = thresholds.parse(options.thresholds, custom.registry_kinds(raw.registry))
    rows = tuple(
        metrics.ThresholdRow(
            th.metric,
            th.source,
            thresholds.evaluate(th, raw.registry, raw.duration_s, raw.breakdown),
        )
        for th in ths
    )
    error_rows = tuple(sorted(raw.errors.items(), key=lambda kv: (-kv[1], kv[0])))
    breakdown = tuple(
        metrics.BreakdownRow(cluster, zone, n)
        for (cluster, zone), n in sorted(
            raw.breakdown.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1])
        )
    )
    checks = tuple(
        metrics.CheckRow(group, name, passes, fails)
        for (group, name), (passes, fails) in raw.checks.items()
    )
    timeline = tuple(
        metrics.TimePoint(
            t=sec,
            requests=b.count,
            failed=b.failed,
            p50_ms=b.percentile_ms(50),
            p95_ms=b.percentile_ms(95),
            max_ms=b.max_ms(),
            clusters=tuple(sorted(b.clusters.items())),
        )
        for sec, b in sorted(raw.timeline.items())
    )
    scens = scens if scens is not None else scenarios_for(options)
    return metrics.Summary(
        metrics=raw.registry.summaries(raw.duration_s, options.summary_trend_stats),
        duration_s=raw.duration_s,
        vus_max=raw.vus_max,
        complete=raw.complete,
        interrupted=raw.interrupted,
        breakdown=breakdown,
        errors=error_rows,
        finished=not raw.aborted,
        checks=checks,
        thresholds=rows,
        aborted=raw.aborted,
        scenarios=scens,
        timeline=timeline,
        scenario_counts=tuple((k, v[0], v[1]) for k, v in raw.by_scenario.items()),
        abort_code=raw.abort_code,
    )


async def run(
    options: options_mod.LoadOptions,
    progress: ProgressCallback | None = None,
    program: Program | None = None,
) -> metrics.Summary:
    """Run the load test described by ``options`` and return its summary.

    Args:
        options: what to request, how many VUs, for how long.
        progress: called about once a second with the run's :class:`Progress`.
        program: a script's program; None requests ``options.url`` each iteration.

    Returns:
        Every k6 built-in metric, thresholds evaluated, plus the breakdown when asked for.

    Raises:
        LoadError: unusable options (the system under test failing is not an error).
    """
    raw = await run_raw(options, progress, program)
    return summarize(raw, options)


def run_sync(
    options: options_mod.LoadOptions,
    progress: ProgressCallback | None = None,
    program: Program | None = None,
) -> metrics.Summary:
    """:func:`run` on a fresh event loop (uvloop when installed), for callers without one."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover — uvloop is a dependency, but optional here
        return asyncio.run(run(options, progress, program))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(options, progress, program))


def timestamp() -> str:
    """Now in RFC 3339 with the local offset, as k6 stamps samples."""
    return datetime.datetime.now().astimezone().isoformat()

"""The per-request fast path: Client.send completing in the protocol callback, and the
runner's batched recording (the same metrics as one sample at a time)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import typing
from collections.abc import AsyncIterator

import loadtest_server as fake
import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from mcgw.loadtest import client, metrics, options, runner, scenario

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _client(port: int, **kwargs: object) -> client.Client:
    target = client.parse_target(f"http://127.0.0.1:{port}/")
    return client.Client(
        target,
        client.build_request(target),
        timeout_s=float(kwargs.pop("timeout_s", 5.0)),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def _label(c: client.Client, result: client.Result, context: object) -> tuple[object, int]:
    return context, result.status


class _Completing:
    """What Http._sent reads of its client: the clock as the response completed."""

    @property
    def done_ns(self) -> int:
        return time.perf_counter_ns()


@contextlib.asynccontextmanager
async def _scripted(answers: list[int]) -> AsyncIterator[tuple[int, list[int]]]:
    """A server whose n-th connection answers ``answers[n]`` requests, then closes on
    the next one without a byte (-1, or no entry: answers all). Yields its port and the
    requests seen per connection."""
    seen: list[int] = []
    tasks: set[asyncio.Task[None]] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        index = len(seen)
        seen.append(0)
        budget = answers[index] if index < len(answers) else -1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                seen[index] += 1
                if budget == 0:
                    return
                budget -= 1
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()
            tasks.discard(task)

    srv = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    try:
        yield int(srv.sockets[0].getsockname()[1]), seen
    finally:
        srv.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await srv.wait_closed()


def test_send_completes_in_the_callback_with_k6_timings() -> None:
    async def go() -> None:
        async with fake.serve() as server:
            c = _client(server.port, on_result=_label)
            assert c.send(b"", "ctx") is None  # no connection yet: request() opens one
            first = await c.request()
            assert first.status == 200 and first.connecting > 0
            raw = client.build_request(client.parse_target(f"http://127.0.0.1:{server.port}/x"))
            sent = c.send(raw, "ctx")
            assert sent is not None and c.busy
            assert c.send(raw, "other") is None  # one request in flight per client
            assert await sent == ("ctx", 200)
            assert not c.busy and server.targets == ["/", "/x"]
            assert server.connections == 1  # the fast path reuses the kept-alive connection
            c.close()

    asyncio.run(go())


def test_on_result_sees_the_clock_of_the_completion() -> None:
    # on_result reads Client.done_ns instead of the clock (Http._sent's timeline second):
    # both ways of completing (the inline one, and Client._complete with the breakdown)
    # must set it to a reading taken after the response began and before the callback.
    async def go(collect: bool) -> None:
        seen: list[tuple[int, int, int]] = []

        def on_result(c: client.Client, result: client.Result, context: object) -> None:
            seen.append((c._start, c.done_ns, time.perf_counter_ns()))

        async with fake.serve() as server:
            c = _client(server.port, on_result=on_result, collect=collect)
            await c.request()
            for _ in range(3):
                sent = c.send(c._request, None)
                assert sent is not None
                await sent
            c.close()
        assert len(seen) == 3
        for start, done, now in seen:
            assert 0 < start <= done <= now
        assert len({done for _, done, _ in seen}) == 3

    asyncio.run(go(False))
    asyncio.run(go(True))


def test_send_result_fields_match_request() -> None:
    results: list[client.Result] = []

    def keep(c: client.Client, result: client.Result, context: object) -> None:
        results.append(result)

    async def go() -> None:
        async with fake.serve() as server:
            c = _client(server.port, on_result=keep, capture=True)
            slow = await c.request()
            sent = c.send(
                client.build_request(client.parse_target(f"http://127.0.0.1:{server.port}/"))
            )
            assert sent is not None
            await sent
            fast = results[0]
            assert (fast.status, fast.error, fast.body) == (slow.status, "", slow.body)
            assert fast.bytes_sent == slow.bytes_sent and fast.bytes_received == slow.bytes_received
            assert fast.headers == slow.headers
            assert fast.connecting == 0 and fast.tls == 0
            assert min(fast.blocked, fast.sending, fast.waiting, fast.receiving) >= 0
            assert fast.duration == fast.sending + fast.waiting + fast.receiving > 0
            c.close()

    asyncio.run(go())


def test_send_raises_what_on_result_raises() -> None:
    def boom(c: client.Client, result: client.Result, context: object) -> None:
        raise ValueError("from on_result")

    async def go() -> None:
        async with fake.serve() as server:
            c = _client(server.port, on_result=boom)
            await c.request()
            sent = c.send(c._request)
            assert sent is not None
            with pytest.raises(ValueError, match="from on_result"):
                await sent
            assert not c.busy
            c.close()

    asyncio.run(go())


def test_send_timeout_is_a_failed_result_and_the_next_request_reconnects() -> None:
    async def go() -> None:
        behaviour = fake.Behaviour()
        async with fake.serve(behaviour) as server:
            c = _client(server.port, on_result=lambda c, r, x: r)
            assert (await c.request()).status == 200
            behaviour.respond = False
            sent = c.send(c._request, None, 0.2)
            assert sent is not None
            timed_out = await sent
            assert (timed_out.status, timed_out.error) == (0, "request timeout")
            assert timed_out.blocked >= 150_000_000  # the whole wait, as request() reports it
            behaviour.respond = True
            assert c.send(c._request) is None  # the timed-out connection was dropped
            assert (await c.request()).status == 200
            assert server.connections == 2
            c.close()

    asyncio.run(go())


def test_send_on_a_connection_closed_under_it_is_retried_once_on_a_new_one() -> None:
    async def go() -> None:
        async with _scripted([1]) as (port, seen):
            # The first connection answers one request and closes on the second without a
            # byte (a keep-alive timeout racing our request): like Go's transport, the
            # request is sent again on a new connection.
            c = _client(port, on_result=lambda c, r, x: r)
            assert (await c.request()).status == 200
            sent = c.send(c._request)
            assert sent is not None
            retried = await sent
            assert (retried.status, retried.error) == (200, "")
            assert retried.connecting > 0  # a new connection's connect time
            assert seen == [2, 1]
            c.close()

    asyncio.run(go())


def test_cancelled_send_leaves_the_client_usable() -> None:
    async def go() -> None:
        async with _scripted([1]) as (port, seen):
            c = _client(port, on_result=lambda c, r, x: r)
            assert (await c.request()).status == 200
            # The VU is interrupted (ramp-down, gracefulStop) with a request in flight.
            sent = c.send(c._request)
            assert sent is not None
            await asyncio.sleep(0.05)
            sent.cancel()
            # Its connection cannot carry another request: request() starts afresh.
            again = await c.request()
            assert (again.status, again.error) == (200, "")
            assert len(seen) == 2 and not c.busy
            c.close()

    asyncio.run(go())


# -- batched recording --


def test_trend_add_many_equals_add() -> None:
    rng = random.Random(5)
    values = [rng.randint(0, 5_000_000_000) for _ in range(3000)] + [0, 1, 2047, 2048]
    # Each index table's range (below 65.5 µs; 65.5 µs to 2.1 ms) and their edges.
    values += [rng.randint(0, 65_535) for _ in range(1000)]
    values += [rng.randint(65_536, 2_097_151) for _ in range(2000)]
    values += [65_535, 65_536, 2_097_151, 2_097_152]
    rng.shuffle(values)
    one, many = metrics.Trend("a"), metrics.Trend("b")
    for v in values:
        one.add(v)
    many.add_many(values[:1000])
    many.add_many(values[1000:])
    many.add_many([])
    stats = ("avg", "min", "med", "max", "p(90)", "p(99)", "p(99.99)", "count")
    assert one.summary(1.0, stats).values == many.summary(1.0, stats).values
    assert one._counts == many._counts
    # Out of range (clamped as add clamps them).
    one.add(-5)
    one.add(10**15)
    many.add_many([-5, 10**15])
    assert one.summary(1.0, stats).values == many.summary(1.0, stats).values


def test_trend_add_many_batches_within_one_table() -> None:
    # add_many takes a loop per range when a whole batch falls in one index table's range
    # (the usual batch): each range, and batches across the ranges' edges.
    rng = random.Random(9)
    batches = [
        [rng.randint(0, 65_535) for _ in range(300)] + [0, 65_535],
        [rng.randint(65_536, 2_097_151) for _ in range(300)] + [65_536, 2_097_151],
        [rng.randint(2_097_152, 9_000_000_000) for _ in range(300)],
        [65_535, 65_536],
        [2_097_151, 2_097_152],
    ]
    one, many = metrics.Trend("a"), metrics.Trend("b")
    for batch in batches:
        for v in batch:
            one.add(v)
        many.add_many(batch)
        assert one._counts == many._counts
    stats = ("avg", "min", "med", "max", "p(90)", "p(99)", "count")
    assert one.summary(1.0, stats).values == many.summary(1.0, stats).values


def _results(n: int, seed: int) -> list[client.Result]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        status = rng.choice((200, 200, 200, 302, 404, 500, 0))
        out.append(
            client.Result(
                status=status,
                error="request timeout" if status == 0 else "",
                blocked=rng.randint(100, 50_000),
                connecting=rng.choice((0, 0, 0, rng.randint(10_000, 900_000))),
                sending=rng.randint(1_000, 40_000),
                waiting=rng.randint(20_000, 90_000_000),
                receiving=rng.randint(0, 200_000),
                bytes_sent=60 + i % 7,
                bytes_received=300 + i % 11,
                cluster=rng.choice(("a", "b", "")),
                zone="z",
                tls=rng.choice((0, 0, 123_456)),
            )
        )
    return out


def test_batched_recording_equals_a_sample_per_metric() -> None:
    results = _results(2600, seed=7)  # (more than runner._BIN_VALUES: binned twice)

    async def go() -> runner.Run:
        opts = options.LoadOptions(url="http://127.0.0.1:9/", breakdown=True)
        run = runner.Run(opts, (scenario.from_options(opts),), runner.plain(opts))
        vu = runner.VU(1, run.scenarios[0], {})
        for r in results:
            run.record(r, vu)
        assert run._rows  # (a few batches wait to be binned)
        run.sync_derived()
        assert not run._rows
        return run

    run = asyncio.run(go())
    assert len(results) > runner._BIN_VALUES
    reference = {
        name: metrics.Trend(name)
        for name in (
            "http_req_blocked",
            "http_req_connecting",
            "http_req_tls_handshaking",
            "http_req_sending",
            "http_req_waiting",
            "http_req_receiving",
            "http_req_duration",
            runner.EXPECTED_DURATION,
        )
    }
    for r in results:
        reference["http_req_blocked"].add(r.blocked)
        reference["http_req_connecting"].add(r.connecting)
        reference["http_req_tls_handshaking"].add(r.tls)
        reference["http_req_sending"].add(r.sending)
        reference["http_req_waiting"].add(r.waiting)
        reference["http_req_receiving"].add(r.receiving)
        reference["http_req_duration"].add(r.duration)
        if not r.error and 200 <= r.status < 400:
            reference[runner.EXPECTED_DURATION].add(r.duration)
    stats = ("avg", "min", "med", "max", "p(95)", "count")
    for name, trend in reference.items():
        got = run.registry.get(name)
        assert isinstance(got, metrics.Trend), name
        want = trend.summary(1.0, stats).values
        if name == runner.EXPECTED_DURATION:  # derived: min/max at histogram precision
            assert got.summary(1.0, ("avg", "med", "p(95)", "count")).values == tuple(
                kv for kv in want if kv[0] not in ("min", "max")
            )
        else:
            assert got.summary(1.0, stats).values == want, name
    bad = [r for r in results if r.error or not 200 <= r.status < 400]
    assert (run.failed.passes, run.failed.fails) == (len(bad), len(results) - len(bad))
    assert run.reqs.count == len(results)
    assert run.sent.count == sum(r.bytes_sent for r in results)
    assert run.received.count == sum(r.bytes_received for r in results)
    assert dict(run.errors) == {"request timeout": sum(1 for r in results if r.status == 0)}
    answered = [r for r in results if r.status]
    assert sum(run.breakdown.values()) == len(answered)
    assert run.breakdown[("a", "z")] == sum(1 for r in answered if r.cluster == "a")
    # The timeline: every request in some second, its latency in the µs buckets.
    seconds = list(run.timeline.values())
    assert sum(s.count for s in seconds) == len(results)
    assert sum(s.failed for s in seconds) == len(bad)
    buckets: dict[int, int] = {}
    for r in results:
        key = runner._bucket(r.duration // 1000)
        buckets[key] = buckets.get(key, 0) + 1
    merged: dict[int, int] = {}
    for s in seconds:
        for key, n in s.buckets.items():
            merged[key] = merged.get(key, 0) + n
    assert merged == buckets
    assert sum(sum(s.clusters.values()) for s in seconds) == len(answered)


def test_batches_are_cut_at_each_second_of_the_timeline() -> None:
    async def go() -> runner.Run:
        opts = options.LoadOptions(url="http://127.0.0.1:9/")
        run = runner.Run(opts, (scenario.from_options(opts),), runner.plain(opts))
        vu = runner.VU(1, run.scenarios[0], {})
        results = _results(30, seed=3)
        for r in results[:10]:
            run.record(r, vu)
        run.start_ns -= 1_000_000_000  # as if a second passed: the next record starts sec 1
        run._sec_end = 0
        for r in results[10:]:
            run.record(r, vu)
        run.sync_derived()
        return run

    run = asyncio.run(go())
    assert sorted((sec, s.count) for sec, s in run.timeline.items()) == [(0, 10), (1, 20)]


def test_index_table_is_hdrhistograms_counts_index() -> None:
    table = metrics._index_table(1 << 16)
    assert table == [metrics._counts_index(v) for v in range(1 << 16)]
    hist = HdrHistogram(1, 3_600 * 1_000_000_000, 3)
    for v in (1, 2047, 2048, 2049, 4095, 4096, 40_000, 65_535):
        assert table[v] == hist._counts_index_for(v)


def test_fast_get_records_and_keeps_cookies_of_a_chunked_response() -> None:
    from mcgw.loadtest import script

    responses = [
        RESPONSE,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Pad: "
        + b"p" * 300
        + b"\r\nSet-Cookie: sid=s2; Path=/\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    ]

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            for response in responses:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(response)
                await writer.drain()
            await reader.read()
        writer.close()

    async def go() -> None:
        srv = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/"
        opts = options.LoadOptions(url=url)
        run = runner.Run(opts, (scenario.from_options(opts),), runner.plain(opts))
        vu = runner.VU(1, run.scenarios[0], {})
        http = script.Http(run, vu)
        try:
            first = await http.get(url)  # a new connection: request()
            sent = http.get(url)
            assert isinstance(sent, asyncio.Future)  # the kept-alive one: the fast path
            second = await sent
            assert (first.status, second.status, second.body) == (200, 200, "hello world")
            assert http.jar.cookies_for_url(url) == {"sid": ["s2"]}
            run.sync_derived()
            assert run.reqs.count == 2
        finally:
            vu.close()
            srv.close()
            await srv.wait_closed()

    asyncio.run(go())


def test_sends_of_one_pass_go_out_in_one_loop_callback_in_order() -> None:
    async def go() -> None:
        async with fake.serve() as server:
            clients = [_client(server.port, on_result=_label) for _ in range(3)]
            for c in clients:
                assert (await c.request()).status == 200
            loop = asyncio.get_running_loop()
            scheduled: list[object] = []
            call_soon = loop.call_soon

            def counting(callback: typing.Any, *args: typing.Any, **kw: typing.Any) -> typing.Any:
                scheduled.append(callback)
                return call_soon(callback, *args, **kw)

            loop.call_soon = counting  # type: ignore[method-assign,assignment]
            try:
                sent = [c.send(c._request, i) for i, c in enumerate(clients)]
            finally:
                loop.call_soon = call_soon  # type: ignore[method-assign]
            assert len(scheduled) == 1  # one callback for the pass, not one per send
            assert all(c._pending is not None for c in clients)  # due in the next pass
            await asyncio.sleep(0)
            assert all(c._pending is None for c in clients)  # that one callback wrote all
            assert clients[0]._start < clients[1]._start < clients[2]._start  # in send order
            assert await asyncio.gather(*sent) == [(0, 200), (1, 200), (2, 200)]  # type: ignore[arg-type]
            for c in clients:
                c.close()

    asyncio.run(go())


def test_a_send_left_unwritten_on_a_closed_loop_does_not_stall_the_next_loop() -> None:
    async def leave(port: int) -> None:
        c = _client(port, on_result=_label)
        assert (await c.request()).status == 200
        assert c.send(c._request, "left") is not None  # its write is due when the loop ends

    async def again(port: int) -> object:
        c = _client(port, on_result=_label)
        assert (await c.request()).status == 200
        sent = c.send(c._request, "next")
        assert sent is not None
        try:
            return await asyncio.wait_for(sent, 5)
        finally:
            c.close()

    async def go() -> None:
        async with fake.serve() as server:
            # Each loop in its own thread's asyncio.run: the first ends with its write due.
            await asyncio.to_thread(asyncio.run, leave(server.port))
            assert await asyncio.to_thread(asyncio.run, again(server.port)) == ("next", 200)

    asyncio.run(go())


def test_coarse_index_table_is_hdrhistograms_counts_index() -> None:
    table = metrics._INDEX_COARSE
    assert len(table) == metrics._COARSE_LIMIT >> metrics._COARSE
    hist = HdrHistogram(1, 3_600 * 1_000_000_000, 3)
    low, high = metrics._TABLE_LIMIT >> metrics._COARSE, len(table)
    for k in range(low, high):  # both ends of every slot
        for v in (k << metrics._COARSE, ((k + 1) << metrics._COARSE) - 1):
            assert table[k] == metrics._counts_index(v)
    for v in (65_536, 65_599, 131_071, 131_072, 1_000_000, 2_097_151):
        assert table[v >> metrics._COARSE] == hist._counts_index_for(v)


def test_trend_add_rows_equals_add() -> None:
    # The runner's batched recording (numpy): each row into its trend exactly as one add
    # per value, over every index range (below 2048 exact, then wider buckets up to 1 h),
    # in batches, with a read between batches; and the clamped fallback out of range.
    rng = random.Random(11)
    rows = [
        [rng.randint(0, 3_000) for _ in range(256)],
        [rng.randint(1_000, 70_000) for _ in range(256)],
        [rng.randint(60_000, 2_200_000) for _ in range(256)],
        [rng.randint(0, 3_600 * 1_000_000_000) for _ in range(256)],
        [0, 1, 2047, 2048, 2049, 65_535, 65_536, 2_097_151, 2_097_152, 3_600 * 10**9] * 25
        + [7] * 6,
    ]
    ones = [metrics.Trend(f"one{i}") for i in range(len(rows))]
    manys = [metrics.Trend(f"many{i}") for i in range(len(rows))]
    stats = ("avg", "min", "med", "max", "p(90)", "p(99)", "p(99.99)", "count")
    for half in (slice(0, 128), slice(128, 256)):
        for one, row in zip(ones, rows, strict=True):
            for v in row[half]:
                one.add(v)
        metrics.add_rows(manys, np.array([row[half] for row in rows], np.int64))
        for one, many in zip(ones, manys, strict=True):
            assert one.summary(1.0, stats).values == many.summary(1.0, stats).values
            assert one._counts == many._counts
    clamped = np.array([[-5, 10, 10**15]], np.int64)
    ones[0].add(-5)
    ones[0].add(10)
    ones[0].add(10**15)
    metrics.add_rows(manys[:1], clamped)
    assert ones[0].summary(1.0, stats).values == manys[0].summary(1.0, stats).values
    assert ones[0]._counts == manys[0]._counts


def test_timeline_bucket_counts_are_bucket_per_value() -> None:
    # The batch's timeline buckets (numpy) against _bucket per value: every µs below
    # 20,000, then values up to an hour (ns in, µs buckets).
    ns = [us * 1000 + us % 1000 for us in range(20_000)]
    ns += [random.Random(3).randint(0, 3_600 * 10**9) for _ in range(5000)]
    want: dict[int, int] = {}
    for v in ns:
        key = runner._bucket(v // 1000)
        want[key] = want.get(key, 0) + 1
    assert runner._bucket_counts(np.array(ns, np.int64)) == want


def test_quick_sent_records_as_the_general_path() -> None:
    # Http._sent records a fast-path response inline (the run's batch, the Response) when
    # the VU records the default way; the same results through the general path
    # (_finish and Run.record) must give the same metrics, errors and Responses.
    from mcgw.loadtest import script

    results = _results(700, seed=21)
    stats = ("avg", "min", "med", "max", "p(95)", "count")

    async def record(quick: bool) -> tuple[object, ...]:
        opts = options.LoadOptions(url="http://127.0.0.1:9/")
        run = runner.Run(opts, (scenario.from_options(opts),), runner.plain(opts))
        vu = runner.VU(1, run.scenarios[0], {})
        http = script.Http(run, vu)
        assert http._quick  # closed model, untagged, default callback: the inline path
        http._quick = quick
        target = client.parse_target("http://127.0.0.1:9/x")
        plain: script._Plain = (
            target,
            b"GET / HTTP/1.1\r\n\r\n",
            [],
            "GET",
            "http://127.0.0.1:9/x",
        )
        fake = typing.cast(client.Client, _Completing())
        responses = []
        for r in results:
            if 300 <= r.status < 400:  # (a redirect would be followed: a request more)
                r = r._replace(status=201)
            res = http._sent(fake, r, plain)
            assert isinstance(res, script.Response)
            responses.append((res.status, res.url, res.method, res.redirected, res.body))
        run.sync_derived()
        found = (run.registry.get(name) for name in run.registry.names())
        summaries = tuple(m.summary(1.0, stats) for m in found if m is not None)
        return summaries, dict(run.errors), responses, sum(s.count for s in run.timeline.values())

    quick = asyncio.run(record(True))
    general = asyncio.run(record(False))
    assert quick == general
    assert quick[3] == len(results)


def test_http_get_sends_inline_as_client_send() -> None:
    # Http.get does Client.send's work inline (a call less per request): the client must
    # be left as send leaves it, and the response be the same.
    from mcgw.loadtest import script

    def state(http: script.Http, url: str) -> tuple[object, ...]:
        plain = http._gets[url]
        c = plain[2][-1]
        return (
            c.busy,
            c._ctx is plain,
            c._raw == plain[1],
            c._send_timeout_s,
            c._pending is c._conn,
            c._writes._due.count(c),
            c._fut is not None and not c._fut.done(),
        )

    async def go() -> None:
        async with fake.serve() as server:
            url = f"http://127.0.0.1:{server.port}/"
            opts = options.LoadOptions(url=url, timeout_s=7.0)
            run = runner.Run(opts, (scenario.from_options(opts),), runner.plain(opts))
            vus = [runner.VU(i, run.scenarios[0], {}) for i in (1, 2)]
            inline, general = (script.Http(run, vu) for vu in vus)
            try:
                for http in (inline, general):
                    await http.get(url)  # a new connection: request()
                fast = inline.get(url)
                assert isinstance(fast, asyncio.Future)
                sent = general._send("GET", url)  # (Client.send itself)
                assert sent is not None
                assert (
                    state(inline, url)
                    == state(general, url)
                    == (True, True, True, 7.0, True, 1, True)
                )
                # A busy client (its request in flight) is not sent on: request() is.
                again = inline.get(url)
                assert not isinstance(again, asyncio.Future)
                again.close()  # type: ignore[attr-defined]
                a, b = await fast, await sent
                fields = [(r.status, r.body, r.url, r.method, r._result[7:9]) for r in (a, b)]
                assert fields[0] == fields[1] and fields[0][0] == 200
                assert server.connections == 2 and server.requests == 4
            finally:
                for vu in vus:
                    vu.close()

    asyncio.run(go())


def test_quick_sent_reuses_only_a_response_nobody_holds() -> None:
    # Http._sent reuses its last Response when only it still holds it (the VU dropped it):
    # a reused one must read as a new one (no cached body, headers or redirect left over),
    # and one the VU still holds must never change.
    from mcgw.loadtest import script

    def result(n: int) -> client.Result:
        head = f"HTTP/1.1 200 OK\r\nX-N: {n}\r\nContent-Length: 2\r\n\r\n".encode()
        body = f"b{n}".encode()
        return client.Result(
            201 + n, "", 1, 0, 2, 3, 4, 10, len(head) + len(body), "", "", head, body, 0
        )

    # (_sent reads these fields by index)
    assert client.Result._fields[script._HEAD] == "head"
    assert client.Result._fields[script._STATUS] == "status"

    async def go() -> None:
        opts = options.LoadOptions(url="http://127.0.0.1:9/")
        run = runner.Run(opts, (scenario.from_options(opts),), runner.plain(opts))
        http = script.Http(run, runner.VU(1, run.scenarios[0], {}))
        assert http._quick
        target = client.parse_target("http://127.0.0.1:9/x")
        plain: script._Plain = (target, b"", [], "GET", "http://127.0.0.1:9/x")
        fake = typing.cast(client.Client, _Completing())

        def sent(n: int) -> script.Response:
            res = http._sent(fake, result(n), plain)
            assert isinstance(res, script.Response)
            return res

        held = sent(1)
        assert (held.body, held.headers["X-N"]) == ("b1", "1")  # (caches filled)
        held.redirected = True
        second = sent(2)
        assert second is not held  # held by the VU: a new one
        assert (held.status, held.body, held.headers["X-N"], held.redirected) == (
            202,
            "b1",
            "1",
            True,
        )
        assert (second.status, second.body, second.headers["X-N"]) == (203, "b2", "2")
        second.redirected = True
        ident = id(second)
        del second  # dropped: the next response reuses it
        third = sent(3)
        assert id(third) == ident
        assert (third.status, third.body, third.headers["X-N"], third.redirected) == (
            204,
            "b3",
            "3",
            False,
        )
        assert (third.url, third.method, third._result.body) == (plain[4], "GET", b"b3")
        kept = [third]
        del third
        fourth = sent(4)
        assert fourth is not kept[0] and kept[0].body == "b3" and fourth.body == "b4"

    asyncio.run(go())


def test_quick_sent_is_off_with_throw() -> None:
    # With --throw a failed request raises in the VU: the inline path does not test for
    # it, so it must not be taken.
    from mcgw.loadtest import script

    async def go() -> None:
        opts = options.LoadOptions(url="http://127.0.0.1:9/", throw=True)
        run = runner.Run(opts, (scenario.from_options(opts),), runner.plain(opts))
        http = script.Http(run, runner.VU(1, run.scenarios[0], {}))
        assert not http._quick
        target = client.parse_target("http://127.0.0.1:9/x")
        plain: script._Plain = (target, b"", [], "GET", "http://127.0.0.1:9/x")
        failed = client.Result(0, "connection refused", 1, 0, 0, 0, 0, 0, 0, "", "", b"", b"", 0)
        with pytest.raises(runner.ScriptError, match="connection refused"):
            http._sent(typing.cast(client.Client, _Completing()), failed, plain)

    asyncio.run(go())

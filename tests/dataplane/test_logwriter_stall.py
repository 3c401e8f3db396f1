"""A stalled access-log writer never holds a request, and loses nothing it had room for.

A writer stopped with SIGSTOP stands for a disk that hangs or a writer starved of CPU:
the gateway must go on answering at its usual latency while records wait in its memory
(up to ``accesslog._MAX_QUEUED_BYTES``; beyond, they are counted dropped, never
blocking), and once the writer runs again every record waiting reaches the file.

Real processes, sockets and files: the gateway with its writer process, a fake upstream
(a real server on loopback), and a pipe shrunk to one page so that a few dozen records
fill it (the default 1 MB would need tens of thousands of requests).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_accesslog import run
from test_logwriter import _whole_lines

from mcgw.dataplane import accesslog, server
from mcgw.testing import gateway, tables
from mcgw.testing.client import RawClient
from mcgw.testing.upstream import FakeUpstream

CONNECTIONS = 4
PER_CONNECTION = 150


async def _requests(addr: tuple[str, int], tag: str) -> list[float]:
    """Latencies (s) of CONNECTIONS × PER_CONNECTION keep-alive requests, all 200."""

    async def client(n: int) -> list[float]:
        c = await RawClient.connect(addr)
        took: list[float] = []
        try:
            for i in range(PER_CONNECTION):
                t0 = time.perf_counter()
                r = await c.request(target=f"/{tag}?c={n}&i={i}")
                took.append(time.perf_counter() - t0)
                assert r.status == 200
        finally:
            await c.close()
        return took

    # A request held by the log would hang here until the wait_for gives up.
    per_client = await asyncio.wait_for(
        asyncio.gather(*(client(n) for n in range(CONNECTIONS))), 30
    )
    return [t for took in per_client for t in took]


async def _stalled_phase(gw: server.Gateway, addr: tuple[str, int]) -> tuple[list[float], int]:
    """Requests with the writer stopped; the latencies and the backlog they left."""
    log = gw.access_log
    writer = log.writer_pid
    assert writer is not None
    os.kill(writer, signal.SIGSTOP)
    # Should a write block the loop after all, nothing on it could wake the writer
    # again: this thread does, so that the test fails on the latencies, not by hanging.
    rescue = threading.Timer(10.0, os.kill, (writer, signal.SIGCONT))
    rescue.start()
    try:
        took = await _requests(addr, "stalled")
        await asyncio.sleep(3 * log.flush_interval_s)  # the last batch handed over
        backlog = log.backlog_bytes
    finally:
        rescue.cancel()
        os.kill(writer, signal.SIGCONT)
    return took, backlog


def test_a_stalled_writer_never_holds_a_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accesslog, "_PIPE_BYTES", 4096)
    total = 2 * CONNECTIONS * PER_CONNECTION

    async def main() -> None:
        async with FakeUpstream() as up:
            t = tables.route_table([tables.route("r", "b")], [tables.backend("b", up.address)])
            async with gateway.serve(t, access_log_dir=tmp_path) as (gw, addr):
                usual = await _requests(addr, "running")
                stalled, backlog = await _stalled_phase(gw, addr)
                # The pipe was full and the gateway went on: records waited in memory.
                assert backlog > 4096
                # Not slower for it. Medians, and generous: the machine may be busy.
                assert statistics.median(stalled) < 3 * statistics.median(usual) + 0.005
                assert max(stalled) < 1.0
                await gw.access_log.flush()
                assert gw.access_log.backlog_bytes == 0
                stats = gw.access_log.stats
                assert (stats.written, stats.dropped) == (total, 0)

    run(main())
    urls = [json.loads(line)["httpRequest"]["requestUrl"] for line in _whole_lines(tmp_path)]
    assert len(urls) == total and len(set(urls)) == total


def test_a_writer_stalled_too_long_costs_records_not_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accesslog, "_PIPE_BYTES", 4096)
    monkeypatch.setattr(accesslog, "_MAX_QUEUED_BYTES", 16 * 1024)
    total = CONNECTIONS * PER_CONNECTION
    written: list[int] = []

    async def main() -> None:
        async with FakeUpstream() as up:
            t = tables.route_table([tables.route("r", "b")], [tables.backend("b", up.address)])
            async with gateway.serve(t, access_log_dir=tmp_path) as (gw, addr):
                stalled, backlog = await _stalled_phase(gw, addr)
                assert len(stalled) == total  # every request answered (200, checked)
                # Memory stayed bounded: one frame past the limit at most.
                assert backlog <= 16 * 1024 + 64 * 1024
                await gw.access_log.flush()
                stats = gw.access_log.stats
                assert stats.dropped > 0
                assert stats.written + stats.dropped == total
                written.append(stats.written)

    run(main())
    # What it counted written is what is on disk, each request at most once.
    urls = [json.loads(line)["httpRequest"]["requestUrl"] for line in _whole_lines(tmp_path)]
    assert len(urls) == written[0] and len(set(urls)) == len(urls)


def _get(addr: tuple[str, int], target: str) -> tuple[int, float]:
    """One GET with http.client, from this thread: its status and the seconds until the
    whole response was read (by its Content-Length: the connection stays open)."""
    conn = http.client.HTTPConnection(*addr, timeout=10)
    try:
        t0 = time.perf_counter()
        conn.request("GET", target)
        answer = conn.getresponse()
        answer.read()
        return answer.status, time.perf_counter() - t0
    finally:
        conn.close()


def test_a_response_is_on_the_wire_before_its_record_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request never waits for its own access record: the record is made after the
    response is written. The stand-in for slow logging work is AccessLog.write made to
    hold the gateway's loop for two seconds (the only fake here: the gateway, its
    writer and the upstream are real, on loopback); the client, in another thread,
    must have its whole answer long before: a proxied 200 and the gateway's own 404
    (no route) alike. Were the record made before the response went out, each would
    take the two seconds."""
    hold_s = 2.0
    write = accesslog.AccessLog.write
    held: list[float] = []

    def slow_write(self: accesslog.AccessLog, record: Any, now: float | None = None) -> None:
        held.append(hold_s)
        time.sleep(hold_s)
        write(self, record, now)

    monkeypatch.setattr(accesslog.AccessLog, "write", slow_write)

    async def main() -> None:
        async with FakeUpstream() as up:
            t = tables.route_table(
                [tables.route("r", "b", path="/app")], [tables.backend("b", up.address)]
            )
            async with gateway.serve(t, access_log_dir=tmp_path) as (gw, addr):
                for target, status in (("/app/x", 200), ("/elsewhere", 404)):
                    answered, took = await asyncio.to_thread(_get, addr, target)
                    assert answered == status
                    assert took < hold_s / 4, f"{target}: {took:.3f} s"
                await gw.access_log.flush()
                assert gw.access_log.stats.written == 2

    run(main())
    assert held == [hold_s, hold_s]  # both records were made, each holding the loop

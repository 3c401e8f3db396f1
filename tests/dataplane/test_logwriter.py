"""The access log's writer process: nothing lost under load and rotation, restarted when
killed while the gateway keeps serving, everything flushed on SIGTERM, never an orphan.

Real processes and real files throughout: the writer is ``python -m
mcgw.dataplane.logwriter`` started by :class:`mcgw.dataplane.accesslog.AccessLog`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import marshal
import os
import re
import select
import signal
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from test_accesslog import record, run  # the record builder of the access-log tests

from mcgw import logschema
from mcgw.dataplane import accesslog, logwriter
from mcgw.testing import gateway, manifests, tables
from mcgw.testing.client import RawClient
from mcgw.testing.upstream import FakeUpstream

ROOT = Path(__file__).resolve().parents[2]
LISTENER = re.compile(r"gateway: listener \S+ on http://([\d.]+):(\d+)")
ADMIN = re.compile(r"admin: (http://[\d.]+:\d+)/dashboard")
ADMINS: dict[int, str] = {}
"""Serving process pid → its admin server's URL, as it said."""


def run_long(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is gone for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "children") as file:
            out.update(int(child) for child in file.read().split())
    return out


def _whole_lines(directory: Path) -> list[bytes]:
    lines: list[bytes] = []
    for path in sorted(directory.glob("access-*.jsonl")):
        data = path.read_bytes()
        assert data == b"" or data.endswith(b"\n"), f"{path.name} ends in a torn line"
        lines.extend(data.splitlines())
    return lines


async def _wait_gone(pid: int, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while _alive(pid):
            await asyncio.sleep(0.02)


async def _next_writer(log: accesslog.AccessLog, after: int) -> int:
    """The pid of the writer started after ``after`` died, as soon as it is there (a
    new writer is still starting Python for tens of milliseconds: stopped at once, it
    has read nothing)."""
    async with asyncio.timeout(10):
        while log.writer_pid in (None, after):
            await asyncio.sleep(0.001)
    pid = log.writer_pid
    assert pid is not None
    return pid


def _crash(pid: int) -> None:
    """Kill a writer, stopped or not (SIGCONT lets a stopped one take the kill)."""
    os.kill(pid, signal.SIGKILL)
    os.kill(pid, signal.SIGCONT)


def test_writer_process_loses_nothing_under_load_and_rotation(tmp_path: Path) -> None:
    tasks, per_task = 20, 1000

    async def producer(log: accesslog.AccessLog, task: int) -> None:
        for i in range(per_task):
            log.write(record(i, task))
            if i % 100 == 0:
                await asyncio.sleep(0.001)

    async def main() -> None:
        log = accesslog.AccessLog(tmp_path, "p", flush_interval_s=0.01, max_file_bytes=64 * 1024)
        await log.start()
        writer = log.writer_pid
        try:
            assert writer is not None and writer != os.getpid()
            assert writer in _children(os.getpid())
            await asyncio.gather(*(producer(log, t) for t in range(tasks)))
        finally:
            await log.close()
        assert not _alive(writer)  # close() waits for the writer to exit
        assert log.stats.written == tasks * per_task
        assert log.stats.dropped == 0 and log.stats.restarts == 0
        assert len(log.files) > 10
        assert sorted(log.files) == log.files
        for path in log.files:
            assert path.stat().st_size <= 64 * 1024
            # Named after the gateway (this process), not the writer.
            assert path.name.endswith(f"-{os.getpid()}.jsonl")

    run(main())
    seen: dict[int, list[int]] = defaultdict(list)
    for line in _whole_lines(tmp_path):
        entry = json.loads(line)
        query = entry["httpRequest"]["requestUrl"].split("?", 1)[1]
        task, i = (int(part.split("=")[1]) for part in query.split("&"))
        seen[task].append(i)
        assert entry["jsonPayload"]["backend"] == "ServiceImport/store/store-west-1:8080"
        assert entry["labels"]["worker_pid"] == str(os.getpid())
    # Every record once, each producer's in the order it wrote them.
    assert seen == {t: list(range(per_task)) for t in range(tasks)}


def test_killed_writer_is_restarted_and_the_gateway_keeps_serving(tmp_path: Path) -> None:
    connections, per_connection = 8, 120
    total = connections * per_connection

    async def main() -> None:
        async with FakeUpstream() as up:
            t = tables.route_table([tables.route("r", "b")], [tables.backend("b", up.address)])
            async with gateway.serve(t, access_log_dir=tmp_path) as (gw, addr):
                first = gw.access_log.writer_pid
                assert first is not None

                async def client(n: int) -> None:
                    c = await RawClient.connect(addr)
                    for i in range(per_connection):
                        r = await c.request(target=f"/k?c={n}&i={i}")
                        assert r.status == 200
                        if n == 0 and i == per_connection // 3:
                            os.kill(first, signal.SIGKILL)
                        await asyncio.sleep(0.001)
                    await c.close()

                await asyncio.wait_for(asyncio.gather(*(client(n) for n in range(connections))), 60)
                await _wait_gone(first, 5)
                second = await _next_writer(gw.access_log, first)
                assert _alive(second)
            stats = gw.access_log.stats
        assert not _alive(second)
        assert stats.restarts == 1
        # What the dead writer had been sent and not acknowledged went to the new one,
        # which skipped what was on disk already: every request once, none lost.
        assert (stats.written, stats.dropped) == (total, 0)
        urls = [url[url.index("/k?") :] for url in _urls(tmp_path)]  # torn tail cut
        want = [f"/k?c={n}&i={i}" for n in range(connections) for i in range(per_connection)]
        assert sorted(urls) == sorted(want)

    run(main())


def test_frames_lost_by_two_writers_are_counted_and_the_rest_sent_again(tmp_path: Path) -> None:
    """A writer is stopped, then killed, with 2,700 records unacknowledged: they go to
    the next writer, which is stopped before it reads anything; 300 more records go
    after them; then it is killed too. The 2,700 are not sent a third time (a record
    that kills writers would kill them all): counted dropped. The 300 go to a third
    writer and are written. Signals stand for a crash: a writer is stopped so that
    what it holds is known."""

    async def main() -> None:
        async with FakeUpstream() as up:
            t = tables.route_table([tables.route("r", "b")], [tables.backend("b", up.address)])
            async with gateway.serve(t, access_log_dir=tmp_path) as (gw, addr):
                log = gw.access_log
                c = await RawClient.connect(addr)

                async def requests(first: int, last: int) -> None:
                    for i in range(first, last):
                        assert (await c.request(target=f"/k?i={i}")).status == 200

                await requests(0, 300)
                await log.flush()
                first = log.writer_pid
                assert first is not None
                os.kill(first, signal.SIGSTOP)
                await requests(300, 3000)
                await asyncio.sleep(0.2)  # handed over: in its pipe, unacknowledged
                _crash(first)
                second = await _next_writer(log, first)
                os.kill(second, signal.SIGSTOP)  # still starting Python: it read nothing
                await requests(3000, 3300)
                await asyncio.sleep(0.2)
                _crash(second)
                await _next_writer(log, second)
                await c.close()
                await log.flush()
            stats = log.stats
        assert (stats.written, stats.dropped, stats.restarts) == (600, 2700, 2)
        urls = sorted(url[url.index("/k?") :] for url in _urls(tmp_path))
        want = [f"/k?i={i}" for i in [*range(300), *range(3000, 3300)]]
        assert urls == sorted(want)

    run(main())


def test_frames_sent_again_that_no_writer_took_are_counted_lost_with_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A writer dies with a full pipe; its frames go to the next one, whose pipe is
    smaller than they are, so some of them still wait in the gateway when it dies in
    turn. Those are lost with the ones in its pipe (what to skip of them went with it:
    sent to a third writer they could be written twice), and the third writer gets
    what came after. Writers are stopped before they read anything (still starting
    Python) and killed: a crash with a known pipe. The second one's pipe is the OS's
    default 64 KiB, as where the 1 MiB pipe the gateway asks for is refused."""
    total = 20_000  # ~190 bytes each in frames, 3.6 MiB: a pipe full, the rest behind it

    async def main() -> None:
        log = accesslog.AccessLog(tmp_path, "p", flush_interval_s=0.01)
        await log.start()
        first = log.writer_pid
        assert first is not None
        os.kill(first, signal.SIGSTOP)
        for i in range(total):
            log.write(tuple(record(i)))
            if i % 500 == 499:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # its pipe full, the rest queued
        monkeypatch.setattr(accesslog, "_PIPE_BYTES", 64 * 1024)
        _crash(first)
        second = await _next_writer(log, first)
        os.kill(second, signal.SIGSTOP)
        await asyncio.sleep(0.2)  # 64 KiB of the frames sent again in its pipe
        _crash(second)
        await _next_writer(log, second)
        await log.flush()
        await log.close()
        assert (log.stats.restarts, log.stats.written + log.stats.dropped) == (2, total)

    with caplog.at_level("ERROR", logger=accesslog.__name__):
        run_long(main())
    ended = [re.search(r"(\d+) records lost, (\d+) sent again", m) for m in caplog.messages]
    (lost_first, again), (lost_second, again_second) = [m.groups() for m in ended if m]
    sent_again = int(again)
    assert (int(lost_first), int(again_second)) == (0, 0)
    # Everything the first writer held is lost, once; everything after it written.
    assert 1000 < sent_again < total // 2  # more than a 64 KiB pipe holds
    assert int(lost_second) == sent_again
    assert _urls(tmp_path) == _want(total)[sent_again:]


async def _serve(
    config: Path, logs: Path, *extra: str
) -> tuple[asyncio.subprocess.Process, tuple[str, int]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mcgw",
        "serve",
        "-f",
        str(config),
        "--bind",
        "127.0.0.1",
        "--port-map",
        "80:0",
        "--log-dir",
        str(logs),
        "--no-watch",
        "--no-log-index",  # the log indexer is another child; these tests count writers
        *extra,
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stderr is not None
    said: list[str] = []
    address: tuple[str, int] | None = None
    try:
        async with asyncio.timeout(30):
            while True:
                line = (await proc.stderr.readline()).decode()
                assert line, f"mcgw exited before ready: {said}"
                said.append(line.rstrip())
                if found := LISTENER.search(line):
                    address = (found[1], int(found[2]))
                if found := ADMIN.search(line):
                    ADMINS[proc.pid] = found[1]
                if line.startswith("ready"):
                    break
    except BaseException:
        _kill(proc)
        raise
    assert address is not None, said
    return proc, address


def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _writer_of(pid: int) -> int:
    (writer,) = (
        child
        for child in _children(pid)
        if "mcgw.dataplane.logwriter" in Path(f"/proc/{child}/cmdline").read_text()
    )
    return writer


def test_sigterm_flushes_every_line_and_ends_the_writer(tmp_path: Path) -> None:
    config, logs = tmp_path / "config", tmp_path / "logs"
    config.mkdir()
    requests = 400

    async def main() -> None:
        async with FakeUpstream() as up:
            (config / "app.yaml").write_text(
                manifests.gateway_to_endpoints(backend_port=up.address[1])
            )
            proc, address = await _serve(config, logs)
            try:
                writer = _writer_of(proc.pid)
                c = await RawClient.connect(address)
                for i in range(requests):
                    assert (await c.request(target=f"/t?i={i}")).status == 200
                await c.close()
                # At once: most of these are still in the gateway's memory or the pipe.
                proc.send_signal(signal.SIGTERM)
                async with asyncio.timeout(20):
                    assert await proc.wait() == 0
                await _wait_gone(writer, 5)
            finally:
                _kill(proc)
                await proc.wait()

    run_long(main())
    urls = [json.loads(line)["httpRequest"]["requestUrl"] for line in _whole_lines(logs)]
    assert [u.rsplit("=", 1)[1] for u in urls] == [str(i) for i in range(requests)]


def test_writer_ends_when_its_gateway_is_killed(tmp_path: Path) -> None:
    config, logs = tmp_path / "config", tmp_path / "logs"
    config.mkdir()

    async def main() -> None:
        async with FakeUpstream() as up:
            (config / "app.yaml").write_text(
                manifests.gateway_to_endpoints(backend_port=up.address[1])
            )
            proc, address = await _serve(config, logs)
            try:
                writer = _writer_of(proc.pid)
                c = await RawClient.connect(address)
                for i in range(50):
                    assert (await c.request(target=f"/t?i={i}")).status == 200
                await c.close()
                await asyncio.sleep(0.5)  # past a flush interval: in the writer's hands
                os.kill(proc.pid, signal.SIGKILL)
                await proc.wait()
                # The pipe's EOF ends it: no orphan, and what it had is on disk.
                await _wait_gone(writer, 5)
            finally:
                _kill(proc)
                await proc.wait()

    run_long(main())
    assert len(_whole_lines(logs)) == 50


def test_frames_round_trip_whole_and_split() -> None:
    payload = ("r", 7, [tuple(record(i)) for i in range(3)])
    data = logwriter.frame(payload) + logwriter.frame(("f", 8, {}))
    buffer = bytearray(data[:10])
    assert logwriter.frames(buffer) == []  # a partial frame waits for the rest
    buffer += data[10:-3]
    assert logwriter.frames(buffer) == [payload]
    buffer += data[-3:]
    assert logwriter.frames(buffer) == [("f", 8, {})]
    assert buffer == bytearray()


def _in_process_writer(directory: Path, prefix: str = "") -> logwriter.Writer:
    config = {"directory": str(directory), "pid": 4242, "project_id": "p", "prefix": prefix}
    return logwriter.Writer(config | {"max_bytes": 1 << 30, "keep_files": 0, "max_age_s": 0})


def _urls(directory: Path) -> list[str]:
    return [json.loads(line)["httpRequest"]["requestUrl"] for line in _whole_lines(directory)]


def _want(n: int) -> list[str]:
    """The URLs of ``record(0)``…``record(n - 1)``."""
    return [f"http://store.example.com/west?task=0&i={i}" for i in range(n)]


def test_a_writer_after_one_that_died_skips_what_that_one_wrote(tmp_path: Path) -> None:
    """The gateway sends a dead writer's unacknowledged frames again, behind an ``s``
    frame naming that writer's insertId prefix and the records it acknowledged. The
    new writer reads the last line on disk and skips the records already there, so
    each is written once; they count as written. In this process, with the gateway's
    frames made by hand: which records the dead one reached cannot be timed."""
    records = [tuple(record(i)) for i in range(120)]
    first = _in_process_writer(tmp_path, "aaaaaaaa")
    first.handle([("r", 1, records[:40])])
    first.ack()  # 40 acknowledged
    first.handle([("r", 2, records[40:70]), ("r", 3, records[70:100])])  # then killed
    first.files.close()
    second = _in_process_writer(tmp_path, "bbbbbbbb")
    second.handle(
        [
            ("s", 1, {"prefix": "aaaaaaaa", "base": 40, "records": 60}),
            ("r", 2, records[40:70]),
            ("r", 3, records[70:100]),
            ("r", 4, records[100:120]),
        ]
    )
    second.files.close()
    assert _urls(tmp_path) == _want(120)  # once each, in order
    assert marshal.loads(second.ack()[4:])[2] == 80  # 60 already there, 20 new
    # Its own counter counts the skipped records too, so that if it dies in turn the
    # next one can tell the same way: 80 taken, the last line's counter.
    counters = [logschema.insert_id_counter(line, "bbbbbbbb") for line in second.files.last_lines()]
    assert 80 in counters


def test_the_skip_may_end_inside_a_frame(tmp_path: Path) -> None:
    """The dead writer got through half a frame (its lines are whole: a torn one is
    cut first): the next skips that half and writes the rest of the frame."""
    records = [tuple(record(i)) for i in range(100)]
    first = _in_process_writer(tmp_path, "aaaaaaaa")
    first.handle([("r", 1, records[:30])])
    first.ack()
    first.handle([("r", 2, records[30:60]), ("r", 3, records[60:75])])  # killed after 75
    first.files.close()
    second = _in_process_writer(tmp_path, "bbbbbbbb")
    resume = {"prefix": "aaaaaaaa", "base": 30, "records": 70}
    second.handle([("s", 1, resume), ("r", 2, records[30:60]), ("r", 3, records[60:100])])
    second.files.close()
    assert _urls(tmp_path) == _want(100)


def test_after_a_failed_write_a_writer_takes_a_new_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed write drops records whose numbers were counted: the writer then takes
    a new insertId prefix, so that a writer after it, told the old one, skips only
    what is on disk. What it wrote after the failure may then be written twice;
    nothing is lost. The disk error is faked (one write refused): a full disk cannot
    be had here."""
    records = [tuple(record(i)) for i in range(60)]
    first = _in_process_writer(tmp_path, "aaaaaaaa")
    first.handle([("r", 1, records[:40])])
    first.ack()
    write_block = first.files.write_block

    def refused(data: bytes) -> int:
        monkeypatch.setattr(first.files, "write_block", write_block)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(first.files, "write_block", refused)
    first.handle([("r", 2, records[40:50])])  # lost to the disk
    first.handle([("r", 3, records[50:60])])  # written, under a new prefix
    first.files.close()
    after = [json.loads(line)["insertId"] for line in _whole_lines(tmp_path)][-1]
    assert not after.startswith("aaaaaaaa")
    second = _in_process_writer(tmp_path, "bbbbbbbb")
    resume = {"prefix": "aaaaaaaa", "base": 40, "records": 20}
    second.handle([("s", 4, resume), ("r", 2, records[40:50]), ("r", 3, records[50:60])])
    second.files.close()
    urls = _urls(tmp_path)
    assert sorted(set(urls)) == sorted(_want(60))
    assert all(urls.count(url) == 1 for url in _want(50))


def test_a_writer_that_died_before_writing_has_nothing_skipped(tmp_path: Path) -> None:
    """The last line on disk is another writer's (or there is none): the dead writer
    wrote none of what it was sent again, and everything is written."""
    records = [tuple(record(i)) for i in range(30)]
    older = _in_process_writer(tmp_path, "cccccccc")
    older.handle([("r", 1, records[:10])])
    older.files.close()
    second = _in_process_writer(tmp_path, "bbbbbbbb")
    resume = {"prefix": "aaaaaaaa", "base": 0, "records": 20}
    second.handle([("s", 1, resume), ("r", 2, records[10:])])
    second.files.close()
    assert _urls(tmp_path) == _want(30)


def test_the_idle_worker_offers_its_cpu_every_few_lines_and_writes_the_same(
    tmp_path: Path,
) -> None:
    """The worker calls its pause (``sched_yield``) after every ``_PAUSE_LINES`` lines
    formatted: a gateway woken on its core but not picked at that instant then waits for
    the next offer, not for the timer tick. The pauses change no byte written: the
    lines match those of a writer that does not pause (the rescuer's way)."""
    records = [tuple(record(i)) for i in range(700)]  # past one 256-line chunk, twice
    paused = _in_process_writer(tmp_path / "paused", "0badcafe")
    formatter = paused.formatter
    since, gaps = [0], []
    block = formatter.block

    def counting(rs: Any) -> str:
        since[0] += len(rs)
        return block(rs)

    def pause() -> None:
        gaps.append(since[0])
        since[0] = 0

    formatter.block = counting  # type: ignore[method-assign]
    paused.handle([("r", 1, records[:300]), ("r", 2, records[300:])], pause)
    assert since[0] == 0, "lines formatted after the last pause"
    assert sum(gaps) == 700
    assert max(gaps) == logwriter._PAUSE_LINES
    plain = _in_process_writer(tmp_path / "plain", "0badcafe")
    plain.handle([("r", 1, records[:300]), ("r", 2, records[300:])])
    for writer in (paused, plain):
        writer.files.close()
    assert _whole_lines(tmp_path / "paused") == _whole_lines(tmp_path / "plain")
    assert len(_whole_lines(tmp_path / "plain")) == 700


def test_the_writer_acknowledges_lazily_but_at_once_when_asked(tmp_path: Path) -> None:
    # serve() in a thread of this process, on pipes: the real loop, no process start-up.
    config = {
        "directory": str(tmp_path),
        "project_id": "p",
        "pid": os.getpid(),
        "max_bytes": 1 << 20,
        "keep_files": 10,
        "max_age_s": 3600.0,
    }
    source, feed = os.pipe()
    acks, sink = os.pipe()
    thread = threading.Thread(target=logwriter.serve, args=(config, source, sink))
    thread.start()
    buffer = bytearray()

    def ack_within(seconds: float) -> tuple[Any, ...] | None:
        ready = select.select([acks], [], [], seconds)[0]
        if not ready:
            return None
        buffer.extend(os.read(acks, 65536))
        (message,) = logwriter.frames(buffer)
        return tuple(message)

    try:
        time.sleep(logwriter.ACK_INTERVAL_S)  # the first frame finds the interval passed
        os.write(feed, logwriter.frame(("r", 1, [tuple(record(0))])))
        assert ack_within(1.0) == ("a", 1, 1, 0, ANY_SIZE, ANY_FILES)
        t0 = time.monotonic()
        os.write(feed, logwriter.frame(("r", 2, [tuple(record(1))])))
        os.write(feed, logwriter.frame(("r", 3, [tuple(record(2))])))
        # Answered together, once the interval since the last answer has passed.
        assert ack_within(1.0) == ("a", 3, 2, 0, ANY_SIZE, ())
        assert time.monotonic() - t0 >= logwriter.ACK_INTERVAL_S * 0.5
        os.write(feed, logwriter.frame(("r", 4, [tuple(record(3))])))
        os.write(feed, logwriter.frame(("f", 5, {})))
        assert ack_within(logwriter.ACK_INTERVAL_S * 0.5) == ("a", 5, 1, 0, ANY_SIZE, ())
    finally:
        os.close(feed)
        thread.join(10)
        for fd in (source, acks, sink):
            os.close(fd)
    assert not thread.is_alive()
    assert len(_whole_lines(tmp_path)) == 4


class _Any:
    def __init__(self, check: Callable[[Any], bool]) -> None:
        self._check = check

    def __eq__(self, other: object) -> bool:
        return self._check(other)


ANY_SIZE = _Any(lambda v: isinstance(v, int) and v > 0)
ANY_FILES = _Any(lambda v: isinstance(v, tuple) and len(v) == 1)


@pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2,
    reason="needs two CPUs to tell a set affinity from the default",
)
def test_writer_cpus_from_the_environment(tmp_path: Path) -> None:
    cpu = min(os.sched_getaffinity(0))
    os.environ[logwriter.CPUS_ENV] = str(cpu)
    try:

        async def main() -> None:
            log = accesslog.AccessLog(tmp_path, "p")
            await log.start()
            try:
                pid = log.writer_pid
                assert pid is not None
                deadline = time.monotonic() + 5
                while os.sched_getaffinity(pid) != {cpu} and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                assert os.sched_getaffinity(pid) == {cpu}
            finally:
                await log.close()

        run(main())
    finally:
        del os.environ[logwriter.CPUS_ENV]


def test_a_sampling_change_applies_from_the_next_request(tmp_path: Path) -> None:
    """AccessLog.keep, as the request path asks it before making a record (see
    test_sample_rate_of_a_backend_policy_is_followed for the gateway end to end): a
    change of rates applies from the next request on, the records of those kept reach
    the file in order, and a backend still sampled keeps its credit."""
    backend = record(0).backend

    async def main() -> None:
        log = accesslog.AccessLog(tmp_path, "p", flush_interval_s=0.001)
        await log.start()

        def request(i: int) -> None:  # as the request path asks (protocol._log)
            if not log.sampling or log.keep(backend):
                log.write(record(i))

        try:
            for i in range(3000):
                request(i)
            await asyncio.sleep(0)  # the flusher may be mid-batch now
            log.set_sampling({backend: 0})
            for i in range(3000, 3100):
                request(i)
            assert log.stats.sampled_out == 100  # counted as it is decided
            log.set_sampling({backend: 500_000})
            for i in range(3100, 3110):
                request(i)
        finally:
            await log.close()
        assert log.stats.written == 3000 + 5 and log.stats.sampled_out == 100 + 5

    run(main())
    urls = [json.loads(line)["httpRequest"]["requestUrl"] for line in _whole_lines(tmp_path)]
    kept = [int(u.rsplit("=", 1)[1]) for u in urls]
    # The backend's sampling credit carries over (0 after the rate-0 stretch): every
    # second record from the second on.
    assert kept == [*range(3000), *range(3101, 3110, 2)]


def test_a_backends_first_request_is_logged_and_then_its_share_exactly() -> None:
    """keep() alone (no writer, no socket): 250000 logs the 1st, 5th, 9th… request of
    that backend, 0 none, other backends all."""
    log = accesslog.AccessLog(None, "p")
    log.set_sampling({"quarter": 250_000, "off": 0, "all": 1_000_000})
    assert log.sampling == {"quarter": 250_000, "off": 0}
    kept = [i for i in range(12) if log.keep("quarter")]
    assert kept == [0, 4, 8]
    assert not any(log.keep("off") for _ in range(5))
    assert all(log.keep(name) for name in ("all", "unnamed"))
    assert log.stats.sampled_out == 9 + 5
    # Logged in full for a while, sampled again: it starts afresh, first request logged.
    assert [log.keep("quarter") for _ in range(2)] == [True, False]
    log.set_sampling({})
    log.set_sampling({"quarter": 250_000})
    assert [log.keep("quarter") for _ in range(5)] == [True, False, False, False, True]


def _written(admin: str) -> float:
    with urllib.request.urlopen(f"{admin}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    for line in text.splitlines():
        if line.startswith('mcgw_access_log_records_total{outcome="written"}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no mcgw_access_log_records_total on /metrics")


def test_two_workers_each_with_a_writer_of_their_own_files(tmp_path: Path) -> None:
    """``mcgw serve --workers 2``: one writer process per worker, files named after the
    worker, /metrics summing what both writers acknowledged, nothing lost on SIGTERM."""
    config, logs = tmp_path / "config", tmp_path / "logs"
    config.mkdir()
    requests = 60

    async def main() -> None:
        async with FakeUpstream() as up:
            (config / "app.yaml").write_text(
                manifests.gateway_to_endpoints(backend_port=up.address[1])
            )
            proc, address = await _serve(config, logs, "--workers", "2", "--admin", "127.0.0.1:0")
            try:
                workers = _children(proc.pid) - {
                    c for c in _children(proc.pid) if "mcgw.dataplane.logwriter" in _cmdline(c)
                }
                writers = {w: _writer_of(w) for w in workers}
                assert len(writers) == 2
                for i in range(requests):  # a connection each: the kernel spreads them
                    c = await RawClient.connect(address)
                    assert (await c.request(target=f"/w?i={i}")).status == 200
                    await c.close()
                admin = ADMINS[proc.pid]
                async with asyncio.timeout(15):
                    while await asyncio.to_thread(_written, admin) < requests:
                        await asyncio.sleep(0.1)
                assert await asyncio.to_thread(_written, admin) == requests
                proc.send_signal(signal.SIGTERM)
                async with asyncio.timeout(20):
                    assert await proc.wait() == 0
                for writer in writers.values():
                    await _wait_gone(writer, 5)
            finally:
                _kill(proc)
                await proc.wait()
        named = {int(p.stem.rsplit("-", 1)[1]) for p in logs.glob("access-*.jsonl")}
        assert named <= set(writers) and named  # the workers' pids, not the writers'
        urls = [json.loads(line)["httpRequest"]["requestUrl"] for line in _whole_lines(logs)]
        assert sorted(urls) == sorted(f"http://example.com/w?i={i}" for i in range(requests))

    run_long(main())


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def test_records_with_str_subclasses_still_go_through(tmp_path: Path) -> None:
    """marshal takes exact types only; a record holding a str subclass (an enum member,
    say) is sent in plain types instead of failing the batch."""
    import enum

    class Protocol(enum.StrEnum):
        H1 = "HTTP/1.1"

    async def main() -> None:
        log = accesslog.AccessLog(tmp_path, "p")
        log.write(record(0)._replace(protocol=Protocol.H1))
        log.write(record(1))
        await log.close()
        assert log.stats.written == 2

    run(main())
    protocols = [json.loads(line)["httpRequest"]["protocol"] for line in _whole_lines(tmp_path)]
    assert protocols == ["HTTP/1.1", "HTTP/1.1"]

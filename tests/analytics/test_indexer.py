"""The log indexer (`mcgw logs index`) and the cache lock, with real processes and files.

The indexer runs as `mcgw logs index --follow` in a subprocess, as `mcgw up` starts it;
what it did is read from the cache itself (under the lock, read-only), never through a
query, which would do the work itself.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from mcgw import cpus, logfiles, logschema
from mcgw.analytics import cachelock, indexer, ingest, query

ROOT = Path(__file__).resolve().parents[2]
COUNT = "SELECT COUNT(*), COUNT(DISTINCT insert_id) FROM `p.global._Default._AllLogs`"
FORMATTER = logschema.AccessFormatter("test-project")


def _lines(first: int, n: int) -> list[bytes]:
    return [
        FORMATTER.line_bytes(
            logschema.AccessRecord.of(
                timestamp=1_700_000_000 + i,
                method="GET",
                scheme="http",
                host="store.example.com",
                target=f"/item/{i}",
                protocol="HTTP/1.1",
                status=200,
                latency_s=0.001,
                request_size=90,
                response_size=300,
                remote_ip="127.0.0.1",
                server_ip="127.0.0.1",
                user_agent="test",
                trace_headers=(),
                gateway="store/external-http",
                route="store/route/0",
                backend="ServiceImport/store/store:8080",
                cluster="gke-west-1",
                region="us-west1",
                zone="us-west1-a",
                pod="store-0",
                endpoint="127.1.0.1:8080",
                reason="closest",
                entry_region="us-west1",
                attempts=1,
                status_details="response_sent_by_backend",
            )
        )
        for i in range(first, first + n)
    ]


@contextlib.contextmanager
def _indexer(log_dir: Path, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    # --nice 0: the suite runs on a busy machine, and here the indexer is what is tested.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mcgw",
            "logs",
            "index",
            "--follow",
            "--nice",
            "0",
            *extra,
            str(log_dir),
        ],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def _indexed(log_dir: Path) -> int:
    """Rows the cache holds now, read without bringing it up to date."""
    lock = cachelock.CacheLock(log_dir, "test")
    try:
        assert lock.acquire(10)
        if not (log_dir / ingest.CACHE_NAME).exists():
            return 0
        con = duckdb.connect(str(log_dir / ingest.CACHE_NAME), read_only=True)
        try:
            tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
            if "logs" not in tables:
                return 0
            row = con.execute("SELECT count(*) FROM logs").fetchone()
            return int(row[0]) if row else 0
        finally:
            con.close()
    finally:
        lock.close()


def _wait_indexed(log_dir: Path, want: int, timeout_s: float = 30, every_s: float = 0.3) -> None:
    deadline = time.monotonic() + timeout_s
    while (got := _indexed(log_dir)) != want:
        assert time.monotonic() < deadline, f"indexer has {got} rows, not {want}"
        time.sleep(every_s)  # each look makes the indexer give way: leave it time to work


def _jsonl_lines(log_dir: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in log_dir.glob("*.jsonl"))


def _wait_holding(log_dir: Path, proc: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    """Until the indexer holds the cache lock (it is in a pass)."""
    lock = cachelock.CacheLock(log_dir, "test")
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            assert proc.poll() is None, "the indexer exited"
            assert time.monotonic() < deadline, "the indexer never took the cache"
            if not lock.try_acquire():
                if "indexer" in lock.holder():
                    return
            else:
                lock.release()
            time.sleep(0.005)
    finally:
        lock.close()


def _has_open(pid: int, path: Path) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(FileNotFoundError):  # an fd closed meanwhile
        return any(os.readlink(fd) == str(path) for fd in fds.iterdir())
    return False


def _wait_open(path: Path, proc: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    """Until the indexer has ``path`` open (it holds the lock a moment before that)."""
    deadline = time.monotonic() + timeout_s
    while not _has_open(proc.pid, path):
        assert proc.poll() is None, "the indexer exited"
        assert time.monotonic() < deadline, f"the indexer never opened {path}"
        time.sleep(0.01)


def test_follow_picks_up_appended_and_rotated_files_and_drops_removed_ones(
    tmp_path: Path,
) -> None:
    log_dir = tmp_path / "logs"
    writer = logfiles.RotatingFiles(
        log_dir, "access", logfiles.Retention(max_bytes=40_000, keep_files=3)
    )
    writer.write(_lines(0, 10))
    with _indexer(log_dir, "--interval", "0.1s") as proc:
        _wait_indexed(log_dir, 10)
        writer.write(_lines(10, 15))  # appended to the same file
        _wait_indexed(log_dir, 25)
        assert len(writer.files) == 1
        for i in range(25, 200, 25):
            writer.write(_lines(i, 25))  # rotates every ~30 lines
        assert len(writer.files) > 3 and writer.removed, "rotation and retention happened"
        _wait_indexed(log_dir, _jsonl_lines(log_dir))  # rows of removed files dropped
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert query.run(COUNT, log_dir).rows == ((_jsonl_lines(log_dir),) * 2,)


def test_a_query_during_a_pass_takes_over_and_answers_every_line(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    writer = logfiles.RotatingFiles(log_dir, "access")
    for first in range(0, 60_000, 10_000):
        writer.write(_lines(first, 10_000))
    # One pass for all 70 MB: seconds of work the query must not wait for.
    with _indexer(log_dir, "--interval", "0.1s", "--budget", "1GiB") as proc:
        _wait_holding(log_dir, proc)
        said: list[str] = []
        result = query.run(COUNT, log_dir, say=said.append, wait_s=30)
        assert result.rows == ((60_000, 60_000),)
        # No message: the indexer gave way within a second, and the cache was used.
        assert said == []
        assert _indexed(log_dir) == 60_000
        assert proc.poll() is None, "the indexer carries on after giving way"
        writer.write(_lines(60_000, 5))
        _wait_indexed(log_dir, 60_005)


def test_a_query_waits_for_another_and_says_so(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    logfiles.RotatingFiles(log_dir, "access").write(_lines(0, 30))
    holder = cachelock.CacheLock(log_dir, "query")
    assert holder.try_acquire()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mcgw",
            "logs",
            "query",
            COUNT,
            "-o",
            "csv",
            "--log-dir",
            str(log_dir),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # after a second of waiting
        assert f"pid {os.getpid()} (query) has it" in line
        assert proc.poll() is None
        holder.close()
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert out.splitlines()[1] == "30,30"
    finally:
        holder.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_query_that_waits_too_long_reads_into_memory(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    logfiles.RotatingFiles(log_dir, "access").write(_lines(0, 7))
    holder = cachelock.CacheLock(log_dir, "query")
    assert holder.try_acquire()
    try:
        said: list[str] = []
        assert query.run(COUNT, log_dir, wait_s=0.2, say=said.append).rows == ((7, 7),)
        assert said == [
            f"pid {os.getpid()} (query) kept the log cache: reading the logs into memory instead"
        ]
        assert not (log_dir / ingest.CACHE_NAME).exists()
    finally:
        holder.close()


def test_sigterm_during_a_pass_ends_it_cleanly(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    writer = logfiles.RotatingFiles(log_dir, "access")
    for first in range(0, 60_000, 10_000):
        writer.write(_lines(first, 10_000))
    with _indexer(log_dir, "--interval", "0.1s", "--budget", "1GiB") as proc:
        _wait_holding(log_dir, proc)
        proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - start < 3, "the pass was interrupted, not finished"
    # The one pass was abandoned whole: nothing cached, and the next query reads all.
    assert _indexed(log_dir) == 0
    assert query.run(COUNT, log_dir).rows == ((60_000, 60_000),)


def test_the_indexer_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    logfiles.RotatingFiles(log_dir, "access").write(_lines(0, 3))
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from mcgw.analytics import indexer; "
            "p = indexer.spawn(Path(sys.argv[1]), interval_s=0.1); print(p.pid, flush=True); "
            "time.sleep(60)",
            str(log_dir),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    child = 0
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        _wait_indexed(log_dir, 3)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(child):
            assert time.monotonic() < deadline, "the indexer outlived its parent"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its new parent to reap it does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's abstract sockets")
def test_a_nudge_wakes_the_listener_and_is_lost_harmlessly_without_one(tmp_path: Path) -> None:
    lock = cachelock.CacheLock(tmp_path, "query")
    lock.nudge()  # nobody listens: nothing happens
    holder = cachelock.CacheLock(tmp_path, "indexer")
    sock = holder.listen()
    assert sock is not None
    try:
        assert select.select([sock], [], [], 0)[0] == []
        lock.nudge()
        lock.nudge()
        assert select.select([sock], [], [], 1)[0] == [sock]
        assert sock.recv(64) + sock.recv(64) == b"ww"
        assert select.select([sock], [], [], 0)[0] == []  # read empty: asleep again
        # A second indexer of the same directory cannot listen: it stands by.
        with pytest.raises(OSError) as taken:
            cachelock.CacheLock(tmp_path, "indexer").listen()
        assert taken.value.errno == errno.EADDRINUSE
        assert holder.listens(sock)
        # Another directory's nudges do not reach it.
        (tmp_path / "other").mkdir()
        cachelock.CacheLock(tmp_path / "other", "query").nudge()
        assert select.select([sock], [], [], 0.1)[0] == []
    finally:
        sock.close()
    lock.nudge()  # the listener is gone: still nothing happens
    lock.close()
    # Nothing of it is left in the directory, and it can be listened for again.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]
    again = holder.listen()
    assert again is not None
    again.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's abstract sockets")
def test_a_directory_made_anew_has_another_wake_address_and_want_file(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    holder = cachelock.CacheLock(log_dir, "indexer")
    sock = holder.listen()
    assert sock is not None
    try:
        waiting = cachelock.CacheLock(log_dir, "query")
        assert holder.try_acquire()
        assert not holder.wanted() and not holder.stale() and holder.listens(sock)
        log_dir.rename(tmp_path / "moved")
        assert holder.stale()  # gone: whatever it opens by name now is not its own
        log_dir.mkdir()
        assert holder.stale() and not holder.listens(sock)
        # A query of the new directory waits on the new want file, and is seen.
        other = cachelock.CacheLock(log_dir, "other")
        assert other.try_acquire()
        assert not waiting.acquire(0.05)
        seen = threading.Thread(target=waiting.acquire, args=(1.0,))
        seen.start()
        deadline = time.monotonic() + 1
        while not holder.wanted():
            assert time.monotonic() < deadline, "the query on the new directory unseen"
            time.sleep(0.01)
        seen.join()
        waiting.close()
        other.close()
    finally:
        sock.close()
        holder.close()


def _switches(pid: int) -> int:
    """Times the threads of ``pid`` have gone to sleep so far (voluntary context
    switches): each is a wake-up later."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads Linux's /proc")
def test_an_idle_indexer_sleeps_until_a_query_wakes_it(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    # Started before the gateway's first line makes the directory, as `mcgw serve` starts it.
    with _indexer(log_dir, "--interval", "0.5s") as proc:
        time.sleep(0.3)
        logfiles.RotatingFiles(log_dir, "access").write(_lines(0, 20))
        _wait_indexed(log_dir, 20)  # caught up (and it gave the cache way to the look)
        time.sleep(0.5)
        before = _switches(proc.pid)
        time.sleep(3)
        # Its main loop looks at the files every 0.5 s (6 wake-ups), its watch once a
        # second (3); a watch looking for waiting queries 20 times a second made 60.
        assert _switches(proc.pid) - before < 15
        # A query is answered at once. (One during a pass has the watch woken by its
        # nudge: test_a_query_during_a_pass_takes_over_and_answers_every_line.)
        said: list[str] = []
        start = time.monotonic()
        assert query.run(COUNT, log_dir, say=said.append, wait_s=30).rows == ((20, 20),)
        assert time.monotonic() - start < 1.0
        assert said == []
        assert proc.poll() is None
        # Nothing but regular files in the directory: shutil.copytree, for one, refuses
        # a named pipe.
        assert all(path.is_file() for path in log_dir.rglob("*")), list(log_dir.rglob("*"))


def _read_bytes(pid: int) -> int:
    """Bytes the process has read so far (``rchar``: every read call, cached or not)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's abstract sockets")
def test_a_second_indexer_knows_it_stands_by_before_its_first_pass(tmp_path: Path) -> None:
    """follow() starts its watch, then at once looks whether a pass is due (at once, when
    a megabyte waits). The watch's first listen is in start() itself, not in its
    thread: a second indexer knows it stands by before that look, and makes no pass."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    first = cachelock.CacheLock(log_dir, "indexer").listen()  # the other indexer
    lock = cachelock.CacheLock(log_dir, "indexer")
    watch = indexer._Watch(lock, None)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    wakeup = signal.set_wakeup_fd(-1)
    try:
        watch.start()
        assert watch.standby
    finally:
        watch.close()
        first.close()
        lock.close()
        signal.set_wakeup_fd(wakeup)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


@pytest.mark.skipif(not Path("/proc/self/io").is_file(), reason="reads Linux's /proc")
def test_a_second_indexer_of_a_directory_stands_by_and_takes_over(tmp_path: Path) -> None:
    """Two `mcgw serve` with one log directory start two indexers: one indexes, the
    other sleeps until it is gone (two would take the cache in turns, and the one that
    could not listen for queries looked for them 20 times a second)."""
    log_dir = tmp_path / "logs"
    files = logfiles.RotatingFiles(log_dir, "access")
    files.write(_lines(0, 20))
    with _indexer(log_dir, "--interval", "0.2s") as first:
        _wait_indexed(log_dir, 20)
        with _indexer(log_dir, "--interval", "0.2s") as second:
            _wait_settled(second)  # started (its imports read) and standing by
            read = _read_bytes(second.pid)
            opened: list[bool] = []
            with _sampling(lambda: _has_open(second.pid, log_dir / ingest.CACHE_NAME), opened):
                files.write(_lines(20, 2_000))  # ~2 MB: one pass, the first indexer's
                _wait_indexed(log_dir, 2_020)  # (every look makes the first give way)
                switches = _switches(second.pid)
                time.sleep(3)
                # Awake about once a second (main loop and watch), where a watch that
                # looked 20 times a second made 60.
                assert _switches(second.pid) - switches < 15
            # It never took the cache, nor read the new lines.
            assert opened and not any(opened)
            assert _read_bytes(second.pid) - read < 100_000
            first.kill()
            first.wait()
            files.write(_lines(2_020, 30))
            _wait_indexed(log_dir, 2_050, timeout_s=20)  # within a second or so
            assert second.poll() is None
            said: list[str] = []
            assert query.run(COUNT, log_dir, say=said.append).rows == ((2_050, 2_050),)
            assert said == []


def _wait_settled(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """Until ``proc`` has read nothing for half a second (its start-up is over)."""
    deadline = time.monotonic() + timeout_s
    last = -1
    while (now := _read_bytes(proc.pid)) != last:
        assert proc.poll() is None, "it exited"
        assert time.monotonic() < deadline, "it kept reading"
        last = now
        time.sleep(0.5)


@contextlib.contextmanager
def _sampling(look: Callable[[], bool], into: list[bool]) -> Iterator[None]:
    """``look()`` every 5 ms in a thread while the block runs, its answers ``into``."""
    done = threading.Event()

    def run() -> None:
        while not done.wait(0.005):
            into.append(look())

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield None
    finally:
        done.set()
        thread.join()


def _listening(log_dir: Path) -> bool:
    """Whether some process listens at ``log_dir``'s wake address (Linux's table of
    Unix sockets shows abstract names with ``@`` for the leading NUL)."""
    address = cachelock.CacheLock(log_dir, "test")._wake_address()
    assert address is not None
    return "@" + address[1:].decode() in Path("/proc/net/unix").read_text()


def test_an_indexer_follows_its_directory_when_it_is_made_anew(tmp_path: Path) -> None:
    """``rm -r logs`` under a running indexer, and the directory made again (by a
    gateway started anew, or a writer's next file): the indexer must index there, not
    into the cache it had open, and hear that directory's queries."""
    log_dir = tmp_path / "logs"
    files = logfiles.RotatingFiles(log_dir, "access")
    files.write(_lines(0, 10))
    with _indexer(log_dir, "--interval", "0.2s") as proc:
        _wait_indexed(log_dir, 10)  # the look made it give the cache up
        files.write(_lines(10, 5))
        _wait_open(log_dir / ingest.CACHE_NAME, proc)  # it has the cache again, for good
        shutil.rmtree(log_dir)
        files = logfiles.RotatingFiles(log_dir, "access")
        files.write(_lines(15, 7))
        _wait_indexed(log_dir, 7)
        assert proc.poll() is None
        # A query of the new directory is heard: the indexer listens at its new
        # address (and looks at its new want file), so the query is answered at once.
        deadline = time.monotonic() + 5
        while not _listening(log_dir):
            assert time.monotonic() < deadline, "nobody listens for the new directory"
            time.sleep(0.05)
        files.write(_lines(22, 3))
        _wait_holding(log_dir, proc)
        said: list[str] = []
        start = time.monotonic()
        assert query.run(COUNT, log_dir, say=said.append).rows == ((10, 10),)
        assert time.monotonic() - start < 2.0
        assert said == []


def test_an_indexer_lets_go_of_a_removed_directorys_cache(tmp_path: Path) -> None:
    """A cache deleted with its directory keeps its disk space while it stays open."""
    log_dir = tmp_path / "logs"
    files = logfiles.RotatingFiles(log_dir, "access")
    files.write(_lines(0, 10))
    with _indexer(log_dir, "--interval", "0.2s") as proc:
        _wait_indexed(log_dir, 10)
        files.write(_lines(10, 5))
        cache = log_dir / ingest.CACHE_NAME
        _wait_open(cache, proc)
        _wait_settled(proc)  # the pass is over, the cache kept open between passes
        assert _has_open(proc.pid, cache)
        shutil.rmtree(log_dir)
        deadline = time.monotonic() + 10
        while _has_open(proc.pid, Path(f"{cache} (deleted)")):
            assert time.monotonic() < deadline, "the deleted cache is still open"
            time.sleep(0.05)
        assert proc.poll() is None


def _netns_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _netns_works(),
    reason="needs Linux and a network namespace of its own (unshare --net, as root)",
)
def test_a_query_from_another_network_namespace_still_has_the_indexer_step_aside(
    tmp_path: Path,
) -> None:
    # The host querying a container's log volume: the indexer's wake socket is in its
    # own namespace's abstract names, out of the query's reach, so the indexer must look
    # on its own now and then (LISTEN_S), not only when woken.
    log_dir = tmp_path / "logs"
    files = logfiles.RotatingFiles(log_dir, "access")
    files.write(_lines(0, 20))
    with _indexer(log_dir, "--interval", "0.5s") as proc:
        _wait_indexed(log_dir, 20)  # the look took the cache from it
        files.write(_lines(20, 20))
        probe = cachelock.CacheLock(log_dir, "test")
        deadline = time.monotonic() + 20
        while probe.try_acquire():  # until the indexer holds the cache again, idle
            probe.release()
            assert time.monotonic() < deadline, "the indexer never took the cache again"
            time.sleep(0.1)
        probe.close()
        script = (
            "import json, time; from pathlib import Path; from mcgw.analytics import query\n"
            "start = time.monotonic(); said = []\n"
            f"rows = query.run({COUNT!r}, Path({str(log_dir)!r}), say=said.append).rows\n"
            "print(json.dumps([rows, said, time.monotonic() - start]))\n"
        )
        done = subprocess.run(
            ["unshare", "--net", sys.executable, "-c", script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        rows, said, took = json.loads(done.stdout)
        assert rows == [[40, 40]]
        # It may wait past a second and say so, but not the 30 s after which it reads
        # the logs into memory instead.
        assert not [line for line in said if "into memory" in line], said
        assert took < 10
        assert proc.poll() is None


def test_index_once_parses_everything_and_queries_find_it_done(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    logfiles.RotatingFiles(log_dir, "access").write(_lines(0, 12))
    done = subprocess.run(
        [sys.executable, "-m", "mcgw", "logs", "index", str(log_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "12 log entries indexed" in done.stderr
    assert _indexed(log_dir) == 12


def test_stop_ends_a_spawned_indexer(tmp_path: Path) -> None:
    log_dir = tmp_path / "missing-yet"
    proc = indexer.spawn(log_dir, interval_s=0.1)  # the directory comes later
    try:
        time.sleep(0.5)
        assert proc.poll() is None
        logfiles.RotatingFiles(log_dir, "access").write(_lines(0, 4))
        _wait_indexed(log_dir, 4)
        # At the default niceness it runs only on idle CPU: Linux's SCHED_IDLE, every
        # thread (DuckDB's included), not only nice 19.
        for task in Path(f"/proc/{proc.pid}/task").iterdir():
            assert os.sched_getscheduler(int(task.name)) == os.SCHED_IDLE, task.name
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == indexer.NICENESS
    finally:
        assert indexer.stop(proc) == 0


@pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2,
    reason="needs two CPUs to tell a set affinity from the default",
)
def test_a_spawned_indexer_runs_on_the_cpus_its_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MCGW_LOG_INDEXER_CPUS sends the indexer (every thread it has: the main one and its
    watch) off the gateway's CPUs, which it otherwise inherits."""
    cpu = min(os.sched_getaffinity(0))
    monkeypatch.setenv(cpus.INDEXER_ENV, str(cpu))
    logfiles.RotatingFiles(tmp_path, "access").write(_lines(0, 4))
    proc = indexer.spawn(tmp_path, interval_s=0.1)
    try:
        _wait_indexed(tmp_path, 4)  # a pass ran: the process is past its start-up
        for task in Path(f"/proc/{proc.pid}/task").iterdir():
            assert os.sched_getaffinity(int(task.name)) == {cpu}, task.name
    finally:
        assert indexer.stop(proc) == 0


@pytest.mark.parametrize("budget", [1, 700, 10**9])
def test_bounded_passes_add_up_to_every_line(tmp_path: Path, budget: int) -> None:
    log_dir = tmp_path / "logs"
    writer = logfiles.RotatingFiles(log_dir, "access", logfiles.Retention(max_bytes=5_000))
    writer.write(_lines(0, 20))
    lock = cachelock.CacheLock(log_dir, "test")
    try:
        passes = 0
        while indexer.index_pass(log_dir, lock, budget=budget) is False:
            passes += 1
            assert passes < 100
        writer.write(_lines(20, 3))
        while indexer.index_pass(log_dir, lock, budget=budget) is False:
            passes += 1
    finally:
        lock.close()
    assert (passes > 5) == (budget < 1000)
    assert query.run(COUNT, log_dir).rows == ((23, 23),)


def test_a_pass_puts_its_lines_in_the_cache_and_none_in_its_write_ahead_log(
    tmp_path: Path,
) -> None:
    """A pass of --follow keeps the cache open after it. Its rows must already be in the
    cache file, not waiting in DuckDB's write-ahead log: DuckDB writes that log in one
    `write` per 2,048 rows (~2.5 MB of access lines), and a kernel that does not preempt
    its own code keeps a woken gateway waiting until that call yields (CHECKPOINT_THRESHOLD)."""
    log_dir = tmp_path / "logs"
    logfiles.RotatingFiles(log_dir, "access").write(_lines(0, 3000))
    lock = cachelock.CacheLock(log_dir, "test")
    pass_ = indexer._Pass(log_dir, lock, indexer.PASS_BUDGET)
    try:
        assert pass_.run() is True
        assert pass_.con is not None, "the cache stays open between passes"
        wal = log_dir / (ingest.CACHE_NAME + ".wal")
        assert not wal.exists() or wal.stat().st_size < 64 * 1024
        assert pass_.con.execute("SELECT count(*) FROM logs").fetchone() == (3000,)
    finally:
        pass_.close()
        lock.close()


def test_a_pass_hands_duckdb_the_new_lines_through_pipes_not_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB reads a copied file whole, in one read that a gateway woken meanwhile
    waits for; from a pipe it reads 64 KiB at a time (ingest._piped). With no temporary
    directory to copy into, a pass must still take every line, the appended ones too."""
    log_dir = tmp_path / "logs"
    writer = logfiles.RotatingFiles(log_dir, "access")
    writer.write(_lines(0, 2000))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-directory"))
    lock = cachelock.CacheLock(log_dir, "test")
    pass_ = indexer._Pass(log_dir, lock, indexer.PASS_BUDGET)
    try:
        assert pass_.run() is True
        writer.write(_lines(2000, 1000))
        assert pass_.run() is True
        assert pass_.con is not None
        assert pass_.con.execute("SELECT count(*) FROM logs").fetchone() == (3000,)
        # Where the OS has no splice (faked: os.splice taken away), the lines are
        # copied, and that fails here: the test tests.
        monkeypatch.delattr(os, "splice")
        writer.write(_lines(3000, 10))
        with pytest.raises(indexer.ReadFailed, match="no-such-directory"):
            pass_.run()
    finally:
        pass_.close()
        lock.close()


def test_an_interrupt_anywhere_in_a_pass_leaves_whole_passes(tmp_path: Path) -> None:
    """A query interrupts the indexer's pass wherever it is (as the watch's guard does,
    with ``interrupt()`` from another thread), its commit and that commit's checkpoint
    included: the cache must then hold the first pass or both, with file offsets that
    match the rows, never a part."""
    first, second = b"".join(_lines(0, 2000)), b"".join(_lines(2000, 2000))

    def attempt(directory: Path, delay_s: float | None) -> tuple[bool | None, float, int, int]:
        log_dir = directory / "logs"
        log_dir.mkdir(parents=True)
        (log_dir / "access-1.jsonl").write_bytes(first)
        lock = cachelock.CacheLock(log_dir, "test")
        pass_ = indexer._Pass(log_dir, lock, indexer.PASS_BUDGET)
        try:
            assert pass_.run() is True
            with (log_dir / "access-1.jsonl").open("ab") as out:
                out.write(second)
            con = pass_.con
            assert con is not None
            timer = None if delay_s is None else threading.Timer(delay_s, con.interrupt)
            if timer is not None:
                timer.start()
            began = time.perf_counter()
            result = pass_.run()
            took = time.perf_counter() - began
            if timer is not None:
                timer.join()
        finally:
            pass_.close()
            lock.close()
        con = duckdb.connect(str(log_dir / ingest.CACHE_NAME), read_only=True)
        try:
            rows = con.execute("SELECT count(*) FROM logs").fetchone()
            offsets = con.execute(f'SELECT "offset" FROM {ingest._FILES}').fetchall()
        finally:
            con.close()
        assert rows is not None and len(offsets) == 1
        return result, took, int(rows[0]), int(offsets[0][0])

    _, whole_s, _, _ = attempt(tmp_path / "whole", None)
    interrupted = 0
    for i in range(12):
        result, _, rows, offset = attempt(tmp_path / str(i), whole_s * i / 10)
        assert (rows, offset) in {(2000, len(first)), (4000, len(first) + len(second))}, i
        assert (result is None) == (rows == 2000), i
        interrupted += result is None
    assert interrupted, "no interrupt landed inside a pass: the test did not test"


def test_a_trickle_waits_for_more_lines_or_for_its_time_and_a_burst_goes_at_once() -> None:
    """_Cadence alone (no files, no DuckDB), with a CPU to itself: whether a tick is
    worth a pass."""
    a, b = Path("a.jsonl"), Path("b.jsonl")
    t = indexer._Cadence(1000, trickle_wait_s=10.0, batch_bytes=10**6, batch_wait_s=30.0)
    assert t.due({a: 10}, now=0.0) is False  # a trickle: its wait starts
    assert t.due({a: 500}, now=9.9) is False
    assert t.due({a: 600}, now=10.0) is True  # waited long enough
    t.caught_up({a: 600})
    assert t.due({a: 600}, now=11.0) is False  # nothing new
    assert t.due({a: 1600}, now=11.0) is True  # more than a trickle: at once
    t.caught_up({a: 1600})
    assert t.due({a: 1600, b: 999}, now=12.0) is False  # a new file counts its bytes
    assert t.due({a: 1600, b: 999}, now=13.0) is False  # stopped, but only a trickle
    assert t.due({a: 1600, b: 1000}, now=14.0) is True
    t.caught_up({a: 1600, b: 1000})
    assert t.due({b: 1001}, now=15.0) is False  # a went away: its rows can wait
    assert t.due({b: 1001}, now=25.0) is True
    t.caught_up({b: 1001})
    assert t.due({b: 5}, now=26.0) is True  # a file shrank (cut, rewritten): at once


def test_sharing_its_cpu_the_indexer_waits_for_a_batch_or_a_pause() -> None:
    """_Cadence alone: after a pass that waited for its CPU longer than it ran, new
    lines wait for a row group's worth, for the files to stop growing, or for their
    time; after one that had its CPU, a trickle's worth goes again."""
    a = Path("a.jsonl")
    t = indexer._Cadence(1000, trickle_wait_s=10.0, batch_bytes=10**6, batch_wait_s=30.0)
    t.passed(ran_s=0.2, waited_s=0.1)
    assert t.shared is False
    t.passed(ran_s=0.2, waited_s=0.3)
    assert t.shared is True
    t.passed(ran_s=0.01, waited_s=0.0)  # too short a pass to tell: no change yet
    assert t.shared is True
    for _ in range(4):  # short passes add up
        t.passed(ran_s=0.01, waited_s=0.0)
    assert t.shared is False
    for _ in range(5):
        t.passed(ran_s=0.01, waited_s=0.05)
    assert t.shared is True
    assert t.due({a: 5_000}, now=0.0) is False  # more than a trickle, still growing
    assert t.due({a: 900_000}, now=2.0) is False
    assert t.due({a: 1_000_000}, now=4.0) is True  # a batch
    t.caught_up({a: 1_000_000})
    assert t.due({a: 1_500_000}, now=6.0) is False
    assert t.due({a: 1_500_000}, now=8.0) is True  # stopped growing: index the burst
    t.caught_up({a: 1_500_000})
    assert t.due({a: 1_500_100}, now=10.0) is False
    assert t.due({a: 1_500_100}, now=12.0) is False  # stopped, but only a trickle
    assert t.due({a: 1_502_000}, now=39.9) is False
    assert t.due({a: 1_503_000}, now=40.0) is True  # waited its 30 s
    t.caught_up({a: 1_503_000})
    t.passed(ran_s=0.2, waited_s=0.0)
    assert t.due({a: 1_504_000}, now=41.0) is True  # its CPU again: a trickle goes


def test_a_trickle_of_lines_is_indexed_within_its_ticks(tmp_path: Path) -> None:
    """Four lines (far below TRICKLE_BYTES) wait at most TRICKLE_TICKS ticks, then are
    indexed; a later trickle too."""
    log_dir = tmp_path / "logs"
    proc = indexer.spawn(log_dir, interval_s=0.2)
    try:
        files = logfiles.RotatingFiles(log_dir, "access")
        files.write(_lines(0, 4))
        t0 = time.monotonic()
        _wait_indexed(log_dir, 4)
        files.write(_lines(4, 2))
        _wait_indexed(log_dir, 6)
        # Two waits of at most 5 ticks of 0.2 s each, a pass each and the looks.
        assert time.monotonic() - t0 < 10
    finally:
        assert indexer.stop(proc) == 0


def test_an_indexer_sharing_its_cpu_lets_lines_gather_until_they_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real contention: two busy processes on the indexer's CPU, at its priority
    (``--nice 0``: a third of the CPU each, where SCHED_IDLE would leave it almost
    none). Its first pass waits for the CPU longer than it runs; lines appended then,
    more than a trickle each second, wait for a batch while they keep coming (with its
    CPU to itself it indexes them every tick), and are indexed once they stop."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs one CPU to share and another for the test's own writes")
    if not (indexer._cpu_times() or (0.0, 0.0))[0]:
        pytest.skip("no /proc/thread-self/schedstat (or no schedstats in this kernel)")
    cpu = max(os.sched_getaffinity(0))
    monkeypatch.setenv(cpus.INDEXER_ENV, str(cpu))
    # Each busy process ends by itself after a minute, whatever becomes of the test.
    busy = (
        f"import os, time\nos.sched_setaffinity(0, {{{cpu}}})\n"
        "end = time.monotonic() + 60\nwhile time.monotonic() < end: pass"
    )
    hogs: list[subprocess.Popen[bytes]] = []
    log_dir = tmp_path / "logs"
    writer = logfiles.RotatingFiles(log_dir, "access")
    writer.write(_lines(0, 5000))  # ~5 MiB: a pass at once, long enough to measure
    try:
        hogs += [subprocess.Popen([sys.executable, "-c", busy]) for _ in range(2)]
        # Ticks of 1.5 s: a stall of the writes below shorter than that is no pause.
        with _indexer(log_dir, "--interval", "1.5s"):
            # Each look interrupts a pass, which takes ~3x its CPU time here.
            _wait_indexed(log_dir, 5000, timeout_s=60, every_s=1.5)
            n = 5000
            end = time.monotonic() + 4.5  # three ticks
            while time.monotonic() < end:  # ~1 MiB a second, never a tick without
                writer.write(_lines(n, 100))
                n += 100
                time.sleep(0.1)
            assert _indexed(log_dir) == 5000, "indexed while sharing, before a pause"
            _wait_indexed(log_dir, n, timeout_s=60, every_s=1.5)  # paused: the next tick
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def _failing_once(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the next range read fail as if retention removed the file between listing
    and reading (a race it can win; faked, as it cannot be timed from here). Returns
    the list the failure is recorded in."""
    failed: list[str] = []
    read_range = ingest._read_range

    def once(con: duckdb.DuckDBPyConnection, path: str, *args: Any, **kwargs: Any) -> None:
        if not failed:
            failed.append(path)
            raise FileNotFoundError(2, "No such file or directory", path)
        read_range(con, path, *args, **kwargs)

    monkeypatch.setattr(ingest, "_read_range", once)
    return failed


def test_a_pass_that_cannot_read_a_file_fails_alone_and_the_next_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_dir = tmp_path / "logs"
    logfiles.RotatingFiles(log_dir, "access").write(_lines(0, 30))
    failed = _failing_once(monkeypatch)
    lock = cachelock.CacheLock(log_dir, "indexer")
    try:
        with pytest.raises(indexer.ReadFailed, match="No such file"):
            indexer.index_pass(log_dir, lock)
        assert failed
        assert not lock.held  # the cache was let go of
        assert indexer.index_pass(log_dir, lock) is True
    finally:
        lock.close()
    assert _indexed(log_dir) == 30


def test_follow_reports_a_pass_that_cannot_read_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process, so that the read can be made to fail; ended after 3 s by a
    SIGTERM to itself, which follow() takes as its signal to stop."""
    log_dir = tmp_path / "logs"
    logfiles.RotatingFiles(log_dir, "access").write(_lines(0, 30))
    failed = _failing_once(monkeypatch)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    stopper = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGTERM))
    began = time.monotonic()
    stopper.start()
    try:
        indexer.follow(log_dir, interval_s=0.1, niceness=0)
    finally:
        stopper.cancel()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert time.monotonic() - began >= 3.0, "follow() ended before its SIGTERM"
    assert failed
    reports = [line for line in capsys.readouterr().err.splitlines() if "No such file" in line]
    assert len(reports) == 1, reports
    assert _indexed(log_dir) == 30

"""The log indexer: keeps a log directory's DuckDB cache current while logs are written.

Cloud Logging ingests entries as they arrive, so a query an hour into a run reads what
is already indexed. mcgw's queries parse the JSONL files into a DuckDB cache
(:mod:`mcgw.analytics.ingest`); the first query over a million lines would pay the
whole parse. ``mcgw logs index --follow DIR`` pays it as the lines come instead: on
each ``interval``'s tick it reads what was appended since the last pass (at most
:data:`PASS_BUDGET` bytes, the rest on the next pass, at once) into the cache, which it
keeps open between passes until a query wants it. How often depends on who else wants
the CPU (:class:`_Cadence`): with a CPU to itself, every tick once a trickle has
gathered, so that a query finds only the last seconds left to read; sharing one with
the gateway, once a DuckDB row group has gathered (half the CPU per line, from ~2,000
lines a second on; below that its minute's wait ends first), or when the traffic
pauses, and a query may then find up to about a minute of lines to read itself.

It must never stand in the way of the gateway or of a query:

* one DuckDB thread, a low CPU priority (``nice``; at 19, Linux's ``SCHED_IDLE``
  too), a bounded memory limit; the gateway's CPUs (it inherits its affinity) unless
  ``MCGW_LOG_INDEXER_CPUS`` names others (:mod:`mcgw.cpus`);
* it only *tries* the cache lock (:mod:`mcgw.analytics.cachelock`) and watches for a
  query waiting for it: a pass under way is then interrupted, its transaction rolled
  back, the cache closed, and the query reads those lines itself;
* SIGTERM, SIGINT or the death of the process named by ``parent`` (``mcgw up`` and
  ``mcgw serve`` start it) interrupt a pass the same way and end the process. Every
  pass is one transaction, so the cache holds whole passes only, however it ends;
* one indexer a directory (within a network namespace, whose abstract socket names
  they share): a second one stands by until the first is gone (:attr:`_Watch.standby`).

Where a pass's CPU goes (``bench/indexcost.py --passes``, 26 Nov, 9,000-line passes, one
every 2 s at 4,500 requests/s before the batches; 21-28 µs per line in all on this VM, a
third of it system time):
``read_json`` and the select ~28 k instructions a line, the typed ``__lb`` from a second
parse of ``jsonPayload`` ~8 k more (cachegrind); the WAL at commit ~5.5 µs, the
checkpoint ~5 µs (all of it in one ~1 s pass every ~23 passes; since 27 Nov every
commit is a checkpoint and there is no WAL, :data:`CHECKPOINT_THRESHOLD`); ~8 ms of
binding and planning per ``INSERT`` whatever its size. Tried and not kept: smaller
statements (225 lines each: 52 µs a line, planning dominates), DuckDB's allocator and
compression settings, ``ROW_GROUP_SIZE 8192`` (cheaper commits, a 4x larger file),
``__lb`` through a join on distinct payloads (-4 % of the parse's instructions when
payloads repeat, +50 % when each differs). What does cut it: a pass of a whole row
group or more (see :data:`BATCH_BYTES`), 11.9–13.3 µs a line, 2.4 of it system time.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mcgw import cpus
from mcgw.analytics import cachelock, errors

if TYPE_CHECKING:
    import duckdb

DEFAULT_INTERVAL_S = 2.0
"""Pause between passes once caught up: the most a query finds left to read while
lines come faster than a trickle and the indexer has a CPU to itself (see
:class:`_Cadence`)."""

TRICKLE_BYTES = 1024 * 1024
"""New log bytes (~900 access lines) below which a tick skips its pass, for up to
:data:`TRICKLE_TICKS` ticks. A pass costs ~32 ms of CPU before its first line (DuckDB's
binding and planning, the commit; ``bench/indexcost.py --passes --lines 10``), as much
as ~1,600 lines: at a few requests a second a pass every tick cost ~1.6 % of a core
for a handful of lines. A query reads what is not yet indexed itself: under this many
bytes, a few tens of milliseconds."""

BATCH_BYTES = 192 * 1024 * 1024
"""New log bytes a pass waits for while the indexer shares its CPU (see
:class:`_Cadence`): ~175,000 access lines of ~1.15 KB, and more than one DuckDB row
group (122,880 rows) for lines of up to 1.6 KB (a long URL or user agent). A
transaction that inserts a whole row group writes it to the table's blocks once,
compressed; a smaller one's checkpoint rewrites the table's last, unfinished row group
(:data:`CHECKPOINT_THRESHOLD`). Measured (``bench/indexcost.py --passes``, one core):
9,000-line passes 16.4–16.7 µs of CPU per line, 125,000 8.2–8.5 (27 Nov 08:53); with
the write-ahead log then, 9,000 26.5, 30,000 25.7, 100,000 17.9, 125,000 13.3, 250,000
11.9 (26 Nov 20:15). A query reads what is not yet indexed itself: about this many
bytes at most while lines keep coming, a second or two of two cores."""

TRICKLE_TICKS = 5
"""Ticks a trickle waits at most before its pass (10 s at the default interval)."""

BATCH_TICKS = 30
"""Ticks new lines wait at most for a batch while the indexer shares its CPU (60 s at
the default interval: a row group's worth at ~2,000 lines a second)."""

SHARED_WAIT = 1.0
"""A pass whose thread waited for a CPU longer than this times the CPU time it got
(``/proc/thread-self/schedstat``) shared its CPU with other work: the indexer then
waits for :data:`BATCH_BYTES`. At the default ``SCHED_IDLE`` it only waits while
something else, the gateway or its writer, wants the CPU."""

MEASURED_S = 0.05
"""CPU time of passes (added up) it takes to tell how busy their CPU was."""

PASS_BUDGET = 256 * 1024 * 1024
"""Bytes of log lines one pass reads at most (~230,000 access lines, ~3 s of one
core): more than :data:`BATCH_BYTES`, so that a batch is one transaction. A pass given
up for a query loses its work, and the query reads those lines itself."""

NICENESS = 19
"""CPU priority added to the indexer's: it runs on what the gateway leaves. At 19 the
indexer also takes Linux's ``SCHED_IDLE`` policy: a nice-19 task may still finish its
time slice before a woken gateway runs (a pass was ~0.2 s of CPU every 2 s under load
before the batches; a batch is ~2.5 s), an idle-policy one is preempted at once. bench
run at 4,500 requests/s, p99 with the indexer at nice 19 3.6–9.7 ms, without it
2.7–3.4 (four alternating rounds). The policy does not reach into the kernel: where the
kernel does not preempt its own code (``preempt=none``, as on the VM these figures come
from), a gateway woken while DuckDB reads or writes a file waits for the call to reach
a rescheduling point: 5 % of such wake-ups waited over 0.1 ms, up to 5.4 ms (26 Nov).
Since, DuckDB writes no write-ahead log (:data:`CHECKPOINT_THRESHOLD`) and reads the
new lines from pipes, 64 KiB a call (:func:`mcgw.analytics.ingest._piped`);
docs/access-log-cost.md."""

MEMORY_LIMIT = "256MB"
"""DuckDB's memory limit in the indexer (the default is 80 % of the machine's RAM)."""

CHECKPOINT_THRESHOLD = "0KB"
"""Write-ahead log the indexer's cache may grow before DuckDB checkpoints it: none. Every
pass's commit is then a checkpoint, and DuckDB writes the pass's rows straight to the
cache's blocks (``pwrite``s of 256 KB) instead of to its write-ahead log first. It
writes that log in one ``write`` per 2,048 rows, ~2.5 MB of access lines, and a kernel
that does not preempt its own code (``preempt=none``) keeps a gateway woken during
such a call waiting until the call yields: traced at 4,500 requests/s (27 Nov 07:29, 30
s), 29 wake-ups waited over 0.1 ms in those writes, up to 4.6 ms; with every commit a
checkpoint, none (docs/access-log-cost.md). It costs CPU, as each commit
rewrites the table's last, unfinished row group (``bench/indexcost.py --passes``, 27 Nov
08:53, one core, the closing checkpoint included): 1,000-line passes 26.5–27.1 µs a line
against 21.7–22.0 with a 256 MB log, 9,000-line 16.4–16.7 against 12.2–12.3,
125,000-line 8.2–8.5 against 8.5–9.0. The cache writes less: 0.47, 0.56–0.57 and 0.03
bytes per byte of lines, against 1.06, 1.34 and 0.46–0.50 (the copy of the lines the
indexer then made not counted). A query that makes the indexer
close the cache no longer waits for a checkpoint (11–13 ms against 246–265 at 9,000-line
passes)."""

WATCH_S = 0.05
"""How often the indexer looks again while a query waits (an interrupt that lands
between two statements of a pass is lost), and looks at all where it cannot be woken
(no wake socket, no pidfd). Otherwise its watch sleeps until woken, or
:data:`LISTEN_S`: an idle indexer whose watch looked at this rate took 4.3 ms of CPU
a second, one whose watch sleeps 1.7 (27 Nov, 30 s each, same run)."""

LISTEN_S = 1.0
"""The longest the watch sleeps while it has its wake socket, or stands by for another
indexer's (:attr:`_Watch.standby`), or has no directory to watch. A query in another
network namespace than the indexer's (the host querying a container's log volume)
cannot reach the socket, which is in the namespace's abstract names: the indexer
then steps aside within this, plus its checkpoint."""

STOP_TIMEOUT_S = 5.0
"""How long :func:`stop` waits for the indexer to end before killing it."""


class _Watch:
    """A thread that interrupts the current pass when it should end: a query waits
    for the cache, a signal came, or the parent process went away. It sleeps until one
    of them wakes it: a signal through Python's wakeup fd, a query through the cache
    lock's wake socket (:meth:`cachelock.CacheLock.nudge`), the parent's exit through a
    pidfd."""

    def __init__(self, lock: cachelock.CacheLock, parent: int | None) -> None:
        self.stop = threading.Event()
        self.wake = threading.Event()
        """Set with ``stop`` and whenever a query waits: the main loop looks again."""
        self._closing = threading.Event()
        self.waiting = False
        """A query waited for the cache when last looked."""
        self.failed = False
        """The watch ended on an error (the indexer then ends too)."""
        self.standby = False
        """Another indexer listens for this directory: this one leaves the cache to it,
        and takes over when it is gone (:meth:`_listen`)."""
        self._lock = lock
        self._parent = parent
        self._mutex = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._nudges: socket.socket | None = None
        self._parent_fd: int | None = None
        if parent is not None:
            try:
                self._parent_fd = os.pidfd_open(parent)
            except ProcessLookupError:
                self.stop.set()  # gone already
            except (AttributeError, OSError):
                pass  # no pidfd (not Linux 5.3+): os.getppid() on a timer
        self._thread = threading.Thread(target=self._run, name="mcgw-index-watch", daemon=True)

    def start(self) -> None:
        self._listen()  # before the first pass: a second indexer must make none
        # A signal's C handler writes to the wakeup pipe at once, even while the main
        # thread is inside DuckDB and Python handlers cannot run.
        signal.set_wakeup_fd(self._wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        self._thread.start()

    @contextlib.contextmanager
    def guarding(self, con: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """Let the watch interrupt ``con`` while the block runs."""
        with self._mutex:
            self._con = con
        try:
            yield None
        finally:
            with self._mutex:
                self._con = None

    def _run(self) -> None:
        try:
            self._watch()
        except BaseException:
            # A watch that is gone would leave the indexer deaf to signals, its parent
            # and queries: end the indexer instead (the traceback goes to stderr).
            self.failed = True
            self.stop.set()
            self._interrupt()
            raise

    def _interrupt(self) -> None:
        """Wake the main loop and interrupt the pass under way, if any."""
        self.wake.set()
        with self._mutex:
            if self._con is not None:
                with contextlib.suppress(Exception):
                    self._con.interrupt()

    def _listen(self) -> None:
        """Listen for this directory's queries, if not yet (the gateway makes the
        directory with its first line) or no longer (the directory was made anew); or
        stand by while another indexer does. One indexer a directory: two would take
        the cache in turns, parsing each other's lines for nothing."""
        if self._nudges is not None and not self._lock.listens(self._nudges):
            self._nudges.close()
            self._nudges = None
        if self._nudges is not None:
            return
        try:
            self._nudges = self._lock.listen()
        except OSError:  # EADDRINUSE
            self.standby = True
            return
        if self.standby and self._nudges is not None:
            self.standby = False
            self.wake.set()  # the main loop waits for this: take over

    def _watch(self) -> None:
        # Runs until close(): an interrupt landing between two statements of a pass is
        # lost, so it is repeated while the reason for it lasts.
        while not self._closing.is_set():
            self._listen()
            nudges = None if self._nudges is None else self._nudges.fileno()
            sources = [fd for fd in (self._wake_r, nudges, self._parent_fd) if fd is not None]
            # Without a socket, it looks for queries on a timer; standing by, it holds
            # no cache to give up, and only looks whether the other indexer has gone.
            # No directory (not yet, or removed): no query can wait for its cache.
            blind = (nudges is None and not self.standby and self._lock.log_dir.is_dir()) or (
                self._parent is not None and self._parent_fd is None
            )
            timeout = WATCH_S if blind or self.waiting or self.stop.is_set() else LISTEN_S
            ready, _, _ = select.select(sources, [], [], timeout)
            if self._wake_r in ready:
                os.read(self._wake_r, 512)
                self.stop.set()
            if self._nudges is not None and nudges in ready:
                with contextlib.suppress(BlockingIOError):
                    while True:  # every nudge: asleep again after
                        self._nudges.recv(64)
            if self._parent_fd is not None and self._parent_fd in ready:
                self.stop.set()
            if self._parent is not None and os.getppid() != self._parent:
                self.stop.set()
            if not self.stop.is_set() and not self.standby:
                # (Standing by, it holds nothing to give up; and its look, an exclusive
                # lock taken for an instant, could make the other indexer think a
                # query waits.)
                with contextlib.suppress(OSError):
                    self.waiting = self._lock.wanted()
            if self.stop.is_set() or self.waiting:
                self._interrupt()

    def close(self) -> None:
        self.stop.set()
        self._closing.set()
        if self._thread.is_alive():
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"\0")  # out of its select
            self._thread.join()
        signal.set_wakeup_fd(-1)
        for fd in (self._wake_r, self._wake_w, self._parent_fd):
            if fd is not None:
                os.close(fd)
        if self._nudges is not None:
            self._nudges.close()


def index_pass(
    log_dir: Path, lock: cachelock.CacheLock, *, budget: int | None = PASS_BUDGET
) -> bool | None:
    """One pass, opening and closing the cache: bring it up to date by at most
    ``budget`` bytes, if it is free. Returns whether it is up to date; None: it was
    not free, try later.

    Raises:
        OSError: the lock file cannot be created (e.g. a read-only directory).
        ReadFailed: a log file could not be read (the pass left the cache as it was).
    """
    pass_ = _Pass(log_dir, lock, budget)
    try:
        return pass_.run()
    finally:
        pass_.close()


class _Cadence:
    """Whether a tick is worth a pass, from the log files' sizes.

    Freshness costs CPU: a pass costs ~32 ms before its first line, and passes smaller
    than a DuckDB row group cost more per line (:data:`BATCH_BYTES`). So a pass is
    due when enough new bytes wait, :data:`TRICKLE_BYTES` while the indexer has a CPU
    to itself and :data:`BATCH_BYTES` while it shares one (:meth:`passed`); when a file
    shrank (cut or rewritten: what was indexed of it is wrong); when the files stopped
    growing with more than a trickle waiting (a burst is over: index it while the CPU
    is free); or when the oldest new bytes have waited ``trickle_wait_s``
    (``batch_wait_s`` while sharing)."""

    def __init__(
        self, trickle_bytes: int, trickle_wait_s: float, batch_bytes: int, batch_wait_s: float
    ) -> None:
        self.trickle_bytes = trickle_bytes
        self.trickle_wait_s = trickle_wait_s
        self.batch_bytes = batch_bytes
        self.batch_wait_s = batch_wait_s
        self.shared = False
        """The last passes shared their CPU with other work."""
        self._ran = self._waited = 0.0
        """CPU time of passes not yet judged, and their wait for a CPU."""
        self.indexed: dict[Path, int] = {}
        """The files' sizes when the last pass that caught up began."""
        self.seen: dict[Path, int] = {}
        """The files' sizes at the last tick."""
        self.since: float | None = None
        """When the first bytes not yet indexed were seen."""

    def due(self, sizes: dict[Path, int], now: float) -> bool:
        quiet, self.seen = sizes == self.seen, sizes
        if sizes == self.indexed:
            self.since = None
            return False
        # Growth, file by file: a file that went away (retention) leaves rows to drop,
        # which can wait like new lines.
        waiting = 0
        for path, size in sizes.items():
            before = self.indexed.get(path, 0)
            if size < before:
                return True
            waiting += size - before
        if self.since is None:
            self.since = now
        if self.shared:
            enough, wait_s = self.batch_bytes, self.batch_wait_s
        else:
            enough, wait_s = self.trickle_bytes, self.trickle_wait_s
        return (
            waiting >= enough
            or (quiet and waiting >= self.trickle_bytes)
            or now - self.since >= wait_s
        )

    def caught_up(self, sizes: dict[Path, int]) -> None:
        """A pass that began when the files had ``sizes`` indexed them all."""
        self.indexed = sizes
        self.since = None

    def passed(self, ran_s: float, waited_s: float) -> None:
        """A pass's thread was on a CPU ``ran_s`` and waited for one ``waited_s``.
        Short passes (a trickle's) are added up until they say something."""
        self._ran += ran_s
        self._waited += waited_s
        if self._ran >= MEASURED_S:
            self.shared = self._waited > SHARED_WAIT * self._ran
            self._ran = self._waited = 0.0


def _cpu_times() -> tuple[float, float] | None:
    """Seconds this thread has run on a CPU and waited for one (runnable, not
    running); None where Linux's schedstat is not there."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as f:
            ran, waited, _ = f.read().split()
    except (OSError, ValueError):
        return None
    return int(ran) / 1e9, int(waited) / 1e9


def _sizes(log_dir: Path) -> dict[Path, int]:
    """Every log file below ``log_dir`` and its size (none: an empty map)."""
    from mcgw.analytics import ingest

    sizes: dict[Path, int] = {}
    with contextlib.suppress(errors.AnalyticsError):
        for path in ingest.log_files(log_dir):
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                sizes[path] = path.stat().st_size
    return sizes


class ReadFailed(Exception):
    """A pass could not read the log files: one was removed between listing and reading
    (retention, or a user), or reading failed. The pass is reported and tried again,
    as one that DuckDB failed is; the next lists the files anew."""


class _Pass:
    """The indexer's hold on the cache: the lock and a connection, kept from one pass
    to the next while no query wants them. Opening and closing the cache (closing
    checkpoints it) cost more than parsing a pass's lines: measured, keeping it open
    takes the indexer from 47 to 30 µs of CPU per line at 10 000 lines a pass."""

    def __init__(
        self,
        log_dir: Path,
        lock: cachelock.CacheLock,
        budget: int | None,
        guard: Callable[[duckdb.DuckDBPyConnection], contextlib.AbstractContextManager[None]]
        | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.lock = lock
        self.budget = budget
        self.guard = guard
        self.con: duckdb.DuckDBPyConnection | None = None

    def run(self) -> bool | None:
        """Whether the cache is up to date; None: not free, or interrupted."""
        import duckdb

        from mcgw.analytics import ingest

        if self.con is not None and self.lock.stale():
            # The directory was removed (its cache, deleted, would hold its disk space
            # for as long as it stays open) or made anew (the open cache is not its own).
            self.close()
        try:
            files = ingest.log_files(self.log_dir)
        except errors.AnalyticsError:
            return True  # nothing written yet
        if self.con is None:
            if not self.lock.try_acquire():
                return None
            try:
                self.con = duckdb.connect(str(self.log_dir / ingest.CACHE_NAME))
            except duckdb.Error:
                self.lock.release()
                return None  # a program other than mcgw has the file open
            if self.lock.stale():
                self.close()  # made anew between the lock and the cache: another's cache
                return None
            ingest.configure(self.con)
            self.con.execute("SET threads = 1")
            self.con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
            self.con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
        try:
            with self.guard(self.con) if self.guard is not None else contextlib.nullcontext():
                return ingest.refresh(self.con, files, budget=self.budget)
        except duckdb.InterruptException:
            self.close()
            return None
        except OSError as exc:
            self.close()
            raise ReadFailed(str(exc)) from exc
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the cache (a checkpoint) and let others have it."""
        if self.con is not None:
            con, self.con = self.con, None
            con.close()
        self.lock.release()


def follow(
    log_dir: Path,
    *,
    interval_s: float = DEFAULT_INTERVAL_S,
    parent: int | None = None,
    niceness: int = NICENESS,
    budget: int = PASS_BUDGET,
) -> None:
    """Index ``log_dir`` until SIGTERM/SIGINT or until ``parent`` is gone. A pass that
    fails (a damaged cache, a file that cannot be read) is reported on stderr, once
    per distinct error, and tried again after the interval: queries report it too.

    Raises:
        AnalyticsError: the directory cannot hold the cache (read-only), or the watch
            for queries and signals failed.
    """
    import duckdb

    cpus.pin_from_env(cpus.INDEXER_ENV, "mcgw logs index")
    if niceness:
        os.nice(niceness)
    if niceness >= NICENESS and hasattr(os, "SCHED_IDLE"):
        # Threads started from here on (DuckDB's, the watch) inherit the policy.
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    lock = cachelock.CacheLock(log_dir, "indexer")
    watch = _Watch(lock, parent)
    pass_ = _Pass(log_dir, lock, budget, watch.guarding)
    cadence = _Cadence(
        TRICKLE_BYTES, TRICKLE_TICKS * interval_s, BATCH_BYTES, BATCH_TICKS * interval_s
    )
    watch.start()
    failed = ""
    try:
        while not watch.stop.is_set():
            watch.wake.clear()
            if watch.waiting:
                pass_.close()  # a query goes first
                watch.wake.wait(WATCH_S)
                continue
            if watch.standby:
                pass_.close()  # another indexer has the directory: wait for it to go
                watch.wake.wait(LISTEN_S)
                continue
            sizes = _sizes(log_dir)
            if not cadence.due(sizes, time.monotonic()):
                watch.wake.wait(interval_s)
                continue
            before = _cpu_times()
            try:
                done = pass_.run()
            except OSError as exc:  # the lock file cannot be made: no cache here
                raise errors.AnalyticsError(f"cannot index logs under {log_dir}: {exc}") from exc
            except (duckdb.Error, ReadFailed) as exc:
                interrupted = watch.stop.is_set() or watch.waiting
                if str(exc) != failed and not interrupted:
                    print(f"mcgw logs index: {log_dir}: {exc}", file=sys.stderr, flush=True)
                failed, done = str(exc), None
            after = _cpu_times()
            if before is not None and after is not None:
                cadence.passed(after[0] - before[0], after[1] - before[1])
            if done:
                cadence.caught_up(sizes)
            # Behind (budget spent): on at once; otherwise (caught up, or the cache
            # was busy) after the interval, or when a query comes.
            if done is not False:
                watch.wake.wait(interval_s)
    finally:
        pass_.close()
        watch.close()
        lock.close()
    if watch.failed:
        raise errors.AnalyticsError(f"indexing {log_dir}: its watch failed (see above)")


def spawn(log_dir: Path, *, interval_s: float = DEFAULT_INTERVAL_S) -> subprocess.Popen[bytes]:
    """Start ``mcgw logs index --follow log_dir`` as a child that ends with this process."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mcgw",
            "logs",
            "index",
            "--follow",
            "--interval",
            f"{interval_s:g}s",
            "--parent",
            str(os.getpid()),
            str(log_dir),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> int:
    """Stop an indexer started by :func:`spawn` (SIGTERM, then SIGKILL); its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()

"""The gateway's access log: one Cloud-Logging-shaped JSON line per request.

The request path pays for one ``list.append`` of an :class:`mcgw.logschema.AccessRecord`'s
values (a plain tuple) and one comparison of the time it already read; every
:data:`_FRAME_RECORDS`-th record also ``marshal``-s itself and the records before it
into a frame, so a record is turned into bytes within milliseconds of being made, not
at the end of its batch. The first record of a batch sets when the batch is due
(``flush_interval_s`` later: 50 ms, :data:`FLUSH_INTERVAL_S`); the first record written
after that wakes the flusher task, which frames what is left and hands the batch's
frames to a writer *process* of its own through a pipe
(:mod:`mcgw.dataplane.logwriter`). A timer, armed only while records wait, sends the
last batch when traffic stops. So under load the hand-over rides on the loop's own
turns and an idle gateway is never woken for its log (a wake-up costs this VM about
0.15 ms of CPU; a flusher ticking every 5 ms took 6 % of an idle core). That process
turns the records into ``LogEntry`` JSON lines (:class:`mcgw.logschema.AccessFormatter`)
and appends them to the current file, and acknowledges at most every
:data:`mcgw.dataplane.logwriter.ACK_INTERVAL_S` (at once when :meth:`AccessLog.flush`
asks).

Sampling (GCPBackendPolicy ``logging``, :meth:`AccessLog.set_sampling`) is decided on
the request path, before the record exists (:meth:`AccessLog.keep`), as a load balancer
samples: a request left out costs a dict lookup and an addition, not a record, its
marshalling and its formatting; the log's cost follows the sample rate.

Why a process: formatting costs five times what handing over does, and a writer
thread held the GIL against the event loop while it formatted a batch (p99 on
bench/proxy.py 5 → 13–18 ms with the log on). Formatting each record as the request
writes it, and leaving only the file writes to a thread, cost more still: the
gateway's CPU +0.6–0.8 s per 10 s and p99 +0.2–0.3 ms at 4,500 requests/s, where the
writer process stayed within the log-off runs (``bench/lograte.py``, 27 Nov 05:21, a
scratch tree as ``--baseline``, 4 rounds). The loop never waits on the pipe either:
writes are non-blocking and what the pipe does not take waits in memory (up to
``_MAX_QUEUED_BYTES``, beyond which records are counted dropped).

Guarantees: one writer per gateway worker writes its batches in order, as whole lines,
so lines never interleave or tear; files rotate by size and are kept by count and age
(:mod:`mcgw.logfiles`). :meth:`AccessLog.flush` returns once every record written
before it is on disk; :meth:`AccessLog.close` (SIGTERM, drain, the CLI's shutdown)
flushes and waits for the writer to exit. If the writer dies, a new one is started (it
first cuts a torn last line, if any) and the gateway keeps serving; the frames the dead
one had not acknowledged go to the new one again, which skips the records already on
disk (the dead one's last insertId counts the records it took, :meth:`AccessLog._resend`):
a killed writer loses no record and writes none twice. They are counted in
``stats.dropped`` instead when the gateway is closing, when the dead writer had reported
records dropped (a disk error), or when they had been sent again once already. If the
gateway dies, the writer reads EOF, writes what it has and exits: no orphan.

Files: ``<directory>/access-<UTC time the file was opened>-<pid>.jsonl`` — the gateway
worker's pid (not the writer's) keeps several workers apart, the time keeps rotations
apart and sorts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mcgw import logfiles, logschema
from mcgw.dataplane import logwriter
from mcgw.dataplane.settings import ProxySettings

log = logging.getLogger(__name__)

DEFAULT_MAX_FILE_BYTES = logfiles.DEFAULT_MAX_BYTES

FULL_RATE = 1_000_000
"""A sample rate of every request, in millionths (GCPBackendPolicy ``sampleRate``)."""

FLUSH_INTERVAL_S = 0.05
"""How long a record waits in the gateway at most while traffic flows (so how often, at
most, a batch goes to the writer). Each hand-over costs the gateway's loop a wake-up of
its flusher, a frame and a pipe write, and wakes the writer: at 4,500 records/s, 10 ms
cost the gateway ~5 µs of CPU per record and 50 ms ~2.5–4 (a paced loop with a real
writer, three runs each). ``bench/lograte.py --variants off,on`` with a 50 ms tree as
``--baseline``, 26 Nov 22:40, 4 rounds: against 10 ms in the same round, 50 ms took the
gateway's CPU down by 0.15–0.19 s per 10 s (the log's share from +0.45 to +0.29), p50 by
0.01–0.02 ms and p90 by 0.01–0.06 ms, in every round; p99 moved both ways (±0.9 ms).
Longer batches no longer show as bursts: the writer formats at idle priority and takes
at most 64 KiB a turn (before those, with the writer at normal priority, 50 ms had
measured p90 3.0–4.3 ms against 1.63–1.97 at 10 ms). 200 ms measured no cheaper than 50."""
_NO_BATCH = float("-inf")
_KICKED = float("inf")
_FRAME_RECORDS = 32
"""Records per frame, framed by the write that completes it. A frame holds the loop
~15–40 µs (``marshal.dumps`` of 32 records, 0.4 µs a record warm, ~1.1 measured in the
gateway at 9,000 requests/s), so that is what a request can be held up by; at 256 a
frame held it ~0.15 ms, which showed at p99 (``bench/lograte.py``, 27 Nov 05:51, 4
rounds: p99 0.61–0.66 ms with 32 against 0.72–0.78, lower in every round). Framed as
they come rather than at the end of a batch, the records the gateway holds are at most
32 tuples, not a batch of them: at saturation a 50 ms batch was ~1,500 tuples, each
living through several of the GC's young collections, and with its log on the gateway
served 4–12 % more requests/s framing as they come (``bench/logcost.py --rounds 5
--baseline``, 27 Nov 19:03 and 19:39: 27,581 against 24,714 and 23,239 against 22,319,
more in 9 rounds of 10; log off 31,079 against 30,661 and 30,232 against 31,332)."""
_MAX_QUEUED_BYTES = 64 * 1024 * 1024
"""Frames waiting for the pipe beyond this are dropped (and counted): a writer that
cannot keep up must not take the gateway's memory."""
_PIPE_BYTES = 1024 * 1024
"""Pipe buffer asked for (Linux's default limit for unprivileged processes)."""
_RESTART_AFTER_S = 1.0
"""A writer that dies within this of its start is restarted only this much later."""
_EXIT_WAIT_S = 10.0
"""How long close() waits for the writer to exit once it has everything."""
_FLUSH_WAIT_S = 30.0
"""How long flush() waits for the writer to acknowledge."""


@dataclass(slots=True)
class AccessLogStats:
    written: int = 0
    """Records written to disk."""
    dropped: int = 0
    """Records lost: the disk refused them, the writer died before acknowledging them,
    or it fell too far behind (each is logged)."""
    sampled_out: int = 0
    """Requests not recorded because their backend's sample rate left them out
    (decided on the request path, :meth:`AccessLog.keep`)."""
    bytes: int = 0
    restarts: int = 0
    """Writer processes started in place of one that died."""

    def to_wire(self) -> list[int]:
        return [self.written, self.dropped, self.sampled_out, self.bytes, self.restarts]

    @classmethod
    def total(cls, wires: Iterable[Sequence[int]]) -> AccessLogStats:
        """The sum of several workers' :meth:`to_wire` values."""
        sums = [sum(column) for column in zip(*wires, strict=True)] or [0] * 5
        return cls(*sums)


@dataclass(slots=True)
class _Frame:
    seq: int
    records: int
    data: bytes
    sent: int = 0
    """Bytes of ``data`` already in the pipe."""
    resent: bool = False
    """Sent again after its writer died: lost a second time, it is counted dropped."""


@dataclass(slots=True)
class _Writer:
    proc: subprocess.Popen[bytes]
    pipe: int
    """Write end of the writer's stdin (non-blocking)."""
    acks: int
    """Read end of the writer's stdout (non-blocking)."""
    started: float
    prefix: str
    """The start of its insertIds (chosen here: see :meth:`AccessLog._resend`)."""
    buffer: bytearray = field(default_factory=bytearray)
    in_flight: deque[_Frame] = field(default_factory=deque)
    """Frames (partly) in the pipe and not yet acknowledged, oldest first."""
    waiting: bool = False
    """Whether the loop watches ``pipe`` for room."""
    gone: asyncio.Future[None] | None = None
    acked: int = 0
    """Records of the frames it acknowledged."""
    clean: bool = True
    """It reported no record dropped: its insertId counter counts the records it took."""


class AccessLog:
    """Buffered writer of access records, through a writer process.

    Args:
        directory: where the files go (created if missing); None disables logging.
        project_id: the Cloud project named in every entry.
        flush_interval_s: how long a record may wait in the gateway's memory.
        max_file_bytes: size at which a new file is started (a single batch larger
            than this still goes whole lines into one file); ``retention`` wins.
        retention: file size, count and age limits (default: :class:`logfiles.Retention`
            with ``max_file_bytes``).
    """

    __slots__ = (
        "_batch",
        "_closing",
        "_credit",
        "_due",
        "_enabled",
        "_files",
        "_flusher",
        "_queue",
        "_queued_bytes",
        "_restart",
        "_retention",
        "_seq",
        "_settled",
        "_stop",
        "_timer",
        "_waiters",
        "_wake",
        "_writer",
        "directory",
        "flush_interval_s",
        "project_id",
        "sampling",
        "stats",
    )

    def __init__(
        self,
        directory: Path | None,
        project_id: str,
        *,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        retention: logfiles.Retention | None = None,
    ) -> None:
        self.directory = directory
        self.project_id = project_id
        self.flush_interval_s = flush_interval_s
        self.stats = AccessLogStats()
        self._retention = (
            retention if retention is not None else logfiles.Retention(max_bytes=max_file_bytes)
        )
        self._enabled = directory is not None
        self._closing = False
        self._batch: list[logschema.AccessValues] = []
        self.sampling: dict[str, int] = {}
        """Backend name → share logged in millionths, for backends not fully logged
        (empty, so false, when every request is logged: the request path asks
        :meth:`keep` only if not)."""
        self._credit: dict[str, int] = {}
        """Backend name → its sampling accumulator, in millionths (see :meth:`keep`)."""
        self._files: list[Path] = []
        self._queue: deque[_Frame] = deque()
        """Frames not yet wholly in the pipe, oldest first."""
        self._queued_bytes = 0
        self._seq = 0
        """Number of the last frame made."""
        self._settled = 0
        """Every frame up to this one is on disk or counted dropped."""
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._writer: _Writer | None = None
        self._restart: asyncio.TimerHandle | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        """Set when the batch is due (or on close): the flusher sends it."""
        self._due = _NO_BATCH
        """Monotonic time the batch in memory is due; _NO_BATCH: none yet (the next
        record starts one), _KICKED: the flusher was woken for it."""
        self._timer: asyncio.TimerHandle | None = None
        """Sends the batch when it is due and no record came to notice (traffic stopped)."""

    @classmethod
    def from_settings(cls, settings: ProxySettings) -> AccessLog:
        """The access log a gateway with ``settings`` writes (disabled without a directory)."""
        return cls(
            settings.access_log_dir,
            settings.project_id,
            retention=logfiles.Retention(
                max_bytes=settings.access_log_max_bytes,
                keep_files=settings.access_log_keep_files,
                max_age_s=settings.access_log_max_age_s,
            ),
        )

    @property
    def files(self) -> list[Path]:
        """Every file written (as the writer acknowledged), oldest first (some may since
        have been removed)."""
        return list(self._files)

    @property
    def max_file_bytes(self) -> int:
        return self._retention.max_bytes

    @property
    def writer_pid(self) -> int | None:
        """The writer process's pid, while one runs."""
        return self._writer.proc.pid if self._writer is not None else None

    def set_sampling(self, rates: Mapping[str, int]) -> None:
        """Log only ``rate`` millionths of the requests of each backend named (0: none).

        Backends not named are logged in full. Called on the loop when a new route
        table is served; it applies from the next request on (a backend's credit
        carries over).
        """
        self.sampling = {name: max(0, rate) for name, rate in rates.items() if rate < FULL_RATE}
        # A backend logged in full again, or gone, starts afresh if sampled later.
        self._credit = {k: v for k, v in self._credit.items() if k in self.sampling}

    def keep(self, backend: str) -> bool:
        """Whether to log a request to ``backend`` (counting it in ``stats.sampled_out``
        if not), deterministically: an accumulator per backend gains the rate per
        request and logs one when it reaches a million, so 250000 logs the 1st, 5th,
        9th… request and exactly a quarter. A backend's first request is logged (unless
        its rate is 0)."""
        rate = self.sampling.get(backend)
        if rate is None:
            return True
        level = self._credit.get(backend, FULL_RATE - rate if rate else 0) + rate
        if level >= FULL_RATE:
            self._credit[backend] = level - FULL_RATE
            return True
        self._credit[backend] = level
        self.stats.sampled_out += 1
        return False

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def backlog_bytes(self) -> int:
        """Bytes of records waiting in the gateway's memory because the writer's pipe is
        full (a writer busy or stalled); past ``_MAX_QUEUED_BYTES`` records are dropped."""
        return self._queued_bytes

    def write(self, record: logschema.AccessValues, now: float | None = None) -> None:
        """Queue one record (an :class:`mcgw.logschema.AccessRecord` or, as the hot path
        builds it, a plain tuple of its values); never blocks, never fails. Sampling is
        the caller's (:meth:`keep`, asked before the record is made).

        ``now`` is ``time.monotonic()`` if the caller has it at hand (the request path
        does): it tells whether the batch is due."""
        if self._enabled:
            batch = self._batch
            batch.append(record)
            if len(batch) >= _FRAME_RECORDS:
                self._frame()
            if now is None:
                now = time.monotonic()
            if now >= self._due:
                self._on_due(now)

    def _on_due(self, now: float) -> None:
        """A record found the batch due, or started one (``_due`` was _NO_BATCH)."""
        if self._wake is None:
            return  # not started: start() sends what accumulated
        if self._due == _NO_BATCH:
            self._due = now + self.flush_interval_s
            self._timer = asyncio.get_running_loop().call_later(self.flush_interval_s, self._kick)
        else:
            self._kick()

    def _disarm(self) -> None:
        """Cancel the timer that would send the batch (it goes now, or never)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _kick(self) -> None:
        """Wake the flusher for the batch (once per batch)."""
        self._due = _KICKED
        self._disarm()
        if self._wake is not None:
            self._wake.set()

    async def start(self) -> None:
        """Start the writer process and the periodic flusher. Call once, from the loop
        that calls write."""
        if not self._enabled or self._flusher is not None:
            return
        if self._writer is None:
            self._spawn()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        if self._batch or self._queue:
            self._wake.set()  # written before start
        self._flusher = asyncio.get_running_loop().create_task(
            self._run(self._stop), name="access-log flusher"
        )

    async def flush(self) -> None:
        """Write every record queued so far; return once the writer has them on disk
        (or the one started after it died does, or they are counted dropped)."""
        self._send()
        target = self._seq
        if self._settled >= target:
            return
        # The writer acknowledges lazily: ask it to answer now.
        self._enqueue("f", {})
        self._pump()
        target = self._seq
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        try:
            await asyncio.wait_for(waiter, _FLUSH_WAIT_S)
        except TimeoutError:
            # A writer that takes in nothing (stopped, wedged) must not hang a shutdown
            # or a query; what it lost is counted when its pipe breaks.
            log.error("access log: the writer did not acknowledge in %.0f s", _FLUSH_WAIT_S)

    async def close(self) -> None:
        """Write everything queued, wait for the writer to exit; later writes are ignored."""
        if self._flusher is not None and self._stop is not None:
            # Not cancel(): the last flush must not be cut in the middle of a batch.
            self._stop.set()
            if self._wake is not None:
                self._wake.set()
            await self._flusher
            self._flusher = None
        if self._enabled:
            await self.flush()
        self._enabled = False
        self._closing = True
        self._disarm()
        if self._restart is not None:
            self._restart.cancel()
            self._restart = None
        writer = self._writer
        if writer is None:
            self._drop_queue()
            return
        # EOF tells the writer to finish; it exits once its last batch is on disk.
        self._unwatch_pipe(writer)
        with contextlib.suppress(OSError):
            os.close(writer.pipe)
        writer.pipe = -1
        assert writer.gone is not None
        try:
            await asyncio.wait_for(asyncio.shield(writer.gone), _EXIT_WAIT_S)
        except TimeoutError:
            log.error("access log: writer pid %d did not exit; killed", writer.proc.pid)
            self._died(writer)
        self._drop_queue()

    async def _run(self, stop: asyncio.Event) -> None:
        wake = self._wake
        assert wake is not None
        while not stop.is_set():
            await wake.wait()
            wake.clear()
            self._send()

    # -- handing records over --------------------------------------------------------

    def _frame(self) -> None:
        """Frame the records not yet framed; the frame waits for the next hand-over."""
        batch, self._batch = self._batch, []
        self._enqueue("r", batch)

    def _send(self) -> None:
        """Hand the batch to the writer: frame what is left of it and fill the pipe."""
        # Records written from here on start the next batch.
        self._due = _NO_BATCH
        self._disarm()
        if self._batch:
            self._frame()
        if self._queue and self._writer is None and self._restart is None:
            self._spawn()
        self._pump()

    def _enqueue(self, kind: str, body: Sequence[tuple[object, ...]] | dict[str, object]) -> None:
        records = len(body) if kind == "r" else 0
        if records and self._queued_bytes > _MAX_QUEUED_BYTES:
            self.stats.dropped += records
            log.error("access log: writer too far behind, %d records dropped", records)
            return
        self._seq += 1
        try:
            data = logwriter.frame((kind, self._seq, body))
        except ValueError:  # marshal takes exact types only: an AccessRecord (a tuple
            # subclass, as tests and tools write), a str or int subclass somewhere
            data = logwriter.frame((kind, self._seq, _plain(body)))
        self._queue.append(_Frame(self._seq, records, data))
        self._queued_bytes += len(data)

    def _pump(self) -> None:
        """Move queued frames into the pipe until it is full (then the loop tells us)."""
        writer = self._writer
        if writer is None or writer.pipe < 0:
            return
        queue = self._queue
        while queue:
            head = queue[0]
            try:
                sent = os.write(writer.pipe, memoryview(head.data)[head.sent :])
            except BlockingIOError:
                sent = 0
            except OSError:
                self._died(writer)
                return
            if sent and not head.sent:
                writer.in_flight.append(head)
            head.sent += sent
            if head.sent < len(head.data):
                if not writer.waiting:
                    writer.waiting = True
                    asyncio.get_running_loop().add_writer(writer.pipe, self._pump)
                return
            queue.popleft()
            self._queued_bytes -= len(head.data)
        self._unwatch_pipe(writer)

    def _unwatch_pipe(self, writer: _Writer) -> None:
        if writer.waiting:
            writer.waiting = False
            asyncio.get_running_loop().remove_writer(writer.pipe)

    def _drop_queue(self) -> None:
        lost = sum(frame.records for frame in self._queue)
        if lost:
            self.stats.dropped += lost
            log.error("access log: %d records lost: no writer", lost)
        self._queue.clear()
        self._queued_bytes = 0
        self._settle(self._seq)

    # -- the writer process ----------------------------------------------------------

    def _spawn(self) -> None:
        self._restart = None
        if self._closing:
            return
        assert self.directory is not None
        loop = asyncio.get_running_loop()
        prefix = logschema.new_insert_id_prefix()
        config = {
            "directory": str(self.directory),
            "project_id": self.project_id,
            "prefix": prefix,
            "pid": os.getpid(),
            "max_bytes": self._retention.max_bytes,
            "keep_files": self._retention.keep_files,
            "max_age_s": self._retention.max_age_s,
        }
        source, pipe = os.pipe()
        acks, sink = os.pipe()
        try:
            with contextlib.suppress(OSError):  # a bigger pipe: fewer wake-ups
                fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
            proc = subprocess.Popen(
                [sys.executable, "-m", "mcgw.dataplane.logwriter", json.dumps(config)],
                stdin=source,
                stdout=sink,
                # A process group of its own, so a terminal's Ctrl-C reaches only the
                # gateway (which then flushes and closes the pipe in order); but not a
                # session of its own: Linux groups a session's tasks for CPU shares
                # (autogroup), and a writer in a group of its own took an equal share
                # against the gateway whatever its priority (see logwriter's docstring).
                process_group=0,
            )
        except OSError:
            for fd in (source, pipe, acks, sink):
                os.close(fd)
            log.exception("access log: cannot start the writer process")
            self._restart = loop.call_later(_RESTART_AFTER_S, self._spawn)
            return
        os.close(source)
        os.close(sink)
        os.set_blocking(pipe, False)
        os.set_blocking(acks, False)
        writer = _Writer(proc, pipe, acks, time.monotonic(), prefix, gone=loop.create_future())
        self._writer = writer
        loop.add_reader(acks, self._on_acks, writer)
        self._pump()

    def _on_acks(self, writer: _Writer) -> None:
        try:
            data = os.read(writer.acks, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._died(writer)
            return
        self._take_acks(writer, data)

    def _take_acks(self, writer: _Writer, data: bytes) -> None:
        writer.buffer += data
        stats = self.stats
        for _, seq, written, dropped, size, opened in logwriter.frames(writer.buffer):
            stats.written += written
            stats.dropped += dropped
            stats.bytes += size
            if dropped:
                writer.clean = False
            self._files.extend(Path(path) for path in opened)
            in_flight = writer.in_flight
            while in_flight and in_flight[0].seq <= seq:
                writer.acked += in_flight.popleft().records
            self._settle(seq)

    def _last_acks(self, writer: _Writer) -> None:
        """Take what a writer that ended acknowledged before it did (the pipe holds all
        of it once the process is reaped): counts, and records it dropped."""
        while True:
            try:
                data = os.read(writer.acks, 65536)
            except OSError:  # BlockingIOError too: not at its end, but nothing left
                return
            if not data:
                return
            self._take_acks(writer, data)

    def _settle(self, seq: int) -> None:
        if seq <= self._settled:
            return
        self._settled = seq
        waiting = []
        for target, waiter in self._waiters:
            if target <= seq:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                waiting.append((target, waiter))
        self._waiters = waiting

    def _died(self, writer: _Writer) -> None:
        """The writer's pipe broke (it exited, was killed, or we end it): reap it, count
        what it had not acknowledged, and start another unless closing."""
        if self._writer is not writer:
            return
        self._writer = None
        loop = asyncio.get_running_loop()
        self._unwatch_pipe(writer)
        loop.remove_reader(writer.acks)
        if writer.pipe >= 0:
            with contextlib.suppress(OSError):
                os.close(writer.pipe)
        proc = writer.proc
        try:
            # Its end of the pipe closed: it is exiting, a moment's wait.
            proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)  # wedged (close() gave up on it)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2.0)
        if writer.acks >= 0:
            self._last_acks(writer)
            with contextlib.suppress(OSError):
                os.close(writer.acks)
        # A frame cut off in the pipe is in flight: it goes again whole, or is lost.
        if self._queue and self._queue[0].sent:
            head = self._queue.popleft()
            self._queued_bytes -= len(head.data)
        if writer.gone is not None and not writer.gone.done():
            writer.gone.set_result(None)
        # Frames sent again that this writer had not even taken: what to skip of them
        # went with it, so they are lost, not written twice.
        lost = self._drop_resent()
        # Not while it may still be running (a write of its could land after the next
        # writer has looked at the files), nor when closing.
        gone = proc.returncode is not None
        outcome = self._resend(writer) if gone and not self._closing else None
        if outcome is None:
            lost += sum(frame.records for frame in writer.in_flight)
            if writer.in_flight:
                self._settle(writer.in_flight[-1].seq)
            again = 0
        else:
            again, twice = outcome
            lost += twice
        if self._closing and proc.returncode == 0 and not lost:
            return
        self.stats.dropped += lost
        log.error(
            "access log: writer pid %d ended (status %s); %d records lost, %d sent again",
            proc.pid,
            proc.returncode,
            lost,
            again,
        )
        if self._closing:
            return
        self.stats.restarts += 1
        quick = time.monotonic() - writer.started < _RESTART_AFTER_S
        self._restart = loop.call_later(_RESTART_AFTER_S if quick else 0.0, self._spawn)

    def _drop_resent(self) -> int:
        """Take the frames sent again after a writer died off the head of the queue;
        returns their records."""
        lost = 0
        queue = self._queue
        while queue and queue[0].resent:
            frame = queue.popleft()
            self._queued_bytes -= len(frame.data)
            lost += frame.records
            self._settle(frame.seq)
        return lost

    def _resend(self, writer: _Writer) -> tuple[int, int] | None:
        """Queue again, first, the frames a dead writer had not acknowledged, behind a
        frame that tells the next writer which of their records the dead one wrote: as
        it counts the records it takes, in the order sent, in its insertIds, its last
        insertId's counter less the records it acknowledged is how many
        (:meth:`logwriter.Writer.handle`).

        Frames it had been sent again (they come first) are lost a second time and not
        sent a third (a record that kills writers would kill them all); the rest are
        sent again past them: the dead writer took those only after taking all of
        them, and counted them. Returns the records sent again and those lost; None,
        sending nothing again, when it reported records dropped (its counter then
        skipped)."""
        if not writer.clean:
            return None
        frames = list(writer.in_flight)
        twice = [frame for frame in frames if frame.resent]
        fresh = frames[len(twice) :]
        lost = sum(frame.records for frame in twice)
        if twice:
            self._settle(twice[-1].seq)
        if not fresh:
            return 0, lost
        # Numbered as the last frame settled: the next writer's acknowledgement of it
        # settles nothing new (a higher number would settle the frames behind it).
        seq = fresh[0].seq - 1
        records = sum(frame.records for frame in fresh)
        base = (writer.acked + lost) & 0xFFFFFFFF
        resume = {"prefix": writer.prefix, "base": base, "records": records}
        again = [_Frame(seq, 0, logwriter.frame(("s", seq, resume)), resent=True)]
        for frame in fresh:
            again.append(_Frame(frame.seq, frame.records, frame.data, resent=True))
        self._queue.extendleft(reversed(again))
        self._queued_bytes += sum(len(frame.data) for frame in again)
        return records, lost


def _plain(value: object) -> object:
    """``value`` with every str, bytes, int and float subclass made the plain type."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_plain(item) for item in value]
        return items if isinstance(value, list) else tuple(items)
    return str(value)

"""The access log's writer process: formats and writes what one gateway worker
sends it (``python -m mcgw.dataplane.logwriter <config JSON>``).

Formatting a LogEntry line costs the CPU five times what handing the record over does;
done in a thread of the gateway it held the GIL against the event loop and tripled the
gateway's p99. Here it runs in a process of its own, which the kernel schedules like
any other, so the gateway's share per request is one ``list.append``, per 32 records
one ``marshal.dumps``, and per batch the pipe writes (:mod:`mcgw.dataplane.accesslog`).

Wire (both ways): frames of a 4-byte big-endian length and a ``marshal`` payload.

* stdin, gateway → writer: ``("r", seq, [record tuple, …])`` — records in the field
  order of :class:`mcgw.logschema.AccessRecord`, already sampled by the gateway;
  ``("f", seq, {})`` — acknowledge now; ``("s", seq, {"prefix": p, "base": n,
  "records": m})`` — the ``m`` records of the frames that follow were sent to a writer
  that died (its insertIds began with ``p``; it had acknowledged ``n`` records): skip
  those it wrote.
* stdout, writer → gateway: ``("a", seq, written, dropped, bytes, (new file, …))`` —
  every frame up to ``seq`` is on disk (or counted dropped); the counts are those since
  the previous acknowledgement. Sent at most every :data:`ACK_INTERVAL_S` while frames
  keep coming, and at once for an ``"f"`` frame: each acknowledgement wakes the
  gateway's loop, which costs it CPU.

The process ends on EOF of stdin, having written everything it was sent: the gateway
closes the pipe on shutdown, and the kernel closes it when the gateway dies, so a
writer never outlives its gateway. It runs in a process group of its own, so that a
terminal's Ctrl-C reaches only the gateway, which then flushes and closes the pipe in
order.

The work runs in a thread at Linux's lowest CPU priority (SCHED_IDLE): a request
arriving while the writer formats takes the CPU from it, at once or at the writer's
next offer of it (every :data:`_PAUSE_LINES` lines), so the writer no longer shows in
the gateway's latency (4,500 requests/s, writer on the gateway's core, log indexer
off, three alternating rounds: p90/p99 1.03–1.11/2.19–2.43 ms, without the log
1.01–1.10/2.39–3.94, the writer at normal priority 1.51–1.98/2.98–9.92;
docs/access-log-cost.md). That takes the writer staying in the gateway's
session: Linux shares CPU between sessions first (autogroup), and a writer in a session
of its own took an equal share against the gateway whatever its priority, as measured
before. A gateway at full load leaves a SCHED_IDLE thread no CPU, so the main thread
(normal priority) looks every :data:`RESCUE_CHECK_S` and takes over while frames wait
and the worker made no progress: at full load the writer keeps up, as before.

``MCGW_LOG_WRITER_CPUS`` (e.g. ``0`` or ``0,2-3``) sets the CPUs the writer runs on;
by default it shares the gateway's (it inherits its affinity; :mod:`mcgw.cpus`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import marshal
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mcgw import cpus, logfiles, logschema

HEADER_BYTES = 4
CPUS_ENV = cpus.WRITER_ENV

ACK_INTERVAL_S = 0.05
"""Longest an acknowledgement waits for more frames to answer with it. The gateway only
needs acknowledgements to report counts and to know what a writer that died had not
written; a frame asking for it (``flush``) is answered at once."""

_READ_BYTES = 1 << 16
"""Most taken in per turn (a few frames, a few hundred records): the worker holds the
turn while it writes what it read, and a starved worker (see :meth:`_Loop.rescue`)
finishes a turn at its own priority first — at a megabyte a turn that was 17 s."""
PACE_S = 0.05
"""Least time between two reads of the worker while frames keep coming. A read that
finds the pipe empty blocks, and each gateway write then wakes the writer: ~100
wake-ups a second at the gateway's hand-over interval, and a wake-up costs this VM
~0.3 ms of CPU. Pausing after a read lets frames gather in the pipe (1 MiB, see
:mod:`mcgw.dataplane.accesslog`) without waking anyone, and each turn formats more
at once. An idle writer still sleeps in its read until traffic comes."""
RESCUE_CHECK_S = 0.1
"""How often the main thread looks whether the worker thread is starved."""
_LATE_S = 2 * RESCUE_CHECK_S
"""A look that comes this much after the last one was held up by the worker (see
:meth:`_Loop.rescue`)."""
_GC_THRESHOLD = 200_000
"""Allocations between the writer's young-generation collections (see main)."""
_CHUNK_LINES = 256
"""Lines formatted, encoded and written at a time: the text of a whole batch (thousands
of ~1 KB lines) would be megabytes allocated and freed per batch; a chunk stays in
memory the allocator keeps, and one write per chunk costs little more than one per
batch (fewer lines per write measured more system time)."""
_PAUSE_LINES = 16
"""Lines the idle-priority worker formats between offers of its CPU (``sched_yield``),
~0.1 ms of work. A gateway woken on the writer's core can find itself not picked at
that instant: Linux's scheduler (EEVDF) then lets the running task go on until it
sleeps, yields or the next timer tick (4 ms at 250 Hz), and 256 lines took ~1.8 ms
without a pause. At 9,000 requests/s with the writer beside the gateway (indexer off,
``bench/lograte.py --baseline``, 27 Nov 14:51, 3 rounds), p99 1.47–1.59 ms against
1.96–2.13 without the pauses and 1.28–4.55 with the log off; the gateway's time waiting
runnable for its core 0.04–0.07 s per 10 s against 0.07–0.08. The rescuer does not
pause: it runs when the gateway leaves no CPU, and must keep up."""


def frame(payload: Any) -> bytes:
    """One frame of the wire: length, then ``marshal`` of plain values."""
    data = marshal.dumps(payload)
    return len(data).to_bytes(HEADER_BYTES, "big") + data


def frames(buffer: bytearray) -> list[Any]:
    """Take every complete frame off the front of ``buffer`` (the rest stays)."""
    out: list[Any] = []
    start, end = 0, len(buffer)
    while end - start >= HEADER_BYTES:
        size = int.from_bytes(buffer[start : start + HEADER_BYTES], "big")
        stop = start + HEADER_BYTES + size
        if stop > end:
            break
        out.append(marshal.loads(buffer[start + HEADER_BYTES : stop]))
        start = stop
    del buffer[:start]
    return out


class Writer:
    """The writer's state: files, formatter, and what is yet to be reported."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        pid = int(config["pid"])
        self.files = logfiles.RotatingFiles(
            Path(config["directory"]),
            "access",
            logfiles.Retention(
                max_bytes=int(config["max_bytes"]),
                keep_files=int(config["keep_files"]),
                max_age_s=float(config["max_age_s"]),
            ),
            pid=pid,
        )
        self.formatter = logschema.AccessFormatter(
            str(config["project_id"]), pid=pid, prefix=str(config.get("prefix", ""))
        )
        self._skip = 0
        """Records still to come that a writer before this one had written already
        (see :meth:`_resume`)."""
        self._reported_files = 0
        self._seq = 0
        """The last frame handled."""
        self._acked = 0
        """The last frame acknowledged."""
        self._counts = [0, 0, 0]
        """Written, dropped, bytes since the last acknowledgement."""

    def handle(self, messages: list[Any], pause: Callable[[], object] | None = None) -> bool:
        """Write the records of ``messages``, in order, and count them for the next
        acknowledgement (:meth:`ack`). Returns whether one was asked for now.

        ``pause``, if given, is called after every :data:`_PAUSE_LINES` lines formatted
        (the worker's ``sched_yield``)."""
        block = self.formatter.block if pause is None else _pausing(self.formatter.block, pause)
        files = self.files
        written = dropped = size = 0
        failed: OSError | None = None
        urgent = False
        for message in messages:
            kind, self._seq, body = message  # seq: the last one is acknowledged
            if kind == "f":
                urgent = True
                continue
            if kind == "s":
                self._skip = min(self._resume(body["prefix"], body["base"]), body["records"])
                continue
            records: Sequence[logschema.AccessValues] = body
            if self._skip:
                on_disk = min(self._skip, len(records))
                self._skip -= on_disk
                self.formatter.skip(on_disk)  # its counter counts every record taken
                written += on_disk
                records = records[on_disk:]
            if failed is not None:
                dropped += len(records)
                continue
            for start in range(0, len(records), _CHUNK_LINES):
                chunk = records[start : start + _CHUNK_LINES]
                try:
                    size += files.write_block(block(chunk).encode())
                except OSError as exc:
                    on_disk = int(getattr(exc, "written_lines", 0))
                    written += on_disk
                    dropped += len(records) - start - on_disk
                    failed = exc
                    # Lines were counted that are not on disk: the counter under this
                    # prefix would tell a writer after us they were (see _resume).
                    self.formatter.new_prefix()
                    break
                written += len(chunk)
        if failed is not None:
            print(f"mcgw access log: {dropped} records lost: {failed}", file=sys.stderr)
        counts = self._counts
        counts[0] += written
        counts[1] += dropped
        counts[2] += size
        return urgent

    def _resume(self, prefix: str, base: int) -> int:
        """How many of the records sent again after a writer died that writer had
        written: the highest insertId counter under ``prefix`` (the one the gateway
        gave it) at the end of its files, less ``base``, the records it had
        acknowledged. Zero if no file ends in one of its lines (it wrote none).

        Sound because that writer formatted the records in the order sent, counting
        each (those another writer had written too, :meth:`AccessFormatter.skip`),
        wrote them in that order, and took a new prefix when a write failed."""
        counters = [logschema.insert_id_counter(line, prefix) for line in self.files.last_lines()]
        last = max((c for c in counters if c is not None), default=None)
        if last is None:
            return 0
        on_disk = (last - base) & 0xFFFFFFFF
        return on_disk if on_disk < 0x80000000 else 0  # behind base: not ours to skip

    @property
    def unacknowledged(self) -> bool:
        """Frames were handled since the last acknowledgement."""
        return self._seq != self._acked

    def ack(self) -> bytes:
        """The acknowledgement of every frame handled so far, with the counts since the
        last one."""
        opened = tuple(str(path) for path in self.files.files[self._reported_files :])
        self._reported_files = len(self.files.files)
        written, dropped, size = self._counts
        self._counts = [0, 0, 0]
        self._acked = self._seq
        return frame(("a", self._seq, written, dropped, size, opened))


def _pausing(
    block: Callable[[Sequence[logschema.AccessValues]], str], pause: Callable[[], object]
) -> Callable[[Sequence[logschema.AccessValues]], str]:
    """``block``, formatting :data:`_PAUSE_LINES` lines at a time with ``pause`` after
    each piece."""

    def paused(records: Sequence[logschema.AccessValues]) -> str:
        pieces = []
        for start in range(0, len(records), _PAUSE_LINES):
            pieces.append(block(records[start : start + _PAUSE_LINES]))
            pause()
        return "".join(pieces)

    return paused


class _Loop:
    """:func:`serve`'s state. :meth:`step` is one turn: take in what arrived, write it,
    acknowledge when due; whichever thread holds :attr:`turn` runs it."""

    def __init__(self, writer: Writer, source: int, sink: int) -> None:
        self.writer = writer
        self.source = source
        self.sink = sink
        self.buffer = bytearray()
        # One read buffer for the process: os.read(n) allocates n bytes per call (at
        # 1 MiB that was an mmap, mremap and munmap per wake-up).
        self.chunk = bytearray(_READ_BYTES)
        self.reporting = True
        self.acked_at = time.monotonic()
        self.done = False
        """EOF seen and everything written."""
        self.turns = 0
        """Turns taken so far: the rescuer's sign of progress."""
        self.turn = threading.Lock()
        self.wanted = False
        """The rescuer waits for :attr:`turn`: the worker lets it have the next one."""
        self.handback = threading.Event()
        self.error: BaseException | None = None

    def acknowledge(self) -> None:
        ack = self.writer.ack()
        self.acked_at = time.monotonic()
        if self.reporting:
            try:
                os.write(self.sink, ack)  # small, and the gateway always reads: no partial write
            except OSError:
                self.reporting = False  # the gateway is gone: finish writing what we have

    def step(self, pause: Callable[[], object] | None = None) -> int:
        """One turn; returns the bytes read (-1: none, the turn acknowledged).
        ``pause``: as :meth:`Writer.handle`'s."""
        writer = self.writer
        self.turns += 1
        if writer.unacknowledged:
            # Wait for more frames to answer with the same acknowledgement, not longer.
            left = self.acked_at + ACK_INTERVAL_S - time.monotonic()
            if left <= 0 or not select.select([self.source], [], [], left)[0]:
                self.acknowledge()
                return -1
        size = os.readv(self.source, [self.chunk])
        self.buffer += memoryview(self.chunk)[:size]
        messages = frames(self.buffer)
        if messages and (
            writer.handle(messages, pause) or time.monotonic() - self.acked_at >= ACK_INTERVAL_S
        ):
            self.acknowledge()
        if not size:
            if writer.unacknowledged:
                self.acknowledge()
            writer.files.close()
            self.done = True
        return size

    def work(self) -> None:
        """The worker thread: every turn, at the lowest CPU priority (SCHED_IDLE)."""
        try:
            with contextlib.suppress(AttributeError, OSError):  # not Linux: normal priority
                os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            while True:
                if self.wanted:
                    self.handback.wait()
                with self.turn:
                    if self.done:
                        return
                    began = time.monotonic()
                    size = self.step(os.sched_yield)
                if 0 < size < _READ_BYTES:  # the pipe is drained: let frames gather
                    pause = began + PACE_S - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
        except BaseException as exc:
            self.error = exc

    def rescue(self, worker: threading.Thread) -> None:
        """The main thread, at normal priority: when frames (or the end) wait and the
        worker took no turn since the last look, it is starved of CPU (SCHED_IDLE
        yields to every other task, and a gateway at full load leaves it none), so take
        the turns until nothing waits: at full load the writer then runs at the
        gateway's priority, as it must to keep up, and nothing is lost.

        A look that comes late is the same sign. The main thread needs the GIL to look,
        and a starved worker can be holding it: it gives it up only once it runs again.
        Linux 6.18 gave a SCHED_IDLE thread beside a spinning one a slice about every
        1.4 s, so each look then saw a turn or two taken and, by turns alone, never
        took over (20,000 records were not on disk after 20 s)."""
        seen = -1
        looked = time.monotonic()
        while worker.is_alive():
            worker.join(RESCUE_CHECK_S)
            now = time.monotonic()
            late = now - looked > _LATE_S
            looked = now
            if (late or self.turns == seen) and worker.is_alive() and self._waiting():
                self.handback.clear()
                self.wanted = True
                try:
                    with self.turn:
                        while not self.done and self._waiting():
                            self.step()
                finally:
                    self.wanted = False
                    self.handback.set()
                looked = time.monotonic()
            seen = self.turns

    def _waiting(self) -> bool:
        """Whether frames or the end of input wait to be read."""
        return bool(select.select([self.source], [], [], 0)[0])


def serve(config: Mapping[str, Any], source: int = 0, sink: int = 1, *, idle: bool = False) -> int:
    """Write what arrives on ``source`` until EOF; acknowledge on ``sink``.

    ``idle``: do the work in a thread at Linux's lowest CPU priority (SCHED_IDLE), the
    calling thread standing by to take over while that one is starved (see
    :meth:`_Loop.rescue`)."""
    loop = _Loop(Writer(config), source, sink)
    loop.writer.files.mend()  # a writer before us may have been killed mid-line
    if not idle:
        while not loop.done:
            loop.step()
        return 0
    worker = threading.Thread(target=loop.work, name="log writer", daemon=True)
    worker.start()
    loop.rescue(worker)
    if loop.error is not None:
        raise loop.error
    return 0


def main(argv: list[str]) -> int:
    # Our parent ends us by closing the pipe: a Ctrl-C must not cut a batch in half.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config = json.loads(argv[0])
    cpus.pin_from_env(CPUS_ENV, "mcgw access log")
    # Every record arrives as a tuple the collector tracks, and with the default
    # threshold (700 allocations) most were traversed, some twice, before their batch
    # was written and freed: ~9 % of the writer's CPU. Nothing here makes cycles per
    # record, so collect rarely; what start-up made is frozen out of every collection.
    gc.freeze()
    gc.set_threshold(_GC_THRESHOLD)
    return serve(config, idle=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Does the log's idle-priority work delay a task woken on its core? The writer's and the
indexer's work in isolation, without a gateway, a load generator or a backend.

Usage: python bench/neighbours.py [--variants none,indexer,writer,unpaused,indexer+writer]
                                  [--rounds 2] [--duration 12] [--period 110]

A *gateway* process on CPU 1 is woken every ``--period`` µs by a sender on CPU 0 (a
timestamp through a socket pair, as a request arrives), does a fixed, request-like piece
of Python work (dict look-ups over a ~3 MB table, small allocations, ~40 µs) and waits
again: at the default period its core is ~40 % busy, as mcgw's at 9,000 requests/s.
Beside it on CPU 1 run the neighbours of a variant, at ``SCHED_IDLE`` as mcgw runs them:

* ``indexer``: the log indexer's pass, back to back (harsher than the indexer, which
  passes once a batch has gathered): 40,000 access lines (~48 MB) handed to DuckDB
  through pipes (``ingest._read_range``) with the indexer's settings (one thread, its
  memory limit, every commit a checkpoint) into a cache file, committed, then dropped;
* ``writer``: every 50 ms, 450 access records formatted and written by mcgw's writer
  (``logwriter.Writer.handle``, pausing as its idle-priority worker does: 9,000 lines a
  second, the writer's work at that rate);
* ``unpaused``: as ``writer``, without the worker's offers of the CPU every 16 lines
  (the writer before 27 Nov 15:00; its rescuer still works so);
* ``spinner``: a busy loop (a neighbour that never sleeps);
* ``none``; and ``a+b`` runs both.

Reported per variant, over its rounds: the wake-up delay (from the sender's timestamp to
the gateway running; p50/p90/p99/p99.9/max, and how many exceeded 0.5 ms) and how long
the fixed work took (p50/p90/p99: a neighbour that shares the core's caches makes it
slower). Variants alternate, in an order that turns every round. Reports land in
``bench/results/neighbours-<time>.md``. Every process it starts is stopped by its PID
(its process group) when its variant ends.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import logs  # bench/logs.py: SEED.md-like access records
import proxy  # bench/proxy.py: where reports go

from mcgw import logschema

GATEWAY_CPU, SENDER_CPU = 1, 0
LINES = 40_000
"""Access lines of one indexer pass by default (~48 MB; ``--lines``: the indexer's
batches beside a busy gateway are ~175,000)."""
WRITER_EVERY_S = 0.05
WRITER_LINES = 450
"""Lines the writer formats every :data:`WRITER_EVERY_S` (9,000 a second)."""
SLOW_US = 500
STAMP = struct.Struct("q")
FORMATTER = logschema.AccessFormatter("bench-project")


def _idle() -> None:
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _indexer(work: Path) -> None:
    import duckdb

    from mcgw.analytics import indexer, ingest

    lines = work / "lines.jsonl"
    end = lines.stat().st_size
    cache = work / "cache.duckdb"
    cache.unlink(missing_ok=True)
    _idle()
    con = duckdb.connect(str(cache))
    ingest.configure(con)
    con.execute("SET threads = 1")
    con.execute(f"SET memory_limit = '{indexer.MEMORY_LIMIT}'")
    con.execute(f"SET checkpoint_threshold = '{indexer.CHECKPOINT_THRESHOLD}'")
    while True:
        con.execute("BEGIN")
        ingest._read_range(con, str(lines), 0, end, created=False)
        con.execute("COMMIT")
        con.execute("DROP TABLE logs")
        con.execute("CHECKPOINT")


def _writer(work: Path, pause: Callable[[], object] | None = os.sched_yield) -> None:
    from mcgw.dataplane import logwriter

    records = [tuple(r) for r in logs.records(WRITER_LINES)]
    config = {"directory": str(work / "written"), "pid": os.getpid(), "project_id": "bench"}
    retention = {"max_bytes": 64 << 20, "keep_files": 2, "max_age_s": 0}
    writer = logwriter.Writer(config | retention)
    _idle()
    seq = 0
    while True:
        began = time.monotonic()
        seq += 1
        writer.handle([("r", seq, records)], pause)
        time.sleep(max(0.0, WRITER_EVERY_S - (time.monotonic() - began)))


def _unpaused_writer(work: Path) -> None:
    _writer(work, pause=None)


def _spinner(work: Path) -> None:
    _idle()
    while True:
        pass


NEIGHBOURS: dict[str, Callable[[Path], None]] = {
    "indexer": _indexer,
    "writer": _writer,
    "unpaused": _unpaused_writer,
    "spinner": _spinner,
}

TABLE: dict[str, tuple[int, str, dict[str, int]]] = {
    f"k{i}": (i, str(i) * 3, {"a": i}) for i in range(20_000)
}
KEYS = [f"k{(i * 7919) % 20_000}" for i in range(300)]


def _request() -> int:
    """A request's worth of the gateway's kind of work: look-ups and small objects."""
    out = [(TABLE[k][1], TABLE[k][2]["a"] + 1) for k in KEYS]
    return len(repr(out[:20]))


@contextlib.contextmanager
def _started(target: Callable[[], None]) -> Iterator[int]:
    """``target`` in a child process of its own group; stopped (the group) on exit."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setpgid(0, 0)
            target()
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    try:
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _send(sock: socket.socket, period_us: int, duration_s: float) -> None:
    os.sched_setaffinity(0, {SENDER_CPU})
    end = time.perf_counter_ns() + int(duration_s * 1e9)
    due = time.perf_counter_ns()
    while (now := time.perf_counter_ns()) < end:
        if now >= due:  # busy-waits: a sleep's own wake-up would blur the timing
            sock.send(STAMP.pack(now))
            due += period_us * 1000
    sock.send(STAMP.pack(0))


def measure(
    variant: str, work: Path, period_us: int, duration_s: float
) -> tuple[list[float], list[float]]:
    """Wake-up delays and work durations (µs) of the gateway beside ``variant``."""
    delays: list[float] = []
    took: list[float] = []
    with contextlib.ExitStack() as stack:
        for name in [] if variant == "none" else variant.split("+"):
            job = NEIGHBOURS[name]

            def neighbour(job: Callable[[Path], None] = job) -> None:
                os.sched_setaffinity(0, {GATEWAY_CPU})
                job(work)

            stack.enter_context(_started(neighbour))
        time.sleep(1.0)  # the neighbours under way (DuckDB imported, files open)
        ours, theirs = socket.socketpair()
        with ours, theirs:
            stack.enter_context(_started(lambda: _send(theirs, period_us, duration_s)))
            os.sched_setaffinity(0, {GATEWAY_CPU})
            buf = bytearray(64 * 1024)
            while True:
                size = ours.recv_into(buf)
                now = time.perf_counter_ns()
                first = STAMP.unpack_from(buf)[0]
                if STAMP.unpack_from(buf, size - STAMP.size)[0] == 0:
                    break
                delays.append((now - first) / 1000)
                began = time.perf_counter_ns()
                _request()
                took.append((time.perf_counter_ns() - began) / 1000)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return delays, took


def _q(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p * len(values)))]


def _stats(delays: list[float], took: list[float]) -> list[float]:
    """The report's columns for one round (both lists sorted)."""
    slow = sum(1 for x in delays if x > SLOW_US)
    return [
        *(_q(delays, p) for p in (0.5, 0.9, 0.99, 0.999)),
        delays[-1],
        float(slow),
        *(_q(took, p) for p in (0.5, 0.9, 0.99)),
    ]


def render(
    results: dict[str, list[tuple[list[float], list[float]]]],
    args: argparse.Namespace,
    started: datetime,
) -> str:
    out = [
        f"# Idle-priority neighbours and a woken task ({started:%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} CPUs)",
        "",
        f"Woken every {args.period} µs from CPU {SENDER_CPU}, on CPU {GATEWAY_CPU} with the "
        f"neighbours at SCHED_IDLE; {args.rounds} rounds of {args.duration:g} s, variants "
        "alternating. Spreads are lowest–highest over the rounds, in µs.",
        "",
        "| variant | delay p50 | p90 | p99 | p99.9 | max | over 0.5 ms | work p50 | p90 | p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant, rounds in results.items():
        per_round = [_stats(delays, took) for delays, took in rounds]
        cells = [f"{min(col):.0f}–{max(col):.0f}" for col in zip(*per_round, strict=True)]
        out.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="none,indexer,writer,indexer+writer")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=12.0, help="seconds a variant-round")
    parser.add_argument("--period", type=int, default=110, help="µs between wake-ups")
    parser.add_argument("--lines", type=int, default=LINES, help="access lines of one indexer pass")
    args = parser.parse_args()
    if not hasattr(os, "SCHED_IDLE") or (os.cpu_count() or 1) < 2:
        print("needs Linux's SCHED_IDLE and 2 CPUs", file=sys.stderr)
        return 2
    variants = args.variants.split(",")
    for name in (n for v in variants if v != "none" for n in v.split("+")):
        if name not in NEIGHBOURS:
            parser.error(f"unknown neighbour {name!r} (of none, {', '.join(NEIGHBOURS)})")
    started = datetime.now(UTC)
    results: dict[str, list[tuple[list[float], list[float]]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="mcgw-neighbours-") as tmp:
        work = Path(tmp)
        (work / "lines.jsonl").write_bytes(
            b"".join(FORMATTER.line_bytes(r) for r in logs.records(args.lines))
        )
        for i in range(args.rounds):
            order = variants[i % len(variants) :] + variants[: i % len(variants)]
            for variant in order:
                delays, took = measure(variant, work, args.period, args.duration)
                delays.sort()
                took.sort()
                results[variant].append((delays, took))
                print(
                    f"round {i} {variant:>16}: delay p99 {_q(delays, 0.99):.0f} p99.9 "
                    f"{_q(delays, 0.999):.0f} max {delays[-1]:.0f} µs, "
                    f"{sum(1 for x in delays if x > SLOW_US)} over 0.5 ms; "
                    f"work p50 {_q(took, 0.5):.0f} µs",
                    flush=True,
                )
    proxy.save_report("neighbours", render(results, args, started), started)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())

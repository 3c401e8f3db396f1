"""What the access log costs the gateway: requests/s, p50/p99 and requests per
CPU-second, with and without it, alternating in the same run; and what the log writer
process costs on its own, per 1,000 lines.

Usage: python bench/logcost.py [--rounds 3] [--duration 8] [--connections 32]
                               [--baseline SRC]

Setup as ``proxy.py`` (whose helpers it reuses): an nginx backend and wrk on CPU 0,
one ``mcgw serve`` process on CPU 1. Each round starts mcgw once per variant (the order
flips every round) and measures wrk's requests/s and latency, and the CPU time
(utime + stime from ``/proc``) over the same window of the gateway process and, apart,
of its access-log writer process (a child, ``mcgw.dataplane.logwriter``):

* ``access log on``: the writer inherits the gateway's affinity (CPU 1): the two share
  one core, so whatever the writer spends is taken from the gateway;
* ``access log on, writer on CPU 0``: ``MCGW_LOG_WRITER_CPUS=0``, the writer gets CPU
  time of its own (from the core wrk and the backend use), as a deployment that gives
  the gateway workers N cores and the writers some more would;
* ``access log off``: ``--no-access-log``.

Requests per CPU-second (of the gateway process alone) is robust to other work on the
machine; medians over the rounds are reported, with every round's values. The writer's
cost is its CPU time over the lines it wrote in the run (warm-up included on both
sides). Reports land in ``bench/results/logcost-<time>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import proxy  # bench/proxy.py: nginx, wrk and process helpers

from mcgw import logschema

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
WRITER = "mcgw.dataplane.logwriter"


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    per_cpu_s: float
    """Requests per CPU-second of the gateway process."""
    writer_cpu_s: float
    lines: int


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def writer_of(pid: int) -> int | None:
    """The access-log writer process among ``pid``'s children, if any."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                if WRITER in Path(f"/proc/{child}/cmdline").read_text():
                    return int(child)
            except OSError:
                continue
    return None


def count_lines(directory: Path) -> int:
    return sum(f.read_bytes().count(b"\n") for f in directory.glob("access-*.jsonl"))


def measure(
    argv: list[str], port: int, out: Path, logs: Path, args: argparse.Namespace, nice: int = 0
) -> Run:
    lines_before = count_lines(logs)
    with proxy.process(proxy.pinned(1, argv), port, out) as proc:
        writer = None
        for _ in range(50):  # the gateway starts its writer with the table
            writer = writer_of(proc.pid)
            if writer is not None or "--no-access-log" in argv:
                break
            time.sleep(0.1)
        if nice and writer is not None:
            os.setpriority(os.PRIO_PROCESS, writer, nice)
        before = cpu_s(proc.pid)
        t0 = time.perf_counter()
        result = proxy.wrk("mcgw", port, args.duration, args.connections)
        elapsed = time.perf_counter() - t0
        used = cpu_s(proc.pid) - before
        writer_cpu = cpu_s(writer) if writer is not None else 0.0
    lines = count_lines(logs) - lines_before
    # proxy.wrk runs a 2 s warm-up before the measured run: count only the latter's
    # requests against the CPU the process used over both, scaled to the measured part.
    measured_share = args.duration / max(elapsed, args.duration)
    rps = result.requests_per_s
    per_cpu = rps * args.duration / max(used * measured_share, 1e-9)
    return Run(rps, result.p50_ms, result.p99_ms, per_cpu, writer_cpu, lines)


def _values(i: int) -> tuple[object, ...]:
    """Record ``i``'s values as the gateway's hot path builds them: the per-request
    values fresh objects (the writer hashes and escapes new objects every time), the
    route's and pick's shared; targets, latencies and sizes varying. In the record's
    shape of the tree measured: the request line as bytes and the pick, decision and
    entry as tuples (``AccessRecord.of`` exists), or before that all fields flat."""
    target = b"/" if i % 3 else b"/api/v1/items?id=%d&x=y" % (i % 1000)
    if hasattr(logschema.AccessRecord, "of"):
        return (
            1_700_000_000.0 + i * 1e-4, b"get".upper(), "http", b"bench.LOCAL".lower(),
            target, "HTTP/1.1", 200, 0.0021 + (i % 97) * 1e-5, 80, 230 + i % 7,
            "127.0.0.1", "127.0.0.1", b"WRK/4.2.0".lower(), (), "default/bench",
            "default/bench/rule/0/match/0", "default/app:80", _PICKED, _DECISION, _ENTRY,
            "local", 1, "response_sent_by_backend",
        )  # fmt: skip
    return (
        1_700_000_000.0 + i * 1e-4, b"GET".decode("latin-1"), "http",
        b"bench.local".decode("latin-1"), target.decode("latin-1"), "HTTP/1.1", 200,
        0.0021 + (i % 97) * 1e-5, 80, 230 + i % 7, "127.0.0.1", "127.0.0.1",
        b"wrk/4.2.0".decode("latin-1"), (), "default/bench", "default/bench/rule/0/match/0",
        "default/app:80", *_PICKED, "local", 1, "response_sent_by_backend", "gateway", "local",
        "",
    )  # fmt: skip


_PICKED = ("local", "local", "local-a", "bench-0", "127.0.0.1:8080", "closest")
_DECISION = ("local", "local", "")
_ENTRY = ("", "gateway")


def handover(records: int = 100_000) -> float:
    """CPU µs per record the gateway's process spends on its side of the access log:
    the record as this tree's hot path makes it from its values (a plain tuple, or
    before them, e.g. a ``--baseline`` tree, an AccessRecord by ``tuple.__new__``),
    ``AccessLog.write`` and the flusher's framing and pipe writes. The values are made
    beforehand; the writer process, on the other side, is not counted."""
    import asyncio

    from mcgw.dataplane import accesslog

    values = [_values(i) for i in range(records)]
    plain = hasattr(logschema, "AccessValues")

    async def run(directory: str) -> float:
        log = accesslog.AccessLog(Path(directory), "bench", flush_interval_s=0.05)
        await log.start()
        write = log.write
        make = tuple.__new__
        record = logschema.AccessRecord
        try:
            await asyncio.sleep(0.5)  # the writer started
            t0 = time.process_time()
            for start in range(0, records, 500):  # the flusher's turns come as under traffic
                if plain:
                    for v in values[start : start + 500]:
                        write(v)  # type: ignore[arg-type]
                else:
                    for v in values[start : start + 500]:
                        write(make(record, v))
                await asyncio.sleep(0)
            await log.flush()
            used = time.process_time() - t0
        finally:
            await log.close()
        return used * 1e6 / records

    with tempfile.TemporaryDirectory(prefix="mcgw-handover-") as tmp:
        return asyncio.run(run(tmp))


def writer_alone(records: int = 100_000) -> tuple[float, float]:
    """(CPU µs per line, lines/s) of one writer process fed ``records`` records through
    its pipe as the gateway frames them, rotation on, nothing else running."""
    import resource

    from mcgw.dataplane import logwriter

    with tempfile.TemporaryDirectory(prefix="mcgw-writer-") as tmp:
        config = {
            "directory": tmp, "project_id": "bench", "pid": os.getpid(),
            "max_bytes": 16 << 20, "keep_files": 0, "max_age_s": 0,
        }  # fmt: skip
        frames = [
            logwriter.frame(("r", n + 1, [_values(i) for i in range(n * 256, n * 256 + 256)]))
            for n in range(records // 256)
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mcgw.dataplane.logwriter", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        assert proc.stdin is not None
        for data in frames:
            proc.stdin.write(data)
        proc.stdin.close()
        proc.wait()
        elapsed = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        lines = count_lines(Path(tmp))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu * 1e6 / lines, lines / elapsed


def per_line(baseline: Path | None, rounds: int) -> str:
    """The hand-over and the writer alone, this tree against ``baseline``'s (each in a
    process of its own, alternating), as a table of medians."""
    trees: dict[str, list[str]] = {"this tree": []}
    if baseline is not None:
        trees[f"baseline ({baseline})"] = ["env", f"PYTHONPATH={baseline.resolve()}"]
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in trees}
    for round_ in range(rounds):
        order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
        for name in order:
            out = subprocess.run(
                [*trees[name], sys.executable, __file__, "--per-line-json"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs[name].append(tuple(json.loads(out.splitlines()[-1])))
    lines = [
        f"Per access-log line, CPU µs ({rounds} rounds alternating, medians; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.1f}):",
        "",
        "| tree | gateway hand-over µs/record | writer process µs/line | total µs/line "
        "| writer lines/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in runs.items():
        hand = statistics.median(v[0] for v in values)
        writer = statistics.median(v[1] for v in values)
        rate = statistics.median(v[2] for v in values)
        lines.append(f"| {name} | {hand:.2f} | {writer:.2f} | {hand + writer:.2f} | {rate:,.0f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="SRC",
        help="also run the mcgw of another source tree (its src/ folder), e.g. main's, "
        "in the same rounds",
    )
    parser.add_argument(
        "--writer-only",
        action="store_true",
        help="only the per-line costs: the hand-over and the writer process fed alone "
        "(with --baseline: both trees, alternating over --rounds)",
    )
    parser.add_argument("--per-line-json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.per_line_json:
        alone_us, alone_rate = writer_alone()
        print(json.dumps([handover(), alone_us, alone_rate]))
        return 0
    if args.writer_only:
        print(per_line(args.baseline, args.rounds))
        return 0
    alone_ms, alone_rate = writer_alone()
    alone = (
        f"The writer process alone (100,000 records through its pipe, start-up included): "
        f"{alone_ms:.1f} ms CPU per 1,000 lines, {alone_rate:,.0f} lines/s. The gateway's "
        f"side (write, framing, pipe): {handover():.2f} µs CPU per record."
    )
    proxy.ensure_tools()
    on, spread, off = "access log on", "access log on, writer on CPU 0", "access log off"
    niced = "access log on, writer nice 5"
    variants = {on: [], niced: [], spread: [], off: ["--no-access-log"]}
    env: dict[str, list[str]] = {
        on: [],
        niced: [],
        spread: ["env", "MCGW_LOG_WRITER_CPUS=0"],
        off: [],
    }
    if args.baseline is not None:
        pythonpath = ["env", f"PYTHONPATH={args.baseline.resolve()}"]
        variants["baseline, access log on"] = []
        variants["baseline, access log off"] = ["--no-access-log"]
        env["baseline, access log on"] = env["baseline, access log off"] = pythonpath
    rows: dict[str, list[Run]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="mcgw-logcost-") as tmp:
        work = Path(tmp)
        backend_port, mcgw_port = proxy.free_port(), proxy.free_port()
        backend = proxy.nginx_conf(work, "backend", proxy.backend_server(backend_port))
        with proxy.process(
            proxy.pinned(0, ["nginx", "-c", str(backend), "-p", str(work)]),
            backend_port,
            work / "backend.out",
        ):
            config = proxy.mcgw_manifests(work, backend_port)
            argv = [
                sys.executable,
                "-m",
                "mcgw",
                "serve",
                "-f",
                str(config),
                "--no-watch",
                "--bind",
                "127.0.0.1",
                "--port-map",
                f"80:{mcgw_port}",
                "--log-dir",
                str(work / "logs"),
            ]
            for round_ in range(args.rounds):
                order = list(variants)
                if round_ % 2:
                    order.reverse()
                for name in order:
                    command = [*env[name], *argv, *variants[name]]
                    out = work / f"{round_}.out"
                    nice = 5 if name == niced else 0
                    rows[name].append(measure(command, mcgw_port, out, work / "logs", args, nice))

    def med(name: str, attr: str) -> float:
        return statistics.median(getattr(run, attr) for run in rows[name])

    report = [
        f"# Cost of the access log ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f})",
        "",
        f"wrk -t1 -c{args.connections} -d{args.duration}s through one `mcgw serve` (CPU 1) to "
        f"an nginx backend (CPU 0); {args.rounds} rounds, order alternating; medians, then "
        "every round.",
        "",
        "| variant | requests/s | p50 ms | p99 ms | requests per gateway CPU-second "
        "| writer CPU ms per 1,000 lines | rounds (rps / p99 ms) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, runs in rows.items():
        lines = sum(run.lines for run in runs)
        writer = sum(run.writer_cpu_s for run in runs)
        per_k = f"{writer * 1e6 / lines:.1f}" if lines and writer else "–"
        rounds = ", ".join(f"{run.rps:,.0f} / {run.p99_ms:.1f}" for run in runs)
        report.append(
            f"| {name} | {med(name, 'rps'):,.0f} | {med(name, 'p50_ms'):.2f} "
            f"| {med(name, 'p99_ms'):.2f} | {med(name, 'per_cpu_s'):,.0f} | {per_k} | {rounds} |"
        )
    report += [
        "",
        f"Logging (writer sharing CPU 1) costs {1 - med(on, 'rps') / med(off, 'rps'):.1%} of "
        f"requests/s; with the writer on CPU 0, {1 - med(spread, 'rps') / med(off, 'rps'):.1%}. "
        f"Lines written: {sum(r.lines for r in rows[on] + rows[spread]):,}.",
        alone,
    ]
    text = "\n".join(report) + "\n"
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"logcost-{datetime.now(UTC):%Y%m%dT%H%M%S}.md").write_text(text)
    return 0


if __name__ == "__main__":
    # SIGTERM (`timeout`, kill) ends a run as Ctrl-C does: through the finally
    # blocks that stop the processes it started, by their PIDs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())

"""Query timings over a million access-log lines: first query (parse) and cached ones.

Usage: python bench/logs.py [--lines 1000000] [--dir var/bench-logs] [--keep]
       python bench/logs.py --steady RATE [--lines 1000000] [--interval 2s]

Writes ``--lines`` access-log lines shaped exactly as the gateway writes them
(:class:`mcgw.logschema.AccessFormatter`: two clusters, spill-over and fail-over
events, a few 5xx, several routes), in rotated files of 256 MiB like a long run
leaves, plus 20 000 container lines. Then, each in a fresh process so nothing is
warm but the OS page cache:

* ``first``: the first query over the directory — parsing every file into the
  DuckDB cache, then answering (SEED.md's query and ``distribution``);
* ``cached``: each named query and SEED.md's query once the cache is built, as
  ``mcgw logs query`` runs them (new process, cache opened and checked against
  the files' sizes and mtimes);
* ``append``: the first query after another 1 % of lines were appended to the
  newest file (only that file is read again).

With ``--steady RATE``, the logs are written instead as a gateway writes them during
a run: RATE lines a second, in batches every 0.1 s, with the log indexer
(``mcgw logs index --follow``) following them. Then, right after the last line:

* ``indexed``: the first query after the run (and SEED.md's, and each named query),
  each a new ``mcgw logs query`` process, the indexer still running;
* the indexer's own CPU time and peak memory over the whole run;
* ``cold``: the indexer stopped and the cache removed, the first query over the
  same files (what a query paid before there was an indexer).

Prints a table and writes ``bench/results/logs-<time>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from mcgw import logfiles, logschema

ROOT = Path(__file__).resolve().parent.parent

SEED_SQL = """SELECT
  JSON_VALUE(resource.labels.location) AS cluster_location,
  COUNT(*) AS cnt
FROM
  `sandbox-mc-gateway.global._Default._AllLogs`
WHERE
  resource.type="k8s_container"
  AND timestamp >= TIMESTAMP("2023-11-30 13:03:00", "Asia/Tokyo")
  AND timestamp <= TIMESTAMP("2023-11-30 13:06:00", "Asia/Tokyo")
GROUP BY
  cluster_location"""

ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
"""Query processes run this checkout's code (a copy of the tree can be benchmarked)."""

START = datetime(2023, 11, 30, 4, 0, tzinfo=UTC).timestamp()

CLUSTERS = (
    ("gke-west-1", "us-west1", "us-west1-a"),
    ("gke-east-1", "us-east1", "us-east1-b"),
)
ROUTES = ("store/public-store-route/0", "store/public-store-route/1", "store/public-store-route/2")
PATHS = ("/", "/west", "/east")
NAMED = ("distribution", "latency", "errors", "failover")


def records(n: int, seed: int = 1, first: int = 0) -> list[logschema.AccessRecord]:
    """``n`` access records, the ``first``-th onwards (100 a second of log time)."""
    rng = random.Random(seed)
    out = []
    for i in range(first, first + n):
        ts = START + i * 0.01  # 100 requests/s: a million spans ~2.8 hours
        r = rng.random()
        if r < 0.85:
            (cluster, region, zone), reason = CLUSTERS[0], "closest"
        elif r < 0.95:
            (cluster, region, zone), reason = CLUSTERS[1], "spillover"
        else:
            (cluster, region, zone), reason = CLUSTERS[1], "failover"
        status = 503 if rng.random() < 0.01 else 200
        k = i % 3
        out.append(
            logschema.AccessRecord.of(
                timestamp=ts,
                method="GET",
                scheme="http",
                host="store.example.com",
                target=PATHS[k],
                protocol="HTTP/1.1",
                status=status,
                latency_s=0.1 + rng.random() * 0.1,
                request_size=95,
                response_size=380,
                remote_ip="127.0.0.1",
                server_ip="127.0.0.1",
                user_agent="k6/0.47.0 (https://k6.io/)",
                trace_headers=(),
                gateway="store/external-http",
                route=ROUTES[k],
                backend="ServiceImport/store/store:8080",
                cluster=cluster,
                region=region,
                zone=zone,
                pod=f"store-{cluster}-{i % 2}",
                endpoint=f"127.{1 + (cluster == 'gke-east-1')}.0.{1 + i % 2}:8080",
                reason=reason,
                entry_region="asia-northeast1",
                attempts=1,
                status_details="response_sent_by_backend" if status == 200 else "failed_to_connect",
            )
        )
    return out


def write_logs(directory: Path, n: int) -> None:
    formatter = logschema.AccessFormatter("sandbox-mc-gateway")
    files = logfiles.RotatingFiles(
        directory, "access", logfiles.Retention(max_bytes=256 * 1024 * 1024, keep_files=0)
    )
    step = 100_000
    for start in range(0, n, step):
        batch = records(min(step, n - start), seed=start, first=start)
        files.write([formatter.line_bytes(r) for r in batch])
    files.close()
    with (directory / "containers-1.jsonl").open("w") as f:
        f.write("".join(container_lines(0, 20_000)))


def container_lines(first: int, n: int) -> list[str]:
    """Pod output lines ``first`` to ``first + n`` (of 20 000, in SEED.md's window)."""
    out = []
    for i in range(first, first + n):
        cluster, _, zone = CLUSTERS[i % 20 == 0]
        entry = logschema.container_entry(
            timestamp=START + 180 + i * 0.01,
            text=f'127.0.0.1 - - "GET / HTTP/1.1" 200 {i}',
            stream="stdout",
            project_id="sandbox-mc-gateway",
            cluster=cluster,
            zone=zone,
            namespace="store",
            pod=f"store-{cluster}-0",
            container="whereami",
        )
        out.append(json.dumps(entry) + "\n")
    return out


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _count_lines(paths: Iterable[Path]) -> int:
    total = 0
    for path in paths:
        with path.open("rb") as f:
            while chunk := f.read(1 << 24):
                total += chunk.count(b"\n")
    return total


def timed_query(log_dir: Path, args: list[str]) -> tuple[float, float, str]:
    """Run ``mcgw logs query ARGS`` in a new process; return wall and CPU seconds (all
    its threads: what the query costs whatever else the machine runs) and its output."""
    cpu0 = _children_cpu_s()
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mcgw", "logs", "query", *args, "--log-dir", str(log_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env=ENV,
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"query failed: {done.stderr}")
    return elapsed, _children_cpu_s() - cpu0, done.stdout


def startup_s() -> tuple[float, float]:
    """What a new ``mcgw logs`` process costs before any query (imports)."""
    cpu0 = _children_cpu_s()
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mcgw", "logs", "queries"], capture_output=True, check=True, env=ENV
    )
    return time.perf_counter() - t0, _children_cpu_s() - cpu0


CONTAINER_LINES = 20_000
BATCH_S = 0.1
"""A gateway's access-log writer hands its lines to the file about this often."""


def write_steady(directory: Path, n: int, rate: int) -> float:
    """Write ``n`` access lines at ``rate`` a second (and the container lines spread
    among them), as a run does; return the rate achieved."""
    formatter = logschema.AccessFormatter("sandbox-mc-gateway")
    files = logfiles.RotatingFiles(
        directory, "access", logfiles.Retention(max_bytes=256 * 1024 * 1024, keep_files=0)
    )
    containers = (directory / "containers-1.jsonl").open("a")
    written = pods = 0
    t0 = time.monotonic()
    try:
        while written < n:
            due = min(n, max(written + 1, int((time.monotonic() - t0 + BATCH_S) * rate)))
            batch = records(due - written, seed=written, first=written)
            files.write([formatter.line_bytes(r) for r in batch])
            pods_due = CONTAINER_LINES * due // n
            containers.write("".join(container_lines(pods, pods_due - pods)))
            containers.flush()
            written, pods = due, pods_due
            pause = t0 + written / rate - BATCH_S - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    finally:
        files.close()
        containers.close()
    return n / (time.monotonic() - t0)


def steady(
    log_dir: Path, lines: int, rate: int, interval: str, nice: str
) -> list[tuple[str, str, float, float]]:
    """Write at a steady rate with the indexer following; time the first queries after
    the last line, the indexer's cost, then the same first query cold."""
    from mcgw.analytics import ingest

    log_dir.mkdir(parents=True)
    rows: list[tuple[str, str, float, float]] = []
    indexer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mcgw",
            "logs",
            "index",
            "--follow",
            "--interval",
            interval,
            "--nice",
            nice,
            str(log_dir),
        ],
        cwd=ROOT,
        env=ENV,
        stdin=subprocess.DEVNULL,
    )
    try:
        t0 = time.perf_counter()
        achieved = write_steady(log_dir, lines, rate)
        took = time.perf_counter() - t0
        print(f"wrote {lines:,} lines in {took:.0f} s ({achieved:,.0f} lines/s)", flush=True)
        queries = [("distribution", ["--named", "distribution"]), ("SEED.md's query", [SEED_SQL])]
        queries += [(f"named query {n}", ["--named", n]) for n in NAMED if n != "distribution"]
        outputs = {}
        for i, (what, query_args) in enumerate(queries):
            wall, cpu, outputs[what] = timed_query(log_dir, query_args)
            kind = "indexed, first after the run" if i == 0 else "indexed, next"
            rows.append((f"{what} (indexer following)", kind, wall, cpu))
    finally:
        indexer.terminate()
        _, status, usage = os.wait4(indexer.pid, 0)
        indexer.returncode = os.waitstatus_to_exitcode(status)
    rows.append(
        (
            f"log indexer, whole run ({took:.0f} s; peak RSS {usage.ru_maxrss / 1024:.0f} MiB; "
            f"exit {indexer.returncode})",
            "indexer CPU",
            took,
            usage.ru_utime + usage.ru_stime,
        )
    )
    ingest.clear_cache(log_dir)
    wall, cpu, cold = timed_query(log_dir, ["--named", "distribution"])
    rows.append(("distribution, no indexer (parses every line)", "cold, first", wall, cpu))
    if cold != outputs["distribution"]:
        raise SystemExit(f"cold and indexed answers differ:\n{cold}\n{outputs['distribution']}")
    wall, cpu, _ = timed_query(log_dir, [SEED_SQL])
    rows.append(("SEED.md's query, after the cold one", "cold, next", wall, cpu))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "bench-logs")
    parser.add_argument("--keep", action="store_true", help="keep the generated logs")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse logs kept by --keep (only the cache is reset)"
    )
    parser.add_argument(
        "--steady",
        type=int,
        metavar="RATE",
        help="write RATE lines/s with the log indexer following, then time the first queries",
    )
    parser.add_argument("--interval", default="2s", help="the indexer's --interval (--steady)")
    parser.add_argument("--nice", default="19", help="the indexer's --nice (--steady)")
    args = parser.parse_args()
    log_dir: Path = args.dir
    gen_s = 0.0
    if args.steady:
        shutil.rmtree(log_dir, ignore_errors=True)
        load_before = os.getloadavg()[0]
        return _report(
            steady(log_dir, args.lines, args.steady, args.interval, args.nice),
            f"{args.lines:,} access lines + {CONTAINER_LINES:,} container lines written at "
            f"{args.steady:,} lines/s (batches every {BATCH_S:g} s), log indexer "
            f"`--interval {args.interval} --nice {args.nice}`",
            log_dir,
            load_before,
            keep=args.keep,
        )
    if args.reuse and any(log_dir.glob("access-*.jsonl")):
        from mcgw.analytics import ingest

        ingest.clear_cache(log_dir)
        args.lines = _count_lines(log_dir.glob("access-*.jsonl"))  # earlier appends included
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
        log_dir.mkdir(parents=True)
        t0 = time.perf_counter()
        write_logs(log_dir, args.lines)
        gen_s = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in log_dir.glob("*.jsonl"))
    files = len(list(log_dir.glob("*.jsonl")))
    print(
        f"{args.lines:,} access lines + 20,000 container lines, {files} files, "
        f"{size / 2**20:.0f} MiB, written in {gen_s:.1f} s"
    )
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, str, float, float]] = []
    rows.append(("process start-up (imports, no query)", "-", *startup_s()))

    wall, cpu, _ = timed_query(log_dir, ["--named", "distribution"])
    rows.append(("first query: distribution (parses every line)", "first", wall, cpu))
    out = ""
    queries = [(f"named query {n}", ["--named", n]) for n in NAMED]
    queries.append(("SEED.md's query, verbatim", [SEED_SQL]))
    queries.append(("SELECT COUNT(*)", ["SELECT COUNT(*) FROM `p.global._Default._AllLogs`"]))
    for what, query_args in queries:
        # The first run of a statement translates it (sqlglot); later runs reuse that.
        for kind in ("cached, new statement", "cached, run again"):
            if kind.endswith("new statement") and query_args == ["--named", "distribution"]:
                continue  # translated by the first query already
            wall, cpu, text = timed_query(log_dir, query_args)
            rows.append((what, kind, wall, cpu))
            if query_args == [SEED_SQL]:
                out = text

    newest = max(log_dir.glob("access-*.jsonl"))
    extra = records(args.lines // 100, seed=7)
    formatter = logschema.AccessFormatter("sandbox-mc-gateway")
    with newest.open("ab") as f:
        f.write(b"".join(formatter.line_bytes(r) for r in extra))
    wall, cpu, _ = timed_query(log_dir, ["--named", "distribution"])
    rows.append((f"after appending {len(extra):,} lines: distribution", "append", wall, cpu))

    return _report(
        rows,
        f"{args.lines:,} access lines + 20,000 container lines",
        log_dir,
        load_before,
        keep=args.keep,
        answer=out,
    )


def _report(
    rows: list[tuple[str, str, float, float]],
    what: str,
    log_dir: Path,
    load_before: float,
    *,
    keep: bool,
    answer: str = "",
) -> int:
    size = sum(p.stat().st_size for p in log_dir.glob("*.jsonl"))
    files = len(list(log_dir.glob("*.jsonl")))
    report = [
        f"# mcgw logs query timings ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"{what}; {files} files, {size / 2**20:.0f} MiB; {os.cpu_count()} CPUs, load "
        f"average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after. Each query "
        "is a new `mcgw logs query` process: wall time and CPU time (user + system, every "
        "thread), start-up included. On a busy machine the CPU time is the better guide "
        "to the wall time on an idle one.",
        "",
        "| what | kind | wall s | CPU s |",
        "|---|---|---:|---:|",
        *(f"| {what} | {kind} | {wall:.2f} | {cpu:.2f} |" for what, kind, wall, cpu in rows),
    ]
    if answer:
        report += ["", "SEED.md's query answered:", "", "```", answer.rstrip(), "```"]
    text = "\n".join(report) + "\n"
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"logs-{datetime.now(UTC):%Y%m%dT%H%M%S}.md").write_text(text)
    if not keep:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    # SIGTERM (`timeout`, kill) ends a run as Ctrl-C does: through the finally
    # blocks that stop the processes it started, by their PIDs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())

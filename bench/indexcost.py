"""What the log indexer costs: CPU per access line, and the gateway's latency with it.

Usage: python bench/indexcost.py --passes [--lines 9000] [--count 40] [--baseline SRC]
       python bench/indexcost.py --latency [--rate 4500] [--rounds 4] [--duration 10]
                                 [--baseline SRC]

``--passes``: the indexer's passes alone. ``--count`` times, ``--lines`` access lines
(made by :class:`mcgw.logschema.AccessFormatter`, as ``bench/logs.py`` makes them) are
appended to a log file and one pass (``mcgw.analytics.indexer``, the cache kept open
between passes as ``--follow`` does) reads them; user and system CPU µs per line over
all passes (checkpoints included), and the slowest pass. 9,000 lines is one 2 s pass at
4,500 requests/s. With ``--baseline SRC`` another tree's indexer (its ``src/``) runs the
same passes in a process of its own, alternating over ``--rounds``.

``--latency``: the setup of ``bench/proxy.py --fixed-rate`` — an nginx backend and
``mcgw load`` (constant arrival rate, open model) on CPU 0, one ``mcgw serve`` with its
access log on CPU 1, where its writer and indexer run too (as children, in its
session). Rounds alternate the indexer on and off (``--no-log-index``; with
``--baseline``, that tree's indexer as well), each a fresh log directory, 2 s of
warm-up then ``--duration`` s measured; p50/p90/p99 per round, their spread over the
rounds, and the indexer's CPU seconds per 10 s. Reports land in
``bench/results/indexcost-<time>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import logs  # bench/logs.py: access records as the gateway makes them
import proxy  # bench/proxy.py: nginx, mcgw load and process helpers

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def passes_json(lines: int, count: int) -> dict[str, float]:
    """Run the passes in this process; user/system µs per line, the slowest pass."""
    from mcgw import logschema
    from mcgw.analytics import cachelock, indexer

    formatter = logschema.AccessFormatter("sandbox-mc-gateway")
    chunks = [
        b"".join(formatter.line_bytes(r) for r in logs.records(lines, seed=i, first=i * lines))
        for i in range(count)
    ]
    work = Path(tempfile.mkdtemp(prefix="mcgw-indexcost-"))
    try:
        log = work / "access-1.jsonl"
        lock = cachelock.CacheLock(work, "indexer")
        pass_ = indexer._Pass(work, lock, indexer.PASS_BUDGET)
        user = system = slowest = 0.0
        try:
            for chunk in chunks:
                with log.open("ab") as out:
                    out.write(chunk)
                before = resource.getrusage(resource.RUSAGE_SELF)
                t0 = time.perf_counter()
                if pass_.run() is not True:
                    raise SystemExit("a pass did not catch up")
                slowest = max(slowest, time.perf_counter() - t0)
                after = resource.getrusage(resource.RUSAGE_SELF)
                user += after.ru_utime - before.ru_utime
                system += after.ru_stime - before.ru_stime
            before = resource.getrusage(resource.RUSAGE_SELF)
            pass_.close()  # the last checkpoint: a query that wants the cache waits for it
            after = resource.getrusage(resource.RUSAGE_SELF)
            close = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        finally:
            pass_.close()
            lock.close()
    finally:
        shutil.rmtree(work)
    n = lines * count
    return {
        "user_us": user * 1e6 / n,
        "sys_us": system * 1e6 / n,
        "slowest_ms": slowest * 1e3,
        "close_ms": close * 1e3,
    }


def passes(args: argparse.Namespace) -> str:
    trees: dict[str, list[str]] = {"this tree": []}
    if args.baseline is not None:
        trees[f"baseline ({args.baseline})"] = ["env", f"PYTHONPATH={args.baseline.resolve()}"]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
        for name in order:
            argv = [sys.executable, __file__, "--passes-json", str(args.lines), str(args.count)]
            out = subprocess.run(
                [*trees[name], *argv], check=True, capture_output=True, text=True
            ).stdout
            runs[name].append(json.loads(out.splitlines()[-1]))
    lines = [
        f"Indexer passes of {args.lines:,} access lines, {args.count} passes a run, "
        f"{args.rounds} runs per tree alternating ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"load average {os.getloadavg()[0]:.1f}); CPU µs per line, every run:",
        "",
        "| tree | user µs/line | system µs/line | total µs/line | slowest pass ms "
        "| last checkpoint ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, values in runs.items():

        def col(key: str, fmt: str = ".1f", values: list[dict[str, float]] = values) -> str:
            return " / ".join(f"{v[key]:{fmt}}" for v in values)

        total = " / ".join(f"{v['user_us'] + v['sys_us']:.1f}" for v in values)
        lines.append(
            f"| {name} | {col('user_us')} | {col('sys_us')} | {total} "
            f"| {col('slowest_ms', '.0f')} | {col('close_ms', '.0f')} |"
        )
    return "\n".join(lines) + "\n"


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def indexer_of(pid: int) -> int | None:
    """The log indexer process among ``pid``'s children, if any."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"logs" in argv and b"index" in argv:
                return int(child)
    return None


def latency(args: argparse.Namespace) -> str:
    proxy.ensure_tools()
    variants: dict[str, tuple[list[str], list[str]]] = {
        "indexer on": ([], []),
        "indexer off": ([], ["--no-log-index"]),
    }
    if args.baseline is not None:
        env = ["env", f"PYTHONPATH={args.baseline.resolve()}"]
        variants[f"baseline indexer on ({args.baseline})"] = (env, [])
    rows: dict[str, list[tuple[proxy.Result, float]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="mcgw-indexcost-") as tmp:
        work = Path(tmp)
        backend_port, mcgw_port = proxy.free_port(), proxy.free_port()
        backend = proxy.nginx_conf(work, "backend", proxy.backend_server(backend_port))
        with proxy.process(
            proxy.pinned(0, ["nginx", "-c", str(backend), "-p", str(work)]),
            backend_port,
            work / "backend.out",
        ):
            config = proxy.mcgw_manifests(work, backend_port)
            for round_ in range(args.rounds):
                order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
                for name in order:
                    env, extra = variants[name]
                    log_dir = work / f"logs-{round_}-{len(rows[name])}-{name[:11]}"
                    argv = [
                        *env, sys.executable, "-m", "mcgw", "serve", "-f", str(config),
                        "--no-watch", "--bind", "127.0.0.1", "--port-map", f"80:{mcgw_port}",
                        "--log-dir", str(log_dir).replace(" ", "-"), *extra,
                    ]  # fmt: skip
                    out = work / f"mcgw-{round_}.out"
                    with proxy.process(proxy.pinned(1, argv), mcgw_port, out) as proc:
                        time.sleep(0.5)
                        index = indexer_of(proc.pid)
                        before = cpu_s(index) if index is not None else 0.0
                        t0 = time.perf_counter()
                        slug = f"{name} {round_}"
                        result = proxy.fixed_rate(slug, mcgw_port, args.rate, args.duration, work)
                        elapsed = time.perf_counter() - t0
                        used = cpu_s(index) - before if index is not None else 0.0
                    rows[name].append((result, used * 10 / elapsed))
                    print(
                        f"{name}: p50 {result.p50_ms:.2f} p90 {result.p90_ms or 0:.2f} "
                        f"p99 {result.p99_ms:.2f} ms, indexer {used * 10 / elapsed:.2f} "
                        "CPU-s/10 s",
                        flush=True,
                    )
    lines = [
        f"# The log indexer and the gateway's latency ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"load average {os.getloadavg()[0]:.1f})",
        "",
        f"{args.rate:,} requests/s offered (`mcgw load` constant-arrival-rate on CPU 0, "
        f"2 s warm-up, {args.duration} s measured); `mcgw serve`, its writer and indexer on "
        f"CPU 1; {args.rounds} rounds alternating. Spreads are min–max over the rounds.",
        "",
        "| variant | served/s | p50 ms | p90 ms | p99 ms | indexer CPU-s per 10 s | rounds' p99 |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, runs in rows.items():

        def spread(values: list[float]) -> str:
            return f"{min(values):.2f}–{max(values):.2f}"

        results = [r for r, _ in runs]
        lines.append(
            f"| {name} | {min(r.requests_per_s for r in results):,.0f} "
            f"| {spread([r.p50_ms for r in results])} "
            f"| {spread([r.p90_ms or 0.0 for r in results])} "
            f"| {spread([r.p99_ms for r in results])} "
            f"| {spread([c for _, c in runs])} "
            f"| {', '.join(f'{r.p99_ms:.2f}' for r in results)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--passes", action="store_true", help="the indexer's CPU per line")
    mode.add_argument("--latency", action="store_true", help="the gateway's latency with it")
    mode.add_argument("--passes-json", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--lines", type=int, default=9000, help="lines per pass (--passes)")
    parser.add_argument("--count", type=int, default=40, help="passes per run (--passes)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=4500, help="requests/s (--latency)")
    parser.add_argument("--duration", type=int, default=10, help="seconds (--latency)")
    parser.add_argument("--baseline", type=Path, metavar="SRC", help="another tree's src/")
    args = parser.parse_args()
    if args.passes_json:
        print(json.dumps(passes_json(*args.passes_json)))
        return 0
    text = passes(args) if args.passes else latency(args)
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"indexcost-{datetime.now(UTC):%Y%m%dT%H%M%S}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

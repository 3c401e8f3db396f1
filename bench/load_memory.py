#!/usr/bin/env python3
"""Benchmark: does `mcgw load`'s memory stay flat over a long run at full speed?

One fast backend (an nginx worker answering a whereami-sized JSON, pinned to CPU 0, as
in load.py) and one `mcgw load` process pinned to CPU 1, a closed loop of N VUs without
think time for the whole duration, every metric recorded as usual (HdrHistogram trends,
per-second timeline; add --breakdown and the per-cluster counters too). Its resident
memory (VmRSS from /proc) is sampled every few seconds.

The report gives the samples, the RSS after warm-up, at the end and its maximum, the
growth from warm-up to the end in MiB and per 10 minutes (a least-squares slope over the
post-warm-up samples), and the requests made. "Flat" means growth per 10 minutes under
--flat-mib (default 8 MiB: far below one byte per request, at tens of millions of them).

Usage: python bench/load_memory.py [--duration 600] [--vus 32] [--kind py|js|url]
                                   [--every 10] [--warmup 30] [--breakdown]
(installs nginx with apt-get when missing and we are root).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # bench/load.py: the scripts measured, same as the speed benchmark
import proxy  # bench/proxy.py: the nginx backend and the process helpers

RESULTS = proxy.RESULTS


def _rss_kib(pid: int) -> int:
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _slope_per_s(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of (t, kib) points, in KiB per second."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=600, help="seconds of load")
    parser.add_argument("--vus", type=int, default=32)
    parser.add_argument("--kind", choices=("py", "js", "url"), default="py")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before the baseline")
    parser.add_argument("--breakdown", action="store_true", help="count per cluster as well")
    parser.add_argument("--flat-mib", type=float, default=8.0, help="growth per 10 min allowed")
    args = parser.parse_args()
    proxy.ensure_tools()
    with tempfile.TemporaryDirectory(prefix="mcgw-bench-mem-") as tmp:
        work = Path(tmp)
        port = proxy.free_port()
        backend = proxy.nginx_conf(work, "backend", proxy.backend_server(port))
        url = f"http://127.0.0.1:{port}/"
        extra: list[str] = ["--breakdown"] if args.breakdown else []
        if args.kind == "py":
            target = work / "scenario.py"
            target.write_text(load.PY_SCENARIO)
            extra += ["-e", f"TARGET={url}", str(target)]
        elif args.kind == "js":
            target = work / "test.js"
            target.write_text(load.JS_SCRIPT.format(url=url))
            extra.append(str(target))
        else:
            extra += ["--sleep", "0", url]
        export = work / "summary.json"
        argv = [
            sys.executable, "-m", "mcgw", "load",
            "--vus", str(args.vus),
            "--duration", f"{args.duration}s",
            "--summary-export", str(export),
            *extra,
        ]  # fmt: skip
        samples: list[tuple[float, int]] = []
        with proxy.process(
            proxy.pinned(load.BACKEND_CPU, ["nginx", "-c", str(backend), "-p", str(work)]),
            port,
            work / "backend.out",
        ):
            log = (work / "mcgw.out").open("wb")
            proc = subprocess.Popen(
                proxy.pinned(load.GENERATOR_CPU, argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            begin = time.monotonic()
            try:
                next_at = begin
                while proc.poll() is None:
                    now = time.monotonic()
                    if now >= next_at:
                        kib = _rss_kib(proc.pid)
                        if kib:
                            samples.append((round(now - begin, 1), kib))
                            print(f"{now - begin:7.1f} s  {kib / 1024:7.1f} MiB", flush=True)
                        next_at += args.every
                    if now - begin > args.duration + 120:
                        raise RuntimeError("mcgw load did not finish in time")
                    time.sleep(0.2)
            finally:
                if proc.poll() is None:
                    # Stop what we started, by its PID (and its process group).
                    with suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                log.close()
            if proc.returncode != 0:
                print((work / "mcgw.out").read_text()[-3000:])
                raise RuntimeError(f"mcgw load exited with {proc.returncode}")
        doc = json.loads(export.read_text())
    reqs = int(doc["metrics"]["http_reqs"]["count"])
    report = render(samples, reqs, args)
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"load-memory-{stamp}.md").write_text(report)
    (RESULTS / f"load-memory-{stamp}.json").write_text(
        json.dumps({"samples_kib": samples, "requests": reqs, "args": vars(args)}, indent=2)
    )
    return 0


def render(samples: list[tuple[float, int]], reqs: int, args: argparse.Namespace) -> str:
    # The load's own window: after warm-up, before the summary at the end.
    steady = [(t, v) for t, v in samples if args.warmup <= t <= args.duration]
    if len(steady) < 2:
        steady = samples
    base = steady[0][1] if steady else 0
    end = steady[-1][1] if steady else 0
    peak = max((v for _, v in samples), default=0)
    slope_10min_mib = _slope_per_s(steady) * 600 / 1024
    flat = slope_10min_mib < args.flat_mib
    lines = [
        f"# mcgw load memory, {args.kind} scenario, {args.vus} VUs, {args.duration} s "
        "at full speed",
        "",
        f"requests: {reqs:,} ({reqs / args.duration:,.0f}/s)",
        f"RSS after {args.warmup:.0f} s warm-up: {base / 1024:.1f} MiB; at the end of the load: "
        f"{end / 1024:.1f} MiB; peak (summary included): {peak / 1024:.1f} MiB",
        f"growth warm-up → end: {(end - base) / 1024:+.1f} MiB; least-squares slope: "
        f"{slope_10min_mib:+.2f} MiB per 10 min → {'flat' if flat else 'GROWING'} "
        f"(threshold {args.flat_mib} MiB / 10 min)",
        "",
        "| t (s) | RSS (MiB) |",
        "|---:|---:|",
        *(f"| {t:.0f} | {v / 1024:.1f} |" for t, v in samples),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # SIGTERM (`timeout`, kill) ends a run as Ctrl-C does: through the finally
    # blocks that stop the processes it started, by their PIDs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())

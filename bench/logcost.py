"""What the access log costs the gateway: requests/s and requests per CPU-second, with
and without it, alternating in the same run.

Usage: python bench/logcost.py [--rounds 3] [--duration 8] [--connections 32]

Setup as ``proxy.py`` (whose helpers it reuses): an nginx backend and wrk on CPU 0,
one ``mcgw serve`` process on CPU 1. Each round starts mcgw twice — access log on,
then off (the order flips every round) — and measures wrk's requests/s and the mcgw
process's CPU time (utime + stime from ``/proc``, the writer thread included) over the
same window. Requests per CPU-second is robust to other work on the machine; medians
over the rounds are reported, with every round's values. Reports land in
``bench/results/logcost-<time>.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import proxy  # bench/proxy.py: nginx, wrk and process helpers

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def measure(argv: list[str], port: int, log: Path, args: argparse.Namespace) -> tuple[float, float]:
    """(requests/s, requests per CPU-second of mcgw) for one mcgw process."""
    with proxy.process(proxy.pinned(1, argv), port, log) as proc:
        before = cpu_s(proc.pid)
        t0 = time.perf_counter()
        result = proxy.wrk("mcgw", port, args.duration, args.connections)
        elapsed = time.perf_counter() - t0
        used = cpu_s(proc.pid) - before
    # proxy.wrk runs a 2 s warm-up before the measured run: count only the latter's
    # requests against the CPU the process used over both, scaled to the measured part.
    measured_share = args.duration / max(elapsed, args.duration)
    rps = result.requests_per_s
    return rps, rps * args.duration / max(used * measured_share, 1e-9)


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
    args = parser.parse_args()
    proxy.ensure_tools()
    variants = {"access log on": [], "access log off": ["--no-access-log"]}
    env: dict[str, list[str]] = {"access log on": [], "access log off": []}
    if args.baseline is not None:
        pythonpath = ["env", f"PYTHONPATH={args.baseline.resolve()}"]
        variants["baseline, access log on"] = []
        variants["baseline, access log off"] = ["--no-access-log"]
        env["baseline, access log on"] = env["baseline, access log off"] = pythonpath
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
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
                    rows[name].append(measure(command, mcgw_port, work / f"{round_}.out", args))
        lines = sum(sum(1 for _ in f.open("rb")) for f in (work / "logs").glob("access-*.jsonl"))
    on, off = rows["access log on"], rows["access log off"]
    med = {
        k: (statistics.median(r for r, _ in v), statistics.median(c for _, c in v))
        for k, v in rows.items()
    }
    report = [
        f"# Cost of the access log ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f})",
        "",
        f"wrk -t1 -c{args.connections} -d{args.duration}s through one `mcgw serve` (CPU 1) to "
        f"an nginx backend (CPU 0); {args.rounds} rounds, order alternating; medians, then "
        "every round.",
        "",
        "| variant | requests/s | requests per CPU-second | rounds (rps / per CPU-s) |",
        "|---|---:|---:|---|",
    ]
    for name, values in rows.items():
        rounds = ", ".join(f"{r:,.0f} / {c:,.0f}" for r, c in values)
        report.append(f"| {name} | {med[name][0]:,.0f} | {med[name][1]:,.0f} | {rounds} |")
    cost_rps = 1 - med["access log on"][0] / med["access log off"][0]
    cost_cpu = 1 - med["access log on"][1] / med["access log off"][1]
    report += [
        "",
        f"Logging costs {cost_rps:.1%} of requests/s and {cost_cpu:.1%} of requests per "
        f"CPU-second (medians); {lines:,} access-log lines were written by the logged runs "
        f"({len(on)} runs, {len(off)} without).",
    ]
    if args.baseline is not None:
        base_on, base_off = med["baseline, access log on"], med["baseline, access log off"]
        report.append(
            f"Baseline ({args.baseline}): logging costs {1 - base_on[0] / base_off[0]:.1%} "
            f"of requests/s and {1 - base_on[1] / base_off[1]:.1%} per CPU-second."
        )
    text = "\n".join(report) + "\n"
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"logcost-{datetime.now(UTC):%Y%m%dT%H%M%S}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

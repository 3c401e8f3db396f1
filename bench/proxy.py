#!/usr/bin/env python3
"""Benchmark: mcgw vs nginx as a reverse proxy, and the backend direct, in one run.

The same backend (an nginx worker answering a whereami-sized JSON, so that the
backend is never the bottleneck), the same load generator (wrk, keep-alive), the same
machine, one after the other:

    direct   wrk → backend
    nginx    wrk → nginx (1 worker, upstream keep-alive, access log on) → backend
             (nginx-no-log: access log off — what logging costs the peer)
    mcgw     wrk → mcgw serve (1 process, access log on) → backend
             (mcgw-writer-cpu0: its access-log writer process on CPU 0, not CPU 1;
             mcgw-no-index: access log on, log indexer off; mcgw-no-log: access log off)

Then, at a fixed offered rate below saturation (``--fixed-rate``, a share of the
lower of the mcgw and mcgw-no-log rows' requests/s; ``mcgw load`` with a
constant-arrival-rate scenario, an open model, on CPU 0): mcgw with and without its
access log, and nginx with its log, reporting latency p50/p90/p99 — whether logging
slows requests at a given load, apart from what it takes off the top.

On a 2-core machine the proxy under test is pinned to CPU 1 and wrk plus the backend to
CPU 0, so each proxy gets exactly one core. ``--workers N`` adds, in the same run,
nginx with N worker processes against ``mcgw serve --workers N``, both unpinned (they
share the machine's cores with wrk and the backend). The report gives requests/s, p50 and p99
latency and the ratios to nginx; it is printed and written to bench/results/.

Usage: python bench/proxy.py [--duration 10] [--connections 32] [--store] [--workers 2]
                             [--fixed-rate 0.5]
(installs nginx and wrk with apt-get when they are missing and we are root).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from mcgw.testing import manifests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BODY = json.dumps(
    {
        "cluster_name": "bench",
        "gce_instance_id": "6205714523048438393",
        "host_header": "bench.local",
        "pod_name": "store-5b74fdb87c-lbggt",
        "project_id": "bench",
        "timestamp": "2023-11-28T05:01:27",
        "zone": "local-a",
    }
)


@dataclass
class Result:
    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    p90_ms: float | None = None
    offered_per_s: float | None = None
    """The fixed rate asked for (fixed-rate rows only)."""
    dropped: int = 0
    """Iterations the load generator could not start on time (fixed-rate rows)."""
    p999_ms: float | None = None
    """p99.9 (fixed-rate rows): where a rare stall of the gateway's core shows, one
    that delays a handful of requests a second and so stays under p99."""


FIXED_SCENARIO = """\
from __future__ import annotations

options = {{
    "scenarios": {{
        "fixed": {{
            "executor": "constant-arrival-rate",
            "rate": {rate},
            "timeUnit": "1s",
            "duration": "{duration}s",
            "preAllocatedVUs": {vus},
            "maxVUs": {max_vus},
        }}
    }}
}}
PARAMS = {{"headers": {{"Host": "bench.local"}}}}


async def default(vu):
    await vu.http.get("{url}", PARAMS)
"""


def save_report(kind: str, report: str, started: datetime) -> Path:
    """Write ``report`` to ``bench/results/<kind>-<started>.md``, print it and where."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{kind}-{started:%Y%m%d-%H%M%S}.md"
    path.write_text(report)
    print(report)
    print(f"report: {path}")
    return path


def ensure_tools() -> None:
    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.exit(f"bench needs {', '.join(missing)}: install them (apt-get install nginx wrk)")
    print(f"installing {', '.join(missing)} with apt-get…", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    packages = ["nginx-light" if t == "nginx" else t for t in missing]
    subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def pinned(cpu: int, argv: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > cpu:
        return ["taskset", "-c", str(cpu), *argv]
    return argv


@contextmanager
def process(argv: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_port(port)
        yield proc
    finally:
        # Stop what we started, by its PID (and its process group: nginx forks a worker).
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def nginx_conf(work: Path, name: str, server: str, workers: int = 1) -> Path:
    conf = work / f"{name}.conf"
    conf.write_text(
        f"""
daemon off;
master_process on;
worker_processes {workers};
pid {work}/{name}.pid;
error_log {work}/{name}.error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {work}/{name}-body;
    proxy_temp_path {work}/{name}-proxy;
    fastcgi_temp_path {work}/{name}-fastcgi;
    uwsgi_temp_path {work}/{name}-uwsgi;
    scgi_temp_path {work}/{name}-scgi;
    {server}
}}
"""
    )
    return conf


def backend_server(port: int) -> str:
    body = BODY.replace("'", "")
    return f"""
    access_log off;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            default_type application/json;
            add_header access-control-allow-origin *;
            return 200 '{body}';
        }}
    }}"""


def proxy_server(work: Path, port: int, backend_port: int, *, log: bool = True) -> str:
    access_log = f"{work}/nginx-access.log combined buffer=64k flush=1s" if log else "off"
    return f"""
    access_log {access_log};
    keepalive_requests 1000000;
    upstream backend {{
        server 127.0.0.1:{backend_port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            add_header Via "1.1 nginx";
        }}
    }}"""


def mcgw_manifests(work: Path, backend_port: int) -> Path:
    folder = work / "mcgw-config"
    folder.mkdir()
    (folder / "bench.yaml").write_text(manifests.gateway_to_endpoints(backend_port=backend_port))
    return folder


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def wrk(name: str, port: int, duration: int, connections: int) -> Result:
    base = ["wrk", "-t1", f"-c{connections}", "-H", "Host: bench.local", "--latency"]
    url = f"http://127.0.0.1:{port}/"
    subprocess.run(pinned(0, [*base, "-d2s", url]), check=True, capture_output=True)  # warm-up
    out = subprocess.run(
        pinned(0, [*base, f"-d{duration}s", url]), check=True, capture_output=True, text=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)$", out, re.M)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)$", out, re.M)[1])  # type: ignore[index]
    errors = 0
    for found in re.finditer(r"(?:Non-2xx or 3xx responses|Socket errors):\s*(.*)", out):
        errors += sum(int(n) for n in re.findall(r"\d+", found[1]))
    return Result(name, rps, p50, p99, errors)


def fixed_rate(
    name: str,
    port: int,
    rate: int,
    duration: int,
    work: Path,
    *,
    on_measure: Callable[[], object] | None = None,
) -> Result:
    """Offer ``rate`` requests/s for ``duration`` s (after a 2 s warm-up at the same
    rate) with ``mcgw load`` on CPU 0; latency percentiles of the measured part.
    ``on_measure`` is called between the warm-up and the measured part."""
    url = f"http://127.0.0.1:{port}/"
    vus = max(8, rate // 200)
    slug = re.sub(r"\W+", "-", name)
    export = work / f"fixed-{slug}.json"
    for seconds, summary in ((2, None), (duration, export)):
        scenario = work / f"fixed-{slug}-{seconds}.py"
        scenario.write_text(
            FIXED_SCENARIO.format(rate=rate, duration=seconds, vus=vus, max_vus=vus * 4, url=url)
        )
        argv = [sys.executable, "-m", "mcgw", "load", "--summary-trend-stats"]
        argv += ["med,p(90),p(99),p(99.9),max", str(scenario)]
        if summary is not None:
            argv[4:4] = ["--summary-export", str(summary)]
            if on_measure is not None:
                on_measure()
        subprocess.run(pinned(0, argv), check=True, capture_output=True, timeout=seconds + 60)
    metrics = json.loads(export.read_text())["metrics"]
    duration_ms = metrics["http_req_duration"]
    failed = int(metrics.get("http_req_failed", {}).get("passes", 0))
    dropped = int(metrics.get("dropped_iterations", {}).get("count", 0))
    return Result(
        name,
        float(metrics["http_reqs"]["rate"]),
        float(duration_ms["med"]),
        float(duration_ms["p(99)"]),
        failed,
        p90_ms=float(duration_ms["p(90)"]),
        offered_per_s=rate,
        p999_ms=float(duration_ms["p(99.9)"]),
        dropped=dropped,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--store", action="store_true", help="also measure mcgw's Store API direct")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="also measure nginx with N workers against mcgw --workers N (unpinned)",
    )
    parser.add_argument(
        "--fixed-rate",
        type=float,
        default=0.5,
        metavar="SHARE",
        help="offered rate of the fixed-rate rows, as a share of the lower of mcgw's and "
        "mcgw-no-log's requests/s (0: no fixed-rate rows)",
    )
    args = parser.parse_args()
    ensure_tools()
    python = sys.executable
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="mcgw-bench-") as tmp:
        work = Path(tmp)
        backend_port, nginx_port, mcgw_port = free_port(), free_port(), free_port()
        backend = nginx_conf(work, "backend", backend_server(backend_port))
        with process(
            pinned(0, ["nginx", "-c", str(backend), "-p", str(work)]),
            backend_port,
            work / "backend.out",
        ):
            results.append(wrk("direct", backend_port, args.duration, args.connections))
            proxy = nginx_conf(work, "nginx", proxy_server(work, nginx_port, backend_port))
            with process(
                pinned(1, ["nginx", "-c", str(proxy), "-p", str(work)]),
                nginx_port,
                work / "nginx.out",
            ):
                results.append(wrk("nginx", nginx_port, args.duration, args.connections))
            # The peer's own cost of logging: the same nginx without its access log.
            quiet = nginx_conf(
                work, "nginx-nolog", proxy_server(work, nginx_port, backend_port, log=False)
            )
            with process(
                pinned(1, ["nginx", "-c", str(quiet), "-p", str(work)]),
                nginx_port,
                work / "nginx-nolog.out",
            ):
                results.append(wrk("nginx-no-log", nginx_port, args.duration, args.connections))
            config = mcgw_manifests(work, backend_port)
            argv = [
                python,
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
                str(work / "mcgw-logs"),
            ]
            with process(pinned(1, argv), mcgw_port, work / "mcgw.out"):
                results.append(wrk("mcgw", mcgw_port, args.duration, args.connections))
            # The access-log writer process with CPU time of its own (CPU 0, with wrk and
            # the backend) instead of sharing the gateway's one core (bench/README.md).
            writer_cpu0 = ["env", "MCGW_LOG_WRITER_CPUS=0", *argv]
            writer_cpu0[writer_cpu0.index("--log-dir") + 1] = str(work / "mcgw-logs-cpu0")
            with process(pinned(1, writer_cpu0), mcgw_port, work / "mcgw1.out"):
                results.append(wrk("mcgw-writer-cpu0", mcgw_port, args.duration, args.connections))
            # The access log without the log indexer (mcgw serve runs it by default, at
            # nice 19 on the gateway's core): what the writer alone costs.
            no_index = [*argv, "--no-log-index"]
            no_index[no_index.index("--log-dir") + 1] = str(work / "mcgw-logs-noindex")
            with process(pinned(1, no_index), mcgw_port, work / "mcgw3.out"):
                results.append(wrk("mcgw-no-index", mcgw_port, args.duration, args.connections))
            # The same without the access log, to show what logging costs.
            with process(pinned(1, [*argv, "--no-access-log"]), mcgw_port, work / "mcgw2.out"):
                results.append(wrk("mcgw-no-log", mcgw_port, args.duration, args.connections))
            if args.fixed_rate > 0:
                # Latency at the same offered load with and without the log (and nginx's
                # with its log): does logging slow a request when the gateway is not
                # saturated? The log directory is a fresh one, as in the mcgw row.
                # Below both saturation points, so that neither row is overloaded.
                ceiling = min(
                    r.requests_per_s for r in results if r.name in ("mcgw", "mcgw-no-log")
                )
                rate = int(ceiling * args.fixed_rate)
                fixed = [*argv]
                fixed[fixed.index("--log-dir") + 1] = str(work / "mcgw-logs-fixed")
                for name, command in (
                    ("mcgw", fixed),
                    ("mcgw-no-log", [*argv, "--no-access-log"]),
                ):
                    with process(pinned(1, command), mcgw_port, work / f"fixed-{name}.out"):
                        results.append(
                            fixed_rate(f"{name} @ {rate:,}/s", mcgw_port, rate, args.duration, work)
                        )
                with process(
                    pinned(1, ["nginx", "-c", str(proxy), "-p", str(work)]),
                    nginx_port,
                    work / "nginx-fixed.out",
                ):
                    results.append(
                        fixed_rate(f"nginx @ {rate:,}/s", nginx_port, rate, args.duration, work)
                    )
            if args.workers > 1:
                n = args.workers
                proxy_n = nginx_conf(
                    work, f"nginx{n}", proxy_server(work, nginx_port, backend_port), n
                )
                with process(
                    ["nginx", "-c", str(proxy_n), "-p", str(work)], nginx_port, work / "nginxn.out"
                ):
                    results.append(wrk(f"nginx-{n}w", nginx_port, args.duration, args.connections))
                argv_n = [*argv, "--workers", str(n)]
                argv_n[argv_n.index("--log-dir") + 1] = str(work / "mcgw-logs-n")
                with process(argv_n, mcgw_port, work / "mcgwn.out"):
                    results.append(wrk(f"mcgw-{n}w", mcgw_port, args.duration, args.connections))
            access_lines = sum(
                sum(1 for _ in f.open()) for f in (work / "mcgw-logs").glob("*.jsonl")
            )
        if args.store:
            store_port = free_port()
            env = {**os.environ, "PORT": str(store_port), "HOST": "127.0.0.1"}
            with (work / "store.out").open("wb") as out:
                proc = subprocess.Popen(
                    pinned(1, [python, "-m", "mcgw.store"]),
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=out,
                )
            try:
                wait_port(store_port)
                results.append(wrk("store-direct", store_port, args.duration, args.connections))
            finally:
                proc.terminate()
                proc.wait(timeout=10)
    report = render(results, args, access_lines)
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"proxy-{stamp}.md").write_text(report)
    (RESULTS / f"proxy-{stamp}.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


def render(results: list[Result], args: argparse.Namespace, access_lines: int) -> str:
    nginx = next(r for r in results if r.name == "nginx")
    saturated = [r for r in results if r.offered_per_s is None]
    fixed = [r for r in results if r.offered_per_s is not None]
    lines = [
        f"# mcgw proxy benchmark ({datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} cores)",
        "",
        f"wrk -t1 -c{args.connections} -d{args.duration}s, keep-alive; proxies pinned to CPU 1,"
        " wrk and the backend to CPU 0; access logs on (except the -no-log rows)."
        + (
            f" nginx-{args.workers}w and mcgw-{args.workers}w: {args.workers} worker processes,"
            " unpinned (sharing the cores with wrk and the backend)."
            if args.workers > 1
            else ""
        ),
        "",
        "| target | requests/s | p50 ms | p99 ms | errors | rps vs nginx | p99 vs nginx |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in saturated:
        lines.append(
            f"| {r.name} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.errors}"
            f" | {r.requests_per_s / nginx.requests_per_s:.2f} | {r.p99_ms / nginx.p99_ms:.2f} |"
        )
    if fixed:
        lines += [
            "",
            f"At a fixed offered rate ({args.fixed_rate:.0%} of the lower of mcgw's and "
            "mcgw-no-log's requests/s; "
            f"`mcgw load`, constant-arrival-rate, on CPU 0, {args.duration} s after a 2 s "
            "warm-up):",
            "",
            "| target | offered/s | served/s | p50 ms | p90 ms | p99 ms | errors | dropped |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in fixed:
            lines.append(
                f"| {r.name} | {r.offered_per_s:,.0f} | {r.requests_per_s:,.0f} "
                f"| {r.p50_ms:.2f} | {r.p90_ms or 0:.2f} | {r.p99_ms:.2f} | {r.errors} "
                f"| {r.dropped} |"
            )
    lines += ["", f"mcgw wrote {access_lines} access-log lines during its run."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # SIGTERM (`timeout`, kill) ends a run as Ctrl-C does: through the finally
    # blocks that stop the processes it started, by their PIDs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())

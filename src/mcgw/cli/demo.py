"""``mcgw demo``: SEED.md's scenario on one machine, end to end.

1. Start the fleet of examples/store (gke-west-1 in us-west1-a, gke-east-1 in
   us-east1-b, two Store API pods each) and the gateway located in Tokyo; each
   cluster sits behind a relay that delays its traffic by the round trip from Tokyo
   (``--no-simulate-latency`` turns that off).
2. Ask ``/``, ``/west`` and ``/east`` with ``Host: store.example.com``.
3. Load it like the engineer's k6 run: 30 VUs, one request and a 1 s sleep per iteration.
4. Run SEED.md's Log Analytics query verbatim over the run's logs.
5. Stop every pod of gke-west-1 under load: ``/`` fails over to gke-east-1, no request fails.
6. Point to the live dashboard the admin server showed all along, and print the
   distribution per cluster and zone it counted (``--keep``: stay up until Ctrl-C).

Every step checks what it shows; the demo exits 1 if the scenario does not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from mcgw import errors
from mcgw.admin import server as admin_server
from mcgw.admin import views
from mcgw.analytics import query
from mcgw.cli import run
from mcgw.loadtest import metrics, report, runner
from mcgw.loadtest import options as load_options

HOST = "store.example.com"

SEED_QUERY = """SELECT
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
"""SEED.md's query, verbatim."""

SEED_WINDOW_START = datetime(2023, 11, 30, 13, 3, tzinfo=ZoneInfo("Asia/Tokyo"))
"""Where the replay puts the run's first log line, so the query's window covers it."""


class ScenarioFailed(errors.McgwError):
    """What the demo showed is not what SEED.md's scenario requires."""


def _title(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


async def _get(host: str, port: int, path: str) -> tuple[int, dict[str, str], dict[str, object]]:
    """One GET through the gateway, like ``curl -H "host: store.example.com"``."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: mcgw-demo\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(status_line.split()[1])
    payload = json.loads(body) if status == 200 else {}
    return status, headers, payload


async def _show_routing(host: str, port: int) -> None:
    _title(f'curl -H "host: {HOST}" http://GATEWAY/{{,west,east}}')
    expected = {"/": "gke-west-1", "/west": "gke-west-1", "/east": "gke-east-1"}
    for path, cluster in expected.items():
        status, headers, payload = await _get(host, port, path)
        fields = {k: payload.get(k) for k in ("cluster_name", "zone", "pod_name", "host_header")}
        print(f"GET {path:6} → {status} via={headers.get('via')} {json.dumps(fields)}")
        if path == "/east":
            full = {k: v for k, v in payload.items() if k != "echo"}
            print("  full answer:", json.dumps(full, ensure_ascii=False))
        if payload.get("cluster_name") != cluster:
            raise ScenarioFailed(
                f"{path} was served by {payload.get('cluster_name')}, not {cluster}"
            )


async def _load(host: str, port: int, vus: int, duration_s: float) -> None:
    _title(f"k6-style load: {vus} VUs, {duration_s:g}s, GET http://{HOST} + sleep(1)")
    opts = load_options.LoadOptions(
        url=f"http://{HOST}",
        vus=vus,
        duration_s=duration_s,
        sleep_s=1.0,
        host_map=((HOST, f"{host}:{port}"),),
        breakdown=True,
    )
    summary = await runner.run(opts, progress=_progress)
    print()
    print(report.render(summary, opts))


def _progress(progress: runner.Progress) -> None:
    # On a terminal the line rewrites itself, like k6's; in a log, one line every 5 s.
    if sys.stdout.isatty():
        print(f"\r{report.progress_line(progress)}", end="", flush=True)
    elif round(progress.elapsed_s) % 5 == 0:
        print(report.progress_line(progress), flush=True)


def _count(summary: metrics.Summary, metric: str, key: str) -> int:
    found = summary.metric(metric)
    return int(found.get(key)) if found is not None else 0


def _seed_query(log_dir: Path) -> None:
    _title("SEED.md's Log Analytics query, verbatim, over this run's logs")
    print(SEED_QUERY)
    print(
        f"(replay: log times shifted so the run starts at {SEED_WINDOW_START.isoformat()}, "
        "inside the query's window)"
    )
    result = query.run(SEED_QUERY, log_dir, shift_to=SEED_WINDOW_START)
    print(query.format(result, "table"))
    counts = {str(row[0]): int(row[1]) for row in result.rows}
    west, east = counts.get("us-west1-a", 0), counts.get("us-east1-b", 0)
    if west <= east:
        raise ScenarioFailed(f"expected us-west1-a to dominate, got {counts}")
    print(f"distributed, though biased to the west: us-west1-a {west} vs us-east1-b {east}")


async def _failover(running: run.Running, host: str, port: int) -> None:
    _title("fail-over: stop every pod of gke-west-1 while 10 VUs load `/`")
    assert running.fleet is not None
    opts = load_options.LoadOptions(
        url=f"http://{HOST}/",
        vus=10,
        duration_s=6.0,
        sleep_s=0.05,
        host_map=((HOST, f"{host}:{port}"),),
        breakdown=True,
    )
    load = asyncio.create_task(runner.run(opts))
    await asyncio.sleep(2.0)
    started = time.monotonic()
    await running.fleet.stop_cluster("gke-west-1")
    print(f"gke-west-1 stopped ({time.monotonic() - started:.2f}s to terminate its pods)")
    summary = await load
    status, _, payload = await _get(host, port, "/")
    print(f"GET /      → {status} from {payload.get('cluster_name')} ({payload.get('zone')})")
    failed = _count(summary, "http_req_failed", "passes")
    served = ", ".join(f"{row.cluster} {row.responses}" for row in summary.breakdown)
    print(
        f"during the switch: {_count(summary, 'http_reqs', 'count')} requests, "
        f"{failed} failed; served by {served}"
    )
    if payload.get("cluster_name") != "gke-east-1":
        raise ScenarioFailed("after stopping gke-west-1, `/` is not served by gke-east-1")
    if failed:
        raise ScenarioFailed(f"{failed} requests failed during the fail-over")


def _distribution(running: run.Running, keep: bool) -> None:
    """Point to the dashboard and print what it counted, per cluster and zone."""
    admin = running.admin
    if admin is None:
        return
    _title("the dashboard, and the distribution it counted")
    print(f"dashboard: {admin.url}/dashboard  (Prometheus: {admin.url}/metrics)")
    if not keep:
        print("(live while the demo ran; `make demo DEMO_ARGS=--keep` keeps it up afterwards)")
    doc = views.stats_doc(admin.src)
    total = doc["totals"]["requests"] or 1
    header = f"{'cluster':<14} {'zone':<12} {'requests':>9} {'share':>7} {'errors':>7}"
    print(header + f" {'p50 ms':>8} {'p99 ms':>8}")
    print("-" * (len(header) + 18))
    for row in doc["clusters"]:
        lat = row["latency_ms"]
        p50 = "-" if lat["p50"] is None else f"{lat['p50']:.1f}"
        p99 = "-" if lat["p99"] is None else f"{lat['p99']:.1f}"
        print(
            f"{row['cluster']:<14} {row['zone']:<12} {row['requests']:>9} "
            f"{row['requests'] / total:>7.1%} {row['errors']:>7} {p50:>8} {p99:>8}"
        )
    print(f"{'total':<27} {doc['totals']['requests']:>9}")


async def _keep(running: run.Running) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    host, port = running.address(80)
    print(f"\nkeeping the gateway (http://{host}:{port}) and the dashboard up; Ctrl-C to stop")
    await stop.wait()


async def scenario(
    paths: tuple[Path, ...],
    log_dir: Path,
    vus: int,
    duration_s: float,
    simulate_latency: bool = False,
    admin: tuple[str, int] | None = admin_server.DEFAULT_ADDRESS,
    keep: bool = False,
    admin_fallback: bool = True,
) -> None:
    _title("mcgw demo: SEED.md's multi-cluster Gateway on one machine")
    print(f"logs: {log_dir}")
    running = await run.start(
        run.RunOptions(
            paths=paths,
            port_map=((80, 0),),
            log_dir=log_dir,
            watch=False,
            simulate_latency=simulate_latency,
            admin=admin,
            admin_fallback=admin_fallback,
        ),
        say=print,
    )
    try:
        host, port = running.address(80)
        await _show_routing(host, port)
        await _load(host, port, vus, duration_s)
        await running.flush_logs()
        _seed_query(log_dir)
        await _failover(running, host, port)
        _distribution(running, keep)
        if keep:
            await _keep(running)
    finally:
        await running.close()
    _title("done: every process the demo started has stopped")


def main(args: argparse.Namespace) -> int:
    paths = tuple(args.paths or [Path("examples/store")])
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    log_dir = args.log_dir or Path("var") / f"demo-{stamp}" / "logs"
    duration_s = load_options.parse_duration(args.duration)
    os.makedirs(log_dir, exist_ok=True)
    given = getattr(args, "admin", None)
    admin = admin_server.DEFAULT_ADDRESS if given is None else admin_server.parse_address(given)
    keep = bool(getattr(args, "keep", False))
    try:
        run.run(
            lambda: scenario(
                paths,
                log_dir,
                args.vus,
                duration_s,
                args.simulate_latency,
                admin,
                keep,
                admin_fallback=given is None,
            )
        )
    except ScenarioFailed as exc:
        print(f"\nFAILED: {exc}")
        return 1
    return 0

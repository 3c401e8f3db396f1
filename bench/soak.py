"""Soak: the store example under mixed traffic, pod kills and reloads, for a long time.

Runs ``mcgw up`` on a copy of examples/store (real processes, its fleet on its own
address block 127.<octet>.* so it can run beside the tests), sends a bounded rate of mixed
requests from an asyncio client of its own, SIGKILLs a random pod and rewrites the
HTTPRoute (a weight flip, picked up by the file watcher) at intervals, and samples the
gateway's RSS from /proc. Every minute it prints a row; at the end it writes a markdown
report to bench/results/soak-<time>.md.

Latency percentiles leave out the slow clients (whose requests take ~1 s by their own
design); rps counts responses (a pipelined request of three is three).
Errors are counted and split: those within ``--grace`` seconds after a kill or a reload
are *expected* (a request in flight on the killed pod); the others are *unexpected*.

    .venv/bin/python bench/soak.py                       # 30 minutes, 40 requests/s
    .venv/bin/python bench/soak.py --duration 10m --rate 60 --kill-every 20

This is a script with a report, not a timed test; it is not run by ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "store"
RESULTS = ROOT / "bench" / "results"
HOST = "store.example.com"

KINDS = (
    # (name, share): what the client sends; shares add up to 100.
    ("get-keepalive", 45),
    ("get-new-conn", 15),
    ("post-keepalive", 15),
    ("post-chunked", 10),
    ("slow-client", 5),
    ("pipelined", 10),
)
PATHS = ("/", "/", "/west", "/east")

WEIGHT_RULE = """  - backendRefs:
    - group: net.gke.io
      kind: ServiceImport
      name: store-west-1
      port: 8080
      weight: {west}
    - group: net.gke.io
      kind: ServiceImport
      name: store-east-1
      port: 8080
      weight: {east}
"""


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m|h)?", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30m, 90s, 1h)")
    return float(match[1]) * {"s": 1, "m": 60, "h": 3600, None: 1}[match[2]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# the system under test


def write_route(folder: Path, west: int, east: int) -> None:
    """The example's HTTPRoute with its default rule split by weight; atomic rename, so
    the watcher never reads half a file."""
    path = folder / "gke-west-1" / "gateway.yaml"
    text = (EXAMPLE / "gke-west-1" / "gateway.yaml").read_text()
    head, sep, _ = text.rpartition("  - backendRefs:\n")
    assert sep, "the example's HTTPRoute changed: update WEIGHT_RULE"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(head + WEIGHT_RULE.format(west=west, east=east))
    tmp.replace(path)


@contextlib.contextmanager
def gateway(
    work: Path, port: int, octet: int
) -> Iterator[tuple[subprocess.Popen[bytes], set[int]]]:
    """``mcgw up`` on a copy of the example; stopped by PID (SIGTERM, then SIGKILL), and
    its pods by PID too should it have left any. Yields the process and the set of pod
    PIDs seen (the caller adds those it learns of)."""
    config = work / "store"
    shutil.copytree(EXAMPLE, config)
    write_route(config, 1, 1)
    log = (work / "up.log").open("wb")
    env = {**os.environ, "MCGW_FLEET_FIRST_OCTET": str(octet)}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "mcgw", "up", "-f", str(config)),
            *("--port-map", f"80:{port}", "--admin", "off", "--log-dir", str(work / "logs")),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=work,
    )
    seen_pods: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mcgw up exited: {(work / 'up.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("mcgw up did not listen within 60 s")
            time.sleep(0.2)
        yield proc, seen_pods
    finally:
        seen_pods.update(pods_of(proc.pid))
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pid in seen_pods:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        log.close()


def pods_of(parent: int) -> dict[int, str]:
    """Pod processes (Store API) started by ``parent``: pid → POD_NAME."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != parent:
                continue
            env = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        for item in env:
            if item.startswith(b"POD_NAME="):
                found[int(entry.name)] = item[9:].decode()
    return found


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# the client


class HttpError(Exception):
    pass


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """Read one response; return (status, whether the server keeps the connection, body)."""
    status_line = await reader.readline()
    if not status_line:
        raise HttpError("connection closed before a response")
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise HttpError(f"bad status line {status_line[:60]!r}")
    status = int(parts[1])
    length: int | None = None
    chunked = False
    close = parts[0] == b"HTTP/1.0"
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and value.endswith(b"chunked"):
            chunked = True
        elif name == b"connection":
            close = close or b"close" in value
    body = b""
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            body += (await reader.readexactly(size + 2))[:-2]
            if size == 0:
                break
    elif length is not None:
        body = await reader.readexactly(length)
    else:
        body = await reader.read()  # until close
        close = True
    return status, not close, body


def request(method: str, path: str, body: bytes = b"", *, chunked: bool = False) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: mcgw-soak\r\n"
    if method == "POST" and chunked:
        mid = len(body) // 2
        chunks = b"".join(
            f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in (body[:mid], body[mid:])
        )
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks + b"0\r\n\r\n"
    if method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


@dataclass
class Minute:
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    errors_expected: int = 0
    errors_unexpected: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    rss: list[float] = field(default_factory=list)
    kills: int = 0
    reloads: int = 0
    skipped: int = 0
    pods: set[str] = field(default_factory=set)
    """Pods that answered (the Store API names itself in its JSON)."""
    root_west: int = 0
    root_east: int = 0
    """Answers to ``GET /`` by cluster: the HTTPRoute weights at work."""


class Soak:
    def __init__(self, port: int, args: argparse.Namespace) -> None:
        self.port = port
        self.args = args
        self.start = time.monotonic()
        self.minutes: dict[int, Minute] = {}
        self.idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []
        """Keep-alive connections between requests, with when they went idle."""
        self.disturbed_until = 0.0
        """Errors before this moment follow a kill or a reload: expected."""
        self.rng = random.Random(args.seed)
        self.inflight = asyncio.Semaphore(args.max_inflight)
        self.error_samples: list[str] = []
        self.restarts: list[float] = []
        """Seconds from each kill until the pod answered again."""
        self.kill_failures = 0

    def minute(self) -> Minute:
        index = int((time.monotonic() - self.start) // 60)
        return self.minutes.setdefault(index, Minute())

    def disturbed(self) -> None:
        self.disturbed_until = time.monotonic() + self.args.grace

    async def connection(self, fresh: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while not fresh and self.idle:
            since, reader, writer = self.idle.pop()
            # Older ones may be closing on the gateway's idle timeout just now; a real
            # client would retry on a fresh connection, this one avoids the race.
            if time.monotonic() - since < 2:
                return reader, writer
            writer.close()
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def one(self, kind: str) -> None:
        path = self.rng.choice(PATHS)
        body = b'{"item":"' + b"x" * self.rng.randrange(10, 4000) + b'"}'
        fresh = kind in ("get-new-conn", "slow-client")
        count = 1
        if kind.startswith("get") or kind == "slow-client":
            data = request("GET", path)
        elif kind == "pipelined":
            count = 3
            data = request("GET", path) * count
        else:
            data = request("POST", path, body, chunked=kind == "post-chunked")
        began = time.monotonic()
        reader, writer = await self.connection(fresh)
        keep = True
        try:
            if kind == "slow-client":
                # A slow but legitimate client: the head in 10 pieces over ~1 s.
                step = max(1, len(data) // 10)
                for i in range(0, len(data), step):
                    writer.write(data[i : i + step])
                    await writer.drain()
                    await asyncio.sleep(0.1)
            else:
                writer.write(data)
                await writer.drain()
            for _ in range(count):
                status, keep, answer = await read_response(reader)
                if status >= 500:
                    raise HttpError(f"HTTP {status}")
                self.served(path, answer)
        except (OSError, HttpError, asyncio.IncompleteReadError, ValueError) as exc:
            writer.close()
            self.failed(kind, f"{type(exc).__name__}: {exc}"[:120])
            return
        latency = (time.monotonic() - began) * 1000 / count
        m = self.minute()
        if kind != "slow-client":  # its latency is its own slowness (~1 s by design)
            m.latencies.extend([latency] * count)
        m.ok += count
        m.kinds[kind] = m.kinds.get(kind, 0) + count
        if keep and not fresh and len(self.idle) < self.args.pool:
            self.idle.append((time.monotonic(), reader, writer))
        else:
            writer.close()

    def served(self, path: str, answer: bytes) -> None:
        try:
            fields = json.loads(answer)
        except ValueError:
            return
        if not isinstance(fields, dict):
            return
        m = self.minute()
        m.pods.add(str(fields.get("pod_name")))
        if path == "/":
            if fields.get("cluster_name") == "gke-west-1":
                m.root_west += 1
            else:
                m.root_east += 1

    def failed(self, kind: str, what: str) -> None:
        m = self.minute()
        expected = time.monotonic() < self.disturbed_until
        if expected:
            m.errors_expected += 1
        else:
            m.errors_unexpected += 1
        if len(self.error_samples) < 50:
            at = time.monotonic() - self.start
            tag = "expected" if expected else "UNEXPECTED"
            self.error_samples.append(f"{at:7.1f} s {tag} {kind}: {what}")

    async def guarded(self, kind: str) -> None:
        try:
            await asyncio.wait_for(self.one(kind), self.args.timeout)
        except TimeoutError:
            self.failed(kind, f"timeout after {self.args.timeout:g} s")
        finally:
            self.inflight.release()

    async def traffic(self, until: float) -> None:
        kinds = [k for k, _ in KINDS]
        weights = [w for _, w in KINDS]
        interval = 1 / self.args.rate
        tasks: set[asyncio.Task[None]] = set()
        next_at = time.monotonic()
        while next_at < until:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            if self.inflight.locked():
                self.minute().skipped += 1  # bounded: never more than max_inflight at once
                continue
            await self.inflight.acquire()
            task = asyncio.create_task(self.guarded(self.rng.choices(kinds, weights)[0]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def killer(self, up: subprocess.Popen[bytes], seen: set[int], until: float) -> None:
        while time.monotonic() + self.args.kill_every < until:
            await asyncio.sleep(self.args.kill_every)
            pods = pods_of(up.pid)
            seen.update(pods)
            if not pods:
                self.kill_failures += 1
                continue
            pid = self.rng.choice(sorted(pods))
            name = pods[pid]
            self.disturbed()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            self.minute().kills += 1
            killed_at = time.monotonic()
            # Back when a process of the same pod name runs again and answers.
            while time.monotonic() - killed_at < 60:
                await asyncio.sleep(0.1)
                again = [p for p, n in pods_of(up.pid).items() if n == name and p != pid]
                if again and await answers(again[0]):
                    seen.update(again)
                    self.restarts.append(time.monotonic() - killed_at)
                    break
            else:
                self.kill_failures += 1

    async def reloader(self, config: Path, until: float) -> None:
        flip = False
        while time.monotonic() + self.args.reload_every < until:
            await asyncio.sleep(self.args.reload_every)
            flip = not flip
            self.disturbed()
            write_route(config, 3 if flip else 1, 1)
            self.minute().reloads += 1

    async def sampler(self, pid: int, until: float) -> None:
        while time.monotonic() < until:
            with contextlib.suppress(OSError):
                self.minute().rss.append(rss_mb(pid))
            await asyncio.sleep(5)

    async def reporter(self, until: float) -> None:
        printed = 0
        print(header(), flush=True)
        while time.monotonic() < until + 1:
            await asyncio.sleep(1)
            done = int((time.monotonic() - self.start) // 60)
            while printed < done and printed in self.minutes:
                print(row(printed, self.minutes[printed]), flush=True)
                printed += 1


async def answers(pid: int) -> bool:
    """Whether the pod ``pid`` accepts connections on its POD_IP:PORT."""
    try:
        env = dict(
            item.split(b"=", 1)
            for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if b"=" in item
        )
        address, port = env[b"POD_IP"].decode(), int(env.get(b"PORT", b"8080"))
        _, writer = await asyncio.open_connection(address, port)
    except (OSError, KeyError, ValueError):
        return False
    writer.close()
    return True


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def header() -> str:
    return (
        "| minute | rps | p50 ms | p99 ms | max ms | errors (expected) | errors (unexpected) "
        "| skipped | kills | reloads | pods answering | west share of / | RSS MB |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )


def row(index: int, m: Minute) -> str:
    rss = f"{max(m.rss):.1f}" if m.rss else "-"
    top = max(m.latencies) if m.latencies else float("nan")
    return (
        f"| {index + 1} | {m.ok / 60:.1f} | {percentile(m.latencies, 50):.2f} | "
        f"{percentile(m.latencies, 99):.2f} | {top:.1f} | {m.errors_expected} | "
        f"{m.errors_unexpected} | {m.skipped} | {m.kills} | {m.reloads} | {len(m.pods)} | "
        f"{m.root_west / max(1, m.root_west + m.root_east):.0%} | {rss} |"
    )


def summary(soak: Soak, minutes: int, args: argparse.Namespace) -> str:
    rows = [soak.minutes[i] for i in range(minutes) if i in soak.minutes]
    full = [m for m in rows if m.rss]
    lines = [
        f"# mcgw soak, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`bench/soak.py --duration {args.duration_text} --rate {args.rate:g} "
        f"--kill-every {args.kill_every:g} --reload-every {args.reload_every:g}` "
        f"(seed {args.seed}); examples/store under `mcgw up`, {os.cpu_count()} cores.",
        "",
        header(),
        *(row(i, m) for i, m in enumerate(rows)),
        "",
    ]
    if full:
        first, last = full[0], full[-1]
        total_ok = sum(m.ok for m in rows)
        lines += [
            f"- requests answered: {total_ok}; errors expected (within {args.grace:g} s of a "
            f"kill or reload): {sum(m.errors_expected for m in rows)}; unexpected: "
            f"{sum(m.errors_unexpected for m in rows)}; skipped (in-flight bound reached): "
            f"{sum(m.skipped for m in rows)}",
            f"- RSS of the `mcgw up` process: {min(first.rss):.1f} MB in minute 1, "
            f"{max(last.rss):.1f} MB in minute {len(rows)} "
            f"(max {max(max(m.rss) for m in full):.1f})",
            f"- p50 minute 1 → last: {percentile(first.latencies, 50):.2f} → "
            f"{percentile(last.latencies, 50):.2f} ms; p99 {percentile(first.latencies, 99):.2f}"
            f" → {percentile(last.latencies, 99):.2f} ms",
            f"- pods killed: {sum(m.kills for m in rows)}; back and answering after "
            + (
                f"median {statistics.median(soak.restarts):.2f} s, max {max(soak.restarts):.2f} s"
                if soak.restarts
                else "-"
            )
            + f"; not back within 60 s: {soak.kill_failures}",
            f"- reloads (HTTPRoute weight flips): {sum(m.reloads for m in rows)}",
        ]
    if soak.error_samples:
        lines += ["", "First errors:", "", "```", *soak.error_samples, "```"]
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> str:
    port = free_port()
    with (
        tempfile.TemporaryDirectory(prefix="mcgw-soak-") as tmp,
        gateway(Path(tmp), port, args.octet) as (up, seen),
    ):
        soak = Soak(port, args)
        until = soak.start + args.duration
        print(f"mcgw up pid {up.pid} on 127.0.0.1:{port}; soaking {args.duration_text}", flush=True)
        await asyncio.gather(
            soak.traffic(until),
            soak.killer(up, seen, until),
            soak.reloader(Path(tmp) / "store", until),
            soak.sampler(up.pid, until),
            soak.reporter(until),
        )
        for _, _, writer in soak.idle:
            writer.close()
        if up.poll() is not None:
            raise RuntimeError(f"mcgw up died during the soak (exit {up.returncode})")
        return summary(soak, int(args.duration // 60) or 1, args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", default="30m", help="e.g. 30m, 600s (default 30m)")
    parser.add_argument("--rate", type=float, default=40, help="requests/s offered (default 40)")
    parser.add_argument("--kill-every", type=float, default=30, help="seconds between pod kills")
    parser.add_argument("--reload-every", type=float, default=45, help="seconds between reloads")
    parser.add_argument(
        "--grace",
        type=float,
        default=3,
        help="errors this long after a kill or reload are expected",
    )
    parser.add_argument("--timeout", type=float, default=10, help="per request, seconds")
    parser.add_argument("--max-inflight", type=int, default=64)
    parser.add_argument("--pool", type=int, default=16, help="idle keep-alive connections kept")
    parser.add_argument("--octet", type=int, default=101, help="pods on 127.<octet>.* and the next")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.duration_text = args.duration
    args.duration = parse_duration(args.duration)
    report = asyncio.run(run(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"soak-{datetime.now(UTC):%Y%m%d-%H%M%S}.md"
    out.write_text(report)
    print(report)
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    # SIGTERM (`timeout`, kill) ends a run as Ctrl-C does: through the finally
    # blocks that stop the processes it started, by their PIDs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())

"""Does the access log slow requests below saturation? Latency at a fixed offered rate,
log off and on, alternating in the same run.

Usage: python bench/lograte.py [--rate 4500] [--nginx-rate N] [--rounds 4] [--duration 60]
                               [--variants off,on,no-index] [--baseline SRC]

Setup as ``proxy.py`` (whose helpers it reuses): an nginx backend and the load generator
(``mcgw load``, constant-arrival-rate) on CPU 0; one ``mcgw serve`` on CPU 1, and with it
its access-log writer and log indexer (they inherit its CPU): the log's work and the
requests share one core, the case where logging could slow a request. Each round runs
every variant once, in an order that turns every round, for ``--duration`` s after a 2 s
warm-up (60 s by default: next to a busy gateway the indexer parses in batches of a
DuckDB row group, ~40 s apart, and the kernel writes the log's pages to disk 30 s after
they were written: a shorter round would leave both out; at 4,500 requests/s on the
2-core VM of 27 Nov the indexer did not batch but passed every ~2 s, per ``strace``; each
variant starts after ``sync``, so none pays for the one before, and each pays for the
write-back of its first ~30 s, all alike):

* ``off``: ``--no-access-log``;
* ``on``: the access log and the log indexer, as ``mcgw serve`` runs by default;
* ``no-index``: the access log, no indexer (``--no-log-index``);
* ``index-cpu0``: as ``on``, with the indexer on CPU 0 (``MCGW_LOG_INDEXER_CPUS=0``),
  beside the load generator and the backend rather than the gateway: the remedy the
  README names for a gateway that needs its core;
* ``spin`` / ``spin-mem``: as ``off``, with a neighbour at the log's priority on the
  gateway's core (``SCHED_IDLE``, nice 19, in the gateway's session, as the writer and
  the indexer run) that never sleeps: a bare loop, or one copying 16 MiB from buffer
  to buffer (32 MiB touched a turn, the L3 cache of the VM of 27 Nov, as a DuckDB
  parse sweeps through memory). What any work in the gateway core's idle time costs
  the requests, whoever does it: the floor under the log's cost on a shared core;
  ``spin-alloc``: one that allocates, fills and frees 64 MiB a turn (page faults and
  the kernel's freeing, as DuckDB's passes have);
* ``on-shm``: as ``on``, its log directory on ``/dev/shm`` (memory): no disk writes,
  neither the log's nor the indexer's cache;
* ``sampled``: as ``on``, with a GCPBackendPolicy logging one request in ten
  (``sampleRate: 100000``): the gateway leaves the others out before making a record;
* ``nginx-off`` / ``nginx-on``: nginx as the proxy on CPU 1 instead, its access log off
  or on (``combined``, buffered as ``proxy.py`` sets it): the peer's cost of logging at
  the same rate, in the same run (or at ``--nginx-rate``: at a rate where nginx's core
  is as busy as mcgw's, the two logs' costs compare at the same load);
* with ``--baseline SRC`` (another tree's ``src``, e.g. from ``git worktree add``), the
  same variants of that tree, prefixed ``base-``. Each runs next to its twin of this
  tree, second in even rounds and first in odd ones (use an even ``--rounds``), so that
  neither tree always follows the other. An A/A run (this tree as its own baseline, 27
  Nov 08:22, 3 rounds) puts the noise: twins differed by up to 0.12 ms at p99 (once
  0.55) and 1.1 ms at p99.9, either way round.

Reported per variant: the spread (lowest–highest over the rounds) of p50, p90, p99 and
p99.9 (``http_req_duration`` as ``mcgw load`` measures it from CPU 0), the iterations the
generator dropped, the CPU seconds per 10 s of the gateway, the writer and the
indexer (utime + stime from ``/proc``, over the measured window), and each core's busy
seconds and the VM host's steal over the same window (``/proc/stat``, sampled at the
tick: the log's work that lands on the load generator's core, kernel threads included),
and how long the gateway's threads, and the other tasks but the load generator's,
waited runnable for a CPU (the run delay in ``/proc/*/task/*/schedstat``). Spreads rather than
medians: on a shared 2-core VM a single round moves by tens of percent, and a variant
"slows requests" only where its spread sits apart from ``off``'s. Reports land in
``bench/results/lograte-<time>.md``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import proxy  # bench/proxy.py: nginx, mcgw load and process helpers

from mcgw.testing import manifests as tm

TICKS = os.sysconf("SC_CLK_TCK")
FLAGS = {
    "off": ["--no-access-log"],
    "on": [],
    "no-index": ["--no-log-index"],
    "sampled": [],
    "index-cpu0": [],
    "spin": ["--no-access-log"],
    "spin-mem": ["--no-access-log"],
    "spin-alloc": ["--no-access-log"],
    "on-shm": [],
}
IN_MEMORY = frozenset({"on-shm"})
"""Variants whose log directory is on ``/dev/shm``."""
ENVS = {"index-cpu0": {"MCGW_LOG_INDEXER_CPUS": "0"}}
"""Variants that differ from ``on`` in the environment only."""
_IDLE = "import os; os.nice(19); os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))"
SPINNERS = {
    "spin": f"{_IDLE}  # lograte spinner\nwhile True: pass",
    "spin-mem": f"{_IDLE}  # lograte spinner\n"
    "src, dst = bytearray(16 << 20), bytearray(16 << 20)\nwhile True: dst[:] = src",
    "spin-alloc": f"{_IDLE}  # lograte spinner\nwhile True: bytearray(64 << 20)",
}
"""The neighbours of the ``spin`` variants (Python source), started beside the gateway."""
SAMPLED = tm.logging_policy("app", 100_000)
"""The ``sampled`` variant's policy, added to proxy.py's manifests (Service ``app``)."""
NGINX = {"nginx-off": False, "nginx-on": True}
"""The peer's variants: whether nginx, as the proxy, writes its access log."""
ROLES = (
    ("gateway", ""),
    ("writer", "mcgw.dataplane.logwriter"),
    ("indexer", " logs index"),
    ("spinner", "# lograte spinner"),
)
COLUMNS = (
    *(role for role, _ in ROLES),
    *("cpu0 busy", "cpu1 busy", "steal", "gateway waited", "others waited"),
)
"""The CPU columns: the processes', then the cores' (:func:`_cores`)."""


@dataclass
class Rounds:
    p50: list[float] = field(default_factory=list)
    p90: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    p999: list[float] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    cpu: dict[str, list[float]] = field(default_factory=dict)


def _tree(pid: int) -> list[tuple[int, str]]:
    """``pid`` and its descendants, with their command lines."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        out.append((p, cmd))
        todo.extend(children.get(p, []))
    return out


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def _cores() -> dict[str, float]:
    """Seconds each CPU was busy (user, nice, system, irq, softirq) and taken by the VM's
    host (steal), from ``/proc/stat``: what the log's work adds to the load generator's
    core, and what the host takes, neither of which the processes' own times show."""
    out: dict[str, float] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *ticks = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, ticks[:8])
        out[f"{name} busy"] = (user + nice + system + irq + softirq) / TICKS
        out["steal"] = out.get("steal", 0.0) + steal / TICKS
    return out


def _waits(roles: dict[str, list[int]]) -> dict[str, float]:
    """Seconds the gateway's threads, and every other task alive at both samples (the
    backend, kernel threads; not the load generator, which starts after the first and
    ends before the second), waited runnable for a CPU (``/proc/*/task/*/schedstat``'s
    run delay; this kernel has no per-CPU ``/proc/schedstat``): where the log's work
    holds up the measured path. The writer's and indexer's own waits are left out: at
    idle priority they wait by design."""
    gateway = {str(pid) for pid in roles.get("gateway", [])}
    log = {str(pid) for role, pids in roles.items() if role != "gateway" for pid in pids}
    out = {"gateway waited": 0.0, "others waited": 0.0}
    for stat in Path("/proc").glob("[0-9]*/task/*/schedstat"):
        if stat.parts[2] in log:
            continue
        try:
            delay = int(stat.read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            continue
        out["gateway waited" if stat.parts[2] in gateway else "others waited"] += delay
    return out


def _roles(pid: int) -> dict[str, int]:
    """Gateway, writer and indexer pids of the ``mcgw serve`` process ``pid``."""
    found = {"gateway": pid}
    for child, cmd in _tree(pid):
        for role, mark in ROLES[1:]:
            if mark in cmd:
                found[role] = child
    return found


def _variant(name: str) -> str:
    """The variant a run is of, either tree's (``base-on`` is ``on``)."""
    return name.removeprefix("base-")


def measure(
    name: str, argv: list[str], env: dict[str, str], port: int, work: Path, args: argparse.Namespace
) -> tuple[proxy.Result, dict[str, float]]:
    command = ["env", *(f"{k}={v}" for k, v in env.items()), *argv]
    spinner = SPINNERS.get(_variant(name))
    if spinner is not None:
        # Started by a shell that then becomes the gateway: the spinner is in the
        # gateway's session (Linux shares CPU between sessions first, autogroup) and its
        # process group, which proxy.process stops by its PID.
        script = f'{shlex.quote(sys.executable)} -c {shlex.quote(spinner)} & exec "$@"'
        command = ["sh", "-c", script, "sh", *command]
    with proxy.process(proxy.pinned(1, command), port, work / f"{name}.out") as proc:
        wanted = {"gateway"} | ({"writer"} if "--no-access-log" not in argv else set())
        if "--no-access-log" not in argv and "--no-log-index" not in argv:
            wanted.add("indexer")
        if spinner is not None:
            wanted.add("spinner")
        roles: dict[str, int] = {}
        deadline = time.monotonic() + 10
        while not wanted <= roles.keys() and time.monotonic() < deadline:
            time.sleep(0.1)
            roles = _roles(proc.pid)
        pids = {role: [pid] for role, pid in roles.items()}
        return _timed(name, port, work, args.rate, args.duration, pids)


def _timed(
    name: str, port: int, work: Path, rate: int, duration: int, roles: dict[str, list[int]]
) -> tuple[proxy.Result, dict[str, float]]:
    """The fixed-rate load (``rate`` requests/s) on ``port``, and the CPU seconds per
    10 s of each role's processes over the measured window: the warm-up's are taken out
    by reading the counters after it (proxy.fixed_rate warms up first, then measures)."""

    def cpu() -> dict[str, float]:
        own = {role: sum(map(_cpu_s, pids)) for role, pids in roles.items()}
        return own | _cores() | _waits(roles)

    before: dict[str, float] = {}
    result = proxy.fixed_rate(
        name, port, rate, duration, work, on_measure=lambda: before.update(cpu())
    )
    used = {role: seconds - before.get(role, 0.0) for role, seconds in cpu().items()}
    return result, {role: 10 * seconds / duration for role, seconds in used.items()}


def measure_nginx(
    name: str, work: Path, port: int, backend_port: int, args: argparse.Namespace
) -> tuple[proxy.Result, dict[str, float]]:
    """The peer at ``--nginx-rate`` (by default mcgw's): one nginx worker on CPU 1
    proxying to the backend."""
    server = proxy.proxy_server(work, port, backend_port, log=NGINX[name])
    conf = proxy.nginx_conf(work, name, server)
    argv = proxy.pinned(1, ["nginx", "-c", str(conf), "-p", str(work)])
    with proxy.process(argv, port, work / f"{name}.out") as proc:
        # The master forks one worker: the worker's CPU is the gateway's.
        workers: list[int] = []
        deadline = time.monotonic() + 10
        while not workers and time.monotonic() < deadline:
            time.sleep(0.1)
            workers = [pid for pid, _ in _tree(proc.pid) if pid != proc.pid]
        return _timed(name, port, work, args.nginx_rate, args.duration, {"gateway": workers})


def _record(r: Rounds, name: str, i: int, result: proxy.Result, cpu: dict[str, float]) -> None:
    r.p50.append(result.p50_ms)
    r.p90.append(result.p90_ms or 0.0)
    r.p99.append(result.p99_ms)
    r.p999.append(result.p999_ms or 0.0)
    r.dropped.append(result.dropped)
    for role, seconds in cpu.items():
        r.cpu.setdefault(role, []).append(seconds)
    print(
        f"round {i} {name:>14}: p50 {result.p50_ms:.2f} p90 {result.p90_ms or 0:.2f} "
        f"p99 {result.p99_ms:.2f} p99.9 {result.p999_ms or 0:.2f} ms, "
        + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
        + " CPU s/10 s",
        flush=True,
    )


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}" if values else "–"


def render(rows: dict[str, Rounds], args: argparse.Namespace, started: datetime) -> str:
    load = os.getloadavg()[0]
    out = [
        f"# Access log and latency at a fixed rate ({started:%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} CPUs, load average {load:.1f})",
        "",
        f"{args.rate:,} requests/s offered"
        + (f" to mcgw, {args.nginx_rate:,} to nginx," if args.nginx_rate != args.rate else "")
        + f" for {args.duration} s per round (`mcgw load`, "
        f"constant-arrival-rate, CPU 0, with the nginx backend); `mcgw serve` with its "
        f"writer and indexer on CPU 1; {args.rounds} rounds, variants alternating. "
        "Spreads are lowest–highest over the rounds; CPU is seconds per 10 s.",
        "",
        "| variant | p50 ms | p90 ms | p99 ms | p99.9 ms | dropped | gateway CPU | writer CPU "
        "| indexer CPU | spinner CPU | CPU 0 busy | CPU 1 busy | steal | gateway waited "
        "| others waited |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        cpu = [_spread(r.cpu.get(role, [])) for role in COLUMNS]
        out.append(
            f"| {name} | {_spread(r.p50)} | {_spread(r.p90)} | {_spread(r.p99)} "
            f"| {_spread(r.p999)} "
            f"| {min(r.dropped, default=0)}–{max(r.dropped, default=0)} | {' | '.join(cpu)} |"
        )
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=4500, help="requests/s offered")
    parser.add_argument("--nginx-rate", type=int, help="requests/s offered to nginx (--rate)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=60, help="measured seconds a round")
    parser.add_argument(
        "--variants", default="off,on,no-index", help="of " + ",".join([*FLAGS, *NGINX])
    )
    parser.add_argument("--baseline", type=Path, help="another tree's src to compare")
    args = parser.parse_args()
    if args.nginx_rate is None:
        args.nginx_rate = args.rate
    proxy.ensure_tools()
    started = datetime.now(UTC)
    variants: dict[str, tuple[list[str], dict[str, str]]] = {}
    for v in args.variants.split(","):
        if v in NGINX:
            continue
        env = ENVS.get(v, {})
        variants[v] = (FLAGS[v], env)
        if args.baseline is not None:
            base = {**env, "PYTHONPATH": str(args.baseline.resolve())}
            variants[f"base-{v}"] = (FLAGS[v], base)
    peers = [v for v in args.variants.split(",") if v in NGINX]
    rows = {name: Rounds() for name in [*variants, *peers]}
    with (
        tempfile.TemporaryDirectory(prefix="mcgw-lograte-") as tmp,
        tempfile.TemporaryDirectory(prefix="mcgw-lograte-", dir="/dev/shm") as shm,
    ):
        work = Path(tmp)
        backend_port, port = proxy.free_port(), proxy.free_port()
        conf = proxy.nginx_conf(work, "backend", proxy.backend_server(backend_port))
        nginx = proxy.pinned(0, ["nginx", "-c", str(conf), "-p", str(work)])
        with proxy.process(nginx, backend_port, work / "backend.out"):
            manifests = proxy.mcgw_manifests(work, backend_port)
            sampled = work / "sampled-config"
            sampled.mkdir()
            (sampled / "bench.yaml").write_text(
                (manifests / "bench.yaml").read_text() + "\n" + SAMPLED
            )
            # A variant and its base- twin run back to back, the twin second in even
            # rounds and first in odd ones: neither tree always runs after the other.
            ours = [v for v in args.variants.split(",") if v in FLAGS]
            twins = [[n for n in (v, f"base-{v}") if n in rows] for v in ours]
            groups = twins + [[p] for p in peers]
            for i in range(args.rounds):
                turned = groups[i % len(groups) :] + groups[: i % len(groups)]
                order = [n for g in turned for n in (g if i % 2 == 0 else g[::-1])]
                for name in order:
                    # The last variant's log lines go to disk now, not in this one's
                    # window: the kernel writes dirty pages back 30 s after they were
                    # written, and its disk interrupts land on whichever CPU the VM
                    # gives them (here CPU 1, the proxy's).
                    os.sync()
                    if name in NGINX:
                        result, cpu = measure_nginx(name, work, port, backend_port, args)
                        _record(rows[name], name, i, result, cpu)
                        continue
                    flags, env = variants[name]
                    config = sampled if name.endswith("sampled") else manifests
                    argv = [sys.executable, "-m", "mcgw", "serve", "-f", str(config)]
                    argv += ["--no-watch", "--bind", "127.0.0.1", "--port-map", f"80:{port}"]
                    logs = Path(shm if _variant(name) in IN_MEMORY else work)
                    argv += ["--log-dir", str(logs / f"logs-{name}-{i}"), *flags]
                    result, cpu = measure(name, argv, env, port, work, args)
                    _record(rows[name], name, i, result, cpu)
    proxy.save_report("lograte", render(rows, args, started), started)
    return 0


if __name__ == "__main__":
    # SIGTERM (`timeout`, kill) ends a run as Ctrl-C does: through the finally
    # blocks that stop the processes it started, by their PIDs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())

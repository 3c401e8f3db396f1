#!/usr/bin/env python3
"""Benchmark: `mcgw load` vs wrk, hey and Locust as load generators, in one run.

One fast backend (an nginx worker answering a whereami-sized JSON, pinned to CPU 0) and,
one after the other, each load generator pinned to CPU 1 with one process (one OS thread
where the tool allows it), a closed loop of N keep-alive connections, no think time, for
a fixed duration:

    wrk          wrk -t1 -cN                       (C, the ceiling)
    hey          hey -cpus 1 -c N                  (Go)
    locust       Locust FastHttpUser, headless, 1 process, N users, wait_time 0
    mcgw-url     mcgw load --vus N --sleep 0 URL   (the plain-URL path)
    mcgw-py      mcgw load --vus N scenario.py     (a Python scenario: vu.http.get)
    mcgw-js      mcgw load --vus N test.js         (SEED.md's test.js without the sleep)

Since every generator gets exactly one core, its requests/s is its requests/s per core;
the CPU column (process CPU time / wall time) shows whether it used that core fully.
Rounds alternate the tools (noise from other work on the machine hits all of them) and
the table gives each tool's median. Ratios are against hey and Locust; the goals (issue
5) are ≥ 2× hey and ≥ 5× Locust for Python scenarios, ≥ 1× hey for JavaScript.

Then a longer `mcgw load` run at full speed (Python scenario) has its resident memory
sampled from /proc every few seconds, to show that it stays flat (HdrHistograms, no
per-request state kept).

Usage: python bench/load.py [--duration 8] [--connections 32] [--rounds 5]
                            [--memory-duration 60] [--only mcgw-py,hey]
(installs nginx, wrk and hey with apt-get, and Locust into this Python with pip, when
they are missing and we are root; otherwise `pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, astuple, dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proxy  # bench/proxy.py: the nginx backend and the process helpers

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BACKEND_CPU = 0
GENERATOR_CPU = 1
TOOLS = ("wrk", "hey", "locust", "mcgw-url", "mcgw-py", "mcgw-js")

LOCUSTFILE = """\
from locust import FastHttpUser, constant, task


class Bench(FastHttpUser):
    wait_time = constant(0)

    @task
    def index(self):
        self.client.get("/")
"""

PY_SCENARIO = """\
from __future__ import annotations

options = {}


async def default(vu):
    await vu.http.get(vu.env["TARGET"])
"""

# SEED.md's test.js, unchanged but for the URL and without the sleep(1).
JS_SCRIPT = """\
import http from 'k6/http';
import {{ sleep }} from 'k6';
export default function () {{
  http.get('{url}');
}}
"""


@dataclass
class Measured:
    """One process run to its end: output, CPU time and resident memory samples."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float
    max_rss_kb: int
    rss_samples: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since start, VmRSS in kB)."""
    cpu_samples: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since start, CPU seconds used so far), every 0.25 s."""
    core_samples: list[tuple[float, CoreTimes]] = field(default_factory=list)
    """(seconds since start, the generator's core's times from /proc/stat), every 0.25 s."""

    def cpu_at(self, t: float) -> float:
        """CPU seconds used by time ``t`` (since start), interpolated between samples."""
        points = [(0.0, 0.0), *self.cpu_samples, (self.wall_s, self.cpu_s)]
        for (t0, c0), (t1, c1) in itertools.pairwise(points):
            if t0 <= t <= t1:
                return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c0
        return self.cpu_s

    def core_between(self, begin: float, end: float) -> CoreTimes:
        """The generator's core's times spent between ``begin`` and ``end`` (the samples
        nearest inside that window; zeros without samples)."""
        inside = [(t, c) for t, c in self.core_samples if begin <= t <= end]
        if len(inside) < 2:
            return CoreTimes()
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        scale = (end - begin) / (t1 - t0) if t1 > t0 else 0.0
        return CoreTimes(*((b - a) * scale for a, b in zip(astuple(c0), astuple(c1), strict=True)))


@dataclass(frozen=True)
class CoreTimes:
    """Seconds one CPU spent, from /proc/stat: all busy time (user, nice, system, irq,
    softirq), of it in interrupts (irq + softirq: with tick-based accounting also charged
    to the task interrupted, mostly the generator, whose loopback traffic it is), and
    stolen by the hypervisor."""

    busy: float = 0.0
    interrupts: float = 0.0
    steal: float = 0.0


def _core_times(cpu: int) -> CoreTimes | None:
    with suppress(OSError, ValueError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith(f"cpu{cpu} "):
                user, nice, system, _, _, irq, softirq, steal = (
                    int(v) / _TICK for v in line.split()[1:9]
                )
                return CoreTimes(user + nice + system + irq + softirq, irq + softirq, steal)
    return None


@dataclass
class Sample:
    name: str
    requests_per_s: float
    """As the tool reports it (wall clock)."""
    requests: int
    errors: int
    cpu_share: float
    """CPU time of the generator in the middle of its run / that time (1.0 = a full core)."""
    per_cpu_s: float
    """requests_per_s / cpu_share: its speed per core, whatever else ran."""
    interrupts_share: float = 0.0
    """Share of the generator's core in irq/softirq time during the same window (mostly
    the loopback network work of the generator's own requests)."""
    others_share: float = 0.0
    """Share of the generator's core busy with anything but the generator: other
    processes, interrupts not charged to it (noise the per-core figure cannot see)."""
    steal_share: float = 0.0
    """Share of the generator's core stolen by the hypervisor in the same window."""


@dataclass
class Row:
    name: str
    per_cpu_s: float
    requests_per_s: float
    samples: list[float]
    errors: int
    cpu_share: float
    interrupts_share: float = 0.0
    others_share: float = 0.0
    steal_share: float = 0.0
    paired_vs_hey: float | None = None
    """Median over rounds of this tool's per-core speed / hey's in the same round: the two
    runs of a round are minutes apart at most, so a slow phase of the machine hits both."""


def ensure_tools() -> None:
    missing = [tool for tool in ("nginx", "wrk", "hey") if shutil.which(tool) is None]
    if missing:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            sys.exit(f"bench needs {', '.join(missing)}: apt-get install {' '.join(missing)}")
        print(f"installing {', '.join(missing)} with apt-get…", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        packages = ["nginx-light" if t == "nginx" else t for t in missing]
        subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True, env=env)
    if importlib.util.find_spec("locust") is None:
        if os.geteuid() != 0:
            sys.exit("bench needs Locust: pip install -e '.[bench]'")
        print("installing locust with pip…", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "locust"], check=True)


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float | None:
    with suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime, all threads
    return None


def _rss_kb(pid: int) -> int:
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure(
    argv: list[str], timeout_s: float, sample_every_s: float = 0.0, cwd: Path | None = None
) -> Measured:
    """Run ``argv`` to its end; its CPU time comes from wait4's rusage (all its threads)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        begin = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd, start_new_session=True)
        samples: list[tuple[float, int]] = []
        cpu: list[tuple[float, float]] = []
        core: list[tuple[float, CoreTimes]] = []
        next_sample = begin + sample_every_s
        next_cpu = begin
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                now = time.monotonic()
                if now - begin > timeout_s:
                    raise RuntimeError(f"{argv[:4]} still running after {timeout_s:.0f}s")
                if now >= next_cpu:
                    used = _cpu_s(proc.pid)
                    if used is not None:
                        cpu.append((now - begin, used))
                    times = _core_times(GENERATOR_CPU)
                    if times is not None:
                        core.append((now - begin, times))
                    next_cpu += 0.25
                if sample_every_s and now >= next_sample:
                    samples.append((round(now - begin, 1), _rss_kb(proc.pid)))
                    next_sample += sample_every_s
                time.sleep(0.02)
        except BaseException:
            # Stop what we started, by its PID (and its process group).
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            os.waitpid(proc.pid, 0)
            proc.returncode = -9
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - begin
        out.seek(0)
        err.seek(0)
        return Measured(
            returncode=proc.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            wall_s=wall,
            cpu_s=usage.ru_utime + usage.ru_stime,
            max_rss_kb=usage.ru_maxrss,
            rss_samples=samples,
            cpu_samples=cpu,
            core_samples=core,
        )


def _checked(name: str, m: Measured) -> Measured:
    if m.returncode != 0:
        tail = (m.stderr or m.stdout)[-2000:]
        raise RuntimeError(f"{name} exited with {m.returncode}:\n{tail}")
    return m


TRIM_S = 1.5
"""Seconds cut from both ends of a run when measuring its CPU share: start-up (Python
imports, ramp-up) and shut-down (summary, CSV) are not the load loop."""


def _sample(
    name: str, m: Measured, rps: float, requests: int, errors: int, window_s: float
) -> Sample:
    # The load ran for about the last ``window_s`` seconds of the process (a little less:
    # it still prints its report); its CPU share is taken from the middle of that window.
    begin, end = m.wall_s - window_s + TRIM_S, m.wall_s - TRIM_S
    used = m.cpu_at(end) - m.cpu_at(begin)
    share = max(used / (end - begin), 1e-3)
    core = m.core_between(begin, end)
    others = max(core.busy - used, 0.0) / (end - begin)
    return Sample(
        name,
        rps,
        requests,
        errors,
        share,
        rps / share,
        core.interrupts / (end - begin),
        others,
        core.steal / (end - begin),
    )


def run_wrk(url: str, args: argparse.Namespace, work: Path) -> Sample:
    argv = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", url]
    m = _checked("wrk", measure(proxy.pinned(GENERATOR_CPU, argv), args.duration + 30))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", m.stdout)[1])  # type: ignore[index]
    requests = int(re.search(r"(\d+) requests in", m.stdout)[1])  # type: ignore[index]
    errors = 0
    for found in re.finditer(r"(?:Non-2xx or 3xx responses|Socket errors):\s*(.*)", m.stdout):
        errors += sum(int(n) for n in re.findall(r"\d+", found[1]))
    return _sample("wrk", m, rps, requests, errors, args.duration)


def run_hey(url: str, args: argparse.Namespace, work: Path) -> Sample:
    argv = ["hey", "-cpus", "1", "-c", str(args.connections), "-z", f"{args.duration}s", url]
    m = _checked("hey", measure(proxy.pinned(GENERATOR_CPU, argv), args.duration + 30))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", m.stdout)[1])  # type: ignore[index]
    by_status = {
        int(code): int(n) for code, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", m.stdout)
    }
    errors = sum(n for code, n in by_status.items() if not 200 <= code < 400)
    errors += sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]\s+Get ", m.stdout, re.M))
    return _sample("hey", m, rps, sum(by_status.values()), errors, args.duration)


def run_locust(url: str, args: argparse.Namespace, work: Path) -> Sample:
    locustfile = work / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    prefix = work / "locust"
    n = str(args.connections)
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "--host",
        url.rstrip("/"),
        "-u",
        n,
        "-r",
        n,  # all users at once: no ramp inside the measured window
        "-t",
        f"{args.duration}s",
        "--only-summary",
        "--csv",
        str(prefix),
        "--loglevel",
        "WARNING",
        "--skip-log-setup",
    ]
    m = _checked("locust", measure(proxy.pinned(GENERATOR_CPU, argv), args.duration + 60, cwd=work))
    with (work / "locust_stats.csv").open() as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return _sample(
        "locust",
        m,
        float(row["Requests/s"]),
        int(row["Request Count"]),
        int(row["Failure Count"]),
        args.duration,
    )


def _mcgw(name: str, target: str, args: argparse.Namespace, work: Path, *extra: str) -> Sample:
    export = work / f"{name}.json"
    argv = [
        sys.executable,
        "-m",
        "mcgw",
        "load",
        "--vus",
        str(args.connections),
        "--duration",
        f"{args.duration}s",
        "--summary-export",
        str(export),
        *extra,
        target,
    ]
    m = _checked(name, measure(proxy.pinned(GENERATOR_CPU, argv), args.duration + 60))
    doc = json.loads(export.read_text())
    reqs = doc["metrics"]["http_reqs"]
    failed = doc["metrics"].get("http_req_failed", {}).get("passes", 0)
    return _sample(name, m, float(reqs["rate"]), int(reqs["count"]), int(failed), args.duration)


def run_mcgw_url(url: str, args: argparse.Namespace, work: Path) -> Sample:
    return _mcgw("mcgw-url", url, args, work, "--sleep", "0")


def run_mcgw_py(url: str, args: argparse.Namespace, work: Path) -> Sample:
    scenario = work / "scenario.py"
    scenario.write_text(PY_SCENARIO)
    return _mcgw("mcgw-py", str(scenario), args, work, "-e", f"TARGET={url}")


def run_mcgw_js(url: str, args: argparse.Namespace, work: Path) -> Sample:
    script = work / "test.js"
    script.write_text(JS_SCRIPT.format(url=url))
    return _mcgw("mcgw-js", str(script), args, work)


RUNNERS: dict[str, Callable[[str, argparse.Namespace, Path], Sample]] = {
    "wrk": run_wrk,
    "hey": run_hey,
    "locust": run_locust,
    "mcgw-url": run_mcgw_url,
    "mcgw-py": run_mcgw_py,
    "mcgw-js": run_mcgw_js,
}


def memory_run(url: str, args: argparse.Namespace, work: Path) -> Measured:
    """A long full-speed Python-scenario run with its RSS sampled from /proc."""
    scenario = work / "scenario.py"
    scenario.write_text(PY_SCENARIO)
    argv = [
        sys.executable,
        "-m",
        "mcgw",
        "load",
        "--vus",
        str(args.connections),
        "--duration",
        f"{args.memory_duration}s",
        "-e",
        f"TARGET={url}",
        str(scenario),
    ]
    every = max(1.0, args.memory_duration / 12)
    return _checked(
        "memory run",
        measure(proxy.pinned(GENERATOR_CPU, argv), args.memory_duration + 60, every),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=int, default=8, help="seconds per measurement (at least 5)"
    )
    parser.add_argument("--connections", type=int, default=32, help="connections / VUs / users")
    parser.add_argument("--rounds", type=int, default=5, help="measurements per tool (median)")
    parser.add_argument(
        "--memory-duration", type=int, default=60, help="seconds of the memory run (0: skip)"
    )
    parser.add_argument("--only", default=",".join(TOOLS), help="comma-separated tools to run")
    args = parser.parse_args()
    if args.duration < 5:
        parser.error("--duration must be at least 5 (the CPU share skips 1.5 s at each end)")
    tools = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tools {unknown}: choose from {', '.join(TOOLS)}")
    ensure_tools()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > GENERATOR_CPU:
        # This process polls every 20 ms: on the backend's core, not the generator's.
        os.sched_setaffinity(0, {BACKEND_CPU})
    samples: dict[str, list[Sample]] = {t: [] for t in tools}
    memory: Measured | None = None
    with tempfile.TemporaryDirectory(prefix="mcgw-bench-load-") as tmp:
        work = Path(tmp)
        port = proxy.free_port()
        backend = proxy.nginx_conf(work, "backend", proxy.backend_server(port))
        url = f"http://127.0.0.1:{port}/"
        with proxy.process(
            proxy.pinned(BACKEND_CPU, ["nginx", "-c", str(backend), "-p", str(work)]),
            port,
            work / "backend.out",
        ):
            for round_no in range(args.rounds):
                # Alternate the order so that slow phases of the machine hit every tool.
                order = tools if round_no % 2 == 0 else tools[::-1]
                for tool in order:
                    s = RUNNERS[tool](url, args, work)
                    samples[tool].append(s)
                    print(
                        f"round {round_no + 1} {tool:9s} {s.per_cpu_s:>9,.0f} req/CPU-s"
                        f" {s.requests_per_s:>9,.0f} req/s  cpu {s.cpu_share:.2f}"
                        f" (core: irq {s.interrupts_share:.2f} others {s.others_share:.2f}"
                        f" steal {s.steal_share:.2f})  errors {s.errors}",
                        flush=True,
                    )
            if args.memory_duration > 0:
                print(f"memory run: mcgw-py for {args.memory_duration}s…", flush=True)
                memory = memory_run(url, args, work)
    rows = [
        Row(
            name=t,
            per_cpu_s=statistics.median(s.per_cpu_s for s in samples[t]),
            requests_per_s=statistics.median(s.requests_per_s for s in samples[t]),
            samples=[round(s.per_cpu_s) for s in samples[t]],
            errors=sum(s.errors for s in samples[t]),
            cpu_share=statistics.median(s.cpu_share for s in samples[t]),
            interrupts_share=statistics.median(s.interrupts_share for s in samples[t]),
            others_share=max(s.others_share for s in samples[t]),
            steal_share=max(s.steal_share for s in samples[t]),
            paired_vs_hey=statistics.median(
                a.per_cpu_s / b.per_cpu_s for a, b in zip(samples[t], samples["hey"], strict=True)
            )
            if "hey" in samples
            else None,
        )
        for t in tools
    ]
    report = render(rows, memory, args)
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"load-{stamp}.md").write_text(report)
    data = {
        "rows": [asdict(r) for r in rows],
        "memory": None
        if memory is None
        else {"samples_kb": memory.rss_samples, "max_rss_kb": memory.max_rss_kb},
    }
    (RESULTS / f"load-{stamp}.json").write_text(json.dumps(data, indent=2))
    return 0


GOALS = {"mcgw-py": (2.0, 5.0), "mcgw-url": (2.0, 5.0), "mcgw-js": (1.0, 0.0)}
"""Issue 5's goals per core: (× hey, × Locust)."""


def render(rows: list[Row], memory: Measured | None, args: argparse.Namespace) -> str:
    by_name = {r.name: r for r in rows}
    hey, locust = by_name.get("hey"), by_name.get("locust")
    lines = [
        f"# mcgw load benchmark ({datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} cores)",
        "",
        f"Closed loop, {args.connections} keep-alive connections, no think time,"
        f" {args.duration}s per run; backend nginx (1 worker) on CPU {BACKEND_CPU}, each"
        f" generator alone on CPU {GENERATOR_CPU}, one process. *req/s* as the tool reports"
        " it; *CPU* = the generator's CPU share in the middle of its run (from /proc);"
        " *per core* = req/s ÷ CPU (robust to other work on the machine and to a backend"
        f" that cannot keep up). Medians of {args.rounds} rounds in alternating order."
        " *vs hey* = the ratio of the medians; *paired* = the median of each round's own"
        " ratio (both runs in the same phase of the machine: the steadier figure on a busy"
        " or virtual machine, and the one the goal is judged on). *core* = what else the"
        f" generator's core (CPU {GENERATOR_CPU}) did in the same window, from /proc/stat:"
        " irq+softirq time (median; mostly the generator's own loopback traffic, charged"
        " to it), anything busy but the generator, and hypervisor steal (the worst round"
        " of each for these two): noise the per-core figure cannot see. The benchmark"
        " itself runs on CPU"
        f" {BACKEND_CPU}.",
        "",
        "| generator | per core (req/CPU-s) | runs | req/s | CPU | errors"
        " | vs hey | paired vs hey | vs Locust | goal | core: irq / others / steal |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        vs_hey = f"{r.per_cpu_s / hey.per_cpu_s:.2f}×" if hey else "–"
        paired = f"{r.paired_vs_hey:.2f}×" if r.paired_vs_hey is not None else "–"
        vs_locust = f"{r.per_cpu_s / locust.per_cpu_s:.2f}×" if locust else "–"
        goal = ""
        if r.name in GOALS and hey and locust and r.paired_vs_hey is not None:
            want_hey, want_locust = GOALS[r.name]
            met = r.paired_vs_hey >= want_hey and r.per_cpu_s >= want_locust * locust.per_cpu_s
            wanted = f"≥{want_hey:g}× hey" + (f", ≥{want_locust:g}× Locust" if want_locust else "")
            goal = f"{wanted}: {'met' if met else 'NOT met'}"
        runs = " / ".join(f"{v:,}" for v in r.samples)
        lines.append(
            f"| {r.name} | {r.per_cpu_s:,.0f} | {runs} | {r.requests_per_s:,.0f}"
            f" | {r.cpu_share:.0%} | {r.errors} | {vs_hey} | {paired} | {vs_locust} | {goal}"
            f" | {r.interrupts_share:.0%} / {r.others_share:.0%} / {r.steal_share:.0%} |"
        )
    if memory is not None:
        mb = [kb / 1024 for _, kb in memory.rss_samples]
        steady = mb[len(mb) // 4 :] or mb or [0.0]
        lines += [
            "",
            f"Memory: `mcgw load --vus {args.connections} --duration {args.memory_duration}s"
            " scenario.py` at full speed, VmRSS sampled from /proc:",
            "",
            "| t (s) | " + " | ".join(f"{t:g}" for t, _ in memory.rss_samples) + " |",
            "|---|" + "---:|" * len(memory.rss_samples),
            "| RSS (MB) | " + " | ".join(f"{v:.1f}" for v in mb) + " |",
            "",
            f"Max RSS {memory.max_rss_kb / 1024:.1f} MB; from the first quarter on the RSS"
            f" moved by {max(steady) - min(steady):.1f} MB"
            f" ({min(steady):.1f}–{max(steady):.1f} MB).",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # SIGTERM (`timeout`, kill) ends a run as Ctrl-C does: through the finally
    # blocks that stop the processes it started, by their PIDs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())

"""What the log indexer costs: CPU per access line.

Usage: python bench/indexcost.py --passes [--lines 9000] [--count 40] [--baseline SRC]

``--passes``: the indexer's passes alone. ``--count`` times, ``--lines`` access lines
(made by :class:`mcgw.logschema.AccessFormatter`, as ``bench/logs.py`` makes them) are
appended to a log file and one pass (``mcgw.analytics.indexer``, the cache kept open
between passes as ``--follow`` does) reads them; user and system CPU µs per line over
all passes (checkpoints included), the slowest pass, and the bytes the passes hand to
``write`` calls (the cache's blocks, its write-ahead log, spill files, and a tree's copy
of the new lines if it makes one) per byte of lines. 9,000 lines is one 2 s
pass at 4,500 requests/s. With ``--baseline SRC`` another tree's indexer (its ``src/``)
runs the same passes in a process of its own, alternating over ``--rounds``.

The gateway's latency with the indexer on and off: ``bench/lograte.py`` (its ``on``
and ``no-index`` variants). Reports land in ``bench/results/indexcost-<time>.md``.
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
        written = 0
        try:
            for chunk in chunks:
                with log.open("ab") as out:
                    out.write(chunk)
                before = resource.getrusage(resource.RUSAGE_SELF)
                wrote = _written()
                t0 = time.perf_counter()
                if pass_.run() is not True:
                    raise SystemExit("a pass did not catch up")
                slowest = max(slowest, time.perf_counter() - t0)
                after = resource.getrusage(resource.RUSAGE_SELF)
                written += _written() - wrote
                user += after.ru_utime - before.ru_utime
                system += after.ru_stime - before.ru_stime
            before = resource.getrusage(resource.RUSAGE_SELF)
            wrote = _written()
            pass_.close()  # the last checkpoint: a query that wants the cache waits for it
            after = resource.getrusage(resource.RUSAGE_SELF)
            written += _written() - wrote
            close = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        finally:
            pass_.close()
            lock.close()
    finally:
        shutil.rmtree(work)
    n = lines * count
    appended = sum(map(len, chunks))
    return {
        "user_us": user * 1e6 / n,
        "sys_us": system * 1e6 / n,
        "slowest_ms": slowest * 1e3,
        "close_ms": close * 1e3,
        # The cache's blocks, its write-ahead log, DuckDB's spill files; and a copy of
        # the new lines for DuckDB, in a tree whose indexer makes one (before 27 Nov
        # 10:00; it splices them into a pipe since, which write counts do not see).
        "written": written / appended,
    }


def _written() -> int:
    """Bytes this process has handed to write system calls (``/proc/self/io``)."""
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("wchar:"))


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
        "| last checkpoint ms | written per byte of lines |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, values in runs.items():

        def col(key: str, fmt: str = ".1f", values: list[dict[str, float]] = values) -> str:
            return " / ".join(f"{v[key]:{fmt}}" for v in values)

        total = " / ".join(f"{v['user_us'] + v['sys_us']:.1f}" for v in values)
        lines.append(
            f"| {name} | {col('user_us')} | {col('sys_us')} | {total} "
            f"| {col('slowest_ms', '.0f')} | {col('close_ms', '.0f')} "
            f"| {col('written', '.2f')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--passes", action="store_true", help="the indexer's CPU per line")
    mode.add_argument("--passes-json", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--lines", type=int, default=9000, help="lines per pass (--passes)")
    parser.add_argument("--count", type=int, default=40, help="passes per run (--passes)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, metavar="SRC", help="another tree's src/")
    args = parser.parse_args()
    if args.passes_json:
        print(json.dumps(passes_json(*args.passes_json)))
        return 0
    text = passes(args)
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"indexcost-{datetime.now(UTC):%Y%m%dT%H%M%S}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

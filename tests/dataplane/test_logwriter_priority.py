"""The access log's writer yields the CPU to requests, yet keeps up when starved.

The writer works in a thread at Linux's SCHED_IDLE priority, inside the gateway's
session (Linux shares CPU between sessions first: in a session of its own the writer
took an equal share against the gateway whatever its priority). A task that leaves it
no CPU at all (a gateway at full load) must not make it fall behind: its main thread, at
normal priority, takes over while frames wait.

Real processes on real CPUs: the writer started by :class:`accesslog.AccessLog`, and a
busy-looping process on the writer's CPU standing for the gateway at full load.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_accesslog import record, run
from test_logwriter import _whole_lines

from mcgw.dataplane import accesslog, logwriter

pytestmark = pytest.mark.skipif(
    not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE and autogroups are Linux's"
)

_SCHED_OTHER, _SCHED_IDLE = 0, 5
"""Values of the ``policy`` field of /proc/<pid>/task/<tid>/stat."""


def _policies(pid: int) -> list[int]:
    """The scheduling policy of every thread of ``pid``, sorted."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        out.append(int(fields[38]))  # field 41 of stat(5); the split starts at field 3
    return sorted(out)


def test_the_writer_shares_the_gateways_session_and_works_at_idle_priority(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        log = accesslog.AccessLog(tmp_path, "p", flush_interval_s=0.01)
        await log.start()
        try:
            pid = log.writer_pid
            assert pid is not None
            # A group of its own (a terminal's Ctrl-C reaches only the gateway), the
            # gateway's session (so its autogroup: CPU shares are the tasks' own).
            assert os.getpgid(pid) == pid
            assert os.getsid(pid) == os.getsid(0)
            policies: list[int] = []
            async with asyncio.timeout(10):
                while _SCHED_IDLE not in policies:
                    await asyncio.sleep(0.02)
                    policies = _policies(pid)
            # The worker thread idles; the main thread stands by at normal priority.
            assert policies == [_SCHED_OTHER, _SCHED_IDLE]
            log.write(record(0))
            await log.flush()
            assert len(_whole_lines(tmp_path)) == 1
        finally:
            await log.close()

    run(main())


@pytest.fixture
def busy_cpu() -> Iterator[int]:
    """A process spinning on one CPU (at most a minute), stopped by its pid; the CPU."""
    cpu = min(os.sched_getaffinity(0))
    spin = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end: pass\n"
    hog = subprocess.Popen([sys.executable, "-c", spin])
    try:
        os.sched_setaffinity(hog.pid, {cpu})
        yield cpu
    finally:
        hog.kill()
        hog.wait()


def test_a_writer_starved_of_cpu_takes_normal_priority_and_loses_nothing(
    tmp_path: Path, busy_cpu: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer runs on the busy CPU only: its SCHED_IDLE thread gets next to nothing
    # there (measured: formatting these records then takes minutes); the main thread
    # must notice and write them at normal priority, sharing the CPU with the spinner.
    monkeypatch.setenv(logwriter.CPUS_ENV, str(busy_cpu))
    records = 20_000

    async def main() -> None:
        log = accesslog.AccessLog(tmp_path, "p", flush_interval_s=0.01)
        await log.start()
        try:
            for i in range(records):
                log.write(record(i))
                if i % 1000 == 999:
                    await asyncio.sleep(0)  # a turn for the flusher, as requests give it
            t0 = time.monotonic()
            await asyncio.wait_for(log.flush(), 20)
            took = time.monotonic() - t0
        finally:
            t1 = time.monotonic()
            await log.close()  # the end of input, too, waits for the rescuer
            closing = time.monotonic() - t1
        assert log.stats.dropped == 0
        assert took < 15, f"the starved writer took {took:.1f} s to write {records} records"
        assert closing < 5, f"the starved writer took {closing:.1f} s to end"

    run(main())
    assert len(_whole_lines(tmp_path)) == records

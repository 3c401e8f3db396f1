"""The access log's writer reads in paces while traffic flows, not once per hand-over.

Each hand-over of the gateway is a pipe write; a writer blocked in its read is woken by
every one (~100 a second), and a wake-up costs a VM like this one ~0.3 ms of CPU. The
writer pauses :data:`logwriter.PACE_S` after a read that drained the pipe, so frames
gather there and a turn takes many at once. Counted here from the kernel's side: the
writer's voluntary context switches (each a sleep it woke from) while a real
:class:`accesslog.AccessLog` hands it a batch every few milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from test_accesslog import record, run
from test_logwriter import _whole_lines

from mcgw.dataplane import accesslog, logwriter


def _sleeps(pid: int) -> int:
    """Voluntary context switches of every thread of ``pid`` so far."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def test_the_writer_wakes_per_pace_not_per_hand_over(tmp_path: Path) -> None:
    seconds, hand_over_s, per_batch = 1.0, 0.004, 8
    records = 0

    async def main() -> None:
        nonlocal records
        log = accesslog.AccessLog(tmp_path, "p", flush_interval_s=hand_over_s)
        await log.start()
        try:
            pid = log.writer_pid
            assert pid is not None
            log.write(record(0))
            await log.flush()  # started and idle
            records = 1
            before = _sleeps(pid)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for _ in range(per_batch):
                    log.write(record(records))
                    records += 1
                await asyncio.sleep(hand_over_s)
            woke = _sleeps(pid) - before
            await log.flush()
        finally:
            await log.close()
        assert log.stats.dropped == 0
        # ~250 hand-overs; per pace a read and an acknowledgement, and the rescuer's
        # looks (logwriter.RESCUE_CHECK_S): ~50. Woken per hand-over it was 250 or more.
        paces = seconds / logwriter.PACE_S
        looks = seconds / logwriter.RESCUE_CHECK_S
        assert woke <= 2 * (2 * paces + looks), f"{woke} wake-ups in {seconds} s"

    run(main())
    assert len(_whole_lines(tmp_path)) == records

"""The gateway's access log: one Cloud-Logging-shaped JSON line per request.

The request path pays for one ``list.append`` of an :class:`mcgw.logschema.AccessRecord`
(a tuple of plain values) and nothing else. A flusher task wakes every
``flush_interval_s``, takes the whole batch (swapping the list, which is atomic on
the loop's thread), and hands it to one dedicated writer thread which samples it
(GCPBackendPolicy ``logging``, :meth:`AccessLog.set_sampling`), turns it into
``LogEntry`` JSON lines (:class:`mcgw.logschema.AccessFormatter`) and appends them to
the current file. The loop never waits on disk, and sampling and JSON encoding run
off the loop's critical path. Batches are written in order by a single thread, each
as whole lines, so lines never interleave or tear; files rotate by size and are kept
by count and age (:mod:`mcgw.logfiles`).

Files: ``<directory>/access-<UTC time the file was opened>-<pid>.jsonl`` — the pid
keeps several gateway workers apart, the time keeps rotations apart and sorts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mcgw import logfiles, logschema
from mcgw.dataplane.settings import ProxySettings

log = logging.getLogger(__name__)

DEFAULT_MAX_FILE_BYTES = logfiles.DEFAULT_MAX_BYTES

FULL_RATE = 1_000_000
"""A sample rate of every request, in millionths (GCPBackendPolicy ``sampleRate``)."""
_FULL = FULL_RATE


_SWITCH_INTERVAL_S = 0.0005
"""The GIL switch interval while the writer thread runs (see :meth:`AccessLog.flush`)."""


@dataclass(slots=True)
class AccessLogStats:
    written: int = 0
    """Records written to disk."""
    dropped: int = 0
    """Records lost because the disk refused them (the error is logged)."""
    sampled_out: int = 0
    """Records not written because their backend's sample rate left them out."""
    bytes: int = 0


class AccessLog:
    """Buffered writer of access records.

    Args:
        directory: where the files go (created if missing); None disables logging.
        project_id: the Cloud project named in every entry.
        flush_interval_s: how long a record may wait in memory.
        max_file_bytes: size at which a new file is started (a single batch larger
            than this still goes whole lines into one file); ``retention`` wins.
        retention: file size, count and age limits (default: :class:`logfiles.Retention`
            with ``max_file_bytes``).
        clock: epoch seconds, for file names and ages.
    """

    __slots__ = (
        "_batch",
        "_credit",
        "_enabled",
        "_executor",
        "_files",
        "_flusher",
        "_formatter",
        "_sampling",
        "_stop",
        "directory",
        "flush_interval_s",
        "project_id",
        "stats",
    )

    def __init__(
        self,
        directory: Path | None,
        project_id: str,
        *,
        flush_interval_s: float = 0.2,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        retention: logfiles.Retention | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.directory = directory
        self.project_id = project_id
        self._formatter = logschema.AccessFormatter(project_id)
        self.flush_interval_s = flush_interval_s
        self.stats = AccessLogStats()
        if retention is None:
            retention = logfiles.Retention(max_bytes=max_file_bytes)
        self._files = logfiles.RotatingFiles(
            directory if directory is not None else Path("."),
            "access",
            retention,
            clock=clock if clock is not None else time.time,
        )
        self._enabled = directory is not None
        self._batch: list[logschema.AccessRecord] = []
        self._sampling: dict[str, int] = {}
        """Backend name → share logged in millionths, for backends not fully logged."""
        self._credit: dict[str, int] = {}
        """Per-backend sampling accumulator (writer thread only)."""
        self._executor: ThreadPoolExecutor | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None

    @classmethod
    def from_settings(cls, settings: ProxySettings) -> AccessLog:
        """The access log a gateway with ``settings`` writes (disabled without a directory)."""
        return cls(
            settings.access_log_dir,
            settings.project_id,
            retention=logfiles.Retention(
                max_bytes=settings.access_log_max_bytes,
                keep_files=settings.access_log_keep_files,
                max_age_s=settings.access_log_max_age_s,
            ),
        )

    @property
    def files(self) -> list[Path]:
        """Every file written, oldest first (some may since have been removed)."""
        return self._files.files

    @property
    def max_file_bytes(self) -> int:
        return self._files.retention.max_bytes

    def set_sampling(self, rates: Mapping[str, int]) -> None:
        """Log only ``rate`` millionths of the requests of each backend named (0: none).

        Backends not named are logged in full. Called on the loop when a new route
        table is served; the writer thread picks the new map up with its next batch.
        """
        self._sampling = {name: max(0, rate) for name, rate in rates.items() if rate < _FULL}

    @property
    def enabled(self) -> bool:
        return self._enabled

    def write(self, record: logschema.AccessRecord) -> None:
        """Queue one record; never blocks, never fails."""
        if self._enabled:
            self._batch.append(record)

    async def start(self) -> None:
        """Start the periodic flusher. Call once, from the loop that calls write."""
        if not self._enabled or self._flusher is not None:
            return
        self._stop = asyncio.Event()
        self._flusher = asyncio.get_running_loop().create_task(
            self._run(self._stop), name="access-log flusher"
        )

    async def flush(self) -> None:
        """Write every record queued so far."""
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        if self._executor is None:
            # The writer thread formats a batch holding the GIL; the event loop gets it
            # back only at a switch interval. Python's default of 5 ms made that wait
            # most of the gateway's p99 with the log on; 0.5 ms keeps it in step with
            # request latencies (bench/proxy.py: mcgw vs mcgw-no-log).
            sys.setswitchinterval(min(sys.getswitchinterval(), _SWITCH_INTERVAL_S))
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="mcgw-accesslog")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._write_batch, batch)

    async def close(self) -> None:
        """Write everything queued and close the file; later writes are ignored."""
        if self._flusher is not None and self._stop is not None:
            # Not cancel(): a cancelled await does not stop the writer thread, and
            # the final flush must come after the one in progress.
            self._stop.set()
            await self._flusher
            self._flusher = None
        await self.flush()
        self._enabled = False
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.get_running_loop().run_in_executor(executor, self._close_file)
            executor.shutdown(wait=True)

    async def _run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.flush_interval_s)
            await self.flush()

    # -- writer thread ---------------------------------------------------------

    def _write_batch(self, batch: list[logschema.AccessRecord]) -> None:
        sampling = self._sampling
        if sampling:
            batch = self._sample(batch, sampling)
        line_bytes = self._formatter.line_bytes
        # One pass while holding the GIL: handing it back in between (sleep(0) per
        # chunk) was measured to cost the event loop a third of its throughput, each
        # hand-back becoming a forced switch (bench/logcost.py).
        lines = [line_bytes(record) for record in batch]
        try:
            size = self._files.write(lines)
        except OSError as exc:
            written = int(getattr(exc, "written_lines", 0))
            lost = len(lines) - written
            self.stats.written += written
            self.stats.dropped += lost
            log.error("access log: %d records lost: %s", lost, exc)
            return
        self.stats.written += len(lines)
        self.stats.bytes += size

    def _sample(
        self, batch: list[logschema.AccessRecord], sampling: dict[str, int]
    ) -> list[logschema.AccessRecord]:
        """Keep each backend's share of records, deterministically: an accumulator per
        backend gains the rate (millionths) per request and logs one when it reaches a
        million, so 250000 logs the 1st, 5th, 9th… request and exactly a quarter."""
        kept: list[logschema.AccessRecord] = []
        credit = self._credit
        for record in batch:
            backend = record.backend
            rate = sampling.get(backend)
            if rate is None:
                kept.append(record)
                continue
            # A backend's first request is logged (unless its rate is 0).
            level = credit.get(backend, _FULL - rate if rate else 0) + rate
            if level >= _FULL:
                level -= _FULL
                kept.append(record)
            credit[backend] = level
        self.stats.sampled_out += len(batch) - len(kept)
        return kept

    def _close_file(self) -> None:
        self._files.close()

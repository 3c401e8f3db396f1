"""The gateway's access log: one Cloud-Logging-shaped JSON line per request.

The request path pays for one ``list.append`` of an :class:`mcgw.logschema.AccessRecord`
(a tuple of plain values) and nothing else. A flusher task wakes every
``flush_interval_s``, takes the whole batch (swapping the list, which is atomic on
the loop's thread), and hands it to one dedicated writer thread which turns it into
``LogEntry`` JSON lines (:func:`mcgw.logschema.access_entry`) and appends them to the
current file. The loop never waits on disk and JSON encoding runs off the loop's
critical path. Batches are written in order by a single thread, each as whole
lines, so lines never interleave or tear; a new file is started when the current one
would grow past ``max_file_bytes``.

Files: ``<directory>/access-<UTC time the file was opened>-<pid>.jsonl`` — the pid
keeps several gateway workers apart, the time keeps rotations apart and sorts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from mcgw import logschema

log = logging.getLogger(__name__)

DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024


@dataclass(slots=True)
class AccessLogStats:
    written: int = 0
    """Records written to disk."""
    dropped: int = 0
    """Records lost because the disk refused them (the error is logged)."""
    bytes: int = 0
    files: int = 0
    """Files opened so far."""


class AccessLog:
    """Buffered writer of access records.

    Args:
        directory: where the files go (created if missing); None disables logging.
        project_id: the Cloud project named in every entry.
        flush_interval_s: how long a record may wait in memory.
        max_file_bytes: size at which a new file is started (a single batch larger
            than this still goes whole lines into one file).
        clock: epoch seconds, for file names.
    """

    __slots__ = (
        "_batch",
        "_clock",
        "_enabled",
        "_executor",
        "_file",
        "_file_bytes",
        "_flusher",
        "_formatter",
        "_stop",
        "directory",
        "files",
        "flush_interval_s",
        "max_file_bytes",
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
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.directory = directory
        self.project_id = project_id
        self._formatter = logschema.AccessFormatter(project_id)
        self.flush_interval_s = flush_interval_s
        self.max_file_bytes = max_file_bytes
        self.stats = AccessLogStats()
        self.files: list[Path] = []
        """Every file written, oldest first."""
        self._clock = clock if clock is not None else time.time
        self._enabled = directory is not None
        self._batch: list[logschema.AccessRecord] = []
        self._executor: ThreadPoolExecutor | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        # Owned by the writer thread once started.
        self._file: BinaryIO | None = None
        self._file_bytes = 0

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
        line_bytes = self._formatter.line_bytes
        lines = [line_bytes(record) for record in batch]
        start = 0
        try:
            chunk_bytes = 0
            for i, line in enumerate(lines):
                # Rotate at a line boundary; a file always takes at least one line.
                if (
                    self._file_bytes + chunk_bytes + len(line) > self.max_file_bytes
                    and self._file_bytes + chunk_bytes > 0
                ):
                    self._append(lines[start:i], chunk_bytes)
                    self._close_file()
                    start, chunk_bytes = i, 0
                chunk_bytes += len(line)
            self._append(lines[start:], chunk_bytes)
        except OSError as exc:
            # Lines before ``start`` are on disk; the rest of the batch is lost.
            lost = len(lines) - start
            self.stats.dropped += lost
            log.error("access log: %d records lost: %s", lost, exc)
            self._close_file()

    def _append(self, lines: list[bytes], size: int) -> None:
        if not lines:
            return
        if self._file is None:
            self._open_file()
        assert self._file is not None
        self._file.write(b"".join(lines))
        self._file.flush()
        self._file_bytes += size
        self.stats.written += len(lines)
        self.stats.bytes += size

    def _open_file(self) -> None:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"access-{stamp}-{os.getpid()}.jsonl"
        # "xb": never append to (or clobber) another writer's file.
        suffix = 0
        while True:
            try:
                self._file = path.open("xb")
                break
            except FileExistsError:
                suffix += 1
                path = self.directory / f"access-{stamp}-{os.getpid()}-{suffix}.jsonl"
        self._file_bytes = 0
        self.files.append(path)
        self.stats.files += 1

    def _close_file(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            file.close()
        self._file_bytes = 0

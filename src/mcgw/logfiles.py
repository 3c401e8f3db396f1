"""Log files rotated by size and kept by age and count: whole lines, never torn.

A :class:`RotatingFiles` belongs to one writer (the access log's writer process, the
fleet's container log's thread): it is handed batches of complete lines and appends them with one
``write`` per file, starting a new file at a line boundary when the current one would
grow past ``max_bytes``. Nothing else ever writes to its files (they are created with
``O_EXCL``), so a line is either wholly in one file or not written at all, and a reader
sees at most a partial *last* line while a write is in progress.

Retention runs when a file is opened and at most once a minute otherwise. It removes
the oldest files of the same kind beyond ``keep_files`` and any older than
``max_age_s`` — only closed files: this writer's own, and those of writers that are
gone (a file names its writer's pid; a live process's files are left to it, so an
idle gateway worker never loses the file it is still appending to).

Files: ``<directory>/<prefix>-<UTC open time>-<pid>[-<n>].jsonl``; names sort by time.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_KEEP_FILES = 0
"""Every file is kept, however many."""
DEFAULT_MAX_AGE_S = 30 * 86_400.0
"""Cloud Logging's retention for the ``_Default`` bucket: 30 days."""

_PRUNE_EVERY_S = 60.0
_MEND_WINDOW = 1 << 20
"""How far back from a file's end :meth:`RotatingFiles.mend` looks for the last line end."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How big a file grows and which files are kept."""

    max_bytes: int = DEFAULT_MAX_BYTES
    """Size at which a new file is started (a single line larger than this still goes
    whole into a file of its own)."""
    keep_files: int = DEFAULT_KEEP_FILES
    """Most files of one kind kept in the directory, the current one included;
    0 keeps every file."""
    max_age_s: float = DEFAULT_MAX_AGE_S
    """Closed files last modified longer ago than this are removed; 0 keeps them."""

    def __post_init__(self) -> None:
        if self.max_bytes <= 0:
            raise ValueError(f"log file size limit must be > 0 bytes, not {self.max_bytes}")
        if self.keep_files < 0:
            raise ValueError(f"files to keep must be >= 0, not {self.keep_files}")
        if self.max_age_s < 0:
            raise ValueError(f"log file age limit must be >= 0 s, not {self.max_age_s}")


def parse_size(text: str) -> int:
    """Parse a byte size: ``1048576``, ``64KiB``, ``256MiB``, ``1GiB`` (or KB/MB/GB = 1000ⁿ).

    Raises:
        ValueError: not a size.
    """
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]i?B?)?\s*", text, re.IGNORECASE)
    if match is None:
        raise ValueError(f"{text!r} is not a size (e.g. 256MiB, 1GiB, 1048576)")
    number, unit = int(match.group(1)), (match.group(2) or "").upper()
    power = {"": 0, "K": 1, "M": 2, "G": 3}[unit[:1]]
    base = 1024 if "I" in unit or unit in ("K", "M", "G") else 1000
    return int(number * base**power)


def parse_age(text: str) -> float:
    """Parse an age: ``3600``/``3600s``, ``90m``, ``12h``, ``7d`` → seconds.

    Raises:
        ValueError: not an age.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if match is None:
        raise ValueError(f"{text!r} is not an age (e.g. 12h, 7d, 3600s)")
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}[match.group(2)]
    return float(match.group(1)) * scale


_NAME_RE = re.compile(r"-(\d{8}T\d{6}\.\d{6}Z)-(\d+)(?:-\d+)?\.jsonl$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, someone else's
    return True


def _tail(file: BinaryIO) -> tuple[int, bytes]:
    """The size of ``file`` and its last :data:`_MEND_WINDOW` bytes (all, if smaller)."""
    size = file.seek(0, os.SEEK_END)
    file.seek(max(0, size - _MEND_WINDOW))
    return size, file.read()


class RotatingFiles:
    """Appends batches of lines to size-rotated files; used by one thread only.

    Args:
        directory: created if missing.
        prefix: the kind of file, e.g. ``access``.
        retention: size, count and age limits.
        clock: epoch seconds, for file names and ages.
        pid: the process the files are named after (default: this one); a writer
            process working for a gateway worker names its files after the worker.
    """

    def __init__(
        self,
        directory: Path,
        prefix: str,
        retention: Retention | None = None,
        *,
        clock: Callable[[], float] = time.time,
        pid: int | None = None,
    ) -> None:
        self.directory = directory
        self.prefix = prefix
        self.retention = retention if retention is not None else Retention()
        self.files: list[Path] = []
        """Every file this writer opened, oldest first (some may have been removed)."""
        self.removed: list[Path] = []
        """Files removed by retention."""
        self._clock = clock
        self._file: BinaryIO | None = None
        self._file_bytes = 0
        self._pid = os.getpid() if pid is None else pid
        self._next_prune = 0.0

    @property
    def current(self) -> Path | None:
        """The file being appended to, if one is open."""
        return self.files[-1] if self._file is not None else None

    def write(self, lines: Sequence[bytes]) -> int:
        """Append whole lines (each ending in a newline), rotating at line boundaries.

        Returns:
            How many bytes were written.

        Raises:
            OSError: the disk refused; ``written_lines`` of the error says how many of
                ``lines`` are on disk (the first ones, in order).
        """
        limit = self.retention.max_bytes
        start = 0
        chunk = 0
        total = 0
        try:
            for i, line in enumerate(lines):
                size = len(line)
                if self._file_bytes + chunk + size > limit and self._file_bytes + chunk > 0:
                    total += self._append(lines[start:i], chunk)
                    self.close()
                    start, chunk = i, 0
                chunk += size
            total += self._append(lines[start:], chunk)
        except OSError as exc:
            exc.written_lines = start  # type: ignore[attr-defined]
            self.close()
            raise
        if self._clock() >= self._next_prune:
            self.prune()
        return total

    def write_block(self, data: bytes) -> int:
        """Append ``data``, whole lines (the last one ending in a newline): as :meth:`write`
        of them, in one write unless the current file would grow past ``max_bytes``.

        Returns:
            How many bytes were written.

        Raises:
            OSError: as :meth:`write`.
        """
        if self._file_bytes + len(data) > self.retention.max_bytes:
            return self.write(data.splitlines(keepends=True))
        try:
            self._append((data,), len(data))
        except OSError as exc:
            exc.written_lines = 0  # type: ignore[attr-defined]
            self.close()
            raise
        if self._clock() >= self._next_prune:
            self.prune()
        return len(data)

    def _append(self, lines: Sequence[bytes], size: int) -> int:
        if not lines:
            return 0
        if self._file is None:
            self._open()
        assert self._file is not None
        self._file.write(b"".join(lines))
        self._file.flush()
        self._file_bytes += size
        return size

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        base = f"{self.prefix}-{stamp}-{self._pid}"
        path = self.directory / f"{base}.jsonl"
        suffix = 0
        while True:
            try:
                # "xb": never append to (or clobber) another writer's file.
                self._file = path.open("xb")
                break
            except FileExistsError:
                suffix += 1
                path = self.directory / f"{base}-{suffix}.jsonl"
        self._file_bytes = 0
        self.files.append(path)
        self.prune()

    def mend(self) -> int:
        """Cut a torn last line off the newest file named after this writer's pid.

        A writer killed in the middle of a ``write`` may leave part of a line at the end
        of its file; the writer started in its place calls this first, so that readers
        only ever see whole lines. Returns how many bytes were cut.
        """
        own = self._own()
        if not own:
            return 0
        try:
            with own[-1].open("r+b") as file:
                size, data = _tail(file)
                tail = len(data)
                if not data or data.endswith(b"\n"):
                    return 0
                end = data.rfind(b"\n")
                if end < 0 and tail < size:
                    return 0  # no line end in the window: a huge line, left alone
                keep = size - tail + end + 1
                file.truncate(keep)
                return size - keep
        except OSError:
            return 0

    def last_lines(self) -> list[bytes]:
        """The last whole line of each file named after this writer's pid (a file is
        only ever written by the writer process that made it): how far each writer
        got. Empty files, and tails without a line end in their last megabyte, give
        none."""
        out = []
        for path in self._own():
            try:
                with path.open("rb") as file:
                    size, data = _tail(file)
            except OSError:
                continue
            end = data.rfind(b"\n")
            if end < 0:
                continue
            start = data.rfind(b"\n", 0, end) + 1
            if start or len(data) == size:
                out.append(data[start : end + 1])
        return out

    def _own(self) -> list[Path]:
        """This pid's files of this kind, oldest first."""
        try:
            listing = list(self.directory.glob(f"{self.prefix}-*-{self._pid}*.jsonl"))
        except OSError:
            return []
        own = []
        for path in listing:
            match = _NAME_RE.search(path.name)
            if match is not None and int(match.group(2)) == self._pid:
                own.append(path)
        return sorted(own, key=lambda path: path.name)

    def close(self) -> None:
        """Close the current file; the next write opens a new one."""
        if self._file is not None:
            file, self._file = self._file, None
            file.close()
        self._file_bytes = 0

    def prune(self) -> list[Path]:
        """Apply the count and age limits now; return the files removed."""
        keep, max_age = self.retention.keep_files, self.retention.max_age_s
        now = self._clock()
        self._next_prune = now + _PRUNE_EVERY_S
        if not keep and not max_age:
            return []
        current = self.current
        ours = set(self.files)
        candidates: list[tuple[str, Path]] = []
        try:
            listing = list(self.directory.glob(f"{self.prefix}-*.jsonl"))
        except OSError:
            return []
        dead: dict[int, bool] = {}
        for path in listing:
            match = _NAME_RE.search(path.name)
            if match is None or not path.name.startswith(self.prefix + "-"):
                continue
            stamp, pid = match.group(1), int(match.group(2))
            if path != current and path not in ours and pid != self._pid:
                if pid not in dead:
                    dead[pid] = not _alive(pid)
                if not dead[pid]:
                    continue  # a live writer's file: only it may retire it
            candidates.append((stamp, path))
        candidates.sort()
        doomed: list[Path] = []
        if keep:
            # The current file counts towards the limit but is never removed.
            older = [p for _, p in candidates if p != current]
            doomed.extend(older[: max(len(candidates) - keep, 0)])
        if max_age:
            for _, path in candidates:
                if path == current or path in doomed:
                    continue
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime > max_age:
                        doomed.append(path)
        removed: list[Path] = []
        for path in doomed:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
        self.removed.extend(removed)
        return removed

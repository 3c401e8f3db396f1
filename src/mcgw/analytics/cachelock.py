"""Who may open a log directory's DuckDB cache, between processes.

DuckDB lets one process at a time open a database file for writing, and answers any
other with an error at once. Queries and the log indexer (:mod:`mcgw.analytics.indexer`)
all write (each brings the cache up to date before reading it), so they take turns
through an advisory ``flock`` on a file next to the cache:

* a query *waits* for its turn (:meth:`CacheLock.acquire`, bounded), and while it waits
  it holds a shared lock on a second file, the *want* file;
* the indexer only ever *tries* (:meth:`CacheLock.try_acquire`), and during a pass it
  watches the want file (:meth:`CacheLock.wanted`): a query waiting makes it abandon
  the pass (a rolled-back transaction), so a query never waits for the indexer's work,
  only for another query. So that an idle indexer need not look for waiters all the
  time, a waiting query also sends a datagram to the indexer's *wake* socket
  (:meth:`CacheLock.nudge`), which the indexer waits on (:meth:`CacheLock.listen`).
  The socket is in Linux's abstract namespace, named after the directory: nothing in
  the directory but regular files (``shutil.copytree`` refused the FIFO that was there
  before), and nothing left behind when the indexer ends.

``flock`` locks go when their process does, however it ends: a killed holder leaves
no stale lock behind. The holder writes its pid and role into the lock file, for the
message a waiting query prints.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

LOCK_NAME = ".mcgw-analytics.lock"
"""Held (exclusively) by whoever has the cache open."""

WANT_NAME = ".mcgw-analytics.want"
"""Held (shared) by every query waiting for the cache."""

WAKE_PREFIX = b"\0mcgw-analytics-wake:"
"""Start of the wake socket's abstract address; the log directory's device and inode
follow (a name that moves with the directory, and that a directory made later in its
place may reuse: the worst a stray datagram does is make an indexer look)."""

POLL_S = 0.02
"""How often a waiting query tries again."""


def _is_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is the one at ``path`` (False: ``path`` is gone, or
    cannot be looked at: its directory replaced by a file, made unreadable)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


class CacheLock:
    """Turns at one log directory's cache. Not thread-safe: one per user of the cache.

    Args:
        log_dir: the directory holding the cache.
        role: what the holder is (``query``, ``indexer``), shown to whoever waits.

    Methods raise OSError when the lock files cannot be created (a read-only
    directory): the caller then does without the cache.
    """

    def __init__(self, log_dir: Path, role: str) -> None:
        self.path = log_dir / LOCK_NAME
        self.want_path = log_dir / WANT_NAME
        self.log_dir = log_dir
        self.role = role
        self._fd: int | None = None
        self._want_fd: int | None = None
        self._nudger: socket.socket | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never waits."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {self.role}\n".encode(), 0)
        return True

    def acquire(
        self,
        wait_s: float,
        on_wait: Callable[[str], None] | None = None,
        *,
        notice_after_s: float = 1.0,
    ) -> bool:
        """Take the lock, waiting up to ``wait_s`` seconds; False if still held then.

        While waiting, the want file tells an indexer to step aside. ``on_wait`` gets
        one message (who holds the lock) once the wait passes ``notice_after_s``.
        """
        if self._fd is not None:
            return True
        start = time.monotonic()
        want = os.open(self.want_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            told = False
            while True:
                with contextlib.suppress(BlockingIOError):
                    # An indexer checking for waiters holds this exclusively for an
                    # instant; a shared lock is had on the next try.
                    fcntl.flock(want, fcntl.LOCK_SH | fcntl.LOCK_NB)
                if self.try_acquire():
                    return True
                self.nudge()
                waited = time.monotonic() - start
                if waited >= wait_s:
                    return False
                if not told and waited >= notice_after_s and on_wait is not None:
                    on_wait(
                        f"waiting for the log cache {self.path.parent}: {self.holder()} "
                        f"has it (up to {wait_s:g} s)"
                    )
                    told = True
                time.sleep(POLL_S)
        finally:
            os.close(want)  # drops the shared lock

    def wanted(self) -> bool:
        """Whether a query is waiting for the cache (for the holder to step aside)."""
        if self._want_fd is not None and not _is_at(self._want_fd, self.want_path):
            # The directory was removed, or made anew: its queries wait on its own.
            os.close(self._want_fd)
            self._want_fd = None
        if self._want_fd is None:
            try:
                self._want_fd = os.open(self.want_path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                return False  # no directory: no query can wait for its cache
        try:
            fcntl.flock(self._want_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._want_fd, fcntl.LOCK_UN)
        return False

    def listen(self) -> socket.socket | None:
        """A socket that turns readable when a query waits (:meth:`nudge`), for the
        holder to select on; read it empty each time. None where there can be none
        (not Linux, no directory yet, no descriptor left): the holder then looks at
        :meth:`wanted` on a timer.

        Raises:
            OSError: ``EADDRINUSE``, another indexer listens for this directory.
        """
        address = self._wake_address()
        if address is None:
            return None
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        except OSError:
            return None
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise
            return None
        sock.setblocking(False)
        return sock

    def listens(self, sock: socket.socket) -> bool:
        """Whether ``sock`` (from :meth:`listen`) still gets this directory's nudges:
        not if the directory was removed, or moved and made anew (queries then nudge
        the new one's address)."""
        bound: bytes = sock.getsockname()  # an abstract address: bytes
        return bound == self._wake_address()

    def nudge(self) -> None:
        """Wake whoever :meth:`listen` s (nobody, if no indexer runs): one datagram,
        never waiting."""
        address = self._wake_address()
        if address is None:
            return
        # No descriptor left, nobody listening (ECONNREFUSED), or plenty of nudges
        # wait already (EAGAIN): the indexer still looks now and then (its LISTEN_S).
        with contextlib.suppress(OSError):
            if self._nudger is None:
                self._nudger = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._nudger.setblocking(False)
            self._nudger.sendto(b"w", address)

    def _wake_address(self) -> bytes | None:
        if not sys.platform.startswith("linux"):
            return None  # the abstract namespace is Linux's
        try:
            st = os.stat(self.log_dir)
        except OSError:
            return None
        return WAKE_PREFIX + b"%d:%d" % (st.st_dev, st.st_ino)

    def stale(self) -> bool:
        """Whether the lock held is on a file no longer at its path: the directory was
        removed, or removed and made anew, and whatever the holder opened in it since
        taking the lock may be the new directory's (a cache it holds no lock for).
        Comparing the directory's inode number instead could be fooled: a new
        directory may get the old one's number; the lock file's cannot be reused while
        it is held open."""
        return self._fd is not None and not _is_at(self._fd, self.path)

    def holder(self) -> str:
        """``pid N (role)`` of the holder, as it wrote it, or ``another process``."""
        with contextlib.suppress(OSError, ValueError):
            pid, role = self.path.read_text(encoding="utf-8").split(maxsplit=1)
            return f"pid {int(pid)} ({role.strip()})"
        return "another process"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    def close(self) -> None:
        self.release()
        if self._want_fd is not None:
            os.close(self._want_fd)
            self._want_fd = None
        if self._nudger is not None:
            self._nudger.close()
            self._nudger = None

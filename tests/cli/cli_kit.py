"""Run the real ``mcgw`` command as a subprocess and talk to it over loopback."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LISTENER_LINE = re.compile(r"gateway: listener (\S+) on http://([\d.]+):(\d+)")


def mcgw(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``mcgw ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "mcgw", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )


class Server:
    """A long-running ``mcgw up|serve`` and the address it announced."""

    def __init__(self, proc: subprocess.Popen[str], address: tuple[str, int], said: list[str]):
        self.proc = proc
        self.address = address
        self.said = said

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout_s)
        finally:
            assert self.proc.stderr is not None
            self.said += self.proc.stderr.read().splitlines()


@contextmanager
def running(*args: str, ready_timeout_s: float = 30) -> Iterator[Server]:
    """Start ``mcgw ARGS``; yield once it printed ``ready``; stop it by its PID after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcgw", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    said: list[str] = []
    address: tuple[str, int] | None = None
    deadline = time.monotonic() + ready_timeout_s
    try:
        assert proc.stderr is not None
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                raise AssertionError(f"mcgw exited before ready: {said}")
            said.append(line.rstrip())
            found = LISTENER_LINE.search(line)
            if found:
                address = (found[2], int(found[3]))
            if line.startswith("ready"):
                break
        assert address is not None, said
        yield Server(proc, address, said)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

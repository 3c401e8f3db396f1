"""The request log: one JSON line per request on stdout, like a pod's container log.

whereami logs JSON objects with a ``severity``; GKE (and the local fleet) lift that into
the LogEntry. A request only appends a tuple to a list (no formatting, no I/O); a
background thread wakes every ``interval`` seconds, swaps the list out, formats the
lines and writes them in one call. So a slow reader of the pipe slows the log thread,
never the event loop, and lines are never torn: each batch is whole lines.
"""

from __future__ import annotations

import json
import threading
from typing import IO, Any

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

Record = tuple[bytes, bytes, int, float]
"""(method, target, status, latency in seconds), as the protocol has them."""


class RequestLog:
    """Buffers request records and writes them as JSON lines from a background thread."""

    def __init__(self, stream: IO[bytes], interval_s: float = 0.25) -> None:
        self._stream = stream
        self._interval_s = interval_s
        self._records: list[Record] = []
        self._lines: list[bytes] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0
        """Lines that could not be written (the reader went away)."""

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="store-log", daemon=True)
            self._thread.start()

    def record(self, method: bytes, target: bytes, status: int, latency_s: float) -> None:
        """Remember one request; called on the event loop, so it must stay this cheap."""
        # list.append is atomic under the GIL; the writer swaps the list under the lock.
        self._records.append((method, target, status, latency_s))

    def line(self, severity: str, message: str, **fields: Any) -> None:
        """Write a free-form line now (start-up, shutdown, errors): rare, so unbuffered."""
        entry = {"severity": severity, "message": message, **fields}
        with self._lock:
            self._write([_encode(entry).encode() + b"\n"])

    def flush(self) -> None:
        """Format and write everything recorded so far."""
        with self._lock:
            records, self._records = self._records, []
            if records:
                self._write([_format(r) for r in records])

    def close(self) -> None:
        """Stop the writer thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.flush()

    def _write(self, lines: list[bytes]) -> None:
        try:
            self._stream.write(b"".join(lines))
            self._stream.flush()
        except (OSError, ValueError):
            # The pipe's reader is gone or the stream closed: logging must not take the
            # server down with it.
            self.dropped += len(lines)


def _format(record: Record) -> bytes:
    method_b, target_b, status, latency_s = record
    method = method_b.decode("latin-1")
    path = target_b.decode("latin-1")
    return (
        _encode(
            {
                "severity": "INFO",
                "message": f"{method} {path} {status}",
                "method": method,
                "path": path,
                "status": status,
                "latency": round(latency_s, 6),
            }
        ).encode()
        + b"\n"
    )

"""Pods' stdout and stderr as container log entries, like GKE's logging agent writes them.

The event loop only appends ``(time, text, stream, pod)`` to a list per line read; a
background thread turns batches into :func:`mcgw.logschema.container_entry` JSON lines
and appends each batch whole to ``<log dir>/containers-<UTC open time>-<pid>.jsonl``,
rotated by size and kept by count and age as the access log's files are
(:mod:`mcgw.logfiles`), so lines are never torn and a slow disk never stalls the loop.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from mcgw import logfiles, logschema

FLUSH_INTERVAL_S = 0.2
"""How often buffered lines are written."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where a line came from: the ``resource.labels`` of its entries."""

    project_id: str
    cluster: str
    zone: str
    namespace: str
    pod: str
    container: str
    labels: tuple[tuple[str, str], ...] = ()
    """The pod's labels, written as the entry's ``k8s-pod/<key>`` labels as GKE does."""


_Line = tuple[float, str, str, Source]


class ContainerLog:
    """Buffered, thread-written, size-rotated JSONL files of container log entries.

    Args:
        directory: where the files go (created if missing).
        retention: file size, count and age limits (default: :class:`logfiles.Retention`).
        interval_s: how often buffered lines are written.
    """

    def __init__(
        self,
        directory: Path,
        *,
        retention: logfiles.Retention | None = None,
        interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._files = logfiles.RotatingFiles(directory, "containers", retention)
        self._closed = False
        self._interval_s = interval_s
        self._lines: list[_Line] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet-container-log", daemon=True)
        self._thread.start()

    @property
    def path(self) -> Path | None:
        """The file written last (None before the first line)."""
        return self._files.files[-1] if self._files.files else None

    @property
    def files(self) -> list[Path]:
        """Every file written, oldest first (some may since have been removed)."""
        return list(self._files.files)

    def append(self, timestamp: float, text: str, stream: str, source: Source) -> None:
        """Remember one line; called on the event loop, so it only appends."""
        self._lines.append((timestamp, text, stream, source))

    def flush(self) -> None:
        """Write every line appended so far."""
        with self._lock:
            lines, self._lines = self._lines, []
            if not lines or self._closed:
                return
            try:
                self._files.write([_format(line).encode() for line in lines])
            except OSError as exc:
                # The loop must not die of a full disk; the pods' lines are the loss.
                print(f"mcgw: container log: {exc}", file=sys.stderr)

    def close(self) -> None:
        """Stop the writer thread, write what is left, close the file. Idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.flush()
        with self._lock:
            self._closed = True
            self._files.close()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.flush()


def _format(line: _Line) -> str:
    timestamp, text, stream, s = line
    entry = logschema.container_entry(
        timestamp=timestamp,
        text=text,
        stream=stream,
        project_id=s.project_id,
        cluster=s.cluster,
        zone=s.zone,
        namespace=s.namespace,
        pod=s.pod,
        container=s.container,
        pod_labels=s.labels,
    )
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"

"""``mcgw logs tail``: the last log entries, filtered, as compact lines; optionally follow.

No SQL here: tail reads the JSONL files directly, backwards from their ends for the
last ``n`` entries, so its cost does not grow with the size of the logs. Following
polls the directory: new bytes of known files, and new files (a rotation or another
writer) from their start; a line still being written is held until its newline.

Pure parts, tested without files: :class:`Filter` (does an entry match) and
:func:`compact` (one entry as one line of text).
"""

from __future__ import annotations

import heapq
import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcgw import logschema
from mcgw.analytics import errors

KINDS = ("access", "container", "all")
"""``--type``: the gateway's access log, the pods' output, or both."""

_LB = "http_load_balancer"
_BLOCK = 64 * 1024
_STATUS_RE = re.compile(r"^([1-5])xx$|^(\d{3})$")


@dataclass(frozen=True, slots=True)
class Filter:
    """What an entry must be to be shown; empty fields match everything."""

    kind: str = "access"
    cluster: tuple[str, ...] = ()
    """Backend cluster (access) or the pod's cluster (container)."""
    zone: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    """Status codes (``503``) or classes (``5xx``); access entries only."""
    route: str = ""
    """Substring of the route name; access entries only."""
    reason: tuple[str, ...] = ()
    """Routing reasons (:data:`mcgw.logschema.ROUTING_REASONS`)."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise errors.AnalyticsError(f"unknown log type {self.kind!r}; use one of {KINDS}")
        for status in self.status:
            if not _STATUS_RE.match(status.lower()):
                raise errors.AnalyticsError(
                    f"status {status!r} is neither a code (503) nor a class (5xx)"
                )
        for reason in self.reason:
            if reason not in logschema.ROUTING_REASONS:
                known = ", ".join(logschema.ROUTING_REASONS)
                raise errors.AnalyticsError(f"unknown routing reason {reason!r}; use {known}")

    def matches(self, entry: dict[str, Any]) -> bool:
        resource = entry.get("resource") or {}
        access = resource.get("type") == _LB
        if self.kind == "access" and not access:
            return False
        if self.kind == "container" and access:
            return False
        if access:
            payload = entry.get("jsonPayload") or {}
            cluster, zone = payload.get("cluster", ""), payload.get("zone", "")
            status = (entry.get("httpRequest") or {}).get("status", 0)
            if self.status and not any(_status_matches(s, status) for s in self.status):
                return False
            if self.route and self.route not in payload.get("route", ""):
                return False
            if self.reason and payload.get("reason", "") not in self.reason:
                return False
        else:
            if self.status or self.route or self.reason:
                return False  # access-only filters select access entries
            labels = resource.get("labels") or {}
            cluster, zone = labels.get("cluster_name", ""), labels.get("location", "")
        if self.cluster and cluster not in self.cluster:
            return False
        return not self.zone or zone in self.zone


def _status_matches(spec: str, status: int) -> bool:
    spec = spec.lower()
    if spec.endswith("xx"):
        return status // 100 == int(spec[0])
    return status == int(spec)


def compact(entry: dict[str, Any]) -> str:
    """One entry as one line: time, status, method and URL, latency, where it went, why.

    Access: ``<time> <status> <method> <url> <latency ms> <cluster>/<zone> <pod> <reason>
    <route> <statusDetails>``; container: ``<time> <cluster>/<zone> <pod>/<container>
    <severity> <text>``.
    """
    ts = str(entry.get("timestamp", ""))
    resource = entry.get("resource") or {}
    if resource.get("type") == _LB:
        req = entry.get("httpRequest") or {}
        p = entry.get("jsonPayload") or {}
        latency = str(req.get("latency", ""))
        try:
            ms = f"{float(latency.rstrip('s')) * 1000:.1f}ms"
        except ValueError:
            ms = latency
        where = f"{p.get('cluster') or '-'}/{p.get('zone') or '-'}"
        return " ".join(
            (
                ts,
                str(req.get("status", "")),
                str(req.get("requestMethod", "")),
                str(req.get("requestUrl", "")),
                ms,
                where,
                p.get("pod") or "-",
                p.get("reason") or "-",
                p.get("route") or "-",
                p.get("statusDetails") or "-",
            )
        )
    labels = resource.get("labels") or {}
    if "textPayload" in entry:
        text = str(entry["textPayload"])
    else:
        text = json.dumps(entry.get("jsonPayload"), ensure_ascii=False, separators=(",", ":"))
    return " ".join(
        (
            ts,
            f"{labels.get('cluster_name', '-')}/{labels.get('location', '-')}",
            f"{labels.get('pod_name', '-')}/{labels.get('container_name', '-')}",
            str(entry.get("severity", "DEFAULT")),
            text,
        )
    )


def _files(log_dir: Path) -> list[Path]:
    if not log_dir.is_dir():
        raise errors.no_log_dir(log_dir)
    return sorted(p for p in log_dir.rglob("*.jsonl") if p.is_file())


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None  # not a whole line (being written) or not ours
    return entry if isinstance(entry, dict) else None


def _reverse_lines(path: Path, end: int) -> Iterator[bytes]:
    """Complete lines of ``path`` before offset ``end``, last first."""
    with path.open("rb") as f:
        pos = end
        rest = b""
        while pos > 0:
            size = min(_BLOCK, pos)
            pos -= size
            f.seek(pos)
            block = f.read(size) + rest
            lines = block.split(b"\n")
            rest = lines[0]
            for line in reversed(lines[1:]):
                if line:
                    yield line
        if rest:
            yield rest


def last(log_dir: Path, n: int, where: Filter) -> tuple[list[dict[str, Any]], dict[Path, int]]:
    """Return the last ``n`` matching entries (oldest first) and where each file ended.

    Each file gives its own last ``n`` matches (files are written side by side:
    workers, the fleet); they are merged by timestamp. Files are visited newest
    first and the search stops at a file last written before every entry kept.
    """
    ends: dict[Path, int] = {}
    found: list[tuple[str, int, dict[str, Any]]] = []
    order = 0
    files = _files(log_dir)
    stats = []
    for path in files:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        stats.append((st.st_mtime, path, st.st_size))
    for mtime, path, size in sorted(stats, reverse=True):
        ends[path] = _complete_end(path, size)
        if n <= 0:
            continue
        if len(found) >= n:
            oldest = found[0][0]
            if _rfc3339(mtime) < oldest:
                continue  # everything in it is older than what we keep
        taken = 0
        for line in _reverse_lines(path, ends[path]):
            entry = _parse(line)
            if entry is None or not where.matches(entry):
                continue
            # Read backwards: a later line of the file has a smaller -order.
            order += 1
            item = (str(entry.get("timestamp", "")), -order, entry)
            if len(found) < n:
                heapq.heappush(found, item)
            elif item[:2] > found[0][:2]:
                heapq.heapreplace(found, item)
            taken += 1
            if taken >= n:
                break
    return [entry for _, _, entry in sorted(found, key=lambda t: (t[0], t[1]))], ends


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + ".999999Z"


def _complete_end(path: Path, size: int) -> int:
    """Offset just past the last newline of ``path`` within ``size`` bytes."""
    if size == 0:
        return 0
    with path.open("rb") as f:
        pos = size
        while pos > 0:
            step = min(_BLOCK, pos)
            f.seek(pos - step)
            block = f.read(step)
            cut = block.rfind(b"\n")
            if cut >= 0:
                return pos - step + cut + 1
            pos -= step
    return 0


class Follower:
    """New matching entries of every log file under a directory, as they are written."""

    def __init__(self, log_dir: Path, where: Filter, offsets: dict[Path, int]) -> None:
        self.log_dir = log_dir
        self.where = where
        self._offsets = dict(offsets)

    def poll(self) -> list[dict[str, Any]]:
        """Entries completed since the last poll, in file order per file, merged by time."""
        out: list[tuple[str, int, dict[str, Any]]] = []
        order = 0
        for path in _files(self.log_dir):
            start = self._offsets.get(path, 0)
            try:
                size = os.path.getsize(path)
            except FileNotFoundError:
                continue
            if size < start:
                start = 0  # truncated and rewritten: read again
            if size == start:
                continue
            with path.open("rb") as f:
                f.seek(start)
                data = f.read(size - start)
            cut = data.rfind(b"\n")
            if cut < 0:
                continue  # no complete line yet
            self._offsets[path] = start + cut + 1
            for line in data[: cut + 1].splitlines():
                entry = _parse(line)
                if entry is not None and self.where.matches(entry):
                    order += 1
                    out.append((str(entry.get("timestamp", "")), order, entry))
        # Gone files (retention) are forgotten.
        for path in [p for p in self._offsets if not p.exists()]:
            del self._offsets[path]
        return [entry for _, _, entry in sorted(out, key=lambda t: (t[0], t[1]))]


def split_values(values: Sequence[str]) -> tuple[str, ...]:
    """``--status 500,503 --status 4xx`` → ("500", "503", "4xx")."""
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())

"""Load mcgw's JSONL logs into DuckDB, shaped like Log Analytics' ``_AllLogs`` view.

The raw files hold Cloud Logging ``LogEntry`` objects with camelCase keys
(:mod:`mcgw.logschema`). Log Analytics exposes them with snake_case columns, JSON-typed
``labels``/``json_payload``/``resource.labels`` and a typed ``http_request`` record; the
conversion happens once, at load time, so queries read a plain table.

Parsing JSON is what costs (a million access lines is about a gigabyte and takes several
seconds), so the parsed table is kept in a DuckDB file inside the log directory and
brought up to date per file: a file whose size or mtime changed is read again, a file
that went away is dropped. When the cache cannot be opened (read-only directory, another
process holds the lock) everything is read into memory instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from mcgw.analytics import errors

VIEW = "_AllLogs"
"""The name queries use; any ``…._AllLogs`` table in BigQuery SQL maps to it."""

CACHE_NAME = ".mcgw-analytics.duckdb"
"""File name of the parsed-log cache inside the log directory."""

_TABLE = "logs"

# What read_json parses. Naming the columns keeps DuckDB from sampling the files to
# guess a schema, and keeps the schema fixed when some keys are absent from all lines.
_RAW_COLUMNS = """{
  timestamp: 'TIMESTAMPTZ',
  receiveTimestamp: 'TIMESTAMPTZ',
  severity: 'VARCHAR',
  logName: 'VARCHAR',
  insertId: 'VARCHAR',
  resource: 'STRUCT(type VARCHAR, labels JSON)',
  httpRequest: 'STRUCT(requestMethod VARCHAR, requestUrl VARCHAR, requestSize VARCHAR,
    status BIGINT, responseSize VARCHAR, userAgent VARCHAR, remoteIp VARCHAR,
    serverIp VARCHAR, referer VARCHAR, latency VARCHAR, protocol VARCHAR)',
  jsonPayload: 'JSON',
  textPayload: 'VARCHAR',
  labels: 'JSON',
  trace: 'VARCHAR',
  spanId: 'VARCHAR'
}"""

# Raw keys → Log Analytics columns. http_request.latency is a protobuf Duration in
# Log Analytics (seconds + nanos); the sizes are integers there, strings in the LogEntry.
_SELECT = """
  timestamp,
  receiveTimestamp AS receive_timestamp,
  severity,
  CASE severity
    WHEN 'DEFAULT' THEN 0 WHEN 'DEBUG' THEN 100 WHEN 'INFO' THEN 200
    WHEN 'NOTICE' THEN 300 WHEN 'WARNING' THEN 400 WHEN 'ERROR' THEN 500
    WHEN 'CRITICAL' THEN 600 WHEN 'ALERT' THEN 700 WHEN 'EMERGENCY' THEN 800
  END AS severity_number,
  logName AS log_name,
  regexp_extract(logName, '/logs/([^/]+)$', 1) AS log_id,
  insertId AS insert_id,
  resource,
  CASE WHEN httpRequest IS NOT NULL THEN {
    'request_method': httpRequest.requestMethod,
    'request_url': httpRequest.requestUrl,
    'request_size': TRY_CAST(httpRequest.requestSize AS BIGINT),
    'status': httpRequest.status,
    'response_size': TRY_CAST(httpRequest.responseSize AS BIGINT),
    'user_agent': httpRequest.userAgent,
    'remote_ip': httpRequest.remoteIp,
    'server_ip': httpRequest.serverIp,
    'referer': httpRequest.referer,
    'latency': {
      'seconds': CAST(floor(TRY_CAST(rtrim(httpRequest.latency, 's') AS DOUBLE)) AS BIGINT),
      'nanos': CAST(round(1e9 * (TRY_CAST(rtrim(httpRequest.latency, 's') AS DOUBLE)
        - floor(TRY_CAST(rtrim(httpRequest.latency, 's') AS DOUBLE)))) AS BIGINT)
    },
    'protocol': httpRequest.protocol
  } END AS http_request,
  jsonPayload AS json_payload,
  textPayload AS text_payload,
  labels,
  trace,
  spanId AS span_id
"""

# The cache remembers which files it holds in a table named after the schema, so a
# cache written by another version of this module is rebuilt rather than misread.
_FILES = "log_files_" + hashlib.sha256((_RAW_COLUMNS + _SELECT).encode()).hexdigest()[:12]

COLUMNS = (
    "timestamp",
    "receive_timestamp",
    "severity",
    "severity_number",
    "log_name",
    "log_id",
    "insert_id",
    "resource",
    "http_request",
    "json_payload",
    "text_payload",
    "labels",
    "trace",
    "span_id",
)
"""Columns of the ``_AllLogs`` view, named as in Log Analytics."""


@dataclass(frozen=True, slots=True)
class _FileState:
    path: str
    size: int
    mtime_ns: int


def log_files(log_dir: Path) -> tuple[Path, ...]:
    """Return every ``*.jsonl`` file below ``log_dir``, sorted.

    Raises:
        AnalyticsError: the directory does not exist or holds no ``*.jsonl`` file.
    """
    if not log_dir.is_dir():
        raise errors.AnalyticsError(f"log directory {log_dir} does not exist")
    files = tuple(sorted(p for p in log_dir.rglob("*.jsonl") if p.is_file()))
    if not files:
        raise errors.AnalyticsError(
            f"no *.jsonl log files under {log_dir}: run traffic through the gateway first"
        )
    return files


def connect(log_dir: Path, *, cache: bool = True) -> duckdb.DuckDBPyConnection:
    """Open a connection whose ``logs`` table holds every log line under ``log_dir``.

    Args:
        log_dir: the directory the gateway and the fleet write to.
        cache: keep the parsed table in ``log_dir/.mcgw-analytics.duckdb``.

    Raises:
        AnalyticsError: no logs, or the files cannot be read.
    """
    files = log_files(log_dir)
    con: duckdb.DuckDBPyConnection | None = None
    if cache:
        try:
            con = duckdb.connect(str(log_dir / CACHE_NAME))
        except (duckdb.Error, OSError):
            con = None  # locked by another reader or not writable: parse in memory
    if con is None:
        con = duckdb.connect(":memory:")
    # Results show instants in UTC, as BigQuery does, whatever the machine's zone.
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    try:
        _refresh(con, files)
    except duckdb.Error as exc:
        con.close()
        raise errors.AnalyticsError(f"cannot read logs under {log_dir}: {exc}") from exc
    return con


def _refresh(con: duckdb.DuckDBPyConnection, files: Sequence[Path]) -> None:
    """Bring the ``logs`` table in line with ``files``, re-reading only what changed."""
    current: dict[str, _FileState] = {}
    for f in files:
        st = f.stat()
        current[str(f.resolve())] = _FileState(str(f.resolve()), st.st_size, st.st_mtime_ns)
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {_FILES} (path VARCHAR PRIMARY KEY, size BIGINT, "
        "mtime_ns BIGINT)"
    )
    known = {
        row[0]: _FileState(row[0], row[1], row[2])
        for row in con.execute(f"SELECT path, size, mtime_ns FROM {_FILES}").fetchall()
    }
    if not _table_exists(con):
        known = {}
    stale = [p for p, s in known.items() if current.get(p) != s]
    fresh = [p for p, s in current.items() if known.get(p) != s]
    if not stale and not fresh:
        return
    read = (
        f"SELECT {_SELECT}, filename AS _file FROM read_json(?, format = 'newline_delimited', "
        f"columns = {_RAW_COLUMNS}, filename = true, ignore_errors = true) "
        # A line being written while we read is not JSON yet; ignore_errors turns it
        # into a row of NULLs, and every real entry has a timestamp.
        "WHERE timestamp IS NOT NULL"
    )
    con.execute("BEGIN")
    try:
        if not known:
            # First load (or a cache from another schema): start from nothing.
            con.execute(f"DELETE FROM {_FILES}")
            con.execute(f"CREATE OR REPLACE TABLE {_TABLE} AS {read}", [fresh])
        else:
            if stale:
                con.execute(f"DELETE FROM {_TABLE} WHERE _file IN (SELECT unnest(?))", [stale])
                con.execute(f"DELETE FROM {_FILES} WHERE path IN (SELECT unnest(?))", [stale])
            if fresh:
                con.execute(f"INSERT INTO {_TABLE} {read}", [fresh])
        if fresh:
            con.executemany(
                f"INSERT INTO {_FILES} VALUES (?, ?, ?)",
                [[current[p].path, current[p].size, current[p].mtime_ns] for p in fresh],
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _table_exists(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [_TABLE]
    ).fetchone()
    return bool(row and row[0])


def create_view(con: duckdb.DuckDBPyConnection, *, shift_to: datetime | None = None) -> None:
    """Create the temporary ``_AllLogs`` view over the ``logs`` table.

    Args:
        shift_to: replay option, off unless asked for. When given, every timestamp is
            moved by the same delta so that the earliest entry appears at ``shift_to``
            (a naive datetime means UTC). A query written for another day, like
            SEED.md's, then selects a run made today.
    """
    delta_us = 0
    if shift_to is not None:
        row = con.execute(f"SELECT min(timestamp) FROM {_TABLE}").fetchone()
        earliest = row[0] if row else None
        if earliest is not None:
            target = shift_to if shift_to.tzinfo else shift_to.replace(tzinfo=UTC)
            delta = target - earliest
            delta_us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    shift = f" + to_microseconds({delta_us})" if delta_us else ""
    cols = ", ".join(
        f"{c}{shift} AS {c}" if c in ("timestamp", "receive_timestamp") else c for c in COLUMNS
    )
    con.execute(f'CREATE OR REPLACE TEMP VIEW "{VIEW}" AS SELECT {cols} FROM {_TABLE}')


def clear_cache(log_dir: Path) -> None:
    """Remove the parsed-log cache of ``log_dir``; the next query rebuilds it."""
    for name in (CACHE_NAME, CACHE_NAME + ".wal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(log_dir / name)

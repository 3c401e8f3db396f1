"""Load mcgw's JSONL logs into DuckDB, shaped like Log Analytics' ``_AllLogs`` view.

The raw files hold Cloud Logging ``LogEntry`` objects with camelCase keys
(:mod:`mcgw.logschema`). Log Analytics exposes them with snake_case columns, JSON-typed
``labels``/``json_payload``/``resource.labels`` and a typed ``http_request`` record; the
conversion happens once, at load time, so queries read a plain table.

Parsing JSON is what costs (a million access lines is about a gigabyte), so the parsed
table is kept in a DuckDB file inside the log directory and brought up to date per
file: lines appended to a file since the last query are read alone (from the offset
where the last complete line ended), a file that was replaced or truncated is read
again, a file that went away is dropped. Rotated files never change, so a long run
costs one parse per line. A file still being written is read up to its last newline,
never further. When the cache cannot be opened (read-only directory, another query
keeps it too long) everything is read into memory instead.

One process at a time has the cache open (:mod:`mcgw.analytics.cachelock`). The log
indexer (:mod:`mcgw.analytics.indexer`) refreshes it in small bounded passes while
logs are written, so a query's own refresh has only the last seconds to read.

Besides Log Analytics' columns, the table keeps the access log's string payload fields
typed (``__lb``, :data:`mcgw.logschema.LB_PAYLOAD_STRINGS`): the BigQuery translation
reads ``JSON_VALUE(json_payload.cluster)`` from there, without a JSON parse per row.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from mcgw import logschema
from mcgw.analytics import cachelock, errors

VIEW = "_AllLogs"
"""The name queries use; any ``…._AllLogs`` table in BigQuery SQL maps to it."""

TYPED_VIEW = "_AllLogs_typed"
"""The same rows with the typed payload column :data:`LB_COLUMN` as well; the BigQuery
translation reads from it when that column answers the query faster (and no ``*``
would show the extra column)."""

LB_COLUMN = "__lb"
"""STRUCT of the access log's string payload fields; NULL for other entries."""

CACHE_NAME = ".mcgw-analytics.duckdb"
"""File name of the parsed-log cache inside the log directory."""

TRANSLATIONS_NAME = ".mcgw-analytics-sql.json"
"""File name of the remembered SQL translations (:mod:`mcgw.analytics.query`)."""

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
  spanId: 'VARCHAR',
  traceSampled: 'BOOLEAN'
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
      'seconds': CAST(floor(_latency) AS BIGINT),
      'nanos': CAST(round(1e9 * (_latency - floor(_latency))) AS BIGINT)
    },
    'protocol': httpRequest.protocol
  } END AS http_request,
  jsonPayload AS json_payload,
  textPayload AS text_payload,
  labels,
  trace,
  spanId AS span_id,
  traceSampled AS trace_sampled,
  CASE WHEN resource.type = 'http_load_balancer'
    THEN json_transform(jsonPayload, '__LB_SPEC__') END AS __lb
"""

_LB_SPEC = json.dumps({field: "VARCHAR" for field in logschema.LB_PAYLOAD_STRINGS})
_SELECT = _SELECT.replace("__LB_SPEC__", _LB_SPEC.replace("'", "''"))

# The cache remembers which files it holds in a table named after the schema, so a
# cache written by another version of this module is rebuilt rather than misread.
SCHEMA_VERSION = hashlib.sha256((_RAW_COLUMNS + _SELECT).encode()).hexdigest()[:12]
"""Changes whenever what the table holds changes."""
_FILES = "log_files_" + SCHEMA_VERSION

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
    "trace_sampled",
)
"""Columns of the ``_AllLogs`` view, named as in Log Analytics."""


@dataclass(frozen=True, slots=True)
class _FileState:
    path: str
    inode: int
    size: int
    """Size when last read (-1: read again in full next time)."""
    offset: int
    """Bytes read: up to and including the last newline then."""
    mtime_ns: int


def log_files(log_dir: Path) -> tuple[Path, ...]:
    """Return every ``*.jsonl`` file below ``log_dir``, sorted.

    Raises:
        AnalyticsError: the directory does not exist or holds no ``*.jsonl`` file.
    """
    if not log_dir.is_dir():
        raise errors.no_log_dir(log_dir)
    files = tuple(sorted(p for p in log_dir.rglob("*.jsonl") if p.is_file()))
    if not files:
        raise errors.AnalyticsError(
            f"no *.jsonl log files under {log_dir}: run traffic through the gateway first"
        )
    return files


LOCK_WAIT_S = 30.0
"""How long a query waits for a cache another query holds before it reads the logs
into memory instead."""

SETTLED_S = 10.0
"""A file left alone this long is read whole, by DuckDB directly (in parallel, no
copy); a younger one may still be written to, so it is read up to its last newline
as it was before reading."""


@contextlib.contextmanager
def opened(
    log_dir: Path,
    *,
    cache: bool = True,
    wait_s: float = LOCK_WAIT_S,
    say: Callable[[str], None] | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose ``logs`` table holds every log line under ``log_dir``.

    Args:
        log_dir: the directory the gateway and the fleet write to.
        cache: keep the parsed table in ``log_dir/.mcgw-analytics.duckdb``. The cache is
            this connection's alone until it closes (:mod:`mcgw.analytics.cachelock`):
            a log indexer steps aside at once, another query is waited for.
        wait_s: longest wait for another query's turn; then the logs are read into
            memory, as they are when the cache cannot be opened at all.
        say: told (one line each) when the wait passes a second and when it gives up.

    Raises:
        AnalyticsError: no logs, or the files cannot be read.
    """
    files = log_files(log_dir)
    lock = cachelock.CacheLock(log_dir, "query") if cache else None
    con = _open_cache(log_dir, lock, wait_s, say) if lock is not None else None
    if con is None:
        con = duckdb.connect(":memory:")
    try:
        configure(con)
        try:
            refresh(con, files)
        except (duckdb.Error, OSError) as exc:
            # OSError: a log file unreadable, no temporary directory for a copy.
            raise errors.AnalyticsError(f"cannot read logs under {log_dir}: {exc}") from exc
        yield con
    finally:
        con.close()
        if lock is not None:
            lock.close()


def _open_cache(
    log_dir: Path,
    lock: cachelock.CacheLock,
    wait_s: float,
    say: Callable[[str], None] | None,
) -> duckdb.DuckDBPyConnection | None:
    """The cache, opened with the lock held; None: do without (lock released)."""
    try:
        if lock.acquire(wait_s, say):
            return duckdb.connect(str(log_dir / CACHE_NAME))
        if say is not None:
            say(f"{lock.holder()} kept the log cache: reading the logs into memory instead")
    except (duckdb.Error, OSError):
        pass  # a read-only directory, or a program other than mcgw has the file open
    lock.close()
    return None


def configure(con: duckdb.DuckDBPyConnection) -> None:
    """Settings every connection to the logs uses."""
    # Results show instants in UTC, as BigQuery does, whatever the machine's zone.
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    # Rows have no order in SQL without ORDER BY; not keeping the files' order lets
    # DuckDB parse and insert in parallel with less work (measured: 12 % less CPU).
    con.execute("SET preserve_insertion_order = false")


def _read_sql(source: str) -> str:
    """SELECT of Log Analytics' columns from the files in parameter 1 (``source``: how
    each row's ``_file`` is named)."""
    return (
        f"SELECT {_SELECT}, {source} AS _file FROM (SELECT *, "
        "TRY_CAST(rtrim(httpRequest.latency, 's') AS DOUBLE) AS _latency "
        f"FROM read_json(?, format = 'newline_delimited', columns = {_RAW_COLUMNS}, "
        "filename = true, ignore_errors = true)) "
        # A line being written while we read is not JSON yet; ignore_errors turns it
        # into a row of NULLs, and every real entry has a timestamp.
        "WHERE timestamp IS NOT NULL"
    )


def _last_newline(path: Path, size: int, start: int = 0) -> int:
    """Offset just past the last newline between ``start`` and ``size`` in ``path``
    (``start`` if there is none)."""
    block = 1 << 16
    with path.open("rb") as f:
        end = size
        while end > start:
            begin = max(start, end - block)
            f.seek(begin)
            cut = f.read(end - begin).rfind(b"\n")
            if cut >= 0:
                return begin + cut + 1
            end = begin
    return start


def _next_newline(path: Path, start: int, end: int) -> int:
    """Offset just past the first newline between ``start`` and ``end`` (``end`` if none)."""
    with path.open("rb") as f:
        f.seek(start)
        pos = start
        while pos < end:
            block = f.read(min(1 << 16, end - pos))
            if not block:
                break
            cut = block.find(b"\n")
            if cut >= 0:
                return pos + cut + 1
            pos += len(block)
    return end


def refresh(
    con: duckdb.DuckDBPyConnection,
    files: Sequence[Path],
    *,
    budget: int | None = None,
    now: float | None = None,
) -> bool:
    """Bring the ``logs`` table in line with ``files``, reading only what is new, in
    one transaction.

    Args:
        budget: bytes of new lines to read at most (roughly: whole lines, and at least
            one); None reads everything. The log indexer reads in bounded passes, so
            that what one pass has done is kept when the next one is abandoned.
        now: the time, for :data:`SETTLED_S`.

    Returns:
        Whether the table now holds every complete line (False: the budget ran out).
    """
    now = time.time() if now is None else now
    current: dict[str, os.stat_result] = {}
    for f in files:
        with contextlib.suppress(FileNotFoundError):
            current[str(f.resolve())] = f.stat()
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {_FILES} (path VARCHAR PRIMARY KEY, inode BIGINT, "
        'size BIGINT, "offset" BIGINT, mtime_ns BIGINT)'
    )
    known = {
        row[0]: _FileState(*row)
        for row in con.execute(
            f'SELECT path, inode, size, "offset", mtime_ns FROM {_FILES}'
        ).fetchall()
    }
    if not _table_exists(con):
        known = {}
    stale: list[str] = []  # rows to drop, file to read in full (if still there)
    ranges: list[tuple[str, int, int]] = []  # (path, from offset, to offset)
    for path, state in known.items():
        st = current.get(path)
        if st is None:
            stale.append(path)
        elif st.st_ino != state.inode or state.size < 0 or st.st_size < state.size:
            stale.append(path)  # replaced, truncated, or unsure what was read
        elif st.st_size == state.size:
            if st.st_mtime_ns != state.mtime_ns:
                stale.append(path)  # rewritten in place at the same size
        else:
            end = _last_newline(Path(path), st.st_size, state.offset)
            if end > state.offset:
                ranges.append((path, state.offset, end))
    whole: list[str] = []  # files DuckDB reads itself, all of each
    for path in current:
        if path in known and path not in stale:
            continue
        st = current[path]
        if budget is None and st.st_mtime < now - SETTLED_S:
            whole.append(path)
        else:
            ranges.append((path, 0, _last_newline(Path(path), st.st_size)))
    ranges, caught_up = _within(ranges, budget)
    if not stale and not ranges and not whole:
        return caught_up
    con.execute("BEGIN")
    try:
        if not known:
            # First load (or a cache from another schema): start from nothing.
            con.execute(f"DELETE FROM {_FILES}")
            con.execute(f"DROP TABLE IF EXISTS {_TABLE}")
        elif stale:
            con.execute(f"DELETE FROM {_TABLE} WHERE _file IN (SELECT unnest(?))", [stale])
            con.execute(f"DELETE FROM {_FILES} WHERE path IN (SELECT unnest(?))", [stale])
        created = bool(known)
        if whole:
            _insert(con, _read_sql("filename"), [whole], created=created)
            created = True
        states = [_state_after_full_read(p, current[p]) for p in whole]
        for path, start, end in ranges:
            if end > start or not created:
                _read_range(con, path, start, end, created=created)
                created = True
            st = current[path]
            # Cut short by the budget (a newline follows): the next pass reads on.
            cut = _last_newline(Path(path), st.st_size, end) > end
            states.append(
                _FileState(path, st.st_ino, end if cut else st.st_size, end, st.st_mtime_ns)
            )
        if states:
            con.executemany(
                f"INSERT OR REPLACE INTO {_FILES} VALUES (?, ?, ?, ?, ?)",
                [[s.path, s.inode, s.size, s.offset, s.mtime_ns] for s in states],
            )
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    return caught_up


def _within(
    ranges: list[tuple[str, int, int]], budget: int | None
) -> tuple[list[tuple[str, int, int]], bool]:
    """The ranges (in order) that fit ``budget`` bytes, the last one cut at a newline;
    and whether nothing was left out."""
    if budget is None:
        return ranges, True
    taken: list[tuple[str, int, int]] = []
    left = budget
    for path, start, end in ranges:
        if end - start <= left:
            taken.append((path, start, end))
            left -= end - start
            continue
        cut = _last_newline(Path(path), start + left, start)
        if cut == start and not taken:
            cut = _next_newline(Path(path), start + left, end)  # a line beyond the budget
        if cut > start:
            taken.append((path, start, cut))
        return taken, False
    return taken, True


def _insert(
    con: duckdb.DuckDBPyConnection, select: str, params: list[object], *, created: bool
) -> None:
    if created:
        con.execute(f"INSERT INTO {_TABLE} {select}", params)
    else:
        con.execute(f"CREATE TABLE {_TABLE} AS {select}", params)


def _state_after_full_read(path: str, before: os.stat_result) -> _FileState:
    """What a whole-file read took in. If the file grew while DuckDB read it, or ended
    in a partial line, DuckDB may have taken lines past any offset we can name: the
    file is then read in full again next time rather than risk a line twice."""
    try:
        after = os.stat(path)
    except FileNotFoundError:
        return _FileState(path, before.st_ino, -1, 0, before.st_mtime_ns)
    end = _last_newline(Path(path), before.st_size)
    unsure = after.st_size != before.st_size or end != before.st_size
    size = -1 if unsure else before.st_size
    return _FileState(path, before.st_ino, size, end, before.st_mtime_ns)


def _read_range(
    con: duckdb.DuckDBPyConnection, path: str, start: int, end: int, *, created: bool
) -> None:
    """Insert the complete lines of ``path`` between two offsets. DuckDB reads whole
    files only: it gets the range through pipes (:func:`_piped`), or as copies where
    the OS or the file's file system has no ``splice``: one :data:`PIPE_PIECE` at a
    time, each inserted and removed before the next is made, so that a pass (up to the
    indexer's 256 MiB budget) never fills a small temporary directory (often a tmpfs,
    in memory)."""
    if _splices(path):
        with _piped(path, start, end) as sources:
            _insert(con, _read_sql("?"), [path, sources], created=created)
        return
    with open(path, "rb") as src:
        for low, high in _pieces(Path(path), start, end, PIPE_PIECE):
            fd, tmp = tempfile.mkstemp(prefix="mcgw-logs-", suffix=".jsonl")
            try:
                with os.fdopen(fd, "wb") as out:
                    _copy(src.fileno(), out.fileno(), low, high)
                _insert(con, _read_sql("?"), [path, [tmp]], created=created)
                created = True
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(tmp)


NO_SPLICE = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})
"""What ``splice`` answers where it cannot read a file (a file system without it)."""

_splice_by_device: dict[int, bool] = {}
"""Whether ``splice`` reads files, per file system (``st_dev``), once tried."""


def _splices(path: str) -> bool:
    """Whether :func:`_piped` can carry ``path``: the OS has ``splice`` and the file's
    file system lets it read (every one since Linux 6.5; before, some did not, and a
    pass through pipes would fail on every try). Tried once per file system, with one
    byte into a pipe of its own, from a regular file that has one. Where there is no
    answer (the file cannot be opened, is empty or is not a file), True: the read
    itself then reports what is wrong."""
    if not hasattr(os, "splice"):
        return False
    try:
        st = os.stat(path)
    except OSError:
        return True
    known = _splice_by_device.get(st.st_dev)
    if known is not None:
        return known
    if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
        return True
    read_end, write_end = os.pipe()
    try:
        src = os.open(path, os.O_RDONLY)
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return True
    try:
        os.splice(src, write_end, 1, offset_src=0)
        works = True
    except OSError as exc:
        if exc.errno not in NO_SPLICE:
            return True  # not an answer about splice: the read will tell
        works = False
    finally:
        for fd in (src, read_end, write_end):
            os.close(fd)
    _splice_by_device[st.st_dev] = works
    return works


PIPE_PIECE = 16 * 1024 * 1024
"""Most bytes of lines one pipe carries (:func:`_piped`), as much as DuckDB asks for in
one read. Through one pipe, 150 MB of lines (a batch of the indexer's) made DuckDB write
180 MB of temporary files and take 15 % more CPU than a copy; in pieces of this size it
wrote none, and took as much CPU as a copy (1.13–1.20 s against 1.06–1.20, 27 Nov)."""


@contextlib.contextmanager
def _piped(path: str, start: int, end: int) -> Iterator[list[str]]:
    """Bytes ``start``–``end`` of ``path`` as file names DuckDB can read: the read ends
    of pipes (``/dev/fd/N``), each carrying whole lines, :data:`PIPE_PIECE` bytes at
    most, filled by a thread with ``splice`` (Linux).

    Why: DuckDB reads a file whole, in one ``read`` (12 MB for a 9,000-line pass of the
    log indexer), and a kernel that does not preempt its own code keeps a gateway woken
    meanwhile waiting up to 0.5 ms. From a pipe a ``read`` returns what the pipe holds,
    64 KiB at most. And nothing is copied first: ``splice`` hands the log file's cached
    pages to the pipe. DuckDB still parses pipes in parallel for a query (120 MB with
    two threads: 0.41–0.50 s, a copy 0.42–0.45, 27 Nov)."""
    failed: list[OSError] = []
    with contextlib.ExitStack() as undo:
        src = os.open(path, os.O_RDONLY)
        undo.callback(os.close, src)
        sources = []
        for low, high in _pieces(Path(path), start, end, PIPE_PIECE):
            read_end, write_end = os.pipe()
            fill = threading.Thread(
                target=_fill, args=(src, write_end, low, high, failed), name="mcgw-logs-pipe"
            )
            try:
                fill.start()
            except BaseException:
                os.close(write_end)
                os.close(read_end)
                raise
            undo.callback(fill.join)
            # Closing the read end first (the stack unwinds in reverse): a filler still
            # writing, as DuckDB stopped reading (interrupted, or an error it reports),
            # gets EPIPE and ends.
            undo.callback(os.close, read_end)
            sources.append(f"/dev/fd/{read_end}")
        yield sources
    if failed:
        raise failed[0]  # DuckDB saw an early end of a file: lines are missing


def _pieces(path: Path, start: int, end: int, most: int) -> list[tuple[int, int]]:
    """``start``–``end`` (which ends at a newline) cut after newlines into pieces of at
    most ``most`` bytes; a longer line is a piece of its own."""
    pieces = []
    while end - start > most:
        cut = _last_newline(path, start + most, start)
        if cut == start:
            cut = _next_newline(path, start + most, end)
        pieces.append((start, cut))
        start = cut
    if end > start or not pieces:
        pieces.append((start, end))
    return pieces


def _fill(src: int, pipe: int, start: int, end: int, failed: list[OSError]) -> None:
    """Splice bytes ``start``–``end`` of ``src`` into ``pipe``, then close it (see
    :func:`_piped`); an error other than the reader's going away goes to ``failed``."""
    offset = start
    try:
        while offset < end:
            sent = os.splice(src, pipe, end - offset, offset_src=offset)
            if sent == 0:
                break  # the file was truncated under us: DuckDB reads what there is
            offset += sent
    except BrokenPipeError:
        pass
    except OSError as exc:
        failed.append(exc)
    finally:
        os.close(pipe)


COPY_PIECE = 1 << 20
"""Bytes one ``sendfile`` moves at most (see :func:`_copy`)."""


def _copy(src: int, dst: int, start: int, end: int) -> None:
    """Copy bytes ``start``–``end`` of file ``src`` to ``dst`` inside the kernel (for
    DuckDB, where ``splice`` cannot read the file: :func:`_read_range`).

    Through Python (4 MiB ``read``s and ``write``s) every piece was a fresh buffer to
    page in and zero, and one syscall held the CPU for 4 MiB on a kernel that is not
    preemptible. ``sendfile`` copies page cache to page cache in 1 MiB pieces; measured
    (``bench/indexcost.py --passes``, 26 Nov), the indexer's system CPU went from
    7.8–9.0 to 6.0–7.2 µs per access line."""
    offset = start
    while offset < end:
        sent = os.sendfile(dst, src, offset, min(COPY_PIECE, end - offset))
        if sent == 0:
            break  # the file was truncated under us: read what there is
        offset += sent


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
    con.execute(
        f'CREATE OR REPLACE TEMP VIEW "{TYPED_VIEW}" AS SELECT {cols}, {LB_COLUMN} FROM {_TABLE}'
    )


def clear_cache(log_dir: Path) -> None:
    """Remove the parsed-log cache of ``log_dir``; the next query rebuilds it."""
    for name in (CACHE_NAME, CACHE_NAME + ".wal", TRANSLATIONS_NAME):
        with contextlib.suppress(FileNotFoundError):
            os.remove(log_dir / name)

"""How DuckDB gets the byte range of a log file that is new since the last pass: through
pipes (``ingest._piped``), or copied in the kernel (``ingest._copy``) where the OS has no
``splice``."""

from __future__ import annotations

import errno
import itertools
import os
import tempfile
import threading
from pathlib import Path

import duckdb
import pytest

from mcgw.analytics import ingest

PIPE_READ_MAX = 64 * 1024
"""The most one read of a pipe may return: Linux's default pipe size."""


def _copied(src: Path, start: int, end: int, tmp_path: Path) -> bytes:
    dst = tmp_path / "out.jsonl"
    with src.open("rb") as s, dst.open("wb") as d:
        ingest._copy(s.fileno(), d.fileno(), start, end)
    return dst.read_bytes()


def _piped(src: Path, start: int, end: int) -> bytes:
    """What DuckDB would read: the pipes' bytes, one after the other."""
    got = b""
    with ingest._piped(str(src), start, end) as sources:
        for source in sources:
            with open(source, "rb") as f:
                got += f.read()
    return got


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _pipe_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mcgw-logs-pipe"]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 0),
        (0, 10),
        (7, ingest.COPY_PIECE + 13),  # more than one sendfile piece, unaligned
        (ingest.COPY_PIECE, 2 * ingest.COPY_PIECE),
    ],
)
def test_copy_and_pipe_take_exactly_the_range(tmp_path: Path, start: int, end: int) -> None:
    data = os.urandom(2 * ingest.COPY_PIECE + 100)
    src = tmp_path / "access.jsonl"
    src.write_bytes(data)
    assert _copied(src, start, end, tmp_path) == data[start:end]
    assert _piped(src, start, end) == data[start:end]


def test_copy_and_pipe_stop_at_the_end_of_a_truncated_file(tmp_path: Path) -> None:
    src = tmp_path / "access.jsonl"
    src.write_bytes(b'{"a":1}\n' * 10)
    # The file shrank after its size was read: what is there is copied, then it stops.
    assert _copied(src, 40, 500, tmp_path) == b'{"a":1}\n' * 5
    assert _piped(src, 40, 500) == b'{"a":1}\n' * 5


def test_pieces_end_after_a_newline_and_hold_at_most_their_size(tmp_path: Path) -> None:
    lines = [b"x" * (n % 37) + b"\n" for n in range(400)]
    lines[200] = b"y" * 300 + b"\n"  # longer than a piece: a piece of its own
    data = b"".join(lines)
    src = tmp_path / "access.jsonl"
    src.write_bytes(data)
    start = len(lines[0]) + len(lines[1])
    pieces = ingest._pieces(src, start, len(data), 100)
    assert pieces[0][0] == start and pieces[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces)), "contiguous"
    for low, high in pieces:
        assert data[high - 1 : high] == b"\n"
        assert high - low <= 100 or data[low:high] == lines[200]
    assert lines[200] in {data[low:high] for low, high in pieces}
    assert ingest._pieces(src, 5, 5, 100) == [(5, 5)]


def test_a_long_range_goes_through_several_pipes_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "PIPE_PIECE", 4096)
    data = b"".join(b"%d\n" % n for n in range(20_000))
    src = tmp_path / "access.jsonl"
    src.write_bytes(data)
    with ingest._piped(str(src), 0, len(data)) as sources:
        assert len(sources) > 20
        got = b"".join(Path(source).read_bytes() for source in sources)
    assert got == data


def test_no_read_from_a_pipe_returns_more_than_64_kib(tmp_path: Path) -> None:
    """The point of the pipes: DuckDB asks for 16 MB at a time and gets what a pipe
    holds. A read of a file hands it the whole file in one call, which a kernel that
    does not preempt its own code lets no woken gateway interrupt."""
    data = os.urandom(8 * 1024 * 1024)
    src = tmp_path / "access.jsonl"
    src.write_bytes(data)
    got = bytearray()
    sizes = []
    with ingest._piped(str(src), 0, len(data)) as sources:
        for source in sources:
            fd = os.open(source, os.O_RDONLY)
            try:
                while chunk := os.read(fd, 16 * 1024 * 1024):
                    sizes.append(len(chunk))
                    got += chunk
            finally:
                os.close(fd)
    assert got == data
    assert max(sizes) <= PIPE_READ_MAX


def test_a_reader_that_stops_early_leaves_no_thread_or_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "PIPE_PIECE", 1024 * 1024)
    src = tmp_path / "access.jsonl"
    src.write_bytes((b"x" * 1023 + b"\n") * 8 * 1024)  # 8 pipes, far more than they hold
    fds = _open_fds()
    with ingest._piped(str(src), 0, 8 * 1024 * 1024) as sources:
        assert len(sources) == 8
        with open(sources[0], "rb") as f:
            assert f.read(100) == b"x" * 100
    # The fillers were blocked on full pipes; closing their read ends ended them.
    assert not _pipe_threads()
    assert _open_fds() == fds


def test_a_file_that_cannot_be_opened_raises_before_any_thread(tmp_path: Path) -> None:
    fds = _open_fds()
    with pytest.raises(FileNotFoundError), ingest._piped(str(tmp_path / "gone.jsonl"), 0, 9):
        pytest.fail("the body must not run")
    assert _open_fds() == fds


def test_a_failed_splice_is_raised_not_taken_for_the_end_of_the_file(tmp_path: Path) -> None:
    """A directory opens, but does not splice (EINVAL): the reader sees an early end of
    file, and the range must not then count as read."""
    fds = _open_fds()
    with pytest.raises(OSError), ingest._piped(str(tmp_path), 0, 100) as sources:
        assert [Path(source).read_bytes() for source in sources] == [b""]
    assert not _pipe_threads()
    assert _open_fds() == fds


def test_duckdb_reads_the_same_rows_through_pipes_as_from_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy is for an OS without ``splice``; here, it is made one by taking
    ``os.splice`` away (the one thing faked)."""
    monkeypatch.setattr(ingest, "PIPE_PIECE", 64 * 1024)  # ~16 pipes
    lines = b"".join(
        b'{"timestamp": "2026-11-27T10:00:00Z", "logName": "projects/p/logs/%d"}\n' % i
        for i in range(15_000)
    )
    src = tmp_path / "access.jsonl"
    src.write_bytes(b"not json\n" + lines + b'{"timestamp": "2026-11-27T1')  # a torn last line
    start, end = len(b"not json\n"), len(b"not json\n") + len(lines)
    tables = []
    for splice in (True, False):
        if not splice:
            monkeypatch.delattr(os, "splice")
        con = duckdb.connect()
        try:
            ingest.configure(con)
            ingest._read_range(con, str(src), start, end, created=False)
            tables.append(sorted(con.execute("SELECT log_name, _file FROM logs").fetchall()))
        finally:
            con.close()
    assert len(tables[0]) == 15_000
    assert tables[0] == tables[1]
    assert {row[1] for row in tables[0]} == {str(src)}


def test_a_copy_holds_one_piece_at_a_time_in_the_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``splice`` a range is copied for DuckDB one piece at a time, each removed
    once read: a pass of hundreds of MB never sits whole in a small ``/tmp``. Faked:
    no ``os.splice`` (every file system here has it), and small pieces."""
    monkeypatch.delattr(os, "splice")
    monkeypatch.setattr(ingest, "PIPE_PIECE", 64 * 1024)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    lines = b"".join(
        b'{"timestamp": "2026-11-27T10:00:00Z", "logName": "l/%d"}\n' % i for i in range(20_000)
    )
    src = tmp_path / "access.jsonl"
    src.write_bytes(lines)
    held: list[int] = []
    insert = ingest._insert

    def observed(*args: object, **kwargs: bool) -> None:
        held.append(sum(f.stat().st_size for f in temp.iterdir()))
        insert(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest, "_insert", observed)
    con = duckdb.connect()
    try:
        ingest.configure(con)
        ingest._read_range(con, str(src), 0, len(lines), created=False)
        assert con.execute("SELECT count(*), count(DISTINCT log_name) FROM logs").fetchone() == (
            20_000,
            20_000,
        )
    finally:
        con.close()
    assert len(held) > 10
    assert max(held) <= 64 * 1024
    assert list(temp.iterdir()) == []


def test_a_file_system_without_splice_gets_a_copy_and_is_tried_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before Linux 6.5 some file systems could not ``splice`` a file (EINVAL): ranges
    there go through a copy, and only the first asks. Faked: ``os.splice`` answers
    EINVAL, as every file system here splices."""
    calls = []

    def no_splice(*args: object, **kwargs: object) -> int:
        calls.append(args)
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(ingest, "_splice_by_device", {})
    monkeypatch.setattr(os, "splice", no_splice)
    src = tmp_path / "access.jsonl"
    lines = [b'{"timestamp": "2026-11-27T10:00:00Z", "logName": "l/%d"}\n' % i for i in range(4)]
    src.write_bytes(b"".join(lines))
    con = duckdb.connect()
    try:
        ingest.configure(con)
        ingest._read_range(con, str(src), 0, len(lines[0]), created=False)
        ingest._read_range(con, str(src), len(lines[0]), len(b"".join(lines)), created=True)
        assert con.execute("SELECT count(*) FROM logs").fetchone() == (4,)
    finally:
        con.close()
    assert len(calls) == 1
    assert ingest._splice_by_device == {src.stat().st_dev: False}


def test_splice_is_known_to_work_after_one_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "_splice_by_device", {})
    src = tmp_path / "access.jsonl"
    empty = tmp_path / "empty.jsonl"
    empty.touch()
    src.write_bytes(b"{}\n")
    fds = _open_fds()
    # No answer from an empty file or a directory: True (the read tells), not remembered.
    assert ingest._splices(str(empty)) and ingest._splices(str(tmp_path))
    assert ingest._splice_by_device == {}
    assert ingest._splices(str(src))
    assert ingest._splice_by_device == {src.stat().st_dev: True}
    assert _open_fds() == fds

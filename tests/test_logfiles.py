"""Rotating log files: whole lines per file, size limit, retention by count and age."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcgw import logfiles

NO_SUCH_PID = 4_194_305
"""Above Linux's largest pid_max (2**22): no process can have it."""


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def lines(n: int, width: int = 100, tag: str = "") -> list[bytes]:
    return [(f"{tag}{i:06d}".ljust(width - 1, "x") + "\n").encode() for i in range(n)]


def test_rotates_at_line_boundaries_under_the_size_limit(tmp_path: Path) -> None:
    clock = Clock()
    files = logfiles.RotatingFiles(
        tmp_path, "access", logfiles.Retention(max_bytes=1000, keep_files=0), clock=clock
    )
    written = lines(95)
    for start in range(0, 95, 7):  # batches that do not align with files
        clock.now += 0.001
        files.write(written[start : start + 7])
    files.close()
    paths = sorted(tmp_path.glob("access-*.jsonl"))
    assert paths == files.files and len(paths) == 10
    assert all(p.stat().st_size <= 1000 for p in paths)
    assert b"".join(p.read_bytes() for p in paths) == b"".join(written)


def test_blocks_of_lines_rotate_as_the_lines_would(tmp_path: Path) -> None:
    """write_block (the access-log writer's one write per chunk) splits files exactly
    where write of the same lines does: one write while a block fits the current file,
    and at the same line boundaries when it does not."""
    written = lines(95)
    outcomes = []
    for name, block in (("lines", False), ("blocks", True)):
        clock = Clock()
        directory = tmp_path / name
        files = logfiles.RotatingFiles(
            directory, "access", logfiles.Retention(max_bytes=1000, keep_files=0), clock=clock
        )
        for start in range(0, 95, 7):
            clock.now += 0.001
            batch = written[start : start + 7]
            size = files.write_block(b"".join(batch)) if block else files.write(batch)
            assert size == sum(map(len, batch))
        files.close()
        outcomes.append([p.read_bytes() for p in files.files])
    assert outcomes[0] == outcomes[1] and len(outcomes[0]) == 10


def test_a_block_the_disk_refuses_counts_no_line_written(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    files = logfiles.RotatingFiles(blocker / "logs", "access")
    with pytest.raises(OSError) as info:
        files.write_block(b"".join(lines(3)))
    assert info.value.written_lines == 0  # type: ignore[attr-defined]


def test_a_line_larger_than_the_limit_gets_a_file_of_its_own(tmp_path: Path) -> None:
    files = logfiles.RotatingFiles(tmp_path, "access", logfiles.Retention(max_bytes=50))
    files.write([b"small\n", b"y" * 99 + b"\n", b"small\n"])
    files.close()
    assert [p.read_bytes() for p in files.files] == [b"small\n", b"y" * 99 + b"\n", b"small\n"]


def test_keeps_the_newest_files_by_count(tmp_path: Path) -> None:
    clock = Clock()
    files = logfiles.RotatingFiles(
        tmp_path, "access", logfiles.Retention(max_bytes=200, keep_files=3), clock=clock
    )
    for batch in range(8):
        clock.now += 1
        files.write(lines(2, tag=f"b{batch}-"))
    left = sorted(tmp_path.glob("access-*.jsonl"))
    assert left == files.files[-3:]
    assert files.current == left[-1]
    assert set(files.removed) == set(files.files[:-3])
    assert left[-1].read_bytes() == b"".join(lines(2, tag="b7-"))


def test_removes_files_older_than_the_age_limit(tmp_path: Path) -> None:
    clock = Clock()
    retention = logfiles.Retention(max_bytes=200, keep_files=0, max_age_s=3600)
    files = logfiles.RotatingFiles(tmp_path, "access", retention, clock=clock)
    files.write(lines(2))
    first = files.current
    assert first is not None
    files.write(lines(2))  # a second file
    os.utime(first, (clock.now, clock.now))
    clock.now += 3601
    files.write(lines(2))  # rotation runs retention
    assert not first.exists()
    assert files.removed == [first]
    assert len(list(tmp_path.glob("access-*.jsonl"))) == 2


def test_a_live_writers_files_are_left_alone(tmp_path: Path) -> None:
    clock = Clock()
    # Another live process's file (our parent's pid) and a dead writer's.
    live = tmp_path / f"access-20000101T000000.000000Z-{os.getppid()}.jsonl"
    dead = tmp_path / f"access-20000101T000000.000000Z-{NO_SUCH_PID}.jsonl"
    other_kind = tmp_path / f"containers-20000101T000000.000000Z-{NO_SUCH_PID}.jsonl"
    for path in (live, dead, other_kind):
        path.write_bytes(b"{}\n")
        os.utime(path, (0, 0))  # ancient
    files = logfiles.RotatingFiles(
        tmp_path, "access", logfiles.Retention(keep_files=0, max_age_s=60), clock=clock
    )
    files.write(lines(1))
    assert live.exists() and other_kind.exists()
    assert not dead.exists()


def test_oserror_says_how_many_lines_were_written(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    files = logfiles.RotatingFiles(blocker / "logs", "access")
    with pytest.raises(OSError) as info:
        files.write(lines(3))
    assert info.value.written_lines == 0  # type: ignore[attr-defined]


def test_parse_size_and_age() -> None:
    assert logfiles.parse_size("1048576") == 1 << 20
    assert logfiles.parse_size("64KiB") == 64 << 10
    assert logfiles.parse_size("256MiB") == 256 << 20
    assert logfiles.parse_size("1g") == 1 << 30
    assert logfiles.parse_size("10MB") == 10_000_000
    assert logfiles.parse_age("3600") == 3600
    assert logfiles.parse_age("90m") == 5400
    assert logfiles.parse_age("12h") == 43_200
    assert logfiles.parse_age("7d") == 604_800
    for bad in ("", "ten", "-1", "5 parsecs"):
        with pytest.raises(ValueError):
            logfiles.parse_size(bad)
        with pytest.raises(ValueError):
            logfiles.parse_age(bad)
    with pytest.raises(ValueError, match="> 0"):
        logfiles.Retention(max_bytes=0)


def test_files_named_after_another_pid_and_a_torn_tail_mended(tmp_path: Path) -> None:
    """A writer process names its files after the gateway worker it writes for; the one
    started after it was killed mid-line cuts the torn tail off that worker's newest file
    (and leaves another worker's files alone)."""
    clock = Clock()
    worker = os.getppid()  # any live pid other than ours
    first = logfiles.RotatingFiles(tmp_path, "access", clock=clock, pid=worker)
    first.write(lines(3))
    (path,) = first.files
    assert path.name.endswith(f"-{worker}.jsonl")
    with path.open("ab") as file:
        file.write(b'{"insertId":"torn')  # as if killed in the middle of a write
    other = tmp_path / f"access-20231114T221320.000000Z-{NO_SUCH_PID}.jsonl"
    other.write_bytes(b"whole\npart")
    second = logfiles.RotatingFiles(tmp_path, "access", clock=clock, pid=worker)
    assert second.mend() == len(b'{"insertId":"torn')
    assert path.read_bytes() == b"".join(lines(3))
    assert second.mend() == 0  # nothing left to cut
    assert other.read_bytes() == b"whole\npart"


def test_last_lines_are_each_of_this_pids_files_last_whole_line(tmp_path: Path) -> None:
    """What a writer started after one was killed reads to know how far that one got:
    the last whole line of each of the worker's files (each file is one writer's);
    none from an empty file (killed just after opening it), a torn tail, or another
    pid's file."""
    clock = Clock()
    worker = os.getppid()
    files = logfiles.RotatingFiles(tmp_path, "access", clock=clock, pid=worker)
    assert files.last_lines() == []  # no file yet
    files.write(lines(3, tag="a"))
    assert files.last_lines() == [lines(3, tag="a")[2]]
    files.close()
    clock.now += 1
    files.write(lines(2, tag="b"))
    (tmp_path / f"access-20991231T000000.000000Z-{NO_SUCH_PID}.jsonl").write_bytes(b"x\n")
    with files.files[-1].open("ab") as file:
        file.write(b"torn")  # a torn tail is not a line
    files.close()
    clock.now += 1
    files._open()  # a new, empty file
    assert files.files[-1].stat().st_size == 0
    assert files.last_lines() == [lines(3, tag="a")[2], lines(2, tag="b")[1]]

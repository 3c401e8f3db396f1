"""ingest._copy: the byte range of a log file the indexer reads, copied in the kernel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcgw.analytics import ingest


def _copied(src: Path, start: int, end: int, tmp_path: Path) -> bytes:
    dst = tmp_path / "out.jsonl"
    with src.open("rb") as s, dst.open("wb") as d:
        ingest._copy(s.fileno(), d.fileno(), start, end)
    return dst.read_bytes()


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 0),
        (0, 10),
        (7, ingest.COPY_PIECE + 13),  # more than one sendfile piece, unaligned
        (ingest.COPY_PIECE, 2 * ingest.COPY_PIECE),
    ],
)
def test_copy_takes_exactly_the_range(tmp_path: Path, start: int, end: int) -> None:
    data = os.urandom(2 * ingest.COPY_PIECE + 100)
    src = tmp_path / "access.jsonl"
    src.write_bytes(data)
    assert _copied(src, start, end, tmp_path) == data[start:end]


def test_copy_stops_at_the_end_of_a_truncated_file(tmp_path: Path) -> None:
    src = tmp_path / "access.jsonl"
    src.write_bytes(b'{"a":1}\n' * 10)
    # The file shrank after its size was read: what is there is copied, then it stops.
    assert _copied(src, 40, 500, tmp_path) == b'{"a":1}\n' * 5

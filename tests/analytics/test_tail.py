"""mcgw logs tail: filters, compact lines, the last N across files, following rotation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import analytics_logs as logdata
import pytest

from mcgw.analytics import errors, tail


def access(
    i: int, cluster: str = "gke-west-1", status: int = 200, reason: str = "closest"
) -> dict[str, Any]:
    zone = "us-west1-a" if cluster == "gke-west-1" else "us-east1-b"
    return logdata.access(logdata.WINDOW_START + i, cluster, zone, status, i, reason)


def container(i: int, cluster: str = "gke-east-1") -> dict[str, Any]:
    zone = "us-west1-a" if cluster == "gke-west-1" else "us-east1-b"
    return logdata.container(logdata.WINDOW_START + i, cluster, zone, i)


def write(path: Path, entries: list[dict[str, Any]], tail_bytes: bytes = b"") -> None:
    with path.open("ab") as f:
        f.write(b"".join(json.dumps(e).encode() + b"\n" for e in entries) + tail_bytes)


def test_filter_matches() -> None:
    ok, err, east = access(1), access(2, status=503), access(3, "gke-east-1", reason="failover")
    box = container(4)
    assert tail.Filter().matches(ok) and not tail.Filter().matches(box)
    assert tail.Filter(kind="container").matches(box) and not tail.Filter(kind="container").matches(
        ok
    )
    assert tail.Filter(kind="all").matches(box) and tail.Filter(kind="all").matches(ok)
    five = tail.Filter(status=("5xx",))
    assert [five.matches(e) for e in (ok, err, east)] == [False, True, False]
    assert tail.Filter(status=("200", "503")).matches(err)
    assert [tail.Filter(cluster=("gke-east-1",)).matches(e) for e in (ok, east)] == [False, True]
    assert tail.Filter(kind="all", cluster=("gke-east-1",)).matches(box)
    assert tail.Filter(kind="all", zone=("us-east1-b",)).matches(box)
    assert tail.Filter(reason=("failover", "spillover")).matches(east)
    assert not tail.Filter(reason=("failover",)).matches(ok)
    assert tail.Filter(route="public-store").matches(ok)
    assert not tail.Filter(route="other").matches(ok)
    assert not tail.Filter(kind="all", status=("5xx",)).matches(box)
    with pytest.raises(errors.AnalyticsError, match="5xx"):
        tail.Filter(status=("bad",))
    with pytest.raises(errors.AnalyticsError, match="type"):
        tail.Filter(kind="nope")
    with pytest.raises(errors.AnalyticsError, match="'failver'; use closest, spillover"):
        tail.Filter(reason=("failover", "failver"))  # a typo, not a reason that never came
    assert tail.split_values(["500,503", " 4xx "]) == ("500", "503", "4xx")


def test_compact_lines() -> None:
    assert tail.compact(access(1, status=503)) == (
        "2023-11-30T04:03:01.000000Z 503 GET http://store.example.com/ 2.0ms "
        "gke-west-1/us-west1-a store-gke-west-1-0 closest store/public-store-route/2 "
        "response_sent_by_backend"
    )
    assert tail.compact(container(2)) == (
        "2023-11-30T04:03:02.000000Z gke-east-1/us-east1-b store-gke-east-1-0/whereami INFO "
        '127.0.0.1 - - "GET / HTTP/1.1" 200 2'
    )


def test_last_n_merges_files_by_time_and_skips_torn_lines(tmp_path: Path) -> None:
    # Two writers side by side, and a line still being written at the end of one.
    write(tmp_path / "access-a.jsonl", [access(i) for i in range(0, 300, 2)])
    write(
        tmp_path / "access-b.jsonl",
        [access(i, "gke-east-1") for i in range(1, 300, 2)],
        tail_bytes=b'{"insertId": "half',
    )
    write(tmp_path / "containers-1.jsonl", [container(i) for i in range(500)])
    entries, ends = tail.last(tmp_path, 5, tail.Filter())
    stamps = [e["timestamp"][17:19] for e in entries]
    assert [e["timestamp"] for e in entries] == sorted(e["timestamp"] for e in entries)
    assert [e["jsonPayload"]["cluster"] for e in entries] == [
        "gke-east-1",
        "gke-west-1",
        "gke-east-1",
        "gke-west-1",
        "gke-east-1",
    ]
    assert stamps == ["55", "56", "57", "58", "59"]  # seconds 295..299
    assert ends[tmp_path / "access-b.jsonl"] < (tmp_path / "access-b.jsonl").stat().st_size
    east = tail.last(tmp_path, 3, tail.Filter(cluster=("gke-east-1",), kind="all"))[0]
    assert [e["timestamp"][14:19] for e in east] == [
        "11:17",
        "11:18",
        "11:19",
    ]  # containers, 497..499 s
    assert tail.last(tmp_path, 0, tail.Filter())[0] == []


def test_follow_sees_new_lines_and_rotated_files(tmp_path: Path) -> None:
    first = tmp_path / "access-1.jsonl"
    write(first, [access(i) for i in range(3)])
    entries, ends = tail.last(tmp_path, 10, tail.Filter(status=("5xx",)))
    assert entries == []
    follower = tail.Follower(tmp_path, tail.Filter(status=("5xx",)), ends)
    assert follower.poll() == []
    # A torn line waits for its end; a rotation brings a new file.
    line = json.dumps(access(3, status=502)).encode()
    with first.open("ab") as f:
        f.write(line[:40])
    assert follower.poll() == []
    with first.open("ab") as f:
        f.write(line[40:] + b"\n")
    write(tmp_path / "access-2.jsonl", [access(4, status=200), access(5, status=503)])
    got = follower.poll()
    assert [e["httpRequest"]["status"] for e in got] == [502, 503]
    assert follower.poll() == []
    os.remove(first)  # retention removed it: forgotten, no error
    write(tmp_path / "access-2.jsonl", [access(6, status=500)])
    assert [e["httpRequest"]["status"] for e in follower.poll()] == [500]


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(errors.AnalyticsError, match="does not exist"):
        tail.last(tmp_path / "nope", 5, tail.Filter())


def test_every_reason_the_balancer_writes_is_known() -> None:
    from mcgw import logschema
    from mcgw.dataplane import balancer, protocol

    written = {v for k, v in vars(balancer).items() if k.startswith("REASON_")}
    written.add(protocol._NO_ROUTE[5])
    assert written == set(logschema.ROUTING_REASONS)

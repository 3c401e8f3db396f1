"""Access log writer: batching, JSON lines per logschema, rotation, nothing lost."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from mcgw import logschema
from mcgw.dataplane import accesslog


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 15))


def record(i: int, task: int = 0, *, status: int = 200) -> logschema.AccessRecord:
    return logschema.AccessRecord(
        timestamp=1_700_000_000.0 + i,
        method="GET",
        scheme="http",
        host="store.example.com",
        target=f"/west?task={task}&i={i}",
        protocol="HTTP/1.1",
        status=status,
        latency_s=0.0125,
        request_size=120,
        response_size=512,
        remote_ip="127.0.0.1",
        server_ip="127.0.0.2",
        user_agent="k6/0.50 (https://k6.io/)",
        gateway="store/external-http",
        route="store/public-store-route/rule/1/match/0",
        backend="ServiceImport/store/store-west-1:8080",
        cluster="gke-west-1",
        region="us-west1",
        zone="us-west1-a",
        pod="store-west-1-abc",
        endpoint="10.1.0.1:8080",
        reason="closest",
        entry_region="us-west1",
        attempts=1,
        status_details="response_sent_by_backend",
    )


def read_lines(directory: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for path in sorted(directory.glob("access-*.jsonl")):
        data = path.read_bytes()
        assert data == b"" or data.endswith(b"\n"), f"{path.name} ends in a torn line"
        entries.extend(json.loads(line) for line in data.splitlines())
    return entries


def without_insert_id(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "insertId"}


def test_records_flushed_periodically_as_log_entries(tmp_path: Path) -> None:
    async def main() -> None:
        log = accesslog.AccessLog(tmp_path, "my-project", flush_interval_s=0.02)
        await log.start()
        try:
            records = [record(0), record(1, status=503), record(2)]
            for r in records:
                log.write(r)
            # Flushed by the timer, before close().
            async with asyncio.timeout(5):
                while len(read_lines(tmp_path)) < 3:
                    await asyncio.sleep(0.01)
            entries = read_lines(tmp_path)
            assert [without_insert_id(e) for e in entries] == [
                without_insert_id(logschema.access_entry(r, "my-project")) for r in records
            ]
            assert all(re.fullmatch(r"[0-9a-f]{16}", e["insertId"]) for e in entries)
            assert len({e["insertId"] for e in entries}) == 3
            assert entries[1]["severity"] == "WARNING"
            assert entries[0]["resource"]["type"] == "http_load_balancer"
            assert entries[0]["logName"] == "projects/my-project/logs/requests"
            assert log.stats.written == 3
        finally:
            await log.close()
        (path,) = log.files
        assert re.fullmatch(rf"access-\d{{8}}T\d{{6}}\.\d{{6}}Z-{os.getpid()}\.jsonl", path.name)
        assert log.stats.dropped == 0

    run(main())


def test_close_flushes_everything(tmp_path: Path) -> None:
    async def main() -> None:
        log = accesslog.AccessLog(tmp_path / "logs", "p", flush_interval_s=60.0)
        await log.start()
        for i in range(500):
            log.write(record(i))
        await asyncio.sleep(0.01)
        assert read_lines(tmp_path / "logs") == []  # the timer has not fired
        await log.close()
        targets = [e["httpRequest"]["requestUrl"] for e in read_lines(tmp_path / "logs")]
        assert targets == [f"http://store.example.com/west?task=0&i={i}" for i in range(500)]
        log.write(record(999))  # after close: ignored, not an error
        await log.close()
        assert len(read_lines(tmp_path / "logs")) == 500

    run(main())


def test_close_without_start_still_writes(tmp_path: Path) -> None:
    async def main() -> None:
        log = accesslog.AccessLog(tmp_path, "p")
        log.write(record(1))
        await log.close()
        assert len(read_lines(tmp_path)) == 1

    run(main())


def test_rotation_by_size_keeps_whole_lines_in_order(tmp_path: Path) -> None:
    line_size = len(json.dumps(logschema.access_entry(record(0), "p"), separators=(",", ":")))
    max_bytes = 3 * line_size + line_size // 2  # three lines fit, four do not

    async def main() -> None:
        log = accesslog.AccessLog(tmp_path, "p", flush_interval_s=0.01, max_file_bytes=max_bytes)
        await log.start()
        try:
            for i in range(5):
                log.write(record(i))
            await asyncio.sleep(0.05)  # two batches: rotation across flushes too
            for i in range(5, 10):
                log.write(record(i))
        finally:
            await log.close()
        assert len(log.files) == 4
        assert log.stats.files == 4
        for path in log.files:
            assert path.stat().st_size <= max_bytes
        urls = [e["httpRequest"]["requestUrl"] for e in read_lines(tmp_path)]
        assert urls == [f"http://store.example.com/west?task=0&i={i}" for i in range(10)]
        assert sorted(log.files) == log.files  # file names sort in writing order

    run(main())


def test_line_larger_than_max_still_written_whole(tmp_path: Path) -> None:
    async def main() -> None:
        log = accesslog.AccessLog(tmp_path, "p", max_file_bytes=10)
        log.write(record(0))
        log.write(record(1))
        await log.close()
        assert len(log.files) == 2
        assert len(read_lines(tmp_path)) == 2

    run(main())


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    tasks, per_task = 50, 200

    async def writer(log: accesslog.AccessLog, task: int) -> None:
        for i in range(per_task):
            log.write(record(i, task))
            if i % 7 == 0:
                await asyncio.sleep(0)
            if i % 50 == 0:
                await asyncio.sleep(0.002)

    async def main() -> None:
        log = accesslog.AccessLog(tmp_path, "p", flush_interval_s=0.005, max_file_bytes=256 * 1024)
        await log.start()
        try:
            await asyncio.gather(*(writer(log, t) for t in range(tasks)))
        finally:
            await log.close()
        urls = [e["httpRequest"]["requestUrl"] for e in read_lines(tmp_path)]
        assert len(urls) == tasks * per_task
        expected = {
            f"http://store.example.com/west?task={t}&i={i}"
            for t in range(tasks)
            for i in range(per_task)
        }
        assert set(urls) == expected
        assert log.stats.written == tasks * per_task
        assert log.stats.dropped == 0
        assert len(log.files) > 1  # rotated while writers were running

    run(main())


def test_disabled_writes_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        log = accesslog.AccessLog(None, "p", flush_interval_s=0.01)
        assert not log.enabled
        await log.start()
        log.write(record(0))
        await asyncio.sleep(0.03)
        await log.close()
        assert log.stats.written == 0
        assert log.files == []

    run(main())
    assert list(tmp_path.iterdir()) == []


def test_unwritable_directory_counts_dropped(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")

    async def main() -> None:
        log = accesslog.AccessLog(blocker / "logs", "p")
        log.write(record(0))
        log.write(record(1))
        await log.close()
        assert log.stats.dropped == 2
        assert log.stats.written == 0

    run(main())


# -- the line format (logschema.AccessFormatter) ------------------------------


def stamp(ts: float) -> str:
    """RFC 3339 in UTC with microseconds truncated (not rounded), as the log has it."""
    second = int(ts)
    micros = int((ts - second) * 1e6)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) + f".{micros:06d}Z"


def reference_entry(r: logschema.AccessRecord, project: str) -> dict[str, Any]:
    """The LogEntry of ``r`` built the slow, obvious way (the formatter's contract)."""
    sep = "" if r.target.startswith("/") else "/"
    return {
        "logName": f"projects/{project}/logs/requests",
        "resource": {
            "type": "http_load_balancer",
            "labels": {
                "project_id": project,
                "zone": "global",
                "forwarding_rule_name": r.gateway,
                "url_map_name": r.gateway,
                "target_proxy_name": r.gateway,
                "backend_service_name": r.backend,
            },
        },
        "timestamp": stamp(r.timestamp),
        "receiveTimestamp": stamp(r.timestamp + r.latency_s),
        "severity": "WARNING" if r.status >= 500 else "INFO",
        "httpRequest": {
            "requestMethod": r.method,
            "requestUrl": f"{r.scheme}://{r.host}{sep}{r.target}",
            "requestSize": str(r.request_size),
            "status": r.status,
            "responseSize": str(r.response_size),
            "userAgent": r.user_agent,
            "remoteIp": r.remote_ip,
            "serverIp": r.server_ip,
            "latency": f"{r.latency_s:.6f}s",
            "protocol": r.protocol,
        },
        "jsonPayload": {
            "@type": logschema.LB_PAYLOAD_TYPE,
            "statusDetails": r.status_details,
            "gateway": r.gateway,
            "route": r.route,
            "backend": r.backend,
            "cluster": r.cluster,
            "region": r.region,
            "zone": r.zone,
            "pod": r.pod,
            "endpoint": r.endpoint,
            "reason": r.reason,
            "entryRegion": r.entry_region,
            "attempts": r.attempts,
        },
    }


def test_formatter_lines_are_compact_json_of_the_entry_with_caches_cycling() -> None:
    odd = ['"', "\\", "é", "\u2028", "\x01", "💥", "</"]
    records = []
    for i in range(60):
        base = record(i)
        records.append(
            base._replace(
                timestamp=1_700_000_000.0 + i * 0.37,
                latency_s=0.999_999_7 if i % 5 == 0 else base.latency_s,
                target=("*" if i % 7 == 0 else f"/p{odd[i % len(odd)]}?i={i}"),
                user_agent=f"ua{odd[i % len(odd)]}{i % 3}",
                cluster=f"c{odd[i % len(odd)]}{i % 4}",
                pod=f"pod-{i % 5}",
                reason=("retry" if i % 3 else "closest"),
                attempts=1 + i % 3,
                status=(503 if i % 4 == 0 else 200),
            )
        )
    formatter = logschema.AccessFormatter('proj"x')
    formatter._MAX_CACHED = 3  # the name and fragment caches restart many times
    for _ in range(2):
        for r in records:
            line = formatter.line(r)
            entry = json.loads(line)
            assert re.fullmatch(r"[0-9a-f]{16}", entry.pop("insertId"))
            assert entry == reference_entry(r, 'proj"x')
            # Compact JSON, key order included, byte for byte.
            full = json.loads(line)
            assert line == json.dumps(full, separators=(",", ":"))
            assert formatter.line_bytes(r)[16 + 13 :] == (line + "\n").encode()[16 + 13 :]

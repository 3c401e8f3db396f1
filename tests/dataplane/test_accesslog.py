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
from mcgw.testing import gateway, tables
from mcgw.testing import manifests as tm
from mcgw.testing.client import RawClient
from mcgw.testing.upstream import FakeUpstream


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 15))


def record(i: int, task: int = 0, *, status: int = 200, **fields: Any) -> logschema.AccessRecord:
    """Record ``i``; ``fields`` replace the defaults, by the names the log line uses."""
    values: dict[str, Any] = {
        "timestamp": 1_700_000_000.0 + i,
        "method": "GET",
        "scheme": "http",
        "host": "store.example.com",
        "target": f"/west?task={task}&i={i}",
        "protocol": "HTTP/1.1",
        "status": status,
        "latency_s": 0.0125,
        "request_size": 120,
        "response_size": 512,
        "remote_ip": "127.0.0.1",
        "server_ip": "127.0.0.2",
        "user_agent": "k6/0.50 (https://k6.io/)",
        "trace_headers": (),
        "gateway": "store/external-http",
        "route": "store/public-store-route/rule/1/match/0",
        "backend": "ServiceImport/store/store-west-1:8080",
        "cluster": "gke-west-1",
        "region": "us-west1",
        "zone": "us-west1-a",
        "pod": "store-west-1-abc",
        "endpoint": "10.1.0.1:8080",
        "reason": "closest",
        "entry_region": "us-west1",
        "attempts": 1,
        "status_details": "response_sent_by_backend",
    }
    return logschema.AccessRecord.of(**(values | fields))


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
            # The writer process acknowledges after the lines are on disk: flush()
            # waits for that, so the counts are current.
            await log.flush()
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

    def text(value: bytes | str) -> str:  # the request line's bytes as received, or text
        return value.decode("latin-1") if isinstance(value, bytes) else value

    target = text(r.target)
    sep = "" if target.startswith("/") else "/"
    cluster, region, zone, pod, endpoint, reason = r.picked
    entry_region = r.decision[0] or r.entry[0] or r.gateway_region
    trace: dict[str, Any] = {}
    context = logschema.trace_context(r.trace_headers)  # its own test: test_trace_context
    if context is not None:
        trace["trace"] = f"projects/{project}/traces/{context[0]}"
        if context[1]:
            trace["spanId"] = context[1]
        trace["traceSampled"] = context[2]
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
            "requestMethod": text(r.method),
            "requestUrl": f"{r.scheme}://{text(r.host)}{sep}{target}",
            "requestSize": str(r.request_size),
            "status": r.status,
            "responseSize": str(r.response_size),
            "userAgent": text(r.user_agent),
            "remoteIp": r.remote_ip,
            "serverIp": r.server_ip,
            "latency": f"{r.latency_s:.6f}s",
            "protocol": r.protocol,
        },
        **trace,
        "jsonPayload": {
            "@type": logschema.LB_PAYLOAD_TYPE,
            "statusDetails": r.status_details,
            "gateway": r.gateway,
            "route": r.route,
            "backend": r.backend,
            "cluster": cluster,
            "region": region,
            "zone": zone,
            "pod": pod,
            "endpoint": endpoint,
            "reason": reason,
            "entryRegion": entry_region,
            "attempts": r.attempts,
        },
        "labels": {"gateway": r.gateway, "worker_pid": str(os.getpid())},
    }


def test_formatter_lines_are_compact_json_of_the_entry_with_caches_cycling() -> None:
    odd = ['"', "\\", "é", "\u2028", "\x01", "💥", "</"]
    records = []
    for i in range(60):
        records.append(
            record(
                i,
                timestamp=1_700_000_000.0 + i * 0.37,
                latency_s=0.999_999_7 if i % 5 == 0 else 0.0125,
                target=("*" if i % 7 == 0 else f"/p{odd[i % len(odd)]}?i={i}"),
                user_agent=f"ua{odd[i % len(odd)]}{i % 3}",
                cluster=f"c{odd[i % len(odd)]}{i % 4}",
                pod=f"pod-{i % 5}",
                reason=("retry" if i % 3 else "closest"),
                attempts=1 + i % 3,
                status=(503 if i % 4 == 0 else 200),
                protocol=("HTTP/2" if i % 6 == 0 else "HTTP/1.1"),
                trace_headers=TRACE_HEADERS[i % len(TRACE_HEADERS)],
            )
        )
    formatter = logschema.AccessFormatter('proj"x')
    formatter._MAX_CACHED = 3  # the fragment cache restarts many times
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


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_HEADERS: list[list[tuple[bytes, bytes]]] = [
    [],
    [(b"Host", b"a"), (b"User-Agent", b"k6")],
    [(b"TraceParent", f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode())],
    [(b"x-cloud-trace-context", f"{TRACE_ID}/123;o=1".encode())],
    [(b"X-Cloud-Trace-Context", f"{TRACE_ID.upper()}".encode())],
]


def test_trace_context() -> None:
    tc = logschema.trace_context
    assert tc([]) is None
    assert tc([(b"host", b"x"), (b"user-agent", b"k6")]) is None
    assert tc([(b"traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode())]) == (
        TRACE_ID,
        "00f067aa0ba902b7",
        True,
    )
    assert tc([(b"Traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-00".encode())]) == (
        TRACE_ID,
        "00f067aa0ba902b7",
        False,
    )
    # Google's header: decimal span id, written in hex as LogEntry.spanId is.
    assert tc([(b"X-Cloud-Trace-Context", f"{TRACE_ID}/255;o=1".encode())]) == (
        TRACE_ID,
        "00000000000000ff",
        True,
    )
    assert tc([(b"x-cloud-trace-context", TRACE_ID.encode())]) == (TRACE_ID, "", False)
    # traceparent wins over X-Cloud-Trace-Context when both are valid ...
    other = "0af7651916cd43dd8448eb211c80319c"
    both = [
        (b"x-cloud-trace-context", f"{other}/1;o=1".encode()),
        (b"traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode()),
    ]
    assert tc(both) == (TRACE_ID, "00f067aa0ba902b7", True)
    # ... and a malformed one falls back to it.
    both[1] = (b"traceparent", b"00-nothex-00f067aa0ba902b7-01")
    assert tc(both) == (other, "0000000000000001", True)
    for bad in (
        b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01",
        b"ff-" + TRACE_ID.encode() + b"-00f067aa0ba902b7-01",
        b"",
    ):
        assert tc([(b"traceparent", bad)]) is None
    assert tc([(b"x-cloud-trace-context", b"abc/1;o=1")]) is None


# -- through a real gateway ------------------------------------------------------------


def _lines_in(directory: Path) -> list[bytes]:
    out: list[bytes] = []
    for path in sorted(directory.glob("access-*.jsonl")):
        data = path.read_bytes()
        assert data.endswith(b"\n"), f"{path.name} ends in a torn line"
        out.extend(data.splitlines())
    return out


def test_rotation_under_load_keeps_every_line_whole(tmp_path: Path) -> None:
    """Many requests over many connections through a real gateway whose access log
    rotates every few dozen lines: one valid line per request, across all files."""
    connections, per_connection = 16, 150

    async def main() -> None:
        async with FakeUpstream() as up:
            t = tables.route_table([tables.route("r", "b")], [tables.backend("b", up.address)])
            async with gateway.serve(
                t, access_log_dir=tmp_path, access_log_max_bytes=32 * 1024
            ) as (gw, addr):

                async def client(n: int) -> None:
                    c = await RawClient.connect(addr)
                    for i in range(per_connection):
                        r = await c.request(target=f"/load?c={n}&i={i}")
                        assert r.status == 200
                    await c.close()

                await asyncio.wait_for(asyncio.gather(*(client(n) for n in range(connections))), 60)
                stats = gw.access_log.stats
        assert stats.written == connections * per_connection and stats.dropped == 0

    run(main())
    lines = _lines_in(tmp_path)
    assert len(lines) == connections * per_connection
    entries = [json.loads(line) for line in lines]  # every line is valid JSON
    files = sorted(tmp_path.glob("access-*.jsonl"))
    assert len(files) > 10  # it did rotate, many times
    assert all(f.stat().st_size <= 32 * 1024 for f in files)
    urls = {e["httpRequest"]["requestUrl"] for e in entries}
    assert len(urls) == connections * per_connection  # each request once
    assert {e["httpRequest"]["status"] for e in entries} == {200}


def test_sample_rate_of_a_backend_policy_is_followed(tmp_path: Path) -> None:
    """GCPBackendPolicy logging, from YAML through the translator to the gateway's
    sampling: a quarter of /quarter's requests, none of /off's, all of /all's."""

    async def main() -> None:
        async with FakeUpstream() as up:
            port = up.address[1]
            manifests = (
                tm.gateway_to_endpoints(backend_port=port, path="/all")
                + tm.service("quarter", port)
                + tm.service("silent", port)
                + """---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: sampled, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /quarter}}]
    backendRefs: [{name: quarter, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /off}}]
    backendRefs: [{name: silent, port: 80}]
"""
                + tm.logging_policy("quarter", 250_000)
                + tm.logging_policy("silent", None)
            )
            folder = tmp_path / "config"
            folder.mkdir()
            result = gateway.translate_yaml(folder, manifests)
            rates = {b.service: b.log_sample_rate for b in result.table.backends}
            assert rates == {"app": 1_000_000, "quarter": 250_000, "silent": 0}
            logs = tmp_path / "logs"
            async with gateway.serve(result.table, access_log_dir=logs) as (gw, addr):
                c = await RawClient.connect(addr)
                for i in range(40):
                    for path in ("/all", "/quarter", "/off"):
                        assert (await c.request(target=f"{path}?i={i}")).status == 200
                await c.close()
            assert gw.access_log.stats.sampled_out == 30 + 40

    run(main())
    urls = [json.loads(line)["httpRequest"]["requestUrl"] for line in _lines_in(tmp_path / "logs")]
    paths = [u.split("/", 3)[3] for u in urls]
    assert sum(p.startswith("all") for p in paths) == 40
    # Deterministic: the 1st, 5th, 9th … request of the backend.
    assert [p for p in paths if p.startswith("quarter")] == [
        f"quarter?i={i}" for i in range(0, 40, 4)
    ]
    assert not [p for p in paths if p.startswith("off")]


def test_http2_requests_are_logged_as_http2(tmp_path: Path) -> None:
    from test_h2server import H2Client  # the HTTP/2 test client of the h2 server's tests

    trace = f"00-{TRACE_ID}-00f067aa0ba902b7-01"

    async def main() -> None:
        async with FakeUpstream() as up:
            t = tables.route_table([tables.route("r", "b")], [tables.backend("b", up.address)])
            async with gateway.serve(t, access_log_dir=tmp_path) as (_, addr):
                h2c = await H2Client.connect(addr)
                r = await h2c.request("GET", "/two", headers=(("traceparent", trace),))
                assert r.status == 200
                h2c.close()
                c = await RawClient.connect(addr)
                assert (await c.request(target="/one")).status == 200
                await c.close()

    run(main())
    entries = {
        e["httpRequest"]["requestUrl"].rsplit("/", 1)[1]: e
        for e in map(json.loads, _lines_in(tmp_path))
    }
    assert entries["two"]["httpRequest"]["protocol"] == "HTTP/2"
    assert entries["one"]["httpRequest"]["protocol"] == "HTTP/1.1"
    assert entries["two"]["trace"] == f"projects/mcgw-local/traces/{TRACE_ID}"
    assert entries["two"]["spanId"] == "00f067aa0ba902b7"
    assert entries["two"]["traceSampled"] is True
    assert "trace" not in entries["one"]
    assert entries["one"]["labels"] == {"gateway": "default/gw", "worker_pid": str(os.getpid())}


def test_the_gateway_keeps_the_trace_headers_for_the_log_and_passes_them_on(
    tmp_path: Path,
) -> None:
    # The header parser sets them aside as it meets them, in any case; a header of a
    # trace header's length that is not one is not taken for it.
    cloud = ("X-Cloud-Trace-Context", f"{TRACE_ID}/255;o=1")
    sent: dict[str, tuple[tuple[str, str], ...]] = {
        "cloud": (cloud,),
        "both": (("TraceParent", f"00-{TRACE_ID}-00f067aa0ba902b7-01"), ("Accept", "*/*"), cloud),
        "none": (("X-Trace-Ctx", f"00-{TRACE_ID}-00f067aa0ba902b7-01"),),
    }

    async def main() -> None:
        async with FakeUpstream() as up:
            t = tables.route_table([tables.route("r", "b")], [tables.backend("b", up.address)])
            async with gateway.serve(t, access_log_dir=tmp_path) as (_, addr):
                c = await RawClient.connect(addr)
                for name, headers in sent.items():
                    assert (await c.request(target=f"/{name}", headers=headers)).status == 200
                await c.close()
            for seen, headers in zip(up.seen, sent.values(), strict=True):
                for header in headers:
                    assert (header[0].lower(), header[1]) in [
                        (k.lower(), v) for k, v in seen.headers
                    ]

    run(main())
    entries = {
        e["httpRequest"]["requestUrl"].rsplit("/", 1)[1]: e
        for e in map(json.loads, _lines_in(tmp_path))
    }
    assert entries["cloud"]["trace"] == f"projects/mcgw-local/traces/{TRACE_ID}"
    assert entries["cloud"]["spanId"] == "%016x" % 255  # noqa: UP031
    assert entries["both"]["spanId"] == "00f067aa0ba902b7"  # traceparent wins
    assert "trace" not in entries["none"]


def test_a_batch_goes_when_a_record_finds_it_due_and_idle_wakes_nothing(tmp_path: Path) -> None:
    # Under traffic the hand-over rides on the writes (no timer fires); when traffic
    # stops, the timer armed by the batch's first record sends it; then nothing waits.
    async def main() -> None:
        log = accesslog.AccessLog(tmp_path, "p", flush_interval_s=30.0)
        await log.start()
        try:
            t0 = time.monotonic()
            log.write(record(0), t0)
            log.write(record(1), t0 + 29.0)  # not due yet
            await asyncio.sleep(0.05)
            assert log.stats.written == 0 and len(log._batch) == 2
            log.write(record(2), t0 + 30.0)  # due: the flusher goes at once, not in 30 s
            await log.flush()
            assert log.stats.written == 3
            # Nothing waits: no timer armed, the flusher not woken, until a record comes.
            assert log._timer is None and not log._batch
            assert log._wake is not None and not log._wake.is_set()
        finally:
            await log.close()

    run(main())


def test_the_last_batch_goes_when_traffic_stops(tmp_path: Path) -> None:
    async def main() -> None:
        log = accesslog.AccessLog(tmp_path, "p", flush_interval_s=0.05)
        await log.start()
        try:
            for i in range(3):
                log.write(record(i))
            assert log._timer is not None  # armed by the first record
            async with asyncio.timeout(5):
                while log.stats.written < 3:  # acknowledged within ACK_INTERVAL_S
                    await asyncio.sleep(0.01)
            assert log._timer is None
        finally:
            await log.close()
        assert len(read_lines(tmp_path)) == 3

    run(main())


def test_records_are_framed_by_32_as_they_are_written(tmp_path: Path) -> None:
    # The write that completes 32 records frames them (accesslog's _FRAME_RECORDS): a
    # request holds the loop for one frame at most (~15-40 µs; a 225-record frame held
    # it ~0.15 ms and showed at p99), and the gateway holds no more than 32 records as
    # tuples (a whole batch of them at saturation cost it requests/s). What is left is
    # framed when the batch is due; every record reaches the file, in order.
    written = 0
    frames: list[tuple[int, int]] = []  # (records framed, records written before)

    class Watched(accesslog.AccessLog):
        def _enqueue(self, kind: str, body: Any) -> None:
            if kind == "r":
                frames.append((len(body), written))
            super()._enqueue(kind, body)

    async def main() -> None:
        nonlocal written
        log = Watched(tmp_path, "p", flush_interval_s=30.0)
        await log.start()
        try:
            t0 = time.monotonic()
            for i in range(224):
                log.write(record(i), t0)
                written += 1
            assert frames == [(32, n) for n in range(31, 224, 32)]
            assert log.stats.written == 0  # not due: nothing went to the writer
            log.write(record(224), t0 + 30.0)  # due: the flusher takes the rest
            written += 1
            await log.flush()
        finally:
            await log.close()
        assert frames[7:] == [(1, 225)]
        urls = [entry["httpRequest"]["requestUrl"] for entry in read_lines(tmp_path)]
        assert urls == [f"http://store.example.com/west?task=0&i={i}" for i in range(225)]

    run(main())

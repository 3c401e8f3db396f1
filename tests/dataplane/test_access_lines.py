"""The access log's lines, byte for byte: a varied set of records against checked-in lines.

``testdata/access_lines.jsonl`` was written by the formatter as it was before its batch
rewrite (commit "tests/dataplane: access lines golden"), so any byte the formatter
changes in a line, however it is restructured, fails here. Only the 8 random hex digits
that start every ``insertId`` (a per-process prefix) are not compared; the counter after
them is. Rewrite the golden with ``pytest tests/dataplane/test_access_lines.py
--update-goldens`` only for an intended change of the schema, and read the diff.
"""

from __future__ import annotations

import json
import marshal
import subprocess
import sys
from pathlib import Path

from mcgw import logschema
from mcgw.dataplane import logwriter

GOLDEN = Path(__file__).parent / "testdata" / "access_lines.jsonl"
PROJECT = 'proj"x\u00e9'
PID = 4242
PREFIX = slice(len('{"insertId":"'), len('{"insertId":"') + 8)
"""Where the random part of an insertId is in a line."""

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACES: list[tuple[tuple[bytes, bytes], ...]] = [
    (),
    ((b"TraceParent", f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode()),),
    ((b"traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-00".encode()),),
    ((b"X-Cloud-Trace-Context", f"{TRACE_ID.upper()}/255;o=1".encode()),),
    ((b"x-cloud-trace-context", TRACE_ID.encode()),),
    ((b"traceparent", b"00-nothex-00f067aa0ba902b7-01"),),  # malformed: no trace
    ((b"traceparent", b"00-nothex-1-01"), (b"x-cloud-trace-context", f"{TRACE_ID}/7".encode())),
]
ODD = ['"', "\\", "\u00e9", "\u2028", "\x01", "\x7f", "\U0001f4a5", "</", "%", "%s", "{}", ""]
TARGETS = [
    "/",
    "/api/v1/items?id=12345&x=y",
    "*",
    "http://absolute.example/x?y=1",
    "",
    "/" + "long/" * 40,
    "/q?a=%22b%22&c=\\d",
]
TIMES = [
    (1_700_000_000.0, 0.0),
    (1_700_000_000.999_999_5, 0.000_000_4),  # the receive time crosses a second
    (1_700_000_001.000_000_4, 0.999_999_7),
    (1_699_999_999.123_456_789, 12.5),
    (1_700_000_123.5, 0.0021),
    (1_700_086_399.9, 0.2),  # the receive time crosses a day
    (1.5, 0.25),
]


def records() -> list[logschema.AccessRecord]:
    """Every field varied, on cycles of co-prime lengths so that combinations vary too;
    runs of equal tails (the formatter's cached fragments) between changes."""
    out = []
    for i in range(180):
        odd = ODD[i % len(ODD)]
        ts, latency = TIMES[i % len(TIMES)]
        if i % 11 == 5:
            ts, latency = 1_700_000_000.0 + i * 0.37, 0.0125 + i * 1e-7
        target = TARGETS[i % len(TARGETS)]
        if i % 13 == 0:
            target += odd
        out.append(
            logschema.AccessRecord.of(
                timestamp=ts,
                method=("GET", "POST", "OPTIONS", f"M{odd}")[i % 4],
                scheme=("http", "https")[i % 2],
                host=("store.example.com", "b\u00fccher.example", "", f"h{odd}:8080")[i % 4],
                target=target,
                protocol=("HTTP/1.1", "HTTP/2", "HTTP/1.0")[i % 3],
                status=(200, 404, 499, 500, 503, 0, 302)[i % 7],
                latency_s=latency,
                request_size=(0, 120, 10**12)[i % 3],
                response_size=(512, 0, 2**40 + 1)[i % 3],
                remote_ip=("127.0.0.1", "::1", "", "10.1.2.3")[i % 4],
                server_ip=("127.0.0.2", "::1")[i % 2],
                user_agent=("k6/0.50 (https://k6.io/)", "", f"ua{odd}", "wrk")[i % 4],
                trace_headers=TRACES[i % len(TRACES)],
                gateway=("store/external-http", f"g{odd}")[i // 60 % 2],
                route=("store/public-store-route/rule/1/match/0", "", "r")[i // 30 % 3],
                backend=("ServiceImport/store/store-west-1:8080", "", f"b{odd}")[i // 20 % 3],
                cluster=("gke-west-1", "", f"c{odd}")[i // 10 % 3],
                region=("us-west1", "")[i // 40 % 2],
                zone=("us-west1-a", "us-east1-b")[i // 50 % 2],
                pod=f"pod-{i // 9 % 5}",
                endpoint=("10.1.0.1:8080", "", "[::1]:80")[i // 15 % 3],
                reason=("closest", "retry", "no_route", "failover")[i // 12 % 4],
                entry_region=("us-west1", "", "eu\u00e9")[i // 35 % 3],
                attempts=1 + i // 8 % 3,
                status_details=("response_sent_by_backend", "no_route", "x\\y")[i // 25 % 3],
                entry_source=("", "gateway", "header", "client")[i // 6 % 4],
                ranking=("", "us-west1:111.4,us-east1:159.4")[i // 7 % 2],
                seen=("", "us-west1 19/20rps 2/2ok;us-east1 0/5rps 1/1ok\u2026")[i // 16 % 2],
            )
        )
    return out


def _expected(prefix: str) -> list[bytes]:
    lines = GOLDEN.read_bytes().splitlines(keepends=True)
    return [line[: PREFIX.start] + prefix.encode() + line[PREFIX.stop :] for line in lines]


def test_lines_are_the_golden_ones_byte_for_byte(update_goldens: bool) -> None:
    formatter = logschema.AccessFormatter(PROJECT, pid=PID)
    lines = [formatter.line_bytes(r) for r in records()]
    if update_goldens:
        zeros = b"0" * 8
        GOLDEN.write_bytes(b"".join(x[: PREFIX.start] + zeros + x[PREFIX.stop :] for x in lines))
    prefix = lines[0][PREFIX].decode()
    assert all(line[PREFIX] == lines[0][PREFIX] for line in lines)
    for n, (line, want) in enumerate(zip(lines, _expected(prefix), strict=True)):
        assert line == want, f"line {n + 1}"


def test_batches_of_any_size_and_cycling_caches_give_the_same_lines() -> None:
    """The writer formats plain tuples (as they come out of the pipe) a chunk at a time:
    any split of the records, with the fragment cache restarting every few records,
    gives the golden lines; the insertId counter runs on across batches and wraps."""
    values = marshal.loads(marshal.dumps([tuple(r) for r in records()]))
    formatter = logschema.AccessFormatter(PROJECT, pid=PID)
    formatter._MAX_CACHED = 3
    text = "".join(formatter.block(values[i : i + n]) for i, n in _splits(len(values)))
    prefix = text[PREFIX]
    assert text.encode() == b"".join(_expected(prefix))
    formatter._seq = 0xFFFFFFFE  # the counter wraps in the middle of the next batch
    counters = [
        json.loads(line)["insertId"][8:] for line in formatter.block(values[:4]).split("\n")[:-1]
    ]
    assert counters == ["ffffffff", "00000000", "00000001", "00000002"]


def test_an_insertid_counter_is_read_back_for_its_prefix_only() -> None:
    """A writer started after one died reads how many records that one had formatted
    from its last line's insertId, given the prefix the gateway chose for it."""
    values = [tuple(r) for r in records()][:3]
    formatter = logschema.AccessFormatter(PROJECT, pid=PID, prefix="0badcafe")
    formatter.skip(41)  # records another writer wrote: counted, not formatted
    last = formatter.block(values).encode().splitlines()[-1]
    assert logschema.insert_id_counter(last, "0badcafe") == 44
    assert logschema.insert_id_counter(last, "deadbeef") is None
    assert logschema.insert_id_counter(b'{"insertId":"0badcafe0000zz"}', "0badcafe") is None
    assert logschema.insert_id_counter(b'{"insertId":"0badcafe00000001x', "0badcafe") is None
    assert logschema.insert_id_counter(b"not a line", "0badcafe") is None


def _splits(total: int) -> list[tuple[int, int]]:
    out, i, sizes = [], 0, [1, 7, 64, 2, 256, 3]
    while i < total:
        n = sizes[len(out) % len(sizes)]
        out.append((i, n))
        i += n
    return out


def test_the_writer_process_writes_the_golden_lines(tmp_path: Path) -> None:
    """The same records through the real writer process's pipe, framed as the gateway
    frames them: its files hold exactly the golden lines."""
    values = [tuple(r) for r in records()]
    config = {
        "directory": str(tmp_path), "project_id": PROJECT, "pid": PID,
        "max_bytes": 1 << 30, "keep_files": 0, "max_age_s": 0,
    }  # fmt: skip
    data = b"".join(
        logwriter.frame(("r", n + 1, values[i : i + 100])) for n, i in enumerate(range(0, 180, 100))
    )
    done = subprocess.run(
        [sys.executable, "-m", "mcgw.dataplane.logwriter", json.dumps(config)],
        input=data,
        capture_output=True,
        timeout=60,
        check=True,
    )
    acks = logwriter.frames(bytearray(done.stdout))
    assert acks[-1][1] == 2 and sum(ack[2] for ack in acks) == len(values)
    (path,) = tmp_path.glob("access-*.jsonl")
    written = path.read_bytes()
    assert written == b"".join(_expected(written[PREFIX].decode()))

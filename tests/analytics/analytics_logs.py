"""Build the analytics test logs with mcgw.logschema (run as a script to rewrite them).

The committed ``testdata/<case>.jsonl`` files are this module's output; they are
committed so that a change to the log shape shows up as a diff of the test inputs.
Run ``python tests/analytics/analytics_logs.py`` after changing it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcgw import logschema

TESTDATA = Path(__file__).parent / "testdata"

PROJECT = "sandbox-mc-gateway"
# SEED.md's window is 2023-11-30 13:03–13:06 JST, i.e. 04:03–04:06 UTC.
WINDOW_START = datetime(2023, 11, 30, 4, 3, tzinfo=UTC).timestamp()
WINDOW_END = WINDOW_START + 180


def container(ts: float, cluster: str, zone: str, n: int) -> dict[str, Any]:
    return logschema.container_entry(
        timestamp=ts,
        text=f'127.0.0.1 - - "GET / HTTP/1.1" 200 {n}',
        stream="stdout",
        project_id=PROJECT,
        cluster=cluster,
        zone=zone,
        namespace="store",
        pod=f"store-{cluster}-0",
        container="whereami",
    )


def access(
    ts: float, cluster: str, zone: str, status: int, n: int, reason: str = "closest"
) -> dict[str, Any]:
    record = logschema.AccessRecord.of(
        timestamp=ts,
        method="GET",
        scheme="http",
        host="store.example.com",
        target="/" if n % 3 else "/west",
        protocol="HTTP/1.1",
        status=status,
        latency_s=0.001 * (1 + n % 50),
        request_size=80,
        response_size=350,
        remote_ip="127.0.0.1",
        server_ip="127.0.0.1",
        user_agent="k6",
        trace_headers=(),
        gateway="store/external-http",
        route="store/public-store-route/2",
        backend="store/store",
        cluster=cluster,
        region=zone[:-2],
        zone=zone,
        pod=f"store-{cluster}-0",
        endpoint="127.0.0.1:8080",
        reason=reason,
        entry_region="asia-northeast1",
        attempts=1 + (status == 503),
        status_details="response_sent_by_backend",
    )
    return logschema.access_entry(record, PROJECT)


def seed_location() -> Iterator[dict[str, Any]]:
    """Container logs of both clusters in and around SEED.md's window, plus access logs."""
    for i in range(41):  # 04:03:00 .. 04:06:00 inclusive, every 4.5 s
        yield container(WINDOW_START + i * 4.5, "gke-west-1", "us-west1-a", i)
    for i in range(7):
        yield container(WINDOW_START + 10 + i * 20, "gke-east-1", "us-east1-b", i)
    for i in range(3):  # just outside the window: not counted
        yield container(WINDOW_START - 0.001 - i, "gke-west-1", "us-west1-a", i)
        yield container(WINDOW_END + 0.001 + i, "gke-east-1", "us-east1-b", i)
    for i in range(5):  # other resource types in the window: not counted
        yield access(WINDOW_START + i, "gke-west-1", "us-west1-a", 200, i)


def access_by_cluster() -> Iterator[dict[str, Any]]:
    """Access logs: 30 from gke-west-1 (two 503s), 10 from gke-east-1."""
    for i in range(30):
        yield access(WINDOW_START + i, "gke-west-1", "us-west1-a", 503 if i in (4, 9) else 200, i)
    for i in range(10):
        yield access(WINDOW_START + 0.5 + i, "gke-east-1", "us-east1-b", 200, i)


def json_fields() -> Iterator[dict[str, Any]]:
    """A few lines of each shape, for field access and conversion functions."""
    yield access(WINDOW_START, "gke-west-1", "us-west1-a", 503, 7)
    entry = container(WINDOW_START + 1, "gke-east-1", "us-east1-b", 0)
    yield entry
    yield logschema.container_entry(
        timestamp=WINDOW_START + 2,
        text='{"severity": "warning", "message": "slow", "attempt": 3, "nested": {"k": "v"}}',
        stream="stdout",
        project_id=PROJECT,
        cluster="gke-east-1",
        zone="us-east1-b",
        namespace="store",
        pod="store-gke-east-1-0",
        container="whereami",
    )


def routing_events() -> Iterator[dict[str, Any]]:
    """A spill-over then a fail-over: minute 0, west serves 20 and spills 5 to east;
    minute 1, west is down: 3 requests retried, then 8 fail over to east; minute 2,
    west is back (closest again)."""
    t0 = WINDOW_START
    for i in range(20):
        yield access(t0 + i, "gke-west-1", "us-west1-a", 200, i)
    for i in range(5):
        yield access(t0 + 30 + i, "gke-east-1", "us-east1-b", 200, i, "spillover")
    for i in range(3):
        yield access(t0 + 60 + i, "gke-east-1", "us-east1-b", 200, i, "retry")
    for i in range(8):
        yield access(t0 + 70 + i, "gke-east-1", "us-east1-b", 200, i, "failover")
    for i in range(4):
        yield access(t0 + 120 + i, "gke-west-1", "us-west1-a", 200, i)


CASES = {
    "routing_events": routing_events,
    "seed_location": seed_location,
    "access_by_cluster": access_by_cluster,
    "json_fields": json_fields,
}


def write(case: str, path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for entry in CASES[case]():
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    for name in CASES:
        write(name, TESTDATA / f"{name}.jsonl")

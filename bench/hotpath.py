#!/usr/bin/env python3
"""Micro-benchmark of the data plane's per-request Python work, without sockets.

Measures, in µs per operation on this machine:

    match     router.match for a one-route table (what every request pays)
    pick      balancer.choose + balancer.pick over a 3-zone, 2-region backend
    line      logschema.AccessFormatter.line for a typical record
    exchange  one whole proxied request through protocol.ClientConnection and
              upstream.UpstreamConnection over fake transports: client head parsed,
              routed, balanced, sent on a pooled upstream connection, the response
              parsed and relayed, the access record queued (not formatted)
    no-log    the same exchange with the access log off

``exchange + line`` is the Python cost of one request; what bench/proxy.py measures
on top of it is the event loop and the four socket syscalls.

Usage: python bench/hotpath.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from mcgw import logschema
from mcgw.dataplane import accesslog, balancer, health, protocol, router, snapshot, upstream
from mcgw.dataplane.settings import ProxySettings
from mcgw.ir import table
from mcgw.testing import tables

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n"
BODY = b'{"cluster_name":"bench","zone":"local-a","pod_name":"store-5b74fdb87c-lbggt"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 25 Nov 2026 23:00:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: keep-alive\r\n\r\n%s"
    % (len(BODY), BODY)
)


class FakeTransport:
    """Just enough of asyncio.Transport for the proxy's two sides."""

    def __init__(self, peer: tuple[str, int]) -> None:
        self.peer = peer
        self.written = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name in ("peername", "sockname") else default

    def write(self, data: bytes) -> None:
        self.written += 1

    def writelines(self, data: Any) -> None:
        self.written += 1

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        raise AssertionError("closed")

    abort = close

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def per_op(fn: Callable[[], object], seconds: float) -> float:
    """Return µs per call of ``fn``, best of five timed batches (the machine is noisy)."""
    n = 1000
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt > seconds / 10:
            break
        n *= 2
    best = dt
    for _ in range(4):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def bench_table() -> table.RouteTable:
    groups = (
        table.BackendGroup(
            cluster="gke-west-1",
            region="us-west1",
            zone="us-west1-a",
            endpoints=(table.Endpoint(address="10.1.0.1", port=8080, pod="store-west-1-a"),),
        ),
        table.BackendGroup(
            cluster="gke-west-1",
            region="us-west1",
            zone="us-west1-b",
            endpoints=(table.Endpoint(address="10.1.0.2", port=8080, pod="store-west-1-b"),),
        ),
        table.BackendGroup(
            cluster="gke-east-1",
            region="us-east1",
            zone="us-east1-b",
            endpoints=(table.Endpoint(address="10.2.0.1", port=8080, pod="store-east-1-b"),),
        ),
    )
    backend = table.Backend(
        name="store/store",
        kind="Service",
        namespace="store",
        service="store",
        port=8080,
        groups=groups,
    )
    return tables.route_table(
        [tables.route("r", "store/store")], [backend], entry_region="us-west1"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()
    seconds: float = args.seconds

    rt = bench_table()
    hm = health.HealthMap()
    compiled = router.compile(rt)
    picker = balancer.Balancer(rt, hm)
    headers = [(b"Host", b"127.0.0.1:18080")]

    def match() -> object:
        return compiled.match(tables.LISTENER, b"127.0.0.1:18080", b"/", b"", headers, b"GET")

    route = match()
    assert isinstance(route, table.Route)

    def pick() -> object:
        picker.choose(route)
        return picker.pick("store/store")

    results = {"match": per_op(match, seconds), "pick": per_op(pick, seconds)}

    # One backend on 127.0.0.1: the exchange always finds its pooled connection.
    one = tables.route_table(
        [tables.route("r", "b")], [tables.backend("b", ("127.0.0.1", 18081))], entry_region="x"
    )
    settings = ProxySettings(active_health_checks=False)
    holder = snapshot.Holder(
        snapshot.Snapshot(one, router.compile(one), balancer.Balancer(one, hm))
    )
    pool = upstream.Pool(connect_timeout_s=1.0, idle_s=300.0, max_idle=64, via=b"1.1 mcgw")
    log = accesslog.AccessLog(None, "bench")
    log._enabled = True  # queue records without a directory: nothing is written
    ctx = protocol.Context(settings, holder, pool, hm, log)
    up = upstream.UpstreamConnection(pool, ("127.0.0.1", 18081))
    up.connection_made(FakeTransport(("127.0.0.1", 18081)))  # type: ignore[arg-type]
    pool.give(up)
    client = protocol.ClientConnection(ctx, tables.LISTENER)
    client.connection_made(FakeTransport(("127.0.0.1", 40000)))  # type: ignore[arg-type]

    def exchange() -> None:
        client.data_received(REQUEST)
        up.data_received(RESPONSE)
        if len(log._queue) > 1000:  # frames nobody takes (no writer): let them go
            log._queue.clear()
            log._queued_bytes = 0

    exchange()
    assert log._batch, "the exchange did not complete"
    record = log._batch[-1]
    assert logschema.AccessRecord(*record).status == 200, record
    results["exchange"] = per_op(exchange, seconds)

    # The same exchange with the access log off: what queueing the record costs.
    quiet = protocol.ClientConnection(
        protocol.Context(settings, holder, pool, hm, None), tables.LISTENER
    )
    quiet.connection_made(FakeTransport(("127.0.0.1", 40001)))  # type: ignore[arg-type]

    def exchange_no_log() -> None:
        quiet.data_received(REQUEST)
        up.data_received(RESPONSE)

    exchange_no_log()
    results["no-log"] = per_op(exchange_no_log, seconds)

    formatter = logschema.AccessFormatter("bench")
    results["line"] = per_op(lambda: formatter.line(record), seconds)

    for name, us in results.items():
        print(f"{name:10s} {us:7.2f} µs/op")
    print(f"{'total':10s} {results['exchange'] + results['line']:7.2f} µs/request (exchange+line)")


if __name__ == "__main__":
    main()

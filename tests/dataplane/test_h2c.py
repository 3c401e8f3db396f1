"""h2c backends over real loopback sockets: the gateway speaks HTTP/2 to an h2 server."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from dataclasses import replace
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from mcgw.ir import table
from mcgw.testing import tables
from mcgw.testing.client import RawClient
from mcgw.testing.gateway import serve, translate_yaml
from mcgw.testing.h2origin import H2Origin, H2Reply, H2Request
from mcgw.testing.runner import run
from mcgw.testing.upstream import FakeUpstream, closed_port

# Tests here read the x-mcgw-* debug headers.
gateway = functools.partial(serve, debug_headers=True)

# -- helpers -----------------------------------------------------------------------------


def h2c_table(*endpoints: tuple[str, int], timeout_s: float = 30.0) -> table.RouteTable:
    b = replace(
        tables.backend("b", *endpoints, timeout_s=timeout_s),
        protocol=table.BackendProtocol.H2C,
    )
    return tables.route_table([tables.route("r", "b")], [b])


def echo(req: H2Request) -> H2Reply:
    return H2Reply(
        body=req.body or req.headers[":path"].encode(),
        headers=(("x-method", req.headers[":method"]), ("connection-ish", "yes")),
    )


# -- tests ---------------------------------------------------------------------------


def test_get_and_post_reach_an_h2c_backend() -> None:
    async def main() -> None:
        async with H2Origin(echo) as up, gateway(h2c_table(up.address)) as (_, addr):
            c = await RawClient.connect(addr)
            r = await c.request("GET", "/a/b?x=1&y=%20", host="shop.example:8080")
            assert (r.status, r.version, r.body) == (200, "1.1", b"/a/b?x=1&y=%20")
            assert r.header("x-method") == "GET"
            assert r.header("connection-ish") == "yes"
            assert r.header("content-length") == str(len(r.body))
            assert r.header("via") == "1.1 mcgw"
            assert not any(k.startswith(":") for k, _ in r.headers)

            r = await c.request("POST", "/p", body=b"hello h2", headers=(("X-Custom", "v"),))
            assert (r.status, r.body, r.header("x-method")) == (200, b"hello h2", "POST")
            await c.close()

            get, post = up.seen
            assert get.headers[":method"] == "GET"
            assert get.headers[":scheme"] == "http"
            assert get.headers[":authority"] == "shop.example:8080"
            assert get.headers[":path"] == "/a/b?x=1&y=%20"
            assert get.headers["x-forwarded-for"] == "127.0.0.1"
            assert "host" not in get.headers and "connection" not in get.headers
            assert post.headers["x-custom"] == "v"
            assert post.headers["content-length"] == "8"
            assert post.body == b"hello h2"
            # One HTTP/2 connection, one stream per request.
            assert up.connections == 1
            assert (get.connection, post.connection) == (1, 1)
            assert get.stream_id != post.stream_id

    run(main())


def test_chunked_request_and_unsized_response() -> None:
    async def main() -> None:
        def handler(req: H2Request) -> H2Reply:
            return H2Reply(body=req.body.upper(), content_length=False)

        async with H2Origin(handler) as up, gateway(h2c_table(up.address)) as (_, addr):
            c = await RawClient.connect(addr)
            await c.send(
                b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
            )
            r = await c.response()
            # No Content-Length from the backend: chunked towards the HTTP/1.1 client.
            assert (r.status, r.body, r.chunked) == (200, b"ABCDEFG", True)
            assert up.seen[0].body == b"abcdefg"
            assert "transfer-encoding" not in up.seen[0].headers
            r = await c.request("HEAD", "/c")
            assert (r.status, r.body) == (200, b"")
            await c.close()

    run(main())


def test_concurrent_requests_are_multiplexed_on_one_connection() -> None:
    async def main() -> None:
        def slow(req: H2Request) -> H2Reply:
            return H2Reply(body=req.headers[":path"].encode(), delay_s=0.3)

        async with H2Origin(slow) as up, gateway(h2c_table(up.address)) as (_, addr):
            # A first request opens the connection; the others share it.
            first = await RawClient.connect(addr)
            assert (await first.request("GET", "/warm")).status == 200

            async def one(i: int) -> bytes:
                c = await RawClient.connect(addr)
                r = await c.request("GET", f"/n{i}")
                await c.close()
                assert r.status == 200
                return r.body

            t0 = time.monotonic()
            bodies = await asyncio.gather(*(one(i) for i in range(12)))
            elapsed = time.monotonic() - t0
            assert bodies == [f"/n{i}".encode() for i in range(12)]
            assert up.connections == 1
            assert up.max_in_flight >= 10
            assert elapsed < 12 * 0.3 / 2  # in parallel, not one after the other
            assert len({s.stream_id for s in up.seen}) == 13
            await first.close()

    run(main())


def test_large_bodies_both_ways_respect_flow_control() -> None:
    async def main() -> None:
        big = bytes(range(256)) * (3 * 4096)  # 3 MiB, well past every default window

        def handler(req: H2Request) -> H2Reply:
            return H2Reply(body=hashlib.sha256(req.body).hexdigest().encode() + big)

        async with H2Origin(handler) as up, gateway(h2c_table(up.address)) as (_, addr):
            c = await RawClient.connect(addr)
            r = await c.request("PUT", "/big", body=big[::-1], timeout_s=10)
            assert r.status == 200
            digest = hashlib.sha256(big[::-1]).hexdigest().encode()
            assert r.body[:64] == digest
            assert r.body[64:] == big
            assert up.seen[0].body == big[::-1]
            await c.close()

    run(main())


def test_slow_client_holds_back_its_stream_window() -> None:
    async def main() -> None:
        flood = bytes(range(256)) * 4096 * 32  # 32 MiB

        async with (
            H2Origin(
                lambda req: H2Reply(body=flood if req.headers[":path"] == "/flood" else b"ok")
            ) as up,
            gateway(h2c_table(up.address)) as (_, addr),
        ):
            reader, writer = await asyncio.open_connection(*addr)
            writer.write(b"GET /flood HTTP/1.1\r\nHost: h\r\n\r\n")
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(0.3)  # read nothing meanwhile
            # The gateway stopped handing credit back: the backend waits for window.
            assert up.blocked == 1
            # Another client is not starved meanwhile (the connection window is not).
            c = await RawClient.connect(addr)
            assert (await c.request("GET", "/other")).status == 200
            assert len(await reader.readexactly(len(flood))) == len(flood)
            assert up.connections == 1
            writer.close()
            await c.close()

    run(main())


def test_stream_reset_and_connection_close_give_502() -> None:
    async def main() -> None:
        def handler(req: H2Request) -> H2Reply:
            path = req.headers[":path"]
            if path == "/reset":
                return H2Reply(reset=h2.errors.ErrorCodes.INTERNAL_ERROR)
            if path == "/close":
                return H2Reply(close=True)
            return H2Reply(body=b"fine")

        async with H2Origin(handler) as up, gateway(h2c_table(up.address)) as (gw, addr):
            gw.health.ejection_s = 0.0  # each failure ejects the only endpoint: not for long
            c = await RawClient.connect(addr)
            r = await c.request("POST", "/reset", body=b"x")
            assert r.status == 502
            # The connection survives a reset stream.
            assert (await c.request("GET", "/ok")).body == b"fine"
            assert up.connections == 1
            r = await c.request("POST", "/close", body=b"x")
            assert r.status == 502
            await c.close()
            c = await RawClient.connect(addr)
            assert (await c.request("GET", "/ok")).body == b"fine"
            assert up.connections == 2
            await c.close()

    run(main())


def test_refused_stream_and_connect_failure_retry_on_another_endpoint() -> None:
    async def main() -> None:
        def refuse(req: H2Request) -> H2Reply:
            return H2Reply(reset=h2.errors.ErrorCodes.REFUSED_STREAM)

        async with (
            H2Origin(refuse) as bad,
            H2Origin(lambda req: H2Reply(body=b"good")) as good,
        ):
            dead = ("127.0.0.1", closed_port())
            for endpoints in ((bad.address, good.address), (dead, good.address)):
                async with gateway(h2c_table(*endpoints)) as (_, addr):
                    c = await RawClient.connect(addr)
                    for _ in range(4):
                        # GET: like a close before the response on HTTP/1.1, a refused
                        # stream is retried for idempotent requests.
                        r = await c.request("GET", "/")
                        assert (r.status, r.body) == (200, b"good")
                    await c.close()
            assert len(bad.seen) >= 1

    run(main())


def test_timeout_gives_504_and_keeps_the_connection() -> None:
    async def main() -> None:
        def handler(req: H2Request) -> H2Reply:
            delay = 1.0 if req.headers[":path"] == "/slow" else 0.0
            return H2Reply(body=b"done", delay_s=delay)

        async with (
            H2Origin(handler) as up,
            gateway(h2c_table(up.address, timeout_s=0.2)) as (gw, addr),
        ):
            gw.health.ejection_s = 0.0
            c = await RawClient.connect(addr)
            assert (await c.request("GET", "/slow")).status == 504
            c = await RawClient.connect(addr)
            assert (await c.request("GET", "/fast")).body == b"done"
            assert up.connections == 1
            await c.close()

    run(main())


def test_backend_speaking_http1_only_gives_502() -> None:
    async def main() -> None:
        async with FakeUpstream() as up, gateway(h2c_table(up.address)) as (_, addr):
            c = await RawClient.connect(addr)
            assert (await c.request("GET", "/")).status == 502
            await c.close()

    run(main())


MANIFESTS = """
apiVersion: v1
kind: Service
metadata: {{name: grpcish, namespace: default}}
spec:
  ports: [{{name: h2, port: 80, targetPort: {port}, appProtocol: kubernetes.io/h2c}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: grpcish-1
  namespace: default
  labels: {{kubernetes.io/service-name: grpcish}}
addressType: IPv4
ports: [{{name: h2, port: {port}}}]
endpoints:
- addresses: [127.0.0.1]
  targetRef: {{kind: Pod, name: grpcish-pod}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: mcgw}}
spec: {{controllerName: mcgw.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: same-namespace, namespace: default}}
spec:
  gatewayClassName: mcgw
  listeners: [{{name: http, protocol: HTTP, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: backend-protocol-h2c, namespace: default}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules:
  - backendRefs: [{{name: grpcish, port: 80}}]
"""


def test_app_protocol_h2c_from_manifests(tmp_path: Path) -> None:
    async def main() -> None:
        async with H2Origin(echo) as up:
            result = translate_yaml(tmp_path, MANIFESTS.format(port=up.address[1]))
            (backend,) = result.table.backends
            assert backend.protocol is table.BackendProtocol.H2C
            async with gateway(result.table) as (gw, _):
                (addr,) = gw.addresses().values()
                c = await RawClient.connect(addr)
                r = await c.request("GET", "/")
                assert (r.status, r.body) == (200, b"/")
                await c.close()
            assert up.seen[0].headers[":method"] == "GET"

    run(main())

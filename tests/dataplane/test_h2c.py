"""h2c backends over real loopback sockets: the gateway speaks HTTP/2 to an h2 server."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from mcgw.config import load
from mcgw.dataplane import server
from mcgw.dataplane.settings import ProxySettings
from mcgw.ir import table
from mcgw.testing import tables
from mcgw.testing.client import RawClient
from mcgw.testing.runner import run
from mcgw.testing.upstream import FakeUpstream, closed_port
from mcgw.translate import translator

BASE = ProxySettings(
    port_map=((80, 0),),
    active_health_checks=False,
    timer_resolution_s=0.02,
    debug_headers=True,
)

# -- an HTTP/2 (prior knowledge) origin server, written with h2 --------------------------


@dataclass(slots=True)
class H2Request:
    connection: int
    stream_id: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class H2Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: tuple[tuple[str, str], ...] = ()
    content_length: bool = True
    delay_s: float = 0.0
    reset: int | None = None
    """Reset the stream with this error code instead of answering."""
    close: bool = False
    """Close the TCP connection instead of answering."""


Handler = Callable[[H2Request], H2Reply]


@dataclass(slots=True)
class H2Origin:
    handler: Handler = field(default=lambda req: H2Reply(body=req.body or b"ok"))
    seen: list[H2Request] = field(default_factory=list)
    connections: int = 0
    in_flight: int = 0
    blocked: int = 0
    """Replies waiting for flow-control credit right now."""
    max_in_flight: int = 0
    server: asyncio.Server | None = None
    transports: list[asyncio.Transport] = field(default_factory=list)

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _H2Server(self), "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for t in self.transports:
            t.close()


class _H2Server(asyncio.Protocol):
    def __init__(self, origin: H2Origin) -> None:
        self.origin = origin
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="latin-1")
        )
        self.transport: asyncio.Transport | None = None
        self.requests: dict[int, tuple[dict[str, str], bytearray]] = {}
        self.window = asyncio.Event()
        self.number = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.origin.transports.append(self.transport)  # type: ignore[arg-type]
        self.origin.connections += 1
        self.number = self.origin.connections
        self.h2.initiate_connection()
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            assert self.transport is not None
            self.transport.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                self.requests[ev.stream_id] = (dict(ev.headers), bytearray())  # type: ignore[arg-type]
            elif isinstance(ev, h2.events.DataReceived):
                self.requests[ev.stream_id][1].extend(ev.data)
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                headers, body = self.requests.pop(ev.stream_id)
                req = H2Request(self.number, ev.stream_id, headers, bytes(body))
                asyncio.get_running_loop().create_task(self.respond(req))
            elif isinstance(ev, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                self.window.set()
        self.flush()

    async def respond(self, req: H2Request) -> None:
        origin = self.origin
        origin.seen.append(req)
        origin.in_flight += 1
        origin.max_in_flight = max(origin.max_in_flight, origin.in_flight)
        try:
            reply = origin.handler(req)
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            assert self.transport is not None
            if reply.close:
                self.transport.close()
                return
            sid = req.stream_id
            if reply.reset is not None:
                self.h2.reset_stream(sid, reply.reset)
                self.flush()
                return
            headers = [(":status", str(reply.status)), *reply.headers]
            if reply.content_length:
                headers.append(("content-length", str(len(reply.body))))
            self.h2.send_headers(sid, headers, end_stream=not reply.body)
            self.flush()
            body = memoryview(reply.body)
            sent = 0
            while sent < len(body):
                n = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
                if n <= 0:
                    self.window.clear()
                    origin.blocked += 1
                    try:
                        await self.window.wait()
                    finally:
                        origin.blocked -= 1
                    continue
                chunk = bytes(body[sent : sent + n])
                sent += len(chunk)
                self.h2.send_data(sid, chunk, end_stream=sent >= len(body))
                self.flush()
        except h2.exceptions.StreamClosedError:
            pass
        finally:
            origin.in_flight -= 1


# -- helpers -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def gateway(
    route_table: table.RouteTable, **overrides: Any
) -> AsyncIterator[tuple[server.Gateway, tuple[str, int]]]:
    gw = server.Gateway(replace(BASE, **overrides))
    try:
        await gw.apply(route_table)
        yield gw, gw.addresses()[tables.LISTENER]
    finally:
        await gw.close(timeout_s=1.0)


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
            (tmp_path / "all.yaml").write_text(MANIFESTS.format(port=up.address[1]))
            result = translator.translate(load.load([tmp_path]).resources)
            (backend,) = result.table.backends
            assert backend.protocol is table.BackendProtocol.H2C
            gw = server.Gateway(BASE)
            try:
                await gw.apply(result.table)
                (addr,) = gw.addresses().values()
                c = await RawClient.connect(addr)
                r = await c.request("GET", "/")
                assert (r.status, r.body) == (200, b"/")
                await c.close()
            finally:
                await gw.close(timeout_s=1.0)
            assert up.seen[0].headers[":method"] == "GET"

    run(main())

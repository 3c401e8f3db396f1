"""HTTP/2 clients (cleartext, prior knowledge): pure mapping, then over loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from mcgw.dataplane import h2server, server
from mcgw.ir import table
from mcgw.testing import tables
from mcgw.testing.client import RawClient
from mcgw.testing.gateway import SETTINGS, serve, translate_yaml
from mcgw.testing.h2origin import H2Origin, H2Reply, H2Request
from mcgw.testing.runner import run
from mcgw.testing.upstream import Action, FakeUpstream, Reply, Seen

# -- pure parts ------------------------------------------------------------------------


def test_preface_rest_finds_the_frames_after_the_parsed_line() -> None:
    rest = b"SM\r\n\r\n\x00\x00\x00\x04"
    assert h2server.preface_rest(h2server.PREFACE_LINE + rest) == rest
    # The line began in earlier reads: this one holds its tail only.
    assert h2server.preface_rest(b"\n\r\n" + rest) == rest
    assert h2server.preface_rest(b"\r\n" + rest) == rest
    assert h2server.preface_rest(b"\n") == b""
    assert h2server.preface_rest(b"") == b""


def test_request_head_maps_pseudo_headers_and_frames_the_body() -> None:
    head, chunked = h2server.request_head(
        [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", b"shop.example:8080"),
            (b":path", b"/a?b=1"),
            (b"accept", b"*/*"),
            (b"host", b"ignored.example"),
        ],
        ended=True,
    ) or (b"", True)
    assert head == b"GET /a?b=1 HTTP/1.1\r\nhost: shop.example:8080\r\naccept: */*\r\n\r\n"
    assert not chunked

    head, chunked = h2server.request_head(
        [(b":method", b"POST"), (b":path", b"/p"), (b"host", b"h"), (b"content-length", b"3")],
        ended=False,
    ) or (b"", False)
    assert head == b"POST /p HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\n\r\n"
    assert not chunked

    head, chunked = h2server.request_head(
        [(b":method", b"PUT"), (b":path", b"/p"), (b":authority", b"h")], ended=False
    ) or (b"", False)
    assert head == b"PUT /p HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n"
    assert chunked

    assert h2server.request_head([(b":method", b"CONNECT"), (b":authority", b"h:1")], True) is None


def test_response_headers_drop_http1_framing() -> None:
    block = h2server.response_headers(
        200,
        [
            (b"Content-Type", b"text/plain"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Connection", b"close"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Via", b"1.1 mcgw"),
            (b"Content-Length", b"5"),
        ],
    )
    assert block == [
        (b":status", b"200"),
        (b"content-type", b"text/plain"),
        (b"via", b"1.1 mcgw"),
        (b"content-length", b"5"),
    ]


# -- an HTTP/2 client (prior knowledge), written with h2 ----------------------------------


@dataclass(slots=True)
class H2Response:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    reset: int | None = None
    done: asyncio.Future[None] | None = None


_GOAWAY = 0x7


class H2Client(asyncio.Protocol):
    """A client speaking HTTP/2 with prior knowledge; acknowledges DATA unless told not to."""

    def __init__(self, auto_ack: bool = True) -> None:
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="latin-1")
        )
        self.auto_ack = auto_ack
        self.unacked: dict[int, int] = {}
        self.responses: dict[int, H2Response] = {}
        self.transport: asyncio.Transport | None = None
        self.window = asyncio.Event()
        self.goaway: int | None = None
        """last_stream_id of a GOAWAY received."""
        self.lost = asyncio.get_running_loop().create_future()
        self.received = 0
        self.buffer = bytearray()

    @classmethod
    async def connect(cls, address: tuple[str, int], auto_ack: bool = True) -> H2Client:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(lambda: cls(auto_ack), *address)
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.h2.initiate_connection()
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        for r in self.responses.values():
            if r.done is not None and not r.done.done():
                r.done.set_exception(ConnectionError("connection lost"))
                r.done.exception()  # Marked seen: a test may not wait for this stream.

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        # h2 takes a GOAWAY as the end of everything, though streams below its last id
        # may still be answered (RFC 9113 6.8): GOAWAY frames are noted, not passed on.
        self.buffer += data
        frames = bytearray()
        while len(self.buffer) >= 9:
            size = 9 + int.from_bytes(self.buffer[:3], "big")
            if len(self.buffer) < size:
                break
            frame = bytes(self.buffer[:size])
            del self.buffer[:size]
            if frame[3] == _GOAWAY:
                self.goaway = int.from_bytes(frame[9:13], "big") & 0x7FFFFFFF
            else:
                frames += frame
        for ev in self.h2.receive_data(bytes(frames)):
            sid = getattr(ev, "stream_id", None)
            r = self.responses.get(sid) if sid is not None else None
            if isinstance(ev, h2.events.ResponseReceived) and r is not None:
                r.headers = dict(ev.headers)  # type: ignore[arg-type]
                r.status = int(r.headers[":status"])
            elif isinstance(ev, h2.events.DataReceived) and r is not None:
                r.body += ev.data or b""
                self.received += len(ev.data or b"")
                n = ev.flow_controlled_length or 0
                if self.auto_ack:
                    self.h2.acknowledge_received_data(n, ev.stream_id)
                else:
                    self.unacked[ev.stream_id] = self.unacked.get(ev.stream_id, 0) + n
            elif isinstance(ev, h2.events.StreamEnded) and r is not None:
                assert r.done is not None
                r.done.set_result(None)
            elif isinstance(ev, h2.events.StreamReset) and r is not None:
                r.reset = ev.error_code
                assert r.done is not None
                if not r.done.done():
                    r.done.set_result(None)
            elif isinstance(ev, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                self.window.set()
        self.flush()

    def ack_all(self) -> None:
        self.auto_ack = True
        for sid, n in self.unacked.items():
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self.h2.acknowledge_received_data(n, sid)
        self.unacked.clear()
        self.flush()

    async def start(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: tuple[tuple[str, str], ...] = (),
        authority: str = "shop.example",
        content_length: bool = True,
    ) -> int:
        """Open a stream with a request; return its id once the whole body is sent."""
        sid = self.h2.get_next_available_stream_id()
        fields = [
            (":method", method),
            (":scheme", "http"),
            (":authority", authority),
            (":path", path),
            *headers,
        ]
        if body and content_length:
            fields.append(("content-length", str(len(body))))
        self.responses[sid] = H2Response(done=asyncio.get_running_loop().create_future())
        self.h2.send_headers(sid, fields, end_stream=not body)
        self.flush()
        view = memoryview(body)
        sent = 0
        while sent < len(body):
            n = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            if n <= 0:
                self.window.clear()
                await self.window.wait()
                continue
            chunk = bytes(view[sent : sent + n])
            sent += n
            self.h2.send_data(sid, chunk, end_stream=sent >= len(body))
            self.flush()
        return sid

    async def response(self, sid: int, timeout_s: float = 5.0) -> H2Response:
        r = self.responses[sid]
        assert r.done is not None
        await asyncio.wait_for(asyncio.shield(r.done), timeout_s)
        return r

    async def request(self, method: str, path: str, **kw: Any) -> H2Response:
        return await self.response(await self.start(method, path, **kw))

    def reset(self, sid: int) -> None:
        self.h2.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        self.flush()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


# -- helpers -----------------------------------------------------------------------------


def http1_table(address: tuple[str, int], path: str = "/") -> table.RouteTable:
    return tables.route_table([tables.route("r", "b", path=path)], [tables.backend("b", address)])


async def until(predicate: Callable[[], bool], within_s: float = 3.0) -> None:
    end = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.01)


def echo(seen: Seen) -> Reply:
    return Reply(
        body=seen.body or seen.target.encode(),
        headers=(("X-Method", seen.method), ("X-Host", seen.header("host") or "")),
    )


# -- over sockets ------------------------------------------------------------------------


def test_get_and_post_reach_an_http1_backend() -> None:
    async def main() -> None:
        async with FakeUpstream(echo) as up, serve(http1_table(up.address)) as (_, addr):
            c = await H2Client.connect(addr)
            r = await c.request("GET", "/a/b?x=1", authority="shop.example:8080")
            assert (r.status, bytes(r.body)) == (200, b"/a/b?x=1")
            assert r.headers["x-method"] == "GET"
            assert r.headers["x-host"] == "shop.example:8080"
            assert r.headers["via"] == "1.1 mcgw"
            assert "connection" not in r.headers and "transfer-encoding" not in r.headers

            r = await c.request("POST", "/p", body=b"hello", headers=(("x-custom", "v"),))
            assert (r.status, bytes(r.body), r.headers["x-method"]) == (200, b"hello", "POST")
            r = await c.request("HEAD", "/h")
            assert (r.status, bytes(r.body), r.headers["content-length"]) == (200, b"", "2")
            # No content-length: the body goes on as chunks (past the stream window).
            big = bytes(range(256)) * 4096
            r = await c.request("PUT", "/u", body=big, content_length=False)
            assert (r.status, bytes(r.body)) == (200, big)
            c.close()

            get, post, _, put = up.seen
            assert get.header("x-forwarded-for") == "127.0.0.1"
            assert get.header("x-forwarded-proto") == "http"
            assert (post.header("content-length"), post.header("x-custom")) == ("5", "v")
            assert post.body == b"hello"
            assert put.header("transfer-encoding") == "chunked" and put.body == big
            # One upstream connection, reused from stream to stream.
            assert up.connections == 1

    run(main())


MANIFESTS = """
apiVersion: v1
kind: Service
metadata: {{name: infra-backend-v1, namespace: gateway-conformance-infra}}
spec:
  ports: [{{name: h2, port: 8080, targetPort: {port}, appProtocol: kubernetes.io/h2c}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: infra-backend-v1-1
  namespace: gateway-conformance-infra
  labels: {{kubernetes.io/service-name: infra-backend-v1}}
addressType: IPv4
ports: [{{name: h2, port: {port}}}]
endpoints:
- addresses: [127.0.0.1]
  targetRef: {{kind: Pod, name: infra-backend-v1-pod}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: mcgw}}
spec: {{controllerName: mcgw.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: same-namespace, namespace: gateway-conformance-infra}}
spec:
  gatewayClassName: mcgw
  listeners: [{{name: http, protocol: HTTP, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: backend-protocol-h2c, namespace: gateway-conformance-infra}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules:
  - backendRefs: [{{name: infra-backend-v1, port: 8080}}]
"""


def test_conformance_backend_protocol_h2c_end_to_end(tmp_path: Path) -> None:
    """HTTPRouteBackendProtocolH2C: an HTTP/2 prior-knowledge client, an h2c backend."""

    async def main() -> None:
        def reply(req: H2Request) -> H2Reply:
            return H2Reply(
                body=(req.headers[":method"] + " " + req.headers[":path"]).encode() + req.body
            )

        async with H2Origin(reply) as origin:
            result = translate_yaml(tmp_path, MANIFESTS.format(port=origin.address[1]))
            (backend,) = result.table.backends
            assert backend.protocol is table.BackendProtocol.H2C
            async with serve(result.table) as (gw, _):
                (addr,) = gw.addresses().values()
                c = await H2Client.connect(addr)
                r = await c.request("GET", "/")
                assert (r.status, bytes(r.body)) == (200, b"GET /")
                r = await c.request("POST", "/echo", body=b"+body")
                assert (r.status, bytes(r.body)) == (200, b"POST /echo+body")
                c.close()
        get, post = origin.seen
        assert get.headers[":authority"] == "shop.example"
        assert post.body == b"+body"
        assert origin.connections == 1

    run(main())


def test_each_stream_is_one_access_log_record(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeUpstream() as up:
            t = http1_table(up.address, "/ok")
            async with serve(t, access_log_dir=tmp_path) as (_, addr):
                c = await H2Client.connect(addr)
                sids = [
                    await c.start("GET", "/ok?q=1", headers=(("user-agent", "h2-test"),)),
                    await c.start("GET", "/missing"),
                ]
                assert [(await c.response(s)).status for s in sids] == [200, 404]
                c.close()

    run(main())
    lines = [
        json.loads(x) for f in sorted(tmp_path.glob("*.jsonl")) for x in f.read_text().splitlines()
    ]
    ok, missing = sorted(lines, key=lambda x: x["httpRequest"]["status"])
    assert ok["httpRequest"]["requestUrl"] == "http://shop.example/ok?q=1"
    assert ok["httpRequest"]["userAgent"] == "h2-test"
    assert ok["httpRequest"]["remoteIp"] == "127.0.0.1"
    assert ok["jsonPayload"]["statusDetails"] == "response_sent_by_backend"
    assert missing["jsonPayload"]["statusDetails"] == "no_route"


def test_concurrent_streams_on_one_connection() -> None:
    async def main() -> None:
        def slow(seen: Seen) -> Reply:
            return Reply(body=seen.target.encode(), delay_s=0.3)

        async with FakeUpstream(slow) as up, serve(http1_table(up.address)) as (gw, addr):
            c = await H2Client.connect(addr)
            t0 = time.monotonic()
            sids = [await c.start("GET", f"/n{i}") for i in range(20)]
            responses = await asyncio.gather(*(c.response(s) for s in sids))
            elapsed = time.monotonic() - t0
            assert [bytes(r.body) for r in responses] == [f"/n{i}".encode() for i in range(20)]
            assert elapsed < 20 * 0.3 / 4  # side by side, not one after the other
            # Every stream's private connection is gone; the HTTP/2 one stays.
            await until(lambda: gw.connections == 1)
            c.close()
            await until(lambda: gw.connections == 0)

    run(main())


def test_upload_stalls_at_the_window_when_the_backend_does_not_read() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        # Listening, never accepting: the kernel takes the connection, nobody reads.
        deaf = socket.socket()
        deaf.bind(("127.0.0.1", 0))
        deaf.listen(8)
        address = deaf.getsockname()[:2]
        try:
            async with serve(http1_table(address)) as (gw, addr):
                c = await H2Client.connect(addr)
                upload = loop.create_task(c.start("POST", "/up", body=b"u" * (48 * 1024 * 1024)))
                await asyncio.sleep(1.0)
                # Request DATA is acknowledged only as it is consumed: the client is held.
                assert not upload.done()
                held = c.h2.outbound_flow_control_window
                await asyncio.sleep(0.2)
                assert c.h2.outbound_flow_control_window == held
                upload.cancel()
                c.close()
                await until(lambda: gw.connections == 0)
        finally:
            deaf.close()

    run(main())


def test_no_route_is_an_http2_404() -> None:
    async def main() -> None:
        async with FakeUpstream() as up, serve(http1_table(up.address, "/only")) as (_, addr):
            c = await H2Client.connect(addr)
            r = await c.request("GET", "/elsewhere")
            assert (r.status, bytes(r.body)) == (404, b"404 Not Found\n")
            assert r.headers["content-length"] == str(len(r.body))
            # The connection goes on.
            assert (await c.request("GET", "/only")).status == 200
            c.close()
            assert len(up.seen) == 1

    run(main())


def test_big_response_waits_for_the_client_window() -> None:
    async def main() -> None:
        big = bytes(range(256)) * 4096 * 3  # 3 MiB, far past the default 64 KiB windows
        async with (
            FakeUpstream(Reply(body=big)) as up,
            serve(http1_table(up.address)) as (_, addr),
        ):
            c = await H2Client.connect(addr, auto_ack=False)
            sid = await c.start("GET", "/big")
            await asyncio.sleep(0.3)
            # Nothing acknowledged: the gateway stops at the client's initial window.
            assert 0 < c.received <= 65535
            c.ack_all()
            r = await c.response(sid, timeout_s=10)
            assert r.status == 200
            assert hashlib.sha256(r.body).digest() == hashlib.sha256(big).digest()
            c.close()

    run(main())


def test_reset_stream_mid_response_cancels_the_request() -> None:
    async def main() -> None:
        big = b"x" * (4 * 1024 * 1024)

        def handler(seen: Seen) -> Reply:
            return Reply(body=big) if seen.target == "/big" else Reply(body=b"small")

        async with FakeUpstream(handler) as up, serve(http1_table(up.address)) as (gw, addr):
            c = await H2Client.connect(addr, auto_ack=False)
            sid = await c.start("GET", "/big")
            await until(lambda: c.received > 0)
            c.reset(sid)
            # The upstream connection carrying the cut response is abandoned (closed).
            await until(lambda: up.open_connections == 0)
            await until(lambda: gw.connections == 1)
            c.ack_all()
            r = await c.request("GET", "/small")
            assert (r.status, bytes(r.body)) == (200, b"small")
            c.close()

    run(main())


def test_reset_while_waiting_for_the_backend() -> None:
    async def main() -> None:
        async with (
            FakeUpstream(Reply(action=Action.HANG)) as up,
            serve(http1_table(up.address)) as (gw, addr),
        ):
            c = await H2Client.connect(addr)
            sid = await c.start("POST", "/hang", body=b"data")
            await until(lambda: len(up.seen) == 1)
            c.reset(sid)
            await until(lambda: up.open_connections == 0)
            await until(lambda: gw.connections == 1)
            c.close()

    run(main())


def test_http1_clients_share_the_listener() -> None:
    async def main() -> None:
        async with FakeUpstream(echo) as up, serve(http1_table(up.address)) as (_, addr):
            h2c = await H2Client.connect(addr)
            http1 = await RawClient.connect(addr)
            r1 = await http1.request("GET", "/one")
            assert (r1.status, r1.version, r1.body) == (200, "1.1", b"/one")
            r2 = await h2c.request("GET", "/two")
            assert (r2.status, bytes(r2.body)) == (200, b"/two")
            # An h2c upgrade from HTTP/1.1 is not taken: answered over HTTP/1.1.
            await http1.send(
                b"GET /three HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
            )
            r3 = await http1.response()
            assert (r3.status, r3.version, r3.body) == (200, "1.1", b"/three")
            assert up.seen[-1].header("upgrade") is None
            # A PRI line that is not the HTTP/2 preface is a bad HTTP/1.1 request.
            bad = await RawClient.connect(addr)
            await bad.send(b"PRI * HTTP/1.1\r\nHost: h\r\n\r\n")
            assert (await bad.response()).status == 400
            await http1.close()
            await bad.close()
            h2c.close()

    run(main())


def test_preface_split_across_reads() -> None:
    async def main() -> None:
        async with FakeUpstream() as up, serve(http1_table(up.address)) as (_, addr):
            reader, writer = await asyncio.open_connection(*addr)
            client = h2.connection.H2Connection(
                h2.config.H2Configuration(client_side=True, header_encoding=None)
            )
            client.initiate_connection()
            client.send_headers(
                1,
                [(":method", "GET"), (":scheme", "http"), (":authority", "h"), (":path", "/")],
                end_stream=True,
            )
            data = client.data_to_send()
            for piece in (data[:10], data[10:17], data[17:30], data[30:]):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.02)
            status = None
            while status is None:
                chunk = await asyncio.wait_for(reader.read(65536), 5)
                assert chunk
                for ev in client.receive_data(chunk):
                    if isinstance(ev, h2.events.ResponseReceived):
                        status = dict(ev.headers)[b":status"]
                writer.write(client.data_to_send())
            assert status == b"200"
            writer.close()

    run(main())


def test_graceful_close_sends_goaway_and_finishes_streams() -> None:
    async def main() -> None:
        async with FakeUpstream(Reply(body=b"late", delay_s=0.3)) as up:
            gw = server.Gateway(SETTINGS)
            try:
                await gw.apply(http1_table(up.address))
                c = await H2Client.connect(gw.addresses()[tables.LISTENER])
                sid = await c.start("GET", "/")
                await until(lambda: len(up.seen) == 1)
                closing = asyncio.get_running_loop().create_task(gw.close(timeout_s=3.0))
                await until(lambda: c.goaway is not None)
                assert c.goaway == sid
                r = await c.response(sid)
                assert (r.status, bytes(r.body)) == (200, b"late")
                await asyncio.wait_for(c.lost, 2)
                await closing
            finally:
                await gw.close(timeout_s=1.0)

    run(main())


def test_idle_connection_is_closed() -> None:
    async def main() -> None:
        async with (
            FakeUpstream() as up,
            serve(http1_table(up.address), idle_timeout_s=0.2) as (
                gw,
                addr,
            ),
        ):
            c = await H2Client.connect(addr)
            assert (await c.request("GET", "/")).status == 200
            await asyncio.wait_for(c.lost, 2)
            assert c.goaway is not None
            assert gw.connections == 0

    run(main())


def test_h2_requests_get_the_http1_strictness() -> None:
    """Each stream becomes an HTTP/1.1 head read by the strict parser: what h2 lets
    through but HTTP/1.1 forbids (a space in :path, a non-token name, a method no one
    implements, two content-lengths) is refused before any byte reaches the backend."""

    async def main() -> None:
        async with FakeUpstream(echo) as up, serve(http1_table(up.address)) as (_, addr):
            c = await H2Client.connect(addr)
            c.h2.config.validate_outbound_headers = False
            cases: list[tuple[str, str, tuple[tuple[str, str], ...], int]] = [
                ("GET", "/a b", (), 400),
                ("GET", "/a#frag", (), 400),
                ("GET", "/", (("x(y)", "v"),), 400),
                ("FOO", "/", (), 501),
                ("POST", "/", (("content-length", "0"), ("content-length", "0")), 400),
            ]
            for method, path, headers, status in cases:
                r = await c.request(method, path, headers=headers)
                assert r.status == status, (method, path, headers)
            assert (await c.request("GET", "/ok")).status == 200
            c.close()
            assert [s.target for s in up.seen] == ["/ok"]

    run(main())

"""WebSocket pass-through over real sockets: handshake, relay, close, idle, backpressure."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import Request, Response, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from mcgw.dataplane import tunnel
from mcgw.ir import table
from mcgw.testing import tables
from mcgw.testing.client import RawClient
from mcgw.testing.gateway import serve as gateway
from mcgw.testing.gateway import translate_yaml
from mcgw.testing.runner import run
from mcgw.testing.upstream import FakeUpstream, Reply


def one_backend(
    address: tuple[str, int], protocol: table.BackendProtocol = table.BackendProtocol.HTTP
) -> table.RouteTable:
    b = replace(tables.backend("b", address), protocol=protocol)
    return tables.route_table([tables.route("r", "b")], [b])


class EchoServer:
    """A websockets server: greets, echoes, records what it saw."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.closed: list[tuple[int | None, str | None]] = []
        self.close_with: int | None = None
        self._server: Any = None

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.requests.append(ws.request)
        await ws.send("hello")
        try:
            async for message in ws:
                if message == "close please" and self.close_with is not None:
                    await ws.close(self.close_with, "server says bye")
                    break
                await ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            rcvd = ws.protocol.close_rcvd
            self.closed.append((rcvd.code, rcvd.reason) if rcvd else (None, None))

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def __aenter__(self) -> EchoServer:
        self._server = await serve(self.handler, "127.0.0.1", 0, max_size=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()


async def until(predicate: Any, within_s: float = 3.0) -> None:
    async with asyncio.timeout(within_s):
        while not predicate():
            await asyncio.sleep(0.01)


# -- pure ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("GET", [("Connection", "Upgrade"), ("Upgrade", "websocket")], True),
        ("GET", [("connection", "keep-alive, Upgrade"), ("upgrade", "WebSocket")], True),
        ("GET", [("Connection", "x"), ("Connection", "upgrade"), ("Upgrade", "websocket")], True),
        ("GET", [("Upgrade", "websocket")], False),
        ("GET", [("Connection", "upgrade"), ("Upgrade", "h2c")], False),
        ("POST", [("Connection", "upgrade"), ("Upgrade", "websocket")], False),
    ],
)
def test_is_websocket_upgrade(method: str, headers: list[tuple[str, str]], expected: bool) -> None:
    raw = [(k.encode(), v.encode()) for k, v in headers]
    assert tunnel.is_websocket_upgrade(method.encode(), raw) is expected


# -- over sockets ----------------------------------------------------------------------------


def test_handshake_and_messages_both_ways() -> None:
    async def main() -> None:
        async with EchoServer() as up, gateway(one_backend(up.address)) as (gw, addr):
            uri = f"ws://{addr[0]}:{addr[1]}/chat?room=1"
            async with connect(uri, max_size=None) as ws:
                assert ws.response is not None
                assert ws.response.status_code == 101
                assert ws.response.headers["Via"] == "1.1 mcgw"
                assert await ws.recv() == "hello"
                await ws.send("Websocket Support!")
                assert await ws.recv() == "Websocket Support!"
                await ws.send(bytes([1, 2, 3, 4, 5, 6, 7]))
                assert await ws.recv() == bytes([1, 2, 3, 4, 5, 6, 7])
                big = bytes(range(256)) * 16384  # 4 MiB in one message
                await ws.send(big)
                assert await ws.recv() == big
                assert gw.connections == 1
            (request,) = up.requests
            assert request.path == "/chat?room=1"
            assert request.headers["Upgrade"].lower() == "websocket"
            assert request.headers["X-Forwarded-For"] == "127.0.0.1"
            assert request.headers["Host"] == f"{addr[0]}:{addr[1]}"
            await until(lambda: gw.connections == 0)

    run(main())


def test_close_propagates_both_ways() -> None:
    async def main() -> None:
        async with EchoServer() as up, gateway(one_backend(up.address)) as (gw, addr):
            uri = f"ws://{addr[0]}:{addr[1]}/"
            # The client closes: the backend gets its close frame, every socket goes.
            async with connect(uri) as ws:
                assert await ws.recv() == "hello"
                await ws.close(4000, "client says bye")
            await until(lambda: len(up.closed) == 1)
            assert up.closed == [(4000, "client says bye")]
            await until(lambda: gw.connections == 0)

            # The backend closes: the client sees its code.
            up.close_with = 4001
            async with connect(uri) as ws:
                assert await ws.recv() == "hello"
                await ws.send("close please")
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
                assert info.value.rcvd is not None
                assert info.value.rcvd.code == 4001
            await until(lambda: gw.connections == 0)

    run(main())


def test_backend_going_away_closes_the_client() -> None:
    async def main() -> None:
        async with EchoServer() as up, gateway(one_backend(up.address)) as (gw, addr):
            ws = await connect(f"ws://{addr[0]}:{addr[1]}/")
            assert await ws.recv() == "hello"
        # The backend and gateway are gone (TCP closed without a close frame).
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(3):
                await ws.recv()
        assert gw.connections == 0

    run(main())


def test_refused_upgrade_is_relayed_as_a_response() -> None:
    async def main() -> None:
        def refuse(conn: ServerConnection, request: Request) -> Response:
            return conn.respond(HTTPStatus.FORBIDDEN, "no sockets here\n")

        echo = EchoServer()
        async with (
            serve(echo.handler, "127.0.0.1", 0, process_request=refuse) as srv,
        ):
            port = srv.sockets[0].getsockname()[1]
            async with gateway(one_backend(("127.0.0.1", port))) as (_, addr):
                with pytest.raises(InvalidStatus) as info:
                    await connect(f"ws://{addr[0]}:{addr[1]}/")
                assert info.value.response.status_code == 403
                assert info.value.response.body == b"no sockets here\n"

    run(main())


def test_upgrade_answered_without_101_ends_the_connection() -> None:
    async def main() -> None:
        async with (
            FakeUpstream(Reply(body=b"plain")) as up,
            gateway(one_backend(up.address)) as (_, addr),
        ):
            c = await RawClient.connect(addr)
            r = await c.request(
                headers=(
                    ("Connection", "Upgrade"),
                    ("Upgrade", "websocket"),
                    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                    ("Sec-WebSocket-Version", "13"),
                )
            )
            assert (r.status, r.body) == (200, b"plain")
            assert await c.closed()
            # The backend was asked for the upgrade.
            assert up.seen[0].header("upgrade") == "websocket"
            assert "upgrade" in (up.seen[0].header("connection") or "").lower()

    run(main())


def test_idle_tunnel_is_closed_and_traffic_keeps_it_open() -> None:
    async def main() -> None:
        async with (
            EchoServer() as up,
            gateway(one_backend(up.address), tunnel_idle_timeout_s=0.4) as (gw, addr),
        ):
            async with connect(f"ws://{addr[0]}:{addr[1]}/", ping_interval=None) as ws:
                assert await ws.recv() == "hello"
                for i in range(8):  # 0.8 s of traffic, twice the idle timeout
                    await asyncio.sleep(0.1)
                    await ws.send(str(i))
                    assert await ws.recv() == str(i)
                with pytest.raises(ConnectionClosed):
                    async with asyncio.timeout(3):
                        await ws.recv()
            await until(lambda: gw.connections == 0)
            await until(lambda: len(up.closed) == 1)

    run(main())


def test_tunnel_applies_backpressure() -> None:
    """A client that does not read stops the gateway reading from the backend."""

    async def main() -> None:
        flood = bytes(range(256)) * 4096 * 32  # 32 MiB
        writers: list[asyncio.StreamWriter] = []
        early: list[bytes] = []

        async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                b"Upgrade: websocket\r\n\r\nearly-"
            )
            writer.write(flood)
            writers.append(writer)
            early.append(await reader.readexactly(len(b"client-early")))
            await reader.read()  # until the gateway closes
            writer.close()

        srv = await asyncio.start_server(backend, "127.0.0.1", 0)
        try:
            port = srv.sockets[0].getsockname()[1]
            async with gateway(one_backend(("127.0.0.1", port))) as (gw, addr):
                c_reader, c_writer = await asyncio.open_connection(*addr)
                c_writer.write(
                    b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                    b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                    b"client-early"  # read with the head: relayed once the 101 is in
                )
                head = await c_reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 101 ")
                await until(lambda: bool(writers))
                await asyncio.sleep(0.3)  # the client reads nothing meanwhile
                # Most of the flood is still at the backend: the gateway stopped reading.
                assert writers[0].transport.get_write_buffer_size() > 8 * 1024 * 1024
                got = await c_reader.readexactly(len(b"early-") + len(flood))
                assert got == b"early-" + flood
                assert early == [b"client-early"]
                c_writer.write(b"ping")
                c_writer.close()
                await until(lambda: gw.connections == 0)
        finally:
            srv.close()

    run(main())


MANIFESTS = """
apiVersion: v1
kind: Service
metadata: {{name: ws-backend, namespace: default}}
spec:
  ports: [{{name: ws, port: 80, targetPort: {port}, appProtocol: kubernetes.io/ws}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ws-backend-1
  namespace: default
  labels: {{kubernetes.io/service-name: ws-backend}}
addressType: IPv4
ports: [{{name: ws, port: {port}}}]
endpoints:
- addresses: [127.0.0.1]
  targetRef: {{kind: Pod, name: ws-pod}}
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
metadata: {{name: backend-protocol-ws, namespace: default}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /ws}}}}]
    backendRefs: [{{name: ws-backend, port: 80}}]
"""


def test_app_protocol_ws_route_from_manifests(tmp_path: Path) -> None:
    async def main() -> None:
        async with EchoServer() as up:
            result = translate_yaml(tmp_path, MANIFESTS.format(port=up.address[1]))
            (backend,) = result.table.backends
            assert backend.protocol is table.BackendProtocol.WS
            async with gateway(result.table) as (gw, _):
                (addr,) = gw.addresses().values()
                async with connect(f"ws://{addr[0]}:{addr[1]}/ws") as ws:
                    assert await ws.recv() == "hello"
                    await ws.send("Websocket Support!")
                    assert await ws.recv() == "Websocket Support!"
                    await ws.send(bytes([1, 2, 3, 4, 5, 6, 7]))
                    assert await ws.recv() == bytes([1, 2, 3, 4, 5, 6, 7])
                # A plain request on the same route still works as HTTP/1.1.
                c = await RawClient.connect(addr)
                r = await c.request("GET", "/ws")
                assert r.status == 426  # websockets' answer to a non-upgrade request
                await c.close()
            assert up.requests[0].path == "/ws"

    run(main())

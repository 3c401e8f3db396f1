"""Regression tests for data-plane bugs found in review, over real loopback sockets.

Each test fails on the code before its fix: a stalled upload ejecting a healthy
endpoint, backendRef filters lost on a route's second hostname, absolute-form
targets routed by Host but forwarded by their own authority, an idle-closed pooled
connection blaming its endpoint, HTTP/1.0 requests forwarded without Host, and
``TE: trailers`` never reaching h2c backends.
"""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

from mcgw.config import load
from mcgw.dataplane import errors as dp_errors
from mcgw.dataplane import upstream
from mcgw.ir import table
from mcgw.testing import tables
from mcgw.testing.client import RawClient, Response
from mcgw.testing.gateway import serve
from mcgw.testing.h2origin import H2Origin
from mcgw.testing.runner import run
from mcgw.testing.upstream import Action, FakeUpstream, Reply, Seen
from mcgw.translate import translator


async def get(addr: tuple[str, int], target: str = "/", host: str = "example.com") -> Response:
    c = await RawClient.connect(addr)
    try:
        return await c.request(target=target, host=host)
    finally:
        await c.close()


async def raw(addr: tuple[str, int], data: bytes) -> Response:
    """Send ``data`` on a new connection and return the response."""
    c = await RawClient.connect(addr)
    try:
        await c.send(data)
        return await c.response()
    finally:
        await c.close()


# -- 1. a stalled upload is the client's fault --------------------------------------------


def test_stalled_upload_is_408_and_does_not_eject_the_endpoint() -> None:
    async def main() -> None:
        async with FakeUpstream() as up:
            t = tables.route_table(
                [tables.route("r", "a")], [tables.backend("a", up.address, timeout_s=0.3)]
            )
            async with serve(t) as (gw, addr):
                c = await RawClient.connect(addr)
                head = b"POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: 100\r\n\r\n"
                await c.send(head + b"0123456789")
                r = await c.response(timeout_s=3.0)
                assert r.status == 408
                assert await c.closed()
                await c.close()
                assert gw.health.down == set()
                assert (await get(addr)).status == 200

    run(main())


# -- 2. backendRef filters on every hostname of a route ------------------------------------

ROUTE_WITH_BACKEND_FILTER = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: mcgw}}
spec: {{controllerName: mcgw.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: mcgw
  listeners: [{{name: http, protocol: HTTP, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [a.example, b.example]
  rules:
  - backendRefs:
    - name: app
      port: 80
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {{add: [{{name: x-ref, value: "yes"}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: app, namespace: default}}
spec:
  ports: [{{port: 80, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: app-1
  namespace: default
  labels: {{kubernetes.io/service-name: app}}
addressType: IPv4
ports: [{{port: {port}}}]
endpoints:
- addresses: [127.0.0.1]
  conditions: {{ready: true}}
"""


def test_backend_ref_filter_applies_on_every_hostname(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeUpstream() as up:
            (tmp_path / "all.yaml").write_text(ROUTE_WITH_BACKEND_FILTER.format(port=up.port))
            result = translator.translate(load.load([tmp_path]).resources)
            assert result.table.listeners, result.warnings
            async with serve(result.table) as (_, addr):
                for host in ("a.example", "b.example", "a.example", "b.example"):
                    assert (await get(addr, host=host)).status == 200
            assert [s.header("x-ref") for s in up.seen] == ["yes"] * 4

    run(main())


# -- 3. absolute-form targets: the target's authority wins ----------------------------------


def two_hosts(admin: tuple[str, int], public: tuple[str, int]) -> table.RouteTable:
    listener = table.Listener(
        name=tables.LISTENER,
        address="127.0.0.1",
        port=80,
        virtual_hosts=(
            table.VirtualHost(hostname="admin.internal", routes=(tables.route("adm", "admin"),)),
            table.VirtualHost(hostname="public.example", routes=(tables.route("pub", "public"),)),
        ),
        gateway="default/gw",
    )
    return table.RouteTable(
        listeners=(listener,),
        backends=(tables.backend("admin", admin), tables.backend("public", public)),
        locality=table.Locality(),
        version="test",
    )


def test_absolute_form_routes_and_forwards_by_its_authority() -> None:
    async def main() -> None:
        async with (
            FakeUpstream(name="admin") as adm,
            FakeUpstream(name="public") as pub,
            serve(two_hosts(adm.address, pub.address)) as (_, addr),
        ):
            r = await raw(
                addr,
                b"GET http://admin.internal/secret?k=v HTTP/1.1\r\n"
                b"Host: admin.internal\r\nX-Kept: 1\r\n\r\n",
            )
            assert (r.status, r.body) == (200, b"admin")
            # An authority that disagrees with Host is refused (400), never routed.
            r = await raw(
                addr,
                b"GET http://admin.internal/secret HTTP/1.1\r\nHost: public.example\r\n\r\n",
            )
            assert r.status == 400
            # Without a Host line (HTTP/1.0) the authority is added.
            r = await raw(addr, b"GET http://public.example:8080/p HTTP/1.0\r\n\r\n")
            assert (r.status, r.body) == (200, b"public")
        (seen,) = adm.seen
        assert seen.target == "/secret?k=v"
        assert seen.header_values("host") == ["admin.internal"]
        assert seen.header("x-kept") == "1"
        (seen,) = pub.seen
        assert seen.target == "/p"
        assert seen.header_values("host") == ["public.example:8080"]

    run(main())


def test_absolute_form_parts() -> None:
    af = upstream.absolute_form
    assert af(b"http://h.example:81/p?q=1") == (b"h.example:81", b"/p", b"q=1")
    assert af(b"http://u:pw@h.example") == (b"h.example", b"/", b"")
    assert af(b"http://[::1]:8080/x") == (b"[::1]:8080", b"/x", b"")
    for other in (b"/p?q", b"*", b"h.example:443", b"junk"):
        assert af(other) is None


# -- 4. a pooled connection closed by its endpoint while idle --------------------------------


def test_reused_connection_closed_before_a_post_does_not_eject() -> None:
    def reply(seen: Seen) -> Reply:
        # Closes its connection when a second request arrives on it, as an endpoint
        # whose keep-alive timeout just ran out.
        return Reply(action=Action.CLOSE) if seen.index == 1 else Reply()

    async def main() -> None:
        async with FakeUpstream(reply) as up:
            t = tables.route_table([tables.route("r", "a")], [tables.backend("a", up.address)])
            async with serve(t) as (gw, addr):
                c = await RawClient.connect(addr)
                assert (await c.request("GET", "/")).status == 200
                r = await c.request("POST", "/p", body=b"data")
                assert r.status == 502
                await c.close()
                assert up.connections == 1  # The POST did go on the pooled connection.
                assert gw.health.down == set()
                assert (await get(addr)).status == 200

    run(main())


# -- 5. HTTP/1.0 without Host ---------------------------------------------------------------


def test_http10_request_without_host_gets_one() -> None:
    async def main() -> None:
        async with FakeUpstream() as up:
            t = tables.route_table([tables.route("r", "a")], [tables.backend("a", up.address)])
            async with serve(t) as (_, addr):
                r = await raw(addr, b"GET /x HTTP/1.0\r\nUser-Agent: old\r\n\r\n")
                assert r.status == 200
        (seen,) = up.seen
        # The address and port the client connected to (RFC 9112 3.3).
        assert seen.header_values("host") == [f"{addr[0]}:{addr[1]}"]
        assert seen.version == "1.1"

    run(main())


# -- 6. TE: trailers reaches h2c backends only -----------------------------------------------


def test_te_trailers_passes_to_h2c_only() -> None:
    te = (("TE", "trailers"), ("Connection", "TE"))

    async def main() -> None:
        async with H2Origin() as h2, FakeUpstream() as h1:
            b = replace(tables.backend("b", h2.address), protocol=table.BackendProtocol.H2C)
            t = tables.route_table([tables.route("r", "b")], [b])
            async with serve(t) as (_, addr):
                c = await RawClient.connect(addr)
                assert (await c.request(headers=te)).status == 200
                assert (await c.request()).status == 200
                await c.close()
            t = tables.route_table([tables.route("r", "a")], [tables.backend("a", h1.address)])
            async with serve(t) as (_, addr):
                c = await RawClient.connect(addr)
                assert (await c.request(headers=te)).status == 200
                await c.close()
            with_te, without = h2.seen
            assert with_te.headers.get("te") == "trailers"
            assert "te" not in without.headers
            (seen,) = h1.seen
            assert seen.header("te") is None

    run(main())


def test_te_other_than_trailers_is_dropped_for_h2c() -> None:
    async def main() -> None:
        async with H2Origin() as h2:
            b = replace(tables.backend("b", h2.address), protocol=table.BackendProtocol.H2C)
            t = tables.route_table([tables.route("r", "b")], [b])
            async with serve(t) as (_, addr):
                c = await RawClient.connect(addr)
                r = await c.request(headers=(("TE", "gzip"), ("Connection", "TE")))
                assert r.status == 200
                await c.close()
            (seen,) = h2.seen
            assert "te" not in seen.headers

    run(main())


# -- a listener that cannot move keeps serving where it was -----------------------------


def _moved(route_table: table.RouteTable, address: str) -> table.RouteTable:
    listener = replace(route_table.listeners[0], address=address)
    return replace(route_table, listeners=(listener,), version=f"moved-{address}")


def test_a_listener_that_cannot_move_keeps_serving_at_its_old_address() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])

    async def main() -> None:
        async with FakeUpstream() as up:
            base = tables.route_table([tables.route("r", "b")], [tables.backend("b", up.address)])
            async with serve(base, port_map=((80, port),)) as (gw, addr):
                assert addr == ("127.0.0.1", port)
                with socket.socket() as squatter:  # the new address's port is taken
                    squatter.bind(("127.0.0.5", port))
                    squatter.listen()
                    try:
                        await gw.apply(_moved(base, "127.0.0.5"))
                        raise AssertionError("the bind should have failed")
                    except dp_errors.ListenError:
                        pass
                assert gw.addresses()[tables.LISTENER] == ("127.0.0.1", port)
                assert (await get(addr)).status == 200
                await gw.apply(_moved(base, "127.0.0.6"))  # a free address: it moves
                assert gw.addresses()[tables.LISTENER] == ("127.0.0.6", port)
                assert (await get(("127.0.0.6", port))).status == 200

    run(main())

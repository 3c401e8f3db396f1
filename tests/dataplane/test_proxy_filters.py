"""HTTPRoute filters, timeouts, retries and per-Gateway addresses over loopback sockets.

Expectations follow what the Gateway API conformance suite checks (httproute-*.go).
Several tables come from the real translator on YAML, which also pins the
translator → data plane contract.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from mcgw.ir import table
from mcgw.testing import tables
from mcgw.testing.client import RawClient, Response
from mcgw.testing.gateway import serve, translate_yaml
from mcgw.testing.manifests import GATEWAY_CLASS, service
from mcgw.testing.runner import run
from mcgw.testing.upstream import Action, FakeUpstream, Reply, Seen, closed_port

GATEWAY = (
    GATEWAY_CLASS
    + """---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: mcgw
  listeners: [{name: http, protocol: HTTP, port: 80, allowedRoutes: {namespaces: {from: All}}}]
"""
)


def translated(tmp_path: Path, text: str) -> table.RouteTable:
    """The table the real loader and translator make of the manifests ``text``."""
    result = translate_yaml(tmp_path, text)
    assert result.table.listeners, result.warnings
    return result.table


def route_yaml(rules: str, hostnames: str = "") -> str:
    hosts = f"\n  hostnames: [{hostnames}]" if hostnames else ""
    return f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]{hosts}
  rules:
{rules}"""


def with_route(
    backends: list[table.Backend],
    *,
    filters: table.Filters = table.Filters(),  # noqa: B008 (frozen)
    weighted: tuple[table.WeightedBackend, ...] | None = None,
    timeouts: table.Timeouts = table.Timeouts(),  # noqa: B008 (frozen)
    retry: table.Retry | None = None,
) -> table.RouteTable:
    route = replace(
        tables.route("r", backends[0].name),
        filters=filters,
        timeouts=timeouts,
        retry=retry,
    )
    if weighted is not None:
        route = replace(route, backends=weighted)
    return tables.route_table([route], backends)


async def get(addr: tuple[str, int], target: str = "/", **kw: Any) -> Response:
    c = await RawClient.connect(addr)
    try:
        return await c.request(target=target, **kw)
    finally:
        await c.close()


# -- RequestHeaderModifier / ResponseHeaderModifier ------------------------------------


def test_request_header_modifier_from_yaml(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeUpstream(name="app") as up:
            rules = """  - matches: [{path: {type: PathPrefix, value: /set}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Header-Set, value: set-overwrites-values}]}
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /add}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {add: [{name: X-Header-Add, value: add-appends-values}]}
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /remove}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {remove: [X-Header-Remove]}
    backendRefs: [{name: app, port: 80}]
"""
            rt = translated(tmp_path, GATEWAY + route_yaml(rules) + service("app", up.port))
            async with serve(rt) as (_, addr):
                c = await RawClient.connect(addr)
                cases: list[tuple[str, tuple[tuple[str, str], ...]]] = [
                    ("/set", (("Some-Other-Header", "val"),)),
                    ("/set", (("x-header-set", "some-other-value"),)),
                    ("/add", (("Some-Other-Header", "val"),)),
                    ("/add", (("x-header-add", "some-other-value"),)),
                    ("/remove", (("X-Header-Remove", "val"), ("x-header-remove", "v2"))),
                ]
                for target, headers in cases:
                    r = await c.request(target=target, headers=headers)
                    assert r.status == 200
                await c.close()
            s = up.seen
            assert s[0].header_values("x-header-set") == ["set-overwrites-values"]
            assert s[0].header("some-other-header") == "val"
            assert s[1].header_values("x-header-set") == ["set-overwrites-values"]
            assert s[2].header_values("x-header-add") == ["add-appends-values"]
            assert s[3].header_values("x-header-add") == ["some-other-value,add-appends-values"]
            assert s[4].header_values("x-header-remove") == []
            # Untouched: the target, the Host with its port.
            assert [x.target for x in s] == ["/set", "/set", "/add", "/add", "/remove"]
            assert s[0].header("host") == "example.com"

    run(main())


def test_response_header_modifier_backend_first_then_route(tmp_path: Path) -> None:
    async def main() -> None:
        reply = Reply(
            headers=(
                ("X-Header-Set", "original"),
                ("x-header-add", "orig-add"),
                ("X-Header-Remove", "bye"),
                ("X-Order", "upstream"),
            )
        )
        async with FakeUpstream(reply, name="app") as up:
            rules = """  - matches: [{path: {type: PathPrefix, value: /}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: X-Header-Set, value: set-overwrites-values}]
        add: [{name: X-Header-Add, value: add-appends-values}, {name: X-Order, value: route}]
        remove: [X-Header-Remove]
    backendRefs:
    - name: app
      port: 80
      filters:
      - type: ResponseHeaderModifier
        responseHeaderModifier: {add: [{name: X-Order, value: backend}]}
"""
            rt = translated(tmp_path, GATEWAY + route_yaml(rules) + service("app", up.port))
            async with serve(rt) as (_, addr):
                r = await get(addr)
            assert r.status == 200
            assert r.header_values("x-header-set") == ["set-overwrites-values"]
            assert r.header_values("x-header-add") == ["orig-add,add-appends-values"]
            assert r.header_values("x-header-remove") == []
            assert r.header_values("x-order") == ["upstream,backend,route"]

    run(main())


def test_per_backend_request_headers_follow_the_picked_backend() -> None:
    async def main() -> None:
        async with FakeUpstream(name="a") as a, FakeUpstream(name="b") as b:

            def tagged(name: str) -> table.WeightedBackend:
                mod = table.HeaderModifier(set=(table.HeaderValue("X-To", "x-to", name),))
                return table.WeightedBackend(
                    backend=name, filters=table.Filters(request_headers=mod)
                )

            rt = with_route(
                [tables.backend("a", a.address), tables.backend("b", b.address)],
                weighted=(tagged("a"), tagged("b")),
            )
            async with serve(rt) as (_, addr):
                c = await RawClient.connect(addr)
                for _ in range(6):
                    assert (await c.request()).status == 200
                await c.close()
            assert a.seen and b.seen
            assert {s.header("x-to") for s in a.seen} == {"a"}
            assert {s.header("x-to") for s in b.seen} == {"b"}

    run(main())


def test_gateway_made_errors_get_the_response_headers() -> None:
    async def main() -> None:
        mod = table.HeaderModifier(set=(table.HeaderValue("X-Route", "x-route", "r"),))
        rt = with_route(
            [tables.backend("b", ("127.0.0.1", closed_port()))],
            filters=table.Filters(response_headers=mod),
        )
        async with serve(rt, max_connect_retries=0) as (_, addr):
            r = await get(addr)
        assert r.status == 502
        assert r.header("x-route") == "r"
        assert r.body == b"502 Bad Gateway\n"

    run(main())


# -- RequestRedirect ---------------------------------------------------------------


def test_redirects_from_yaml(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeUpstream(name="app") as up:
            rules = """  - matches: [{path: {type: PathPrefix, value: /scheme}}]
    filters:
    - {type: RequestRedirect, requestRedirect: {scheme: https}}
  - matches: [{path: {type: PathPrefix, value: /hostname}}]
    filters:
    - {type: RequestRedirect, requestRedirect: {hostname: example.org, statusCode: 301}}
  - matches: [{path: {type: PathPrefix, value: /port}}]
    filters:
    - {type: RequestRedirect, requestRedirect: {port: 8083, statusCode: 303}}
  - matches: [{path: {type: PathPrefix, value: /sp}}]
    filters:
    - {type: RequestRedirect, requestRedirect: {scheme: https, port: 443, statusCode: 307}}
  - matches: [{path: {type: Exact, value: /full}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /new/full}, statusCode: 308}
  - matches: [{path: {type: PathPrefix, value: /prefix/one}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /two}}
  - matches: [{path: {type: PathPrefix, value: /strip}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
  - matches: [{path: {type: PathPrefix, value: /backend}}]
    backendRefs: [{name: app, port: 80}]
"""
            rt = translated(tmp_path, GATEWAY + route_yaml(rules) + service("app", up.port))
            async with serve(rt) as (_, addr):
                c = await RawClient.connect(addr)
                host = "redirect.example.com:8080"
                want = [
                    ("/scheme?a=b", 302, "https://redirect.example.com/scheme?a=b"),
                    ("/hostname/x", 301, "http://example.org/hostname/x"),
                    ("/port", 303, "http://redirect.example.com:8083/port"),
                    ("/sp", 307, "https://redirect.example.com/sp"),
                    ("/full?q", 308, "http://redirect.example.com/new/full?q"),
                    ("/prefix/one/x?k=v", 302, "http://redirect.example.com/two/x?k=v"),
                    ("/prefix/one", 302, "http://redirect.example.com/two"),
                    ("/strip", 302, "http://redirect.example.com/"),
                    ("/strip/x", 302, "http://redirect.example.com/x"),
                ]
                for target, status, location in want:
                    r = await c.request(target=target, host=host)
                    assert (target, r.status, r.header("location")) == (target, status, location)
                    assert r.body == b""
                # Keep-alive holds over redirects; a POST body is read and dropped.
                r = await c.request("POST", "/scheme", host=host, body=b"data")
                assert r.status == 302
                r = await c.request(target="/backend", host=host)
                assert r.status == 200
                await c.close()
            assert [s.target for s in up.seen] == ["/backend"]

    run(main())


def test_per_backend_redirect() -> None:
    async def main() -> None:
        async with FakeUpstream(name="a") as up:
            redirect = table.Redirect(scheme="http", hostname="backend.example.org")
            rt = with_route(
                [tables.backend("a", up.address)],
                weighted=(
                    table.WeightedBackend(backend="a", filters=table.Filters(redirect=redirect)),
                ),
            )
            async with serve(rt) as (_, addr):
                r = await get(addr, "/x")
            assert (r.status, r.header("location")) == (302, "http://backend.example.org/x")
            assert up.seen == []

    run(main())


# -- URLRewrite ----------------------------------------------------------------------


def test_url_rewrites_from_yaml(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeUpstream(name="app") as up:
            rules = """  - matches: [{path: {type: PathPrefix, value: /prefix/one}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /one}}
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /strip-prefix}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /full/one}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /one}}
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /host}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: rewritten.example.org}
    backendRefs: [{name: app, port: 80}]
"""
            rt = translated(tmp_path, GATEWAY + route_yaml(rules) + service("app", up.port))
            async with serve(rt) as (_, addr):
                c = await RawClient.connect(addr)
                for target in (
                    "/prefix/one/two",
                    "/prefix/one",
                    "/strip-prefix",
                    "/strip-prefix/three?a=1",
                    "/full/one/two?k=v",
                    "/host/x?q",
                ):
                    assert (await c.request(target=target, host="h.example:81")).status == 200
                await c.close()
            assert [s.target for s in up.seen] == [
                "/one/two",
                "/one",
                "/",
                "/three?a=1",
                "/one?k=v",
                "/host/x?q",
            ]
            assert [s.header("host") for s in up.seen][-2:] == [
                "h.example:81",
                "rewritten.example.org",
            ]
            assert len(up.seen[-1].header_values("host")) == 1

    run(main())


# -- RequestMirror ---------------------------------------------------------------------


async def until(predicate: Any, timeout_s: float = 2.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


def test_mirrors_receive_a_copy_with_body_and_edited_headers() -> None:
    async def main() -> None:
        async with (
            FakeUpstream(name="app") as app,
            FakeUpstream(Reply(status=500, body=b"mirror"), name="m1") as m1,
            FakeUpstream(name="m2") as m2,
        ):
            mod = table.HeaderModifier(set=(table.HeaderValue("X-Set", "x-set", "yes"),))
            rt = with_route(
                [
                    tables.backend("app", app.address),
                    tables.backend("m1", m1.address),
                    tables.backend("m2", m2.address),
                ],
                filters=table.Filters(
                    request_headers=mod,
                    mirrors=(table.Mirror(backend="m1"), table.Mirror(backend="m2")),
                ),
            )
            async with serve(rt) as (_, addr):
                c = await RawClient.connect(addr)
                r = await c.request("POST", "/echo?x=1", body=b"payload")
                assert (r.status, r.body) == (200, b"app")
                # Chunked body: the copy leaves when the body is complete.
                await c.send(
                    b"POST /chunked HTTP/1.1\r\nHost: example.com\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
                )
                await asyncio.sleep(0.05)
                await c.send(b"2\r\nde\r\n0\r\n\r\n")
                assert (await c.response()).status == 200
                await c.close()
                await until(lambda: len(m1.seen) == 2 and len(m2.seen) == 2)
            for seen in (m1.seen, m2.seen):
                first, second = seen
                assert (first.method, first.target, first.body) == ("POST", "/echo?x=1", b"payload")
                assert first.header("x-set") == "yes"
                assert (second.target, second.body) == ("/chunked", b"abcde")
            assert [s.body for s in app.seen] == [b"payload", b"abcde"]

    run(main())


def test_client_is_unaffected_by_a_dead_or_slow_mirror() -> None:
    async def main() -> None:
        async with (
            FakeUpstream(name="app") as app,
            FakeUpstream(Reply(action=Action.HANG), name="slow") as slow,
        ):
            rt = with_route(
                [
                    tables.backend("app", app.address),
                    tables.backend("dead", ("127.0.0.1", closed_port())),
                    tables.backend("slow", slow.address),
                ],
                filters=table.Filters(
                    mirrors=(table.Mirror(backend="dead"), table.Mirror(backend="slow"))
                ),
            )
            async with serve(rt, max_mirrors_in_flight=3) as (gw, addr):
                c = await RawClient.connect(addr)
                started = time.monotonic()
                for _ in range(5):
                    r = await c.request()
                    assert (r.status, r.body) == (200, b"app")
                assert time.monotonic() - started < 1.0
                await c.close()
                mirrors = gw._ctx.mirrors
                # Hanging copies stay in flight up to the bound; the rest are dropped.
                assert mirrors.in_flight <= 3
                assert mirrors.dropped >= 1
            assert len(app.seen) == 5

    run(main())


def test_mirror_percentage_is_roughly_honoured() -> None:
    async def main() -> None:
        async with FakeUpstream(name="app") as app, FakeUpstream(name="m") as m:
            rt = with_route(
                [tables.backend("app", app.address), tables.backend("m", m.address)],
                filters=table.Filters(
                    mirrors=(table.Mirror(backend="m", numerator=1, denominator=4),)
                ),
            )
            async with serve(rt) as (_, addr):
                c = await RawClient.connect(addr)
                for _ in range(200):
                    assert (await c.request()).status == 200
                await c.close()
                await asyncio.sleep(0.2)
            # Expect 50; a binomial(200, 0.25) is within 25..75 all but ~1e-6 of the time.
            assert 25 <= len(m.seen) <= 75, len(m.seen)

    run(main())


# -- CORS ------------------------------------------------------------------------------


def test_cors_from_yaml(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeUpstream(name="app") as up:
            rules = """  - matches: [{path: {type: PathPrefix, value: /cors-1}}]
    filters:
    - type: CORS
      cors:
        allowOrigins: ["https://www.foo.com", "https://*.bar.com"]
        allowMethods: [GET, OPTIONS]
        allowHeaders: [x-header-1, x-header-2]
        exposeHeaders: [x-header-3, x-header-4]
        allowCredentials: true
        maxAge: 3600
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /cors-2}}]
    filters:
    - type: CORS
      cors: {allowOrigins: ["*"], allowMethods: ["*"]}
    backendRefs: [{name: app, port: 80}]
"""
            rt = translated(tmp_path, GATEWAY + route_yaml(rules) + service("app", up.port))
            preflight = (
                ("Origin", "https://xpto.www.bar.com"),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "x-header-1, x-header-2"),
            )
            async with serve(rt) as (_, addr):
                c = await RawClient.connect(addr)
                r = await c.request("OPTIONS", "/cors-1", headers=preflight)
                assert r.status == 200
                assert r.header("access-control-allow-origin") == "https://xpto.www.bar.com"
                assert r.header("access-control-allow-methods") == "GET, OPTIONS"
                assert r.header("access-control-allow-headers") == "x-header-1, x-header-2"
                assert r.header("access-control-expose-headers") == "x-header-3, x-header-4"
                assert r.header("access-control-max-age") == "3600"
                assert r.header("access-control-allow-credentials") == "true"
                denied = (("Origin", "https://foobar.com"), preflight[1])
                r = await c.request("OPTIONS", "/cors-1", headers=denied)
                assert r.status == 200
                assert r.header("access-control-allow-origin") is None
                # Actual requests: forwarded, CORS headers added when the origin is allowed.
                r = await c.request(headers=(("Origin", "https://www.foo.com"),), target="/cors-1")
                assert (r.status, r.body) == (200, b"app")
                assert r.header("access-control-allow-origin") == "https://www.foo.com"
                assert r.header("access-control-allow-credentials") == "true"
                r = await c.request(headers=(("Origin", "https://foobar.com"),), target="/cors-1")
                assert r.header("access-control-allow-origin") is None
                r = await c.request(
                    "OPTIONS",
                    "/cors-2",
                    headers=(
                        ("Origin", "https://any.com"),
                        ("Access-Control-Request-Method", "POST"),
                    ),
                )
                assert r.header("access-control-allow-origin") == "*"
                assert r.header("access-control-allow-methods") in ("*", "POST")
                assert r.header("access-control-allow-credentials") is None
                # OPTIONS without Access-Control-Request-Method is no preflight.
                r = await c.request("OPTIONS", "/cors-2", headers=(("Origin", "https://a.com"),))
                assert r.body == b"app"
                await c.close()
            assert [(s.method, s.target) for s in up.seen] == [
                ("GET", "/cors-1"),
                ("GET", "/cors-1"),
                ("OPTIONS", "/cors-2"),
            ]

    run(main())


# -- timeouts --------------------------------------------------------------------------


def test_request_timeout_answers_504(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeUpstream(Reply(delay_s=1.0), name="app") as up:
            rules = """  - matches: [{path: {type: PathPrefix, value: /slow}}]
    timeouts: {request: 200ms}
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /}}]
    timeouts: {request: 0s}
    backendRefs: [{name: app, port: 80}]
"""
            rt = translated(tmp_path, GATEWAY + route_yaml(rules) + service("app", up.port))
            async with serve(rt) as (_, addr):
                started = time.monotonic()
                r = await get(addr, "/slow")
                took = time.monotonic() - started
                assert r.status == 504
                assert 0.18 <= took < 0.6, took
                # 0s: no limit; the 1 s answer arrives.
                r = await get(addr, "/fast")
                assert (r.status, r.body) == (200, b"ok")

    run(main())


def test_backend_request_timeout_and_zero_disables_backend_timeout() -> None:
    async def main() -> None:
        async with FakeUpstream(Reply(delay_s=0.4), name="a") as up:
            slow = [tables.backend("a", up.address, timeout_s=0.1)]
            rt = with_route(slow, timeouts=table.Timeouts(backend_request_s=0.0))
            async with serve(rt) as (_, addr):
                r = await get(addr)
                assert r.status == 200  # 0s: not even Backend.timeout_s
            rt = with_route(
                [tables.backend("a", up.address, timeout_s=30.0)],
                timeouts=table.Timeouts(backend_request_s=0.15),
            )
            async with serve(rt) as (_, addr):
                started = time.monotonic()
                r = await get(addr)
                assert r.status == 504
                assert time.monotonic() - started < 0.35

    run(main())


def test_request_timeout_cuts_a_slow_response_body() -> None:
    async def main() -> None:
        async def body_then_hang(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            await asyncio.sleep(2)
            writer.close()

        srv = await asyncio.start_server(body_then_hang, "127.0.0.1", 0)
        try:
            port = srv.sockets[0].getsockname()[1]
            rt = with_route(
                [tables.backend("a", ("127.0.0.1", port))], timeouts=table.Timeouts(request_s=0.2)
            )
            async with serve(rt) as (_, addr):
                c = await RawClient.connect(addr)
                await c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert await c.closed(timeout_s=1.0)
        finally:
            srv.close()

    run(main())


# -- retry -----------------------------------------------------------------------------


def failing_then_ok(failures: int, status: int = 503) -> Any:
    count = 0

    def handler(seen: Seen) -> Reply:
        nonlocal count
        count += 1
        return Reply(status=status, body=b"fail") if count <= failures else Reply(body=b"ok")

    return handler


def test_retry_on_listed_codes_with_attempts_and_backoff() -> None:
    async def main() -> None:
        async with FakeUpstream(failing_then_ok(2), name="a") as up:
            retry = table.Retry(codes=(500, 503), attempts=2, backoff_s=0.1)
            rt = with_route([tables.backend("a", up.address)], retry=retry)
            async with serve(rt) as (_, addr):
                started = time.monotonic()
                r = await get(addr, "/p", method="PUT", body=b"again")
                took = time.monotonic() - started
            assert (r.status, r.body) == (200, b"ok")
            assert took >= 0.2
            assert [s.body for s in up.seen] == [b"again"] * 3
            # attempts: 2 retries, then the last answer stands.
            up.reply = failing_then_ok(10)
            up.seen.clear()
            async with serve(rt) as (_, addr):
                r = await get(addr)
            assert (r.status, r.body) == (503, b"fail")
            assert len(up.seen) == 3

    run(main())


def test_no_retry_on_other_codes_or_unreplayable_bodies() -> None:
    async def main() -> None:
        async with FakeUpstream(failing_then_ok(10, status=502), name="a") as up:
            retry = table.Retry(codes=(503,), attempts=3, backoff_s=0.0)
            rt = with_route([tables.backend("a", up.address)], retry=retry)
            async with serve(rt) as (_, addr):
                assert (await get(addr)).status == 502
            assert len(up.seen) == 1
            up.reply = failing_then_ok(10, status=503)
            up.seen.clear()
            async with serve(rt, retry_buffer_bytes=4) as (_, addr):
                r = await get(addr, method="POST", body=b"longer than four")
                assert r.status == 503
                assert len(up.seen) == 1
                r = await get(addr, method="POST", body=b"tiny")
                assert r.status == 503
            assert len(up.seen) == 1 + 4

    run(main())


def test_retries_stay_within_the_request_timeout() -> None:
    async def main() -> None:
        async with FakeUpstream(failing_then_ok(100), name="a") as up:
            retry = table.Retry(codes=(503,), attempts=50, backoff_s=0.05)
            rt = with_route(
                [tables.backend("a", up.address)],
                retry=retry,
                timeouts=table.Timeouts(request_s=0.3),
            )
            async with serve(rt) as (_, addr):
                started = time.monotonic()
                r = await get(addr)
                took = time.monotonic() - started
            assert r.status == 504
            assert took < 0.6
            assert 2 <= len(up.seen) <= 8

    run(main())


# -- listeners -------------------------------------------------------------------------


def test_gateways_on_one_port_bind_their_own_addresses(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeUpstream(name="one") as one, FakeUpstream(name="two") as two:
            text = GATEWAY + service("one", one.port) + service("two", two.port)
            text += """---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw2, namespace: default}
spec:
  gatewayClassName: mcgw
  addresses: [{type: IPAddress, value: 127.0.0.2}]
  listeners: [{name: http, protocol: HTTP, port: 80}]
"""
            for gw_name, backend in (("gw", "one"), ("gw2", "two")):
                text += f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: to-{backend}, namespace: default}}
spec:
  parentRefs: [{{name: {gw_name}}}]
  rules: [{{backendRefs: [{{name: {backend}, port: 80}}]}}]
"""
            rt = translated(tmp_path, text)
            assert sorted(x.address for x in rt.listeners) == ["127.0.0.1", "127.0.0.2"]
            port = closed_port()
            async with serve(rt, port_map=((80, port),)) as (gw, _):
                bound = gw.addresses()
                assert sorted(bound.values()) == [("127.0.0.1", port), ("127.0.0.2", port)]
                by_address = {host: name for name, (host, _) in bound.items()}
                assert by_address.keys() == {"127.0.0.1", "127.0.0.2"}
                assert (await get(("127.0.0.1", port))).body == b"one"
                assert (await get(("127.0.0.2", port))).body == b"two"

    run(main())

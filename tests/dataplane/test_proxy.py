"""The proxy over real loopback sockets, against scripted fake upstreams."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from dataclasses import replace
from pathlib import Path

from mcgw import logschema
from mcgw.dataplane import server
from mcgw.ir import table
from mcgw.testing import tables
from mcgw.testing.client import RawClient
from mcgw.testing.gateway import SETTINGS, serve
from mcgw.testing.runner import run
from mcgw.testing.upstream import Action, FakeUpstream, Reply, Seen, closed_port

# Tests here read the x-mcgw-* debug headers.
BASE = replace(SETTINGS, debug_headers=True)
gateway = functools.partial(serve, settings=BASE)


def one_backend(*endpoints: tuple[str, int], timeout_s: float = 30.0) -> table.RouteTable:
    return tables.route_table(
        [tables.route("r", "b")], [tables.backend("b", *endpoints, timeout_s=timeout_s)]
    )


async def client(address: tuple[str, int]) -> RawClient:
    return await RawClient.connect(address)


# -- basics -------------------------------------------------------------------


def test_keep_alive_reuses_client_and_upstream_connections() -> None:
    async def main() -> None:
        async with FakeUpstream(name="a") as up, gateway(one_backend(up.address)) as (_, addr):
            c = await client(addr)
            for i in range(5):
                r = await c.request(target=f"/x{i}")
                assert (r.status, r.body) == (200, b"a")
            await c.close()
            assert [s.target for s in up.seen] == [f"/x{i}" for i in range(5)]
            assert up.connections == 1
            assert {s.connection for s in up.seen} == {1}

    run(main())


def test_http10_close_and_keep_alive() -> None:
    async def main() -> None:
        reply = Reply(chunks=(b"he", b"llo"))
        async with FakeUpstream(reply) as up, gateway(one_backend(up.address)) as (_, addr):
            c = await client(addr)
            await c.send(b"GET / HTTP/1.0\r\n\r\n")
            r = await c.response()
            # Chunked upstream body, HTTP/1.0 client: unframed, ended by the close.
            assert (r.status, r.body, r.chunked) == (200, b"hello", False)
            assert await c.closed()

            up.reply = Reply(body=b"kept")
            c = await client(addr)
            for _ in range(2):
                r = await c.request(version="1.0", headers=(("Connection", "keep-alive"),))
                assert (r.status, r.body) == (200, b"kept")
                assert r.header("connection") == "keep-alive"
            assert up.seen[-1].version == "1.1"
            await c.close()

    run(main())


def test_head_response_has_no_body() -> None:
    async def main() -> None:
        async with (
            FakeUpstream(Reply(body=b"12345")) as up,
            gateway(one_backend(up.address)) as (
                _,
                addr,
            ),
        ):
            c = await client(addr)
            r = await c.request("HEAD")
            assert (r.status, r.body, r.header("content-length")) == (200, b"", "5")
            r = await c.request("GET")
            assert r.body == b"12345"
            assert up.connections == 1
            await c.close()

    run(main())


def test_chunked_request_and_response() -> None:
    async def main() -> None:
        reply = Reply(chunks=(b"one-", b"two-", b"three"))
        async with FakeUpstream(reply) as up, gateway(one_backend(up.address)) as (_, addr):
            c = await client(addr)
            await c.send(
                b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
            )
            await asyncio.sleep(0.05)
            await c.send(b"4\r\ndefg\r\n0\r\n\r\n")
            r = await c.response()
            assert (r.status, r.body, r.chunked) == (200, b"one-two-three", True)
            seen = up.seen[0]
            assert seen.body == b"abcdefg"
            assert seen.header("transfer-encoding") == "chunked"
            assert seen.header("content-length") is None
            # The connection is still usable.
            r = await c.request()
            assert r.status == 200
            await c.close()

    run(main())


def test_large_bodies_stream_both_ways() -> None:
    size = 8 * 1024 * 1024
    big_up = bytes(range(256)) * (size // 256)
    big_down = b"z" * size

    def handler(seen: Seen) -> Reply:
        return Reply(body=big_down, headers=(("x-got", hashlib.sha256(seen.body).hexdigest()),))

    async def main() -> None:
        async with FakeUpstream(handler) as up, gateway(one_backend(up.address)) as (_, addr):
            c = await client(addr)
            r = await c.request("POST", "/big", body=big_up, timeout_s=15)
            assert r.status == 200
            assert r.header("x-got") == hashlib.sha256(big_up).hexdigest()
            assert len(r.body) == size and r.body == big_down
            await c.close()

    run(main(), timeout_s=30)


def test_pipelined_requests_answered_in_order() -> None:
    def handler(seen: Seen) -> Reply:
        # The first answer is slow: order must hold anyway.
        return Reply(body=seen.target.encode(), delay_s=0.1 if seen.target == "/1" else 0)

    async def main() -> None:
        async with FakeUpstream(handler) as up, gateway(one_backend(up.address)) as (_, addr):
            c = await client(addr)
            await c.send(b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in (1, 2, 3)))
            bodies = [(await c.response()).body for _ in range(3)]
            assert bodies == [b"/1", b"/2", b"/3"]
            await c.close()

    run(main())


def test_expect_continue_answered_by_the_proxy() -> None:
    async def main() -> None:
        async with FakeUpstream() as up, gateway(one_backend(up.address)) as (_, addr):
            c = await client(addr)
            await c.send(
                b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
            )
            await asyncio.sleep(0.05)
            await c.send(b"data")
            r = await c.response()
            assert r.status == 200
            assert up.seen[0].body == b"data"
            assert up.seen[0].header("expect") is None
            await c.close()

    run(main())


# -- headers ------------------------------------------------------------------


def test_hop_by_hop_headers_removed_both_ways() -> None:
    reply = Reply(
        headers=(
            ("Connection", "x-internal"),
            ("X-Internal", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("Trailer", "x-t"),
            ("X-Kept", "yes"),
        )
    )

    async def main() -> None:
        async with FakeUpstream(reply) as up, gateway(one_backend(up.address)) as (_, addr):
            c = await client(addr)
            r = await c.request(
                headers=(
                    ("Connection", "keep-alive, X-Secret"),
                    ("X-Secret", "1"),
                    ("Keep-Alive", "300"),
                    ("Proxy-Connection", "keep-alive"),
                    ("TE", "trailers"),
                    ("Trailer", "x-t"),
                    ("Upgrade", "websocket"),
                    ("X-Custom", "kept"),
                )
            )
            assert r.status == 200
            seen = up.seen[0]
            names = {k.lower() for k, _ in seen.headers}
            for hop in ("connection", "x-secret", "keep-alive", "proxy-connection", "te"):
                assert hop not in names
            assert "trailer" not in names and "upgrade" not in names
            assert seen.header("x-custom") == "kept"
            got = {k.lower() for k, _ in r.headers}
            assert "x-internal" not in got and "keep-alive" not in got
            assert "proxy-connection" not in got and "trailer" not in got
            assert r.header("x-kept") == "yes"
            assert r.header("connection") is None
            await c.close()

    run(main())


def test_forwarding_headers_added() -> None:
    async def main() -> None:
        async with FakeUpstream() as up, gateway(one_backend(up.address)) as (_, addr):
            c = await client(addr)
            await c.request()
            await c.request(
                headers=(
                    ("X-Forwarded-For", "10.0.0.1"),
                    ("Via", "1.0 edge"),
                    ("X-Forwarded-Proto", "https"),
                )
            )
            first, second = up.seen
            assert first.header("x-forwarded-for") == "127.0.0.1"
            assert first.header("via") == "1.1 mcgw"
            assert first.header("x-forwarded-proto") == "http"
            # No trusted peers configured: a client's X-Forwarded-For is not carried on
            # (tests/dataplane/test_forwarded.py covers trusted peers).
            assert second.header("x-forwarded-for") == "127.0.0.1"
            assert second.header("via") == "1.0 edge, 1.1 mcgw"
            assert second.header_values("x-forwarded-proto") == ["http"]
            r = await c.request()
            assert r.header("via") == "1.1 mcgw"
            await c.close()

    run(main())


def test_host_with_port_and_raw_target_pass_untouched() -> None:
    async def main() -> None:
        t = tables.route_table(
            [tables.route("r", "b", path="/a%20b")],
            [tables.backend("b", ("127.0.0.1", 1))],
            hostname="store.example.com",
        )
        async with FakeUpstream() as up:
            t = replace(t, backends=(tables.backend("b", up.address),))
            async with gateway(t) as (_, addr):
                c = await client(addr)
                target = "/a%20b/../c?x=%2F&y=1+2&y=3"
                r = await c.request(target=target, host="Store.Example.com:8080")
                assert r.status == 200
                assert up.seen[0].target == target
                assert up.seen[0].header("host") == "Store.Example.com:8080"
                await c.close()

    run(main())


# -- errors -------------------------------------------------------------------


async def _status_of(addr: tuple[str, int], raw: bytes) -> tuple[int, bool]:
    """Send ``raw``, return the status and whether the proxy then closed."""
    c = await client(addr)
    await c.send(raw)
    r = await c.response()
    closed = await c.closed(timeout_s=1.0)
    await c.close()
    return r.status, closed


def test_malformed_framing_is_400_and_never_forwarded() -> None:
    async def main() -> None:
        async with FakeUpstream() as up, gateway(one_backend(up.address)) as (_, addr):
            cl_te = (
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            )
            dup_cl = (
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
            )
            diff_cl = (
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc"
            )
            bad_chunk = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
            no_host = b"GET / HTTP/1.1\r\n\r\n"
            garbage = b"NOT HTTP AT ALL\r\n\r\n"
            for raw in (cl_te, dup_cl, diff_cl, bad_chunk, no_host, garbage):
                assert await _status_of(addr, raw) == (400, True), raw
            assert up.seen == []

    run(main())


def test_header_limits_are_431() -> None:
    async def main() -> None:
        async with (
            FakeUpstream() as up,
            gateway(
                one_backend(up.address),
                max_headers=10,
                max_header_bytes=1000,
                max_request_line_bytes=100,
            ) as (_, addr),
        ):
            many = b"".join(b"X-H%d: v\r\n" % i for i in range(11))
            big = b"X-Big: " + b"v" * 1000 + b"\r\n"
            for raw, status in (
                (b"GET / HTTP/1.1\r\nHost: h\r\n" + many + b"\r\n", 431),
                (b"GET / HTTP/1.1\r\nHost: h\r\n" + big + b"\r\n", 431),
                # A long request line is 414 URI Too Long (RFC 9112 3).
                (b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414),
            ):
                assert await _status_of(addr, raw) == (status, True)
            assert up.seen == []

    run(main())


def test_body_limit_is_413() -> None:
    async def main() -> None:
        async with (
            FakeUpstream() as up,
            gateway(one_backend(up.address), max_body_bytes=100) as (
                _,
                addr,
            ),
        ):
            by_length = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n"
            assert await _status_of(addr, by_length) == (413, True)
            assert up.seen == []
            chunked = (
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"40\r\n"
                + b"x" * 64
                + b"\r\n"
                + b"40\r\n"
                + b"x" * 64
                + b"\r\n0\r\n\r\n"
            )
            assert await _status_of(addr, chunked) == (413, True)

    run(main())


def test_no_route_is_404_and_keeps_the_connection() -> None:
    async def main() -> None:
        async with FakeUpstream() as up:
            t = tables.route_table(
                [tables.route("r", "b", path="/only")], [tables.backend("b", up.address)]
            )
            async with gateway(t) as (_, addr):
                c = await client(addr)
                assert (await c.request(target="/other")).status == 404
                assert (await c.request(target="/only/x")).status == 200
                await c.close()

    run(main())


def test_invalid_or_missing_backend_is_500() -> None:
    async def main() -> None:
        t = tables.route_table(
            [tables.route("bad", None, path="/bad"), tables.route("none", path="/none")]
        )
        async with gateway(t) as (_, addr):
            c = await client(addr)
            assert (await c.request(target="/bad")).status == 500
            assert (await c.request(target="/none")).status == 500
            await c.close()

    run(main())


def test_no_healthy_endpoint_is_503() -> None:
    async def main() -> None:
        group = table.BackendGroup(
            cluster="c1",
            region="r1",
            zone="r1-a",
            endpoints=(table.Endpoint("127.0.0.1", closed_port(), ready=False),),
        )
        backend = replace(tables.backend("b"), groups=(group,))
        t = tables.route_table([tables.route("r", "b")], [backend])
        async with gateway(t) as (_, addr):
            c = await client(addr)
            assert (await c.request()).status == 503
            await c.close()

    run(main())


def test_upstream_failures_are_502() -> None:
    async def main() -> None:
        # Every endpoint refuses: retries exhausted.
        async with gateway(one_backend(("127.0.0.1", closed_port()))) as (_, addr):
            c = await client(addr)
            r = await c.request()
            assert r.status == 502
            await c.close()
        # A POST whose upstream closes without answering is not retried.
        async with (
            FakeUpstream(Reply(action=Action.CLOSE)) as up,
            gateway(one_backend(up.address)) as (_, addr),
        ):
            c = await client(addr)
            r = await c.request("POST", body=b"payload")
            assert r.status == 502
            assert len(up.seen) == 1
            await c.close()
        # Response cut short: the client connection is closed, body incomplete.
        async with (
            FakeUpstream(Reply(body=b"x" * 1000, action=Action.PARTIAL)) as up,
            gateway(one_backend(up.address)) as (_, addr),
        ):
            c = await client(addr)
            await c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            try:
                r = await c.response()
            except ConnectionError:
                pass
            else:
                raise AssertionError(f"incomplete body read as complete: {r}")
            await c.close()

    run(main())


def test_upstream_timeout_is_504() -> None:
    async def main() -> None:
        async with (
            FakeUpstream(Reply(action=Action.HANG)) as up,
            gateway(one_backend(up.address, timeout_s=0.2)) as (_, addr),
        ):
            c = await client(addr)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            r = await c.request()
            assert r.status == 504
            assert 0.15 < loop.time() - t0 < 2.0
            await c.close()

    run(main())


def test_header_read_timeout_is_408_and_idle_keep_alive_closes() -> None:
    async def main() -> None:
        async with (
            FakeUpstream() as up,
            gateway(one_backend(up.address), header_read_timeout_s=0.2, idle_timeout_s=0.2) as (
                gw,
                addr,
            ),
        ):
            c = await client(addr)
            await c.send(b"GET / HTTP/1.1\r\nHost: h\r\n")
            r = await c.response()
            assert r.status == 408
            assert await c.closed()
            await c.close()  # (else the gateway lingers, reading what it might still send)
            c = await client(addr)
            assert (await c.request()).status == 200
            assert await c.closed(timeout_s=2.0)
            await asyncio.sleep(0.05)
            assert gw.connections == 0

    run(main())


# -- retries ------------------------------------------------------------------


def test_connect_failure_retried_on_another_endpoint() -> None:
    async def main() -> None:
        dead = ("127.0.0.1", closed_port())
        async with (
            FakeUpstream(name="alive") as up,
            gateway(one_backend(dead, up.address)) as (
                gw,
                addr,
            ),
        ):
            c = await client(addr)
            attempts = []
            for _ in range(6):
                r = await c.request()
                assert (r.status, r.body) == (200, b"alive")
                attempts.append(r.header("x-mcgw-attempts"))
            assert "2" in attempts  # the dead one was tried once, then ejected
            assert not gw.health.healthy(*dead)
            await c.close()

    run(main())


def test_idempotent_request_retried_when_upstream_closes_before_answering() -> None:
    async def main() -> None:
        async with (
            FakeUpstream(Reply(action=Action.CLOSE)) as bad,
            FakeUpstream(name="good") as good,
            gateway(one_backend(bad.address, good.address)) as (_, addr),
        ):
            c = await client(addr)
            for _ in range(4):
                r = await c.request("GET")
                assert (r.status, r.body) == (200, b"good")
            await c.close()

    run(main())


def test_stale_pooled_connection_is_retried() -> None:
    def handler(seen: Seen) -> Reply:
        # The second request on any connection finds it "closed while idle".
        return Reply(action=Action.CLOSE) if seen.index == 1 else Reply(body=b"fresh")

    async def main() -> None:
        async with FakeUpstream(handler) as up, gateway(one_backend(up.address)) as (gw, addr):
            c = await client(addr)
            for _ in range(3):
                r = await c.request()
                assert (r.status, r.body) == (200, b"fresh")
            assert up.connections == 3
            # Not the endpoint's fault: it stays healthy.
            assert gw.health.healthy(*up.address)
            await c.close()

    run(main())


def test_upstream_idle_close_noticed_before_reuse() -> None:
    async def main() -> None:
        async with FakeUpstream() as up, gateway(one_backend(up.address)) as (gw, addr):
            c = await client(addr)
            assert (await c.request()).status == 200
            assert gw.pool.idle_count(up.address) == 1
            up.close_connections()
            await asyncio.sleep(0.05)
            assert gw.pool.idle_count(up.address) == 0
            assert (await c.request()).status == 200
            assert up.connections == 2
            await c.close()

    run(main())


# -- lifecycle and logs ---------------------------------------------------------


def test_apply_swaps_tables_and_listeners() -> None:
    async def main() -> None:
        async with (
            FakeUpstream(name="one") as one,
            FakeUpstream(name="two") as two,
            gateway(one_backend(one.address)) as (gw, addr),
        ):
            c = await client(addr)
            assert (await c.request()).body == b"one"
            await gw.apply(one_backend(two.address))
            assert gw.addresses()[tables.LISTENER] == addr  # same socket kept
            assert (await c.request()).body == b"two"
            # A table without the listener closes it.
            await gw.apply(replace(one_backend(two.address), listeners=()))
            assert gw.addresses() == {}
            await c.close()

    run(main())


def test_close_finishes_requests_in_flight() -> None:
    async def main() -> None:
        async with FakeUpstream(Reply(body=b"late", delay_s=0.2)) as up:
            gw = server.Gateway(BASE)
            await gw.apply(one_backend(up.address))
            c = await client(gw.addresses()[tables.LISTENER])
            pending = asyncio.ensure_future(c.request())
            await asyncio.sleep(0.05)
            await gw.close(timeout_s=2.0)
            r = await pending
            assert (r.status, r.body) == (200, b"late")
            assert r.header("connection") == "close"
            await c.close()

    run(main())


def test_access_log_records_each_response(tmp_path: Path) -> None:
    upstreams: list[FakeUpstream] = []

    async def main() -> None:
        async with FakeUpstream() as up:
            upstreams.append(up)
            t = tables.route_table(
                [tables.route("ok", "b", path="/ok")],
                [tables.backend("b", up.address, cluster="gke-west-1", zone="us-west1-a")],
                entry_region="us-west1",
            )
            async with gateway(t, access_log_dir=tmp_path) as (_, addr):
                c = await client(addr)
                assert (
                    await c.request(target="/ok?q=1", headers=(("User-Agent", "k6"),))
                ).status == 200
                assert (await c.request(target="/missing")).status == 404
                # The request line and user agent reach the log as the bytes received,
                # read as latin-1 (obs-text in a header value is one character a byte).
                odd = await c.request(
                    method="DELETE",
                    target="/ok/%C3%A9?x=%22",
                    host="Store.Example.com:8080",
                    headers=(("User-Agent", 'caf\u00e9 "q"'),),
                )
                assert odd.status == 200
                await c.close()

    run(main())
    lines = [
        json.loads(x) for f in sorted(tmp_path.glob("*.jsonl")) for x in f.read_text().splitlines()
    ]
    assert len(lines) == 3
    ok, missing, odd = lines
    assert odd["httpRequest"]["requestMethod"] == "DELETE"
    assert odd["httpRequest"]["requestUrl"] == "http://Store.Example.com:8080/ok/%C3%A9?x=%22"
    assert odd["httpRequest"]["userAgent"] == 'caf\u00e9 "q"'
    assert ok["httpRequest"]["status"] == 200
    assert ok["httpRequest"]["requestUrl"] == "http://example.com/ok?q=1"
    assert ok["httpRequest"]["userAgent"] == "k6"
    assert ok["jsonPayload"]["cluster"] == "gke-west-1"
    assert ok["jsonPayload"]["zone"] == "us-west1-a"
    assert ok["jsonPayload"]["reason"] == "closest"
    assert ok["jsonPayload"]["entryRegion"] == "us-west1"
    assert ok["jsonPayload"]["statusDetails"] == "response_sent_by_backend"
    assert ok["jsonPayload"]["attempts"] == 1
    assert missing["httpRequest"]["status"] == 404
    assert missing["jsonPayload"]["statusDetails"] == "no_route"
    # Every field in its place (the record is built as a bare tuple on the hot path).
    request = dict(ok["httpRequest"])
    assert request.pop("latency").endswith("s")
    assert int(request.pop("requestSize")) > 0 and int(request.pop("responseSize")) > 0
    assert request == {
        "requestMethod": "GET",
        "requestUrl": "http://example.com/ok?q=1",
        "status": 200,
        "userAgent": "k6",
        "remoteIp": "127.0.0.1",
        "serverIp": "127.0.0.1",
        "protocol": "HTTP/1.1",
    }
    payload = dict(ok["jsonPayload"])
    endpoint = payload.pop("endpoint")
    assert endpoint == "%s:%d" % upstreams[0].address  # noqa: UP031
    assert payload == {
        "@type": logschema.LB_PAYLOAD_TYPE,
        "statusDetails": "response_sent_by_backend",
        "gateway": "default/gw",
        "route": "ok",
        "backend": "b",
        "cluster": "gke-west-1",
        "region": "r1",
        "zone": "us-west1-a",
        "pod": "b-0",
        "reason": "closest",
        "entryRegion": "us-west1",
        "attempts": 1,
        "entrySource": "gateway",
        "ranking": "r1",
    }
    assert ok["resource"]["labels"]["backend_service_name"] == "b"
    assert ok["timestamp"] <= ok["receiveTimestamp"]
    none = dict(missing["jsonPayload"])
    assert none.pop("reason") == "no_route" and none.pop("route") == ""
    assert {k: v for k, v in none.items() if k in ("cluster", "zone", "pod", "endpoint")} == {
        "cluster": "",
        "zone": "",
        "pod": "",
        "endpoint": "",
    }

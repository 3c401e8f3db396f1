"""The admin API against known traffic: contract of each endpoint, metric values."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import admin_kit
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mcgw.admin import server as admin_server
from mcgw.admin import sources
from mcgw.cli import run
from mcgw.dataplane import server
from mcgw.dataplane.settings import ProxySettings
from mcgw.ir import table
from mcgw.testing import gateway, manifests, tables
from mcgw.testing.client import RawClient
from mcgw.testing.runner import run as run_async
from mcgw.testing.upstream import FakeUpstream, Reply

TRAFFIC = {"/west": 5, "/east": 3, "/fail": 2, "/nowhere": 1}


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def _sum(samples: list[tuple[dict[str, str], float]], **labels: str) -> float:
    return sum(v for ls, v in samples if all(ls.get(k) == x for k, x in labels.items()))


def test_metrics_follow_known_traffic() -> None:
    async def main() -> None:
        async with admin_kit.stack() as s:
            await admin_kit.send(s.address, TRAFFIC)
            status, ctype, body = await admin_kit.get(s.admin.address, "/metrics")
            assert status == 200 and ctype.startswith("text/plain")
            m = _samples(body.decode())

            reqs = m["mcgw_http_requests_total"]
            assert _sum(reqs) == 11
            assert _sum(reqs, cluster="gke-west-1", zone="us-west1-a", code="200") == 5
            assert _sum(reqs, cluster="gke-east-1", zone="us-east1-b", code="200") == 3
            assert _sum(reqs, route="default/to-fail/rule/0/match/0", code="500") == 2
            assert _sum(reqs, route="", cluster="", code="404") == 1
            west_ep = f"{s.west.address[0]}:{s.west.address[1]}"
            assert _sum(reqs, endpoint=west_ep, gateway="default/gw", backend="west") == 5

            errors = m["mcgw_http_request_errors_total"]
            assert _sum(errors) == 2
            assert _sum(errors, details="response_sent_by_backend", cluster="gke-east-1") == 2

            count = m["mcgw_http_request_duration_seconds_count"]
            assert _sum(count, cluster="gke-west-1") == 5
            inf = m["mcgw_http_request_duration_seconds_bucket"]
            assert _sum(inf, cluster="gke-west-1", le="+Inf") == 5
            # Cumulative buckets never decrease and end at the count.
            west = sorted(
                (float(ls["le"]), v) for ls, v in inf if ls.get("cluster") == "gke-west-1"
            )
            assert [v for _, v in west] == sorted(v for _, v in west)

            healthy = m["mcgw_endpoint_healthy"]
            assert len(healthy) == 3 and all(v == 1 for _, v in healthy)
            assert _sum(m["mcgw_config_info"]) == 1
            assert m["mcgw_config_info"][0][0]["version"] == "test"
            # The standard process families, of this very process.
            assert _sum(m["process_resident_memory_bytes"]) > 10 * 2**20
            assert 0 < time.time() - _sum(m["process_start_time_seconds"]) < 86_400
            assert _sum(m["process_open_fds"]) > 3 and _sum(m["process_cpu_seconds_total"]) > 0
            assert m["python_info"][0][0]["implementation"] == "CPython"

    run_async(main())


def test_api_stats_counts_per_cluster_and_zone() -> None:
    async def main() -> None:
        async with admin_kit.stack() as s:
            await admin_kit.send(s.address, TRAFFIC)
            doc = await admin_kit.get_json(s.admin.address, "/api/stats")
            assert doc["totals"]["requests"] == 11
            assert doc["totals"]["errors"] == 2
            rows = {(c["cluster"], c["zone"]): c for c in doc["clusters"]}
            assert rows["gke-west-1", "us-west1-a"]["requests"] == 5
            assert rows["gke-east-1", "us-east1-b"]["requests"] == 5
            assert rows["gke-east-1", "us-east1-b"]["errors"] == 2
            assert rows["(none)", "(none)"]["requests"] == 1
            p = rows["gke-west-1", "us-west1-a"]["latency_ms"]
            assert p["p50"] is not None and 0 < p["p50"] <= p["p99"] < 1000
            routes = {r["route"]: r["requests"] for r in doc["routes"]}
            assert routes["default/to-west/rule/0/match/0"] == 5
            assert routes["(no route)"] == 1
            assert set(doc["series"]) >= {"t", "zones", "rps", "p50_ms", "p99_ms", "error_rate"}

            # After a sample or two the recent rate and the series see the traffic too.
            await admin_kit.send(s.address, {"/west": 4})
            await asyncio.sleep(admin_server.SAMPLE_INTERVAL_S * 1.5)
            doc = await admin_kit.get_json(s.admin.address, "/api/stats")
            series = doc["series"]
            assert "gke-west-1/us-west1-a" in series["zones"]
            span = doc["recent"]["span_s"]
            assert span > 0
            assert abs(doc["recent"]["rps"] * span - 15) < 0.05
            west = next(c for c in doc["clusters"] if c["cluster"] == "gke-west-1")
            assert west["requests"] == 9

    run_async(main())


def test_health_readiness_routes_endpoints_and_errors() -> None:
    async def main() -> None:
        async with admin_kit.stack() as s:
            a = s.admin.address
            assert (await admin_kit.get_json(a, "/healthz")) == {"status": "ok"}
            ready = await admin_kit.get_json(a, "/readyz")
            assert ready["ready"] is True and ready["version"] == "test"
            routes = await admin_kit.get_json(a, "/api/routes")
            (listener,) = routes["listeners"]
            assert listener["address"] == f"{s.address[0]}:{s.address[1]}"
            names = [r["name"] for r in listener["routes"]]
            assert names[0] == "default/to-west/rule/0/match/0"
            assert listener["routes"][0]["match"] == "PathPrefix /west"
            assert listener["routes"][0]["status"] == "unknown"  # no controller here
            endpoints = await admin_kit.get_json(a, "/api/endpoints")
            by_name = {b["name"]: b["endpoints"] for b in endpoints["backends"]}
            (west,) = by_name["west"]
            assert west["cluster"] == "gke-west-1" and west["healthy"] and west["ready"]

            # An endpoint that fails is ejected: /api/endpoints and /metrics say so. (By
            # default the only endpoint of a backend is never ejected: allow it here.)
            s.gw.health.max_ejection_percent = 100
            await s.west.close()
            await admin_kit.send(s.address, {"/west": 1})
            endpoints = await admin_kit.get_json(a, "/api/endpoints")
            by_name = {b["name"]: b["endpoints"] for b in endpoints["backends"]}
            assert by_name["west"][0]["healthy"] is False
            _, _, body = await admin_kit.get(a, "/metrics")
            healthy = _samples(body.decode())["mcgw_endpoint_healthy"]
            assert _sum(healthy, backend="west") == 0

            assert (await admin_kit.get(a, "/nope"))[0] == 404
            assert (await admin_kit.get(a, "/metrics", method="POST"))[0] == 405
            status, ctype, page = await admin_kit.get(a, "/dashboard")
            assert status == 200 and ctype.startswith("text/html") and b"/api/stats" in page
            index = await admin_kit.get_json(a, "/")
            assert "/metrics" in index["endpoints"]

    run_async(main())


def test_readyz_is_503_without_a_route_table() -> None:
    async def main() -> None:
        gw = server.Gateway(ProxySettings(active_health_checks=False))
        admin = admin_server.AdminServer(sources.Sources(gw), "127.0.0.1", 0)
        await admin.start()
        try:
            status, _, body = await admin_kit.get(admin.address, "/readyz")
            assert status == 503 and b"no route table yet" in body
        finally:
            await admin.close()
            await gw.close()

    run_async(main())


def test_readyz_says_draining_while_the_gateway_drains() -> None:
    async def main() -> None:
        async with FakeUpstream(Reply(delay_s=0.5)) as up:
            gw = server.Gateway(ProxySettings(active_health_checks=False))
            await gw.apply(
                tables.route_table([tables.route("r", "b")], [tables.backend("b", up.address)])
            )
            admin = admin_server.AdminServer(sources.Sources(gw), "127.0.0.1", 0)
            await admin.start()
            try:
                c = await RawClient.connect(gw.addresses()[tables.LISTENER])
                in_flight = asyncio.create_task(c.request())
                while not up.seen:
                    await asyncio.sleep(0.01)
                closing = asyncio.create_task(gw.close(timeout_s=3))
                await asyncio.sleep(0.05)
                # Its listeners are closed on purpose: the reason is the drain.
                status, _, body = await admin_kit.get(admin.address, "/readyz")
                assert status == 503 and json.loads(body)["reason"] == "draining"
                assert (await in_flight).status == 200
                await c.close()
                await closing
            finally:
                await admin.close()
                await gw.close()

    run_async(main())


def test_metrics_off_counts_nothing() -> None:
    async def main() -> None:
        async with admin_kit.stack(metrics=False) as s:
            await admin_kit.send(s.address, {"/west": 3})
            assert s.gw.metrics is None
            doc = await admin_kit.get_json(s.admin.address, "/api/stats")
            assert doc["metrics"] is False and doc["totals"]["requests"] == 0

    run_async(main())


def test_http2_streams_are_counted() -> None:
    import h2.config
    import h2.connection
    import h2.events

    async def main() -> None:
        async with admin_kit.stack() as s:
            reader, writer = await asyncio.open_connection(*s.address)
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            conn.initiate_connection()
            for i in range(3):
                conn.send_headers(
                    1 + 2 * i,
                    [
                        (":method", "GET"),
                        (":path", "/east"),
                        (":scheme", "http"),
                        (":authority", "store.example.com"),
                    ],
                    end_stream=True,
                )
            writer.write(conn.data_to_send())
            ended = 0
            while ended < 3:
                data = await asyncio.wait_for(reader.read(65536), 5)
                assert data
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.StreamEnded):
                        ended += 1
                writer.write(conn.data_to_send())
            writer.close()
            doc = await admin_kit.get_json(s.admin.address, "/api/stats")
            rows = {c["cluster"]: c["requests"] for c in doc["clusters"]}
            assert rows == {"gke-east-1": 3}

    run_async(main())


def test_mcgw_serve_runs_the_admin_server_with_statuses_and_reloads(tmp_path: Path) -> None:
    async def main() -> None:
        async with admin_kit.serving(tmp_path, access_log=False) as running:
            assert running.admin is not None
            a = running.admin.address
            await admin_kit.send(running.address(80), {"/": 2})
            routes = await admin_kit.get_json(a, "/api/routes")
            (route,) = routes["listeners"][0]["routes"]
            assert route["status"] == "ok"
            assert {c["type"] for c in route["conditions"]} >= {"Accepted", "ResolvedRefs"}
            assert route["requests"] == 2
            kinds = {st["kind"] for st in routes["statuses"]}
            assert {"Gateway", "HTTPRoute"} <= kinds
            assert routes["reloads"]["applied"] == 1
            _, _, body = await admin_kit.get(a, "/metrics")
            m = _samples(body.decode())
            assert _sum(m["mcgw_config_reloads_total"], result="applied") == 1
            assert _sum(m["mcgw_config_reloads_total"], result="rejected") == 0
            assert m["mcgw_config_last_reload_success_timestamp_seconds"][0][1] > 0

    run_async(main())


def test_admin_address_flag() -> None:
    assert admin_server.parse_address("off") is None
    assert admin_server.parse_address("127.0.0.1:19001") == ("127.0.0.1", 19001)
    assert admin_server.parse_address("19002") == ("127.0.0.1", 19002)
    assert admin_server.parse_address("[::1]:9") == ("::1", 9)
    for bad in ("x", "1.2.3.4:port", "1:99999"):
        try:
            admin_server.parse_address(bad)
        except ValueError as exc:
            assert "--admin" in str(exc)
        else:
            raise AssertionError(bad)


def test_a_taken_admin_port_fails_unless_fallback_is_allowed(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeUpstream(name="app") as up:
            folder = tmp_path / "config"
            folder.mkdir()
            (folder / "app.yaml").write_text(
                manifests.gateway_to_endpoints(backend_port=up.address[1])
            )
            holder = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
            taken = holder.sockets[0].getsockname()[:2]
            options = run.RunOptions(
                paths=(folder,),
                port_map=((80, 0),),
                log_dir=tmp_path / "logs",
                access_log=False,
                watch=False,
                with_fleet=False,
                admin=taken,
            )
            said: list[str] = []
            try:
                try:
                    await run.start(options, say=said.append)
                except admin_server.AdminError as exc:
                    assert "--admin" in str(exc)
                else:
                    raise AssertionError("started on a taken admin port")
                fallback = replace(options, admin_fallback=True)
                running = await run.start(fallback, say=said.append)
                try:
                    assert running.admin is not None
                    assert running.admin.address[1] not in (0, taken[1])
                    assert any("using a free port" in line for line in said)
                    assert any(line.startswith("admin: http://127.0.0.1:") for line in said)
                finally:
                    await running.close()
            finally:
                holder.close()

    run_async(main())


def test_capacity_utilisation_per_backend_group() -> None:
    async def main() -> None:
        async with FakeUpstream(name="w") as w, FakeUpstream(name="e") as e:
            groups = (
                table.BackendGroup(
                    "gke-west-1", "us-west1", "us-west1-a", (table.Endpoint(*w.address, pod="w"),)
                ),
                table.BackendGroup(
                    "gke-east-1", "us-east1", "us-east1-b", (table.Endpoint(*e.address, pod="e"),)
                ),
            )
            store = replace(tables.backend("store"), groups=groups, max_rate_per_endpoint=10.0)
            t = tables.route_table(
                [tables.route("r", "store")],
                [store],
                entry_region="us-west1",
            )
            async with gateway.serve(t) as (gw, address):
                admin = admin_server.AdminServer(sources.Sources(gw), "127.0.0.1", 0)
                await admin.start()
                try:
                    await admin_kit.send(address, {"/": 6})
                    await asyncio.sleep(admin_server.SAMPLE_INTERVAL_S * 1.5)
                    # A busy machine may delay the sampler: wait until a sample holds the
                    # burst, then read the metrics (read before it, they rightly show none).
                    async with asyncio.timeout(10):
                        while True:
                            doc = await admin_kit.get_json(admin.address, "/api/stats")
                            if sum(g["requests"] for g in doc["groups"]) == 6:
                                break
                            await asyncio.sleep(0.1)
                    _, _, body = await admin_kit.get(admin.address, "/metrics")
                    m = _samples(body.decode())
                finally:
                    await admin.close()
        cap = m["mcgw_backend_group_capacity_requests_per_second"]
        assert _sum(cap, cluster="gke-west-1", zone="us-west1-a") == 10.0
        assert _sum(cap, cluster="gke-east-1") == 10.0
        # A burst of six is over the closest region's budget: the waterfall spills some.
        served = {g["cluster"]: g for g in doc["groups"]}
        assert sum(g["requests"] for g in served.values()) == 6
        assert served["gke-west-1"]["capacity_rps"] == 10.0
        for cluster in [c for c, g in served.items() if g["requests"]]:
            # Over the ten-second window (so far about a second and a half long, at least
            # one sampling interval less the millisecond a loop timer may fire early: the
            # event loop's clock is read once per turn).
            rate = _sum(m["mcgw_backend_group_requests_per_second"], cluster=cluster)
            span = admin_server.SAMPLE_INTERVAL_S - 0.002
            assert 0 < rate <= served[cluster]["requests"] / span
            util = _sum(m["mcgw_backend_group_utilization_ratio"], cluster=cluster)
            assert util == pytest.approx(rate / 10.0)
        # The balancer's own window counted the requests of the closest region.
        assert _sum(m["mcgw_backend_region_requests_per_second"], region="us-west1") > 0

    run_async(main())


def test_endpoint_requests_are_counted_per_backend() -> None:
    # One pod behind two backends: each backend's row counts what it sent that pod, as
    # /metrics does, not every request the pod served under any backend.
    async def main() -> None:
        async with admin_kit.stack(build=admin_kit.shared_pod) as s:
            await admin_kit.send(s.address, {"/west": 1, "/shared": 3, "/east": 2})
            doc = await admin_kit.get_json(s.admin.address, "/api/endpoints")
            served = {
                (b["name"], e["address"]): e["requests"]
                for b in doc["backends"]
                for e in b["endpoints"]
            }
            west_ep = f"{s.west.address[0]}:{s.west.address[1]}"
            east_ep = f"{s.east.address[0]}:{s.east.address[1]}"
            assert served["west", west_ep] == 1
            assert served["west-too", west_ep] == 3
            assert served["east", east_ep] == 2
            assert sum(served.values()) == 6
            _, _, body = await admin_kit.get(s.admin.address, "/metrics")
            reqs = _samples(body.decode())["mcgw_http_requests_total"]
            for (backend, endpoint), n in served.items():
                assert _sum(reqs, backend=backend, endpoint=endpoint) == n

    run_async(main())


def test_405_says_which_methods_are_allowed() -> None:
    # RFC 9110 §15.5.6: a 405 must carry Allow.
    async def main() -> None:
        async with admin_kit.stack() as s:
            for method in ("POST", "PUT", "DELETE", "OPTIONS"):
                c = await RawClient.connect(s.admin.address)
                try:
                    r = await c.request(method, "/metrics", host="127.0.0.1", body=b"")
                finally:
                    await c.close()
                assert r.status == 405, method
                assert r.header_values("allow") == ["GET, HEAD"], (method, r.headers)
            # Other answers do not.
            c = await RawClient.connect(s.admin.address)
            try:
                r = await c.request("GET", "/healthz", host="127.0.0.1")
            finally:
                await c.close()
            assert r.status == 200 and r.header("allow") is None

    run_async(main())


def test_upgrade_offers_are_ignored_and_connect_refused(caplog: pytest.LogCaptureFixture) -> None:
    # httptools stops at a request offering an upgrade (or a CONNECT) with an exception of
    # its own: it used to escape data_received, be logged as a fatal transport error and
    # cut the connection. The admin server never upgrades: it answers such a GET as plain
    # HTTP/1.1 (RFC 9110 §7.8 lets it ignore the offer) and a CONNECT with 405.
    async def main() -> None:
        async with admin_kit.stack() as s:
            offers = (
                (("Connection", "Upgrade"), ("Upgrade", "websocket")),
                (("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c")),
            )
            for headers in offers:
                c = await RawClient.connect(s.admin.address)
                try:
                    r = await c.request("GET", "/healthz", host="127.0.0.1", headers=headers)
                    assert r.status == 200, (headers, r.status)
                    assert json.loads(r.body) == {"status": "ok"}
                    assert r.header("upgrade") is None
                    # Where the next request starts is not known past an offer (the
                    # parser stops before any body): the connection ends here.
                    assert r.header("connection") == "close"
                    assert await c.closed()
                finally:
                    await c.close()

            c = await RawClient.connect(s.admin.address)
            try:
                r = await c.request("CONNECT", "example.com:443", host="example.com:443")
                assert r.status == 405
                assert r.header("allow") == "GET, HEAD"
                assert r.header("connection") == "close"
                assert await c.closed()
            finally:
                await c.close()

            # The server still serves.
            assert (await admin_kit.get_json(s.admin.address, "/healthz")) == {"status": "ok"}

    with caplog.at_level(logging.WARNING):
        run_async(main())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_refused_body_is_not_waited_for_and_absolute_targets_are_served() -> None:
    async def main() -> None:
        async with admin_kit.stack() as s:
            reader, writer = await asyncio.open_connection(*s.admin.address)
            # Waits for 100 Continue before sending its body: it must hear 405 instead.
            writer.write(
                b"POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            answer = await asyncio.wait_for(reader.read(), 5)  # then the server closes
            writer.close()
            assert answer.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD" in answer

            reader, writer = await asyncio.open_connection(*s.admin.address)
            host, port = s.admin.address
            writer.write(
                f"GET http://{host}:{port}/healthz HTTP/1.1\r\nHost: {host}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 200 ") and b'"status"' in answer

    run_async(main())

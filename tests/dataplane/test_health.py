"""Health map and active checks, against real loopback HTTP servers."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from mcgw.dataplane import health
from mcgw.ir import table

FAST = table.HealthCheck(
    path="/healthz", interval_s=0.02, timeout_s=0.5, healthy_threshold=2, unhealthy_threshold=2
)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 15))


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


class Server:
    """A loopback HTTP server whose answer the test controls."""

    def __init__(self) -> None:
        self.status = 200
        self.hang = False
        self.served: Counter[int] = Counter()
        self.heads: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def hits(self) -> int:
        return len(self.heads)

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    def switch(self, status: int) -> None:
        self.status = status
        self.served.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            if self.hang:
                await asyncio.sleep(30)
            status = self.status
            self.served[status] += 1
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok".encode())
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def one_backend(
    *endpoints: tuple[str, int], check: table.HealthCheck = FAST, name: str = "svc"
) -> table.Backend:
    return table.Backend(
        name=name,
        kind="Service",
        namespace="ns",
        service=name,
        port=80,
        groups=(
            table.BackendGroup(
                cluster="c",
                region="r",
                zone="z",
                endpoints=tuple(table.Endpoint(address=a, port=p) for a, p in endpoints),
            ),
        ),
        health_check=check,
    )


def route_table(*backends: table.Backend) -> table.RouteTable:
    return table.RouteTable(listeners=(), backends=backends)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- active checks against real servers ----------------------------------------


def test_goes_down_after_two_failures_and_back_after_two_successes() -> None:
    async def main() -> None:
        async with Server() as server:
            changes: list[tuple[bool, Counter[int]]] = []
            hmap = health.HealthMap(on_change=lambda a, p, ok: changes.append((ok, +server.served)))
            checker = health.HealthChecker(hmap)
            try:
                checker.update(route_table(one_backend(("127.0.0.1", server.port))))
                await until(lambda: server.hits >= 3)
                assert hmap.healthy("127.0.0.1", server.port)
                assert changes == []

                server.switch(404)  # 404 is a failure, like any status but 200
                await until(lambda: not hmap.healthy("127.0.0.1", server.port))
                assert changes == [(False, Counter({404: 2}))]

                server.switch(200)
                await until(lambda: hmap.healthy("127.0.0.1", server.port))
                assert changes[1] == (True, Counter({200: 2}))
            finally:
                await checker.close()

    run(main())


def test_probe_request_shape() -> None:
    async def main() -> None:
        async with Server() as server:
            checker = health.HealthChecker(health.HealthMap())
            try:
                checker.update(route_table(one_backend(("127.0.0.1", server.port))))
                await until(lambda: server.hits >= 1)
            finally:
                await checker.close()
            request_line, *headers = server.heads[0].decode().split("\r\n")
            assert request_line == "GET /healthz HTTP/1.1"
            lowered = {h.lower() for h in headers if h}
            assert "host: 127.0.0.1" in lowered
            assert "connection: close" in lowered

    run(main())


def test_timeout_counts_as_failure() -> None:
    async def main() -> None:
        async with Server() as server:
            server.hang = True
            hmap = health.HealthMap()
            check = table.HealthCheck(path="/", interval_s=0.02, timeout_s=0.05)
            checker = health.HealthChecker(hmap)
            try:
                checker.update(route_table(one_backend(("127.0.0.1", server.port), check=check)))
                await until(lambda: not hmap.healthy("127.0.0.1", server.port))
                assert server.hits >= 2
                assert sum(server.served.values()) == 0
            finally:
                await checker.close()

    run(main())


def test_refused_connection_counts_as_failure() -> None:
    async def main() -> None:
        port = closed_port()
        hmap = health.HealthMap()
        checker = health.HealthChecker(hmap)
        try:
            checker.update(route_table(one_backend(("127.0.0.1", port))))
            await until(lambda: not hmap.healthy("127.0.0.1", port))
        finally:
            await checker.close()

    run(main())


def test_health_check_port_overrides_serving_port() -> None:
    async def main() -> None:
        async with Server() as server:
            serving = closed_port()
            hmap = health.HealthMap()
            check = table.HealthCheck(path="/hc", port=server.port, interval_s=0.02)
            checker = health.HealthChecker(hmap)
            try:
                checker.update(route_table(one_backend(("127.0.0.1", serving), check=check)))
                assert checker.probes == {("127.0.0.1", server.port, "/hc")}
                await until(lambda: server.hits >= 1)
                server.switch(503)
                # The verdict is filed under the serving port, the one traffic goes to.
                await until(lambda: not hmap.healthy("127.0.0.1", serving))
                assert hmap.healthy("127.0.0.1", server.port)
            finally:
                await checker.close()

    run(main())


def test_update_keeps_state_and_stops_removed_endpoints() -> None:
    async def main() -> None:
        async with Server() as a, Server() as b:
            a.status = 500
            hmap = health.HealthMap()
            checker = health.HealthChecker(hmap)
            try:
                both = one_backend(("127.0.0.1", a.port), ("127.0.0.1", b.port))
                checker.update(route_table(both))
                await until(lambda: not hmap.healthy("127.0.0.1", a.port) and b.hits >= 2)

                checker.update(route_table(one_backend(("127.0.0.1", a.port))))
                assert checker.probes == {("127.0.0.1", a.port, "/healthz")}
                # Still down: the state of an endpoint that stays is kept.
                assert not hmap.healthy("127.0.0.1", a.port)
                await asyncio.sleep(0.05)  # let a probe in flight at update time land
                b_hits, a_hits = b.hits, a.hits
                await asyncio.sleep(0.2)
                assert b.hits == b_hits, "removed endpoint still probed"
                assert a.hits > a_hits, "remaining endpoint no longer probed"
                assert not hmap.healthy("127.0.0.1", a.port)
            finally:
                await checker.close()
            assert checker.probes == frozenset()
            hits = a.hits
            await asyncio.sleep(0.1)
            assert a.hits == hits, "close() left a probe running"

    run(main())


def test_changed_check_path_keeps_endpoint_state() -> None:
    async def main() -> None:
        async with Server() as server:
            server.status = 500
            hmap = health.HealthMap()
            checker = health.HealthChecker(hmap)
            key = ("127.0.0.1", server.port)
            try:
                checker.update(route_table(one_backend(key)))
                await until(lambda: not hmap.healthy(*key))
                server.status = 200
                other = table.HealthCheck(path="/other", interval_s=10.0, healthy_threshold=2)
                checker.update(route_table(one_backend(key, check=other)))
                assert checker.probes == {("127.0.0.1", server.port, "/other")}
                await until(lambda: server.heads[-1].startswith(b"GET /other "))
                await asyncio.sleep(0.05)
                # One success so far, threshold 2: still down.
                assert not hmap.healthy(*key)
            finally:
                await checker.close()

    run(main())


# -- passive reports -------------------------------------------------------------


def test_passive_failure_without_active_check_ejects_for_a_while() -> None:
    now = [100.0]
    changes: list[tuple[str, int, bool]] = []
    hmap = health.HealthMap(
        ejection_s=30.0, clock=lambda: now[0], on_change=lambda *c: changes.append(c)
    )
    assert hmap.healthy("10.0.0.1", 80)  # unknown = healthy
    hmap.report_failure("10.0.0.1", 80)
    assert not hmap.healthy("10.0.0.1", 80)
    assert hmap.healthy("10.0.0.1", 81)
    assert hmap.unhealthy() == {("10.0.0.1", 80)}
    now[0] = 129.9
    assert not hmap.healthy("10.0.0.1", 80)
    now[0] = 130.0
    assert hmap.healthy("10.0.0.1", 80)
    assert changes == [("10.0.0.1", 80, False), ("10.0.0.1", 80, True)]


def test_passive_failure_threshold_and_success_reset() -> None:
    hmap = health.HealthMap(failure_threshold=3)
    hmap.report_failure("10.0.0.1", 80)
    hmap.report_failure("10.0.0.1", 80)
    hmap.report_success("10.0.0.1", 80)
    hmap.report_failure("10.0.0.1", 80)
    hmap.report_failure("10.0.0.1", 80)
    assert hmap.healthy("10.0.0.1", 80)
    hmap.report_failure("10.0.0.1", 80)
    assert not hmap.healthy("10.0.0.1", 80)


class ScriptedProbe:
    """Probe results from a queue, so a test decides exactly what each probe sees."""

    def __init__(self) -> None:
        self.results: asyncio.Queue[bool] = asyncio.Queue()
        self.calls = 0

    async def __call__(self, address: str, port: int, request: bytes, timeout_s: float) -> bool:
        self.calls += 1
        return await self.results.get()

    async def feed(self, result: bool) -> None:
        """Answer the waiting probe and return once its result is recorded."""
        await until(lambda: self.calls >= 1)
        calls = self.calls
        self.results.put_nowait(result)
        # The task records the result before it starts the next probe.
        await until(lambda: self.calls > calls)


def test_passive_failure_with_active_check_waits_for_two_successes() -> None:
    async def main() -> None:
        probe = ScriptedProbe()
        now = [0.0]
        hmap = health.HealthMap(ejection_s=30.0, clock=lambda: now[0])
        checker = health.HealthChecker(hmap, probe=probe)
        key = ("10.0.0.1", 8080)
        check = table.HealthCheck(interval_s=0.0, healthy_threshold=2, unhealthy_threshold=2)
        try:
            checker.update(route_table(one_backend(key, check=check)))
            await probe.feed(True)
            assert hmap.healthy(*key)

            hmap.report_failure(*key)
            # Ejected for 30 s, but two passing probes (Envoy's
            # successful_active_health_check_uneject_host) bring it back earlier.
            now[0] = 1.0
            assert not hmap.healthy(*key)
            await probe.feed(True)
            assert not hmap.healthy(*key)
            await probe.feed(True)
            assert hmap.healthy(*key)
        finally:
            await checker.close()

    run(main())


def test_active_thresholds_exact_with_scripted_probe() -> None:
    async def main() -> None:
        probe = ScriptedProbe()
        hmap = health.HealthMap()
        checker = health.HealthChecker(hmap, probe=probe)
        key = ("10.0.0.1", 8080)
        check = table.HealthCheck(interval_s=0.0, healthy_threshold=3, unhealthy_threshold=2)
        seen: list[bool] = []
        try:
            checker.update(route_table(one_backend(key, check=check)))
            for result in [False, True, False, False, True, True, False, True, True, True]:
                await probe.feed(result)
                seen.append(hmap.healthy(*key))
        finally:
            await checker.close()
        assert seen == [True, True, True, False, False, False, False, False, False, True]

    run(main())


def test_removed_endpoint_passively_ejected_keeps_out_then_returns() -> None:
    async def main() -> None:
        probe = ScriptedProbe()
        now = [0.0]
        hmap = health.HealthMap(ejection_s=5.0, clock=lambda: now[0])
        checker = health.HealthChecker(hmap, probe=probe)
        key = ("10.0.0.1", 8080)
        try:
            checker.update(route_table(one_backend(key)))
            hmap.report_failure(*key)
            checker.update(route_table())
            assert checker.probes == frozenset()
            # No check left to bring it back: an ordinary ejection from now on.
            assert not hmap.healthy(*key)
            now[0] = 5.0
            assert hmap.healthy(*key)
        finally:
            await checker.close()

    run(main())

"""Worker processes (mcgw.dataplane.workers): real processes on real loopback sockets.

Two workers share the listener (SO_REUSEPORT) and are fed by one Workers object, as
``mcgw serve --workers 2`` does. Which worker served a request is read from the
access log: each worker writes its own file, named by its pid.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import ssl
from collections import Counter
from pathlib import Path

import pytest
import trustme

from mcgw.config import load
from mcgw.dataplane import workers
from mcgw.dataplane.settings import ProxySettings
from mcgw.ir import table
from mcgw.testing import manifests
from mcgw.testing.client import RawClient
from mcgw.testing.gateway import translate_yaml
from mcgw.testing.runner import run
from mcgw.testing.upstream import FakeUpstream
from mcgw.translate import translator

EXAMPLE = Path(__file__).parents[2] / "examples" / "capacity"
HOST = "store.example.com"


def capacity_table(config: Path, west: list[int], east: list[int]) -> table.RouteTable:
    """examples/capacity (20 RPS per region, gateway next to us-west1) with the given
    pods (ports of FakeUpstreams); no east pods: one region only."""
    for name in ("gke-west-1", "gke-east-1"):
        (config / name).mkdir(parents=True, exist_ok=True)
    (config / "fleet.yaml").write_text((EXAMPLE / "fleet.yaml").read_text())
    gateway_yaml = (EXAMPLE / "gke-west-1" / "gateway.yaml").read_text()
    (config / "gke-west-1" / "all.yaml").write_text(
        gateway_yaml + manifests.exported_store("us-west1-a", west)
    )
    (config / "gke-east-1" / "all.yaml").write_text(
        manifests.exported_store("us-east1-b", east) if east else "---\n"
    )
    return translator.translate(load.load([config]).resources).table


def log_lines(log_dir: Path) -> dict[int, list[dict[str, object]]]:
    """Access-log entries by the pid of the worker that wrote them."""
    out: dict[int, list[dict[str, object]]] = {}
    for path in sorted(log_dir.glob("access-*.jsonl")):
        pid = int(path.stem.split("-")[2])
        out.setdefault(pid, []).extend(json.loads(x) for x in path.read_text().splitlines())
    return out


def target_of(entry: dict[str, object]) -> str:
    request = entry["httpRequest"]
    assert isinstance(request, dict)
    url = str(request["requestUrl"])
    return url.split(HOST, 1)[1] if HOST in url else url


async def _start(tmp_path: Path, **knobs: object) -> tuple[list[FakeUpstream], workers.Workers]:
    ups = [await FakeUpstream(name=f"pod-{i}").start() for i in range(4)]
    values: dict[str, object] = {
        "port_map": ((80, 0),),
        "active_health_checks": False,
        "access_log_dir": tmp_path / "log",
        "drain_timeout_s": 3.0,
    }
    settings = ProxySettings(**(values | knobs))  # type: ignore[arg-type]
    pool = workers.Workers(settings, 2)
    try:
        await pool.start()
    except BaseException:
        for up in ups:
            await up.close()
        raise
    return ups, pool


async def _stop(ups: list[FakeUpstream], pool: workers.Workers) -> None:
    try:
        await pool.close(3.0)
    finally:
        for up in ups:
            await up.close()


def _ports(ups: list[FakeUpstream]) -> list[int]:
    return [up.address[1] for up in ups]


def test_two_workers_serve_one_version_reload_and_sum_their_counters(tmp_path: Path) -> None:
    async def main() -> None:
        ups, pool = await _start(tmp_path)
        try:
            first = capacity_table(tmp_path / "c", _ports(ups[:2]), _ports(ups[2:]))
            await pool.apply(first)
            assert pool.versions() == [first.version] * 2
            assert len(set(pool.pids())) == 2
            (address,) = pool.addresses().values()
            for i in range(24):  # new connections: the kernel spreads them
                c = await RawClient.connect(address)
                assert (await c.request(target=f"/a{i}", host=HOST)).status == 200
                await c.close()
            await pool.flush_logs()
            served = log_lines(tmp_path / "log")
            assert set(served) == set(pool.pids()), served.keys()
            assert sum(len(v) for v in served.values()) == 24

            # A reload reaches both: the east region is gone, every request goes west.
            second = capacity_table(tmp_path / "c", _ports(ups[:2]), [])
            assert second.version != first.version
            await pool.apply(second)
            assert pool.versions() == [second.version] * 2
            assert pool.holder.current is not None
            assert pool.holder.current.table.version == second.version
            before = len(ups[2].seen) + len(ups[3].seen)
            for i in range(24):
                c = await RawClient.connect(address)
                assert (await c.request(target=f"/b{i}", host=HOST)).status == 200
                await c.close()
            assert len(ups[2].seen) + len(ups[3].seen) == before
            await pool.flush_logs()
            late = Counter(
                pid
                for pid, entries in log_lines(tmp_path / "log").items()
                for e in entries
                if target_of(e).startswith("/b")
            )
            assert set(late) == set(pool.pids()), late

            # The admin API's counters: both workers' requests, summed.
            await asyncio.sleep(workers.METRICS_S * 2.5)
            assert pool.metrics is not None
            assert sum(cell.count for _, cell in pool.metrics.cells()) == 48
        finally:
            await _stop(ups, pool)

    run(main(), timeout_s=40)


def test_killed_worker_restarts_and_the_other_keeps_its_connection(tmp_path: Path) -> None:
    async def main() -> None:
        ups, pool = await _start(tmp_path)
        try:
            rt = capacity_table(tmp_path / "c", _ports(ups[:2]), _ports(ups[2:]))
            await pool.apply(rt)
            (address,) = pool.addresses().values()
            # Keep-alive clients until both workers hold at least one.
            clients: list[RawClient] = []
            owner: dict[int, int] = {}
            for i in range(16):
                c = await RawClient.connect(address)
                assert (await c.request(target=f"/k{i}", host=HOST)).status == 200
                clients.append(c)
            await pool.flush_logs()
            for pid, entries in log_lines(tmp_path / "log").items():
                for e in entries:
                    owner[int(target_of(e)[2:])] = pid
            victim, survivor = pool.pids()
            kept = next(i for i in range(16) if owner[i] == survivor)
            client = clients[kept]

            os.kill(victim, signal.SIGKILL)
            # The survivor's client goes on, on the same connection, during the restart.
            for n in range(30):
                reply = await client.request(target=f"/again{n}", host=HOST)
                assert reply.status == 200
                await asyncio.sleep(0.05)
            for _ in range(100):
                if pool.restarts and len(pool.pids()) == 2:
                    break
                await asyncio.sleep(0.1)
            assert pool.restarts == 1
            assert victim not in pool.pids() and survivor in pool.pids()
            assert pool.versions() == [rt.version] * 2  # the new worker got the table
            assert not client.eof
            for i in range(24):
                c = await RawClient.connect(address)
                assert (await c.request(target=f"/n{i}", host=HOST)).status == 200
                await c.close()
            await pool.flush_logs()
            fresh = {
                pid
                for pid, entries in log_lines(tmp_path / "log").items()
                if any(target_of(e).startswith("/n") for e in entries)
            }
            assert fresh == set(pool.pids())
            for c in clients:
                await c.close()
        finally:
            await _stop(ups, pool)

    run(main(), timeout_s=40)


def test_a_passive_ejection_in_one_worker_reaches_the_other(tmp_path: Path) -> None:
    async def main() -> None:
        ups, pool = await _start(tmp_path, debug_headers=True)
        try:
            # One region only (no capacity spill): the two west pods take turns.
            rt = capacity_table(tmp_path / "c", _ports(ups[:2]), [])
            await pool.apply(rt)
            (address,) = pool.addresses().values()
            dead = ups[1]
            dead_key = ("127.0.0.1", dead.address[1])
            await dead.close()
            attempts: list[int] = []
            # Until one worker meets the dead pod (a retry on the other pod serves it).
            for _ in range(40):
                c = await RawClient.connect(address)
                reply = await c.request(target="/", host=HOST)
                await c.close()
                assert reply.status == 200
                attempts.append(int(reply.header("x-mcgw-attempts") or 0))
                if attempts[-1] > 1:
                    break
            assert attempts[-1] == 2, attempts
            for _ in range(50):
                if dead_key in pool.health.down:
                    break
                await asyncio.sleep(0.02)
            assert not pool.health.healthy(*dead_key)  # the control plane adopted it
            await asyncio.sleep(0.2)  # ... and told every worker
            served: Counter[int] = Counter()
            for i in range(30):
                c = await RawClient.connect(address)
                reply = await c.request(target=f"/after{i}", host=HOST)
                await c.close()
                assert reply.status == 200
                assert reply.header("x-mcgw-attempts") == "1", i
            await pool.flush_logs()
            for pid, entries in log_lines(tmp_path / "log").items():
                served[pid] += sum(1 for e in entries if target_of(e).startswith("/after"))
            assert set(served) == set(pool.pids()), served  # both workers were asked
        finally:
            await _stop(ups, pool)

    run(main(), timeout_s=40)


def test_waterfall_with_two_workers_splits_twenty_ten(tmp_path: Path) -> None:
    """GKE's experiment (examples/capacity) at 30 RPS, counted across both workers."""
    offered, seconds = 30.0, 4.0

    async def main() -> tuple[int, int, set[int]]:
        ups, pool = await _start(tmp_path)
        try:
            rt = capacity_table(tmp_path / "c", _ports(ups[:2]), _ports(ups[2:]))
            await pool.apply(rt)
            (address,) = pool.addresses().values()
            clients = [await RawClient.connect(address) for _ in range(8)]
            loop = asyncio.get_running_loop()
            start = loop.time()

            async def one(c: RawClient, at: float) -> None:
                await asyncio.sleep(max(0.0, at - loop.time()))
                assert (await c.request(target="/", host=HOST)).status == 200

            n = int(offered * seconds)
            k = len(clients)
            for batch in range(0, n, k):
                await asyncio.gather(
                    *(
                        one(clients[j], start + (batch + j) / offered)
                        for j in range(min(k, n - batch))
                    )
                )
            assert loop.time() - start < seconds + 1.0
            # The control plane's view of the rates (the admin API's): all workers'.
            assert pool.holder.current is not None
            (backend,) = pool.holder.current.table.backends
            rates = pool.holder.current.balancer.rates(backend.name)
            assert 20 <= sum(rates.values()) <= 40, rates
            for c in clients:
                await c.close()
            await pool.flush_logs()
            pids = {pid for pid, entries in log_lines(tmp_path / "log").items() if entries}
            west = len(ups[0].seen) + len(ups[1].seen)
            east = len(ups[2].seen) + len(ups[3].seen)
            return west, east, pids
        finally:
            await _stop(ups, pool)

    west, east, pids = run(main(), timeout_s=40)
    assert len(pids) == 2  # both workers took part
    assert west + east == int(offered * seconds)
    # 20/10 per second, within 10 % of the offered rate (3 RPS).
    assert abs(west / seconds - 20) <= 3 and abs(east / seconds - 10) <= 3, (west, east)


def test_https_key_pairs_travel_to_every_worker(tmp_path: Path) -> None:
    """The translator's key pairs go beside the table, over the pipe, to both workers."""
    ca = trustme.CA()
    cert = ca.issue_cert("secure.example.test")
    crt = base64.b64encode(cert.cert_chain_pems[0].bytes()).decode()
    key = base64.b64encode(cert.private_key_pem.bytes()).decode()

    async def main() -> None:
        ups, pool = await _start(tmp_path, port_map=((443, 0),))
        try:
            yaml = (
                manifests.GATEWAY_CLASS
                + """---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: mcgw
  listeners:
  - name: https
    protocol: HTTPS
    port: 443
    tls: {mode: Terminate, certificateRefs: [{name: cert}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: app, port: 80}]
---
apiVersion: v1
kind: Secret
metadata: {name: cert, namespace: default}
type: kubernetes.io/tls
"""
                + f"data: {{tls.crt: {crt}, tls.key: {key}}}\n"
                + manifests.service("app", ups[0].address[1])
            )
            (tmp_path / "tls").mkdir()
            result = translate_yaml(tmp_path / "tls", yaml)
            assert result.key_pairs
            await pool.apply(result.table, result.key_pairs)
            (address,) = pool.addresses().values()
            ctx = ssl.create_default_context()
            ca.configure_trust(ctx)
            for i in range(20):
                reader, writer = await asyncio.open_connection(
                    *address, ssl=ctx, server_hostname="secure.example.test"
                )
                writer.write(
                    f"GET /t{i} HTTP/1.1\r\nHost: secure.example.test\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                answer = await asyncio.wait_for(reader.read(), 5)
                assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]
                writer.close()
            await pool.flush_logs()
            served = {pid for pid, entries in log_lines(tmp_path / "log").items() if entries}
            assert served == set(pool.pids())
        finally:
            await _stop(ups, pool)

    run(main(), timeout_s=40)


@pytest.mark.parametrize("delay_s", [0.0, 0.1], ids=["dying", "dead"])
def test_a_reload_during_a_restart_reaches_the_new_worker(tmp_path: Path, delay_s: float) -> None:
    async def main() -> None:
        ups, pool = await _start(tmp_path)
        try:
            first = capacity_table(tmp_path / "c", _ports(ups[:2]), _ports(ups[2:]))
            await pool.apply(first)
            os.kill(pool.pids()[0], signal.SIGKILL)
            await asyncio.sleep(delay_s)  # dying (the reload is sent to it), or dead
            second = capacity_table(tmp_path / "c", _ports(ups[:2]), [])
            await pool.apply(second)  # the dead worker does not make the reload fail
            for _ in range(100):
                if pool.restarts and len(pool.pids()) == 2:
                    break
                await asyncio.sleep(0.1)
            assert pool.versions() == [second.version] * 2
        finally:
            await _stop(ups, pool)

    run(main(), timeout_s=40)


def test_a_reload_handed_a_worker_already_noticed_dead_does_not_wait_for_it(
    tmp_path: Path,
) -> None:
    """The race behind a CI failure: ``apply`` picks its workers, then, before it
    sends them the table, the parent notices one is gone and answers what it owed.
    The reload must not then wait START_TIMEOUT_S for an answer that cannot come.
    Reproduced by handing ``_apply_one`` the retired worker's handle directly."""

    async def main() -> None:
        ups, pool = await _start(tmp_path)
        try:
            first = capacity_table(tmp_path / "c", _ports(ups[:2]), _ports(ups[2:]))
            await pool.apply(first)
            old = pool._workers[0]
            assert old is not None
            os.kill(old.pid, signal.SIGKILL)
            for _ in range(100):
                if pool._workers[0] is not old:
                    break
                await asyncio.sleep(0.05)
            assert pool._workers[0] is not old, "the parent did not notice the kill"
            second = capacity_table(tmp_path / "c", _ports(ups[:2]), [])
            await asyncio.wait_for(pool._apply_one(old, second, {}), 5.0)
        finally:
            await _stop(ups, pool)

    run(main(), timeout_s=40)

"""SIGTERM with a request in flight: the admin server outlives the drain, as Envoy's does.

While ``mcgw serve`` drains, /readyz answers 503 "draining" (so a load balancer stops
sending), /healthz 200 (the process is alive) and /metrics the counts so far; the
admin port closes only when the drain is done. One gateway in the main process and
worker processes drain alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest
from cli_kit import ROOT

from mcgw.testing import manifests
from mcgw.testing.client import RawClient
from mcgw.testing.runner import run
from mcgw.testing.upstream import FakeUpstream, Reply, Seen

LISTENER = re.compile(r"gateway: listener \S+ on http://([\d.]+):(\d+)")
ADMIN = re.compile(r"admin: http://([\d.]+):(\d+)/dashboard")
HOST = "app.example.com"
SLOW_S = 3.0
"""How long the in-flight request takes: the drain lasts about that long."""


def _reply(seen: Seen) -> Reply:
    return Reply(body=b"slow", delay_s=SLOW_S) if seen.target == "/slow" else Reply()


async def _get(address: tuple[str, int], path: str) -> tuple[int, bytes]:
    c = await RawClient.connect(address)
    try:
        r = await c.request(target=path, host="127.0.0.1")
    finally:
        await c.close()
    return r.status, r.body


def _requests_total(text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mcgw_http_requests_total{")
    )


async def _total(admin: tuple[str, int]) -> float:
    status, body = await _get(admin, "/metrics")
    assert status == 200
    return _requests_total(body.decode())


@pytest.mark.parametrize("workers", [1, 2])
def test_admin_answers_through_the_drain_then_closes(tmp_path: Path, workers: int) -> None:
    config = tmp_path / "config"
    config.mkdir()

    async def main() -> None:
        up = await FakeUpstream(_reply, name="app").start()
        (config / "app.yaml").write_text(
            manifests.gateway_to_endpoints(backend_port=up.address[1], hostnames=(HOST,))
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mcgw",
            "serve",
            "-f",
            str(config),
            "--bind",
            "127.0.0.1",
            "--port-map",
            "80:0",
            "--workers",
            str(workers),
            "--admin",
            "127.0.0.1:0",
            "--log-dir",
            str(tmp_path / "logs"),
            "--no-watch",
            "--no-log-index",
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        said: list[str] = []
        try:
            assert proc.stderr is not None
            address: tuple[str, int] | None = None
            admin: tuple[str, int] | None = None
            async with asyncio.timeout(30):
                while True:
                    line = (await proc.stderr.readline()).decode()
                    assert line, f"mcgw exited before ready: {said}"
                    said.append(line.rstrip())
                    if found := LISTENER.search(line):
                        address = (found[1], int(found[2]))
                    if found := ADMIN.search(line):
                        admin = (found[1], int(found[2]))
                    if line.startswith("ready"):
                        break
            assert address is not None and admin is not None, said

            fast = await RawClient.connect(address)
            assert (await fast.request(target="/fast", host=HOST)).status == 200
            await fast.close()
            # Workers report their counters twice a second: wait for this one.
            async with asyncio.timeout(5):
                while await _total(admin) < 1:
                    await asyncio.sleep(0.1)

            slow = await RawClient.connect(address)
            in_flight = asyncio.create_task(
                slow.request(target="/slow", host=HOST, timeout_s=SLOW_S + 5)
            )
            async with asyncio.timeout(5):
                while not any(s.target == "/slow" for s in up.seen):
                    await asyncio.sleep(0.02)
            proc.send_signal(signal.SIGTERM)

            # Until the signal is handled /readyz may still say 200; a refused
            # connection (the admin server gone) fails the test here.
            async with asyncio.timeout(SLOW_S / 2):
                while (ready := await _get(admin, "/readyz"))[0] == 200:
                    await asyncio.sleep(0.02)
            status, body = ready
            assert status == 503, body
            doc = json.loads(body)
            assert doc["ready"] is False and doc["reason"] == "draining", doc
            status, body = await _get(admin, "/healthz")
            assert status == 200 and json.loads(body) == {"status": "ok"}
            assert await _total(admin) == 1  # the last counts; /slow is not done yet
            assert not in_flight.done()  # all of that happened during the drain

            response = await in_flight
            assert response.status == 200 and response.body == b"slow"
            assert response.header("connection") == "close"
            await slow.close()  # as told: the drain waits for no one now
            async with asyncio.timeout(10):
                code = await proc.wait()
            rest = (await proc.stderr.read()).decode()
            assert code == 0, said + rest.splitlines()
            # The drain is over: now the admin server is gone too.
            with pytest.raises(ConnectionRefusedError):
                await RawClient.connect(admin)
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
            await up.close()

    run(main(), timeout_s=45)

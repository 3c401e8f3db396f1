"""``mcgw serve --workers 2``: the real command, two worker processes, one control plane."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import urllib.request
from pathlib import Path

from cli_kit import ROOT

from mcgw.testing import manifests
from mcgw.testing.client import RawClient
from mcgw.testing.runner import run
from mcgw.testing.upstream import FakeUpstream

LISTENER = re.compile(r"gateway: listener \S+ on http://([\d.]+):(\d+)")
ADMIN = re.compile(r"admin: (http://[\d.]+:\d+)/dashboard")
PIDS = re.compile(r"gateway: 2 worker processes \(pids (\d+), (\d+)\)")
HOST = "app.example.com"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _requests_total(admin: str) -> float:
    with urllib.request.urlopen(f"{admin}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mcgw_http_requests_total{")
    )


def test_serve_with_two_workers_serves_from_both_sums_metrics_and_drains(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    logs = tmp_path / "logs"

    async def main() -> None:
        up = await FakeUpstream(name="app").start()
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
            "2",
            "--admin",
            "127.0.0.1:0",
            "--log-dir",
            str(logs),
            "--no-watch",
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        said: list[str] = []
        try:
            assert proc.stderr is not None
            address: tuple[str, int] | None = None
            admin = ""
            pids: tuple[int, int] | None = None
            async with asyncio.timeout(30):
                while True:
                    line = (await proc.stderr.readline()).decode()
                    assert line, f"mcgw exited before ready: {said}"
                    said.append(line.rstrip())
                    if found := LISTENER.search(line):
                        address = (found[1], int(found[2]))
                    if found := ADMIN.search(line):
                        admin = found[1]
                    if found := PIDS.search(line):
                        pids = (int(found[1]), int(found[2]))
                    if line.startswith("ready"):
                        break
            assert address is not None and admin and pids is not None, said

            keep = await RawClient.connect(address)
            assert (await keep.request(target="/keep", host=HOST)).status == 200
            for i in range(24):
                c = await RawClient.connect(address)
                assert (await c.request(target=f"/r{i}", host=HOST)).status == 200
                await c.close()
            # Both workers served (each writes its own access-log file, named by pid) ...
            await asyncio.sleep(1.0)
            writers = {
                int(p.stem.split("-")[2]) for p in logs.glob("access-*.jsonl") if p.stat().st_size
            }
            assert writers == set(pids), (writers, pids)
            # ... and the admin API sums their counters.
            total = await asyncio.to_thread(_requests_total, admin)
            assert total == 25, total

            # SIGTERM: every worker drains, the idle keep-alive connection is closed
            # with a FIN (not a reset), and the command exits 0.
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                code = await proc.wait()
                with_eof = await keep.closed()
            rest = (await proc.stderr.read()).decode()
            assert code == 0, said + rest.splitlines()
            assert with_eof
            assert not any(_alive(pid) for pid in pids)
            await keep.close()
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
            await up.close()

    run(main(), timeout_s=60)

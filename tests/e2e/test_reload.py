"""Hot reload under load: files change, the gateway follows, no request fails.

A Store API process is the backend; ``mcgw serve``'s runtime (files watched, no fleet)
fronts it while the load tester keeps 10 VUs busy. During the load the route file is
edited, a second file is added and then deleted, and a broken file is saved: every
change that parses is in force within a second, the broken one is rejected and the
last good table keeps serving, and not one request of the load fails.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from pathlib import Path

from scenario_kit import get

from mcgw.cli import run
from mcgw.loadtest import metrics, runner
from mcgw.loadtest import options as load_options
from mcgw.testing import manifests
from mcgw.testing.runner import run as run_async

HOST = "app.example.com"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _extra_route(path: str) -> str:
    return f"""apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: extra, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [{HOST}]
  rules:
  - matches: [{{path: {{type: Exact, value: {path}}}}}]
    backendRefs: [{{name: app, port: 80}}]
"""


async def _until(address: tuple[str, int], path: str, status: int, within_s: float) -> float:
    """Seconds until ``path`` answers ``status`` (fails after ``within_s``)."""
    start = time.monotonic()
    while True:
        got, _ = await get(address, path, host=HOST)
        if got == status:
            return time.monotonic() - start
        assert time.monotonic() - start < within_s, f"{path} still {got}, wanted {status}"
        await asyncio.sleep(0.05)


def test_reloads_under_load_with_no_failed_request(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    backend_port = _free_port()
    route_file = config / "app.yaml"

    def write_app(path: str) -> None:
        text = manifests.gateway_to_endpoints(
            backend_port=backend_port, path=path, hostnames=(HOST,)
        )
        tmp = route_file.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, route_file)  # as editors save: never a half-written file

    write_app("/load")

    async def main() -> tuple[metrics.Summary, list[float]]:
        store = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mcgw.store",
            env={"PORT": str(backend_port), "HOST": "127.0.0.1", "PATH": os.environ["PATH"]},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        running = None
        try:
            for _ in range(200):
                try:
                    _, w = await asyncio.open_connection("127.0.0.1", backend_port)
                    w.close()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            running = await run.start(
                run.RunOptions(
                    paths=(config,),
                    port_map=((80, 0),),
                    log_dir=tmp_path / "logs",
                    with_fleet=False,
                ),
                say=lambda _: None,
            )
            address = running.address(80)
            load = asyncio.create_task(
                runner.run(
                    load_options.LoadOptions(
                        url=f"http://{HOST}/load",
                        vus=10,
                        duration_s=6,
                        sleep_s=0.01,
                        host_map=((HOST, f"{address[0]}:{address[1]}"),),
                        graceful_stop_s=5,
                    )
                )
            )
            await asyncio.sleep(0.5)
            delays = []
            # Add a file: /v2 appears.
            (config / "extra.yaml").write_text(_extra_route("/v2"))
            delays.append(await _until(address, "/v2", 200, within_s=3))
            # Edit in place: the extra route moves to /v3.
            (config / "extra.yaml").write_text(_extra_route("/v3"))
            delays.append(await _until(address, "/v3", 200, within_s=3))
            # A broken save is rejected; the last good table keeps serving.
            (config / "extra.yaml").write_text("kind: HTTPRoute\n  spec: [")
            await asyncio.sleep(1.0)
            assert (await get(address, "/v3", host=HOST))[0] == 200
            # Delete: /v3 goes away, the rest stays.
            (config / "extra.yaml").unlink()
            delays.append(await _until(address, "/v3", 404, within_s=3))
            # Rewrite the main file: everything is routed now, /load included.
            write_app("/")
            delays.append(await _until(address, "/other", 200, within_s=3))
            summary = await load
            assert running.controller.rejected, "the broken file was not reported"
            return summary, delays
        finally:
            if running is not None:
                await running.close()
            store.terminate()
            await store.wait()

    summary, delays = run_async(main(), timeout_s=60)
    failed = summary.metric("http_req_failed")
    reqs = summary.metric("http_reqs")
    assert failed is not None and reqs is not None
    assert reqs.get("count") > 500
    assert failed.get("passes") == 0
    assert max(delays) < 1.0, delays  # every change in force within a second


def _cross_namespace(backend_port: int) -> str:
    """A route in namespace `web` to a Service in namespace `app`."""
    return (
        manifests.GATEWAY_CLASS
        + """---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: web}
spec:
  gatewayClassName: mcgw
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: web}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: app, namespace: app, port: 80}]
"""
        + manifests.service("app", backend_port, namespace="app")
    )


GRANT = """apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: web-to-app, namespace: app}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: web}]
  to: [{group: "", kind: Service}]
"""


def test_removing_a_reference_grant_takes_effect_live(tmp_path: Path) -> None:
    from mcgw.testing.upstream import FakeUpstream

    config = tmp_path / "config"
    config.mkdir()

    async def main() -> tuple[float, float]:
        async with FakeUpstream() as upstream:
            (config / "app.yaml").write_text(_cross_namespace(upstream.port))
            (config / "grant.yaml").write_text(GRANT)
            running = await run.start(
                run.RunOptions(
                    paths=(config,),
                    port_map=((80, 0),),
                    log_dir=tmp_path / "logs",
                    with_fleet=False,
                ),
                say=lambda _: None,
            )
            try:
                address = running.address(80)
                assert (await get(address, "/", host=HOST))[0] == 200
                (config / "grant.yaml").unlink()
                revoked = await _until(address, "/", 500, within_s=3)
                (config / "grant.yaml").write_text(GRANT)
                granted = await _until(address, "/", 200, within_s=3)
                return revoked, granted
            finally:
                await running.close()

    revoked, granted = run_async(main(), timeout_s=30)
    assert revoked < 1.0 and granted < 1.0

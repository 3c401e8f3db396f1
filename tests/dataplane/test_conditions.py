"""Warning conditions found by the running gateway: a health-check path answering 404.

Real sockets: a gateway with active checks against a fake endpoint that runs but
answers 404 on the check's path; then ``mcgw status --probe`` over the same kind of
endpoint, written as an EndpointSlice.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mcgw.cli import main
from mcgw.dataplane import conditions
from mcgw.ir import table
from mcgw.testing import tables
from mcgw.testing.gateway import SETTINGS, serve
from mcgw.testing.runner import run
from mcgw.testing.upstream import FakeUpstream, Reply, Seen

FAST_CHECK = table.HealthCheck(
    path="/healthz", interval_s=0.05, timeout_s=1.0, healthy_threshold=1, unhealthy_threshold=1
)


def test_health_check_path_answering_404_is_a_loud_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = {"status": 404}

    def reply(seen: Seen) -> Reply:
        return Reply(status=state["status"] if seen.target == "/healthz" else 200)

    async def main_() -> None:
        async with FakeUpstream(reply) as up:
            backend = replace(tables.backend("b", up.address), health_check=FAST_CHECK)
            t = tables.route_table([tables.route("r", "b")], [backend])
            async with serve(t, settings=replace(SETTINGS, active_health_checks=True)) as (gw, _):
                for _ in range(100):
                    await asyncio.sleep(0.02)
                    if gw.probes.warnings():
                        break
                (warning,) = gw.probes.warnings()
                assert warning.startswith(
                    "HealthCheckPathNotFound: the health check GET /healthz on "
                    f"{up.host}:{up.port} answers 404"
                )
                assert "requestPath" in warning
                assert not gw.health.healthy(*up.address)
                state["status"] = 200
                for _ in range(100):
                    await asyncio.sleep(0.02)
                    if not gw.probes.warnings() and gw.health.healthy(*up.address):
                        break
                assert gw.probes.warnings() == ()
                assert gw.health.healthy(*up.address)

    with caplog.at_level(logging.WARNING, logger=conditions.__name__):
        run(main_())
    # Logged once when it started, not at every probe.
    mine = [r.getMessage()[:23] for r in caplog.records if r.name == conditions.__name__]
    assert mine == ["HealthCheckPathNotFound"]


class _NotFound(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def not_found_server() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


MANIFESTS = """\
apiVersion: v1
kind: Service
metadata: {{name: s, namespace: web}}
spec:
  ports: [{{port: 80, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: s-abc
  namespace: web
  labels: {{kubernetes.io/service-name: s}}
addressType: IPv4
ports: [{{port: {port}}}]
endpoints:
- addresses: [{host}]
  targetRef: {{kind: Pod, name: s-pod-1}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: web}}
spec:
  gatewayClassName: gke-l7-global-external-managed-mc
  listeners:
  - {{name: http, protocol: HTTP, port: 80}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: web}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - backendRefs: [{{name: s, port: 80}}]
"""


def test_status_probe_shows_the_404_health_check(
    tmp_path: Path, not_found_server: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = not_found_server
    (tmp_path / "all.yaml").write_text(MANIFESTS.format(host=host, port=port))
    assert main.main(["status", "-f", str(tmp_path), "--probe"]) == 0
    out = capsys.readouterr().out
    assert (
        f"note: warning: backend Service/web/s:80: HealthCheckPathNotFound: the health check "
        f"GET / on {host}:{port} answers 404" in out
    )
    assert "note: probed 1 health checks: 0 healthy (200), 1 answered otherwise" in out
    # Without --probe, no socket is opened and no such note is printed.
    assert main.main(["status", "-f", str(tmp_path)]) == 0
    assert "HealthCheckPathNotFound" not in capsys.readouterr().out

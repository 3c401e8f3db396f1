"""Gateway API semantics end to end: YAML → translator → data plane → real sockets.

Two upstreams named `a` and `b` answer their own name, so each response shows which
route served it.
"""

from __future__ import annotations

from pathlib import Path

from scenario_kit import ask

from mcgw.cli import run
from mcgw.testing.manifests import GATEWAY_CLASS, service
from mcgw.testing.runner import run as run_async
from mcgw.testing.upstream import FakeUpstream


async def _serve(config: Path, tmp_path: Path, manifests: str) -> run.Running:
    (config / "all.yaml").write_text(manifests)
    return await run.start(
        run.RunOptions(
            paths=(config,), port_map=((80, 0),), log_dir=tmp_path / "logs", with_fleet=False
        ),
        say=lambda _: None,
    )


def test_most_specific_listener_wins_with_no_fall_through(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()

    async def main() -> dict[tuple[str, str], tuple[int, bytes]]:
        async with FakeUpstream(name="a") as a, FakeUpstream(name="b") as b:
            running = await _serve(
                config,
                tmp_path,
                GATEWAY_CLASS
                + """---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: mcgw
  listeners:
  - {name: wild, protocol: HTTP, port: 80, hostname: "*.example.com"}
  - {name: foo, protocol: HTTP, port: 80, hostname: foo.example.com}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wide, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: wild}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: a, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: narrow, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: foo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /only-foo}}]
    backendRefs: [{name: b, port: 80}]
"""
                + service("a", a.port)
                + service("b", b.port),
            )
            try:
                address = running.address(80)
                asks = [
                    ("bar.example.com", "/x"),
                    ("foo.example.com", "/only-foo"),
                    ("foo.example.com", "/x"),  # not foo's: no fall-through to *.example.com
                    ("FOO.example.com:80", "/only-foo/y"),
                    ("example.com", "/x"),  # matches neither listener
                ]
                return {(host, path): await ask(address, path, host) for host, path in asks}
            finally:
                await running.close()

    got = run_async(main(), timeout_s=30)
    assert got[("bar.example.com", "/x")] == (200, b"a")
    assert got[("foo.example.com", "/only-foo")] == (200, b"b")
    assert got[("foo.example.com", "/x")][0] == 404
    assert got[("FOO.example.com:80", "/only-foo/y")] == (200, b"b")
    assert got[("example.com", "/x")][0] == 404


def test_two_gateways_on_one_port_route_independently(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()

    def gateway(name: str, backend: str) -> str:
        return f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: default}}
spec:
  gatewayClassName: mcgw
  listeners: [{{name: http, protocol: HTTP, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}-route, namespace: default}}
spec:
  parentRefs: [{{name: {name}}}]
  rules:
  - backendRefs: [{{name: {backend}, port: 80}}]
"""

    async def main() -> tuple[dict[str, tuple[str, int]], list[tuple[int, bytes]]]:
        async with FakeUpstream(name="a") as a, FakeUpstream(name="b") as b:
            running = await _serve(
                config,
                tmp_path,
                GATEWAY_CLASS
                + gateway("one", "a")
                + gateway("two", "b")
                + service("a", a.port)
                + service("b", b.port),
            )
            try:
                bound = running.gateway.addresses()
                answers = [
                    await ask(addr, "/", "any.example.com") for _, addr in sorted(bound.items())
                ]
                return bound, answers
            finally:
                await running.close()

    bound, answers = run_async(main(), timeout_s=30)
    hosts = sorted(host for host, _ in bound.values())
    assert hosts == ["127.0.0.1", "127.0.0.2"]  # each Gateway got its own address
    assert answers == [(200, b"a"), (200, b"b")]

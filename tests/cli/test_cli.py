"""The ``mcgw`` command, run as a user runs it: a subprocess, real files, real sockets."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_kit import ROOT, mcgw, running

from mcgw.testing import manifests

STORE = str(ROOT / "examples" / "store")


def _get(address: tuple[str, int], path: str, host: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_translate_prints_the_route_table() -> None:
    done = mcgw("translate", "-f", STORE)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "store.example.com" in out
    for backend in ("store-west-1", "store-east-1", "ServiceImport/store/store:8080"):
        assert backend in out
    assert "asia-northeast1" in out
    as_json = mcgw("translate", "-f", STORE, "-o", "json")
    assert json.loads(as_json.stdout)["listeners"]


def test_status_shows_conditions_and_backends() -> None:
    done = mcgw("status", "-f", STORE)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Gateway store/external-http [cluster gke-west-1]" in out
    assert "Accepted=True (Accepted)" in out
    assert "Programmed=True (Programmed)" in out
    assert "HTTPRoute store/public-store-route" in out
    assert "ResolvedRefs=True (ResolvedRefs)" in out
    assert "Backend ServiceImport/store/store:8080" in out
    # Backends list the endpoints the local fleet would start: both clusters for `store`.
    store = out[out.index("Backend ServiceImport/store/store:8080") :]
    assert "group gke-west-1 us-west1-a" in store and "group gke-east-1 us-east1-b" in store
    assert "127.1.0.2:8080" in store and "planned" in store
    # Regions ranked from Tokyo: us-west1 before us-east1.
    locality = next(line for line in out.splitlines() if line.startswith("Locality"))
    assert locality.index("us-west1") < locality.index("us-east1")


def test_bad_config_exits_2_naming_file_document_path_and_fix(tmp_path: Path) -> None:
    (tmp_path / "route.yaml").write_text(
        "apiVersion: gateway.networking.k8s.io/v1\n"
        "kind: HTTPRoute\n"
        "metadata: {name: r, namespace: store}\n"
        "spec:\n"
        "  parentRef: [{name: gw}]\n"
    )
    for command in ("translate", "status", "serve", "up"):
        done = mcgw(command, "-f", str(tmp_path))
        assert done.returncode == 2, (command, done.stderr)
        assert "route.yaml: document 1 (HTTPRoute store/r): spec.parentRef" in done.stderr
        assert "parentRefs" in done.stderr  # the fix names the right field
        assert "gateway: listener" not in done.stderr  # nothing was started


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert mcgw("serve").returncode == 2
    assert mcgw("serve", "-f", STORE, "--port-map", "eighty").returncode == 2
    # A log directory of its own: a query remembers its translation there.
    logs = ROOT / "tests" / "analytics" / "testdata" / "access_by_cluster.jsonl"
    (tmp_path / "access.jsonl").write_bytes(logs.read_bytes())
    bad_sql = mcgw("logs", "query", "SELEC nothing", "--log-dir", str(tmp_path))
    assert bad_sql.returncode == 2
    assert "SELEC" in bad_sql.stderr


@pytest.fixture
def store_backend() -> Iterator[int]:
    """A Store API process on 127.0.0.1, like any HTTP server mcgw may route to."""
    port = _free_port()
    env = {"PORT": str(port), "HOST": "127.0.0.1", "CLUSTER_NAME": "outside", "ZONE": "far-a"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcgw.store"],
        env={**env, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, "the Store API exited"
                assert time.monotonic() < deadline, "the Store API did not listen"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _serve_config(folder: Path, backend_port: int, path: str = "/") -> None:
    (folder / "app.yaml").write_text(
        manifests.gateway_to_endpoints(
            backend_port=backend_port, path=path, hostnames=("app.example.com",), zone="far-a"
        )
    )


def test_serve_routes_to_endpoint_slices_and_stops_cleanly(
    tmp_path: Path, store_backend: int
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    _serve_config(config, store_backend)
    logs = tmp_path / "logs"
    args = ("serve", "-f", str(config), "--bind", "127.0.0.1", "--port-map", "80:0")
    with running(*args, "--log-dir", str(logs), "--no-watch") as server:
        indexer = _indexer_pid(server.said)
        assert _alive(indexer)
        status, body = _get(server.address, "/hello?x=1", "app.example.com")
        assert status == 200
        answer = json.loads(body)
        assert answer["cluster_name"] == "outside"
        assert answer["echo"]["path"] == "/hello?x=1"
        assert _get(server.address, "/", "other.example.com")[0] == 404
        # The log indexer parses the access log into the query cache as it is written.
        deadline = time.monotonic() + 20
        while not (logs / ".mcgw-analytics.duckdb").exists():
            assert time.monotonic() < deadline, "the log indexer made no cache"
            time.sleep(0.1)
        assert server.stop(signal.SIGTERM) == 0
    assert not _alive(indexer), "the log indexer was stopped with the gateway"
    lines = [json.loads(x) for f in logs.glob("access-*.jsonl") for x in f.read_text().splitlines()]
    assert [e["httpRequest"]["status"] for e in lines] == [200, 404]
    assert lines[0]["httpRequest"]["requestUrl"] == "http://app.example.com/hello?x=1"


def _indexer_pid(said: list[str]) -> int:
    found = [line for line in said if line.startswith("logs: indexer (pid ")]
    assert len(found) == 1, said
    return int(found[0].split("(pid ")[1].split(")")[0])


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (not gone, not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_serve_reloads_changed_files_and_keeps_the_last_good_table(
    tmp_path: Path, store_backend: int
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    _serve_config(config, store_backend, path="/v1")
    args = ("serve", "-f", str(config), "--bind", "127.0.0.1", "--port-map", "80:0")
    with running(*args, "--log-dir", str(tmp_path / "logs")) as server:
        assert _get(server.address, "/v1", "app.example.com")[0] == 200
        assert _get(server.address, "/v2", "app.example.com")[0] == 404

        (config / "app.yaml").write_text("kind: HTTPRoute\n  broken: [")
        time.sleep(1.5)
        assert _get(server.address, "/v1", "app.example.com")[0] == 200  # last good

        _serve_config(config, store_backend, path="/v2")
        deadline = time.monotonic() + 10
        while _get(server.address, "/v2", "app.example.com")[0] != 200:
            assert time.monotonic() < deadline, "the fixed file was not reloaded"
            time.sleep(0.2)
        assert _get(server.address, "/v1", "app.example.com")[0] == 404
        assert server.stop(signal.SIGINT) == 0
    said = "\n".join(server.said)
    assert "configuration rejected, keeping the last good one" in said
    assert "app.yaml" in said


def test_up_runs_fleet_and_gateway_until_interrupted_and_leaves_no_pod(tmp_path: Path) -> None:
    args = ("up", "-f", STORE, "--bind", "127.0.0.1", "--port-map", "80:0", "--no-watch")
    with running(*args, "--log-dir", str(tmp_path), "--no-log-index") as server:
        assert not any(line.startswith("logs: indexer") for line in server.said)
        status, body = _get(server.address, "/east", "store.example.com")
        assert status == 200
        assert json.loads(body)["cluster_name"] == "gke-east-1"
        pods = [line.split(" on ")[1] for line in server.said if line.strip().startswith("pod ")]
        assert len(pods) == 4
        assert server.stop(signal.SIGINT) == 0
    for pod in pods:
        host, port = pod.rsplit(":", 1)
        with pytest.raises(OSError):
            socket.create_connection((host, int(port)), timeout=1).close()


def test_load_command_prints_a_k6_summary(store_backend: int) -> None:
    done = mcgw(
        "load",
        "--vus",
        "2",
        "--duration",
        "1s",
        "--sleep",
        "0.1s",
        "--host",
        f"store.example.com=127.0.0.1:{store_backend}",
        "http://store.example.com/",
    )
    assert done.returncode == 0, done.stderr
    for row in ("http_req_duration", "http_req_failed", "http_reqs", "vus_max", "data_received"):
        assert row in done.stdout
    assert "0.00%" in done.stdout


def test_status_yaml_and_json_show_objects_as_kubernetes_does() -> None:
    import yaml

    done = mcgw("status", "-f", STORE, "-o", "yaml")
    assert done.returncode == 0, done.stderr
    doc = yaml.safe_load(done.stdout)
    assert (doc["apiVersion"], doc["kind"]) == ("v1", "List")
    by_kind = {(i["kind"], i["metadata"]["name"]): i for i in doc["items"]}
    gateway = by_kind[("Gateway", "external-http")]
    assert gateway["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert gateway["metadata"]["namespace"] == "store"
    status = gateway["status"]
    assert status["addresses"] == [{"type": "IPAddress", "value": "127.0.0.1"}]
    accepted = status["conditions"][0]
    assert accepted["type"] == "Accepted" and accepted["status"] == "True"
    assert accepted["observedGeneration"] == gateway["metadata"]["generation"]
    assert accepted["lastTransitionTime"].endswith("Z")
    listener = status["listeners"][0]
    assert listener["attachedRoutes"] == 1
    assert listener["supportedKinds"] == [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}
    ]
    route = by_kind[("HTTPRoute", "public-store-route")]["status"]
    parent = route["parents"][0]
    assert parent["controllerName"] == "mcgw.dev/gateway-controller"
    assert parent["parentRef"]["name"] == "external-http"
    assert {c["type"] for c in parent["conditions"]} >= {"Accepted", "ResolvedRefs"}
    gateway_class = next(i for i in doc["items"] if i["kind"] == "GatewayClass")
    assert {"name": "HTTPRoute"} in gateway_class["status"]["supportedFeatures"]

    as_json = mcgw("status", "-f", STORE, "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    items = json.loads(as_json.stdout)["items"]
    assert [(i["kind"], i["metadata"]["name"]) for i in items] == [
        (i["kind"], i["metadata"]["name"]) for i in doc["items"]
    ]


def test_features_lists_conformance_feature_names() -> None:
    done = mcgw("features")
    assert done.returncode == 0, done.stderr
    names = done.stdout.split()
    assert names == sorted(names)
    for name in ("Gateway", "HTTPRoute", "HTTPRouteQueryParamMatching", "HTTPRouteCORS"):
        assert name in names
    everything = mcgw("features", "--all").stdout
    assert "# not supported: HTTPRouteDestinationPortMatching" in everything

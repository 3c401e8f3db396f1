"""The fleet runtime with real processes: the SEED fleet's 4 pods on their loopback IPs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
from fleetkit import deployment, example, fleet, service

from mcgw.fleet import endpoints, errors, runtime


class FleetThread:
    """A FleetRuntime on its own uvloop thread, driven by blocking test code."""

    def __init__(self, log_dir: Path, res: Any = None, **options: Any) -> None:
        self.resources = example() if res is None else res
        self.log_dir = log_dir
        self._loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.runtime = runtime.FleetRuntime(self.resources, log_dir, **options)

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)

    def start(self) -> FleetThread:
        self.call(self.runtime.start())
        return self

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self.call(self.runtime.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def log_entries(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        for path in sorted(self.log_dir.glob("containers-*.jsonl")):
            entries.extend(json.loads(line) for line in path.read_text().splitlines())
        return entries


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetThread]:
    """The SEED fleet, started once for the tests that only look at it."""
    f = FleetThread(tmp_path_factory.mktemp("seed-logs"))
    try:
        yield f.start()
    finally:
        f.close()


@pytest.fixture
def own(tmp_path: Path) -> Iterator[FleetThread]:
    """A SEED fleet of the test's own, for tests that stop or kill pods."""
    # Its own address block: the module's SEED fleet holds 127.1-2.*.
    f = FleetThread(tmp_path, first_octet=11)
    try:
        yield f.start()
    finally:
        f.close()


def get(address: str, port: int, path: str = "/") -> dict[str, Any]:
    with socket.create_connection((address, port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: store.example.com\r\n\r\n".encode())
        f = sock.makefile("rb")
        assert f.readline().startswith(b"HTTP/1.1 200")
        length = 0
        while (line := f.readline()) != b"\r\n":
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        result: dict[str, Any] = json.loads(f.read(length))
        return result


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone: it runs nothing.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def refused(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


ZONES = {"gke-west-1": "us-west1-a", "gke-east-1": "us-east1-b"}


def test_each_pod_answers_as_itself_on_its_ip(seed: FleetThread) -> None:
    pods = seed.runtime.pods()
    assert [(p.cluster, p.address, p.port, p.ready) for p in pods] == [
        ("gke-west-1", "127.1.0.2", 8080, True),
        ("gke-west-1", "127.1.0.3", 8080, True),
        ("gke-east-1", "127.2.0.2", 8080, True),
        ("gke-east-1", "127.2.0.3", 8080, True),
    ]
    assert len({p.pid for p in pods}) == 4 and all(alive(p.pid) for p in pods)
    for pod in pods:
        assert (pod.namespace, pod.deployment, dict(pod.labels)["app"]) == (
            "store",
            "store",
            "store",
        )
        answer = get(pod.address, pod.port, "/east")
        assert answer["cluster_name"] == pod.cluster
        assert answer["zone"] == ZONES[pod.cluster]
        assert answer["pod_name"] == pod.name
        assert answer["pod_ip"] == pod.address
        assert answer["pod_namespace"] == "store"
        assert answer["project_id"] == "sandbox-mc-gateway"
        assert answer["node_name"].startswith(f"gke-{pod.cluster}-default-pool-")
        assert answer["gce_instance_id"].isdigit()
        assert answer["echo"]["path"] == "/east"


def test_endpoint_slices_of_the_seed_fleet(seed: FleetThread) -> None:
    published = seed.runtime.endpoint_slices()
    pods = seed.runtime.pods()
    assert set(published) == {"gke-west-1", "gke-east-1"}
    for cluster, short in (("gke-west-1", "store-west-1"), ("gke-east-1", "store-east-1")):
        by_service = {s.service_name: s for s in published[cluster]}
        assert set(by_service) == {"store", short}
        mine = {p.name: p.address for p in pods if p.cluster == cluster}
        for s in by_service.values():
            assert s.metadata.namespace == "store"
            assert [(p.port, p.protocol) for p in s.ports] == [(8080, "TCP")]
            assert {
                e.target_ref["name"]: e.addresses[0] for e in s.endpoints if e.target_ref
            } == mine
            assert {e.zone for e in s.endpoints} == {ZONES[cluster]}
            assert all(e.conditions.ready for e in s.endpoints)
    merged = seed.runtime.with_endpoints(seed.resources)
    again = seed.runtime.with_endpoints(merged)
    for before, after in zip(merged.clusters, again.clusters, strict=True):
        assert len(after.endpoint_slices) == 2, "republishing replaces, never duplicates"
        assert after.endpoint_slices == before.endpoint_slices
        assert after.services == before.services


def test_pod_output_becomes_container_log_entries(seed: FleetThread) -> None:
    marker = f"/log-{time.monotonic_ns()}"
    pods = seed.runtime.pods()
    for pod in pods:
        get(pod.address, pod.port, f"{marker}/{pod.name}")
    deadline = time.monotonic() + 5
    found: dict[str, dict[str, Any]] = {}
    while len(found) < len(pods) and time.monotonic() < deadline:
        time.sleep(0.1)
        for entry in seed.log_entries():
            payload = entry.get("jsonPayload", {})
            if str(payload.get("path", "")).startswith(marker):
                found[entry["resource"]["labels"]["pod_name"]] = entry
    assert set(found) == {p.name for p in pods}
    for pod in pods:
        entry = found[pod.name]
        assert entry["resource"] == {
            "type": "k8s_container",
            "labels": {
                "project_id": "sandbox-mc-gateway",
                "location": ZONES[pod.cluster],
                "cluster_name": pod.cluster,
                "namespace_name": "store",
                "pod_name": pod.name,
                "container_name": "whereami",
            },
        }
        assert entry["logName"] == "projects/sandbox-mc-gateway/logs/stdout"
        assert entry["severity"] == "INFO"
        assert entry["jsonPayload"]["path"] == f"{marker}/{pod.name}"
        assert entry["jsonPayload"]["status"] == 200
    path = seed.runtime.log_path
    assert path is not None and path.parent == seed.log_dir
    assert re.fullmatch(rf"containers-\d{{8}}T\d{{6}}\.\d{{6}}Z-{os.getpid()}\.jsonl", path.name)


def test_stop_cluster_removes_its_endpoints_and_fires_changes(own: FleetThread) -> None:
    rt = own.runtime
    east = [p for p in rt.pods() if p.cluster == "gke-east-1"]

    async def stop_and_watch() -> bool:
        waiter = asyncio.create_task(rt.wait_changed())
        await asyncio.sleep(0)
        await rt.stop_cluster("gke-east-1")
        await asyncio.wait_for(waiter, 1)
        return waiter.done()

    assert own.call(stop_and_watch())
    slices = rt.endpoint_slices()
    assert slices["gke-east-1"] == ()
    assert all(len(s.endpoints) == 2 for s in slices["gke-west-1"])
    merged = rt.with_endpoints(own.resources)
    assert merged.cluster("gke-east-1").endpoint_slices == ()
    assert [p.ready for p in rt.pods()] == [True, True, False, False]
    assert not any(alive(p.pid) for p in east)
    assert refused(east[0].address, east[0].port)
    with pytest.raises(errors.FleetError, match="no cluster 'gke-north-1'"):
        own.call(rt.stop_cluster("gke-north-1"))


def test_kill_pod_marks_it_not_ready(own: FleetThread) -> None:
    rt = own.runtime
    victim = rt.pods()[0]
    seen = rt.version
    own.call(rt.kill_pod(victim.name))
    assert rt.version > seen
    own.call(rt.wait_changed(since=seen), timeout=1)  # stale version: returns at once
    assert not alive(victim.pid)
    after = {p.name: p for p in rt.pods()}
    assert not after[victim.name].ready
    assert sum(p.ready for p in after.values()) == 3
    west = {s.service_name: s for s in rt.endpoint_slices()["gke-west-1"]}
    assert [e.addresses for e in west["store"].endpoints] == [[rt.pods()[1].address]]
    with pytest.raises(errors.FleetError, match="no pod 'nope'"):
        own.call(rt.kill_pod("nope"))


def test_close_leaves_no_process(tmp_path: Path) -> None:
    f = FleetThread(tmp_path, first_octet=21).start()
    pids = [p.pid for p in f.runtime.pods()]
    assert all(alive(pid) for pid in pids)
    f.close()
    assert not any(alive(pid) for pid in pids)
    # Every pod's output reached the container log before close() returned.
    assert {e["resource"]["labels"]["pod_name"] for e in f.log_entries()} == {
        p.name for p in f.runtime.pods()
    }


def test_non_runnable_image_starts_nothing(tmp_path: Path) -> None:
    res = fleet(("c1", (deployment("web", image="nginx:1.25"),), ()))
    f = FleetThread(tmp_path, res)
    try:
        with pytest.raises(errors.NotRunnableError, match="Deployment default/web") as caught:
            f.start()
        assert "mcgw.dev/command" in str(caught.value)
        assert f.runtime.pods() == ()
    finally:
        f.close()


def test_command_annotation_runs_any_image(tmp_path: Path) -> None:
    d = deployment(
        "api",
        image="example.com/api:2",
        annotations={"mcgw.dev/command": f"{sys.executable} -m mcgw.store"},
        env=[{"name": "METADATA", "value": "custom"}, {"name": "ECHO_HEADERS", "value": "True"}],
        ports=[{"containerPort": 9090, "name": "http"}],
    )
    svc = service("api", {"app": "api"}, [{"port": 80, "targetPort": "http"}])
    f = FleetThread(tmp_path, fleet(("c1", (d,), (svc,))), first_octet=31)
    try:
        f.start()
        (pod,) = f.runtime.pods()
        answer = get(pod.address, 9090)
        assert (answer["metadata"], answer["cluster_name"]) == ("custom", "c1")
        assert answer["headers"]["Host"] == "store.example.com"
        (s,) = f.runtime.endpoint_slices()["c1"]
        assert s.metadata.labels[endpoints.MANAGED_BY_LABEL] == endpoints.MANAGED_BY
        assert [(p.port, e.addresses) for p in s.ports for e in s.endpoints] == [
            (9090, [pod.address])
        ]
    finally:
        f.close()


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            "-c \"import sys; print('no config here', file=sys.stderr); sys.exit(3)\"",
            r"exited while starting \(main exit code 3\); last stderr lines:\n    no config here",
        ),
        ("-c 'import time; time.sleep(30)'", r"did not accept connections on 127\.41\.0\.2:8080"),
    ],
    ids=["exits", "never-listens"],
)
def test_failed_start_stops_everything(tmp_path: Path, command: str, expected: str) -> None:
    d = deployment(
        "bad", image="bad:1", annotations={"mcgw.dev/command": f"{sys.executable} {command}"}
    )
    f = FleetThread(tmp_path, fleet(("c1", (d,), ())), ready_timeout_s=1.0, first_octet=41)
    try:
        with pytest.raises(errors.PodStartError, match=expected):
            f.start()
        assert not any(alive(p.pid) for p in f.runtime.pods())
    finally:
        f.close()


def test_busy_address_is_refused_before_starting(seed: FleetThread, tmp_path: Path) -> None:
    # Same addresses as the running SEED fleet: the probe must not mistake its pods for ours.
    f = FleetThread(tmp_path)
    try:
        with pytest.raises(
            errors.PodStartError, match=r"first_octet.*127\.1\.0\.2:8080 \(Address already in use\)"
        ):
            f.start()
        assert f.runtime.pods() == ()
    finally:
        f.close()


SAFETY_NET_SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from mcgw.fleet import runtime
sys.path.insert(0, sys.argv[2])
from fleetkit import example

async def main():
    rt = runtime.FleetRuntime(example(), Path(sys.argv[1]), first_octet=51)
    await rt.start()
    print(json.dumps([p.pid for p in rt.pods()]), flush=True)
    globals()["leaked"] = rt  # never closed: only the safety net can stop its pods
    raise RuntimeError("the caller crashed")

asyncio.run(main())
"""


def test_safety_net_kills_pods_when_the_owner_exits_without_close(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SAFETY_NET_SCRIPT, str(tmp_path), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1 and "the caller crashed" in proc.stderr
    pids = json.loads(proc.stdout)
    assert len(pids) == 4
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids)


def _processes_with(marker: str) -> list[int]:
    """PIDs whose command line contains ``marker`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(entry.name))
    return found


def test_children_of_an_exited_container_command_are_stopped_too(tmp_path: Path) -> None:
    # The command exits at once but leaves a child behind in its process group, as a
    # shell script that backgrounds its server would: the pod's stop must reach it.
    marker = f"mcgw-orphan-{os.getpid()}"
    child = f"import time; time.sleep(60)  # {marker}"
    spawn = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', '{child}'])"
    command = f'{sys.executable} -c "{spawn}"'
    d = deployment("orphan", image="orphan:1", annotations={"mcgw.dev/command": command})
    f = FleetThread(tmp_path, fleet(("c1", (d,), ())), ready_timeout_s=1.0, first_octet=43)
    try:
        with pytest.raises(errors.PodStartError):
            f.start()
    finally:
        f.close()
    deadline = time.monotonic() + 5
    while _processes_with(marker):
        assert time.monotonic() < deadline, "the container's child outlived the fleet"
        time.sleep(0.05)

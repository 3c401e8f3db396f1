"""Pods that die are restarted (restartPolicy: Always); pods stopped on purpose are not.

Real processes: the SEED fleet on its own address block, with a short back-off so the
tests wait fractions of a second rather than the default second.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleetkit import example
from test_runtime import FleetThread, alive, get, refused

from mcgw.fleet import errors, pods, runtime

FAST = pods.Backoff(initial_s=0.2, max_s=1.0, reset_after_s=30.0)


@pytest.fixture
def restarting(tmp_path: Path) -> Iterator[tuple[FleetThread, list[str]]]:
    """A SEED fleet of the test's own (127.71-72.*) that restarts quickly, with its events."""
    events: list[str] = []
    f = FleetThread(tmp_path, first_octet=71, restart=FAST, on_event=events.append)
    try:
        yield f.start(), events
    finally:
        f.close()


def wait_for(predicate: object, timeout: float = 15.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_killed_pod_comes_back_ready_with_restart_count(
    restarting: tuple[FleetThread, list[str]],
) -> None:
    own, events = restarting
    rt = own.runtime
    victim = rt.pods()[0]
    assert victim.restarts == 0
    seen = rt.version
    # SIGKILL from outside, as the OOM killer would: the runtime is not told.
    os.killpg(victim.pid, signal.SIGKILL)

    def back() -> bool:
        now = {p.name: p for p in rt.pods()}[victim.name]
        return now.ready and now.pid != victim.pid

    wait_for(back)
    after = {p.name: p for p in rt.pods()}[victim.name]
    assert after.restarts == 1
    assert after.address == victim.address and after.port == victim.port
    assert not alive(victim.pid) and alive(after.pid)
    assert rt.version >= seen + 2  # out of the Services, then back in
    west = {s.service_name: s for s in rt.endpoint_slices()["gke-west-1"]}
    assert sorted(e.addresses[0] for e in west["store"].endpoints) == sorted(
        p.address for p in rt.pods() if p.cluster == "gke-west-1"
    )
    # The same pod answers again, as itself.
    assert get(after.address, after.port)["pod_name"] == victim.name
    assert any("died" in e and victim.name in e and "restart 1" in e for e in events)
    assert any("ready again (restartCount 1)" in e for e in events)
    others = [p for p in rt.pods() if p.name != victim.name]
    assert all(p.restarts == 0 for p in others)


def test_back_off_grows_with_repeated_crashes(
    restarting: tuple[FleetThread, list[str]],
) -> None:
    own, events = restarting
    rt = own.runtime
    name = rt.pods()[1].name
    for expected in (1, 2):
        pid = {p.name: p for p in rt.pods()}[name].pid
        own.call(rt.kill_pod(name))
        wait_for(lambda old=pid: (p := {q.name: q for q in rt.pods()}[name]).ready and p.pid != old)
        assert {p.name: p for p in rt.pods()}[name].restarts == expected
    waits = [
        e.split("restarting in ")[1].split(" s")[0] for e in events if name in e and "died" in e
    ]
    # It ran under reset_after_s between the crashes: the second wait doubles.
    assert [float(w) for w in waits] == [0.2, 0.4]


def test_stopped_cluster_stays_stopped(restarting: tuple[FleetThread, list[str]]) -> None:
    own, events = restarting
    rt = own.runtime
    east = [p for p in rt.pods() if p.cluster == "gke-east-1"]
    own.call(rt.stop_cluster("gke-east-1"))
    # Longer than the back-off, several times over: nothing may come back.
    time.sleep(FAST.max_s * 1.5)
    now = [p for p in rt.pods() if p.cluster == "gke-east-1"]
    assert [(p.ready, p.restarts) for p in now] == [(False, 0), (False, 0)]
    assert not any(alive(p.pid) for p in east)
    assert refused(east[0].address, east[0].port)
    assert rt.endpoint_slices()["gke-east-1"] == ()
    assert not [e for e in events if "gke-east-1" in e]


def test_pod_dead_when_its_cluster_is_stopped_is_not_restarted(tmp_path: Path) -> None:
    # A long back-off: the pod is waiting to be restarted when its cluster is stopped.
    slow = pods.Backoff(initial_s=2.0, max_s=2.0)
    own = FleetThread(tmp_path, first_octet=73, restart=slow).start()
    try:
        rt = own.runtime
        victim = next(p for p in rt.pods() if p.cluster == "gke-east-1")
        own.call(rt.kill_pod(victim.name))
        own.call(rt.stop_cluster("gke-east-1"))
        time.sleep(2.5)
        now = {p.name: p for p in rt.pods()}[victim.name]
        assert (now.ready, now.restarts, now.pid) == (False, 0, victim.pid)
        assert refused(victim.address, victim.port)
    finally:
        own.close()


def test_no_restart_policy_leaves_dead_pods_dead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The address block from the environment, as a soak run's `mcgw up` gets it.
    monkeypatch.setenv(runtime.FIRST_OCTET_ENV, "75")
    own = FleetThread(tmp_path, restart=None).start()
    try:
        rt = own.runtime
        victim = rt.pods()[0]
        assert [p.address for p in rt.pods()][::2] == ["127.75.0.2", "127.76.0.2"]
        own.call(rt.kill_pod(victim.name))
        time.sleep(0.5)
        now = {p.name: p for p in rt.pods()}[victim.name]
        assert (now.ready, now.restarts) == (False, 0)
    finally:
        own.close()


def test_close_during_back_off_leaves_no_process(tmp_path: Path) -> None:
    own = FleetThread(tmp_path, first_octet=77, restart=pods.Backoff(initial_s=0.3))
    own.start()
    rt = own.runtime
    victim = rt.pods()[0]
    own.call(rt.kill_pod(victim.name))
    own.close()  # while the pod waits for its restart
    time.sleep(0.5)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((victim.address, victim.port))  # nobody came back to listen
    assert not alive(victim.pid)


@pytest.mark.parametrize(
    ("crashes", "ran_s", "expected"),
    [
        (0, 0.0, (1.0, 1)),
        (1, 0.5, (2.0, 2)),
        (4, 0.5, (16.0, 5)),
        (5, 0.5, (30.0, 6)),
        (60, 0.5, (30.0, 61)),  # capped, and no float overflow
        (7, 10.0, (1.0, 1)),  # ran long enough: the crashes are forgotten
    ],
)
def test_backoff_delays(crashes: int, ran_s: float, expected: tuple[float, int]) -> None:
    assert pods.Backoff().delay(crashes, ran_s) == expected


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(errors.FleetError, match="initial"):
        pods.Backoff(initial_s=5, max_s=1)
    assert pods.Backoff(initial_s=1, max_s=30, reset_after_s=10) == runtime.DEFAULT_RESTART


@pytest.mark.parametrize("value", ["0", "255", "x"])
def test_bad_first_octet_from_the_environment(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(runtime.FIRST_OCTET_ENV, value)
    with pytest.raises(errors.FleetError, match="from 1 to 254"):
        runtime.FleetRuntime(example(), tmp_path)


def test_events_are_optional(tmp_path: Path) -> None:
    # Without on_event the restart still happens (nothing is reported anywhere).
    own = FleetThread(tmp_path, first_octet=79, restart=FAST).start()
    try:
        rt = own.runtime
        victim = rt.pods()[0]
        own.call(rt.kill_pod(victim.name))
        wait_for(lambda: {p.name: p for p in rt.pods()}[victim.name].restarts == 1)
        wait_for(lambda: {p.name: p for p in rt.pods()}[victim.name].ready)
    finally:
        own.close()

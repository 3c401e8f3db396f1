"""SEED.md's scenario for real: fleet processes, the gateway, load, fail-over, the query.

Nothing is mocked: pods are OS processes on their own loopback addresses, the gateway
binds a real socket, the load tester speaks HTTP over it, the query runs in DuckDB.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from scenario_kit import HOST, get, read_entries, start_store

from mcgw.analytics import query
from mcgw.cli import demo
from mcgw.loadtest import metrics, runner
from mcgw.loadtest import options as load_options
from mcgw.testing.runner import run


def _load(
    address: tuple[str, int], *, vus: int, seconds: float, sleep_s: float
) -> load_options.LoadOptions:
    return load_options.LoadOptions(
        url=f"http://{HOST}/",
        vus=vus,
        duration_s=seconds,
        sleep_s=sleep_s,
        host_map=((HOST, f"{address[0]}:{address[1]}"),),
        breakdown=True,
        graceful_stop_s=5,
    )


def _value(summary: metrics.Summary, name: str, key: str) -> int:
    found = summary.metric(name)
    assert found is not None, name
    return int(found.get(key))


def _served(summary: metrics.Summary) -> dict[str, int]:
    return {row.cluster: row.responses for row in summary.breakdown}


def test_paths_are_served_by_the_clusters_seed_shows(tmp_path: Path) -> None:
    async def main() -> None:
        running = await start_store(tmp_path)
        try:
            address = running.address(80)
            answers = {p: await get(address, p) for p in ("/", "/west", "/east", "/west/x")}
        finally:
            await running.close()
        for path, cluster, zone in (
            ("/", "gke-west-1", "us-west1-a"),
            ("/west", "gke-west-1", "us-west1-a"),
            ("/west/x", "gke-west-1", "us-west1-a"),
            ("/east", "gke-east-1", "us-east1-b"),
        ):
            status, body = answers[path]
            assert status == 200, path
            assert (body["cluster_name"], body["zone"]) == (cluster, zone), path
            assert body["host_header"] == HOST
            echo = body["echo"]
            assert isinstance(echo, dict)
            assert echo["path"] == path  # the backend saw the path untouched

    run(main(), timeout_s=60)


def test_unknown_host_gets_404_from_the_gateway(tmp_path: Path) -> None:
    async def main() -> tuple[int, dict[str, object]]:
        running = await start_store(tmp_path)
        try:
            return await get(running.address(80), "/", host="other.example.com")
        finally:
            await running.close()

    status, _ = run(main(), timeout_s=60)
    assert status == 404


def test_killing_a_pod_under_load_fails_no_request(tmp_path: Path) -> None:
    async def main() -> metrics.Summary:
        running = await start_store(tmp_path)
        try:
            assert running.fleet is not None
            west = [p for p in running.fleet.pods() if p.cluster == "gke-west-1"]
            load = asyncio.create_task(
                runner.run(_load(running.address(80), vus=10, seconds=4, sleep_s=0.01))
            )
            await asyncio.sleep(1.5)
            await running.fleet.kill_pod(west[0].name)  # SIGKILL: no goodbye
            return await load
        finally:
            await running.close()

    summary = run(main(), timeout_s=60)
    assert _value(summary, "http_reqs", "count") > 200
    assert _value(summary, "http_req_failed", "passes") == 0
    # The other pod of the closest region took over: no fail-over to the east.
    assert set(_served(summary)) == {"gke-west-1"}


def test_stopping_the_closest_cluster_under_load_fails_over_with_no_failed_request(
    tmp_path: Path,
) -> None:
    async def main() -> tuple[metrics.Summary, dict[str, object]]:
        running = await start_store(tmp_path)
        try:
            assert running.fleet is not None
            address = running.address(80)
            load = asyncio.create_task(runner.run(_load(address, vus=10, seconds=4, sleep_s=0.01)))
            await asyncio.sleep(1.5)
            await running.fleet.stop_cluster("gke-west-1")
            summary = await load
            _, after = await get(address, "/")
            return summary, after
        finally:
            await running.close()

    summary, after = run(main(), timeout_s=60)
    assert _value(summary, "http_req_failed", "passes") == 0
    served = _served(summary)
    assert served["gke-west-1"] > 0 and served["gke-east-1"] > 0
    assert after["cluster_name"] == "gke-east-1"


def test_seed_query_counts_the_runs_container_lines_per_location(tmp_path: Path) -> None:
    async def main() -> metrics.Summary:
        running = await start_store(tmp_path)
        try:
            summary = await runner.run(_load(running.address(80), vus=5, seconds=2, sleep_s=0.05))
            await running.flush_logs()
            return summary
        finally:
            await running.close()

    summary = run(main(), timeout_s=60)
    requests = _value(summary, "http_reqs", "count")
    result = query.run(demo.SEED_QUERY, tmp_path, shift_to=demo.SEED_WINDOW_START)
    counts = {str(location): int(n) for location, n in result.rows}

    entries = read_entries(tmp_path)
    expected: dict[str, int] = {}
    for entry in entries:
        resource = entry["resource"]
        assert isinstance(resource, dict)
        if resource["type"] == "k8s_container":
            location = resource["labels"]["location"]
            expected[location] = expected.get(location, 0) + 1
    assert counts == expected
    assert counts["us-west1-a"] > requests > counts["us-east1-b"]
    access = [e for e in entries if e["resource"]["type"] == "http_load_balancer"]  # type: ignore[index]
    assert len(access) == requests
    payload = access[0]["jsonPayload"]
    assert isinstance(payload, dict)
    assert (payload["cluster"], payload["zone"], payload["reason"]) == (
        "gke-west-1",
        "us-west1-a",
        "closest",
    )

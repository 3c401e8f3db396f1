"""Requests entering from several regions at once, and a cluster lost and recovered under load.

The SEED fleet (examples/store) runs for real, its Fleet given client networks:
clients on 127.10.0.0/16 enter in Tokyo (asia-northeast1, the gateway's location),
clients on 127.20.0.0/16 in us-east1. Clients bind those source addresses on loopback.
"""

from __future__ import annotations

import asyncio
import collections
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from scenario_kit import HOST, STORE_EXAMPLE

from mcgw.cli import run as run_cli
from mcgw.testing.client import RawClient
from mcgw.testing.runner import run

TOKYO_CLIENTS = "127.10.0"
EAST_CLIENTS = "127.20.0"
CLIENT_REGIONS = """\
    clientRegions:
    - {cidr: 127.10.0.0/16, region: asia-northeast1}
    - {cidr: 127.20.0.0/16, region: us-east1}
"""


def fleet_with_client_regions(folder: Path) -> Path:
    """A copy of examples/store whose Fleet maps the two client networks."""
    target = folder / "store"
    shutil.copytree(STORE_EXAMPLE, target)
    fleet = target / "fleet.yaml"
    text = fleet.read_text()
    anchor = "    location: asia-northeast1\n"
    assert anchor in text
    fleet.write_text(text.replace(anchor, anchor + CLIENT_REGIONS))
    return target


async def start(tmp_path: Path, *, simulate_latency: bool) -> run_cli.Running:
    return await run_cli.start(
        run_cli.RunOptions(
            paths=(fleet_with_client_regions(tmp_path),),
            port_map=((80, 0),),
            log_dir=tmp_path / "logs",
            watch=False,
            simulate_latency=simulate_latency,
            debug_headers=True,
        ),
        say=lambda _: None,
    )


@dataclass
class Served:
    """What one group of clients saw: (monotonic time, cluster or "" on failure, reason)."""

    answers: list[tuple[float, str, str]] = field(default_factory=list)

    def clusters(self, since: float = 0.0, until: float = float("inf")) -> collections.Counter[str]:
        return collections.Counter(c for t, c, _ in self.answers if since <= t < until)

    @property
    def failed(self) -> int:
        return sum(1 for _, c, _ in self.answers if not c)


async def clients(
    address: tuple[str, int], network: str, count: int, stop: asyncio.Event, served: Served
) -> None:
    """``count`` keep-alive clients from ``network``.1…, each GETting / until ``stop``."""

    async def one(source: str) -> None:
        c: RawClient | None = None
        while not stop.is_set():
            try:
                if c is None:
                    reader, writer = await asyncio.open_connection(*address, local_addr=(source, 0))
                    c = RawClient(reader, writer)
                r = await c.request(host=HOST, timeout_s=10)
            except (OSError, asyncio.IncompleteReadError, ConnectionError, TimeoutError):
                served.answers.append((time.monotonic(), "", "error"))
                c = None
                continue
            cluster = json.loads(r.body)["cluster_name"] if r.status == 200 else ""
            served.answers.append((time.monotonic(), cluster, r.header("x-mcgw-reason") or ""))
            if r.header("connection") == "close":
                await c.close()
                c = None
            await asyncio.sleep(0.01)
        if c is not None:
            await c.close()

    await asyncio.gather(*(one(f"{network}.{i + 1}") for i in range(count)))


def test_two_entry_regions_at_once_follow_their_rankings(tmp_path: Path) -> None:
    async def main() -> tuple[Served, Served]:
        running = await start(tmp_path, simulate_latency=True)
        tokyo, east = Served(), Served()
        try:
            stop = asyncio.Event()
            address = running.address(80)
            load = asyncio.gather(
                clients(address, TOKYO_CLIENTS, 4, stop, tokyo),
                clients(address, EAST_CLIENTS, 4, stop, east),
            )
            await asyncio.sleep(3.0)
            stop.set()
            await load
        finally:
            await running.close()
        return tokyo, east

    tokyo, east = run(main(), timeout_s=90)
    print(f"from Tokyo {dict(tokyo.clusters())}, from us-east1 {dict(east.clusters())}")
    assert tokyo.failed == east.failed == 0
    # From Tokyo us-west1 is closest (≈111 ms against ≈159 ms); from us-east1, us-east1.
    assert set(tokyo.clusters()) == {"gke-west-1"} and len(tokyo.answers) >= 20
    assert set(east.clusters()) == {"gke-east-1"} and len(east.answers) >= 20
    assert {reason for _, _, reason in tokyo.answers + east.answers} == {"closest"}


def test_a_stopped_cluster_fails_over_and_back_with_no_failed_request(tmp_path: Path) -> None:
    async def main() -> tuple[Served, float, float, float]:
        running = await start(tmp_path, simulate_latency=False)
        tokyo = Served()
        try:
            assert running.fleet is not None
            stop = asyncio.Event()
            load = asyncio.create_task(clients(running.address(80), TOKYO_CLIENTS, 6, stop, tokyo))
            await asyncio.sleep(1.0)
            stopped = time.monotonic()
            await running.fleet.stop_cluster("gke-west-1")
            await asyncio.sleep(1.5)
            restarted = time.monotonic()
            await running.fleet.start_cluster("gke-west-1")
            # Back once the health checks pass again (GKE's defaults: 2 × 5 s at most).
            deadline = time.monotonic() + 20.0
            back = 0.0
            while time.monotonic() < deadline and not back:
                await asyncio.sleep(0.2)
                recent = tokyo.clusters(since=time.monotonic() - 0.5)
                if recent and set(recent) == {"gke-west-1"}:
                    back = time.monotonic()
            await asyncio.sleep(0.5)
            stop.set()
            await load
        finally:
            await running.close()
        return tokyo, stopped, restarted, back

    tokyo, stopped, restarted, back = run(main(), timeout_s=120)
    first_east = min(t for t, c, _ in tokyo.answers if c == "gke-east-1")
    print(
        f"{len(tokyo.answers)} GETs, {tokyo.failed} failed; on east "
        f"{(first_east - stopped) * 1000:.0f} ms after the stop began; back on west "
        f"{back - restarted:.1f} s after the restart began; split {dict(tokyo.clusters())}"
    )
    assert tokyo.failed == 0, [a for a in tokyo.answers if not a[1]][:5]
    assert set(tokyo.clusters(until=stopped)) == {"gke-west-1"}
    during = tokyo.clusters(since=stopped + 0.5, until=restarted)
    assert set(during) == {"gke-east-1"} and during["gke-east-1"] > 20
    assert back, "traffic did not move back to gke-west-1 within 20 s"
    assert set(tokyo.clusters(since=back)) == {"gke-west-1"}
    # (Once the stopped pods leave the EndpointSlices, us-east1 is the closest region
    # that has endpoints: the reason is then "closest", as on GKE.)
    assert {r for t, _, r in tokyo.answers if t < stopped} == {"closest"}

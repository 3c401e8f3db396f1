"""Measured round trips rank the regions: the gateway's estimate says one thing, the
network another, and the measurement wins.

The SEED fleet runs behind latency relays whose delays come from a Fleet copy that
puts us-east1 20 ms and us-west1 150 ms from Tokyo; the gateway is given the table
translated from the unchanged example, whose estimates (≈111 ms to us-west1, ≈159 ms
to us-east1) rank us-west1 first. With ``measure_rtt`` the gateway probes the relays
and serves from us-east1, the region that is really nearer.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from mcgw.config import load
from mcgw.dataplane import server
from mcgw.dataplane.settings import ProxySettings
from mcgw.fleet import runtime
from mcgw.testing.client import RawClient
from mcgw.testing.runner import run
from mcgw.translate import translator

STORE = Path(__file__).resolve().parents[2] / "examples" / "store"
LATENCIES = """\
  latencies:
  - {from: asia-northeast1, to: us-east1, rttMs: 20}
  - {from: asia-northeast1, to: us-west1, rttMs: 150}
  network: {simulateLatency: true}
"""


def test_measured_rtt_ranks_the_really_nearer_region_first(tmp_path: Path) -> None:
    real = tmp_path / "real"
    shutil.copytree(STORE, real)
    fleet_file = real / "fleet.yaml"
    fleet_file.write_text(fleet_file.read_text() + LATENCIES)
    as_estimated = load.load([STORE]).resources

    async def main() -> tuple[dict[str, float], list[tuple[str | None, str | None]]]:
        fleet = runtime.FleetRuntime(load.load([real]).resources, tmp_path / "logs")
        gateway = server.Gateway(
            ProxySettings(
                port_map=((80, 0),),
                measure_rtt=True,
                rtt_probe_interval_s=0.5,
                active_health_checks=False,
                debug_headers=True,
            )
        )
        try:
            await fleet.start()
            table = translator.translate(fleet.with_endpoints(as_estimated)).table
            assert [r for r, _ in table.locality.region_rtt_ms] == ["us-west1", "us-east1"]
            await gateway.apply(table)
            assert gateway.rtt is not None
            for _ in range(100):
                await asyncio.sleep(0.05)
                if len(gateway.rtt.measured) == 2:
                    break
            measured = dict(gateway.rtt.measured)
            (address,) = gateway.addresses().values()
            c = await RawClient.connect(address)
            seen = []
            for _ in range(4):
                r = await c.request(host="store.example.com", timeout_s=10)
                assert r.status == 200
                seen.append((r.header("x-mcgw-cluster"), r.header("x-mcgw-reason")))
            ranking = r.header("x-mcgw-ranking") or ""
            await c.close()
            assert ranking.startswith("us-east1:") and ",us-west1:" in ranking
            return measured, seen
        finally:
            await gateway.close(timeout_s=1.0)
            await fleet.close()

    measured, seen = run(main(), timeout_s=60)
    print(f"measured round trips: {measured}")
    assert 15 < measured["us-east1"] < 60
    assert 140 < measured["us-west1"] < 200
    assert seen == [("gke-east-1", "closest")] * 4

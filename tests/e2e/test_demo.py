"""`make demo` runs `mcgw demo`: the whole SEED.md scenario, as a user sees it."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from scenario_kit import ROOT


def test_demo_runs_the_seed_scenario_and_checks_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mcgw", "demo", "--duration", "3s", "--log-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "FAILED" not in out
    # Routing proven by the whereami answers.
    assert (
        'GET /      → 200 via=1.1 mcgw {"cluster_name": "gke-west-1", "zone": "us-west1-a"' in out
    )
    assert (
        'GET /east  → 200 via=1.1 mcgw {"cluster_name": "gke-east-1", "zone": "us-east1-b"' in out
    )
    # The k6-layout summary, the verbatim query and its per-location counts.
    assert "* default: 30 looping VUs for 3s (gracefulStop: 30s)" in out
    assert "http_req_failed................: 0.00%" in out
    assert "`sandbox-mc-gateway.global._Default._AllLogs`" in out
    assert "us-west1-a" in out and "us-east1-b" in out
    # Fail-over with no failed request, and nothing left running.
    assert "GET /      → 200 from gke-east-1 (us-east1-b)" in out
    assert ", 0 failed; served by" in out
    assert "every process the demo started has stopped" in out
    # It ends by pointing to the dashboard and printing the distribution it counted.
    assert "/dashboard  (Prometheus: http://127.0.0.1:" in out
    table = out.split("the distribution it counted")[1]
    rows = [line.split() for line in table.splitlines() if line.startswith("gke-")]
    counted = {row[0]: int(row[2]) for row in rows}
    assert counted["gke-west-1"] > 0 and counted["gke-east-1"] > 0
    assert list(tmp_path.glob("containers-*.jsonl")) and list(tmp_path.glob("access-*.jsonl"))
    pods = [line.split(" on ")[1] for line in out.splitlines() if line.startswith("  pod ")]
    assert len(pods) == 4
    for pod in pods:  # every pod process is gone: nothing answers on its address
        host, port = pod.rsplit(":", 1)
        with pytest.raises(OSError):
            socket.create_connection((host, int(port)), timeout=1).close()

"""The access log's counts on /metrics: what its writer process acknowledged."""

from __future__ import annotations

from pathlib import Path

import admin_kit
from prometheus_client.parser import text_string_to_metric_families

from mcgw.dataplane import accesslog
from mcgw.testing.runner import run as run_async


def _values(text: str, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[sample.labels.get("outcome", "")] = sample.value
    return out


def test_metrics_show_access_log_records_written(tmp_path: Path) -> None:
    async def main() -> None:
        async with admin_kit.serving(tmp_path) as running:
            assert running.admin is not None
            await admin_kit.send(running.address(80), {"/": 7})
            await running.flush_logs()
            _, _, body = await admin_kit.get(running.admin.address, "/metrics")
            text = body.decode()
            records = _values(text, "mcgw_access_log_records_total")
            assert records == {"written": 7, "dropped": 0, "sampled_out": 0}
            assert _values(text, "mcgw_access_log_writer_restarts_total") == {"": 0}
            (size,) = _values(text, "mcgw_access_log_written_bytes_total").values()
            on_disk = sum(p.stat().st_size for p in (tmp_path / "logs").glob("access-*"))
            assert size == on_disk > 0

    run_async(main())


def test_stats_of_workers_add_up() -> None:
    one = accesslog.AccessLogStats(written=5, dropped=1, sampled_out=2, bytes=500, restarts=1)
    two = accesslog.AccessLogStats(written=3, bytes=300)
    total = accesslog.AccessLogStats.total([one.to_wire(), two.to_wire()])
    assert total == accesslog.AccessLogStats(8, 1, 2, 800, 1)
    assert accesslog.AccessLogStats.total([]) == accesslog.AccessLogStats()

"""``/metrics``: the Prometheus text format, built on each scrape.

prometheus_client does the formatting; its own counters are not used, because
updating them per request costs a lock and a label look-up. A custom collector
instead folds :mod:`mcgw.dataplane.metrics` cells into metric families when scraped.

Label sets are chosen to keep cardinality bounded: the request counter carries the
endpoint and status code, the latency histogram (twenty-one series per label set)
stops at cluster and zone, and errors carry the statusDetails instead of the code.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    core,
    exposition,
    gc_collector,
    platform_collector,
    process_collector,
    registry,
)

from mcgw.admin import sources, stats
from mcgw.dataplane import accesslog, balancer, metrics

CONTENT_TYPE = exposition.CONTENT_TYPE_LATEST

_REQUEST_LABELS = ("gateway", "route", "backend", "cluster", "zone", "endpoint", "code")
_DURATION_LABELS = ("gateway", "route", "cluster", "zone")
_ERROR_LABELS = ("gateway", "route", "cluster", "zone", "endpoint", "details")
_ENDPOINT_LABELS = ("backend", "cluster", "zone", "endpoint", "pod")
_GROUP_LABELS = ("backend", "cluster", "region", "zone")
_LE = tuple(repr(b) for b in metrics.BUCKETS_S)


class Collector(registry.Collector):
    """Every mcgw metric, read from ``src`` at collection time."""

    def __init__(self, src: sources.Sources) -> None:
        self.src = src

    def collect(self) -> Iterator[core.Metric]:
        yield from self._requests()
        yield from self._endpoints()
        yield from self._groups()
        yield from self._config()
        yield from self._access_log()

    def _requests(self) -> Iterator[core.Metric]:
        requests: dict[tuple[str, ...], int] = {}
        errors: dict[tuple[str, ...], int] = {}
        durations: dict[tuple[str, ...], stats.Totals] = {}
        for key, cell in self.src.cells():
            gateway = sources.gateway_of(key.listener)
            cluster, _, zone, _, endpoint, _ = key.picked
            labels = (gateway, key.route, key.backend, cluster, zone, endpoint, str(key.status))
            requests[labels] = requests.get(labels, 0) + cell.count
            error = metrics.is_error(key.status)
            if error:
                elabels = (gateway, key.route, cluster, zone, endpoint, key.details)
                errors[elabels] = errors.get(elabels, 0) + cell.count
            dlabels = (gateway, key.route, cluster, zone)
            totals = durations.get(dlabels)
            if totals is None:
                totals = durations[dlabels] = stats.Totals()
            totals.add(cell, error)
        family = core.CounterMetricFamily(
            "mcgw_http_requests",
            "HTTP requests answered (or abandoned: code 0) by the gateway.",
            labels=_REQUEST_LABELS,
        )
        for names, count in sorted(requests.items()):
            family.add_metric(names, count)
        yield family
        family = core.CounterMetricFamily(
            "mcgw_http_request_errors",
            "Requests answered 5xx or not answered, by Cloud Load Balancing statusDetails.",
            labels=_ERROR_LABELS,
        )
        for names, count in sorted(errors.items()):
            family.add_metric(names, count)
        yield family
        histogram = core.HistogramMetricFamily(
            "mcgw_http_request_duration_seconds",
            "Time from the first byte of a request to the end of its response.",
            labels=_DURATION_LABELS,
        )
        for names, totals in sorted(durations.items()):
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for le, n in zip(_LE, totals.buckets, strict=False):
                cumulative += n
                buckets.append((le, cumulative))
            buckets.append(("+Inf", totals.requests))
            histogram.add_metric(names, buckets, totals.sum_s)
        yield histogram
        gauge = core.GaugeMetricFamily(
            "mcgw_client_connections", "Open client connections (HTTP/1.1 and HTTP/2)."
        )
        gauge.add_metric((), self.src.gateway.connections)
        yield gauge

    def _endpoints(self) -> Iterator[core.Metric]:
        healthy = core.GaugeMetricFamily(
            "mcgw_endpoint_healthy",
            "1 if the endpoint may receive traffic as far as health checks and passive "
            "ejection are concerned.",
            labels=_ENDPOINT_LABELS,
        )
        ready = core.GaugeMetricFamily(
            "mcgw_endpoint_ready",
            "1 if the endpoint is ready (EndpointSlice condition).",
            labels=_ENDPOINT_LABELS,
        )
        snap = self.src.gateway.holder.current
        if snap is not None:
            health = self.src.gateway.health
            for backend in snap.table.backends:
                for group in backend.groups:
                    for ep in group.endpoints:
                        labels = (
                            backend.name,
                            group.cluster,
                            group.zone,
                            f"{ep.address}:{ep.port}",
                            ep.pod,
                        )
                        healthy.add_metric(labels, 1 if health.healthy(ep.address, ep.port) else 0)
                        ready.add_metric(labels, 1 if ep.ready else 0)
        yield healthy
        yield ready

    def _groups(self) -> Iterator[core.Metric]:
        rate = core.GaugeMetricFamily(
            "mcgw_backend_group_requests_per_second",
            "Requests per second a backend group served over the last ten seconds.",
            labels=_GROUP_LABELS,
        )
        capacity = core.GaugeMetricFamily(
            "mcgw_backend_group_capacity_requests_per_second",
            "maxRatePerEndpoint x healthy ready endpoints x capacityScaler "
            "(only for backends whose capacity is set).",
            labels=_GROUP_LABELS,
        )
        utilisation = core.GaugeMetricFamily(
            "mcgw_backend_group_utilization_ratio",
            "Requests per second over capacity (only for backends whose capacity is set).",
            labels=_GROUP_LABELS,
        )
        region_rate = core.GaugeMetricFamily(
            "mcgw_backend_region_requests_per_second",
            "The balancer's own rate per region of capacity-aware backends (1 s window).",
            labels=("backend", "region"),
        )
        span, _, recent = self.src.sampler.recent()
        rates = {k: (t.requests / span if span else 0.0) for k, t in recent.items()}
        for gkey, value in sorted(rates.items()):
            if gkey[1] != stats.NO_BACKEND:
                rate.add_metric(gkey, value)
        for group in group_capacities(self.src):
            capacity.add_metric(group.key, group.capacity)
            utilisation.add_metric(group.key, rates.get(group.key, 0.0) / group.capacity)
        snap = self.src.gateway.holder.current
        if snap is not None:
            for backend in snap.table.backends:
                for region, value in sorted(snap.balancer.rates(backend.name).items()):
                    region_rate.add_metric((backend.name, region), value)
        yield rate
        yield capacity
        yield utilisation
        yield region_rate

    def _config(self) -> Iterator[core.Metric]:
        src = self.src
        info = core.GaugeMetricFamily(
            "mcgw_config_info", "The route table version in force (value 1).", labels=("version",)
        )
        snap = src.gateway.holder.current
        if snap is not None:
            info.add_metric((snap.table.version,), 1)
        yield info
        reloads = core.CounterMetricFamily(
            "mcgw_config_reloads",
            "Configuration loads: applied (a new table in force) or rejected (invalid "
            "files, or a table that could not be put in force).",
            labels=("result",),
        )
        reloads.add_metric(("applied",), src.reloads.applied)
        reloads.add_metric(("rejected",), len(src.rejected()))
        yield reloads
        last = core.GaugeMetricFamily(
            "mcgw_config_last_reload_success_timestamp_seconds",
            "When the route table in force was applied (Unix time).",
        )
        last.add_metric((), src.reloads.last_applied_at)
        yield last
        started = core.GaugeMetricFamily(
            "mcgw_start_time_seconds", "When the gateway started counting (Unix time)."
        )
        counters = src.gateway.metrics
        started.add_metric((), 0.0 if counters is None else counters.started)
        yield started

    def _access_log(self) -> Iterator[core.Metric]:
        # Read if the data plane offers it (a Gateway or Workers do; a test double may not).
        counts = getattr(self.src.gateway, "access_log_stats", None)
        if not isinstance(counts, accesslog.AccessLogStats):
            return
        records = core.CounterMetricFamily(
            "mcgw_access_log_records",
            "Access-log records: written to disk, dropped (disk refused, writer process "
            "died before acknowledging, or too far behind) or sampled_out (backend "
            "logging policy).",
            labels=("outcome",),
        )
        records.add_metric(("written",), counts.written)
        records.add_metric(("dropped",), counts.dropped)
        records.add_metric(("sampled_out",), counts.sampled_out)
        yield records
        size = core.CounterMetricFamily(
            "mcgw_access_log_written_bytes", "Bytes of access-log lines written."
        )
        size.add_metric((), counts.bytes)
        yield size
        restarts = core.CounterMetricFamily(
            "mcgw_access_log_writer_restarts",
            "Access-log writer processes started in place of one that died.",
        )
        restarts.add_metric((), counts.restarts)
        yield restarts


class GroupCapacity:
    __slots__ = ("capacity", "key")

    def __init__(self, key: stats.GroupKey, capacity: float) -> None:
        self.key = key
        self.capacity = capacity


def group_capacities(src: sources.Sources) -> list[GroupCapacity]:
    """Capacity of each backend group whose backend has one (maxRatePerEndpoint set)."""
    snap = src.gateway.holder.current
    if snap is None:
        return []
    health = src.gateway.health
    out = []
    for backend in snap.table.backends:
        per_endpoint = backend.max_rate_per_endpoint * backend.capacity_scaler
        if per_endpoint >= balancer.UNLIMITED_RATE or per_endpoint <= 0:
            continue
        for group in backend.groups:
            healthy = sum(
                1 for ep in group.endpoints if ep.ready and health.healthy(ep.address, ep.port)
            )
            if healthy:
                key = (backend.name, group.cluster, group.region, group.zone)
                out.append(GroupCapacity(key, per_endpoint * healthy))
    return out


_RUNTIME_REGISTRY = registry.CollectorRegistry(auto_describe=False)
# (GCCollector insists on registering somewhere: not in prometheus_client's global REGISTRY.)
_RUNTIME = (
    process_collector.ProcessCollector(registry=_RUNTIME_REGISTRY),
    platform_collector.PlatformCollector(registry=_RUNTIME_REGISTRY),
    gc_collector.GCCollector(registry=_RUNTIME_REGISTRY),
)
"""prometheus_client's standard ``process_*`` (CPU, memory, open files, start time) and
``python_*`` families, as every Python exporter has them: of the process serving the
admin API (with ``--workers``, the main one)."""


def render(src: sources.Sources) -> bytes:
    """The text exposition of every metric."""
    reg = registry.CollectorRegistry(auto_describe=False)
    reg.register(Collector(src))
    for collector in _RUNTIME:
        reg.register(collector)
    return exposition.generate_latest(reg)

"""The JSON documents of the admin API (``/api/*``), built when asked.

Each function takes the :class:`sources.Sources` and returns plain data for
``json.dumps``; docs/admin.md describes every field.
"""

from __future__ import annotations

import time
from typing import Any

from mcgw.admin import exposition, sources, stats
from mcgw.ir import codec, table

SERIES = 120
"""Samples (seconds) of history /api/stats returns for the charts."""


def health(src: sources.Sources) -> dict[str, Any]:
    return {"status": "ok"}


def readiness(src: sources.Sources) -> tuple[bool, dict[str, Any]]:
    """Ready when a route table is in force, every listener is bound and the gateway
    is not draining."""
    snap = src.gateway.holder.current
    bound = src.gateway.addresses()
    wanted = [] if snap is None else [x.name for x in snap.table.listeners]
    missing = [name for name in wanted if name not in bound]
    draining = src.gateway.draining
    ready = snap is not None and not missing and not draining
    doc: dict[str, Any] = {
        "ready": ready,
        "version": "" if snap is None else snap.table.version,
        "listeners": {name: f"{host}:{port}" for name, (host, port) in sorted(bound.items())},
    }
    # Draining first: a draining gateway has closed its listeners on purpose, and a
    # load balancer should read "going away", not "broken".
    if draining:
        doc["reason"] = "draining"
    elif snap is None:
        doc["reason"] = "no route table yet"
    elif missing:
        doc["reason"] = f"listeners not bound: {', '.join(missing)}"
    return ready, doc


def _match_text(match: table.Match) -> str:
    parts = [f"{match.path.type.value} {match.path.value}"]
    if match.method:
        parts.append(f"method {match.method}")
    parts += [
        f"header {h.name}{'~' if h.type.value != 'Exact' else '='}{h.value}" for h in match.headers
    ]
    parts += [
        f"query {q.name}{'~' if q.type.value != 'Exact' else '='}{q.value}"
        for q in match.query_params
    ]
    return ", ".join(parts)


def routes(src: sources.Sources) -> dict[str, Any]:
    """The route table in force, each route with its HTTPRoute's conditions, and the
    statuses of every object the controller translated."""
    snap = src.gateway.holder.current
    result = None if src.controller is None else src.controller.result
    statuses = [] if result is None else list(result.statuses)
    by_route: dict[tuple[str, str], list[dict[str, str]]] = {}
    for obj in statuses:
        if obj.kind == "HTTPRoute":
            conds = [c for parent in obj.parents for c in parent.conditions] or list(obj.conditions)
            by_route[(obj.namespace, obj.name)] = [
                {"type": c.type.value, "status": c.status.value, "reason": c.reason.value}
                for c in conds
            ]
    bound = src.gateway.addresses()
    reading = src.reading()
    listeners = []
    if snap is not None:
        for listener in snap.table.listeners:
            host, port = bound.get(listener.name, (listener.address, 0))
            rows = []
            for vhost in listener.virtual_hosts:
                for route in vhost.routes:
                    route_conds = by_route.get((route.route_namespace, route.route_name), [])
                    served = reading.routes.get(route.name)
                    rows.append(
                        {
                            "name": route.name,
                            "hostname": vhost.hostname,
                            "match": _match_text(route.match),
                            "backends": [
                                {"name": b.backend, "weight": b.weight} for b in route.backends
                            ],
                            "conditions": route_conds,
                            "status": _route_status(route_conds),
                            "requests": 0 if served is None else served.requests,
                        }
                    )
            listeners.append(
                {
                    "name": listener.name,
                    "gateway": listener.gateway,
                    "port": listener.port,
                    "address": f"{host}:{port}",
                    "routes": rows,
                }
            )
    return {
        "version": "" if snap is None else snap.table.version,
        "listeners": listeners,
        "statuses": [codec.encode(obj) for obj in statuses],
        "reloads": {
            "applied": src.reloads.applied,
            "last_applied_at": src.reloads.last_applied_at,
            "rejected": src.rejected()[-10:],
        },
    }


def _route_status(conds: list[dict[str, str]]) -> str:
    """``ok`` when every condition is True (PartiallyInvalid aside), else ``degraded``;
    ``unknown`` without statuses (a gateway fed tables directly)."""
    if not conds:
        return "unknown"
    bad = [c for c in conds if c["type"] != "PartiallyInvalid" and c["status"] != "True"]
    return "degraded" if bad else "ok"


def endpoints(src: sources.Sources) -> dict[str, Any]:
    """Every endpoint of every backend: where it is, ready, healthy, requests that
    backend sent it."""
    snap = src.gateway.holder.current
    served = stats.by_endpoint(src.cells())
    health = src.gateway.health
    backends = []
    if snap is not None:
        for backend in snap.table.backends:
            rows = []
            for group in backend.groups:
                for ep in group.endpoints:
                    address = f"{ep.address}:{ep.port}"
                    rows.append(
                        {
                            "cluster": group.cluster,
                            "region": group.region,
                            "zone": group.zone,
                            "pod": ep.pod,
                            "address": address,
                            "ready": ep.ready,
                            "healthy": health.healthy(ep.address, ep.port),
                            "requests": served.get((backend.name, address), 0),
                        }
                    )
            backends.append({"name": backend.name, "endpoints": rows})
    return {"backends": backends}


def _rate(n: int, span: float) -> float:
    return round(n / span, 3) if span > 0 else 0.0


def _share(errors: int, requests: int) -> float:
    return round(errors / requests, 4) if requests else 0.0


def stats_doc(src: sources.Sources) -> dict[str, Any]:
    """Counters since start, rates and percentiles over the last ten seconds, and the
    one-second history the dashboard charts."""
    now = time.time()
    reading = src.reading()
    span, recent_total, recent_groups = src.sampler.recent()
    recent_zones: dict[tuple[str, str], stats.Totals] = {}
    for gkey, t in recent_groups.items():
        into = recent_zones.setdefault((gkey[1], gkey[3]), stats.Totals())
        stats.merge(into, t)
    zones: dict[tuple[str, str], stats.Totals] = {}
    for gkey, t in reading.groups.items():
        into = zones.setdefault((gkey[1], gkey[3]), stats.Totals())
        stats.merge(into, t)
    clusters = []
    for (cluster, zone), t in sorted(zones.items()):
        r = recent_zones.get((cluster, zone))
        clusters.append(
            {
                "cluster": cluster,
                "zone": zone,
                "requests": t.requests,
                "errors": t.errors,
                "error_rate": _share(t.errors, t.requests),
                "rps": 0.0 if r is None else _rate(r.requests, span),
                "latency_ms": t.quantiles_ms() if r is None else r.quantiles_ms(),
            }
        )
    route_rows = [
        {
            "route": name or "(no route)",
            "requests": t.requests,
            "errors": t.errors,
            "error_rate": _share(t.errors, t.requests),
            "latency_ms": t.quantiles_ms(),
        }
        for name, t in sorted(reading.routes.items())
    ]
    capacities = {g.key: g.capacity for g in exposition.group_capacities(src)}
    groups = []
    for gkey, t in sorted(reading.groups.items()):
        if gkey[1] == stats.NO_BACKEND:
            continue
        r = recent_groups.get(gkey)
        rps = 0.0 if r is None else _rate(r.requests, span)
        cap = capacities.get(gkey)
        groups.append(
            {
                "backend": gkey[0],
                "cluster": gkey[1],
                "region": gkey[2],
                "zone": gkey[3],
                "requests": t.requests,
                "rps": rps,
                "capacity_rps": cap,
                "utilization": None if not cap else round(rps / cap, 4),
            }
        )
    snap = src.gateway.holder.current
    counters = src.gateway.metrics
    return {
        "time": now,
        "uptime_s": 0.0 if counters is None else round(now - counters.started, 3),
        "version": "" if snap is None else snap.table.version,
        "metrics": counters is not None,
        "totals": {
            "requests": reading.total.requests,
            "errors": reading.total.errors,
            "error_rate": _share(reading.total.errors, reading.total.requests),
            "latency_ms": reading.total.quantiles_ms(),
        },
        "recent": {
            "span_s": round(span, 3),
            "rps": _rate(recent_total.requests, span),
            "error_rate": _share(recent_total.errors, recent_total.requests),
            "latency_ms": recent_total.quantiles_ms(),
        },
        "clusters": clusters,
        "routes": route_rows,
        "groups": groups,
        "series": series(src.sampler),
    }


def series(sampler: stats.Sampler, count: int = SERIES) -> dict[str, Any]:
    """Per-second history: time, requests per second per ``cluster/zone``, total,
    error rate and latency percentiles (null where a second had no request)."""
    taken = list(sampler.samples)[-count:]
    names = sorted({f"{c}/{z}" for s in taken for (c, z) in s.by_zone()})
    rps: dict[str, list[float]] = {name: [] for name in names}
    out: dict[str, Any] = {
        "t": [],
        "zones": names,
        "rps": rps,
        "total_rps": [],
        "error_rate": [],
        "p50_ms": [],
        "p90_ms": [],
        "p99_ms": [],
    }
    for s in taken:
        out["t"].append(round(s.at, 3))
        zones = {f"{c}/{z}": t for (c, z), t in s.by_zone().items()}
        for name in names:
            t = zones.get(name)
            rps[name].append(0.0 if t is None else _rate(t.requests, s.span_s))
        out["total_rps"].append(_rate(s.total.requests, s.span_s))
        out["error_rate"].append(_share(s.total.errors, s.total.requests))
        q = s.total.quantiles_ms()
        out["p50_ms"].append(q["p50"])
        out["p90_ms"].append(q["p90"])
        out["p99_ms"].append(q["p99"])
    return out

"""``mcgw explain``: what the gateway would do with one request, and why. Pure: no socket.

The files are translated as ``mcgw translate`` does (with the local fleet's planned
endpoints, as ``mcgw status`` shows them), the table is compiled by the data plane's own
router and balancer, and the request goes through them: the route that matched (and
the more specific ones that did not), the backendRef the weights give, the regions
ranked from the request's entry region, and the endpoint the balancer picks under the
health given. ``--down`` takes clusters, zones, regions or endpoints out
(hypothetical health); ``--rate`` offers that many requests in one second to a
capacity-aware backend and prints the split the waterfall makes.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path

from mcgw.config import load
from mcgw.dataplane import balancer, router, snapshot
from mcgw.fleet import endpoints
from mcgw.fleet import errors as fleet_errors
from mcgw.ir import table
from mcgw.translate import translator

_WHY = {
    balancer.REASON_CLOSEST: "the closest region with a usable endpoint",
    balancer.REASON_SPILLOVER: "the closest region is at capacity",
    balancer.REASON_FAILOVER: "closer regions have no usable endpoint, or too few healthy "
    "ones for the failover threshold",
    balancer.REASON_RETRY: "endpoints already tried were excluded",
}


@dataclass(frozen=True, slots=True)
class Request:
    """The request to explain."""

    method: str = "GET"
    host: str = ""
    path: str = "/"
    """Path and query, e.g. ``/west?x=1``."""
    headers: tuple[tuple[str, str], ...] = ()
    port: int = 80
    """The Gateway listener port the request arrives on."""
    entry_region: str = ""
    """Where the request enters; empty: the gateway's location (or ``client_ip``'s)."""
    client_ip: str = ""
    """The client's address, placed by the Fleet's ``gateway.clientRegions``."""
    down: tuple[str, ...] = field(default=())
    """Clusters, zones, regions or ``address:port`` endpoints to treat as unhealthy."""
    rate: int = 0
    """Requests offered in one second (0: explain one request)."""


class _Health:
    """A fixed health view: the endpoints in ``down`` are out."""

    def __init__(self, down: set[tuple[str, int]]) -> None:
        self._down = down

    @property
    def down(self) -> AbstractSet[tuple[str, int]]:
        return self._down

    def healthy(self, address: str, port: int) -> bool:
        return (address, port) not in self._down


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def explain(paths: Sequence[Path], request: Request, *, planned: bool = True) -> str:
    """Translate ``paths`` and explain what the gateway would do with ``request``.

    Raises:
        load.ConfigError: the files are invalid.
        ValueError: the request names a listener port no Gateway has.
    """
    resources = load.load(paths).resources
    if planned and any(cluster.deployments for cluster in resources.clusters):
        # Deployments the local fleet could not run: explained without their pods.
        with contextlib.suppress(fleet_errors.NotRunnableError):
            resources = endpoints.with_planned(resources, python=sys.executable)
    result = translator.translate(resources)
    return render(result.table, request, result.warnings)


def render(route_table: table.RouteTable, request: Request, warnings: Sequence[str] = ()) -> str:
    """Explain ``request`` against a compiled table. Pure."""
    lines: list[str] = []
    path, _, query = request.path.partition("?")
    locality = route_table.locality
    snap_entry, source = _entry(route_table, request)
    lines.append(
        f"Request: {request.method} http://{request.host}{request.path} on port {request.port}"
    )
    lines.append(f"Entry region: {snap_entry or '(unknown)'} ({source})")
    listeners = [x for x in route_table.listeners if x.port == request.port]
    if not listeners:
        ports = sorted({x.port for x in route_table.listeners})
        raise ValueError(f"no Gateway listens on port {request.port} (ports: {ports})")
    compiled = router.compile(route_table)
    headers = tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers)
    host = request.host.encode("latin-1")
    method = request.method.upper().encode("latin-1")
    plan = None
    listener = listeners[0]
    for listener in listeners:
        plan = compiled.find(
            listener.name, host, path.encode("latin-1"), query.encode("latin-1"), headers, method
        )
        if plan is not None:
            break
    lines.append(f"Listener: {listener.name} (Gateway {listener.gateway})")
    if plan is None:
        lines.append("Route: none matched: the gateway answers 404")
        lines += [f"note: {w}" for w in warnings]
        return "\n".join(lines) + "\n"
    route = plan.route
    vhost, skipped = _vhost_of(listener, route)
    lines.append(f"Virtual host: {vhost}")
    lines.append(f"Route: {route.name}")
    lines.append(f"    matched: {_describe(route.match)}")
    for other in skipped:
        lines.append(f"    not matched (checked first, by precedence): {_describe(other.match)}")
    if not route.backends:
        lines.append("Backend: none (the rule has no backendRef): the gateway answers 500")
        return "\n".join(lines) + "\n"
    total = sum(wb.weight for wb in route.backends)
    health = _Health(_down_set(route_table, request.down))
    clock = _Clock()
    picker = balancer.Balancer(route_table, health, clock)
    chosen = picker.choose(route)
    for wb in route.backends:
        mark = "→" if wb is chosen else " "
        lines.append(
            f"Backend {mark} {wb.backend or '(unresolved: 500)'} weight {wb.weight}/{total}"
        )
    if chosen is None or chosen.backend is None:
        return "\n".join(lines) + "\n"
    backend = route_table.backend(chosen.backend)
    lines.append(
        f"    {backend.lb_algorithm.value}, capacity "
        f"{_capacity(backend)}, failover threshold {backend.failover_health_threshold}%"
    )
    ranking = dict(_ranking(locality, snap_entry))
    order = picker.regions(backend.name, snap_entry)
    lines.append(
        f"Regions from {snap_entry or '(unknown)'}, closest first: "
        + (", ".join(f"{r} ({ranking[r]:g} ms)" if r in ranking else r for r in order) or "none")
    )
    for group in sorted(backend.groups, key=lambda g: (_index(order, g.region), g.cluster)):
        ready = [e for e in group.endpoints if e.ready]
        healthy = [e for e in ready if health.healthy(e.address, e.port)]
        lines.append(
            f"    {group.cluster} {group.zone}: {len(healthy)}/{len(ready)} ready endpoints healthy"
        )
    if request.rate <= 0:
        pick = picker.pick(backend.name, entry_region=snap_entry)
        if pick is None:
            lines.append("Pick: none: no ready, healthy endpoint: the gateway answers 503")
        else:
            lines.append(
                f"Pick: {pick.group.cluster} {pick.group.zone} {pick.endpoint.pod or '-'} "
                f"{pick.address}: {pick.reason} ({_WHY.get(pick.reason, pick.reason)})"
            )
    else:
        split: Counter[tuple[str, str]] = Counter()
        failed = 0
        for i in range(request.rate):
            clock.now = i / request.rate
            pick = picker.pick(backend.name, entry_region=snap_entry)
            if pick is None:
                failed += 1
            else:
                split[pick.group.cluster, pick.reason] += 1
        parts = [f"{cluster} {n} ({reason})" for (cluster, reason), n in sorted(split.items())]
        if failed:
            parts.append(f"{failed} unanswered (503)")
        lines.append(f"Split of {request.rate} requests in 1 s: " + ", ".join(parts))
    lines += [f"note: {w}" for w in warnings]
    return "\n".join(lines) + "\n"


def _entry(route_table: table.RouteTable, request: Request) -> tuple[str, str]:
    locality = route_table.locality
    if request.entry_region:
        known = {locality.entry_region, *(e.entry_region for e in locality.other_entries)}
        if request.entry_region in known:
            return request.entry_region, "given"
        return locality.entry_region, f"{request.entry_region!r} has no ranking: gateway's"
    if request.client_ip:
        region = snapshot.Snapshot(
            route_table, router.compile(route_table), balancer.Balancer(route_table, _Health(set()))
        ).client_region(request.client_ip)
        if region:
            return region, f"client {request.client_ip} by the Fleet's clientRegions"
    return locality.entry_region, "the gateway's location"


def _ranking(locality: table.Locality, entry: str) -> tuple[tuple[str, float], ...]:
    return balancer.entry_rankings(locality).get(entry, locality.region_rtt_ms)


def _index(order: tuple[str, ...], region: str) -> int:
    return order.index(region) if region in order else len(order)


def _vhost_of(listener: table.Listener, route: table.Route) -> tuple[str, list[table.Route]]:
    for vhost in listener.virtual_hosts:
        for i, candidate in enumerate(vhost.routes):
            if candidate is route:
                return vhost.hostname, list(vhost.routes[:i])
    return "?", []


def _describe(match: table.Match) -> str:
    parts = [f"path {match.path.type.value} {match.path.value}"]
    parts += [f"header {h.name} {h.type.value} {h.value!r}" for h in match.headers]
    parts += [f"query {q.name} {q.type.value} {q.value!r}" for q in match.query_params]
    if match.method:
        parts.append(f"method {match.method}")
    return ", ".join(parts)


def _capacity(backend: table.Backend) -> str:
    per = backend.max_rate_per_endpoint * backend.capacity_scaler
    if per >= balancer.UNLIMITED_RATE:
        return "unlimited (maxRatePerEndpoint unset)"
    return f"{per:g} rps per healthy endpoint"


def _down_set(route_table: table.RouteTable, names: Sequence[str]) -> set[tuple[str, int]]:
    """Endpoints named by cluster, zone, region or ``address:port``."""
    wanted = set(names)
    down: set[tuple[str, int]] = set()
    for backend in route_table.backends:
        for group in backend.groups:
            whole = bool(wanted & {group.cluster, group.zone, group.region})
            for ep in group.endpoints:
                if whole or f"{ep.address}:{ep.port}" in wanted:
                    down.add((ep.address, ep.port))
    return down


def parse_request(args: argparse.Namespace) -> Request:
    """The :class:`Request` of ``mcgw explain``'s arguments.

    Raises:
        ValueError: the URL or a header is malformed.
    """
    url = urllib.parse.urlsplit(args.url if "//" in args.url else f"http://{args.url}")
    if not url.hostname:
        raise ValueError(f"{args.url!r}: expected a URL such as http://store.example.com/west")
    headers = []
    for item in args.headers:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"-H {item!r}: expected 'NAME: VALUE'")
        headers.append((name.strip(), value.strip()))
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return Request(
        method=args.method.upper(),
        host=url.netloc.rpartition("@")[2],
        path=target,
        headers=tuple(headers),
        port=args.port if args.port is not None else url.port or 80,
        entry_region=args.entry_region,
        client_ip=args.client_ip,
        down=tuple(args.down),
        rate=args.rate,
    )

"""Builders for tiny route tables: one listener, a few routes and backends.

Example::

    t = tables.route_table(
        [tables.route("to-a", "a", path="/a")],
        [tables.backend("a", ("127.0.0.1", 8080))],
    )
"""

from __future__ import annotations

from mcgw.ir import table

LISTENER = "default/gw/80"
"""Name of the listener :func:`route_table` builds."""


def backend(
    name: str,
    *endpoints: tuple[str, int],
    cluster: str = "c1",
    region: str = "r1",
    zone: str = "r1-a",
    timeout_s: float = 30.0,
) -> table.Backend:
    """Return a backend with one group holding ``endpoints`` (pods ``<name>-<i>``)."""
    group = table.BackendGroup(
        cluster=cluster,
        region=region,
        zone=zone,
        endpoints=tuple(
            table.Endpoint(address=a, port=p, pod=f"{name}-{i}")
            for i, (a, p) in enumerate(endpoints)
        ),
    )
    return table.Backend(
        name=name,
        kind="Service",
        namespace="default",
        service=name,
        port=80,
        groups=(group,),
        timeout_s=timeout_s,
    )


def route(
    name: str,
    *backends: str | None,
    path: str = "/",
    path_type: table.PathMatchType = table.PathMatchType.PATH_PREFIX,
    headers: tuple[table.HeaderMatch, ...] = (),
    query_params: tuple[table.QueryParamMatch, ...] = (),
    method: str | None = None,
) -> table.Route:
    """Return a route to ``backends`` (equal weights; None is an unresolved ref)."""
    return table.Route(
        name=name,
        match=table.Match(
            path=table.PathMatch(type=path_type, value=path),
            headers=headers,
            query_params=query_params,
            method=method,
        ),
        backends=tuple(table.WeightedBackend(backend=b) for b in backends),
    )


def route_table(
    routes: list[table.Route] | tuple[table.Route, ...],
    backends: list[table.Backend] | tuple[table.Backend, ...] = (),
    *,
    hostname: str = "*",
    port: int = 80,
    entry_region: str = "",
    version: str = "test",
) -> table.RouteTable:
    """Return a table with one listener (:data:`LISTENER`) serving ``routes`` for
    ``hostname``; routes are kept in the given (precedence) order."""
    listener = table.Listener(
        name=LISTENER,
        address="127.0.0.1",
        port=port,
        virtual_hosts=(table.VirtualHost(hostname=hostname, routes=tuple(routes)),),
        gateway="default/gw",
    )
    return table.RouteTable(
        listeners=(listener,),
        backends=tuple(backends),
        locality=table.Locality(entry_region=entry_region),
        version=version,
    )


class FakeHealth:
    """A :class:`mcgw.dataplane.balancer.HealthView` where ``down`` endpoints are
    unhealthy and every other one is healthy; ``asked`` counts the questions."""

    def __init__(self, *down: tuple[str, int]) -> None:
        self.down = set(down)
        self.asked = 0

    def healthy(self, address: str, port: int) -> bool:
        self.asked += 1
        return (address, port) not in self.down


class Clock:
    """A monotonic clock that moves only when a test sets ``now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

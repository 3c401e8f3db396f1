"""The route table: what the data plane runs, and nothing else.

Everything here is a frozen, slotted dataclass holding tuples, so a table can be
shared between tasks without locks and hashed into a version. The translator is the
only producer; the data plane compiles it once per version (``dataplane.router``).

Glossary:
    Listener       one socket the gateway binds: (address, port), HTTP.
    VirtualHost    the routes served for one hostname pattern on a listener.
    Route          one (match, action) pair; a listener's routes are already sorted
                   into the Gateway API's precedence order by the translator.
    Backend        one resolved backendRef target (a Service or a ServiceImport port),
                   with its endpoints grouped by (cluster, zone) into BackendGroups.
    BackendGroup   the endpoints of one Backend in one cluster and zone: the unit the
                   multi-cluster balancer chooses between.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PathMatchType(StrEnum):
    EXACT = "Exact"
    PATH_PREFIX = "PathPrefix"
    REGULAR_EXPRESSION = "RegularExpression"


class HeaderMatchType(StrEnum):
    EXACT = "Exact"
    REGULAR_EXPRESSION = "RegularExpression"


@dataclass(frozen=True, slots=True)
class PathMatch:
    type: PathMatchType = PathMatchType.PATH_PREFIX
    """How ``value`` is compared with the request path (without its query)."""
    value: str = "/"
    """For PathPrefix, matched segment by segment: ``/west`` matches ``/west`` and
    ``/west/x`` but not ``/westx``. A trailing slash in the prefix is ignored."""


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    name: str
    """Header name as written in the config; compared case-insensitively."""
    value: str
    type: HeaderMatchType = HeaderMatchType.EXACT


@dataclass(frozen=True, slots=True)
class QueryParamMatch:
    name: str
    """Query parameter name; compared case-sensitively (Gateway API)."""
    value: str
    type: HeaderMatchType = HeaderMatchType.EXACT


@dataclass(frozen=True, slots=True)
class Match:
    """All conditions must hold (AND). An empty Match matches every request."""

    path: PathMatch = field(default_factory=PathMatch)
    headers: tuple[HeaderMatch, ...] = ()
    query_params: tuple[QueryParamMatch, ...] = ()
    method: str | None = None
    """Upper-case HTTP method, or None for any."""


@dataclass(frozen=True, slots=True)
class WeightedBackend:
    backend: str | None
    """Name of a :class:`Backend` in ``RouteTable.backends``; None when the backendRef
    could not be resolved, in which case its share of requests is answered 500
    (Gateway API: an invalid backendRef must not shift traffic to its siblings)."""
    weight: int = 1
    """Relative share; weight 0 receives no request."""


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    """Stable id ``<namespace>/<httproute>/rule/<i>/match/<j>``, used in logs and metrics."""
    match: Match
    backends: tuple[WeightedBackend, ...]
    """Empty when the rule has no backendRefs: the request is answered 500."""
    route_namespace: str = ""
    route_name: str = ""
    rule_index: int = 0


@dataclass(frozen=True, slots=True)
class VirtualHost:
    hostname: str
    """Exact name (``store.example.com``), wildcard (``*.example.com``: one or more
    labels before the suffix) or ``*`` for any host. Lower-case, without port."""
    routes: tuple[Route, ...]
    """In precedence order: the data plane takes the first whose match holds."""


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    """``<namespace>/<gateway>/<port>``: one socket may serve several Gateway listeners."""
    address: str
    """IP address to bind, e.g. ``0.0.0.0`` or ``127.0.0.1``."""
    port: int
    """The port the Gateway names; the server may map it to another local port."""
    virtual_hosts: tuple[VirtualHost, ...]
    """Sorted most specific first: exact hostnames, then wildcards by decreasing
    length, then ``*``. A request is served by exactly one of them."""
    gateway: str = ""
    """``<namespace>/<name>`` of the Gateway, for logs."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    """IP address (or host name) of the pod."""
    port: int
    """Target port on the pod, already resolved through the Service."""
    pod: str = ""
    """Pod name, when known (for logs and the decision trace)."""
    ready: bool = True
    """The EndpointSlice's ready condition; not-ready endpoints are never picked."""


@dataclass(frozen=True, slots=True)
class BackendGroup:
    cluster: str
    region: str
    zone: str
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """Active HTTP health check, GKE's defaults (HealthCheckPolicy overrides them)."""

    path: str = "/"
    port: int | None = None
    """None: the endpoint's serving port."""
    interval_s: float = 5.0
    timeout_s: float = 5.0
    healthy_threshold: int = 2
    """Consecutive successes that bring an unhealthy endpoint back."""
    unhealthy_threshold: int = 2
    """Consecutive failures that take a healthy endpoint out."""


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    """``<kind>/<namespace>/<name>:<port>``, unique in a table."""
    kind: str
    """``Service`` or ``ServiceImport``."""
    namespace: str
    service: str
    port: int
    groups: tuple[BackendGroup, ...]
    """Sorted by (cluster, zone)."""
    health_check: HealthCheck = field(default_factory=HealthCheck)
    timeout_s: float = 30.0
    """Time to wait for the backend's response headers (GCPBackendPolicy timeoutSec)."""
    max_rate_per_endpoint: float = 1e8
    """Requests per second one endpoint is meant to take (GCPBackendPolicy
    maxRatePerEndpoint); capacity of a group = this × its healthy endpoints. The default
    is GKE's: effectively unlimited."""
    capacity_scaler: float = 1.0
    """Share (0-1) of the capacity offered to the balancer (GCPBackendPolicy
    capacityScaler); 0 drains the backend unless every other one is full or down."""


@dataclass(frozen=True, slots=True)
class Locality:
    """Where requests enter, and how far every region is from there."""

    entry_region: str = ""
    """The gateway's location, e.g. ``asia-northeast1``; empty if unknown."""
    region_rtt_ms: tuple[tuple[str, float], ...] = ()
    """(region, round-trip ms from the entry region), closest first. A region absent
    from this list ranks after every listed one, in name order."""


@dataclass(frozen=True, slots=True)
class RouteTable:
    listeners: tuple[Listener, ...]
    backends: tuple[Backend, ...]
    locality: Locality = field(default_factory=Locality)
    version: str = ""
    """Hash of the canonical encoding (``ir.codec``); empty until stamped."""

    def backend(self, name: str) -> Backend:
        """Return the backend called ``name``.

        Raises:
            KeyError: no such backend (a translator bug: routes only name existing ones).
        """
        for backend in self.backends:
            if backend.name == name:
                return backend
        raise KeyError(name)

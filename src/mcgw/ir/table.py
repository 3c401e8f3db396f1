"""The route table: what the data plane runs, and nothing else.

Everything here is a frozen, slotted dataclass holding tuples, so a table can be
shared between tasks without locks and hashed into a version. The translator is the
only producer; the data plane compiles it once per version (``dataplane.router``).

Glossary:
    Listener       one socket the gateway binds: (address, port), HTTP, or HTTPS when
                   it has ``tls``: certificates chosen by SNI, named by fingerprint.
    KeyPair        the PEM of one certificate and its key: never part of a table (so
                   never in a dump, a golden or a log); handed to the data plane
                   beside the table, keyed by the fingerprint the table names.
    VirtualHost    the routes served for one hostname pattern on a listener.
    Route          one (match, action) pair; a listener's routes are already sorted
                   into the Gateway API's precedence order by the translator.
    Backend        one resolved backendRef target (a Service or a ServiceImport port),
                   with its endpoints grouped by (cluster, zone) into BackendGroups.
    BackendGroup   the endpoints of one Backend in one cluster and zone: the unit the
                   multi-cluster balancer chooses between.
    Filters        what a route (or one of its weighted backends) does to a request on
                   its way: header edits, redirect, URL rewrite, mirrors, CORS. Every
                   value is resolved by the translator (names lower-cased, redirect port
                   chosen, matched prefix attached) so the data plane only applies it.

Request processing order the data plane must follow (Gateway API HTTPRoute semantics):

1. pick the listener by socket, the virtual host by Host (port stripped), the first
   route whose ``match`` holds;
2. CORS (``Route.filters.cors``): answer a preflight at the gateway; remember to add
   the CORS response headers to the final response of an actual request;
3. ``Route.filters.redirect``: answer the redirect, nothing is forwarded;
4. ``Route.filters.request_headers`` then ``Route.filters.url_rewrite`` on the request;
5. pick a :class:`WeightedBackend` by weight; apply *its* ``filters`` the same way
   (redirect answers, request headers, rewrite); a ``None`` backend answers 500;
6. send mirrors (``Route.filters.mirrors`` then the backend's), fire-and-forget;
7. forward within ``Route.timeouts`` with ``Route.retry``; the backend's protocol is
   ``Backend.protocol``;
8. ``response_headers`` of the backend's filters, then of the route's, then CORS
   headers, on the response sent to the client.
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


class PathModifierType(StrEnum):
    REPLACE_FULL_PATH = "ReplaceFullPath"
    REPLACE_PREFIX_MATCH = "ReplacePrefixMatch"


class BackendProtocol(StrEnum):
    """How the data plane talks to a backend's endpoints (from the port's appProtocol)."""

    HTTP = "http"
    """HTTP/1.1 (no appProtocol, ``http``, or an unknown non-TLS value). ``Upgrade:
    websocket`` requests are still passed through as an upgraded connection."""
    H2C = "h2c"
    """Cleartext HTTP/2 with prior knowledge (``kubernetes.io/h2c``; also ``h2c``,
    ``grpc``). Gateway API feature ``HTTPRouteBackendProtocolH2C``."""
    WS = "ws"
    """WebSocket over cleartext HTTP/1.1 (``kubernetes.io/ws``): an ``Upgrade:
    websocket`` request is forwarded and, after ``101``, bytes are relayed both ways.
    Gateway API feature ``HTTPRouteBackendProtocolWebSocket``."""


@dataclass(frozen=True, slots=True)
class HeaderValue:
    name: str
    """The name as written in the manifest: the data plane sends it so."""
    key: str
    """``name`` lower-cased: what the data plane compares existing header names with
    (header names are case-insensitive, RFC 9110 §5.1)."""
    value: str


@dataclass(frozen=True, slots=True)
class HeaderModifier:
    """RequestHeaderModifier / ResponseHeaderModifier (Gateway API ``HTTPHeaderFilter``).

    The translator guarantees one action per header name (the spec makes filters that
    name a header twice, in one list or across lists, invalid) and that names are
    RFC 9110 tokens. Apply in this order; the order cannot change the result because
    names never repeat.
    """

    set: tuple[HeaderValue, ...] = ()
    """Remove every field whose name equals ``key`` (case-insensitively), then add one
    field ``name: value``; added when absent."""
    add: tuple[HeaderValue, ...] = ()
    """Append ``value`` to the header: when fields named ``key`` exist, the result must
    read as their values followed by ``value``, joined by ``,`` (no space), e.g. an
    existing ``my-header: foo`` plus ``bar,baz`` gives ``my-header: foo,bar,baz``;
    sending ``value`` as an additional field line of the same name is equivalent (RFC
    9110 §5.3) and also allowed. Never insert ``", "`` inside ``value``."""
    remove: tuple[str, ...] = ()
    """Lower-case names; every field with one of these names is dropped."""


@dataclass(frozen=True, slots=True)
class PathModifier:
    """A path replacement for RequestRedirect or URLRewrite (``HTTPPathModifier``).

    Only the path changes: the query string (``?...``) of the request is kept as is.
    """

    type: PathModifierType
    value: str
    """REPLACE_FULL_PATH: the new path, verbatim. REPLACE_PREFIX_MATCH: the replacement
    for the matched prefix with any trailing ``/`` removed (``/`` and ``""`` both
    become ``""``)."""
    prefix: str = ""
    """REPLACE_PREFIX_MATCH only: the route's PathPrefix match value with any trailing
    ``/`` removed (``/`` becomes ``""``). The spec allows ReplacePrefixMatch only on a
    rule with a single PathPrefix match, so this is the prefix every request reaching
    the filter matched, and ``path[len(prefix):]`` is ``""`` or starts with ``/``.

    New path = ``value + path[len(prefix):]``, or ``/`` when that is empty. This
    reproduces the spec's table: /foo/bar with prefix /foo and value /xyz → /xyz/bar;
    /foo/ → /xyz/; /foo with value "" or "/" → /; /foo/bar with value "" → /bar. It
    never yields ``//``."""

    def apply(self, path: str) -> str:
        """The new path for request path ``path`` (without its query): the reference
        semantics; the data plane may call it as is."""
        if self.type is PathModifierType.REPLACE_FULL_PATH:
            return self.value
        return self.value + path[len(self.prefix) :] or "/"


@dataclass(frozen=True, slots=True)
class Redirect:
    """RequestRedirect: answer with ``status_code`` and a ``Location``; forward nothing.

    Location = ``scheme://host[:port]path[?query]``, every part already resolved except
    what comes from the request: ``host`` is ``hostname`` or, when None, the request's
    Host without its port; ``path`` is the request path modified by ``path`` (or kept);
    the query string of the request is kept.
    """

    scheme: str
    """``http`` or ``https``: the filter's scheme, else the listener's (the request's)."""
    hostname: str | None = None
    """None: the hostname of the request's Host header, port stripped."""
    port: int | None = None
    """The port to write after the host, or None to write none. Resolved by the spec's
    rules: the filter's port; else 80/443 when the filter sets a scheme; else the
    Gateway listener's port (the port in the Gateway, not a local ``--port-map``
    port); then None when it is 80 with http or 443 with https."""
    path: PathModifier | None = None
    """None: the request path unchanged."""
    status_code: int = 302
    """301, 302, 303, 307 or 308."""


@dataclass(frozen=True, slots=True)
class URLRewrite:
    """URLRewrite: change the forwarded request (the client sees no redirect)."""

    hostname: str | None = None
    """Replace the ``Host`` header sent to the backend with exactly this (no port)."""
    path: PathModifier | None = None
    """Replace the path sent to the backend; the query string is kept."""


@dataclass(frozen=True, slots=True)
class Mirror:
    """RequestMirror: also send a copy of the request to ``backend``, fire-and-forget."""

    backend: str
    """Name of a :class:`Backend` in ``RouteTable.backends`` (always resolvable: a
    mirror whose backendRef is invalid is left out of the table and reported in
    status). The copy goes to one endpoint of that backend, chosen as for any request."""
    numerator: int = 100
    denominator: int = 100
    """Mirror a request with probability ``numerator / denominator`` (percent p is
    p/100; neither set is 100/100; 0 never mirrors)."""

    # The copy is the request as forwarded to the primary backend (after the request
    # filters of the route and of the picked backend), body included. Its response
    # is read and discarded; its failure or slowness never affects the client's
    # response, and it does not count for retries or outlier detection.


@dataclass(frozen=True, slots=True)
class Cors:
    """CORS filter (``HTTPCORSFilter``). Applies to requests that carry ``Origin``.

    Preflight = ``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``: the
    gateway answers it itself with 200 (never forwarded). When the origin is allowed
    the answer carries Access-Control-Allow-Origin (the request's Origin, or ``*`` when
    ``allow_origins`` is ``("*",)`` and ``allow_credentials`` is false), -Allow-Methods,
    -Allow-Headers, -Expose-Headers (when non-empty), -Max-Age and, when
    ``allow_credentials``, ``Access-Control-Allow-Credentials: true``; when it is not,
    no CORS header at all. Lists are joined with ``", "``.

    Wildcards (``*`` alone in a list): with ``allow_credentials`` false the header may
    be ``*``; with it true the gateway must echo instead: the request's Origin, its
    Access-Control-Request-Method, its Access-Control-Request-Headers (omit the header
    when the request has none). Expose-Headers ``*`` with credentials is omitted.

    Actual request (any other request with an allowed ``Origin``): forwarded as usual;
    Access-Control-Allow-Origin (as above), -Expose-Headers and -Allow-Credentials are
    added to the response. Requests from origins that are not allowed are forwarded
    unchanged and get no CORS header. Add ``Vary: Origin`` when echoing the origin.
    """

    allow_origins: tuple[str, ...] = ()
    """As written (lower-cased): ``*``, or ``scheme://host[:port]`` with ``*`` in the
    host. Empty: no origin is allowed."""
    origin_regex: str | None = None
    """Python regular expression, for ``re.fullmatch`` on the request's ``Origin`` as
    sent, equivalent to ``allow_origins``: case-insensitive, default ports (80 for
    http, 443 for https) optional, a host ``*`` matching one or more characters
    (any number of labels). None when ``allow_origins`` is ``("*",)`` (every origin)
    or empty (check ``allow_origins``)."""
    allow_credentials: bool = False
    allow_methods: tuple[str, ...] = ()
    """Upper-case methods, or ``("*",)``."""
    allow_headers: tuple[str, ...] = ()
    """Header names as written, or ``("*",)``."""
    expose_headers: tuple[str, ...] = ()
    """Header names as written, or ``("*",)``."""
    max_age_s: int = 5
    """Access-Control-Max-Age, seconds (the spec's default is 5)."""


@dataclass(frozen=True, slots=True)
class Filters:
    """The filters of a route rule or of one backendRef, resolved. Empty: do nothing."""

    request_headers: HeaderModifier | None = None
    """RequestHeaderModifier: applied to the request before it is forwarded."""
    response_headers: HeaderModifier | None = None
    """ResponseHeaderModifier: applied to the backend's response before it is sent.
    Also applies to responses the gateway makes for this route (500, 503, 504)."""
    redirect: Redirect | None = None
    """RequestRedirect: when set, the request is answered with it."""
    url_rewrite: URLRewrite | None = None
    """URLRewrite (never together with ``redirect``)."""
    mirrors: tuple[Mirror, ...] = ()
    """RequestMirror filters, in manifest order; each one independently."""
    cors: Cors | None = None
    """CORS. On a route: checked before anything else. On a backendRef: checked once
    that backend is picked (a preflight is then answered after the pick); when both
    have one, the route's wins."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """HTTPRoute ``timeouts``. For both fields: None = not set, ``0.0`` = disabled
    ("0s": no limit at all), > 0 = the limit in seconds. Expiry answers 504 when no
    response byte was sent yet; otherwise the client connection is closed."""

    request_s: float | None = None
    """Whole transaction, from the end of the request head until the end of the
    response, retries included. None or 0.0: no limit."""
    backend_request_s: float | None = None
    """One try against one endpoint, from sending the request until the end of the
    response. None: ``Backend.timeout_s`` applies (to the response headers); 0.0: no
    limit, not even ``Backend.timeout_s``."""


@dataclass(frozen=True, slots=True)
class Retry:
    """HTTPRoute ``retry``: try the request again (on another endpoint when possible)."""

    codes: tuple[int, ...] = ()
    """Retry when the backend answers one of these statuses (sorted, 400-599)."""
    attempts: int = 1
    """Retries after the first try (so at most ``attempts + 1`` tries); 0: never. The
    response of the last try is the answer."""
    backoff_s: float = 0.025
    """Wait at least this long before each retry."""

    # Retries never outlive Timeouts.request_s. Connection failures before the request
    # was sent are retried as before (mcgw's own rule, any method), independently.


@dataclass(frozen=True, slots=True)
class WeightedBackend:
    backend: str | None
    """Name of a :class:`Backend` in ``RouteTable.backends``; None when the backendRef
    could not be resolved, in which case its share of requests is answered 500
    (Gateway API: an invalid backendRef must not shift traffic to its siblings)."""
    weight: int = 1
    """Relative share; weight 0 receives no request."""
    filters: Filters = field(default_factory=Filters)
    """The backendRef's own filters, applied after the route's when this backend is
    picked (per-backendRef filters, Gateway API Extended)."""


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    """Stable id ``<namespace>/<httproute>/rule/<i>/match/<j>``, used in logs and metrics."""
    match: Match
    backends: tuple[WeightedBackend, ...]
    """Empty when the rule has no backendRefs (or uses a filter mcgw does not
    implement): the request is answered 500, unless ``filters.redirect`` (or a CORS
    preflight) answers it first."""
    route_namespace: str = ""
    route_name: str = ""
    rule_index: int = 0
    filters: Filters = field(default_factory=Filters)
    """The rule's filters, applied to every request this route takes."""
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: Retry | None = None
    """None: no retry on response status (connection failures are still retried)."""


@dataclass(frozen=True, slots=True)
class VirtualHost:
    hostname: str
    """Exact name (``store.example.com``), wildcard (``*.example.com``: one or more
    labels before the suffix) or ``*`` for any host. Lower-case, without port."""
    routes: tuple[Route, ...]
    """In precedence order: the data plane takes the first whose match holds."""


@dataclass(frozen=True, slots=True)
class TLSCertificate:
    """One certificate an HTTPS listener serves, by reference (no key material)."""

    hostname: str
    """The server names (SNI) it answers: exact, wildcard (``*.example.com``, one or
    more labels) or ``*`` for any name and for clients sending none; the hostname
    of the Gateway listener whose certificateRefs name it."""
    secret: str
    """``<namespace>/<name>`` of the Secret it came from, for status and logs."""
    fingerprint: str
    """Hash of the certificate chain and key: the key of its :class:`KeyPair`, and
    what changes the table version when a Secret is edited (the reload)."""


@dataclass(frozen=True, slots=True)
class ListenerTLS:
    """TLS termination on a listener (``tls.mode: Terminate``)."""

    certificates: tuple[TLSCertificate, ...]
    """Most specific hostname first (as virtual hosts are sorted); the data plane
    serves the first whose hostname covers the SNI name. Several entries with one
    hostname (an RSA and an ECDSA certificate, say) are served together."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """The PEM of one certificate chain (leaf first) and its private key.

    Not a table field: the translator returns these beside the table, keyed by
    :attr:`TLSCertificate.fingerprint`, so the key never reaches an encoding.
    """

    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)


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
    tls: ListenerTLS | None = None
    """None: plain HTTP. Set: HTTPS, TLS terminated here (HTTP/1.1 and, by ALPN, h2)."""


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


class LbAlgorithm(StrEnum):
    """How a backend's traffic is split between regions (GCPTrafficDistributionPolicy
    ``serviceLbAlgorithm``). Capacity is always a target, never a limit."""

    WATERFALL_BY_REGION = "WATERFALL_BY_REGION"
    """Fill the closest region in proportion to its groups' capacity; overflow to the
    next closest only when it is at capacity; when every region is full, spread the
    excess over all of them in proportion to capacity. GKE's default."""
    SPRAY_TO_REGION = "SPRAY_TO_REGION"
    """As WATERFALL_BY_REGION between regions; inside a region every zone gets its
    share (GKE's difference, per-client spreading, is moot with one gateway)."""
    SPRAY_TO_WORLD = "SPRAY_TO_WORLD"
    """Every region at once, in proportion to capacity, whatever the distance."""
    WATERFALL_BY_ZONE = "WATERFALL_BY_ZONE"
    """GKE keeps traffic in the client's zone first; the gateway has a region, not a
    zone, so the data plane treats it as WATERFALL_BY_REGION."""


class AffinityType(StrEnum):
    """GCPBackendPolicy ``sessionAffinity.type``: what keeps a client on one endpoint."""

    NONE = "NONE"
    CLIENT_IP = "CLIENT_IP"
    """Consistent hash of the client's address (the peer of the gateway's socket)."""
    GENERATED_COOKIE = "GENERATED_COOKIE"
    """The gateway sets a cookie naming the endpoint; requests carrying it go there."""
    HEADER_FIELD = "HEADER_FIELD"
    """Consistent hash of one request header's value."""


@dataclass(frozen=True, slots=True)
class SessionAffinity:
    """How requests of one client stick to one endpoint (GCPBackendPolicy
    ``sessionAffinity``). Sticky while the endpoint is ready, healthy and its region
    serves; otherwise the request is placed as without affinity, and sticks there."""

    type: AffinityType = AffinityType.NONE
    cookie_name: str = ""
    """GENERATED_COOKIE: the cookie's name (``GCLB``, as GKE's global load balancers)."""
    cookie_ttl_s: int = 0
    """GENERATED_COOKIE: Max-Age of the cookie; 0 makes it a session cookie."""
    header: str = ""
    """HEADER_FIELD: the header whose value is hashed, lower-case."""


class LocalityLbAlgorithm(StrEnum):
    """How an endpoint is chosen inside a region (GCPTrafficDistributionPolicy
    ``localityLbAlgorithm``)."""

    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_REQUEST = "LEAST_REQUEST"
    """Power of two choices: of two random endpoints, the one with fewer requests in
    flight from this gateway process."""
    RANDOM = "RANDOM"
    RING_HASH = "RING_HASH"
    """Consistent hashing of the affinity key on a ring (Ketama style); round robin
    for requests without a key."""
    MAGLEV = "MAGLEV"
    """Consistent hashing of the affinity key with a Maglev lookup table; round robin
    for requests without a key. Hash-based affinity uses Maglev unless RING_HASH."""


@dataclass(frozen=True, slots=True)
class ClusterTier:
    """Where one cluster of a multi-cluster backend stands in its priority tiers (mcgw's
    own, beyond GKE: annotations ``mcgw.dev/tier`` and ``mcgw.dev/weight`` on the
    cluster's ServiceExport)."""

    cluster: str
    tier: int = 0
    """Lower tiers serve first; a tier serves only when every lower one has no usable
    endpoint."""
    weight: int = 0
    """Share of its tier's requests, relative to the other clusters of the tier; 0: the
    cluster's ready endpoints count (every endpoint of the tier takes an equal share)."""


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
    protocol: BackendProtocol = BackendProtocol.HTTP
    """From the appProtocol of the Service (or ServiceImport) port."""
    lb_algorithm: LbAlgorithm = LbAlgorithm.WATERFALL_BY_REGION
    """GCPTrafficDistributionPolicy ``serviceLbAlgorithm``."""
    failover_health_threshold: int = 0
    """Percent (0-99): a region with fewer healthy endpoints than this share sheds its
    traffic to the next region that has enough (if none has, the closest region with a
    healthy endpoint serves). 0, without a GCPTrafficDistributionPolicy: only a region
    with no healthy endpoint fails over. A policy sets GKE's default, 70."""
    affinity: SessionAffinity = field(default_factory=SessionAffinity)
    """GCPBackendPolicy ``sessionAffinity``."""
    locality_lb: LocalityLbAlgorithm = LocalityLbAlgorithm.ROUND_ROBIN
    """GCPTrafficDistributionPolicy ``localityLbAlgorithm``."""
    auto_capacity_drain: bool = False
    """GCPTrafficDistributionPolicy ``autoCapacityDrain``: a group (cluster, zone) with
    under 25 % of its ready endpoints healthy counts as empty; never more than half of
    the backend's groups at once."""
    draining_timeout_s: float | None = None
    """GCPBackendPolicy ``connectionDraining.drainingTimeoutSec``: how long requests in
    flight to an endpoint that left (removed, not ready) may still run; 0 cuts them at
    once. None: not configured; they run until their own timeouts."""
    tiers: tuple[ClusterTier, ...] = ()
    """Priority tiers, one entry per cluster (sorted by cluster), or empty. When set,
    they replace the regions' ranking and the capacity waterfall: the lowest tier with a
    usable endpoint serves, its clusters in proportion to their weights (a cluster
    without usable endpoint leaves its share to the others). A cluster not listed is in
    tier 0 with the default weight."""
    log_sample_rate: int = 1_000_000
    """Share of this backend's requests written to the access log, in millionths
    (GCPBackendPolicy ``logging``: ``sampleRate`` when enabled, 0 when disabled).
    Without a policy every request is logged."""


@dataclass(frozen=True, slots=True)
class EntryRanking:
    """How far every region is from one more region where requests may enter."""

    entry_region: str
    region_rtt_ms: tuple[tuple[str, float], ...] = ()
    """As :attr:`Locality.region_rtt_ms`, from ``entry_region``."""


@dataclass(frozen=True, slots=True)
class ClientRegion:
    """Requests from clients in ``cidr`` enter at ``region`` (the Fleet's map)."""

    cidr: str
    """An IPv4 or IPv6 network, e.g. ``127.10.0.0/16``."""
    region: str


@dataclass(frozen=True, slots=True)
class Locality:
    """Where requests enter, and how far every region is from there."""

    entry_region: str = ""
    """The gateway's location, e.g. ``asia-northeast1``; empty if unknown."""
    region_rtt_ms: tuple[tuple[str, float], ...] = ()
    """(region, round-trip ms from the entry region), closest first. A region absent
    from this list ranks after every listed one, in name order."""
    other_entries: tuple[EntryRanking, ...] = ()
    """Rankings from the other regions a request may enter at (every cluster region
    and every region of :attr:`client_regions`), sorted by region: the data plane
    compiles one plan per entry region, so a per-request entry costs a dict lookup."""
    client_regions: tuple[ClientRegion, ...] = ()
    """Client networks with their entry region, most specific first."""


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

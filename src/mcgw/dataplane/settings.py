"""Process knobs of the proxy: ports, limits and timeouts (never per route).

Per-route behaviour (backend timeouts, weights) lives in the route table; what is
here belongs to the process running it and is fixed for its lifetime.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """How one gateway process serves its route tables."""

    port_map: tuple[tuple[int, int], ...] = ()
    """(listener port, local port) pairs: a Gateway's port 80 may be served on an
    unprivileged local port. Local port 0 binds an ephemeral port (tests)."""
    max_request_line_bytes: int = 8 * KiB
    """Longest request target accepted, in bytes (414 beyond)."""
    max_header_bytes: int = 64 * KiB
    """Total size of all request header names and values, in bytes (431 beyond)."""
    max_headers: int = 100
    """Most request header fields accepted (431 beyond)."""
    max_body_bytes: int = 100 * MiB
    """Largest request body accepted, in bytes (413 beyond)."""
    header_read_timeout_s: float = 10.0
    """Seconds a client has to send a complete request head, counted from the accept
    (first request) or from the first byte after a keep-alive wait; bytes dripping in
    do not extend it (408 beyond)."""
    body_timeout_s: float = 10.0
    """Seconds of grace a request body has before :attr:`min_body_rate_bps` applies."""
    min_body_rate_bps: int = 1024
    """Least average request body rate, in bytes/s, past ``body_timeout_s`` (a slow
    POST gets 408 and the connection is closed). Time the gateway itself stops reading
    (a slow backend) does not count."""
    max_connections_per_listener: int = 10_000
    """Most open client connections per listener; more are answered 503 and closed."""
    max_pipelined_requests: int = 32
    """Most requests read ahead on one connection while an earlier one is proxied;
    the connection closes after those (the client retries what was not answered)."""
    idle_timeout_s: float = 60.0
    """Seconds an idle keep-alive client connection is kept open."""
    tunnel_idle_timeout_s: float = 3600.0
    """Seconds an upgraded (WebSocket) connection may pass no byte either way before
    both of its sides are closed."""
    connect_timeout_s: float = 2.0
    """Seconds to establish a TCP connection to an endpoint before trying another."""
    upstream_idle_s: float = 30.0
    """Seconds an idle pooled connection to an endpoint is kept for reuse."""
    upstream_max_idle_per_endpoint: int = 64
    """Most idle pooled connections kept per endpoint; more are closed."""
    max_connect_retries: int = 2
    """Retries on other endpoints after a connection failure (attempts = 1 + this)."""
    retry_buffer_bytes: int = 64 * KiB
    """Request body bytes kept to replay on a retry; a longer body that was
    already sent cannot be retried."""
    max_mirrors_in_flight: int = 256
    """Most RequestMirror copies in flight at once; more are dropped, never queued."""
    mirror_timeout_s: float = 5.0
    """Seconds a mirror copy may take (connect, send, response head) before it is cut."""
    via: str = "1.1 mcgw"
    """Value appended to the ``Via`` header of requests and responses."""
    access_log_dir: Path | None = None
    """Directory of the access log files; None disables access logging."""
    access_log_max_bytes: int = 256 * MiB
    """Size at which the access log starts a new file."""
    access_log_keep_files: int = 0
    """Most access log files kept (the oldest go first); 0 keeps them all."""
    access_log_max_age_s: float = 30 * 86_400.0
    """Access log files older than this are removed (Cloud Logging's default
    retention, 30 days); 0 keeps them forever."""
    project_id: str = "mcgw-local"
    """Cloud project label written in access log entries."""
    debug_headers: bool = False
    """Add ``x-mcgw-*`` response headers naming the route, cluster and endpoint, and
    the decision trace: entry region, region ranking, what the balancer saw."""
    trusted_peers: tuple[str, ...] = ()
    """Networks (CIDR, or single addresses) of proxies in front of the gateway. From a
    peer in them, X-Forwarded-For is appended to, X-Forwarded-Proto and -Host are
    kept, and :attr:`entry_region_header` is honoured; from any other peer (by
    default, every peer) X-Forwarded-For becomes the peer's address alone and -Proto
    and -Host are set by the gateway."""
    entry_region_header: str = ""
    """Request header naming the region a request entered at (e.g.
    ``x-mcgw-entry-region``), honoured only from :attr:`trusted_peers`; empty: none.
    Regions are ranked from there instead of from the gateway's location."""
    active_health_checks: bool = True
    """Probe endpoints as the table's HealthChecks say; off, only passive
    failures (connect errors, resets) take endpoints out."""
    timer_resolution_s: float = 0.1
    """Period of the sweep that enforces timeouts; timeouts fire up to this late."""
    drain_timeout_s: float = 10.0
    """On close, seconds in-flight requests get to finish before being cut."""
    metrics: bool = True
    """Count every request for Prometheus and the admin API (:mod:`mcgw.dataplane.metrics`);
    off, nothing is counted per request."""

    measure_rtt: bool = False
    """Rank regions by round trips the gateway measures to their endpoints
    (:mod:`mcgw.dataplane.rtt`) instead of the table's estimates or the Fleet's
    latencies (for requests entering at the gateway's location)."""
    rtt_probe_interval_s: float = 10.0
    """Seconds between two rounds of round-trip measurements."""

    reuse_port: bool = False
    """Bind listeners with SO_REUSEPORT, so that several worker processes share each
    port and the kernel spreads connections between them (:mod:`.workers`)."""

    def __post_init__(self) -> None:
        for peer in self.trusted_peers:
            try:
                ipaddress.ip_network(peer, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted peer {peer!r}: expected an IP network such as 10.0.0.0/8 "
                    "or one address"
                ) from None

    def local_port(self, listener_port: int) -> int:
        """Return the local port serving a listener port (``port_map`` or itself)."""
        for port, local in self.port_map:
            if port == listener_port:
                return local
        return listener_port

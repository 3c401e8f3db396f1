"""GKE's policy kinds (``networking.gke.io/v1``): HealthCheckPolicy, GCPBackendPolicy and
GCPTrafficDistributionPolicy.

Each attaches to a backend (a Service, or a ``net.gke.io`` ServiceImport for
multi-cluster backends) through ``spec.targetRef``, or ``spec.targetRefs`` for
GCPTrafficDistributionPolicy as GKE's CRD has it, and carries its settings in
``spec.default``.
Field names, ranges and enums are those of GoogleCloudPlatform/gke-gateway-api. GKE's
documented defaults are applied here (health checks every 5 s, timeout 5 s, 2 healthy /
2 unhealthy; backend timeout 30 s; 1e8 requests per second per endpoint, i.e.
unlimited), so the translator reads numbers, never None.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mcgw.config.base import Model, Resource
from mcgw.config.problem import invalid

API_VERSION = "networking.gke.io/v1"

DEFAULT_MAX_RATE_PER_ENDPOINT = 100_000_000
"""GKE's default target capacity per endpoint: so high that it never limits."""


class PolicyTargetReference(Model):
    """The object a policy applies to, e.g. ``{group: net.gke.io, kind: ServiceImport}``."""

    group: str = Field(max_length=253)
    """``""`` for a core Service."""
    kind: str = Field(min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = None
    """None: the policy's own namespace."""


# --- HealthCheckPolicy ------------------------------------------------------------------

PortSpecification = Literal["USE_FIXED_PORT", "USE_NAMED_PORT", "USE_SERVING_PORT"]
ProxyHeader = Literal["NONE", "PROXY_V1"]


class _CommonHealthCheck(Model):
    port_specification: PortSpecification | None = None
    """None: USE_FIXED_PORT if ``port`` is set, USE_NAMED_PORT if ``portName`` is, else
    USE_SERVING_PORT (each endpoint's own port)."""
    port: int | None = Field(default=None, ge=1, le=65535)
    port_name: str | None = Field(default=None, max_length=63)

    @property
    def effective_port_specification(self) -> PortSpecification:
        if self.port_specification is not None:
            return self.port_specification
        if self.port is not None:
            return "USE_FIXED_PORT"
        if self.port_name is not None:
            return "USE_NAMED_PORT"
        return "USE_SERVING_PORT"


class HTTPHealthCheck(_CommonHealthCheck):
    host: str | None = Field(default=None, max_length=2048)
    """Host header; None sends the endpoint's IP."""
    request_path: str = Field(
        default="/", max_length=2048, pattern=r"/[A-Za-z0-9/\-._~%!?$&'()*+,;=:]*$"
    )
    response: str | None = Field(default=None, max_length=1024)
    """Text the first 1024 bytes of the body must contain; None: the status decides."""
    proxy_header: ProxyHeader = "NONE"


class HTTPSHealthCheck(HTTPHealthCheck):
    pass


class HTTP2HealthCheck(HTTPHealthCheck):
    pass


class TCPHealthCheck(_CommonHealthCheck):
    request: str | None = Field(default=None, max_length=1024)
    response: str | None = Field(default=None, max_length=1024)
    proxy_header: ProxyHeader = "NONE"


class GRPCHealthCheck(_CommonHealthCheck):
    grpc_service_name: str | None = Field(default=None, max_length=1024)


HealthCheckType = Literal["TCP", "HTTP", "HTTPS", "HTTP2", "GRPC"]
_CHECK_FIELDS: dict[str, tuple[str, str]] = {
    "TCP": ("tcp_health_check", "tcpHealthCheck"),
    "HTTP": ("http_health_check", "httpHealthCheck"),
    "HTTPS": ("https_health_check", "httpsHealthCheck"),
    "HTTP2": ("http2_health_check", "http2HealthCheck"),
    "GRPC": ("grpc_health_check", "grpcHealthCheck"),
}


class HealthCheck(Model):
    """``type`` plus exactly the one matching per-protocol section."""

    type: HealthCheckType
    tcp_health_check: TCPHealthCheck | None = None
    http_health_check: HTTPHealthCheck | None = None
    https_health_check: HTTPSHealthCheck | None = None
    http2_health_check: HTTP2HealthCheck | None = None
    grpc_health_check: GRPCHealthCheck | None = None

    @model_validator(mode="after")
    def _one_section(self) -> HealthCheck:
        wanted, alias = _CHECK_FIELDS[self.type]
        others = [a for f, a in _CHECK_FIELDS.values() if f != wanted and getattr(self, f)]
        if others:
            raise invalid(
                f"config type {self.type} does not use {', '.join(others)}",
                "remove them, or change type to match",
            )
        if getattr(self, wanted) is None:
            raise invalid(
                f"config type {self.type} needs {alias}",
                f"add {alias}: {{}} (an empty section checks the serving port with defaults)",
            )
        return self


class LogConfig(Model):
    enabled: bool = False


class HealthCheckPolicyConfig(Model):
    check_interval_sec: int = Field(default=5, ge=1, le=300)
    timeout_sec: int = Field(default=5, ge=1, le=300)
    healthy_threshold: int = Field(default=2, ge=1, le=10)
    unhealthy_threshold: int = Field(default=2, ge=1, le=10)
    config: HealthCheck | None = None
    """None: an HTTP GET of ``/`` on each endpoint's serving port."""
    log_config: LogConfig | None = None

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> HealthCheckPolicyConfig:
        if self.timeout_sec > self.check_interval_sec:
            raise invalid(
                f"timeoutSec {self.timeout_sec} is greater than checkIntervalSec "
                f"{self.check_interval_sec}",
                "make timeoutSec at most checkIntervalSec",
                at="timeoutSec",
            )
        return self


class HealthCheckPolicySpec(Model):
    target_ref: PolicyTargetReference
    default: HealthCheckPolicyConfig = Field(default_factory=HealthCheckPolicyConfig)


class HealthCheckPolicy(Resource):
    """How the gateway checks the endpoints of the target backend."""

    api_version: Literal["networking.gke.io/v1"]
    kind: Literal["HealthCheckPolicy"]
    spec: HealthCheckPolicySpec


# --- GCPBackendPolicy -------------------------------------------------------------------


class LoggingConfig(Model):
    enabled: bool = False
    sample_rate: int = Field(default=1_000_000, ge=0, le=1_000_000)
    """Share of requests logged, in millionths (1e6 = all)."""


SessionAffinityType = Literal[
    "CLIENT_IP",
    "CLIENT_IP_PORT_PROTO",
    "CLIENT_IP_PROTO",
    "GENERATED_COOKIE",
    "HEADER_FIELD",
    "HTTP_COOKIE",
    "NONE",
]


_COOKIE_TYPES = ("GENERATED_COOKIE", "HTTP_COOKIE")


class SessionAffinityConfig(Model):
    type: SessionAffinityType = "NONE"
    cookie_ttl_sec: int | None = Field(default=None, ge=0, le=1_209_600)
    """GENERATED_COOKIE / HTTP_COOKIE only; 0 means a session cookie."""
    http_header_name: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"
    )
    """HEADER_FIELD only: the request header whose value is hashed. mcgw extension:
    GKE's GCPBackendPolicy has no such field; the name is that of the backend service's
    ``consistentHash.httpHeaderName`` it would set."""

    @model_validator(mode="after")
    def _fields_match_type(self) -> SessionAffinityConfig:
        if self.type == "HEADER_FIELD" and self.http_header_name is None:
            raise invalid(
                "type HEADER_FIELD needs httpHeaderName",
                "add httpHeaderName: <the request header to hash>, e.g. x-user-id",
            )
        if self.type != "HEADER_FIELD" and self.http_header_name is not None:
            raise invalid(
                f"httpHeaderName is only used with type HEADER_FIELD, not {self.type}",
                "remove httpHeaderName, or set type: HEADER_FIELD",
                at="httpHeaderName",
            )
        if self.type not in _COOKIE_TYPES and self.cookie_ttl_sec is not None:
            raise invalid(
                f"cookieTtlSec is only used with a cookie type, not {self.type}",
                "remove cookieTtlSec, or set type: GENERATED_COOKIE",
                at="cookieTtlSec",
            )
        return self


class ConnectionDraining(Model):
    draining_timeout_sec: int = Field(default=0, ge=0, le=3600)


class Oauth2ClientSecret(Model):
    name: str | None = None


class IdentityAwareProxyConfig(Model):
    enabled: bool = False
    oauth2_client_secret: Oauth2ClientSecret | None = None
    client_id: str | None = Field(default=None, alias="clientID")


class GCPBackendPolicyConfig(Model):
    timeout_sec: int = Field(default=30, ge=1, le=2_147_483_647)
    """Time to wait for a backend's response."""
    max_rate_per_endpoint: int = Field(default=DEFAULT_MAX_RATE_PER_ENDPOINT, ge=1, le=10**9)
    """Target requests per second per endpoint: the capacity that drives spill-over."""
    capacity_scaler: float = Field(default=1.0, ge=0.0, le=1.0)
    """mcgw extension (GKE sets it on the backend service): share of capacity offered."""
    session_affinity: SessionAffinityConfig | None = None
    connection_draining: ConnectionDraining | None = None
    logging: LoggingConfig | None = None
    security_policy: str | None = None
    iap: IdentityAwareProxyConfig | None = None
    backend_preference: Literal["DEFAULT", "PREFERRED"] | None = None


class GCPBackendPolicySpec(Model):
    target_ref: PolicyTargetReference
    default: GCPBackendPolicyConfig = Field(default_factory=GCPBackendPolicyConfig)

    @model_validator(mode="after")
    def _preference_on_export(self) -> GCPBackendPolicySpec:
        target = self.target_ref
        if self.default.backend_preference is not None and (
            target.group != "net.gke.io" or target.kind != "ServiceExport"
        ):
            raise invalid(
                "backendPreference can only be set when targetRef is a net.gke.io ServiceExport",
                "target the ServiceExport, or remove backendPreference",
                at="default.backendPreference",
            )
        return self


class GCPBackendPolicy(Resource):
    """Load-balancing settings of the target backend: capacity, timeout, affinity, ..."""

    api_version: Literal["networking.gke.io/v1"]
    kind: Literal["GCPBackendPolicy"]
    spec: GCPBackendPolicySpec


# --- GCPTrafficDistributionPolicy -------------------------------------------------------

ServiceLbAlgorithm = Literal[
    "WATERFALL_BY_REGION", "WATERFALL_BY_ZONE", "SPRAY_TO_REGION", "SPRAY_TO_WORLD"
]
"""How traffic is split between regions and zones (GKE's CRD has the first three;
SPRAY_TO_WORLD is the Service LB policy's fourth, accepted as an mcgw extension)."""

LocalityLbAlgorithm = Literal[
    "ROUND_ROBIN",
    "LEAST_REQUEST",
    "RING_HASH",
    "RANDOM",
    "ORIGINAL_DESTINATION",
    "MAGLEV",
    "WEIGHTED_ROUND_ROBIN",
]

DEFAULT_FAILOVER_HEALTH_THRESHOLD = 70
"""Envoy's built-in value, which GKE documents as the default for its proxies."""


class TrafficPolicyTargetReference(Model):
    """One of ``spec.targetRefs``: always in the policy's own namespace."""

    group: str = Field(max_length=253)
    kind: str = Field(min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=253)


class AutoCapacityDrain(Model):
    enable_auto_capacity_drain: bool = False
    """Treat a (cluster, zone) with under 25 % healthy endpoints as empty."""


class FailoverConfig(Model):
    failover_health_threshold: int | None = Field(default=None, ge=1, le=99)
    """Percent of healthy endpoints below which a region sheds its traffic to the next
    one; None: the data plane's default (:data:`DEFAULT_FAILOVER_HEALTH_THRESHOLD`)."""


class GCPTrafficDistributionPolicyConfig(Model):
    service_lb_algorithm: ServiceLbAlgorithm = "WATERFALL_BY_REGION"
    locality_lb_algorithm: LocalityLbAlgorithm = "ROUND_ROBIN"
    auto_capacity_drain: AutoCapacityDrain | None = None
    failover_config: FailoverConfig | None = None

    @property
    def failover_health_threshold(self) -> int:
        """The threshold in percent, GKE's default applied."""
        config = self.failover_config
        if config is None or config.failover_health_threshold is None:
            return DEFAULT_FAILOVER_HEALTH_THRESHOLD
        return config.failover_health_threshold


class GCPTrafficDistributionPolicySpec(Model):
    target_refs: list[TrafficPolicyTargetReference] = Field(min_length=1, max_length=16)
    default: GCPTrafficDistributionPolicyConfig = Field(
        default_factory=GCPTrafficDistributionPolicyConfig
    )


class GCPTrafficDistributionPolicy(Resource):
    """How the target backends' traffic is spread over regions and zones."""

    api_version: Literal["networking.gke.io/v1"]
    kind: Literal["GCPTrafficDistributionPolicy"]
    spec: GCPTrafficDistributionPolicySpec

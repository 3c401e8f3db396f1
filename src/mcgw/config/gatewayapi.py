"""Gateway API (``gateway.networking.k8s.io``): GatewayClass, Gateway, HTTPRoute, ReferenceGrant.

The models follow the v1 Go types of kubernetes-sigs/gateway-api field by field (standard
and experimental channel), so that every manifest the API server would accept loads here,
and they apply what the API server applies on the way in:

* the CRD defaults (a match without a path matches ``PathPrefix /``, a backendRef weighs
  1 and points at a core ``Service``, a parentRef points at a ``Gateway``, a listener
  admits routes from its own namespace, ...), so later layers never guess;
* the CRD validation that is cheap to check (patterns, ranges, list sizes and the CEL
  rules that tie fields of one object together), so that what the API server would
  reject is a config error here too.

What only makes sense across objects (a parentRef to a Gateway that does not exist, two
listeners that conflict, a cross-namespace reference without a ReferenceGrant) is not
checked here: the translator reports it as a status condition with the spec's reason.

``v1beta1`` (and ``v1alpha2`` for ReferenceGrant) have the same schema and load into the
same models; ``api_version`` keeps the spelling that was read.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from mcgw.config.base import Model, Resource
from mcgw.config.core import LabelSelector
from mcgw.config.problem import invalid

GROUP = "gateway.networking.k8s.io"
V1 = f"{GROUP}/v1"
V1BETA1 = f"{GROUP}/v1beta1"
V1ALPHA2 = f"{GROUP}/v1alpha2"

# Patterns of the CRDs, kept as constants so the loader can attach a fix to each.
DNS_LABELS = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
HOSTNAME_PATTERN = rf"^(\*\.)?{DNS_LABELS}$"
PRECISE_HOSTNAME_PATTERN = rf"^{DNS_LABELS}$"
GROUP_PATTERN = rf"^$|^{DNS_LABELS}$"
KIND_PATTERN = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
SECTION_NAME_PATTERN = PRECISE_HOSTNAME_PATTERN
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"
DURATION_PATTERN = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"
CONTROLLER_NAME_PATTERN = rf"^{DNS_LABELS}/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$"
PROTOCOL_PATTERN = (
    r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"
    rf"|{DNS_LABELS}/[A-Za-z0-9]+$"
)
ADDRESS_TYPE_PATTERN = (
    rf"^Hostname|IPAddress|NamedAddress|{DNS_LABELS}/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$"
)
_PATH_CHARS = re.compile(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$")
_DURATION_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}

Hostname = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=HOSTNAME_PATTERN)]
PreciseHostname = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=PRECISE_HOSTNAME_PATTERN)
]
Group = Annotated[str, StringConstraints(max_length=253, pattern=GROUP_PATTERN)]
Kind = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=KIND_PATTERN)]
ObjectName = Annotated[str, StringConstraints(min_length=1, max_length=253)]
Namespace = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=NAMESPACE_PATTERN)
]
SectionName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=SECTION_NAME_PATTERN)
]
HeaderName = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=HEADER_NAME_PATTERN)
]
Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN)]
"""GEP-2257 duration such as ``1h30m`` or ``500ms``; see :func:`duration_seconds`."""
PortNumber = Annotated[int, Field(ge=1, le=65535)]

HTTPMethod = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
HTTPMethodWithWildcard = Literal[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*"
]
FilterType = Literal[
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "RequestRedirect",
    "URLRewrite",
    "ExtensionRef",
    "CORS",
    "ExternalAuth",
]
FromNamespaces = Literal["All", "Selector", "Same"]


def duration_seconds(value: str) -> float:
    """Seconds in a GEP-2257 duration (``"1m30s"`` → 90.0); ``"0s"`` means "no limit".

    Raises:
        ValueError: ``value`` is not a Gateway API duration.
    """
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"not a Gateway API duration: {value!r}")
    return sum(int(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(value))


def _repeated(values: list[str]) -> list[str]:
    return sorted({v for v in values if values.count(v) > 1})


# --- references -------------------------------------------------------------------------


class ParentReference(Model):
    """Where a route attaches: a Gateway (default) or one of its listeners."""

    group: Group = GROUP
    kind: Kind = "Gateway"
    namespace: Namespace | None = None
    """None: the route's own namespace."""
    name: ObjectName
    section_name: SectionName | None = None
    """Listener name; None attaches to every listener that admits the route."""
    port: PortNumber | None = None


class BackendObjectReference(Model):
    """A backend: a core Service by default, or e.g. ``net.gke.io`` ``ServiceImport``."""

    group: Group = ""
    kind: Kind = "Service"
    name: ObjectName
    namespace: Namespace | None = None
    port: PortNumber | None = None

    @model_validator(mode="after")
    def _service_has_port(self) -> BackendObjectReference:
        if self.group == "" and self.kind == "Service" and self.port is None:
            raise invalid(
                f"required when the backend is a Service ({self.name})",
                "add the Service port to send to, e.g. port: 8080",
                at="port",
            )
        return self


class LocalObjectReference(Model):
    """An object in the route's own namespace, e.g. an ExtensionRef filter."""

    group: Group
    kind: Kind
    name: ObjectName


class SecretObjectReference(Model):
    group: Group = ""
    kind: Kind = "Secret"
    name: ObjectName
    namespace: Namespace | None = None


class ObjectReference(Model):
    group: Group
    kind: Kind
    name: ObjectName
    namespace: Namespace | None = None


# --- HTTPRoute: matches -----------------------------------------------------------------


class HTTPPathMatch(Model):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: str = Field(default="/", max_length=1024)

    @model_validator(mode="after")
    def _valid_path(self) -> HTTPPathMatch:
        if self.type == "RegularExpression":
            return self
        v = self.value
        problem = None
        if not v.startswith("/"):
            problem = "must be an absolute path and start with '/'"
        elif any(bad in v for bad in ("//", "/./", "/../", "%2f", "%2F", "#")):
            problem = "must not contain '//', '/./', '/../', '%2f' or '#'"
        elif v.endswith(("/..", "/.")):
            problem = "must not end with '/..' or '/.'"
        elif not _PATH_CHARS.match(v):
            problem = "has characters that are not allowed in a path"
        if problem is not None:
            raise invalid(
                f"path value {v!r} {problem} (type {self.type})",
                "write a normalized absolute path such as /store, or use type RegularExpression",
                at="value",
            )
        return self


class HTTPHeaderMatch(Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: str = Field(min_length=1, max_length=4096)


class HTTPQueryParamMatch(Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: str = Field(min_length=1, max_length=1024)


class HTTPRouteMatch(Model):
    """All conditions must hold (AND); a rule matches if any of its matches does (OR)."""

    path: HTTPPathMatch = Field(default_factory=HTTPPathMatch)
    headers: list[HTTPHeaderMatch] = Field(default_factory=list, max_length=16)
    query_params: list[HTTPQueryParamMatch] = Field(default_factory=list, max_length=16)
    method: HTTPMethod | None = None


# --- HTTPRoute: filters -----------------------------------------------------------------


class HTTPHeader(Model):
    name: HeaderName
    value: str = Field(min_length=1, max_length=4096)


class HTTPHeaderFilter(Model):
    set: list[HTTPHeader] = Field(default_factory=list, max_length=16)
    add: list[HTTPHeader] = Field(default_factory=list, max_length=16)
    remove: list[str] = Field(default_factory=list, max_length=16)


class HTTPPathModifier(Model):
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    replace_full_path: str | None = Field(default=None, max_length=1024)
    replace_prefix_match: str | None = Field(default=None, max_length=1024)

    @model_validator(mode="after")
    def _type_matches_value(self) -> HTTPPathModifier:
        full, prefix = self.replace_full_path is not None, self.replace_prefix_match is not None
        if self.type == "ReplaceFullPath" and (not full or prefix):
            raise invalid(
                "type ReplaceFullPath needs replaceFullPath (and no replacePrefixMatch)",
                "set replaceFullPath, or change type to ReplacePrefixMatch",
            )
        if self.type == "ReplacePrefixMatch" and (not prefix or full):
            raise invalid(
                "type ReplacePrefixMatch needs replacePrefixMatch (and no replaceFullPath)",
                "set replacePrefixMatch, or change type to ReplaceFullPath",
            )
        return self


class HTTPRequestRedirectFilter(Model):
    scheme: Literal["http", "https"] | None = None
    hostname: PreciseHostname | None = None
    path: HTTPPathModifier | None = None
    port: PortNumber | None = None
    status_code: Literal[301, 302, 303, 307, 308] = 302


class HTTPURLRewriteFilter(Model):
    hostname: PreciseHostname | None = None
    path: HTTPPathModifier | None = None


class Fraction(Model):
    numerator: int = Field(ge=0)
    denominator: int = Field(default=100, ge=1)

    @model_validator(mode="after")
    def _proper(self) -> Fraction:
        if self.numerator > self.denominator:
            raise invalid(
                f"numerator {self.numerator} is greater than denominator {self.denominator}",
                "make the numerator at most the denominator",
                at="numerator",
            )
        return self


class HTTPRequestMirrorFilter(Model):
    backend_ref: BackendObjectReference
    percent: int | None = Field(default=None, ge=0, le=100)
    fraction: Fraction | None = None

    @model_validator(mode="after")
    def _one_share(self) -> HTTPRequestMirrorFilter:
        if self.percent is not None and self.fraction is not None:
            raise invalid("both percent and fraction are set", "keep only one of them")
        return self


def _alone_if_wildcard(field: str, values: list[str]) -> None:
    if "*" in values and len(values) > 1:
        raise invalid(
            f"{field} has '*' alongside other values", "use either '*' alone or a list of values"
        )


class HTTPCORSFilter(Model):
    allow_origins: list[str] = Field(default_factory=list, max_length=64)
    allow_credentials: bool | None = None
    allow_methods: list[HTTPMethodWithWildcard] = Field(default_factory=list, max_length=9)
    allow_headers: list[str] = Field(default_factory=list, max_length=64)
    expose_headers: list[str] = Field(default_factory=list, max_length=64)
    max_age: int = Field(default=5, ge=1)
    """Seconds a browser may cache the preflight answer."""

    @model_validator(mode="after")
    def _wildcards(self) -> HTTPCORSFilter:
        _alone_if_wildcard("allowOrigins", self.allow_origins)
        _alone_if_wildcard("allowMethods", list(self.allow_methods))
        _alone_if_wildcard("allowHeaders", self.allow_headers)
        return self


class GRPCAuthConfig(Model):
    allowed_headers: list[str] = Field(default_factory=list, max_length=64)


class HTTPAuthConfig(Model):
    path: str | None = Field(default=None, max_length=1024)
    allowed_headers: list[str] = Field(default_factory=list, max_length=64)
    allowed_response_headers: list[str] = Field(default_factory=list, max_length=64)


class ForwardBodyConfig(Model):
    max_size: int = Field(default=0, ge=0)


class HTTPExternalAuthFilter(Model):
    """Experimental channel: ask an external service to authorize each request."""

    protocol: Literal["HTTP", "GRPC"]
    backend_ref: BackendObjectReference
    grpc: GRPCAuthConfig | None = None
    http: HTTPAuthConfig | None = None
    forward_body: ForwardBodyConfig | None = None


_FILTER_FIELDS: dict[str, str] = {
    "RequestHeaderModifier": "request_header_modifier",
    "ResponseHeaderModifier": "response_header_modifier",
    "RequestMirror": "request_mirror",
    "RequestRedirect": "request_redirect",
    "URLRewrite": "url_rewrite",
    "ExtensionRef": "extension_ref",
    "CORS": "cors",
    "ExternalAuth": "external_auth",
}
_FILTER_ALIASES: dict[str, str] = {
    "request_header_modifier": "requestHeaderModifier",
    "response_header_modifier": "responseHeaderModifier",
    "request_mirror": "requestMirror",
    "request_redirect": "requestRedirect",
    "url_rewrite": "urlRewrite",
    "extension_ref": "extensionRef",
    "cors": "cors",
    "external_auth": "externalAuth",
}


class HTTPRouteFilter(Model):
    """One processing step; ``type`` says which of the other fields holds its settings."""

    type: FilterType
    request_header_modifier: HTTPHeaderFilter | None = None
    response_header_modifier: HTTPHeaderFilter | None = None
    request_mirror: HTTPRequestMirrorFilter | None = None
    request_redirect: HTTPRequestRedirectFilter | None = None
    url_rewrite: HTTPURLRewriteFilter | None = None
    cors: HTTPCORSFilter | None = None
    external_auth: HTTPExternalAuthFilter | None = None
    extension_ref: LocalObjectReference | None = None

    @model_validator(mode="after")
    def _settings_match_type(self) -> HTTPRouteFilter:
        wanted = _FILTER_FIELDS[self.type]
        if getattr(self, wanted) is None:
            raise invalid(
                f"filter type {self.type} needs its settings in {_FILTER_ALIASES[wanted]}",
                f"add {_FILTER_ALIASES[wanted]}: {{...}} to this filter",
            )
        extra = [
            alias
            for name, alias in _FILTER_ALIASES.items()
            if name != wanted and getattr(self, name) is not None
        ]
        if extra:
            raise invalid(
                f"filter type {self.type} does not use {', '.join(extra)}",
                "remove them, or put them in a filter of their own type",
            )
        return self


def _check_filters(filters: list[HTTPRouteFilter]) -> None:
    types: list[str] = [f.type for f in filters]
    if "RequestRedirect" in types and "URLRewrite" in types:
        raise invalid(
            "filters have both RequestRedirect and URLRewrite",
            "keep one: a redirect answers the client, a rewrite changes the forwarded request",
        )
    once = ("CORS", "RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect")
    repeated = [t for t in (*once, "URLRewrite") if types.count(t) > 1]
    if repeated:
        raise invalid(
            f"filter {repeated[0]} is repeated",
            "merge them into one filter of that type",
        )


def _uses_prefix_replacement(filters: list[HTTPRouteFilter]) -> bool:
    for f in filters:
        modifier = f.request_redirect or f.url_rewrite
        path = modifier.path if modifier is not None else None
        if path is not None and path.type == "ReplacePrefixMatch":
            return True
    return False


# --- HTTPRoute: backends, rules, spec ----------------------------------------------------


class HTTPBackendRef(BackendObjectReference):
    weight: int = Field(default=1, ge=0, le=1_000_000)
    """Share of requests: weight / sum of weights in the rule; 0 sends nothing."""
    filters: list[HTTPRouteFilter] = Field(default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _filters(self) -> HTTPBackendRef:
        _check_filters(self.filters)
        return self


class HTTPRouteTimeouts(Model):
    request: Duration | None = None
    backend_request: Duration | None = None

    @model_validator(mode="after")
    def _backend_within_request(self) -> HTTPRouteTimeouts:
        if self.request is None or self.backend_request is None:
            return self
        request = duration_seconds(self.request)
        if request != 0 and duration_seconds(self.backend_request) > request:
            raise invalid(
                f"backendRequest timeout {self.backend_request} is longer than "
                f"request timeout {self.request}",
                "make backendRequest at most request",
                at="backendRequest",
            )
        return self


class HTTPRouteRetry(Model):
    codes: list[Annotated[int, Field(ge=400, le=599)]] = Field(default_factory=list)
    attempts: int | None = Field(default=None, ge=0)
    """Retries after the first try; 0 disables retries, None leaves it to mcgw."""
    backoff: Duration | None = None


class CookieConfig(Model):
    lifetime_type: Literal["Permanent", "Session"] = "Session"


class SessionPersistence(Model):
    session_name: str | None = Field(default=None, max_length=128)
    absolute_timeout: Duration | None = None
    idle_timeout: Duration | None = None
    type: Literal["Cookie", "Header"] = "Cookie"
    cookie_config: CookieConfig | None = None

    @model_validator(mode="after")
    def _permanent_needs_timeout(self) -> SessionPersistence:
        permanent = self.cookie_config is not None and self.cookie_config.lifetime_type
        if permanent == "Permanent" and self.absolute_timeout is None:
            raise invalid(
                "a Permanent cookie needs absoluteTimeout",
                "set absoluteTimeout, e.g. 1h, or use lifetimeType Session",
                at="cookieConfig.lifetimeType",
            )
        return self


def _default_matches() -> list[HTTPRouteMatch]:
    return [HTTPRouteMatch()]


class HTTPRouteRule(Model):
    name: SectionName | None = None
    matches: list[HTTPRouteMatch] = Field(default_factory=_default_matches, max_length=64)
    """Empty in the manifest means one match: ``PathPrefix /``."""
    filters: list[HTTPRouteFilter] = Field(default_factory=list, max_length=16)
    backend_refs: list[HTTPBackendRef] = Field(default_factory=list, max_length=16)
    timeouts: HTTPRouteTimeouts | None = None
    retry: HTTPRouteRetry | None = None
    session_persistence: SessionPersistence | None = None

    @model_validator(mode="after")
    def _consistent(self) -> HTTPRouteRule:
        _check_filters(self.filters)
        if self.backend_refs and any(f.type == "RequestRedirect" for f in self.filters):
            raise invalid(
                "a RequestRedirect filter cannot be used together with backendRefs",
                "remove backendRefs (the redirect answers the request) or the redirect",
            )
        prefix_replaced = _uses_prefix_replacement(self.filters) or any(
            _uses_prefix_replacement(b.filters) for b in self.backend_refs
        )
        if prefix_replaced and (
            len(self.matches) != 1 or self.matches[0].path.type != "PathPrefix"
        ):
            raise invalid(
                "path.replacePrefixMatch needs exactly one match, of type PathPrefix",
                "give the rule a single PathPrefix match, or use ReplaceFullPath",
            )
        return self


def _default_rules() -> list[HTTPRouteRule]:
    return [HTTPRouteRule()]


def _check_parent_refs(refs: list[ParentReference]) -> None:
    """Two refs to the same parent must both name a section or port, and not the same one."""
    by_parent: dict[tuple[str, str, str, str], list[ParentReference]] = {}
    for ref in refs:
        key = (ref.group, ref.kind, ref.namespace or "", ref.name)
        by_parent.setdefault(key, []).append(ref)
    for (_, kind, _, name), same in by_parent.items():
        if len(same) < 2:
            continue
        if any(r.section_name is None and r.port is None for r in same):
            raise invalid(
                f"parentRefs name {kind} {name} more than once without sectionName or port",
                "give each of them a different sectionName (listener name), or keep one",
                at="parentRefs",
            )
        sections = [(r.section_name, r.port) for r in same]
        if len(set(sections)) != len(sections):
            raise invalid(
                f"parentRefs name the same sectionName/port of {kind} {name} twice",
                "remove the duplicate parentRef",
                at="parentRefs",
            )


class HTTPRouteSpec(Model):
    parent_refs: list[ParentReference] = Field(default_factory=list, max_length=32)
    hostnames: list[Hostname] = Field(default_factory=list, max_length=16)
    rules: list[HTTPRouteRule] = Field(default_factory=_default_rules, min_length=1, max_length=16)
    """Absent in the manifest means one rule matching everything, with no backend."""
    use_default_gateways: Literal["All", "None"] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> HTTPRouteSpec:
        _check_parent_refs(self.parent_refs)
        repeated = _repeated([r.name for r in self.rules if r.name is not None])
        if repeated:
            raise invalid(
                f"rule name {repeated[0]!r} is used twice",
                "give every named rule a different name",
                at="rules",
            )
        total = sum(len(r.matches) for r in self.rules)
        if total > 128:
            raise invalid(
                f"the rules hold {total} matches in all; at most 128 are allowed",
                "split the route into several HTTPRoutes",
                at="rules",
            )
        return self


class HTTPRoute(Resource):
    api_version: Literal["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"]
    kind: Literal["HTTPRoute"]
    spec: HTTPRouteSpec


# --- Gateway ----------------------------------------------------------------------------


class RouteNamespaces(Model):
    from_: FromNamespaces = Field(default="Same", alias="from")
    selector: LabelSelector | None = None
    """Used when ``from`` is ``Selector``."""


class RouteGroupKind(Model):
    group: Group = GROUP
    kind: Kind


class AllowedRoutes(Model):
    namespaces: RouteNamespaces = Field(default_factory=RouteNamespaces)
    kinds: list[RouteGroupKind] = Field(default_factory=list, max_length=8)
    """Empty: the kinds the listener's protocol supports (HTTPRoute for HTTP/HTTPS)."""


class FrontendTLSValidation(Model):
    ca_certificate_refs: list[ObjectReference] = Field(min_length=1, max_length=8)
    mode: Literal["AllowValidOnly", "AllowInsecureFallback"] = "AllowValidOnly"


class ListenerTLSConfig(Model):
    mode: Literal["Terminate", "Passthrough"] = "Terminate"
    certificate_refs: list[SecretObjectReference] = Field(default_factory=list, max_length=64)
    options: dict[str, str] = Field(default_factory=dict, max_length=16)
    frontend_validation: FrontendTLSValidation | None = None
    """Experimental in Gateway API v1.1-v1.2, moved to ``spec.tls.frontend`` later."""

    @model_validator(mode="after")
    def _terminate_has_certificate(self) -> ListenerTLSConfig:
        if self.mode == "Terminate" and not self.certificate_refs and not self.options:
            raise invalid(
                "tls mode Terminate needs certificateRefs (or options)",
                "add certificateRefs: [{name: <tls secret>}]",
                at="certificateRefs",
            )
        return self


class Listener(Model):
    name: SectionName
    hostname: Hostname | None = None
    """None matches every host."""
    port: PortNumber
    protocol: str = Field(min_length=1, max_length=255, pattern=PROTOCOL_PATTERN)
    """``HTTP``, ``HTTPS``, ``TLS``, ``TCP``, ``UDP`` or a domain-prefixed custom protocol."""
    tls: ListenerTLSConfig | None = None
    allowed_routes: AllowedRoutes = Field(default_factory=AllowedRoutes)


class GatewaySpecAddress(Model):
    type: str = Field(
        default="IPAddress", min_length=1, max_length=253, pattern=ADDRESS_TYPE_PATTERN
    )
    value: str | None = Field(default=None, max_length=253)


class LocalParametersReference(Model):
    group: Group
    kind: Kind
    name: str = Field(min_length=1, max_length=253)


class GatewayInfrastructure(Model):
    labels: dict[str, str] = Field(default_factory=dict, max_length=8)
    annotations: dict[str, str] = Field(default_factory=dict, max_length=16)
    parameters_ref: LocalParametersReference | None = None


class ListenerNamespaces(Model):
    from_: Literal["All", "Selector", "Same", "None"] = Field(default="None", alias="from")
    selector: LabelSelector | None = None


class AllowedListeners(Model):
    namespaces: ListenerNamespaces = Field(default_factory=ListenerNamespaces)


class GatewayBackendTLS(Model):
    client_certificate_ref: SecretObjectReference | None = None


class TLSConfig(Model):
    validation: FrontendTLSValidation | None = None


class TLSPortConfig(Model):
    port: PortNumber
    tls: TLSConfig


class FrontendTLSConfig(Model):
    default: TLSConfig
    per_port: list[TLSPortConfig] = Field(default_factory=list, max_length=64)


class GatewayTLSConfig(Model):
    backend: GatewayBackendTLS | None = None
    frontend: FrontendTLSConfig | None = None


def _check_listeners(listeners: list[Listener]) -> None:
    for index, listener in enumerate(listeners):
        protocol = listener.protocol.upper()
        at = f"listeners[{index}]"
        if protocol in ("HTTP", "TCP", "UDP") and listener.tls is not None:
            raise invalid(
                f"must not be set for protocol {listener.protocol}",
                "remove tls, or use protocol HTTPS",
                at=f"{at}.tls",
            )
        if protocol == "HTTPS" and listener.tls is not None and listener.tls.mode != "Terminate":
            raise invalid(
                "must be Terminate for protocol HTTPS", "set mode: Terminate", at=f"{at}.tls.mode"
            )
        if protocol == "TLS" and listener.tls is None:
            raise invalid(
                "required for protocol TLS", "add tls: {mode: Passthrough}", at=f"{at}.tls"
            )
        if protocol in ("TCP", "UDP") and listener.hostname is not None:
            raise invalid(
                f"must not be set for protocol {listener.protocol}",
                "remove hostname",
                at=f"{at}.hostname",
            )
    names = [listener.name for listener in listeners]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise invalid(
                f"listener name {name!r} is used twice",
                "give every listener a different name",
                at=f"listeners[{index}].name",
            )
    combos = [(x.port, x.protocol, x.hostname) for x in listeners]
    for index, combo in enumerate(combos):
        if combo in combos[:index]:
            port, protocol, hostname = combo
            raise invalid(
                f"another listener has the same port {port}, protocol {protocol} and "
                f"hostname {hostname or '(none)'}",
                "change the port or hostname of one of them, or merge them",
                at=f"listeners[{index}]",
            )


class GatewaySpec(Model):
    gateway_class_name: ObjectName
    listeners: list[Listener] = Field(min_length=1, max_length=64)
    addresses: list[GatewaySpecAddress] = Field(default_factory=list, max_length=16)
    infrastructure: GatewayInfrastructure | None = None
    allowed_listeners: AllowedListeners | None = None
    tls: GatewayTLSConfig | None = None
    backend_tls: GatewayBackendTLS | None = Field(default=None, alias="backendTLS")
    """Experimental in Gateway API v1.3, moved to ``tls.backend`` later."""
    default_scope: Literal["All", "None"] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> GatewaySpec:
        _check_listeners(self.listeners)
        return self


class Gateway(Resource):
    api_version: Literal["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"]
    kind: Literal["Gateway"]
    spec: GatewaySpec


# --- GatewayClass -----------------------------------------------------------------------


class ParametersReference(Model):
    group: Group
    kind: Kind
    name: str = Field(min_length=1, max_length=253)
    namespace: Namespace | None = None


class GatewayClassSpec(Model):
    controller_name: str = Field(min_length=1, max_length=253, pattern=CONTROLLER_NAME_PATTERN)
    parameters_ref: ParametersReference | None = None
    description: str | None = Field(default=None, max_length=64)


class GatewayClass(Resource):
    """Cluster-scoped: ``metadata.namespace`` is ignored."""

    api_version: Literal["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"]
    kind: Literal["GatewayClass"]
    spec: GatewayClassSpec


# --- ReferenceGrant ---------------------------------------------------------------------


class ReferenceGrantFrom(Model):
    group: Group
    kind: Kind
    namespace: Namespace


class ReferenceGrantTo(Model):
    group: Group
    kind: Kind
    name: ObjectName | None = None
    """None grants every object of the kind in the grant's namespace."""


class ReferenceGrantSpec(Model):
    from_: list[ReferenceGrantFrom] = Field(alias="from", min_length=1, max_length=16)
    to: list[ReferenceGrantTo] = Field(min_length=1, max_length=16)


class ReferenceGrant(Resource):
    """Lets objects in other namespaces refer to objects in this grant's namespace."""

    api_version: Literal[
        "gateway.networking.k8s.io/v1",
        "gateway.networking.k8s.io/v1beta1",
        "gateway.networking.k8s.io/v1alpha2",
    ]
    kind: Literal["ReferenceGrant"]
    spec: ReferenceGrantSpec


# Short names used in prose and by the STYLE.md layout sketch.
ParentRef = ParentReference
BackendRef = HTTPBackendRef

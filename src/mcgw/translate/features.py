"""The Gateway API conformance features mcgw claims, in the conformance suite's names.

These are the values of ``features.FeatureName`` in kubernetes-sigs/gateway-api
``pkg/features`` (what ``--supported-features`` of the suite and a GatewayClass's
``status.supportedFeatures`` list), e.g. ``HTTPRouteQueryParamMatching`` for the Go
constant ``SupportHTTPRouteQueryParamMatching``. ``mcgw features`` prints them, and
GatewayClass status reports them.

The claim is for mcgw once issue 3 is complete. The translator (control plane) already
does its share of every one of them; those marked ``# dataplane`` also need the data
plane to apply the IR fields named in the comment (see ``mcgw.ir.table``).
"""

from __future__ import annotations

CORE: tuple[str, ...] = (
    "Gateway",  # HTTPS listeners included: certificateRefs, SNI, ReferenceGrant to Secrets
    "HTTPRoute",
    "ReferenceGrant",
)
"""Core features (HTTPRoute path/header matching, RequestHeaderModifier, weights, 301/302
redirects with hostname are part of the core HTTPRoute feature)."""

EXTENDED: tuple[str, ...] = (
    # Gateway
    "GatewayPort8080",
    "GatewayStaticAddresses",  # spec.addresses IPAddress honoured
    "GatewayHTTPListenerIsolation",
    "GatewayAddressEmpty",  # IPAddress without value: one is assigned from the pool
    "GatewayHTTPSListenerDetectMisdirectedRequests",  # dataplane: 421 when SNI and Host differ
    # HTTPRoute matching
    "HTTPRouteQueryParamMatching",
    "HTTPRouteMethodMatching",
    "HTTPRouteParentRefPort",
    "HTTPRouteNamedRouteRule",
    # HTTPRoute filters
    "HTTPRouteResponseHeaderModification",  # dataplane: Filters.response_headers
    "HTTPRouteBackendRequestHeaderModification",  # dataplane: WeightedBackend.filters
    "HTTPRoutePortRedirect",  # dataplane: Redirect.port
    "HTTPRouteSchemeRedirect",  # dataplane: Redirect.scheme
    "HTTPRoutePathRedirect",  # dataplane: Redirect.path (PathModifier.apply)
    "HTTPRoute303RedirectStatusCode",  # dataplane: Redirect.status_code
    "HTTPRoute307RedirectStatusCode",  # dataplane: Redirect.status_code
    "HTTPRoute308RedirectStatusCode",  # dataplane: Redirect.status_code
    "HTTPRouteHostRewrite",  # dataplane: URLRewrite.hostname
    "HTTPRoutePathRewrite",  # dataplane: URLRewrite.path
    "HTTPRouteRequestMirror",  # dataplane: Filters.mirrors
    "HTTPRouteRequestMultipleMirrors",  # dataplane: Filters.mirrors
    "HTTPRouteRequestPercentageMirror",  # dataplane: Mirror.numerator/denominator
    "HTTPRouteCORS",  # dataplane: Filters.cors
    # HTTPRoute timeouts, retries, backends
    "HTTPRouteRequestTimeout",  # dataplane: Route.timeouts.request_s
    "HTTPRouteBackendTimeout",  # dataplane: Route.timeouts.backend_request_s
    "HTTPRouteRetry",  # dataplane: Route.retry (GEP-1731; older suites: HTTPRouteRetries)
    "HTTPRouteRetryBackendTimeout",  # dataplane: Route.retry within timeouts
    "HTTPRouteBackendProtocolH2C",  # dataplane: Backend.protocol h2c (h2 library)
    "HTTPRouteBackendProtocolWebSocket",  # dataplane: Backend.protocol ws / Upgrade
    "ServiceImport",
)
"""Extended features claimed."""

NOT_CLAIMED: tuple[tuple[str, str], ...] = (
    ("HTTPRouteDestinationPortMatching", "experimental; needs the listener port in matches"),
    ("HTTPRouteExternalAuth", "ExternalAuth filters are answered 500"),
    ("GatewayInfrastructurePropagation", "no infrastructure objects are created"),
    ("HTTPRouteSessionPersistence", "sessionPersistence is ignored (warning)"),
    ("GatewayListenerSet", "ListenerSet is not modelled"),
    ("HTTPRouteRetryConnectionError", "connection failures are retried, not yet checked"),
    ("HTTPRouteRetryBudget", "no retry budgets"),
)
"""Features left out, with why (for the closing note and ``mcgw features --all``)."""


def supported() -> tuple[str, ...]:
    """Every feature mcgw claims, sorted as the suite sorts them (by name)."""
    return tuple(sorted({*CORE, *EXTENDED}))

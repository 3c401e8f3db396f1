"""The models themselves: every valid manifest loads, the spec's defaults and rules apply."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from mcgw.config import gatewayapi, mcs, policy

META = {"name": "x", "namespace": "store"}


def parse(text: str) -> Any:
    return yaml.safe_load(textwrap.dedent(text))


def route(spec: dict[str, Any]) -> gatewayapi.HTTPRoute:
    return gatewayapi.HTTPRoute.model_validate(
        {"apiVersion": gatewayapi.V1, "kind": "HTTPRoute", "metadata": META, "spec": spec}
    )


def gateway(spec: dict[str, Any]) -> gatewayapi.Gateway:
    return gatewayapi.Gateway.model_validate(
        {"apiVersion": gatewayapi.V1, "kind": "Gateway", "metadata": META, "spec": spec}
    )


FULL_ROUTE = """
spec:
  parentRefs:
  - {name: gw, sectionName: http}
  - {name: gw, sectionName: https, port: 443}
  - {group: "", kind: Service, name: mesh-svc, namespace: other}
  hostnames: [store.example.com, "*.example.com"]
  useDefaultGateways: None
  rules:
  - name: everything
    matches:
    - path: {type: Exact, value: /exact}
      headers:
      - {name: x-version, value: v2}
      - {type: RegularExpression, name: x-user, value: "^a.*"}
      queryParams:
      - {name: q, value: "1"}
      method: GET
    - path: {type: RegularExpression, value: "^/re(gex)?$"}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-a, value: a}]
        add: [{name: x-b, value: b}]
        remove: [x-c]
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: x-served-by, value: mcgw}]}
    - type: RequestMirror
      requestMirror:
        backendRef: {name: shadow, port: 8080}
        fraction: {numerator: 1, denominator: 10}
    - type: CORS
      cors:
        allowOrigins: ["https://store.example.com"]
        allowMethods: [GET, POST]
        allowHeaders: [x-a]
        exposeHeaders: [x-b]
        allowCredentials: true
        maxAge: 600
    - type: ExtensionRef
      extensionRef: {group: example.com, kind: Filter, name: f}
    - type: URLRewrite
      urlRewrite:
        hostname: internal.example.com
        path: {type: ReplaceFullPath, replaceFullPath: /new}
    backendRefs:
    - name: store
      port: 8080
      weight: 90
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {set: [{name: x-backend, value: store}]}
    - {group: net.gke.io, kind: ServiceImport, name: store-east-1, port: 8080, weight: 10}
    timeouts: {request: 10s, backendRequest: 2s500ms}
    retry: {codes: [502, 503], attempts: 2, backoff: 100ms}
    sessionPersistence:
      sessionName: s
      absoluteTimeout: 1h
      idleTimeout: 10m
      type: Cookie
      cookieConfig: {lifetimeType: Permanent}
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: https
        hostname: new.example.com
        port: 443
        statusCode: 301
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
  - matches: [{path: {value: /auth}}]
    filters:
    - type: ExternalAuth
      externalAuth:
        protocol: HTTP
        backendRef: {name: auth, port: 9000}
        http: {path: /check, allowedHeaders: [authorization]}
        forwardBody: {maxSize: 1024}
    backendRefs: [{name: store, port: 8080}]
"""


def test_every_field_of_an_httproute_loads() -> None:
    r = route(parse(FULL_ROUTE)["spec"])
    first, redirect, auth = r.spec.rules
    assert [f.type for f in first.filters] == [
        "RequestHeaderModifier",
        "ResponseHeaderModifier",
        "RequestMirror",
        "CORS",
        "ExtensionRef",
        "URLRewrite",
    ]
    mirror = first.filters[2].request_mirror
    assert mirror is not None and mirror.fraction is not None
    assert (mirror.fraction.numerator, mirror.fraction.denominator) == (1, 10)
    assert first.timeouts is not None and first.timeouts.backend_request == "2s500ms"
    assert first.session_persistence is not None
    assert redirect.filters[0].request_redirect is not None
    assert redirect.filters[0].request_redirect.status_code == 301
    assert auth.filters[0].external_auth is not None
    assert r.spec.parent_refs[2].kind == "Service"


def test_httproute_defaults_are_the_spec_defaults() -> None:
    r = route(
        {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "s", "port": 80}]}]}
    )
    parent = r.spec.parent_refs[0]
    assert (parent.group, parent.kind, parent.namespace, parent.section_name) == (
        "gateway.networking.k8s.io",
        "Gateway",
        None,
        None,
    )
    rule = r.spec.rules[0]
    assert [(m.path.type, m.path.value, m.headers, m.method) for m in rule.matches] == [
        ("PathPrefix", "/", [], None)
    ]
    backend = rule.backend_refs[0]
    assert (backend.group, backend.kind, backend.weight, backend.namespace) == (
        "",
        "Service",
        1,
        None,
    )
    empty = route({})
    assert [[(m.path.type, m.path.value) for m in r.matches] for r in empty.spec.rules] == [
        [("PathPrefix", "/")]
    ]
    header = route({"rules": [{"matches": [{"headers": [{"name": "a", "value": "b"}]}]}]})
    match = header.spec.rules[0].matches[0]
    assert (match.path.value, match.headers[0].type) == ("/", "Exact")
    only_type = route({"rules": [{"matches": [{"path": {"type": "Exact"}}]}]})
    assert only_type.spec.rules[0].matches[0].path.value == "/"
    redirect = route({"rules": [{"filters": [{"type": "RequestRedirect", "requestRedirect": {}}]}]})
    assert redirect.spec.rules[0].filters[0].request_redirect is not None
    assert redirect.spec.rules[0].filters[0].request_redirect.status_code == 302


FULL_GATEWAY = """
spec:
  gatewayClassName: gke-l7-global-external-managed-mc
  addresses:
  - {type: IPAddress, value: 10.0.0.1}
  - {type: Hostname, value: gw.example.com}
  - {value: 10.0.0.2}
  - {type: example.com/named}
  infrastructure:
    labels: {team: store}
    annotations: {note: x}
    parametersRef: {group: example.com, kind: Params, name: p}
  allowedListeners:
    namespaces: {from: Selector, selector: {matchLabels: {shared: "true"}}}
  tls:
    backend: {clientCertificateRef: {name: client-cert}}
    frontend:
      default:
        validation:
          caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]
      perPort:
      - port: 443
        tls:
          validation:
            caCertificateRefs: [{group: "", kind: ConfigMap, name: ca2}]
            mode: AllowInsecureFallback
  listeners:
  - name: http
    protocol: HTTP
    port: 80
    allowedRoutes:
      namespaces:
        from: Selector
        selector:
          matchLabels: {gateway-access: "true"}
          matchExpressions: [{key: env, operator: In, values: [prod]}]
      kinds: [{kind: HTTPRoute}]
  - name: https
    protocol: HTTPS
    port: 443
    hostname: "*.example.com"
    tls:
      mode: Terminate
      certificateRefs: [{name: store-cert}, {kind: Secret, name: other, namespace: certs}]
      options: {example.com/min-version: "1.2"}
    allowedRoutes: {namespaces: {from: All}}
  - name: tls
    protocol: TLS
    port: 8443
    hostname: passthrough.example.com
    tls: {mode: Passthrough}
  - {name: tcp, protocol: TCP, port: 9000}
  - {name: custom, protocol: example.com/proto, port: 9001}
"""


def test_every_field_of_a_gateway_loads_with_defaults() -> None:
    gw = gateway(parse(FULL_GATEWAY)["spec"])
    http, https, *_ = gw.spec.listeners
    assert http.allowed_routes.namespaces.from_ == "Selector"
    assert http.allowed_routes.kinds[0].group == gatewayapi.GROUP
    assert https.tls is not None and https.tls.certificate_refs[0].kind == "Secret"
    assert https.tls.certificate_refs[0].group == ""
    assert gw.spec.addresses[2].type == "IPAddress"
    minimal = gateway(
        {"gatewayClassName": "c", "listeners": [{"name": "l", "protocol": "HTTP", "port": 80}]}
    )
    routes = minimal.spec.listeners[0].allowed_routes
    assert (routes.namespaces.from_, routes.namespaces.selector, routes.kinds) == ("Same", None, [])
    assert minimal.spec.listeners[0].hostname is None


def test_gatewayclass_and_status_of_kubectl_output() -> None:
    gc = gatewayapi.GatewayClass.model_validate(
        {
            "apiVersion": gatewayapi.V1BETA1,
            "kind": "GatewayClass",
            "metadata": {"name": "mcgw"},
            "spec": {
                "controllerName": "mcgw.dev/gateway-controller",
                "description": "local",
                "parametersRef": {
                    "group": "mcgw.dev",
                    "kind": "Config",
                    "name": "c",
                    "namespace": "n",
                },
            },
            "status": {"conditions": [{"type": "Accepted", "status": "True"}]},
        }
    )
    assert gc.spec.controller_name == "mcgw.dev/gateway-controller"
    with pytest.raises(ValidationError):
        gatewayapi.GatewayClassSpec.model_validate({"controllerName": "no-path"})


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"rules": [{"matches": [{"path": {"value": "no-slash"}}]}]}, "start with '/'"),
        ({"rules": [{"matches": [{"path": {"type": "Exact", "value": "/a//b"}}]}]}, "'//'"),
        ({"rules": [{"filters": [{"type": "CORS"}]}]}, "needs its settings in cors"),
        (
            {
                "rules": [
                    {"filters": [{"type": "CORS", "cors": {"allowOrigins": ["*", "https://a"]}}]}
                ]
            },
            "'*' alongside",
        ),
        (
            {
                "rules": [
                    {
                        "filters": [
                            {"type": "RequestHeaderModifier", "requestHeaderModifier": {}},
                            {"type": "RequestHeaderModifier", "requestHeaderModifier": {}},
                        ]
                    }
                ]
            },
            "is repeated",
        ),
        (
            {
                "rules": [
                    {
                        "filters": [
                            {"type": "RequestRedirect", "requestRedirect": {}},
                            {"type": "URLRewrite", "urlRewrite": {}},
                        ]
                    }
                ]
            },
            "both RequestRedirect and URLRewrite",
        ),
        (
            {
                "rules": [
                    {
                        "matches": [{"path": {"type": "Exact", "value": "/a"}}],
                        "filters": [
                            {
                                "type": "URLRewrite",
                                "urlRewrite": {
                                    "path": {
                                        "type": "ReplacePrefixMatch",
                                        "replacePrefixMatch": "/b",
                                    }
                                },
                            }
                        ],
                    }
                ]
            },
            "exactly one match, of type PathPrefix",
        ),
        (
            {
                "rules": [
                    {
                        "filters": [
                            {
                                "type": "URLRewrite",
                                "urlRewrite": {
                                    "path": {"type": "ReplaceFullPath", "replacePrefixMatch": "/b"}
                                },
                            }
                        ]
                    }
                ]
            },
            "needs replaceFullPath",
        ),
        ({"rules": [{"timeouts": {"request": "1s", "backendRequest": "2s"}}]}, "longer than"),
        ({"rules": [{"retry": {"codes": [200]}}]}, "greater than or equal to 400"),
        (
            {"rules": [{"sessionPersistence": {"cookieConfig": {"lifetimeType": "Permanent"}}}]},
            "absoluteTimeout",
        ),
        ({"rules": [{"name": "a"}, {"name": "a"}]}, "rule name 'a' is used twice"),
        ({"rules": [{}] * 17}, "at most 16"),
        (
            {"rules": [{"matches": [{}] * 64}, {"matches": [{}] * 64}, {"matches": [{}]}]},
            "129 matches",
        ),
        ({"parentRefs": [{"name": "gw"}, {"name": "gw"}]}, "more than once"),
        (
            {
                "parentRefs": [
                    {"name": "gw", "sectionName": "a"},
                    {"name": "gw", "sectionName": "a"},
                ]
            },
            "twice",
        ),
        (
            {
                "rules": [
                    {
                        "filters": [
                            {
                                "type": "RequestMirror",
                                "requestMirror": {
                                    "backendRef": {"name": "m", "port": 1},
                                    "percent": 5,
                                    "fraction": {"numerator": 1},
                                },
                            }
                        ]
                    }
                ]
            },
            "both percent and fraction",
        ),
    ],
)
def test_httproute_rules_of_the_crd(spec: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError, match=None) as caught:
        route(spec)
    assert needle in str(caught.value)


@pytest.mark.parametrize(
    ("listeners", "needle"),
    [
        (
            [{"name": "a", "protocol": "HTTP", "port": 80, "tls": {"mode": "Passthrough"}}],
            "must not be set",
        ),
        (
            [{"name": "a", "protocol": "HTTPS", "port": 443, "tls": {"mode": "Passthrough"}}],
            "Terminate",
        ),
        ([{"name": "a", "protocol": "HTTPS", "port": 443, "tls": {}}], "needs certificateRefs"),
        ([{"name": "a", "protocol": "TLS", "port": 443}], "required for protocol TLS"),
        ([{"name": "a", "protocol": "TCP", "port": 1, "hostname": "a.b"}], "must not be set"),
        (
            [
                {"name": "a", "protocol": "HTTP", "port": 80},
                {"name": "a", "protocol": "HTTP", "port": 81},
            ],
            "used twice",
        ),
        (
            [
                {"name": "a", "protocol": "HTTP", "port": 80},
                {"name": "b", "protocol": "HTTP", "port": 80},
            ],
            "same port 80",
        ),
        ([], "at least 1"),
    ],
)
def test_gateway_rules_of_the_crd(listeners: list[dict[str, Any]], needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        gateway({"gatewayClassName": "c", "listeners": listeners})
    assert needle in str(caught.value)


def test_same_port_different_hostnames_is_fine() -> None:
    gw = gateway(
        {
            "gatewayClassName": "c",
            "listeners": [
                {"name": "a", "protocol": "HTTP", "port": 80, "hostname": "a.example.com"},
                {"name": "b", "protocol": "HTTP", "port": 80, "hostname": "b.example.com"},
                {"name": "c", "protocol": "HTTP", "port": 80},
            ],
        }
    )
    assert len(gw.spec.listeners) == 3


def test_duration_seconds() -> None:
    assert gatewayapi.duration_seconds("1h30m") == 5400
    assert gatewayapi.duration_seconds("2s500ms") == 2.5
    assert gatewayapi.duration_seconds("0s") == 0
    with pytest.raises(ValueError, match="not a Gateway API duration"):
        gatewayapi.duration_seconds("1.5s")


def test_service_import_both_api_groups() -> None:
    for api_version in mcs.API_VERSIONS:
        imp = mcs.ServiceImport.model_validate(
            {
                "apiVersion": api_version,
                "kind": "ServiceImport",
                "metadata": META,
                "spec": {
                    "type": "Headless",
                    "ports": [{"name": "http", "port": 8080, "appProtocol": "http"}],
                    "sessionAffinity": "ClientIP",
                    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                },
            }
        )
        assert imp.spec.ports[0].protocol == "TCP"
    default = mcs.ServiceImport.model_validate(
        {"apiVersion": "net.gke.io/v1", "kind": "ServiceImport", "metadata": META}
    )
    assert (default.spec.type, default.spec.ips) == ("ClusterSetIP", [])


def test_health_check_policy_defaults_and_full_form() -> None:
    target = {"group": "net.gke.io", "kind": "ServiceImport", "name": "store"}
    minimal = policy.HealthCheckPolicy.model_validate(
        {
            "apiVersion": "networking.gke.io/v1",
            "kind": "HealthCheckPolicy",
            "metadata": META,
            "spec": {"targetRef": target},
        }
    )
    d = minimal.spec.default
    assert (d.check_interval_sec, d.timeout_sec, d.healthy_threshold, d.unhealthy_threshold) == (
        5,
        5,
        2,
        2,
    )
    assert d.config is None
    full = policy.HealthCheckPolicy.model_validate(
        parse(
            """
            apiVersion: networking.gke.io/v1
            kind: HealthCheckPolicy
            metadata: {name: store, namespace: store}
            spec:
              default:
                checkIntervalSec: 10
                timeoutSec: 3
                healthyThreshold: 1
                unhealthyThreshold: 3
                logConfig: {enabled: true}
                config:
                  type: HTTP
                  httpHealthCheck:
                    port: 8080
                    host: store.example.com
                    requestPath: /healthz
                    response: OK
                    proxyHeader: NONE
              targetRef: {group: "", kind: Service, name: store, namespace: store}
            """
        )
    )
    config = full.spec.default.config
    assert config is not None and config.http_health_check is not None
    assert config.http_health_check.effective_port_specification == "USE_FIXED_PORT"
    assert config.http_health_check.request_path == "/healthz"
    for bad, needle in [
        ({"type": "HTTP"}, "needs httpHealthCheck"),
        (
            {"type": "TCP", "tcpHealthCheck": {}, "httpHealthCheck": {}},
            "does not use httpHealthCheck",
        ),
    ]:
        with pytest.raises(ValidationError) as caught:
            policy.HealthCheck.model_validate(bad)
        assert needle in str(caught.value)
    grpc = policy.HealthCheck.model_validate(
        {"type": "GRPC", "grpcHealthCheck": {"grpcServiceName": "s"}}
    )
    assert grpc.grpc_health_check is not None
    assert grpc.grpc_health_check.effective_port_specification == "USE_SERVING_PORT"


def test_gcp_backend_policy_defaults_and_full_form() -> None:
    full = policy.GCPBackendPolicy.model_validate(
        parse(
            """
            apiVersion: networking.gke.io/v1
            kind: GCPBackendPolicy
            metadata: {name: store, namespace: store}
            spec:
              default:
                timeoutSec: 50
                maxRatePerEndpoint: 10
                capacityScaler: 0.5
                sessionAffinity: {type: GENERATED_COOKIE, cookieTtlSec: 50}
                connectionDraining: {drainingTimeoutSec: 60}
                logging: {enabled: true, sampleRate: 500000}
                securityPolicy: my-armor
                iap: {enabled: true, clientID: abc, oauth2ClientSecret: {name: s}}
                backendPreference: PREFERRED
              targetRef: {group: net.gke.io, kind: ServiceExport, name: store}
            """
        )
    )
    d = full.spec.default
    assert (d.timeout_sec, d.max_rate_per_endpoint, d.capacity_scaler) == (50, 10, 0.5)
    assert d.iap is not None and d.iap.client_id == "abc"
    minimal = policy.GCPBackendPolicySpec.model_validate(
        {"targetRef": {"group": "", "kind": "Service", "name": "s"}}
    )
    assert (minimal.default.timeout_sec, minimal.default.max_rate_per_endpoint) == (30, 10**8)
    assert minimal.default.capacity_scaler == 1.0
    with pytest.raises(ValidationError, match="backendPreference can only be set"):
        policy.GCPBackendPolicySpec.model_validate(
            {
                "targetRef": {"group": "net.gke.io", "kind": "ServiceImport", "name": "s"},
                "default": {"backendPreference": "PREFERRED"},
            }
        )

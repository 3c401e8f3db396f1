"""Manifests for tests and benchmarks: one Gateway routing to plain HTTP servers."""

from __future__ import annotations


def gateway_to_endpoints(
    *,
    backend_port: int,
    addresses: tuple[str, ...] = ("127.0.0.1",),
    path: str = "/",
    hostnames: tuple[str, ...] = (),
    zone: str = "",
) -> str:
    """A GatewayClass, Gateway (HTTP :80), HTTPRoute, Service and EndpointSlice as YAML.

    Requests under ``path`` (for ``hostnames``, or any host) go to the Service ``app``,
    whose endpoints are ``addresses`` on ``backend_port``: what ``mcgw serve`` needs to
    front servers that run anywhere.
    """
    hosts = f"\n  hostnames: [{', '.join(hostnames)}]" if hostnames else ""
    endpoint_zone = f"\n  zone: {zone}" if zone else ""
    endpoints = "".join(
        f"\n- addresses: [{address}]\n  conditions: {{ready: true}}{endpoint_zone}"
        for address in addresses
    )
    return f"""apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: mcgw}}
spec: {{controllerName: mcgw.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: mcgw
  listeners: [{{name: http, protocol: HTTP, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: app, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]{hosts}
  rules:
  - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]
    backendRefs: [{{name: app, port: 80}}]
---
apiVersion: v1
kind: Service
metadata: {{name: app, namespace: default}}
spec:
  ports: [{{port: 80, targetPort: {backend_port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: app-1
  namespace: default
  labels: {{kubernetes.io/service-name: app}}
addressType: IPv4
ports: [{{port: {backend_port}}}]
endpoints:{endpoints}
"""

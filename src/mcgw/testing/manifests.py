"""Manifests for tests and benchmarks: one Gateway routing to plain HTTP servers."""

from __future__ import annotations

GATEWAY_CLASS = """apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: mcgw}
spec: {controllerName: mcgw.dev/gateway-controller}
"""
"""The GatewayClass ``mcgw`` that mcgw's controller claims, as one YAML document."""


def service(
    name: str,
    port: int,
    *,
    namespace: str = "default",
    addresses: tuple[str, ...] = ("127.0.0.1",),
    zone: str = "",
) -> str:
    """A Service ``name`` (port 80) and its EndpointSlice as YAML, each document after ``---``.

    The endpoints are ``addresses`` (ready, in ``zone`` if given) on ``port``, so a
    backendRef ``{name: <name>, port: 80}`` reaches servers listening there.
    """
    endpoint_zone = f"\n  zone: {zone}" if zone else ""
    endpoints = "".join(
        f"\n- addresses: [{address}]\n  conditions: {{ready: true}}{endpoint_zone}"
        for address in addresses
    )
    return f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  ports: [{{port: 80, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: {namespace}
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{port: {port}}}]
endpoints:{endpoints}
"""


def logging_policy(service: str, sample_rate: int | None, *, namespace: str = "default") -> str:
    """A GCPBackendPolicy on the Service ``service`` as YAML, after ``---``: its requests
    logged at ``sample_rate`` (millionths, as GKE counts it), or not at all (None)."""
    logging = (
        "{enabled: false}"
        if sample_rate is None
        else f"{{enabled: true, sampleRate: {sample_rate}}}"
    )
    return f"""---
apiVersion: networking.gke.io/v1
kind: GCPBackendPolicy
metadata: {{name: {service}, namespace: {namespace}}}
spec:
  default: {{logging: {logging}}}
  targetRef: {{group: "", kind: Service, name: {service}}}
"""


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
    return (
        GATEWAY_CLASS
        + f"""---
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
"""
        + service("app", backend_port, addresses=addresses, zone=zone)
    )


def exported_store(zone: str, ports: tuple[int, ...] | list[int]) -> str:
    """The Service ``store/store``, its ServiceExport and one EndpointSlice per port (an
    endpoint on 127.0.0.1 in ``zone``, its pod named ``store-<zone>-<i>``) as YAML: one
    cluster of ``examples/capacity`` with local servers as its pods."""
    slices = "".join(
        f"""---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: store-{i}
  namespace: store
  labels: {{kubernetes.io/service-name: store}}
addressType: IPv4
ports: [{{port: {port}}}]
endpoints:
- addresses: [127.0.0.1]
  zone: {zone}
  targetRef: {{kind: Pod, name: store-{zone}-{i}}}
"""
        for i, port in enumerate(ports)
    )
    return (
        """---
apiVersion: v1
kind: Service
metadata: {name: store, namespace: store}
spec:
  ports: [{port: 8080, targetPort: 8080}]
---
apiVersion: net.gke.io/v1
kind: ServiceExport
metadata: {name: store, namespace: store}
"""
        + slices
    )

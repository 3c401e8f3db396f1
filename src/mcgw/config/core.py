"""Core Kubernetes kinds, only the fields mcgw reads: Namespace, Service, Deployment,
EndpointSlice, Secret. Unknown fields are still errors, so a typo never passes silently; the
fields listed as accepted-but-unused exist so real manifests load unchanged."""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from pydantic import Field, model_validator

from mcgw.config.base import Model, Resource
from mcgw.config.problem import invalid

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
"""Label that ties an EndpointSlice to its Service."""


class Namespace(Resource):
    api_version: Literal["v1"]
    kind: Literal["Namespace"]
    spec: dict[str, object] | None = None


class ServicePort(Model):
    port: int = Field(ge=1, le=65535)
    target_port: int | str | None = None
    """Number, or the name of a container port; defaults to ``port``."""
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    app_protocol: str | None = None
    node_port: int | None = None


class ServiceSpec(Model):
    selector: dict[str, str] = Field(default_factory=dict)
    ports: list[ServicePort] = Field(default_factory=list)
    type: Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"] = "ClusterIP"
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    cluster_ips: list[str] | None = Field(default=None, alias="clusterIPs")
    session_affinity: str | None = None
    external_name: str | None = None
    ip_families: list[str] | None = None
    ip_family_policy: str | None = None
    internal_traffic_policy: str | None = None
    external_traffic_policy: str | None = None
    publish_not_ready_addresses: bool | None = None


class Service(Resource):
    api_version: Literal["v1"]
    kind: Literal["Service"]
    spec: ServiceSpec = Field(default_factory=ServiceSpec)


class ContainerPort(Model):
    container_port: int = Field(ge=1, le=65535)
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    host_port: int | None = None


class EnvVar(Model):
    name: str
    value: str | None = None
    value_from: dict[str, object] | None = None


class Probe(Model):
    http_get: dict[str, object] | None = None
    tcp_socket: dict[str, object] | None = None
    exec: dict[str, object] | None = None
    initial_delay_seconds: int | None = None
    period_seconds: int | None = None
    timeout_seconds: int | None = None
    success_threshold: int | None = None
    failure_threshold: int | None = None


class Container(Model):
    name: str
    image: str
    command: list[str] | None = None
    args: list[str] | None = None
    ports: list[ContainerPort] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    resources: dict[str, object] | None = None
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    image_pull_policy: str | None = None


class PodSpec(Model):
    containers: list[Container] = Field(min_length=1)
    service_account_name: str | None = None
    termination_grace_period_seconds: int | None = None
    node_selector: dict[str, str] | None = None


class PodTemplateMeta(Model):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    name: str | None = None


class PodTemplate(Model):
    metadata: PodTemplateMeta = Field(default_factory=PodTemplateMeta)
    spec: PodSpec


class LabelSelector(Model):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[dict[str, object]] | None = None


class DeploymentSpec(Model):
    replicas: int = Field(default=1, ge=0)
    selector: LabelSelector
    template: PodTemplate
    strategy: dict[str, object] | None = None
    revision_history_limit: int | None = None
    min_ready_seconds: int | None = None
    progress_deadline_seconds: int | None = None


class Deployment(Resource):
    api_version: Literal["apps/v1"]
    kind: Literal["Deployment"]
    spec: DeploymentSpec


class EndpointConditions(Model):
    ready: bool | None = None
    """None means ready (Kubernetes: unknown state is interpreted as ready)."""
    serving: bool | None = None
    terminating: bool | None = None


class Endpoint(Model):
    addresses: list[str] = Field(min_length=1)
    conditions: EndpointConditions = Field(default_factory=EndpointConditions)
    hostname: str | None = None
    node_name: str | None = None
    zone: str | None = None
    """Overrides the cluster's zone for this endpoint."""
    target_ref: dict[str, str] | None = None
    """``{kind: Pod, name: ...}``: the pod name shown in logs."""


class EndpointPort(Model):
    port: int = Field(ge=1, le=65535)
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    app_protocol: str | None = None


class EndpointSlice(Resource):
    """Endpoints of a Service, linked by the ``kubernetes.io/service-name`` label."""

    api_version: Literal["discovery.k8s.io/v1"]
    kind: Literal["EndpointSlice"]
    address_type: Literal["IPv4", "IPv6", "FQDN"]
    endpoints: list[Endpoint] = Field(default_factory=list)
    ports: list[EndpointPort] = Field(default_factory=list)

    @property
    def service_name(self) -> str | None:
        return self.metadata.labels.get(SERVICE_NAME_LABEL)


TLS_SECRET_TYPE = "kubernetes.io/tls"
"""The Secret type that holds a certificate chain (``tls.crt``) and its key (``tls.key``)."""


class Secret(Resource):
    """A Secret as ``kubectl apply`` takes it; mcgw reads TLS ones (HTTPS listeners).

    ``data`` values are base64 as Kubernetes stores them; ``stringData`` values are
    plain text and win over ``data`` for the same key, as the API server merges them.
    The values are kept out of ``repr`` so that no log line can carry a private key.
    """

    api_version: Literal["v1"]
    kind: Literal["Secret"]
    type: str = "Opaque"
    data: dict[str, str] = Field(default_factory=dict, repr=False)
    string_data: dict[str, str] = Field(default_factory=dict, repr=False)
    immutable: bool | None = None

    @model_validator(mode="after")
    def _base64(self) -> Secret:
        for key, value in self.data.items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                # The value itself is never echoed: it may be a private key.
                raise invalid(
                    f"the value of {key!r} is not base64",
                    f"encode it (base64 -w0 FILE), or put the plain text under stringData.{key}",
                    at=f"data.{key}",
                ) from None
        return self

    def value(self, key: str) -> bytes | None:
        """The decoded value of ``key`` (``stringData`` first), or None when absent."""
        if key in self.string_data:
            return self.string_data[key].encode()
        if key in self.data:
            return base64.b64decode(self.data[key])
        return None

"""Multi-Cluster Services: ServiceExport and ServiceImport.

Two spellings of the same API load into the same models: GKE's ``net.gke.io/v1`` (what
GKE's multi-cluster Gateway docs use) and upstream ``multicluster.x-k8s.io/v1alpha1``
(KEP-1645). A ServiceExport in a cluster offers that cluster's Service of the same
namespace/name to the fleet; the translator derives one ServiceImport per exported
namespace/name, whose endpoints are grouped by source cluster. ServiceImports written by
hand (as the MCS controller would have written them) are accepted too.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mcgw.config.base import Model, Resource

GKE_GROUP = "net.gke.io"
UPSTREAM_GROUP = "multicluster.x-k8s.io"
API_VERSIONS = ("net.gke.io/v1", "multicluster.x-k8s.io/v1alpha1")


class ServiceExport(Resource):
    """Export the Service of the same namespace/name to the fleet. It has no settings."""

    api_version: Literal["net.gke.io/v1", "multicluster.x-k8s.io/v1alpha1"]
    kind: Literal["ServiceExport"]
    spec: dict[str, object] | None = None
    """Neither API defines fields here; accepted so that ``spec: {}`` loads."""


class ServiceImportPort(Model):
    port: int = Field(ge=1, le=65535)
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    app_protocol: str | None = None


class ClientIPConfig(Model):
    timeout_seconds: int | None = Field(default=None, ge=1, le=86400)


class SessionAffinityConfig(Model):
    client_ip: ClientIPConfig | None = Field(default=None, alias="clientIP")


class ServiceImportSpec(Model):
    type: Literal["ClusterSetIP", "Headless"] = "ClusterSetIP"
    """``ClusterSetIP``: one virtual IP for the set; ``Headless``: endpoints directly."""
    ports: list[ServiceImportPort] = Field(default_factory=list)
    ips: list[str] = Field(default_factory=list, max_length=1)
    session_affinity: Literal["ClientIP", "None"] = "None"
    session_affinity_config: SessionAffinityConfig | None = None


class ServiceImport(Resource):
    """A fleet-wide service: what an HTTPRoute backendRef of kind ServiceImport names."""

    api_version: Literal["net.gke.io/v1", "multicluster.x-k8s.io/v1alpha1"]
    kind: Literal["ServiceImport"]
    spec: ServiceImportSpec = Field(default_factory=ServiceImportSpec)

"""Resources: everything mcgw was given, typed, grouped by cluster, sorted.

Each member cluster holds its own objects, as its API server would. Gateway API objects
(GatewayClass, Gateway, HTTPRoute, ReferenceGrant) and policies count only in the
fleet's config cluster, as with GKE's multi-cluster Gateway; the translator reports
any found elsewhere. Every tuple is sorted by (namespace, name) so that translation is
deterministic whatever order files were read in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mcgw.config import core, gatewayapi, mcs, policy
from mcgw.config.fleet import Fleet


@dataclass(frozen=True, slots=True)
class ClusterResources:
    name: str
    region: str
    zone: str
    namespaces: tuple[core.Namespace, ...] = ()
    services: tuple[core.Service, ...] = ()
    deployments: tuple[core.Deployment, ...] = ()
    endpoint_slices: tuple[core.EndpointSlice, ...] = ()
    service_exports: tuple[mcs.ServiceExport, ...] = ()
    service_imports: tuple[mcs.ServiceImport, ...] = ()
    """Imports written by hand; the translator also derives them from exports."""
    gateway_classes: tuple[gatewayapi.GatewayClass, ...] = ()
    gateways: tuple[gatewayapi.Gateway, ...] = ()
    http_routes: tuple[gatewayapi.HTTPRoute, ...] = ()
    reference_grants: tuple[gatewayapi.ReferenceGrant, ...] = ()
    health_check_policies: tuple[policy.HealthCheckPolicy, ...] = ()
    backend_policies: tuple[policy.GCPBackendPolicy, ...] = ()
    traffic_policies: tuple[policy.GCPTrafficDistributionPolicy, ...] = ()
    secrets: tuple[core.Secret, ...] = ()
    """TLS certificates for HTTPS listeners (read from the config cluster)."""


@dataclass(frozen=True, slots=True)
class Resources:
    fleet: Fleet
    """The Fleet given, or an implicit one with a single cluster ``default``."""
    clusters: tuple[ClusterResources, ...] = field(default=())
    """In the Fleet's order."""

    @property
    def config_cluster(self) -> ClusterResources:
        name = self.fleet.spec.config_cluster_name
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise KeyError(name)

    def cluster(self, name: str) -> ClusterResources:
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise KeyError(name)

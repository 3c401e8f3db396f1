"""Pre-indexed lookups over Resources, built once per translation.

Every pass asks questions such as "which Service is store/store in gke-east-1?" or "which
clusters export store/store?"; the context answers them from dictionaries built here, so
no pass scans the resources. It also carries the facts the passes establish for later
ones (accepted classes, programmed listeners, attached routes).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from mcgw.config import core, gatewayapi, mcs, resources

GATEWAY_GROUP = "gateway.networking.k8s.io"
MCS_GROUPS = ("net.gke.io", "multicluster.x-k8s.io")
"""API groups of ServiceExport/ServiceImport: GKE's and the upstream MCS API's."""
MCS_SERVICE_NAME_LABEL = "multicluster.kubernetes.io/service-name"
"""Label tying an EndpointSlice to a hand-written ServiceImport (MCS API)."""

NsName = tuple[str, str]
ClusterNsName = tuple[str, str, str]


def created_key(timestamp: str | None) -> tuple[int, float]:
    """Sort key for ``creationTimestamp``: oldest first, objects without one last."""
    if timestamp:
        try:
            return (0, datetime.fromisoformat(timestamp).timestamp())
        except ValueError:
            pass
    return (1, 0.0)


@dataclass(frozen=True, slots=True)
class ExportedService:
    """One cluster's contribution to a derived ServiceImport."""

    cluster: resources.ClusterResources
    service: core.Service


@dataclass(slots=True)
class ImportIndex:
    """A ServiceImport ns/name as the fleet sees it: derived from exports and/or written."""

    namespace: str
    name: str
    exports: list[ExportedService] = field(default_factory=list)
    written: list[tuple[resources.ClusterResources, mcs.ServiceImport]] = field(
        default_factory=list
    )

    def ports(self) -> set[int]:
        return set(self.app_protocols())

    def app_protocols(self) -> dict[int, str | None]:
        """Port → appProtocol. A written ServiceImport's port wins over the exported
        Services' (as the MCS controller would write it); among exports, the first
        cluster (by name) that sets one."""
        found: dict[int, str | None] = {}
        for export in sorted(self.exports, key=lambda e: e.cluster.name):
            for p in export.service.spec.ports:
                if found.get(p.port) is None:
                    found[p.port] = p.app_protocol
        for _, imp in self.written:
            for ip in imp.spec.ports:
                if ip.app_protocol is not None or ip.port not in found:
                    found[ip.port] = ip.app_protocol
        return found


class Context:
    """Lookups over one Resources snapshot. Mutable only while the passes run."""

    def __init__(self, res: resources.Resources) -> None:
        self.resources = res
        self.warnings: list[str] = []
        config_name = res.fleet.spec.config_cluster_name
        try:
            self.config = res.config_cluster
        except KeyError:
            # A Fleet whose config cluster holds no manifest: nothing to route, no crash.
            self.config = resources.ClusterResources(
                name=config_name,
                region=next(
                    (c.region for c in res.fleet.spec.clusters if c.name == config_name), ""
                ),
                zone=next((c.zone for c in res.fleet.spec.clusters if c.name == config_name), ""),
            )
        self.clusters = res.clusters

        self.namespaces: dict[str, core.Namespace] = {
            n.metadata.name: n for n in self.config.namespaces
        }
        self.gateway_classes: dict[str, gatewayapi.GatewayClass] = {
            c.metadata.name: c for c in self.config.gateway_classes
        }
        self.reference_grants: dict[str, list[gatewayapi.ReferenceGrant]] = defaultdict(list)
        for grant in self.config.reference_grants:
            self.reference_grants[grant.metadata.namespace].append(grant)

        self.services: dict[ClusterNsName, core.Service] = {}
        self.slices: dict[ClusterNsName, list[core.EndpointSlice]] = defaultdict(list)
        self.import_slices: dict[ClusterNsName, list[core.EndpointSlice]] = defaultdict(list)
        self.imports: dict[NsName, ImportIndex] = {}
        for cluster in res.clusters:
            for svc in cluster.services:
                self.services[(cluster.name, svc.metadata.namespace, svc.metadata.name)] = svc
            for eps in cluster.endpoint_slices:
                labels = eps.metadata.labels
                if (svc_name := labels.get(core.SERVICE_NAME_LABEL)) is not None:
                    self.slices[(cluster.name, eps.metadata.namespace, svc_name)].append(eps)
                if (imp_name := labels.get(MCS_SERVICE_NAME_LABEL)) is not None:
                    self.import_slices[(cluster.name, eps.metadata.namespace, imp_name)].append(eps)
        for cluster in res.clusters:
            for export in cluster.service_exports:
                key = (export.metadata.namespace, export.metadata.name)
                exported = self.services.get((cluster.name, *key))
                if exported is None:
                    self.warnings.append(
                        f"ServiceExport {key[0]}/{key[1]} in cluster {cluster.name}: "
                        "no Service of that name in the cluster; nothing is exported"
                    )
                    continue
                self._import(key).exports.append(ExportedService(cluster, exported))
            for imp in cluster.service_imports:
                key = (imp.metadata.namespace, imp.metadata.name)
                self._import(key).written.append((cluster, imp))

        # Filled by the passes, in order.
        self.accepted_classes: set[str] = set()

        self._warn_misplaced(res)

    def _import(self, key: NsName) -> ImportIndex:
        index = self.imports.get(key)
        if index is None:
            index = self.imports[key] = ImportIndex(*key)
        return index

    def _warn_misplaced(self, res: resources.Resources) -> None:
        for cluster in res.clusters:
            if cluster.name == self.config.name:
                continue
            kinds = {
                "GatewayClass": cluster.gateway_classes,
                "Gateway": cluster.gateways,
                "HTTPRoute": cluster.http_routes,
                "ReferenceGrant": cluster.reference_grants,
                "HealthCheckPolicy": cluster.health_check_policies,
                "GCPBackendPolicy": cluster.backend_policies,
                "GCPTrafficDistributionPolicy": cluster.traffic_policies,
            }
            for kind, objs in kinds.items():
                for obj in objs:
                    self.warnings.append(
                        f"{kind} {obj.metadata.namespace}/{obj.metadata.name} in cluster "
                        f"{cluster.name} is ignored: Gateway API objects and policies are "
                        f"read from the config cluster ({self.config.name}) only"
                    )

    def namespace_labels(self, name: str) -> dict[str, str]:
        """Labels of a namespace; Kubernetes always sets ``kubernetes.io/metadata.name``."""
        ns = self.namespaces.get(name)
        labels = dict(ns.metadata.labels) if ns is not None else {}
        labels.setdefault("kubernetes.io/metadata.name", name)
        return labels

    def reference_permitted(
        self, from_kind: str, from_namespace: str, to_group: str, to_kind: str, to_ref: NsName
    ) -> bool:
        """True when a ReferenceGrant in the target's namespace allows the reference.

        References within one namespace need no grant.
        """
        to_namespace, to_name = to_ref
        if from_namespace == to_namespace:
            return True
        for grant in self.reference_grants.get(to_namespace, ()):
            allowed_from = any(
                f.group == GATEWAY_GROUP and f.kind == from_kind and f.namespace == from_namespace
                for f in grant.spec.from_
            )
            allowed_to = any(
                (t.group or "") == to_group
                and t.kind == to_kind
                and (t.name is None or t.name == to_name)
                for t in grant.spec.to
            )
            if allowed_from and allowed_to:
                return True
        return False

"""``Fleet``: mcgw's own kind, the clusters behind one gateway and where they stand.

A directory given to ``mcgw -f`` may hold one Fleet. Without one, every manifest in the
directory belongs to a single cluster named ``default`` that is also the config cluster.

Example::

    apiVersion: mcgw.dev/v1alpha1
    kind: Fleet
    metadata: {name: store-demo}
    spec:
      project: sandbox-mc-gateway
      configCluster: gke-west-1
      gateway: {location: asia-northeast1}
      clusters:
      - {name: gke-west-1, region: us-west1, zone: us-west1-a, manifests: gke-west-1/}
      - {name: gke-east-1, region: us-east1, zone: us-east1-b, manifests: gke-east-1/}
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mcgw.config.base import Model, Resource
from mcgw.config.problem import invalid

FLEET_API_VERSION = "mcgw.dev/v1alpha1"


class FleetCluster(Model):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    region: str = Field(min_length=1)
    """Cloud region, e.g. ``us-west1``; ranks the cluster by distance from the gateway."""
    zone: str = Field(min_length=1)
    """Zone of its nodes, e.g. ``us-west1-a``; endpoints inherit it."""
    manifests: str | None = None
    """Folder (relative to the Fleet's file) holding this cluster's manifests."""

    @model_validator(mode="after")
    def _zone_in_region(self) -> FleetCluster:
        if not self.zone.startswith(self.region):
            raise invalid(
                f"{self.zone!r} is not a zone of region {self.region!r}",
                f"a zone is its region plus a suffix: use e.g. {self.region}-a, "
                "or correct the region",
                at="zone",
            )
        return self


class GatewayPlacement(Model):
    location: str = "us-central1"
    """Region where requests enter the gateway (a client's closest edge)."""


class RegionLatency(Model):
    from_region: str = Field(alias="from")
    to_region: str = Field(alias="to")
    rtt_ms: float = Field(ge=0)


class FleetNetwork(Model):
    """How the local fleet's network behaves (``mcgw up`` only; real clusters ignore it)."""

    simulate_latency: bool = False
    """Put each pod behind a relay that delays traffic by half the round trip between
    the gateway's location and the pod's region, each way (see :mod:`mcgw.fleet.relay`);
    the EndpointSlices then publish the relays' addresses."""


class FleetSpec(Model):
    project: str = "mcgw-local"
    """Project id written into logs (``resource.labels.project_id``)."""
    config_cluster: str | None = None
    """Cluster whose Gateway API objects are read; defaults to the first cluster."""
    gateway: GatewayPlacement = Field(default_factory=GatewayPlacement)
    clusters: list[FleetCluster] = Field(min_length=1)
    latencies: list[RegionLatency] = Field(default_factory=list)
    """Round-trip times that override the built-in table of cloud regions."""
    network: FleetNetwork = Field(default_factory=FleetNetwork)
    """The local fleet's simulated network."""

    @model_validator(mode="after")
    def _consistent(self) -> FleetSpec:
        names = [c.name for c in self.clusters]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise invalid(
                f"cluster names must be unique; repeated: {', '.join(duplicates)}",
                "rename or remove the repeated clusters",
                at="clusters",
            )
        if self.config_cluster is not None and self.config_cluster not in names:
            raise invalid(
                f"{self.config_cluster!r} is not one of the clusters ({', '.join(names)})",
                "set configCluster to the name of one of spec.clusters",
                at="configCluster",
            )
        return self

    @property
    def config_cluster_name(self) -> str:
        return self.config_cluster or self.clusters[0].name


class Fleet(Resource):
    api_version: Literal["mcgw.dev/v1alpha1"]
    kind: Literal["Fleet"]
    spec: FleetSpec

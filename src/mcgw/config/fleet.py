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

import ipaddress
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


class ClientRegion(Model):
    cidr: str = Field(min_length=1)
    """Client network, e.g. ``127.10.0.0/16``."""
    region: str = Field(min_length=1)
    """Region where requests from that network enter, e.g. ``us-east1``."""

    @model_validator(mode="after")
    def _network(self) -> ClientRegion:
        _check_network(self.cidr, "cidr")
        return self


def _check_network(text: str, at: str) -> None:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise invalid(
            f"{text!r} is not an IP network",
            "write a CIDR block such as 10.0.0.0/8 or 2001:db8::/32 (or one address)",
            at=at,
        ) from None


class GatewayPlacement(Model):
    location: str = "us-central1"
    """Region where requests enter the gateway (a client's closest edge), unless a
    request's entry region is set otherwise (see below)."""
    trusted_peers: list[str] = Field(default_factory=list)
    """Networks (CIDR) of proxies in front of the gateway whose X-Forwarded-For,
    -Proto and -Host are kept (appended to) and whose entry-region header is honoured;
    from any other peer they are replaced. Read when the gateway starts; ``mcgw up``
    and ``serve`` add ``--trusted-peer``."""
    entry_region_header: str | None = None
    """Request header naming the request's entry region, e.g. ``x-mcgw-entry-region``:
    honoured only from trusted peers (``--entry-region-header`` too)."""
    client_regions: list[ClientRegion] = Field(default_factory=list)
    """Client networks and the region their requests enter at: simulates clients all
    over the world (the most specific network wins)."""

    @model_validator(mode="after")
    def _networks(self) -> GatewayPlacement:
        for i, peer in enumerate(self.trusted_peers):
            _check_network(peer, f"trustedPeers[{i}]")
        return self


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
    expect_spillover: list[str] = Field(default_factory=list)
    """Services (``<namespace>/<name>``, Service or ServiceImport) expected to spill
    over to another region under load. Spill-over needs a capacity
    (GCPBackendPolicy maxRatePerEndpoint): one listed without it is a warning that
    ``mcgw status`` and ``mcgw up`` print, rather than a silent no-op."""

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

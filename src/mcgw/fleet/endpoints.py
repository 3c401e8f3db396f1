"""EndpointSlices for the pods that run: what the EndpointSlice controller would publish.

Pure. For each Service with a selector, the ready pods of its namespace whose labels
match become endpoints; each Service port maps to the pods' port through ``targetPort``
(a number, a container port's name, or by default the Service's own port). Pods that
resolve a named port differently go to separate slices, as Kubernetes does. A Service
with no ready pod gets no slice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Literal

from mcgw.config import base, core, resources
from mcgw.fleet import pods as pods_

MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "fleet.mcgw.dev"
"""Value of :data:`MANAGED_BY_LABEL` on slices the fleet publishes (and may replace)."""

_Protocol = Literal["TCP", "UDP", "SCTP"]
_Ports = tuple[tuple[str | None, int, _Protocol], ...]
"""(name, number, protocol) of each Service port, resolved for one pod."""


def slices(
    cluster: resources.ClusterResources, ready: Iterable[pods_.PodPlan]
) -> tuple[core.EndpointSlice, ...]:
    """Return the EndpointSlices of one cluster's Services for its ready pods.

    Args:
        cluster: the cluster's Services (and zone).
        ready: pods that are running and ready; pods of other clusters are ignored.
    """
    mine = [p for p in ready if p.cluster == cluster.name]
    result: list[core.EndpointSlice] = []
    for service in cluster.services:
        selector = service.spec.selector
        groups: dict[_Ports, list[pods_.PodPlan]] = {}
        for pod in mine:
            if pod.namespace == service.metadata.namespace and pod.matches(selector):
                groups.setdefault(_resolve(service, pod), []).append(pod)
        for index, (ports, members) in enumerate(sorted(groups.items(), key=_group_key)):
            result.append(_slice(service, cluster.zone, index, ports, members))
    return tuple(sorted(result, key=lambda s: (s.metadata.namespace, s.metadata.name)))


def replace(
    cluster: resources.ClusterResources, published: tuple[core.EndpointSlice, ...]
) -> resources.ClusterResources:
    """Return ``cluster`` with the fleet's earlier slices swapped for ``published``.

    Slices written by hand (without the fleet's managed-by label) are kept.
    """
    kept = [
        s for s in cluster.endpoint_slices if s.metadata.labels.get(MANAGED_BY_LABEL) != MANAGED_BY
    ]
    merged = sorted([*kept, *published], key=lambda s: (s.metadata.namespace, s.metadata.name))
    return dataclasses.replace(cluster, endpoint_slices=tuple(merged))


def _resolve(service: core.Service, pod: pods_.PodPlan) -> _Ports:
    ports: list[tuple[str | None, int, _Protocol]] = []
    for port in service.spec.ports:
        target = port.port if port.target_port is None else port.target_port
        number = pod.container_port(target) if isinstance(target, str) else target
        # A name no container declares leaves that port out for this pod, as in Kubernetes.
        if number is not None:
            ports.append((port.name, number, port.protocol))
    return tuple(ports)


def _group_key(item: tuple[_Ports, list[pods_.PodPlan]]) -> tuple[tuple[str, int, str], ...]:
    return tuple((name or "", number, protocol) for name, number, protocol in item[0])


def _slice(
    service: core.Service,
    zone: str,
    index: int,
    ports: _Ports,
    members: list[pods_.PodPlan],
) -> core.EndpointSlice:
    name = service.metadata.name
    suffix = "fleet" if index == 0 else f"fleet-{index}"
    return core.EndpointSlice(
        api_version="discovery.k8s.io/v1",
        kind="EndpointSlice",
        metadata=base.ObjectMeta(
            name=f"{name}-{suffix}",
            namespace=service.metadata.namespace,
            labels={core.SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MANAGED_BY},
        ),
        address_type="IPv4",
        endpoints=[
            core.Endpoint(
                addresses=[pod.address],
                conditions=core.EndpointConditions(ready=True, serving=True, terminating=False),
                node_name=pod.node_name,
                zone=zone,
                target_ref={"kind": "Pod", "name": pod.name, "namespace": pod.namespace},
            )
            for pod in sorted(members, key=lambda p: p.name)
        ],
        ports=[
            core.EndpointPort(name=port_name, port=number, protocol=protocol)
            for port_name, number, protocol in ports
        ],
    )


def with_planned(fleet: resources.Resources, *, python: str) -> resources.Resources:
    """Return ``fleet`` with the EndpointSlices its pods would have once started.

    What ``mcgw status`` shows before anything runs: the addresses are those the
    runtime will use; pod names get a fresh random suffix at every start.

    Raises:
        NotRunnableError: some Deployment cannot run locally.
    """
    planned = pods_.plan(fleet, python=python)
    return dataclasses.replace(
        fleet,
        clusters=tuple(replace(cluster, slices(cluster, planned)) for cluster in fleet.clusters),
    )

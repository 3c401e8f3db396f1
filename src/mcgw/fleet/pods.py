"""Planning pods: which processes a fleet's Deployments become. Pure; starts nothing.

For every cluster, every Deployment, ``replicas`` pods, each with what Kubernetes would
give it: a name ``<deployment>-<pod-template-hash>-<suffix>``, a node, an IP and the
Downward API's environment. A pod's IP is its own loopback address,
``127.<cluster index + 1>.<deployment index>.<pod index + 2>`` (the cluster octet
can start elsewhere than 1, for fleets side by side) (Linux routes all of
127/8 to ``lo``), so pods of different clusters can all listen on ``:8080`` side by side.

What each container runs: a ``whereami`` image runs the Store API
(``python -m mcgw.store``); any other image runs the command line in the pod template's
annotation :data:`COMMAND_ANNOTATION` (or ``mcgw.dev/command.<container>``), split like a
shell would split it but without a shell.
"""

from __future__ import annotations

import hashlib
import random
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from mcgw.config import core, resources
from mcgw.fleet import errors

COMMAND_ANNOTATION = "mcgw.dev/command"
"""Pod-template annotation: the command line that stands in for a non-whereami image."""

WHEREAMI = "whereami"
"""An image whose name contains this runs the Store API."""

STORE_MODULE = "mcgw.store"

DEFAULT_WHEREAMI_PORT = 8080
"""whereami listens on 8080 unless told otherwise."""

NODES_PER_CLUSTER = 3
"""GKE's default node pool size per zone: pods are spread over this many node names."""

POD_TEMPLATE_HASH_LABEL = "pod-template-hash"

_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""The characters Kubernetes uses for generated name suffixes (no vowels, no look-alikes)."""

_FIELD_REFS = {
    "metadata.name": "POD_NAME",
    "metadata.namespace": "POD_NAMESPACE",
    "status.podIP": "POD_IP",
    "spec.nodeName": "NODE_NAME",
    "spec.serviceAccountName": "POD_SERVICE_ACCOUNT",
}
"""Downward API fields a container's ``env[].valueFrom.fieldRef`` may name."""


@dataclass(frozen=True, slots=True)
class ContainerPlan:
    """One container of a pod: a process."""

    name: str
    image: str
    argv: tuple[str, ...]
    port: int | None
    """The port it is expected to listen on (its first containerPort); None: no probe."""
    ports: tuple[tuple[str, int], ...]
    """Named container ports, for Services whose targetPort is a name."""
    env: tuple[tuple[str, str], ...]
    """The pod's environment plus the container's own ``env`` and ``PORT``."""


@dataclass(frozen=True, slots=True)
class PodPlan:
    """One pod as it will run."""

    name: str
    cluster: str
    zone: str
    project: str
    namespace: str
    deployment: str
    address: str
    node_name: str
    labels: tuple[tuple[str, str], ...]
    """Template labels plus ``pod-template-hash``, sorted."""
    containers: tuple[ContainerPlan, ...]
    grace_s: float | None
    """``terminationGracePeriodSeconds`` of the template, if set."""

    @property
    def port(self) -> int:
        """The port of the first container that has one (0 if none does)."""
        for container in self.containers:
            if container.port is not None:
                return container.port
        return 0

    def matches(self, selector: Mapping[str, str]) -> bool:
        """Whether every label of ``selector`` is on this pod (an empty one matches none)."""
        if not selector:
            return False
        labels = dict(self.labels)
        return all(labels.get(k) == v for k, v in selector.items())

    def container_port(self, name: str) -> int | None:
        """The number of the container port called ``name``, if any container has it."""
        for container in self.containers:
            for port_name, number in container.ports:
                if port_name == name:
                    return number
        return None


@dataclass(frozen=True, slots=True)
class Backoff:
    """When a dead pod is started again: ``restartPolicy: Always`` with crash back-off.

    The kubelet waits 10 s after a crash, doubling up to 5 min, and forgets the crashes
    once a container has run 10 min. A local fleet restarts sooner by default (1 s
    doubling to 30 s, forgotten after 10 s running), so a killed pod is back within
    the health-check window of a demo rather than minutes later.
    """

    initial_s: float = 1.0
    max_s: float = 30.0
    reset_after_s: float = 10.0
    """A pod that ran at least this long before dying starts over at ``initial_s``."""

    def __post_init__(self) -> None:
        if not 0 <= self.initial_s <= self.max_s or self.reset_after_s < 0:
            raise errors.FleetError(
                f"restart back-off needs 0 <= initial ({self.initial_s:g} s) <= "
                f"max ({self.max_s:g} s) and reset-after >= 0 ({self.reset_after_s:g} s)"
            )

    def delay(self, crashes: int, ran_s: float) -> tuple[float, int]:
        """Return (seconds to wait before the restart, crash count after this one).

        Args:
            crashes: consecutive crashes before this one (0 for the first).
            ran_s: how long the pod ran this time before it died.
        """
        if ran_s >= self.reset_after_s:
            crashes = 0
        # 2**crashes overflows nothing: the exponent stops growing once max_s is hit.
        doublings = 0
        wait = self.initial_s
        while doublings < crashes and wait < self.max_s:
            wait *= 2
            doublings += 1
        return min(wait, self.max_s), crashes + 1


def template_hash(deployment: core.Deployment) -> str:
    """Ten hex digits that change when the pod template changes, like pod-template-hash."""
    digest = hashlib.sha256(
        f"{deployment.ref}\n".encode() + deployment.spec.template.model_dump_json().encode()
    )
    return digest.hexdigest()[:10]


def node_name(cluster: str, index: int) -> str:
    """A GKE-like node name, e.g. ``gke-gke-west-1-default-pool-1b913ea3-poei``."""
    pool = hashlib.sha256(f"{cluster}/default-pool".encode()).hexdigest()[:8]
    node = hashlib.sha256(f"{cluster}/default-pool/{index}".encode()).digest()
    suffix = "".join("abcdefghijklmnopqrstuvwxyz0123456789"[b % 36] for b in node[:4])
    return f"gke-{cluster}-default-pool-{pool}-{suffix}"


def instance_id(node: str) -> str:
    """The node's numeric GCE instance id (19 digits, stable for the node name)."""
    value = int.from_bytes(hashlib.sha256(node.encode()).digest()[:8], "big")
    return str(10**18 + value % (9 * 10**18))


def plan(
    fleet: resources.Resources,
    *,
    python: str,
    rng: random.Random | None = None,
    first_octet: int = 1,
) -> tuple[PodPlan, ...]:
    """Plan every pod of every Deployment of every cluster.

    Args:
        fleet: the clusters and their Deployments.
        python: the interpreter that runs the Store API.
        rng: source of name suffixes (a seeded one makes names reproducible in tests).
        first_octet: second octet of the first cluster's addresses; fleets running side
            by side on one machine need blocks that do not overlap.

    Returns:
        The pods, cluster by cluster in the Fleet's order, Deployments sorted.

    Raises:
        NotRunnableError: listing every Deployment that cannot run, so none is started.
    """
    rng = rng or random.Random()
    project = fleet.fleet.spec.project
    problems: list[str] = []
    pods: list[PodPlan] = []
    used_names: set[str] = set()
    if not 1 <= first_octet <= 256 - len(fleet.clusters):
        raise errors.NotRunnableError(
            (f"{len(fleet.clusters)} clusters from 127.{first_octet}.0.0 do not fit in 127/8",)
        )
    for c_index, cluster in enumerate(fleet.clusters):
        pods_in_cluster = 0
        for d_index, deployment in enumerate(cluster.deployments):
            where = f"cluster {cluster.name}: Deployment {deployment.ref}"
            spec = deployment.spec
            if d_index > 255 or spec.replicas > 253:
                problems.append(f"{where}: more than 256 Deployments or 253 replicas per cluster")
                continue
            commands = _commands(deployment, python, where, problems)
            if commands is None:
                continue
            pod_hash = template_hash(deployment)
            labels = {**spec.template.metadata.labels, POD_TEMPLATE_HASH_LABEL: pod_hash}
            for p_index in range(spec.replicas):
                name = _unique(f"{deployment.metadata.name}-{pod_hash}-", rng, used_names)
                node = node_name(cluster.name, pods_in_cluster % NODES_PER_CLUSTER)
                pods_in_cluster += 1
                address = f"127.{c_index + first_octet}.{d_index}.{p_index + 2}"
                pod_env = {
                    "POD_NAME": name,
                    "POD_NAMESPACE": deployment.metadata.namespace,
                    "POD_IP": address,
                    "NODE_NAME": node,
                    "CLUSTER_NAME": cluster.name,
                    "ZONE": cluster.zone,
                    "PROJECT_ID": project,
                    "GCE_INSTANCE_ID": instance_id(node),
                    "POD_SERVICE_ACCOUNT": spec.template.spec.service_account_name or "default",
                    "HOST": address,
                }
                containers = tuple(
                    _container(container, argv, pod_env)
                    for container, argv in zip(spec.template.spec.containers, commands, strict=True)
                )
                grace = spec.template.spec.termination_grace_period_seconds
                pods.append(
                    PodPlan(
                        name=name,
                        cluster=cluster.name,
                        zone=cluster.zone,
                        project=project,
                        namespace=deployment.metadata.namespace,
                        deployment=deployment.metadata.name,
                        address=address,
                        node_name=node,
                        labels=tuple(sorted(labels.items())),
                        containers=containers,
                        grace_s=None if grace is None else float(grace),
                    )
                )
    if problems:
        raise errors.NotRunnableError(tuple(problems))
    return tuple(pods)


def _commands(
    deployment: core.Deployment, python: str, where: str, problems: list[str]
) -> list[tuple[str, ...]] | None:
    """The argv of each container, or None after adding to ``problems``."""
    template = deployment.spec.template
    annotations = template.metadata.annotations
    containers = template.spec.containers
    others = [c for c in containers if WHEREAMI not in c.image]
    commands: list[tuple[str, ...]] = []
    ok = True
    for container in containers:
        if WHEREAMI in container.image:
            commands.append((python, "-m", STORE_MODULE))
            continue
        line = annotations.get(f"{COMMAND_ANNOTATION}.{container.name}")
        if line is None and len(others) == 1:
            line = annotations.get(COMMAND_ANNOTATION)
        if line is None:
            key = (
                COMMAND_ANNOTATION if len(others) == 1 else f"{COMMAND_ANNOTATION}.{container.name}"
            )
            problems.append(
                f"{where}: container {container.name!r} (image {container.image}) is not a "
                f"whereami image; add the annotation {key!r} to spec.template.metadata with "
                f"the command line that stands in for it (it gets the pod's env and PORT)"
            )
            ok = False
            continue
        try:
            argv = tuple(shlex.split(line))
        except ValueError as exc:
            problems.append(f"{where}: annotation {COMMAND_ANNOTATION}: {exc}: {line!r}")
            ok = False
            continue
        if not argv:
            problems.append(f"{where}: annotation {COMMAND_ANNOTATION} is empty")
            ok = False
            continue
        commands.append(argv)
    return commands if ok else None


def _container(
    container: core.Container, argv: tuple[str, ...], pod_env: dict[str, str]
) -> ContainerPlan:
    env = dict(pod_env)
    for var in container.env:
        if var.value is not None:
            env[var.name] = var.value
        elif var.value_from is not None:
            field_ref = var.value_from.get("fieldRef")
            path = field_ref.get("fieldPath") if isinstance(field_ref, dict) else None
            source = _FIELD_REFS.get(path) if isinstance(path, str) else None
            # ConfigMap and Secret references have no local source: left unset, as a
            # missing optional key would be.
            if source is not None:
                env[var.name] = pod_env[source]
        else:
            env[var.name] = ""
    port: int | None = None
    if container.ports:
        port = container.ports[0].container_port
    elif WHEREAMI in container.image:
        port = DEFAULT_WHEREAMI_PORT
    if port is not None:
        # The port is what readiness probes and Services use, so it wins over the env.
        env["PORT"] = str(port)
    return ContainerPlan(
        name=container.name,
        image=container.image,
        argv=argv,
        port=port,
        ports=tuple((p.name, p.container_port) for p in container.ports if p.name),
        env=tuple(env.items()),
    )


def _unique(prefix: str, rng: random.Random, used: set[str]) -> str:
    while True:
        name = prefix + "".join(rng.choice(_SUFFIX_ALPHABET) for _ in range(5))
        if name not in used:
            used.add(name)
            return name

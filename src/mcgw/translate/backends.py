"""Pass 4: backendRefs → IR backends with endpoints grouped by (cluster, zone); policies.

A backendRef names a core ``Service`` (resolved in the config cluster only, as GKE does)
or a ``ServiceImport`` (``net.gke.io`` or ``multicluster.x-k8s.io``). ServiceImports are
derived: every cluster that exports ns/name (a ServiceExport next to a Service of the
same name) contributes its endpoints, so one import spans the fleet; a ServiceImport
written by hand is honoured too, with the endpoints labelled for it in its cluster.

Endpoints come from EndpointSlices. The backendRef's port is a Service port; the pod
port is found through the Service's targetPort and the EndpointSlice's port names.

A reference that cannot be resolved gives ``ResolvedRefs=False`` with the spec's reason
and an IR ``WeightedBackend(backend=None)``: that share of requests is answered 500.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass

from mcgw.config import core, gatewayapi, mcs, policy, resources
from mcgw.ir import table, validate
from mcgw.translate import context, status

SERVICE = "Service"
SERVICE_IMPORT = "ServiceImport"

_C = status.ConditionType
_R = status.Reason


@dataclass(frozen=True, slots=True)
class Target:
    """What a backendRef or policy targetRef resolved to, by IR kind."""

    kind: str
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Problem:
    reason: status.Reason
    message: str


@dataclass(frozen=True, slots=True)
class Resolved:
    weighted: table.WeightedBackend
    problem: Problem | None


_TLS_APP_PROTOCOLS = frozenset({"https", "kubernetes.io/wss", "tls", "grpcs", "h2"})
"""appProtocols that need TLS to the backend (BackendTLSPolicy): not supported yet."""
_H2C_APP_PROTOCOLS = frozenset({"kubernetes.io/h2c", "h2c", "grpc"})


def backend_protocol(app_protocol: str | None) -> table.BackendProtocol | None:
    """The IR protocol for a port's appProtocol, or None when mcgw cannot speak it.

    Gateway API (GEP-1911): ``kubernetes.io/h2c`` is cleartext HTTP/2 with prior
    knowledge, ``kubernetes.io/ws`` WebSocket over cleartext HTTP/1.1; a protocol the
    implementation does not support makes the backendRef invalid (UnsupportedProtocol).
    Values that do not name a TLS protocol are spoken as HTTP/1.1.
    """
    value = (app_protocol or "").strip().lower()
    if value in _H2C_APP_PROTOCOLS:
        return table.BackendProtocol.H2C
    if value == "kubernetes.io/ws":
        return table.BackendProtocol.WS
    if value in _TLS_APP_PROTOCOLS:
        return None
    return table.BackendProtocol.HTTP


def target_kind(group: str, kind: str) -> str | None:
    """IR kind of a (group, kind) reference, or None if mcgw cannot route to it."""
    if group == "" and kind == SERVICE:
        return SERVICE
    if group in context.MCS_GROUPS and kind == SERVICE_IMPORT:
        return SERVICE_IMPORT
    return None


class Resolver:
    """Resolves backendRefs and builds each IR backend once, with its policies applied."""

    def __init__(self, ctx: context.Context, policies: PolicyIndex) -> None:
        self._ctx = ctx
        self._policies = policies
        self.backends: dict[str, table.Backend] = {}

    def resolve(self, route: gatewayapi.HTTPRoute, ref: gatewayapi.HTTPBackendRef) -> Resolved:
        """Resolve one backendRef of ``route``; never raises."""
        name, problem = self.resolve_target(route, ref, "backendRef")
        return Resolved(table.WeightedBackend(name, ref.weight), problem)

    def resolve_target(
        self, route: gatewayapi.HTTPRoute, ref: gatewayapi.BackendObjectReference, what: str
    ) -> tuple[str | None, Problem | None]:
        """(IR backend name, None) or (None, why): a backendRef or a mirror's backendRef.

        ``what`` names the reference in messages (``backendRef``, ``mirror backendRef``).
        """
        route_ns = route.metadata.namespace
        namespace = ref.namespace or route_ns
        where = f"{what} {ref.kind} {namespace}/{ref.name}"

        def fail(reason: status.Reason, message: str) -> tuple[None, Problem]:
            return None, Problem(reason, message)

        kind = target_kind(ref.group, ref.kind)
        if kind is None:
            group = ref.group or "core"
            return fail(
                _R.INVALID_KIND,
                f"{where}: group {group!r} kind {ref.kind!r} is not supported "
                f"(use a core Service or a ServiceImport of {' or '.join(context.MCS_GROUPS)})",
            )
        if not self._ctx.reference_permitted(
            "HTTPRoute", route_ns, ref.group, ref.kind, (namespace, ref.name)
        ):
            return fail(
                _R.REF_NOT_PERMITTED,
                f"{where}: no ReferenceGrant in namespace {namespace} allows HTTPRoutes "
                f"from {route_ns} to refer to it",
            )
        if ref.port is None:
            return fail(_R.BACKEND_NOT_FOUND, f"{where}: port is required")
        target = Target(kind, namespace, ref.name)
        if kind == SERVICE:
            svc = self._ctx.services.get((self._ctx.config.name, namespace, ref.name))
            if svc is None:
                return fail(
                    _R.BACKEND_NOT_FOUND,
                    f"{where}: no such Service in the config cluster {self._ctx.config.name}",
                )
            ports = {p.port: p.app_protocol for p in svc.spec.ports}
        else:
            imp = self._ctx.imports.get((namespace, ref.name))
            if imp is None:
                return fail(
                    _R.BACKEND_NOT_FOUND,
                    f"{where}: no cluster exports a Service {namespace}/{ref.name} "
                    "and no ServiceImport of that name exists",
                )
            ports = imp.app_protocols()
        if ref.port not in ports:
            known = ", ".join(str(p) for p in sorted(ports)) or "none"
            return fail(_R.BACKEND_NOT_FOUND, f"{where}: no port {ref.port} (ports: {known})")
        protocol = backend_protocol(ports[ref.port])
        if protocol is None:
            return fail(
                _R.UNSUPPORTED_PROTOCOL,
                f"{where}: port {ref.port} has appProtocol {ports[ref.port]!r}, which mcgw "
                "cannot speak to a backend (supported: http, kubernetes.io/h2c, "
                "kubernetes.io/ws)",
            )
        name = validate.backend_name(kind, namespace, ref.name, ref.port)
        if name not in self.backends:
            self.backends[name] = dataclasses.replace(
                self._build(target, ref.port), protocol=protocol
            )
        return name, None

    def _build(self, target: Target, port: int) -> table.Backend:
        groups: dict[tuple[str, str], set[table.Endpoint]] = defaultdict(set)
        regions: dict[str, str] = {}
        tiers: tuple[table.ClusterTier, ...] = ()
        if target.kind == SERVICE:
            cluster = self._ctx.config
            svc = self._ctx.services[(cluster.name, target.namespace, target.name)]
            self._collect(cluster, svc, port, groups, regions)
        else:
            imp = self._ctx.imports[(target.namespace, target.name)]
            for export in imp.exports:
                self._collect(export.cluster, export.service, port, groups, regions)
            for cluster, written in imp.written:
                self._collect_written(cluster, written, port, groups, regions)
            tiers = cluster_tiers(self._ctx, imp)
        backend = table.Backend(
            name=validate.backend_name(target.kind, target.namespace, target.name, port),
            kind=target.kind,
            namespace=target.namespace,
            service=target.name,
            port=port,
            groups=tuple(
                table.BackendGroup(
                    cluster=cluster_name,
                    region=regions[cluster_name],
                    zone=zone,
                    endpoints=tuple(
                        sorted(endpoints, key=lambda e: (e.address, e.port, e.pod, e.ready))
                    ),
                )
                for (cluster_name, zone), endpoints in sorted(groups.items())
            ),
            tiers=tiers,
        )
        return self._policies.apply(target, backend)

    def _collect(
        self,
        cluster: resources.ClusterResources,
        svc: core.Service,
        port: int,
        groups: dict[tuple[str, str], set[table.Endpoint]],
        regions: dict[str, str],
    ) -> None:
        svc_port = next((p for p in svc.spec.ports if p.port == port), None)
        if svc_port is None:
            self._ctx.warnings.append(
                f"Service {svc.ref} in cluster {cluster.name} has no port {port}; "
                "the cluster contributes no endpoint to it"
            )
            return
        slices = self._ctx.slices.get((cluster.name, svc.metadata.namespace, svc.metadata.name))
        for eps in slices or ():
            target_port = _target_port(eps, svc_port, single=len(svc.spec.ports) == 1)
            if target_port is None:
                self._ctx.warnings.append(
                    f"EndpointSlice {eps.ref} in cluster {cluster.name}: no port matches "
                    f"Service {svc.ref} port {port} (targetPort {svc_port.target_port})"
                )
                continue
            _add(cluster, eps, target_port, groups, regions)

    def _collect_written(
        self,
        cluster: resources.ClusterResources,
        imp: mcs.ServiceImport,
        port: int,
        groups: dict[tuple[str, str], set[table.Endpoint]],
        regions: dict[str, str],
    ) -> None:
        imp_port = next((p for p in imp.spec.ports if p.port == port), None)
        if imp_port is None:
            return
        key = (cluster.name, imp.metadata.namespace, imp.metadata.name)
        for eps in self._ctx.import_slices.get(key, ()):
            names = {p.name or "": p.port for p in eps.ports}
            if (imp_port.name or "") in names:
                target_port: int | None = names[imp_port.name or ""]
            elif len(eps.ports) == 1:
                target_port = eps.ports[0].port
            elif not eps.ports:
                target_port = port
            else:
                target_port = None
            if target_port is None:
                continue
            _add(cluster, eps, target_port, groups, regions)


TIER_ANNOTATION = "mcgw.dev/tier"
WEIGHT_ANNOTATION = "mcgw.dev/weight"


def cluster_tiers(ctx: context.Context, imp: context.ImportIndex) -> tuple[table.ClusterTier, ...]:
    """Priority tiers of a derived ServiceImport, from its ServiceExports' annotations
    (empty when none has one). A value that is not a whole number (tier >= 0, weight >= 1)
    is warned about and ignored."""
    found: dict[str, table.ClusterTier] = {}
    for export in imp.exports:
        cluster = export.cluster
        obj = next(
            (
                e
                for e in cluster.service_exports
                if (e.metadata.namespace, e.metadata.name) == (imp.namespace, imp.name)
            ),
            None,
        )
        if obj is None:
            continue
        notes = obj.metadata.annotations
        if TIER_ANNOTATION not in notes and WEIGHT_ANNOTATION not in notes:
            continue
        where = f"ServiceExport {obj.ref} in cluster {cluster.name}"
        values: dict[str, int] = {}
        for name, low in ((TIER_ANNOTATION, 0), (WEIGHT_ANNOTATION, 1)):
            raw = notes.get(name)
            if raw is None:
                continue
            if raw.strip().isdigit() and int(raw) >= low:
                values[name] = int(raw)
            else:
                ctx.warnings.append(
                    f"{where}: annotation {name}: {raw!r} is not a whole number >= {low}; ignored"
                )
        found[cluster.name] = table.ClusterTier(
            cluster=cluster.name,
            tier=values.get(TIER_ANNOTATION, 0),
            weight=values.get(WEIGHT_ANNOTATION, 0),
        )
    if not found:
        return ()
    for export in imp.exports:
        found.setdefault(export.cluster.name, table.ClusterTier(cluster=export.cluster.name))
    return tuple(found[name] for name in sorted(found))


def _target_port(eps: core.EndpointSlice, svc_port: core.ServicePort, single: bool) -> int | None:
    """The pod port of ``svc_port`` in ``eps``.

    Kubernetes names EndpointSlice ports after the Service port they serve and gives
    them the resolved target number; hand-written slices may instead name the target
    port, or hold one port for a one-port Service.
    """
    target = svc_port.target_port if svc_port.target_port is not None else svc_port.port
    if not eps.ports:
        return target if isinstance(target, int) else None
    by_name = {p.name or "": p.port for p in eps.ports}
    if svc_port.name and svc_port.name in by_name:
        return by_name[svc_port.name]
    if isinstance(target, str):
        return by_name.get(target)
    if target in {p.port for p in eps.ports}:
        return target
    if "" in by_name and not svc_port.name:
        return by_name[""]
    if single and len(eps.ports) == 1:
        return eps.ports[0].port
    return None


def _add(
    cluster: resources.ClusterResources,
    eps: core.EndpointSlice,
    port: int,
    groups: dict[tuple[str, str], set[table.Endpoint]],
    regions: dict[str, str],
) -> None:
    regions[cluster.name] = cluster.region
    for ep in eps.endpoints:
        zone = ep.zone or cluster.zone
        pod = (ep.target_ref or {}).get("name", "")
        ready = ep.conditions.ready is not False and ep.conditions.terminating is not True
        groups[(cluster.name, zone)].add(
            table.Endpoint(address=ep.addresses[0], port=port, pod=pod, ready=ready)
        )


# --- policies -----------------------------------------------------------------------------


class PolicyIndex:
    """HealthCheckPolicy, GCPBackendPolicy and GCPTrafficDistributionPolicy, resolved to
    the targets they override."""

    def __init__(self, ctx: context.Context, resolver_exists: _Exists) -> None:
        self.statuses: list[status.ObjectStatus] = []
        self._health: dict[Target, table.HealthCheck] = {}
        self._backend: dict[Target, policy.GCPBackendPolicy] = {}
        self._traffic: dict[Target, policy.GCPTrafficDistributionPolicy] = {}
        self._index(ctx, resolver_exists)
        self._index_traffic(ctx, resolver_exists)

    def _index(self, ctx: context.Context, exists: _Exists) -> None:
        Policy = policy.HealthCheckPolicy | policy.GCPBackendPolicy
        health: list[Policy] = list(ctx.config.health_check_policies)
        backend: list[Policy] = list(ctx.config.backend_policies)
        kinds = (("HealthCheckPolicy", health), ("GCPBackendPolicy", backend))
        for kind, objs in kinds:
            ordered = sorted(
                objs,
                key=lambda p: (
                    context.created_key(p.metadata.creation_timestamp),
                    p.metadata.namespace,
                    p.metadata.name,
                ),
            )
            claimed: dict[Target, str] = {}
            for obj in ordered:
                cond = self._one(kind, obj, exists, claimed)
                if cond.status is status.ConditionStatus.TRUE and isinstance(
                    obj, policy.GCPBackendPolicy
                ):
                    _warn_backend_policy(ctx, obj)
                self.statuses.append(
                    status.ObjectStatus(
                        kind=kind,
                        namespace=obj.metadata.namespace,
                        name=obj.metadata.name,
                        cluster=ctx.config.name,
                        generation=obj.metadata.generation,
                        conditions=(cond,),
                    )
                )

    def _one(
        self,
        kind: str,
        obj: policy.HealthCheckPolicy | policy.GCPBackendPolicy,
        exists: _Exists,
        claimed: dict[Target, str],
    ) -> status.Condition:
        ref = obj.spec.target_ref
        ns = obj.metadata.namespace
        ir_kind = target_kind(ref.group, ref.kind)
        if ir_kind is None:
            return status.false(
                _C.ACCEPTED,
                _R.INVALID,
                f"targetRef {ref.group or 'core'}/{ref.kind} is not a Service or ServiceImport",
            )
        if ref.namespace not in (None, ns):
            return status.false(
                _C.ACCEPTED, _R.INVALID, "targetRef must be in the policy's own namespace"
            )
        target = Target(ir_kind, ns, ref.name)
        if not exists(target):
            return status.false(
                _C.ACCEPTED, _R.TARGET_NOT_FOUND, f"{ir_kind} {ns}/{ref.name} does not exist"
            )
        if target in claimed:
            return status.false(
                _C.ACCEPTED,
                _R.CONFLICTED,
                f"{kind} {claimed[target]} already targets {ir_kind} {ns}/{ref.name} "
                "(the oldest policy wins)",
            )
        if isinstance(obj, policy.HealthCheckPolicy):
            check, problem = health_check(obj)
            if check is None:
                return status.false(_C.ACCEPTED, _R.INVALID, problem)
            self._health[target] = check
        else:
            self._backend[target] = obj
        claimed[target] = obj.metadata.name
        return status.true(_C.ACCEPTED, _R.ACCEPTED, f"applies to {ir_kind} {ns}/{ref.name}")

    def _index_traffic(self, ctx: context.Context, exists: _Exists) -> None:
        """GCPTrafficDistributionPolicy has a list of targets (GKE's CRD): it is accepted
        when it applies to at least one; the oldest policy wins a contested target."""
        kind = "GCPTrafficDistributionPolicy"
        claimed: dict[Target, str] = {}
        for obj in sorted(
            ctx.config.traffic_policies,
            key=lambda p: (
                context.created_key(p.metadata.creation_timestamp),
                p.metadata.namespace,
                p.metadata.name,
            ),
        ):
            ns = obj.metadata.namespace
            applied: list[str] = []
            missing: list[str] = []
            conflicts: list[str] = []
            invalid: list[str] = []
            for ref in obj.spec.target_refs:
                ir_kind = target_kind(ref.group, ref.kind)
                if ir_kind is None:
                    invalid.append(f"{ref.group or 'core'}/{ref.kind} {ref.name}")
                    continue
                target = Target(ir_kind, ns, ref.name)
                where = f"{ir_kind} {ns}/{ref.name}"
                if not exists(target):
                    missing.append(where)
                elif target in claimed:
                    conflicts.append(f"{where} (already targeted by {claimed[target]})")
                else:
                    claimed[target] = obj.metadata.name
                    self._traffic[target] = obj
                    applied.append(where)
            if invalid:
                cond = status.false(
                    _C.ACCEPTED,
                    _R.INVALID,
                    f"targetRefs {', '.join(invalid)}: not a Service or ServiceImport",
                )
            elif applied:
                message = f"applies to {', '.join(applied)}"
                if missing or conflicts:
                    message += f"; not to {', '.join(missing + conflicts)}"
                cond = status.true(_C.ACCEPTED, _R.ACCEPTED, message)
            elif missing:
                cond = status.false(
                    _C.ACCEPTED, _R.TARGET_NOT_FOUND, f"{', '.join(missing)} does not exist"
                )
            else:
                cond = status.false(
                    _C.ACCEPTED,
                    _R.CONFLICTED,
                    f"{', '.join(conflicts)}: the oldest policy wins",
                )
            if cond.status is status.ConditionStatus.TRUE:
                self._warn_unsupported(ctx, obj)
            self.statuses.append(
                status.ObjectStatus(
                    kind=kind,
                    namespace=ns,
                    name=obj.metadata.name,
                    cluster=ctx.config.name,
                    generation=obj.metadata.generation,
                    conditions=(cond,),
                )
            )

    @staticmethod
    def _warn_unsupported(ctx: context.Context, obj: policy.GCPTrafficDistributionPolicy) -> None:
        default = obj.spec.default
        where = f"GCPTrafficDistributionPolicy {obj.ref}"
        if default.locality_lb_algorithm not in _LOCALITY_ALGORITHMS:
            ctx.warnings.append(
                f"{where}: localityLbAlgorithm {default.locality_lb_algorithm} is not "
                "implemented; endpoints take turns (ROUND_ROBIN)"
            )
        if default.service_lb_algorithm == "WATERFALL_BY_ZONE":
            ctx.warnings.append(
                f"{where}: WATERFALL_BY_ZONE is served as WATERFALL_BY_REGION (the "
                "gateway has a region, not a zone, to be closest to)"
            )

    def apply(self, target: Target, backend: table.Backend) -> table.Backend:
        check = self._health.get(target)
        if check is not None:
            backend = dataclasses.replace(backend, health_check=check)
        gcp = self._backend.get(target)
        if gcp is not None:
            default = gcp.spec.default
            draining = default.connection_draining
            backend = dataclasses.replace(
                backend,
                timeout_s=float(default.timeout_sec),
                max_rate_per_endpoint=float(default.max_rate_per_endpoint),
                capacity_scaler=default.capacity_scaler,
                affinity=session_affinity(default.session_affinity),
                draining_timeout_s=None
                if draining is None
                else float(draining.draining_timeout_sec),
            )
            if default.logging is not None:
                rate = default.logging.sample_rate if default.logging.enabled else 0
                backend = dataclasses.replace(backend, log_sample_rate=rate)
        traffic = self._traffic.get(target)
        if traffic is not None:
            spread = traffic.spec.default
            drain = spread.auto_capacity_drain
            locality = spread.locality_lb_algorithm
            backend = dataclasses.replace(
                backend,
                lb_algorithm=table.LbAlgorithm(spread.service_lb_algorithm),
                failover_health_threshold=spread.failover_health_threshold,
                locality_lb=table.LocalityLbAlgorithm(locality)
                if locality in _LOCALITY_ALGORITHMS
                else table.LocalityLbAlgorithm.ROUND_ROBIN,
                auto_capacity_drain=drain is not None and drain.enable_auto_capacity_drain,
            )
        return backend


_LOCALITY_ALGORITHMS = frozenset(a.value for a in table.LocalityLbAlgorithm)

GENERATED_COOKIE_NAME = "GCLB"
"""The cookie of GENERATED_COOKIE affinity: the name GKE's global external load
balancers give theirs, so applications moved from GKE see the same cookie."""

_AFFINITY_AS = {
    "CLIENT_IP": table.AffinityType.CLIENT_IP,
    # Every request to an HTTP gateway is TCP: the protocol adds nothing to the hash.
    "CLIENT_IP_PROTO": table.AffinityType.CLIENT_IP,
    "GENERATED_COOKIE": table.AffinityType.GENERATED_COOKIE,
    "HEADER_FIELD": table.AffinityType.HEADER_FIELD,
}


def session_affinity(config: policy.SessionAffinityConfig | None) -> table.SessionAffinity:
    """The IR affinity of a GCPBackendPolicy ``sessionAffinity`` (NONE for types mcgw
    does not serve; :func:`_warn_backend_policy` says so)."""
    if config is None or config.type not in _AFFINITY_AS:
        return table.SessionAffinity()
    kind = _AFFINITY_AS[config.type]
    if kind is table.AffinityType.GENERATED_COOKIE:
        return table.SessionAffinity(
            type=kind, cookie_name=GENERATED_COOKIE_NAME, cookie_ttl_s=config.cookie_ttl_sec or 0
        )
    if kind is table.AffinityType.HEADER_FIELD:
        return table.SessionAffinity(type=kind, header=(config.http_header_name or "").lower())
    return table.SessionAffinity(type=kind)


def _warn_backend_policy(ctx: context.Context, obj: policy.GCPBackendPolicy) -> None:
    affinity = obj.spec.default.session_affinity
    if affinity is None:
        return
    where = f"GCPBackendPolicy {obj.ref}"
    if affinity.type == "CLIENT_IP_PORT_PROTO":
        ctx.warnings.append(
            f"{where}: sessionAffinity CLIENT_IP_PORT_PROTO cannot be used with HTTP load "
            "balancing (GCP refuses it); requests have no affinity"
        )
    elif affinity.type == "HTTP_COOKIE":
        ctx.warnings.append(
            f"{where}: sessionAffinity HTTP_COOKIE is not implemented (it needs the "
            "backend service's consistentHash.httpCookie); requests have no affinity. "
            "Use GENERATED_COOKIE"
        )


class _Exists:
    """Whether a policy target exists; Services only in the config cluster."""

    def __init__(self, ctx: context.Context) -> None:
        self._ctx = ctx

    def __call__(self, target: Target) -> bool:
        if target.kind == SERVICE:
            return (self._ctx.config.name, target.namespace, target.name) in self._ctx.services
        return (target.namespace, target.name) in self._ctx.imports


def health_check(obj: policy.HealthCheckPolicy) -> tuple[table.HealthCheck | None, str]:
    """The IR health check a HealthCheckPolicy asks for, or None and why it cannot be."""
    default = obj.spec.default
    check = table.HealthCheck(
        interval_s=float(default.check_interval_sec),
        timeout_s=float(default.timeout_sec),
        healthy_threshold=default.healthy_threshold,
        unhealthy_threshold=default.unhealthy_threshold,
    )
    config = default.config
    if config is None:
        return check, ""
    if config.type != "HTTP" or config.http_health_check is None:
        return None, f"health check type {config.type} is not supported yet (only HTTP)"
    http = config.http_health_check
    spec = http.effective_port_specification
    if spec == "USE_NAMED_PORT":
        return None, "portSpecification USE_NAMED_PORT is not supported yet"
    port = http.port if spec == "USE_FIXED_PORT" else None
    if spec == "USE_FIXED_PORT" and port is None:
        return None, "portSpecification USE_FIXED_PORT needs port"
    return dataclasses.replace(check, path=http.request_path, port=port), ""


def policies(ctx: context.Context) -> PolicyIndex:
    return PolicyIndex(ctx, _Exists(ctx))


def import_statuses(ctx: context.Context) -> list[status.ObjectStatus]:
    """One status per ServiceImport ns/name, derived or written, in the config cluster."""
    out: list[status.ObjectStatus] = []
    for (ns, name), imp in sorted(ctx.imports.items()):
        clusters = sorted({e.cluster.name for e in imp.exports})
        written = sorted({c.name for c, _ in imp.written})
        parts = []
        if clusters:
            parts.append(f"exported by {', '.join(clusters)}")
        if written:
            parts.append(f"written in {', '.join(written)}")
        generation = imp.written[0][1].metadata.generation if imp.written else None
        out.append(
            status.ObjectStatus(
                kind=SERVICE_IMPORT,
                namespace=ns,
                name=name,
                cluster=ctx.config.name,
                generation=generation,
                conditions=(status.true(_C.ACCEPTED, _R.ACCEPTED, "; ".join(parts)),),
            )
        )
    return out

"""``translate(resources) -> Result``: the fixed sequence of passes.

Each pass reads the context and what earlier passes found, and never raises on bad
input: it records a condition and leaves the offending piece out. The order matters:

1. gatewayclasses: which classes are mcgw's;
2. listeners: Gateways of those classes, their valid listeners, grouped by socket;
3. policies: HealthCheckPolicy / GCPBackendPolicy resolved to their targets (backends
   built in 4 need them);
4. routes + backends: every HTTPRoute's rules compiled, its backendRefs resolved, then
   attached to listeners (attachedRoutes counted);
5. table: IR listeners with virtual hosts and routes in precedence order, the backends
   those routes use, the locality of every cluster region; validated and stamped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from mcgw.config import resources
from mcgw.ir import codec, table, validate
from mcgw.translate import (
    backends,
    context,
    gatewayclasses,
    listeners,
    regions,
    routes,
    status,
)


@dataclass(frozen=True, slots=True)
class Options:
    """How to translate; the defaults suit a laptop."""

    address_pool: str = listeners.DEFAULT_ADDRESS_POOL
    """Network (CIDR, or a single address) from which a Gateway without
    ``spec.addresses`` gets its address, oldest Gateway first: ``127.0.0.1``,
    ``127.0.0.2``, ... with the default."""


KeyPairs = dict[str, table.KeyPair]
"""Fingerprint → PEM of a certificate and its key (``Result.key_pairs``)."""


@dataclass(frozen=True, slots=True)
class Result:
    table: table.RouteTable
    """Validated and stamped with its version."""
    statuses: tuple[status.ObjectStatus, ...]
    """One per GatewayClass, Gateway, HTTPRoute, ServiceImport and policy, sorted."""
    warnings: tuple[str, ...]
    """What is ignored or suspicious but has no status to carry it."""
    key_pairs: KeyPairs = field(default_factory=dict, repr=False)
    """The PEM of every certificate the table's HTTPS listeners name, by fingerprint:
    kept beside the table so that no dump of it carries a private key."""


def translate(res: resources.Resources, options: Options | None = None) -> Result:
    """Compile ``res`` into a route table and the status of every object.

    Returns:
        The result; bad input becomes conditions and warnings, never an exception.

    Raises:
        validate.InvalidTableError: the translator built an invalid table (a bug).
    """
    options = options or Options()
    ctx = context.Context(res)
    statuses: list[status.ObjectStatus] = []

    statuses.extend(gatewayclasses.run(ctx))
    gateways = listeners.run(ctx, options.address_pool)
    policy_index = backends.policies(ctx)
    resolver = backends.Resolver(ctx, policy_index)

    attachments: list[routes.Attachment] = []
    route_states: list[routes.RouteState] = []
    for route in sorted(
        ctx.config.http_routes, key=lambda r: (r.metadata.namespace, r.metadata.name)
    ):
        state = routes.compile_route(route, resolver, ctx.warnings)
        attachments.extend(routes.attach(ctx, gateways, state))
        route_states.append(state)

    sockets = listeners.programmed_sockets(gateways)
    ir_listeners = routes.build_listeners(sockets, attachments)
    ir_listeners = tuple(
        dataclasses.replace(ir, tls=tls) if (tls := listeners.listener_tls(group)) else ir
        for ir, group in zip(ir_listeners, sockets.values(), strict=True)
    )
    used = sorted(_used_backends(ir_listeners))
    locality, region_warnings = regions.locality(
        res.fleet.spec, (c.region for c in res.fleet.spec.clusters)
    )
    ctx.warnings.extend(region_warnings)
    ctx.warnings.extend(
        regions.spillover_warnings(res.fleet.spec, (resolver.backends[name] for name in used))
    )
    route_table = codec.stamp(
        table.RouteTable(
            listeners=ir_listeners,
            backends=tuple(resolver.backends[name] for name in used),
            locality=locality,
        )
    )
    errors = validate.validate(route_table)
    if errors:
        raise validate.InvalidTableError(errors)

    for gw in gateways:
        meta = gw.gateway.metadata
        statuses.append(
            status.ObjectStatus(
                kind="Gateway",
                namespace=meta.namespace,
                name=meta.name,
                cluster=ctx.config.name,
                generation=meta.generation,
                conditions=tuple(gw.conditions),
                listeners=listeners.listener_statuses(gw),
                addresses=(gw.address,) if gw.address else (),
            )
        )
    for state in route_states:
        meta = state.route.metadata
        statuses.append(
            status.ObjectStatus(
                kind="HTTPRoute",
                namespace=meta.namespace,
                name=meta.name,
                cluster=ctx.config.name,
                generation=meta.generation,
                conditions=(),
                parents=tuple(state.parents),
            )
        )
    statuses.extend(backends.import_statuses(ctx))
    statuses.extend(policy_index.statuses)
    return Result(
        table=route_table,
        statuses=tuple(sorted(statuses, key=status.sort_key)),
        warnings=tuple(ctx.warnings),
        key_pairs=listeners.key_pairs(gateways),
    )


def _used_backends(ir_listeners: tuple[table.Listener, ...]) -> set[str]:
    """Every backend a route forwards or mirrors to."""
    used: set[str] = set()
    for lis in ir_listeners:
        for vh in lis.virtual_hosts:
            for r in vh.routes:
                used.update(m.backend for m in r.filters.mirrors)
                for w in r.backends:
                    if w.backend is not None:
                        used.add(w.backend)
                    used.update(m.backend for m in w.filters.mirrors)
    return used

"""Pass 1: which GatewayClasses mcgw handles.

mcgw answers to its own controllerName and, so that GKE manifests run unchanged, to
GKE's: GKE's class names are built in (they exist on every GKE cluster without being
written), and a GatewayClass object naming GKE's controller is accepted too. A
GatewayClass object always wins over a built-in of the same name.
"""

from __future__ import annotations

from mcgw.translate import context, status

GKE_CONTROLLER_NAME = "networking.gke.io/gateway"

BUILTIN_CLASSES = (
    "gke-l7-global-external-managed-mc",
    "gke-l7-gxlb-mc",
    "gke-l7-rilb-mc",
    "gke-l7-regional-external-managed-mc",
    "gke-l7-global-external-managed",
    "gke-l7-regional-external-managed",
    "gke-l7-rilb",
    "gke-l7-gxlb",
)
"""GKE's GatewayClass names, multi-cluster (``-mc``) and single-cluster."""

CONTROLLER_NAMES = (status.CONTROLLER_NAME, GKE_CONTROLLER_NAME)


def run(ctx: context.Context) -> list[status.ObjectStatus]:
    """Record accepted class names in ``ctx.accepted_classes``; return class statuses."""
    statuses: list[status.ObjectStatus] = []
    for name, cls in sorted(ctx.gateway_classes.items()):
        controller = cls.spec.controller_name
        if controller in CONTROLLER_NAMES:
            ctx.accepted_classes.add(name)
            cond = status.true(
                status.ConditionType.ACCEPTED,
                status.Reason.ACCEPTED,
                f"handled by mcgw (controllerName {controller})",
            )
        else:
            # Not ours: a real controller would leave it alone; we say why it is ignored.
            cond = status.unknown(
                status.ConditionType.ACCEPTED,
                status.Reason.PENDING,
                f"controllerName {controller!r} is not handled by mcgw "
                f"(expected one of: {', '.join(CONTROLLER_NAMES)})",
            )
        statuses.append(
            status.ObjectStatus(
                kind="GatewayClass",
                namespace="",
                name=name,
                cluster=ctx.config.name,
                generation=cls.metadata.generation,
                conditions=(cond,),
            )
        )
    used = {gw.spec.gateway_class_name for gw in ctx.config.gateways}
    for name in BUILTIN_CLASSES:
        if name in ctx.gateway_classes:
            continue
        ctx.accepted_classes.add(name)
        if name in used:
            statuses.append(
                status.ObjectStatus(
                    kind="GatewayClass",
                    namespace="",
                    name=name,
                    cluster=ctx.config.name,
                    generation=None,
                    conditions=(
                        status.true(
                            status.ConditionType.ACCEPTED,
                            status.Reason.ACCEPTED,
                            "built-in GKE GatewayClass, handled by mcgw",
                        ),
                    ),
                )
            )
    return statuses

"""What the translator says about each object: conditions with the Gateway API's vocabulary.

Condition types and reasons are spelt exactly as the Gateway API (and GEP-713 for
policies) spells them, so ``mcgw status`` reads like ``kubectl describe`` on GKE.
Everything is a frozen value; the passes build conditions and the translator assembles
one :class:`ObjectStatus` per object it was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

CONTROLLER_NAME = "mcgw.dev/gateway-controller"
"""The controllerName mcgw answers to (and writes into HTTPRoute parent statuses)."""


class ConditionType(StrEnum):
    ACCEPTED = "Accepted"
    PROGRAMMED = "Programmed"
    RESOLVED_REFS = "ResolvedRefs"
    PARTIALLY_INVALID = "PartiallyInvalid"
    CONFLICTED = "Conflicted"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Reason(StrEnum):
    # Positive outcomes.
    ACCEPTED = "Accepted"
    PROGRAMMED = "Programmed"
    RESOLVED_REFS = "ResolvedRefs"
    NO_CONFLICTS = "NoConflicts"
    PENDING = "Pending"
    # GatewayClass / Gateway.
    INVALID_PARAMETERS = "InvalidParameters"
    LISTENERS_NOT_VALID = "ListenersNotValid"
    UNSUPPORTED_ADDRESS = "UnsupportedAddress"
    ADDRESS_NOT_ASSIGNED = "AddressNotAssigned"
    INVALID = "Invalid"
    # Listeners.
    UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"
    PORT_UNAVAILABLE = "PortUnavailable"
    PROTOCOL_CONFLICT = "ProtocolConflict"
    HOSTNAME_CONFLICT = "HostnameConflict"
    INVALID_ROUTE_KINDS = "InvalidRouteKinds"
    INVALID_CERTIFICATE_REF = "InvalidCertificateRef"
    # Routes.
    NO_MATCHING_PARENT = "NoMatchingParent"
    NOT_ALLOWED_BY_LISTENERS = "NotAllowedByListeners"
    NO_MATCHING_LISTENER_HOSTNAME = "NoMatchingListenerHostname"
    UNSUPPORTED_VALUE = "UnsupportedValue"
    # References.
    INVALID_KIND = "InvalidKind"
    BACKEND_NOT_FOUND = "BackendNotFound"
    REF_NOT_PERMITTED = "RefNotPermitted"
    # Policies (GEP-713).
    TARGET_NOT_FOUND = "TargetNotFound"
    CONFLICTED = "Conflicted"


@dataclass(frozen=True, slots=True)
class Condition:
    type: ConditionType
    status: ConditionStatus
    reason: Reason
    message: str = ""


def true(type_: ConditionType, reason: Reason, message: str = "") -> Condition:
    return Condition(type_, ConditionStatus.TRUE, reason, message)


def false(type_: ConditionType, reason: Reason, message: str = "") -> Condition:
    return Condition(type_, ConditionStatus.FALSE, reason, message)


def unknown(type_: ConditionType, reason: Reason, message: str = "") -> Condition:
    return Condition(type_, ConditionStatus.UNKNOWN, reason, message)


@dataclass(frozen=True, slots=True)
class ListenerStatus:
    """``Gateway.status.listeners[i]``."""

    name: str
    attached_routes: int
    supported_kinds: tuple[str, ...]
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class ParentRef:
    """A parentRef with its defaults filled in, as status echoes it."""

    group: str
    kind: str
    namespace: str
    name: str
    section_name: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        text = f"{self.namespace}/{self.name}"
        if self.section_name is not None:
            text += f"#{self.section_name}"
        if self.port is not None:
            text += f":{self.port}"
        return text


@dataclass(frozen=True, slots=True)
class ParentStatus:
    """``HTTPRoute.status.parents[i]``."""

    parent_ref: ParentRef
    controller_name: str
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class ObjectStatus:
    """The status of one object the translator was given."""

    kind: str
    namespace: str
    name: str
    cluster: str
    generation: int | None
    """The ``metadata.generation`` these conditions were computed from."""
    conditions: tuple[Condition, ...]
    listeners: tuple[ListenerStatus, ...] = ()
    """Gateways only."""
    parents: tuple[ParentStatus, ...] = ()
    """HTTPRoutes only."""
    addresses: tuple[str, ...] = ()
    """Gateways only: the IP addresses its listeners are bound to (``status.addresses``)."""

    def condition(self, type_: ConditionType) -> Condition | None:
        for cond in self.conditions:
            if cond.type is type_:
                return cond
        return None


KIND_ORDER = ("GatewayClass", "Gateway", "HTTPRoute", "ServiceImport")
"""Order of kinds in :func:`sort_key`; other kinds (policies) follow by name."""


def sort_key(obj: ObjectStatus) -> tuple[int, str, str, str, str]:
    """Statuses are listed by kind, then cluster/namespace/name: deterministic output."""
    rank = KIND_ORDER.index(obj.kind) if obj.kind in KIND_ORDER else len(KIND_ORDER)
    return (rank, obj.kind, obj.cluster, obj.namespace, obj.name)


# --- as Kubernetes shows it ------------------------------------------------------------

API_VERSIONS = {
    "GatewayClass": "gateway.networking.k8s.io/v1",
    "Gateway": "gateway.networking.k8s.io/v1",
    "HTTPRoute": "gateway.networking.k8s.io/v1",
    "ServiceImport": "net.gke.io/v1",
    "HealthCheckPolicy": "networking.gke.io/v1",
    "GCPBackendPolicy": "networking.gke.io/v1",
    "GCPTrafficDistributionPolicy": "networking.gke.io/v1",
}
GATEWAY_GROUP = "gateway.networking.k8s.io"


def _conditions(
    conditions: tuple[Condition, ...], generation: int, now: str
) -> list[dict[str, object]]:
    return [
        {
            "type": str(c.type),
            "status": str(c.status),
            "reason": str(c.reason),
            "message": c.message,
            "observedGeneration": generation,
            "lastTransitionTime": now,
        }
        for c in conditions
    ]


def kubernetes(
    obj: ObjectStatus, now: str, supported_features: tuple[str, ...] = ()
) -> dict[str, object]:
    """The object as ``kubectl get -o yaml`` would show its status.

    Args:
        now: RFC 3339 time written as every condition's ``lastTransitionTime`` (the
            translator is stateless; a controller keeping history would keep older ones).
        supported_features: written into an accepted GatewayClass's
            ``status.supportedFeatures``.

    A missing ``metadata.generation`` counts as 1, as the API server starts there.
    """
    generation = obj.generation if obj.generation is not None else 1
    metadata: dict[str, object] = {"name": obj.name}
    if obj.namespace:
        metadata["namespace"] = obj.namespace
    metadata["generation"] = generation
    metadata["annotations"] = {"mcgw.dev/cluster": obj.cluster}
    body: dict[str, object] = {}
    if obj.kind == "Gateway":
        body["addresses"] = [{"type": "IPAddress", "value": a} for a in obj.addresses]
    body["conditions"] = _conditions(obj.conditions, generation, now)
    if obj.kind == "GatewayClass":
        accepted = obj.condition(ConditionType.ACCEPTED)
        if accepted is not None and accepted.status is ConditionStatus.TRUE:
            body["supportedFeatures"] = [{"name": f} for f in supported_features]
    if obj.kind == "Gateway":
        body["listeners"] = [
            {
                "name": lis.name,
                "supportedKinds": [
                    {"group": GATEWAY_GROUP, "kind": k} for k in lis.supported_kinds
                ],
                "attachedRoutes": lis.attached_routes,
                "conditions": _conditions(lis.conditions, generation, now),
            }
            for lis in obj.listeners
        ]
    if obj.kind == "HTTPRoute":
        del body["conditions"]  # HTTPRoute status has conditions per parent only.
        body["parents"] = [
            {
                "parentRef": _parent_ref(p.parent_ref),
                "controllerName": p.controller_name,
                "conditions": _conditions(p.conditions, generation, now),
            }
            for p in obj.parents
        ]
    return {
        "apiVersion": API_VERSIONS.get(obj.kind, "v1"),
        "kind": obj.kind,
        "metadata": metadata,
        "status": body,
    }


def _parent_ref(ref: ParentRef) -> dict[str, object]:
    out: dict[str, object] = {
        "group": ref.group,
        "kind": ref.kind,
        "namespace": ref.namespace,
        "name": ref.name,
    }
    if ref.section_name is not None:
        out["sectionName"] = ref.section_name
    if ref.port is not None:
        out["port"] = ref.port
    return out

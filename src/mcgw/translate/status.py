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
    INVALID = "Invalid"
    # Listeners.
    UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"
    PORT_UNAVAILABLE = "PortUnavailable"
    PROTOCOL_CONFLICT = "ProtocolConflict"
    HOSTNAME_CONFLICT = "HostnameConflict"
    INVALID_ROUTE_KINDS = "InvalidRouteKinds"
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

"""Pass 2: Gateways and their listeners, down to the sockets the data plane binds.

A Gateway is handled when its class is accepted (pass 1). Each of its listeners is
programmed unless it is invalid (unsupported protocol, conflict); listeners of one
Gateway that share a port share one socket, (address, port), and become one IR listener.

Every Gateway has its own address, as a cloud load balancer would: the first
``IPAddress`` in ``spec.addresses`` when it gives a value, otherwise one assigned from
the address pool (a translate option, ``127.0.0.0/8`` by default). Assignment is
deterministic: Gateways without an address take the pool's free hosts in order of age
(oldest first, then namespace/name), skipping the addresses other Gateways ask for; so
the oldest gets ``127.0.0.1``, and a Gateway keeps its address unless an older
address-less one is removed. The address is reported in ``status.addresses``. Two
Gateways on one port thus route independently.

Two Gateways cannot bind the same socket (same address, or one a wildcard, and same
port): the older one keeps it, the listeners of the newer one get
``Accepted=False PortUnavailable``.

HTTPS listeners terminate TLS (``tls.mode: Terminate``) with the certificates their
certificateRefs name (:mod:`certificates`). A ref that does not resolve sets
``ResolvedRefs=False`` (``InvalidCertificateRef`` or ``RefNotPermitted``); a listener
left with no valid certificate is not programmed (``Programmed=False Invalid``), one
with some keeps serving those. On the socket, the certificate is chosen by SNI among
the listeners sharing it, most specific hostname first (:func:`listener_tls`).
TLS passthrough (protocol TLS, TLSRoute) is not supported.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field

from mcgw.config import gatewayapi
from mcgw.ir import table, validate
from mcgw.translate import certificates, context, hostnames, status

ANY_ADDRESS = "0.0.0.0"
SUPPORTED_PROTOCOLS = ("HTTP", "HTTPS")
"""TLS (passthrough, TLSRoute), TCP and UDP are not supported."""
SUPPORTED_KINDS = ("HTTPRoute",)

_C = status.ConditionType
_R = status.Reason
_ORDER = list(status.ConditionType)
"""Listener conditions are reported in this order, whatever pass set them."""


@dataclass(slots=True)
class ListenerState:
    """One Gateway listener as the passes see it; ``programmed`` ones serve traffic."""

    gateway: gatewayapi.Gateway
    spec: gatewayapi.Listener
    hostname: str
    """Normalized: ``*`` when the listener has none."""
    address: str
    supported_kinds: tuple[str, ...]
    conditions: list[status.Condition] = field(default_factory=list)
    programmed: bool = False
    attached: set[tuple[str, str]] = field(default_factory=set)
    """(namespace, name) of the HTTPRoutes attached here (pass 3)."""
    certificates: tuple[certificates.Certificate, ...] = ()
    """HTTPS: the certificates that resolved."""

    @property
    def port(self) -> int:
        return self.spec.port

    @property
    def socket(self) -> tuple[str, int]:
        return (self.address, self.spec.port)

    @property
    def scheme(self) -> str:
        """The scheme of requests arriving here (redirects default to it)."""
        return "https" if self.spec.protocol.upper() == "HTTPS" else "http"


@dataclass(slots=True)
class GatewayState:
    gateway: gatewayapi.Gateway
    conditions: list[status.Condition]
    listeners: list[ListenerState]
    handled: bool
    """False when the class is not mcgw's: the Gateway is reported but never served."""
    address: str = ""
    """The address its listeners bind (``status.addresses``); empty when none."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.gateway.metadata.namespace, self.gateway.metadata.name)


DEFAULT_ADDRESS_POOL = "127.0.0.0/8"


def _requested(gw: gatewayapi.Gateway) -> tuple[str | None, str]:
    """(address, problem) asked for in ``spec.addresses``.

    ("", "") when the Gateway asks for none (or for an IPAddress without value): one is
    assigned. (None, why) when what it asks for cannot be served.
    """
    if not gw.spec.addresses:
        return "", ""
    first = gw.spec.addresses[0]
    if first.type != "IPAddress":
        return None, f"address type {first.type!r} is not supported; use IPAddress"
    if not first.value:
        return "", ""
    try:
        return str(ipaddress.ip_address(first.value)), ""
    except ValueError:
        return None, f"{first.value!r} is not an IP address"


class AddressPool:
    """Hands out the hosts of a network in order, skipping reserved addresses."""

    def __init__(self, network: str, reserved: set[str]) -> None:
        self._hosts = ipaddress.ip_network(network, strict=False).hosts()
        self._reserved = reserved

    def take(self) -> str | None:
        for host in self._hosts:
            text = str(host)
            if text not in self._reserved:
                self._reserved.add(text)
                return text
        return None


def _overlaps(a: str, b: str) -> bool:
    """Two binds on one port collide when the addresses are equal or one is a wildcard."""
    wildcard = ("0.0.0.0", "::")
    return a == b or a in wildcard or b in wildcard


def _route_kinds(spec: gatewayapi.Listener) -> tuple[tuple[str, ...], list[str]]:
    """(supported kinds, the invalid kinds named in allowedRoutes.kinds)."""
    if not spec.allowed_routes.kinds:
        return SUPPORTED_KINDS, []
    good: list[str] = []
    bad: list[str] = []
    for k in spec.allowed_routes.kinds:
        if k.group == gatewayapi.GROUP and k.kind in SUPPORTED_KINDS:
            if k.kind not in good:
                good.append(k.kind)
        else:
            bad.append(f"{k.group}/{k.kind}")
    return tuple(good), bad


def run(ctx: context.Context, address_pool: str = DEFAULT_ADDRESS_POOL) -> list[GatewayState]:
    """Build the state of every Gateway in the config cluster, sorted by namespace/name.

    Args:
        address_pool: network (CIDR, or one address) that Gateways without an address
            get theirs from.
    """
    gateways = sorted(
        ctx.config.gateways,
        key=lambda g: (
            context.created_key(g.metadata.creation_timestamp),
            g.metadata.namespace,
            g.metadata.name,
        ),
    )
    requested = {id(gw): _requested(gw) for gw in gateways}
    pool = AddressPool(address_pool, {a for a, _ in requested.values() if a})
    taken: dict[int, list[tuple[str, str]]] = defaultdict(list)  # port -> (address, gateway)
    states: list[GatewayState] = []
    for gw in gateways:
        states.append(_gateway(ctx, gw, requested[id(gw)], pool, taken))
    return sorted(states, key=lambda s: s.key)


def _pending(message: str) -> list[status.Condition]:
    return [
        status.unknown(_C.ACCEPTED, _R.PENDING, message),
        status.unknown(_C.PROGRAMMED, _R.PENDING, message),
    ]


def _gateway(
    ctx: context.Context,
    gw: gatewayapi.Gateway,
    requested: tuple[str | None, str],
    pool: AddressPool,
    taken: dict[int, list[tuple[str, str]]],
) -> GatewayState:
    class_name = gw.spec.gateway_class_name
    if class_name not in ctx.accepted_classes:
        why = (
            f"GatewayClass {class_name!r} is not handled by mcgw"
            if class_name in ctx.gateway_classes
            else f"GatewayClass {class_name!r} does not exist and is not built in"
        )
        listeners = [
            ListenerState(gw, spec, hostnames.normalize(spec.hostname), "", (), _pending(why))
            for spec in gw.spec.listeners
        ]
        return GatewayState(gw, _pending(why), listeners, handled=False)

    address, problem = requested
    programmed_reason = _R.INVALID
    if address == "":
        address = pool.take()
        if address is None:
            problem = "the address pool has no free address left"
            programmed_reason = _R.ADDRESS_NOT_ASSIGNED
    if address is None:
        accepted = (
            status.false(_C.ACCEPTED, _R.UNSUPPORTED_ADDRESS, problem)
            if programmed_reason is _R.INVALID
            else status.true(_C.ACCEPTED, _R.ACCEPTED)
        )
        conds = [accepted, status.false(_C.PROGRAMMED, programmed_reason, problem)]
        listeners = [
            ListenerState(
                gw,
                spec,
                hostnames.normalize(spec.hostname),
                "",
                (),
                [
                    status.false(_C.ACCEPTED, _R.UNSUPPORTED_ADDRESS, problem),
                    status.false(_C.PROGRAMMED, _R.INVALID, problem),
                ],
            )
            for spec in gw.spec.listeners
        ]
        return GatewayState(gw, conds, listeners, handled=True)
    if len(gw.spec.addresses) > 1:
        ctx.warnings.append(
            f"Gateway {gw.ref}: only the first of spec.addresses is served ({address})"
        )

    listeners = [_listener(ctx, gw, spec, address) for spec in gw.spec.listeners]
    _mark_conflicts(listeners)
    gateway_ref = f"{gw.metadata.namespace}/{gw.metadata.name}"
    for lis in listeners:
        if lis.programmed:
            holders = [g for a, g in taken[lis.port] if _overlaps(a, address) and g != gateway_ref]
            if holders:
                lis.programmed = False
                msg = f"port {lis.port} on {address} is already used by Gateway {holders[0]}"
                lis.conditions = [
                    status.false(_C.ACCEPTED, _R.PORT_UNAVAILABLE, msg),
                    status.false(_C.PROGRAMMED, _R.INVALID, msg),
                    *[c for c in lis.conditions if c.type in (_C.RESOLVED_REFS, _C.CONFLICTED)],
                ]
    for lis in listeners:
        if lis.programmed:
            taken[lis.port].append((address, gateway_ref))

    valid = sum(1 for lis in listeners if lis.programmed)
    if valid == len(listeners):
        conds = [
            status.true(_C.ACCEPTED, _R.ACCEPTED),
            status.true(_C.PROGRAMMED, _R.PROGRAMMED, f"serving on {address}"),
        ]
    elif valid:
        msg = f"{len(listeners) - valid} of {len(listeners)} listeners are invalid"
        conds = [
            status.true(_C.ACCEPTED, _R.LISTENERS_NOT_VALID, msg),
            status.true(_C.PROGRAMMED, _R.PROGRAMMED, f"serving on {address}; {msg}"),
        ]
    else:
        msg = "no listener is valid"
        conds = [
            status.false(_C.ACCEPTED, _R.LISTENERS_NOT_VALID, msg),
            status.false(_C.PROGRAMMED, _R.INVALID, msg),
        ]
    return GatewayState(gw, conds, listeners, handled=True, address=address)


def _listener(
    ctx: context.Context, gw: gatewayapi.Gateway, spec: gatewayapi.Listener, address: str
) -> ListenerState:
    hostname = hostnames.normalize(spec.hostname)
    kinds, bad_kinds = _route_kinds(spec)
    lis = ListenerState(gw, spec, hostname, address, kinds)
    protocol = spec.protocol.upper()
    if protocol not in SUPPORTED_PROTOCOLS:
        lis.supported_kinds = ()
        msg = f"protocol {spec.protocol} is not supported (supported: HTTP, HTTPS)"
        if protocol == "TLS":
            msg += (
                "; TLS passthrough (TLSRoute) is not implemented: terminate TLS at the "
                "gateway with protocol HTTPS and tls.mode Terminate"
            )
        lis.conditions = [
            status.false(_C.ACCEPTED, _R.UNSUPPORTED_PROTOCOL, msg),
            status.false(_C.PROGRAMMED, _R.INVALID, msg),
        ]
        return lis
    if hostname != hostnames.ANY and not validate.is_valid_hostname(hostname):
        msg = f"hostname {spec.hostname!r} is not a valid hostname"
        lis.conditions = [
            status.false(_C.ACCEPTED, _R.UNSUPPORTED_VALUE, msg),
            status.false(_C.PROGRAMMED, _R.INVALID, msg),
        ]
        return lis
    lis.programmed = True
    lis.conditions = [
        status.true(_C.ACCEPTED, _R.ACCEPTED),
        status.true(_C.PROGRAMMED, _R.PROGRAMMED),
        status.false(_C.CONFLICTED, _R.NO_CONFLICTS),
    ]
    if protocol == "HTTPS":
        resolved = certificates.resolve(ctx, gw, spec)
        lis.certificates = resolved.certificates
        if resolved.reason is not None:
            lis.conditions.append(status.false(_C.RESOLVED_REFS, resolved.reason, resolved.message))
            if not resolved.certificates:
                lis.programmed = False
                lis.conditions[1] = status.false(
                    _C.PROGRAMMED, _R.INVALID, f"no valid certificate: {resolved.message}"
                )
            return lis
    if bad_kinds:
        lis.conditions.append(
            status.false(
                _C.RESOLVED_REFS,
                _R.INVALID_ROUTE_KINDS,
                f"route kinds not supported: {', '.join(bad_kinds)}",
            )
        )
    else:
        lis.conditions.append(status.true(_C.RESOLVED_REFS, _R.RESOLVED_REFS))
    return lis


def _mark_conflicts(listeners: list[ListenerState]) -> None:
    """Listeners of one Gateway on one port must agree on protocol and differ in hostname."""
    by_port: dict[int, list[ListenerState]] = defaultdict(list)
    for lis in listeners:
        by_port[lis.port].append(lis)
    for port, group in by_port.items():
        protocols = sorted({lis.spec.protocol.upper() for lis in group})
        if len(protocols) > 1:
            for lis in group:
                _conflict(
                    lis, _R.PROTOCOL_CONFLICT, f"port {port} is used by {', '.join(protocols)}"
                )
            continue
        seen: dict[str, list[ListenerState]] = defaultdict(list)
        for lis in group:
            seen[lis.hostname].append(lis)
        for host, same in seen.items():
            if len(same) > 1:
                for lis in same:
                    _conflict(lis, _R.HOSTNAME_CONFLICT, f"hostname {host} on port {port} twice")


def _conflict(lis: ListenerState, reason: status.Reason, message: str) -> None:
    lis.programmed = False
    kept = [c for c in lis.conditions if c.type in (_C.ACCEPTED, _C.RESOLVED_REFS)]
    lis.conditions = [
        *kept,
        status.false(_C.PROGRAMMED, _R.INVALID, message),
        status.true(_C.CONFLICTED, reason, message),
    ]


def programmed_sockets(states: list[GatewayState]) -> dict[tuple[str, int], list[ListenerState]]:
    """Programmed listeners grouped by socket, sockets sorted by (port, address)."""
    sockets: dict[tuple[str, int], list[ListenerState]] = defaultdict(list)
    for state in states:
        for lis in state.listeners:
            if lis.programmed:
                sockets[lis.socket].append(lis)
    return dict(sorted(sockets.items(), key=lambda item: (item[0][1], item[0][0])))


def listener_tls(group: list[ListenerState]) -> table.ListenerTLS | None:
    """The TLS of one socket's listeners: every certificate by hostname, most specific
    first (SNI picks the first that covers the name); None for HTTP."""
    entries = [
        table.TLSCertificate(hostname=lis.hostname, secret=c.secret, fingerprint=c.fingerprint)
        for lis in sorted(group, key=lambda x: validate.hostname_order_key(x.hostname))
        for c in lis.certificates
    ]
    if not entries:
        return None
    return table.ListenerTLS(certificates=tuple(entries))


def key_pairs(states: list[GatewayState]) -> dict[str, table.KeyPair]:
    """Fingerprint → key pair of every certificate a programmed listener serves."""
    return {
        c.fingerprint: c.pair
        for state in states
        for lis in state.listeners
        if lis.programmed
        for c in lis.certificates
    }


def listener_statuses(state: GatewayState) -> tuple[status.ListenerStatus, ...]:
    return tuple(
        status.ListenerStatus(
            name=lis.spec.name,
            attached_routes=len(lis.attached),
            supported_kinds=lis.supported_kinds,
            conditions=tuple(sorted(lis.conditions, key=lambda c: _ORDER.index(c.type))),
        )
        for lis in state.listeners
    )

"""The route table the proxy currently runs, swapped atomically on update.

A :class:`Snapshot` bundles one table with everything compiled from it. The
protocol reads :attr:`Holder.current` once per request and keeps that snapshot until
the response ends, so a swap never changes a request in flight.
"""

from __future__ import annotations

import ipaddress

from mcgw.dataplane import balancer, router
from mcgw.ir import table

_CLIENT_CACHE = 4096
"""Client addresses whose entry region a snapshot remembers."""


class Snapshot:
    """One route table version and what the data plane compiled from it."""

    __slots__ = (
        "_client_cache",
        "backends",
        "balancer",
        "client_networks",
        "entry_region",
        "gateways",
        "router",
        "table",
    )

    def __init__(
        self, route_table: table.RouteTable, compiled: router.Router, picker: balancer.Balancer
    ) -> None:
        self.table = route_table
        self.router = compiled
        self.balancer = picker
        self.backends: dict[str, table.Backend] = {b.name: b for b in route_table.backends}
        """Backends by name, for their per-backend timeout."""
        self.entry_region = route_table.locality.entry_region
        self.gateways: dict[str, str] = {x.name: x.gateway for x in route_table.listeners}
        """Listener name → ``<namespace>/<name>`` of its Gateway, for logs."""
        self.client_networks = tuple(
            (ipaddress.ip_network(c.cidr), c.region) for c in route_table.locality.client_regions
        )
        """(network, entry region), most specific first; empty: every request enters
        at the gateway's location (unless a trusted header says otherwise)."""
        self._client_cache: dict[str, str] = {}

    def client_region(self, address: str) -> str:
        """The entry region of a client address by :attr:`client_networks`; "" if none.

        Once per client connection (and per request from a trusted proxy naming its
        client); answers are remembered, up to a bound.
        """
        region = self._client_cache.get(address)
        if region is not None:
            return region
        region = ""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            ip = None
        if ip is not None:
            for network, name in self.client_networks:
                if ip.version == network.version and ip in network:
                    region = name
                    break
        if len(self._client_cache) >= _CLIENT_CACHE:
            self._client_cache.clear()
        self._client_cache[address] = region
        return region


class Holder:
    """Owner of the current snapshot; assignment is the atomic swap (one loop)."""

    __slots__ = ("current",)

    def __init__(self, initial: Snapshot | None = None) -> None:
        self.current = initial

    def swap(self, new: Snapshot) -> Snapshot | None:
        """Install ``new`` for requests that start from now on; return the old one."""
        old, self.current = self.current, new
        return old

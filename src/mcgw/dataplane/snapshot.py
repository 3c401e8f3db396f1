"""The route table the proxy currently runs, swapped atomically on update.

A :class:`Snapshot` bundles one table with everything compiled from it. The
protocol reads :attr:`Holder.current` once per request and keeps that snapshot until
the response ends, so a swap never changes a request in flight.
"""

from __future__ import annotations

from mcgw.dataplane import balancer, router
from mcgw.ir import table


class Snapshot:
    """One route table version and what the data plane compiled from it."""

    __slots__ = ("backends", "balancer", "entry_region", "gateways", "router", "table")

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


class Holder:
    """Owner of the current snapshot; assignment is the atomic swap (one loop)."""

    __slots__ = ("current",)

    def __init__(self, initial: Snapshot | None = None) -> None:
        self.current = initial

    def swap(self, new: Snapshot) -> Snapshot | None:
        """Install ``new`` for requests that start from now on; return the old one."""
        old, self.current = self.current, new
        return old

"""What the admin server reads: the gateway, the controller and the reload record."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from mcgw.admin import stats
from mcgw.controller import runner
from mcgw.dataplane import health, metrics, snapshot


class Counters(Protocol):
    """Request counters: one gateway's (:class:`metrics.Metrics`) or the sum over
    worker processes (:class:`mcgw.dataplane.workers.MergedMetrics`)."""

    @property
    def started(self) -> float: ...

    def cells(self) -> list[tuple[metrics.Key, metrics.Cell]]: ...


class GatewayView(Protocol):
    """What the admin API reads of the data plane: a :class:`mcgw.dataplane.server.Gateway`,
    or :class:`mcgw.dataplane.workers.Workers` for several worker processes (the
    table in force and health are the control plane's, which every worker mirrors;
    counters and connections are summed over the workers)."""

    @property
    def holder(self) -> snapshot.Holder: ...

    @property
    def health(self) -> health.HealthMap: ...

    @property
    def metrics(self) -> Counters | None: ...

    @property
    def connections(self) -> int: ...

    @property
    def draining(self) -> bool: ...

    def addresses(self) -> dict[str, tuple[str, int]]: ...


@dataclass(slots=True)
class Reloads:
    """Route tables put in force since start (the controller keeps the rejections)."""

    applied: int = 0
    last_applied_at: float = 0.0
    """Wall-clock seconds of the last table put in force; 0.0: none yet."""
    version: str = ""

    def record(self, version: str) -> None:
        """A table was put in force (call it after ``Gateway.apply`` returned)."""
        self.applied += 1
        self.last_applied_at = time.time()
        self.version = version


@dataclass(slots=True)
class Sources:
    """Everything the admin API shows, read when asked."""

    gateway: GatewayView
    controller: runner.Controller | None = None
    reloads: Reloads = field(default_factory=Reloads)
    sampler: stats.Sampler = field(default_factory=stats.Sampler)

    def cells(self) -> list[tuple[metrics.Key, metrics.Cell]]:
        counters = self.gateway.metrics
        return [] if counters is None else counters.cells()

    def reading(self) -> stats.Reading:
        return stats.read(self.cells(), time.time(), time.monotonic())

    def rejected(self) -> list[str]:
        """Reloads rejected or not applied, oldest first."""
        return [] if self.controller is None else list(self.controller.rejected)


def gateway_of(listener: str) -> str:
    """``<namespace>/<gateway>`` of a listener named ``<namespace>/<gateway>/<port>``."""
    return listener.rpartition("/")[0] or listener

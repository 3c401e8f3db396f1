"""What the admin server reads: the gateway, the controller and the reload record."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mcgw.admin import stats
from mcgw.controller import runner
from mcgw.dataplane import metrics, server


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

    gateway: server.Gateway
    controller: runner.Controller | None = None
    reloads: Reloads = field(default_factory=Reloads)
    sampler: stats.Sampler = field(default_factory=stats.Sampler)

    def cells(self) -> list[tuple[metrics.Key, metrics.Cell]]:
        counters = self.gateway.metrics
        return [] if counters is None else counters.cells()

    def reading(self) -> stats.Reading:
        return stats.read(self.cells(), time.time())

    def rejected(self) -> list[str]:
        """Reloads rejected or not applied, oldest first."""
        return [] if self.controller is None else list(self.controller.rejected)


def gateway_of(listener: str) -> str:
    """``<namespace>/<gateway>`` of a listener named ``<namespace>/<gateway>/<port>``."""
    return listener.rpartition("/")[0] or listener

"""Reconcile resources into route tables; keep the last good one on bad input."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mcgw.config import resources as res
from mcgw.provider import base
from mcgw.translate import translator

log = logging.getLogger("mcgw.controller")

Publish = Callable[[translator.Result], Awaitable[None]]
Augment = Callable[[res.Resources], res.Resources]


def _identity(resources: res.Resources) -> res.Resources:
    return resources


@dataclass
class Controller:
    """Turns resources into published route tables.

    Args:
        publish: called with each translation whose table version is new.
        augment: adds what the runtime knows to the resources before translation
            (the local fleet's EndpointSlices, for instance).
    """

    publish: Publish
    augment: Augment = _identity
    options: translator.Options = field(default_factory=translator.Options)
    """How to translate (the address pool for Gateways without addresses, …)."""
    resources: res.Resources | None = None
    """The last good resources, as loaded (before ``augment``)."""
    result: translator.Result | None = None
    """The translation in force."""
    rejected: list[str] = field(default_factory=list)
    """Messages of reloads that were rejected, oldest first."""

    async def handle(self, event: base.Event) -> None:
        """Apply one provider event."""
        if isinstance(event, base.Rejected):
            self.rejected.append(str(event.error))
            log.error("configuration rejected, keeping the last good one:\n%s", event.error)
            return
        for warning in event.loaded.warnings:
            log.warning("%s", warning)
        self.resources = event.loaded.resources
        await self.reconcile()

    async def reconcile(self) -> None:
        """Translate the current resources again (after endpoints changed, say)."""
        if self.resources is None:
            return
        result = translator.translate(self.augment(self.resources), self.options)
        if self.result is not None and result.table.version == self.result.table.version:
            self.result = result
            return
        self.result = result
        await self.publish(result)

    async def run(self, provider: base.Provider) -> None:
        """Follow ``provider`` until it ends or the task is cancelled."""
        async for event in provider.events():
            await self.handle(event)

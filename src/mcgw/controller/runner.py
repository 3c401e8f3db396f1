"""Reconcile resources into route tables; keep the last good one on bad input."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mcgw import errors
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
    """Messages of reloads that were rejected or could not be applied, oldest first."""
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    """File reloads and endpoint changes arrive from separate tasks: one at a time, so
    an older table can never be published after a newer one."""

    async def handle(self, event: base.Event, *, strict: bool = False) -> None:
        """Apply one provider event.

        Args:
            strict: raise if the table cannot be published (at start-up, where the
                caller should fail); otherwise log it and keep the last good table.
        """
        if isinstance(event, base.Rejected):
            self.rejected.append(str(event.error))
            log.error("configuration rejected, keeping the last good one:\n%s", event.error)
            return
        if event.loaded.resources == self.resources:
            return  # nothing changed (an editor touched a file, say)
        for warning in event.loaded.warnings:
            log.warning("%s", warning)
        self.resources = event.loaded.resources
        await self.reconcile(strict=strict)

    async def reconcile(self, *, strict: bool = False) -> None:
        """Translate the current resources again (after endpoints changed, say).

        Args:
            strict: raise if publishing fails instead of logging it.

        Raises:
            McgwError: ``strict`` and the table could not be published.
        """
        async with self._lock:
            if self.resources is None:
                return
            result = translator.translate(self.augment(self.resources), self.options)
            if self.result is not None and result.table.version == self.result.table.version:
                self.result = result
                return
            try:
                await self.publish(result)
            except errors.McgwError as exc:
                if strict:
                    raise
                # E.g. a new listener's port is taken: the previous table stays in force,
                # and the next change tries again.
                self.rejected.append(str(exc))
                log.error("could not apply the new configuration, keeping the last one: %s", exc)
                return
            self.result = result

    async def run(self, provider: base.Provider) -> None:
        """Follow ``provider`` until it ends or the task is cancelled."""
        async for event in provider.events():
            await self.handle(event)

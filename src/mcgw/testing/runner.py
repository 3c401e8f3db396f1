"""Run a test coroutine on a fresh uvloop loop, bounded in time."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], *, timeout_s: float = 20.0) -> T:
    """Run ``coro`` to completion on a new uvloop loop.

    Raises:
        TimeoutError: ``coro`` took longer than ``timeout_s``.
    """

    async def bounded() -> T:
        async with asyncio.timeout(timeout_s):
            return await coro

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(bounded())

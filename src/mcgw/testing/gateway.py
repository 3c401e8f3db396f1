"""A real data-plane gateway on loopback for tests, and tables made from YAML.

:func:`serve` starts a :class:`mcgw.dataplane.server.Gateway` in the running loop,
applies a table and hands back the gateway with the address its (first) listener
bound, closing it on the way out whatever happens. :func:`translate_yaml` turns
manifest text into a route table through the real loader and translator, so tests
that start from YAML exercise the same path ``mcgw serve`` does.

Example::

    async with FakeUpstream() as up, gateway.serve(t, debug_headers=True) as (gw, addr):
        c = await RawClient.connect(addr)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from mcgw.config import load
from mcgw.dataplane import server
from mcgw.dataplane.settings import ProxySettings
from mcgw.ir import table
from mcgw.translate import translator

SETTINGS = ProxySettings(
    port_map=((80, 0),),
    active_health_checks=False,
    timer_resolution_s=0.02,
)
"""What :func:`serve` starts from: port 80 on an ephemeral port, no active health
checks (they would send requests the tests do not expect), a fine timer for short
timeouts."""

CLOSE_TIMEOUT_S = 1.0
"""How long :func:`serve` lets requests in flight finish when it closes the gateway."""


@contextlib.asynccontextmanager
async def serve(
    route_table: table.RouteTable,
    *,
    settings: ProxySettings = SETTINGS,
    **overrides: Any,
) -> AsyncIterator[tuple[server.Gateway, tuple[str, int]]]:
    """Run a gateway serving ``route_table``; yield it and its first listener's (host, port).

    Args:
        settings: the settings to start from.
        overrides: :class:`ProxySettings` fields to replace in ``settings``
            (``debug_headers=True``, ``access_log_dir=...``).
    """
    gw = server.Gateway(replace(settings, **overrides))
    try:
        await gw.apply(route_table)
        yield gw, gw.addresses()[route_table.listeners[0].name]
    finally:
        await gw.close(timeout_s=CLOSE_TIMEOUT_S)


def translate_yaml(folder: Path, manifests: str) -> translator.Result:
    """Write ``manifests`` to ``folder``/all.yaml; return what the loader and translator make
    of that folder."""
    (folder / "all.yaml").write_text(manifests)
    return translator.translate(load.load([folder]).resources)

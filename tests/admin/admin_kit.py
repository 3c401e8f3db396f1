"""A gateway with an admin server, two clusters behind it, and known traffic to send."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mcgw.admin import server as admin_server
from mcgw.admin import sources
from mcgw.cli import run
from mcgw.dataplane import server
from mcgw.ir import table
from mcgw.testing import gateway, manifests, tables
from mcgw.testing.client import RawClient
from mcgw.testing.upstream import FakeUpstream, Reply

WEST = ("gke-west-1", "us-west1", "us-west1-a")
EAST = ("gke-east-1", "us-east1", "us-east1-b")


def _backend(name: str, where: tuple[str, str, str], address: tuple[str, int]) -> table.Backend:
    return tables.backend(name, address, cluster=where[0], region=where[1], zone=where[2])


def two_clusters(
    west: tuple[str, int], east: tuple[str, int], fail: tuple[str, int]
) -> table.RouteTable:
    """/west → gke-west-1, /east → gke-east-1, /fail → an endpoint in gke-east-1 answering
    500; any other path matches no route (404)."""
    return tables.route_table(
        [
            tables.route("default/to-west/rule/0/match/0", "west", path="/west"),
            tables.route("default/to-east/rule/0/match/0", "east", path="/east"),
            tables.route("default/to-fail/rule/0/match/0", "fail", path="/fail"),
        ],
        [_backend("west", WEST, west), _backend("east", EAST, east), _backend("fail", EAST, fail)],
        entry_region="asia-northeast1",
    )


def shared_pod(
    west: tuple[str, int], east: tuple[str, int], fail: tuple[str, int]
) -> table.RouteTable:
    """:func:`two_clusters`, and /shared → a backend ``west-too`` whose one endpoint is the
    west pod: one pod behind two Services, as a pod selected by two of them is."""
    t = two_clusters(west, east, fail)
    (listener,) = t.listeners
    (vhost,) = listener.virtual_hosts
    shared = tables.route("default/to-shared/rule/0/match/0", "west-too", path="/shared")
    vhost = replace(vhost, routes=(*vhost.routes, shared))
    return replace(
        t,
        listeners=(replace(listener, virtual_hosts=(vhost,)),),
        backends=(*t.backends, _backend("west-too", WEST, west)),
    )


Table = Callable[[tuple[str, int], tuple[str, int], tuple[str, int]], table.RouteTable]
"""Builds the gateway's table from the west, east and fail upstreams' addresses."""


@dataclass
class Stack:
    gw: server.Gateway
    address: tuple[str, int]
    admin: admin_server.AdminServer
    west: FakeUpstream
    east: FakeUpstream
    fail: FakeUpstream


@contextlib.asynccontextmanager
async def stack(*, build: Table = two_clusters, **overrides: Any) -> AsyncIterator[Stack]:
    """Start three upstreams, a gateway serving ``build``'s table (:func:`two_clusters`
    unless told) and its admin server."""
    async with (
        FakeUpstream(Reply(body=b"west"), name="west") as west,
        FakeUpstream(Reply(body=b"east"), name="east") as east,
        FakeUpstream(Reply(status=500, body=b"boom"), name="fail") as fail,
    ):
        t = build(west.address, east.address, fail.address)
        async with gateway.serve(t, **overrides) as (gw, address):
            admin = admin_server.AdminServer(sources.Sources(gw), "127.0.0.1", 0)
            await admin.start()
            try:
                yield Stack(gw, address, admin, west, east, fail)
            finally:
                await admin.close()


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, *, access_log: bool = True) -> AsyncIterator[run.Running]:
    """``mcgw serve`` in this process (:func:`mcgw.cli.run.start`) for one upstream
    behind a Gateway and an HTTPRoute, logs in ``tmp_path/logs``, the admin server on an
    ephemeral loopback port."""
    async with FakeUpstream(name="app") as up:
        folder = tmp_path / "config"
        folder.mkdir()
        (folder / "app.yaml").write_text(manifests.gateway_to_endpoints(backend_port=up.address[1]))
        running = await run.start(
            run.RunOptions(
                paths=(folder,),
                port_map=((80, 0),),
                log_dir=tmp_path / "logs",
                access_log=access_log,
                watch=False,
                with_fleet=False,
                admin=("127.0.0.1", 0),
            ),
            say=lambda _: None,
        )
        try:
            assert running.admin is not None
            yield running
        finally:
            await running.close()


async def send(address: tuple[str, int], paths: dict[str, int]) -> None:
    """Send ``count`` GETs of each path over one keep-alive connection."""
    c = await RawClient.connect(address)
    try:
        for path, count in paths.items():
            for _ in range(count):
                await c.request(target=path, host="store.example.com")
    finally:
        await c.close()


async def get(address: tuple[str, int], path: str, method: str = "GET") -> tuple[int, str, bytes]:
    """One request to the admin server: status, content type, body."""
    c = await RawClient.connect(address)
    try:
        r = await c.request(method, path, host="127.0.0.1")
    finally:
        await c.close()
    return r.status, r.header("content-type") or "", r.body


async def get_json(address: tuple[str, int], path: str) -> Any:
    status, ctype, body = await get(address, path)
    assert status == 200, (path, status, body)
    assert ctype == "application/json"
    return json.loads(body)

"""``mcgw up`` and ``mcgw serve``: a gateway fed by the controller, with or without a fleet.

Both run one asyncio loop holding the gateway (data plane), the controller and, for
``up``, the local fleet's supervisor. Endpoint changes in the fleet (a pod died, a
cluster was stopped) re-run translation; file changes do too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcgw import logfiles
from mcgw.admin import server as admin_server
from mcgw.admin import sources as admin_sources
from mcgw.analytics import indexer
from mcgw.config import resources as res
from mcgw.controller import runner
from mcgw.dataplane import server, settings, workers
from mcgw.fleet import runtime
from mcgw.provider import base, file
from mcgw.translate import translator


@dataclass(frozen=True, slots=True)
class RunOptions:
    paths: tuple[Path, ...]
    address_pool: str | None = None
    """Where Gateways without ``spec.addresses`` listen: one address (``0.0.0.0`` for
    every interface) or a CIDR block giving each Gateway its own; None: the
    translator's default, 127.0.0.0/8 (127.0.0.1 for the first Gateway)."""
    port_map: tuple[tuple[int, int], ...] = ()
    """(listener port, local port); local port 0 picks a free one."""
    log_dir: Path = Path("var/logs")
    access_log: bool = True
    """Write the gateway's access log under ``log_dir`` (the fleet's container logs go
    there regardless)."""
    access_log_retention: logfiles.Retention = field(default_factory=logfiles.Retention)
    """Access log file size, count and age limits (``--access-log-*``)."""
    watch: bool = True
    with_fleet: bool = True
    simulate_latency: bool = False
    """Put the fleet's pods behind latency relays (:mod:`mcgw.fleet.relay`); False: as
    the Fleet's ``spec.network.simulateLatency`` says."""
    admin: tuple[str, int] | None = None
    """Where the admin server (health, JSON API, /metrics, /dashboard) listens; None:
    no admin server, and no request counting. The CLI's default is
    :data:`mcgw.admin.server.DEFAULT_ADDRESS`."""
    workers: int = 1
    """Data-plane worker processes (:mod:`mcgw.dataplane.workers`); 1: the gateway
    runs in this process."""
    admin_fallback: bool = False
    """When ``admin``'s port is taken, listen on a free port of the same host instead
    of failing (for the default address: another mcgw may hold it)."""
    trusted_peers: tuple[str, ...] = ()
    """Proxies whose X-Forwarded-* and entry-region header are honoured, besides the
    Fleet's ``spec.gateway.trustedPeers``."""
    entry_region_header: str = ""
    """Header naming a request's entry region; empty: the Fleet's, if any."""
    client_limits: Mapping[str, Any] = field(default_factory=dict)
    """ProxySettings fields for slow and hostile clients (``--header-timeout``...),
    only those given; the others keep their defaults."""
    debug_headers: bool = False
    """Add ``x-mcgw-*`` response headers: the route, the pick and the decision trace."""
    measure_rtt: bool = False
    """Rank regions by measured round trips (:mod:`mcgw.dataplane.rtt`)."""
    log_index: bool = True
    """Run the log indexer (:mod:`mcgw.analytics.indexer`) on ``log_dir`` while serving,
    so that queries find the logs already parsed (``serve_forever`` only)."""


@dataclass
class Running:
    """What a run holds while it serves: handy for the demo and for tests."""

    gateway: server.Gateway | workers.Workers
    """The data plane: one gateway in this process, or worker processes."""
    controller: runner.Controller
    fleet: runtime.FleetRuntime | None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    admin: admin_server.AdminServer | None = None
    """The admin server, when one was asked for."""

    def address(self, port: int = 80) -> tuple[str, int]:
        """Local (host, port) serving the Gateway listener on ``port``."""
        for name, (host, local) in sorted(self.gateway.addresses().items()):
            if name.endswith(f"/{port}"):
                return host, local
        raise LookupError(f"no listener for port {port}: {sorted(self.gateway.addresses())}")

    async def flush_logs(self) -> None:
        """Get every log line written so far onto disk: pods flush their own output
        every quarter second, then the fleet and the gateway flush theirs."""
        if self.fleet is not None:
            await asyncio.sleep(_POD_LOG_INTERVAL_S)
            self.fleet.flush_logs()
        if isinstance(self.gateway, workers.Workers):
            await self.gateway.flush_logs()
        else:
            await self.gateway.access_log.flush()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # The admin server outlives the drain, as Envoy's does: /readyz answers 503
        # "draining" so load balancers stop sending, /healthz still says the process
        # is alive, and /metrics can be scraped for the last counts.
        try:
            await self.gateway.close()
        finally:
            if self.admin is not None:
                await self.admin.close()
        if self.fleet is not None:
            await self.fleet.close()


_POD_LOG_INTERVAL_S = 0.6
"""A little more than the Store API's log flush interval plus the fleet's read delay."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def start(options: RunOptions, say: Callable[[str], None] = _say) -> Running:
    """Load, start the fleet (if asked), translate, bind: return once traffic can flow.

    Raises:
        load.ConfigError: the files are invalid (nothing was started).
        McgwError: a pod or a listener could not start (everything started is stopped).
    """
    provider = file.FileProvider(options.paths, watch=options.watch)
    first = provider.load()
    if isinstance(first, base.Rejected):
        raise first.error
    resources = first.loaded.resources
    for warning in first.loaded.warnings:
        say(f"warning: {warning}")

    project = resources.fleet.spec.project
    placement = resources.fleet.spec.gateway
    proxy_settings = settings.ProxySettings(
        port_map=options.port_map,
        access_log_dir=options.log_dir if options.access_log else None,
        access_log_max_bytes=options.access_log_retention.max_bytes,
        access_log_keep_files=options.access_log_retention.keep_files,
        access_log_max_age_s=options.access_log_retention.max_age_s,
        project_id=project,
        metrics=options.admin is not None,
        # Read once: who to trust is a property of the running process.
        trusted_peers=(*placement.trusted_peers, *options.trusted_peers),
        entry_region_header=options.entry_region_header or placement.entry_region_header or "",
        debug_headers=options.debug_headers,
        measure_rtt=options.measure_rtt,
        **options.client_limits,
    )
    gateway: server.Gateway | workers.Workers
    if options.workers > 1:
        gateway = workers.Workers(proxy_settings, options.workers)
        await gateway.start()
    else:
        gateway = server.Gateway(proxy_settings)
    reloads = admin_sources.Reloads()
    fleet: runtime.FleetRuntime | None = None
    try:
        if options.with_fleet:
            fleet = runtime.FleetRuntime(
                resources,
                options.log_dir,
                simulate_latency=options.simulate_latency or None,
                on_event=lambda line: say(f"fleet: {line}"),
            )
            say(f"fleet: starting {_describe(resources)}")
            await fleet.start()
            for pod in fleet.pods():
                say(f"  pod {pod.cluster}/{pod.namespace}/{pod.name} on {pod.address}:{pod.port}")
            for link in fleet.links():
                say(
                    f"  relay {link.listen[0]}:{link.listen[1]} → {link.pod} "
                    f"(+{link.one_way_s * 1000:g} ms each way)"
                )
            for warning in fleet.warnings:
                say(f"warning: {warning}")

        async def publish(result: translator.Result) -> None:
            await gateway.apply(result.table, result.key_pairs)
            reloads.record(result.table.version)

        augment: runner.Augment = fleet.with_endpoints if fleet is not None else _same
        controller = runner.Controller(
            publish=publish, augment=augment, options=translate_options(options)
        )
        await controller.handle(first, strict=True)
        running = Running(gateway=gateway, controller=controller, fleet=fleet)
        if options.admin is not None:
            admin = admin_server.AdminServer(
                admin_sources.Sources(gateway, controller, reloads), *options.admin
            )
            try:
                await admin.start()
            except admin_server.AdminError as exc:
                if not options.admin_fallback:
                    raise
                say(f"warning: {exc}; using a free port instead")
                admin.port = 0
                await admin.start()
            running.admin = admin
    except BaseException:
        await gateway.close()
        if fleet is not None:
            await fleet.close()
        raise

    if options.watch:
        running.tasks.append(asyncio.create_task(_follow_files(controller, provider)))
    if fleet is not None:
        running.tasks.append(asyncio.create_task(_follow_fleet(controller, fleet)))
    secure = (
        {x.name for x in controller.result.table.listeners if x.tls} if controller.result else set()
    )
    for name, (host, port) in sorted(gateway.addresses().items()):
        scheme = "https" if name in secure else "http"
        say(f"gateway: listener {name} on {scheme}://{host}:{port}")
    if isinstance(gateway, workers.Workers):
        pids = ", ".join(str(pid) for pid in gateway.pids())
        say(f"gateway: {gateway.count} worker processes (pids {pids})")
    if running.admin is not None:
        url = running.admin.url
        say(f"admin: {url}/dashboard (API {url}/api/stats, Prometheus {url}/metrics)")
    return running


def translate_options(options: RunOptions) -> translator.Options:
    if options.address_pool is None:
        return translator.Options()
    return translator.Options(address_pool=options.address_pool)


def _same(resources: res.Resources) -> res.Resources:
    return resources


def _describe(resources: res.Resources) -> str:
    return ", ".join(
        f"{c.name} ({c.zone}: {sum(d.spec.replicas for d in c.deployments)} pods)"
        for c in resources.clusters
    )


async def _follow_files(controller: runner.Controller, provider: file.FileProvider) -> None:
    # The provider's first event is a fresh load: files edited while the fleet was
    # starting are picked up here (an unchanged load is a no-op).
    async for event in provider.events():
        await controller.handle(event)


async def _follow_fleet(controller: runner.Controller, fleet: runtime.FleetRuntime) -> None:
    seen = fleet.version
    while True:
        await fleet.wait_changed(since=seen)  # returns at once if it changed meanwhile
        seen = fleet.version
        await controller.reconcile()


async def serve_forever(options: RunOptions, say: Callable[[str], None] = _say) -> None:
    """Run until SIGINT/SIGTERM, then stop everything that was started."""
    running = await start(options, say)
    log_index = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if options.log_index:
            log_index = indexer.spawn(options.log_dir)
            say(f"logs: indexer (pid {log_index.pid}) parses {options.log_dir} for queries")
        say("ready; Ctrl-C to stop")
        await stop.wait()
    finally:
        say("stopping…")
        try:
            await running.close()
        finally:
            if log_index is not None:
                indexer.stop(log_index)


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``main`` on uvloop (the data plane's loop)."""
    server.install_loop()
    asyncio.run(main())


def parse_address_pool(text: str | None) -> str | None:
    """Check ``--bind``: one IP address or a CIDR block.

    Raises:
        ValueError: neither.
    """
    if text is None:
        return None
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(
            f"--bind {text!r}: expected an IP address (e.g. 0.0.0.0) or a block (e.g. 127.0.0.0/8)"
        ) from None
    return text


def parse_admin(text: str | None) -> tuple[str, int] | None:
    """Check ``--admin``: ``HOST:PORT``, ``PORT`` or ``off``; None (not given): the
    default address, :data:`mcgw.admin.server.DEFAULT_ADDRESS`.

    Raises:
        ValueError: none of those.
    """
    if text is None:
        return admin_server.DEFAULT_ADDRESS
    return admin_server.parse_address(text)


def parse_trusted_peers(items: Sequence[str]) -> tuple[str, ...]:
    """Check ``--trusted-peer``: each an IP network or address.

    Raises:
        ValueError: one is neither.
    """
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(
                f"--trusted-peer {item!r}: expected a network (e.g. 10.0.0.0/8) or an address"
            ) from None
    return tuple(items)


def parse_port_map(items: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """``["80:8080", "443:0"]`` → ``((80, 8080), (443, 0))``.

    Raises:
        ValueError: an item is not ``LISTENER_PORT:LOCAL_PORT``.
    """
    pairs = []
    for item in items:
        left, sep, right = item.partition(":")
        if not sep or not left.isdigit() or not right.isdigit():
            raise ValueError(
                f"--port-map {item!r}: expected LISTENER_PORT:LOCAL_PORT, e.g. 80:8080"
            )
        pairs.append((int(left), int(right)))
    return tuple(pairs)

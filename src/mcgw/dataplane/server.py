"""The gateway process: listeners, route table swaps, timeouts and graceful close.

:class:`Gateway` owns everything that lives longer than a connection: the snapshot
holder, the upstream pool, the health map and checker, the access log, and one
listening socket per route-table listener. :meth:`Gateway.apply` installs a new
table: compile once, bind what is new, swap, unbind what is gone. One periodic
sweep enforces every connection's deadline and expires idle upstream connections.

Run it on uvloop (:func:`install_loop`); asyncio's default loop works, slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from mcgw.dataplane import (
    accesslog,
    balancer,
    conditions,
    errors,
    health,
    metrics,
    protocol,
    router,
    rtt,
    snapshot,
    tls,
    upstream,
)
from mcgw.dataplane.settings import ProxySettings
from mcgw.ir import table

log = logging.getLogger(__name__)

_BACKLOG = 1024


def install_loop() -> None:
    """Make uvloop the event loop of ``asyncio.run`` and friends from now on."""
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


_Spec = tuple[str, int, bool]
"""(host, port, HTTPS) a listener asks for: a re-apply with the same spec keeps the socket."""


class _Bound:
    __slots__ = ("server", "spec", "terminator")

    def __init__(
        self, spec: _Spec, server: asyncio.Server, terminator: tls.Terminator | None = None
    ) -> None:
        self.spec = spec
        self.server = server
        self.terminator = terminator
        """HTTPS: the SNI choice of certificates, updated in place on reload."""


class Gateway:
    """Serves route tables over HTTP/1.1 until closed.

    Args:
        settings: the process knobs (ports, limits, timeouts, access log).
    """

    def __init__(self, settings: ProxySettings) -> None:
        self.settings = settings
        self.holder = snapshot.Holder()
        self.health = health.HealthMap()
        self._checker: health.HealthChecker | None = None
        self.probes = conditions.ProbeWatch()
        """The active checks' prober: it flags health-check paths answering 404."""
        self.rtt: rtt.RttMeter | None = (
            rtt.RttMeter(settings.rtt_probe_interval_s, self._remeasured)
            if settings.measure_rtt
            else None
        )
        """Measures round trips to the regions when ``measure_rtt`` is set."""
        self._table: table.RouteTable | None = None
        """The table last applied, as given (before measured round trips)."""
        self.access_log = accesslog.AccessLog.from_settings(settings)
        self.pool = upstream.Pool(
            connect_timeout_s=settings.connect_timeout_s,
            idle_s=settings.upstream_idle_s,
            max_idle=settings.upstream_max_idle_per_endpoint,
            via=settings.via.encode("latin-1"),
        )
        self.metrics = metrics.Metrics(time.time()) if settings.metrics else None
        """Request counters (None when ``settings.metrics`` is off)."""
        self._ctx = protocol.Context(
            settings,
            self.holder,
            self.pool,
            self.health,
            self.access_log if self.access_log.enabled else None,
            self.metrics,
        )
        self._bound: dict[str, _Bound] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._started = False
        self._closed = False

    @property
    def connections(self) -> int:
        """Number of open client connections."""
        return len(self._ctx.connections)

    @property
    def draining(self) -> bool:
        """True once :meth:`close` began: no longer accepting, requests in flight
        finish. (Its listeners leave :meth:`addresses`, but on purpose: readiness must
        tell a drain from a failed bind.)"""
        return self._closed

    @property
    def access_log_stats(self) -> accesslog.AccessLogStats:
        """Access-log lines written, dropped and sampled out (for the admin API)."""
        return self.access_log.stats

    async def apply(
        self,
        route_table: table.RouteTable,
        key_pairs: Mapping[str, table.KeyPair] | None = None,
    ) -> None:
        """Serve ``route_table`` from now on; requests in flight keep the old one.

        Args:
            key_pairs: the PEM of the certificates HTTPS listeners name, by
                fingerprint (``translator.Result.key_pairs``).

        Raises:
            errors.ListenError: a new listener could not be bound; nothing changed.
            tls.CertificateError: a certificate is missing or refused; nothing changed.
            re.error: the table holds an invalid regular expression.
        """
        if self._closed:
            raise RuntimeError("gateway closed")
        loop = asyncio.get_running_loop()
        if not self._started:
            self._started = True
            await self.access_log.start()
            self._sweeper = loop.call_later(self.settings.timer_resolution_s, self._sweep)
        given = route_table
        if self.rtt is not None:
            route_table = self.rtt.adjust(route_table)
        compiled = router.compile(route_table)
        picker = balancer.Balancer(route_table, self.health)
        choices = self._prepare_tls(route_table, key_pairs or {})
        new = await self._bind_new(route_table, choices)
        self.access_log.set_sampling({b.name: b.log_sample_rate for b in route_table.backends})
        self.holder.swap(snapshot.Snapshot(route_table, compiled, picker))
        self.health.update(route_table)
        self.pool.update(route_table)  # connection draining of endpoints that left
        for name, choice in choices.items():
            kept = self._bound.get(name)
            if name not in new and kept is not None and kept.terminator is not None:
                kept.terminator.install(choice)  # new certificates, same socket
        self._table = given
        if self.rtt is not None:
            self.rtt.update(given)
        for name, bound in new.items():
            old = self._bound.get(name)
            if old is not None and old.server is not bound.server:
                old.server.close()  # the listener moved; its old socket retires
            self._bound[name] = bound
        wanted = {listener.name for listener in route_table.listeners}
        gone = [n for n in self._bound if n not in wanted]
        for name in gone:
            self._bound.pop(name).server.close()
        if gone:
            # Their clients finish what is in flight (on the old table), then close.
            for conn in list(self._ctx.connections):
                if conn.listener in gone:
                    conn.drain()
        if self.settings.active_health_checks:
            if self._checker is None:
                self._checker = health.HealthChecker(self.health, probe=self.probes)
            self._checker.update(route_table)

    def _remeasured(self) -> None:
        """Measured round trips changed the order of regions: serve the last table
        with the new ranking (listeners are unchanged, so nothing is bound)."""
        if self._closed or self._table is None or self.rtt is None:
            return
        route_table = self.rtt.adjust(self._table)
        picker = balancer.Balancer(route_table, self.health)
        self.holder.swap(snapshot.Snapshot(route_table, router.compile(route_table), picker))

    def _spec(self, listener: table.Listener) -> _Spec:
        # Each Gateway has its own address in the table (spec.addresses, or one the
        # translator assigned), so Gateways sharing a port stay apart.
        return listener.address, self.settings.local_port(listener.port), listener.tls is not None

    def _prepare_tls(
        self, route_table: table.RouteTable, key_pairs: Mapping[str, table.KeyPair]
    ) -> dict[str, tls.Choice]:
        """Build the SSL contexts of every HTTPS listener before anything changes.

        Raises:
            tls.CertificateError: a certificate is missing or refused.
        """
        choices: dict[str, tls.Choice] = {}
        for listener in route_table.listeners:
            if listener.tls is None:
                continue
            bound = self._bound.get(listener.name)
            terminator = bound.terminator if bound is not None else None
            try:
                choices[listener.name] = (terminator or tls.Terminator()).prepare(
                    listener.tls, key_pairs
                )
            except tls.CertificateError as exc:
                raise tls.CertificateError(f"listener {listener.name}: {exc}") from None
        return choices

    async def _listen(
        self, name: str, spec: _Spec, terminator: tls.Terminator | None
    ) -> asyncio.Server:
        ctx = self._ctx
        secure: dict[str, Any] = (
            {}
            if terminator is None
            # A handshake is part of the request head: same deadline.
            else {
                "ssl": terminator.base,
                "ssl_handshake_timeout": self.settings.header_read_timeout_s,
            }
        )
        return await asyncio.get_running_loop().create_server(
            lambda: protocol.ClientConnection(ctx, name),
            spec[0],
            spec[1],
            reuse_address=True,
            reuse_port=self.settings.reuse_port or None,
            backlog=_BACKLOG,
            **secure,
        )

    async def _bind_new(
        self, route_table: table.RouteTable, choices: dict[str, tls.Choice]
    ) -> dict[str, _Bound]:
        """Bind the listeners that are new or moved; on failure, leave things as they were.

        A moved listener keeps its old socket until the swap, unless the old one holds
        the port the new one needs (0.0.0.0 → 127.0.0.1 on the same port): then it is
        closed first, and bound again if the new bind still fails.

        Raises:
            errors.ListenError: a listener could not be bound.
        """
        new: dict[str, _Bound] = {}
        freed: dict[str, _Bound] = {}
        for listener in route_table.listeners:
            spec = self._spec(listener)
            old = self._bound.get(listener.name)
            if old is not None and old.spec == spec:
                continue
            terminator = None
            if listener.name in choices:
                terminator = tls.Terminator()
                terminator.install(choices[listener.name])
            try:
                try:
                    server = await self._listen(listener.name, spec, terminator)
                except OSError:
                    if old is None:
                        raise
                    old.server.close()
                    freed[listener.name] = old
                    server = await self._listen(listener.name, spec, terminator)
            except OSError as exc:
                for bound in new.values():
                    bound.server.close()
                await self._rebind(freed)
                raise errors.ListenError(listener.name, spec[0], spec[1], str(exc)) from exc
            new[listener.name] = _Bound(spec, server, terminator)
        return new

    async def _rebind(self, freed: dict[str, _Bound]) -> None:
        """Bind again the old sockets closed for a reload that failed."""
        for name, old in freed.items():
            try:
                server = await self._listen(name, old.spec, old.terminator)
                self._bound[name] = _Bound(old.spec, server, old.terminator)
            except OSError as exc:
                del self._bound[name]
                log.error("listener %s: could not bind %s:%d again: %s", name, *old.spec, exc)

    def addresses(self) -> dict[str, tuple[str, int]]:
        """Return listener name → (host, port) actually bound (ephemeral ports resolved)."""
        out: dict[str, tuple[str, int]] = {}
        for name, bound in self._bound.items():
            sockets = bound.server.sockets
            if sockets:
                host, port = sockets[0].getsockname()[:2]
                out[name] = (str(host), int(port))
        return out

    def _sweep(self) -> None:
        now = time.monotonic()
        for conn in list(self._ctx.connections):
            conn.check(now)
        self.pool.expire()
        self._ctx.h2.expire()
        # On through a drain too: the connections' own deadlines (a linger after the
        # FIN, a request's timeouts) hold there as ever; close() cancels it at the end.
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(self.settings.timer_resolution_s, self._sweep)

    async def close(self, timeout_s: float | None = None) -> None:
        """Stop accepting, let requests in flight finish (up to a deadline), release all.

        Graceful drain: the listening sockets close first; idle keep-alive connections
        close at once and busy ones after their response (which says ``Connection:
        close``), both without a reset; HTTP/2 clients get GOAWAY. What is still running
        at the deadline is cut.

        Args:
            timeout_s: the drain deadline; ``settings.drain_timeout_s`` by default.
        """
        if self._closed:
            return
        self._closed = True
        for bound in self._bound.values():
            bound.server.close()
        for conn in list(self._ctx.connections):
            conn.drain()
        deadline = time.monotonic() + (
            self.settings.drain_timeout_s if timeout_s is None else timeout_s
        )
        while self._ctx.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self._ctx.connections):
            conn.abort()
        for bound in self._bound.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bound.server.wait_closed(), 1.0)
        self._bound.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.pool.close()
        self._ctx.h2.close()
        self._ctx.mirrors.close()
        await self._ctx.mirrors.wait_closed()
        if self._checker is not None:
            await self._checker.close()
        if self.rtt is not None:
            await self.rtt.close()
        await self.access_log.close()
        # Let transports run their connection_lost callbacks before the loop ends.
        await asyncio.sleep(0)

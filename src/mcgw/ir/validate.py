"""Check a route table against the invariants the data plane relies on.

:func:`validate` lists every problem, not only the first, so that a translator bug or a
hand-edited table is diagnosed in one go. The translator asserts that its output has no
problem; ``mcgw translate`` and the data plane may validate tables they did not build.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass

from mcgw.errors import McgwError
from mcgw.ir import table

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
"""RFC 9110 token: header names and methods."""

_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")
_VERSION = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True, slots=True)
class IRError:
    """One problem in a table, located by a path such as ``listeners[0].virtual_hosts[1]``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InvalidTableError(McgwError):
    """A table failed validation; ``errors`` lists every problem."""

    def __init__(self, errors: list[IRError]) -> None:
        super().__init__("invalid route table:\n" + "\n".join(f"  {e}" for e in errors))
        self.errors = errors


def hostname_order_key(hostname: str) -> tuple[int, int, str]:
    """Sort key of virtual hosts: exact names, then wildcards longest first, then ``*``.

    The data plane serves a request from the first virtual host matching its Host, so
    this order is what makes the most specific hostname win.
    """
    if hostname == "*":
        return (2, 0, hostname)
    if hostname.startswith("*."):
        return (1, -len(hostname), hostname)
    return (0, -len(hostname), hostname)


def is_valid_hostname(hostname: str) -> bool:
    """Lower-case DNS name, optionally ``*.``-prefixed, or ``*`` alone."""
    return hostname == "*" or (len(hostname) <= 253 and _HOSTNAME.match(hostname) is not None)


def backend_name(kind: str, namespace: str, service: str, port: int) -> str:
    """The canonical name of a :class:`table.Backend`."""
    return f"{kind}/{namespace}/{service}:{port}"


def validate(route_table: table.RouteTable) -> list[IRError]:
    """Return every invariant ``route_table`` breaks; an empty list means valid."""
    errors: list[IRError] = []
    backend_names = {b.name for b in route_table.backends}
    _check_listeners(route_table.listeners, backend_names, errors)
    _check_backends(route_table.backends, errors)
    _check_locality(route_table.locality, errors)
    if route_table.version and not _VERSION.match(route_table.version):
        errors.append(IRError("version", f"{route_table.version!r} is not 16 hex digits"))
    return errors


def _duplicates(values: list[str]) -> list[str]:
    return sorted(v for v, n in Counter(values).items() if n > 1)


def _check_port(path: str, port: int, errors: list[IRError]) -> None:
    if not 1 <= port <= 65535:
        errors.append(IRError(path, f"port {port} is out of range 1-65535"))


def _check_regex(path: str, pattern: str, errors: list[IRError]) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        errors.append(IRError(path, f"invalid regular expression {pattern!r}: {exc}"))


def _check_listeners(
    listeners: tuple[table.Listener, ...], backend_names: set[str], errors: list[IRError]
) -> None:
    for name in _duplicates([lis.name for lis in listeners]):
        errors.append(IRError("listeners", f"duplicate listener name {name!r}"))
    sockets = [f"{lis.address}:{lis.port}" for lis in listeners]
    for sock in _duplicates(sockets):
        errors.append(IRError("listeners", f"two listeners bind {sock}"))
    for i, lis in enumerate(listeners):
        path = f"listeners[{i}]"
        _check_port(f"{path}.port", lis.port, errors)
        try:
            ipaddress.ip_address(lis.address)
        except ValueError:
            errors.append(IRError(f"{path}.address", f"{lis.address!r} is not an IP address"))
        hostnames = [vh.hostname for vh in lis.virtual_hosts]
        for host in _duplicates(hostnames):
            errors.append(IRError(f"{path}.virtual_hosts", f"duplicate hostname {host!r}"))
        if hostnames != sorted(hostnames, key=hostname_order_key):
            errors.append(
                IRError(
                    f"{path}.virtual_hosts",
                    "not sorted most specific first (exact, longer wildcards, then *)",
                )
            )
        for j, vhost in enumerate(lis.virtual_hosts):
            _check_vhost(f"{path}.virtual_hosts[{j}]", vhost, backend_names, errors)


def _check_vhost(
    path: str, vhost: table.VirtualHost, backend_names: set[str], errors: list[IRError]
) -> None:
    if not is_valid_hostname(vhost.hostname):
        errors.append(IRError(f"{path}.hostname", f"invalid hostname {vhost.hostname!r}"))
    for name in _duplicates([r.name for r in vhost.routes]):
        errors.append(IRError(f"{path}.routes", f"duplicate route name {name!r}"))
    for k, route in enumerate(vhost.routes):
        rpath = f"{path}.routes[{k}]"
        match = route.match
        if match.path.type is table.PathMatchType.REGULAR_EXPRESSION:
            _check_regex(f"{rpath}.match.path.value", match.path.value, errors)
        elif not match.path.value.startswith("/"):
            errors.append(
                IRError(f"{rpath}.match.path.value", f"{match.path.value!r} must start with /")
            )
        for h, header in enumerate(match.headers):
            hpath = f"{rpath}.match.headers[{h}]"
            if not _TOKEN.match(header.name):
                errors.append(IRError(f"{hpath}.name", f"invalid header name {header.name!r}"))
            if header.type is table.HeaderMatchType.REGULAR_EXPRESSION:
                _check_regex(f"{hpath}.value", header.value, errors)
        for q, param in enumerate(match.query_params):
            qpath = f"{rpath}.match.query_params[{q}]"
            if not param.name:
                errors.append(IRError(f"{qpath}.name", "empty query parameter name"))
            if param.type is table.HeaderMatchType.REGULAR_EXPRESSION:
                _check_regex(f"{qpath}.value", param.value, errors)
        if match.method is not None and (
            not _TOKEN.match(match.method) or match.method != match.method.upper()
        ):
            errors.append(IRError(f"{rpath}.match.method", f"invalid method {match.method!r}"))
        for b, weighted in enumerate(route.backends):
            bpath = f"{rpath}.backends[{b}]"
            if weighted.weight < 0:
                errors.append(IRError(f"{bpath}.weight", f"weight {weighted.weight} < 0"))
            if weighted.backend is not None and weighted.backend not in backend_names:
                errors.append(IRError(f"{bpath}.backend", f"unknown backend {weighted.backend!r}"))
            _check_filters(f"{bpath}.filters", weighted.filters, backend_names, errors)
        _check_filters(f"{rpath}.filters", route.filters, backend_names, errors)
        if route.filters.redirect is not None and route.backends:
            errors.append(IRError(f"{rpath}.backends", "a redirecting route has no backends"))
        _check_timeouts(f"{rpath}.timeouts", route.timeouts, errors)
        if route.retry is not None:
            _check_retry(f"{rpath}.retry", route.retry, errors)


_REDIRECT_CODES = (301, 302, 303, 307, 308)


def _check_filters(
    path: str, filters: table.Filters, backend_names: set[str], errors: list[IRError]
) -> None:
    for name in ("request_headers", "response_headers"):
        modifier = getattr(filters, name)
        if modifier is not None:
            _check_header_modifier(f"{path}.{name}", modifier, errors)
    if filters.redirect is not None and filters.url_rewrite is not None:
        errors.append(IRError(path, "redirect and url_rewrite are exclusive"))
    redirect = filters.redirect
    if redirect is not None:
        rpath = f"{path}.redirect"
        if redirect.scheme not in ("http", "https"):
            errors.append(IRError(f"{rpath}.scheme", f"{redirect.scheme!r} is not http/https"))
        if redirect.status_code not in _REDIRECT_CODES:
            errors.append(IRError(f"{rpath}.status_code", f"{redirect.status_code} not allowed"))
        if redirect.port is not None:
            _check_port(f"{rpath}.port", redirect.port, errors)
        if redirect.hostname is not None and not is_valid_hostname(redirect.hostname):
            errors.append(IRError(f"{rpath}.hostname", f"invalid {redirect.hostname!r}"))
        if redirect.path is not None:
            _check_path_modifier(f"{rpath}.path", redirect.path, errors)
    rewrite = filters.url_rewrite
    if rewrite is not None:
        if rewrite.hostname is not None and not is_valid_hostname(rewrite.hostname):
            errors.append(IRError(f"{path}.url_rewrite.hostname", f"invalid {rewrite.hostname!r}"))
        if rewrite.path is not None:
            _check_path_modifier(f"{path}.url_rewrite.path", rewrite.path, errors)
    for m, mirror in enumerate(filters.mirrors):
        mpath = f"{path}.mirrors[{m}]"
        if mirror.backend not in backend_names:
            errors.append(IRError(f"{mpath}.backend", f"unknown backend {mirror.backend!r}"))
        if not 0 <= mirror.numerator <= mirror.denominator or mirror.denominator < 1:
            errors.append(
                IRError(mpath, f"fraction {mirror.numerator}/{mirror.denominator} not in 0-1")
            )
    if filters.cors is not None:
        cors = filters.cors
        if cors.origin_regex is not None:
            _check_regex(f"{path}.cors.origin_regex", cors.origin_regex, errors)
        if cors.max_age_s < 1:
            errors.append(IRError(f"{path}.cors.max_age_s", f"{cors.max_age_s} < 1"))


def _check_header_modifier(
    path: str, modifier: table.HeaderModifier, errors: list[IRError]
) -> None:
    keys: list[str] = []
    for kind in ("set", "add"):
        values: tuple[table.HeaderValue, ...] = getattr(modifier, kind)
        for h, header in enumerate(values):
            hpath = f"{path}.{kind}[{h}]"
            if not _TOKEN.match(header.name):
                errors.append(IRError(f"{hpath}.name", f"invalid header name {header.name!r}"))
            if header.key != header.name.lower():
                errors.append(
                    IRError(f"{hpath}.key", f"{header.key!r} is not the name lower-cased")
                )
            keys.append(header.key.lower())
    for r, name in enumerate(modifier.remove):
        if not _TOKEN.match(name) or name != name.lower():
            errors.append(IRError(f"{path}.remove[{r}]", f"{name!r} is not a lower-case name"))
        keys.append(name)
    for key in _duplicates(keys):
        errors.append(IRError(path, f"header {key!r} has more than one action"))


def _check_path_modifier(path: str, modifier: table.PathModifier, errors: list[IRError]) -> None:
    if modifier.type is table.PathModifierType.REPLACE_FULL_PATH:
        if not modifier.value.startswith("/"):
            errors.append(IRError(f"{path}.value", f"{modifier.value!r} must start with /"))
        return
    for name in ("value", "prefix"):
        text: str = getattr(modifier, name)
        if text and (not text.startswith("/") or text.endswith("/")):
            errors.append(
                IRError(f"{path}.{name}", f"{text!r} must be empty or /... without a final /")
            )


def _check_timeouts(path: str, timeouts: table.Timeouts, errors: list[IRError]) -> None:
    for name in ("request_s", "backend_request_s"):
        value: float | None = getattr(timeouts, name)
        if value is not None and value < 0:
            errors.append(IRError(f"{path}.{name}", f"{value} < 0"))


def _check_retry(path: str, retry: table.Retry, errors: list[IRError]) -> None:
    for code in retry.codes:
        if not 400 <= code <= 599:
            errors.append(IRError(f"{path}.codes", f"{code} is not in 400-599"))
    if list(retry.codes) != sorted(set(retry.codes)):
        errors.append(IRError(f"{path}.codes", "not sorted and unique"))
    if retry.attempts < 0:
        errors.append(IRError(f"{path}.attempts", f"{retry.attempts} < 0"))
    if retry.backoff_s < 0:
        errors.append(IRError(f"{path}.backoff_s", f"{retry.backoff_s} < 0"))


def _check_backends(backends: tuple[table.Backend, ...], errors: list[IRError]) -> None:
    for name in _duplicates([b.name for b in backends]):
        errors.append(IRError("backends", f"duplicate backend name {name!r}"))
    for i, backend in enumerate(backends):
        path = f"backends[{i}]"
        if backend.kind not in ("Service", "ServiceImport"):
            errors.append(IRError(f"{path}.kind", f"unknown kind {backend.kind!r}"))
        expected = backend_name(backend.kind, backend.namespace, backend.service, backend.port)
        if backend.name != expected:
            errors.append(IRError(f"{path}.name", f"{backend.name!r} should be {expected!r}"))
        _check_port(f"{path}.port", backend.port, errors)
        if backend.timeout_s <= 0:
            errors.append(IRError(f"{path}.timeout_s", f"{backend.timeout_s} must be > 0"))
        if backend.max_rate_per_endpoint <= 0:
            errors.append(
                IRError(
                    f"{path}.max_rate_per_endpoint",
                    f"{backend.max_rate_per_endpoint} must be > 0",
                )
            )
        if not 0.0 <= backend.capacity_scaler <= 1.0:
            errors.append(
                IRError(f"{path}.capacity_scaler", f"{backend.capacity_scaler} is not in 0-1")
            )
        if not 0 <= backend.log_sample_rate <= 1_000_000:
            errors.append(
                IRError(f"{path}.log_sample_rate", f"{backend.log_sample_rate} is not in 0-1000000")
            )
        if not 0 <= backend.failover_health_threshold <= 99:
            errors.append(
                IRError(
                    f"{path}.failover_health_threshold",
                    f"{backend.failover_health_threshold} is not in 0-99",
                )
            )
        _check_health_check(f"{path}.health_check", backend.health_check, errors)
        keys = [(g.cluster, g.zone) for g in backend.groups]
        if keys != sorted(keys):
            errors.append(IRError(f"{path}.groups", "not sorted by (cluster, zone)"))
        if len(set(keys)) != len(keys):
            errors.append(IRError(f"{path}.groups", "two groups for the same (cluster, zone)"))
        for g, group in enumerate(backend.groups):
            gpath = f"{path}.groups[{g}]"
            if not group.cluster or not group.region or not group.zone:
                errors.append(IRError(gpath, "cluster, region and zone must be set"))
            for e, endpoint in enumerate(group.endpoints):
                _check_port(f"{gpath}.endpoints[{e}].port", endpoint.port, errors)
                if not endpoint.address:
                    errors.append(IRError(f"{gpath}.endpoints[{e}].address", "empty address"))


def _check_health_check(path: str, check: table.HealthCheck, errors: list[IRError]) -> None:
    if not check.path.startswith("/"):
        errors.append(IRError(f"{path}.path", f"{check.path!r} must start with /"))
    if check.port is not None:
        _check_port(f"{path}.port", check.port, errors)
    if check.interval_s <= 0 or check.timeout_s <= 0:
        errors.append(IRError(path, "interval_s and timeout_s must be > 0"))
    if check.healthy_threshold < 1 or check.unhealthy_threshold < 1:
        errors.append(IRError(path, "thresholds must be >= 1"))


def _check_locality(locality: table.Locality, errors: list[IRError]) -> None:
    _check_ranking("locality.region_rtt_ms", locality.region_rtt_ms, errors)
    entries = [e.entry_region for e in locality.other_entries]
    for region in _duplicates([*entries, locality.entry_region]):
        errors.append(IRError("locality.other_entries", f"duplicate entry region {region!r}"))
    if entries != sorted(entries):
        errors.append(IRError("locality.other_entries", "not sorted by entry region"))
    for i, entry in enumerate(locality.other_entries):
        _check_ranking(f"locality.other_entries[{i}].region_rtt_ms", entry.region_rtt_ms, errors)
    known = {locality.entry_region, *entries}
    for i, client in enumerate(locality.client_regions):
        path = f"locality.client_regions[{i}]"
        try:
            ipaddress.ip_network(client.cidr)
        except ValueError:
            errors.append(IRError(f"{path}.cidr", f"{client.cidr!r} is not a network"))
        if client.region not in known:
            errors.append(IRError(f"{path}.region", f"no ranking from {client.region!r}"))


def _check_ranking(
    path: str, region_rtt_ms: tuple[tuple[str, float], ...], errors: list[IRError]
) -> None:
    regions = [r for r, _ in region_rtt_ms]
    for region in _duplicates(regions):
        errors.append(IRError(path, f"duplicate region {region!r}"))
    for i, (region, rtt) in enumerate(region_rtt_ms):
        if rtt < 0:
            errors.append(IRError(f"{path}[{i}]", f"{region}: rtt {rtt} < 0"))
    ranked = [(rtt, r) for r, rtt in region_rtt_ms]
    if ranked != sorted(ranked):
        errors.append(IRError(path, "not sorted closest first"))

"""Request → route, compiled once per route table version (pure, no I/O).

:func:`compile` turns the table's listeners into lookup structures: a dict of exact
hostnames, wildcard suffixes longest first, then the ``*`` fallback; and for each
host, its routes in the table's precedence order with every regular expression
compiled and every name and value encoded as bytes. :meth:`Router.match` then only
compares bytes.

Each route also gets its :class:`filters.RoutePlan` (filters, timeouts and retry
compiled to bytes and regular expressions), returned by :meth:`Router.find`.

Routes whose match is path-only (the common case) are tested inline by kind; any
other condition (headers, query parameters, method) goes through a precompiled
predicate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from urllib.parse import parse_qsl

from mcgw.dataplane import filters
from mcgw.ir import table

Headers = Sequence[tuple[bytes, bytes]]
"""Request headers as (name, value) in any case, in arrival order."""

Extra = Callable[[Headers, bytes, bytes], bool]
"""Predicate over (headers, query, method) for non-path conditions."""

_ANY = 0
_EXACT = 1
_PREFIX = 2
_REGEX = 3

_Rule = tuple[int, bytes, bytes, "re.Pattern[bytes] | None", Extra | None, filters.RoutePlan]
"""(path kind, path, path + "/", regex, extra predicate or None, the route's plan)."""

_HOST_CACHE_MAX = 4096
"""Raw Host header values remembered per listener; the cache is reset when full."""


def _header_values(headers: Headers, name: bytes) -> list[bytes]:
    return [value for key, value in headers if key.lower() == name]


def _compile_extra(match: table.Match) -> Extra | None:
    checks: list[Callable[[Headers, bytes, bytes], bool]] = []
    for header in match.headers:
        name = header.name.lower().encode("latin-1")
        if header.type is table.HeaderMatchType.EXACT:
            wanted = header.value.encode("latin-1")

            def exact(h: Headers, q: bytes, m: bytes, n: bytes = name, w: bytes = wanted) -> bool:
                return w in _header_values(h, n)

            checks.append(exact)
        else:
            pattern = re.compile(header.value.encode("latin-1"))

            def regex(
                h: Headers, q: bytes, m: bytes, n: bytes = name, p: re.Pattern[bytes] = pattern
            ) -> bool:
                return any(p.fullmatch(v) for v in _header_values(h, n))

            checks.append(regex)
    if match.query_params:
        params = tuple(
            (
                p.name,
                p.value if p.type is table.HeaderMatchType.EXACT else re.compile(p.value),
            )
            for p in match.query_params
        )

        def query(h: Headers, q: bytes, m: bytes) -> bool:
            first: dict[str, str] = {}
            for key, value in parse_qsl(q.decode("latin-1"), keep_blank_values=True):
                first.setdefault(key, value)
            for name, wanted in params:
                got = first.get(name)
                if got is None:
                    return False
                if isinstance(wanted, str):
                    if got != wanted:
                        return False
                elif wanted.fullmatch(got) is None:
                    return False
            return True

        checks.append(query)
    if match.method is not None:
        method = match.method.upper().encode("ascii")

        def method_is(h: Headers, q: bytes, m: bytes, w: bytes = method) -> bool:
            return m == w

        checks.append(method_is)
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    every = tuple(checks)

    def all_of(h: Headers, q: bytes, m: bytes) -> bool:
        return all(check(h, q, m) for check in every)

    return all_of


def _compile_route(route: table.Route) -> _Rule:
    path = route.match.path
    value = path.value.encode("latin-1")
    if path.type is table.PathMatchType.EXACT:
        rule: tuple[int, bytes, bytes, re.Pattern[bytes] | None] = (_EXACT, value, b"", None)
    elif path.type is table.PathMatchType.REGULAR_EXPRESSION:
        rule = (_REGEX, b"", b"", re.compile(value))
    else:
        prefix = value.rstrip(b"/")
        rule = (_ANY, b"", b"", None) if not prefix else (_PREFIX, prefix, prefix + b"/", None)
    return (*rule, _compile_extra(route.match), filters.RoutePlan(route))


class _Listener:
    """The compiled virtual hosts of one listener."""

    __slots__ = ("cache", "exact", "fallback", "wildcards")

    def __init__(self, listener: table.Listener) -> None:
        self.exact: dict[bytes, tuple[_Rule, ...]] = {}
        wildcards: list[tuple[bytes, tuple[_Rule, ...]]] = []
        self.fallback: tuple[_Rule, ...] | None = None
        for vhost in listener.virtual_hosts:
            rules = tuple(_compile_route(r) for r in vhost.routes)
            hostname = vhost.hostname.lower()
            name = hostname.encode("ascii" if hostname.isascii() else "idna")
            if name == b"*":
                if self.fallback is None:
                    self.fallback = rules
            elif name.startswith(b"*."):
                wildcards.append((name[1:], rules))
            else:
                self.exact.setdefault(name, rules)
        wildcards.sort(key=lambda item: -len(item[0]))
        self.wildcards = tuple(wildcards)
        self.cache: dict[bytes, tuple[_Rule, ...] | None] = {}

    def rules_for(self, host: bytes) -> tuple[_Rule, ...] | None:
        """Return the routes of the virtual host serving ``host`` (a raw Host value)."""
        try:
            return self.cache[host]
        except KeyError:
            pass
        name = host
        colon = name.rfind(b":")
        if colon != -1 and name.find(b"]", colon) == -1:
            name = name[:colon]
        name = name.lower().rstrip(b".")
        rules = self.exact.get(name)
        if rules is None:
            for suffix, candidate in self.wildcards:
                if name.endswith(suffix) and len(name) > len(suffix):
                    rules = candidate
                    break
            else:
                rules = self.fallback
        if len(self.cache) >= _HOST_CACHE_MAX:
            self.cache.clear()
        self.cache[host] = rules
        return rules


class Router:
    """The compiled form of one :class:`~mcgw.ir.table.RouteTable`'s listeners."""

    __slots__ = ("_listeners",)

    def __init__(self, listeners: dict[str, _Listener]) -> None:
        self._listeners = listeners

    def match(
        self,
        listener_key: str,
        host: bytes,
        path: bytes,
        query: bytes,
        headers: Headers,
        method: bytes,
    ) -> table.Route | None:
        """Return the first route of the request's virtual host whose match holds.

        The same as :meth:`find`, returning the route itself.
        """
        plan = self.find(listener_key, host, path, query, headers, method)
        return None if plan is None else plan.route

    def find(
        self,
        listener_key: str,
        host: bytes,
        path: bytes,
        query: bytes,
        headers: Headers,
        method: bytes,
    ) -> filters.RoutePlan | None:
        """Return the compiled plan of the first route whose match holds.

        Args:
            listener_key: :attr:`mcgw.ir.table.Listener.name` the request came in on.
            host: the Host header as received (any case, port allowed).
            path: request path without the query, as received.
            query: the query string without ``?`` (may be empty).
            headers: request headers, names in any case.
            method: upper-case request method.

        Returns:
            The route's plan (filters, timeouts, retry compiled), or None when no
            virtual host or no route matches (404).
        """
        listener = self._listeners.get(listener_key)
        if listener is None:
            return None
        rules = listener.rules_for(host)
        if rules is None:
            return None
        for kind, value, value_slash, regex, extra, plan in rules:
            if kind == _PREFIX:
                if path != value and not path.startswith(value_slash):
                    continue
            elif kind == _EXACT:
                if path != value:
                    continue
            elif kind == _REGEX and (regex is None or regex.fullmatch(path) is None):
                continue
            if extra is None or extra(headers, query, method):
                return plan
        return None


def compile(route_table: table.RouteTable) -> Router:
    """Compile the listeners of ``route_table`` for :meth:`Router.match`.

    Raises:
        re.error: a regular expression in the table does not compile (the
            translator validates them, so this is a bug upstream).
    """
    return Router({listener.name: _Listener(listener) for listener in route_table.listeners})

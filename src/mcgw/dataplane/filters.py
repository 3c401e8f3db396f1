"""HTTPRoute filters, timeouts and retry, compiled once per table version (pure, no I/O).

The translator resolved every filter into :mod:`mcgw.ir.table` values; here they become
byte strings and small objects whose methods the protocol calls per request:

* :class:`HeaderEdit` rewrites a list of ``Name: value\\r\\n`` lines (request headers on
  their way to the backend, response headers on their way to the client);
* :class:`RedirectPlan` builds the whole redirect response from the request's Host,
  path and query, the rest (scheme, host, port, status line) being prebuilt bytes;
* :class:`RewritePlan` gives the forwarded target and Host line;
* :class:`CorsPlan` answers preflights and gives the CORS lines of actual responses,
  with the allowed-origin regular expression compiled here, once;
* :class:`RoutePlan` gathers them for one route, with a ``plain`` flag: a route with
  no filter, timeout or retry costs the protocol one attribute test and nothing else.

Filters of a weighted backend are compiled into a :class:`Stage` keyed by the
identity of the :class:`~mcgw.ir.table.WeightedBackend` object (what
``balancer.choose`` returns), so no per-request hashing of dataclasses happens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mcgw.ir import table

_CRLF = b"\r\n"

REASONS = {
    200: b"OK",
    301: b"Moved Permanently",
    302: b"Found",
    303: b"See Other",
    307: b"Temporary Redirect",
    308: b"Permanent Redirect",
}
"""Reason phrases of the statuses the gateway answers for filters."""


def _b(text: str) -> bytes:
    return text.encode("latin-1")


def header_key(line: bytes) -> bytes:
    """The lower-cased name of a ``Name: value\\r\\n`` line."""
    return line[: line.find(b":")].strip().lower()


def strip_port(host: bytes) -> bytes:
    """``host`` without its ``:port`` (IPv6 literals in brackets kept whole)."""
    if host[:1] == b"[":
        end = host.find(b"]")
        return host if end == -1 else host[: end + 1]
    colon = host.rfind(b":")
    return host if colon == -1 else host[:colon]


class HeaderEdit:
    """A compiled :class:`~mcgw.ir.table.HeaderModifier`: set, add, remove on lines."""

    __slots__ = ("adds", "drop", "tail")

    def __init__(self, modifier: table.HeaderModifier) -> None:
        self.drop = frozenset(_b(h.key) for h in modifier.set) | frozenset(
            _b(k) for k in modifier.remove
        )
        """Names whose lines go: the set ones (replaced) and the removed ones."""
        self.tail = b"".join(_b(h.name) + b": " + _b(h.value) + _CRLF for h in modifier.set)
        self.adds = tuple((_b(h.key), _b(h.name), _b(h.value)) for h in modifier.add)
        """(key, name, value): appended to the last line of that name, else a new line."""

    def apply(self, lines: Sequence[bytes]) -> list[bytes]:
        """Return the edited lines (a new list; ``lines`` is not changed)."""
        drop = self.drop
        out = [line for line in lines if header_key(line) not in drop] if drop else list(lines)
        for key, name, value in self.adds:
            for i in range(len(out) - 1, -1, -1):
                if header_key(out[i]) == key:
                    # One line reading "old,value": the spec's join, no space added.
                    out[i] = out[i][:-2] + b"," + value + _CRLF
                    break
            else:
                out.append(name + b": " + value + _CRLF)
        if self.tail:
            out.append(self.tail)
        return out


class PathPlan:
    """A compiled :class:`~mcgw.ir.table.PathModifier` over raw (bytes) paths."""

    __slots__ = ("full", "prefix", "value")

    def __init__(self, modifier: table.PathModifier) -> None:
        self.full = modifier.type is table.PathModifierType.REPLACE_FULL_PATH
        self.value = _b(modifier.value)
        self.prefix = _b(modifier.prefix)

    def apply(self, path: bytes) -> bytes:
        """Same result as :meth:`table.PathModifier.apply`, on bytes."""
        if self.full:
            return self.value
        return self.value + path[len(self.prefix) :] or b"/"


def with_query(path: bytes, query: bytes) -> bytes:
    return path + b"?" + query if query else path


class RedirectPlan:
    """A compiled :class:`~mcgw.ir.table.Redirect`."""

    __slots__ = ("host", "path", "port", "scheme", "status", "status_line")

    def __init__(self, redirect: table.Redirect) -> None:
        self.status = redirect.status_code
        reason = REASONS.get(redirect.status_code, b"Redirect")
        self.status_line = b"HTTP/1.1 %d %s\r\n" % (redirect.status_code, reason)
        self.scheme = _b(redirect.scheme) + b"://"
        self.host = None if redirect.hostname is None else _b(redirect.hostname)
        self.port = b"" if redirect.port is None else b":%d" % redirect.port
        self.path = None if redirect.path is None else PathPlan(redirect.path)

    def location(self, host: bytes, path: bytes, query: bytes) -> bytes:
        """The Location for a request to ``host`` (raw Host header), ``path``, ``query``."""
        name = self.host if self.host is not None else strip_port(host)
        if self.path is not None:
            path = self.path.apply(path)
        return self.scheme + name + self.port + with_query(path, query)


class RewritePlan:
    """A compiled :class:`~mcgw.ir.table.URLRewrite`."""

    __slots__ = ("host", "path")

    def __init__(self, rewrite: table.URLRewrite) -> None:
        self.host = (
            None
            if rewrite.hostname is None
            else HeaderEdit(
                table.HeaderModifier(
                    set=(table.HeaderValue(name="Host", key="host", value=rewrite.hostname),)
                )
            )
        )
        """Replaces the Host line."""
        self.path = None if rewrite.path is None else PathPlan(rewrite.path)


class CorsPlan:
    """A compiled :class:`~mcgw.ir.table.Cors`."""

    __slots__ = (
        "any_origin",
        "credentials",
        "echo_headers",
        "echo_methods",
        "expose",
        "fixed",
        "origins",
        "regex",
        "star_origin",
    )

    def __init__(self, cors: table.Cors) -> None:
        creds = cors.allow_credentials
        self.credentials = creds
        self.any_origin = cors.allow_origins == ("*",)
        self.star_origin = self.any_origin and not creds
        """Answer ``Access-Control-Allow-Origin: *`` rather than the request's Origin."""
        self.regex = (
            None if cors.origin_regex is None else re.compile(_b(cors.origin_regex), re.IGNORECASE)
        )
        self.origins = frozenset(_b(o) for o in cors.allow_origins)
        """Used only when there is no regex (then exact, case-insensitive)."""
        self.echo_methods = creds and cors.allow_methods == ("*",)
        self.echo_headers = creds and cors.allow_headers == ("*",)
        expose = b""
        if cors.expose_headers and not (creds and cors.expose_headers == ("*",)):
            expose = b"Access-Control-Expose-Headers: " + _b(", ".join(cors.expose_headers)) + _CRLF
        cred_line = b"Access-Control-Allow-Credentials: true\r\n" if creds else b""
        self.expose = expose + cred_line
        """Lines of every allowed response besides Allow-Origin."""
        fixed = [self.expose]
        if not self.echo_methods and cors.allow_methods:
            fixed.append(b"Access-Control-Allow-Methods: " + _b(", ".join(cors.allow_methods)))
            fixed.append(_CRLF)
        if not self.echo_headers and cors.allow_headers:
            fixed.append(b"Access-Control-Allow-Headers: " + _b(", ".join(cors.allow_headers)))
            fixed.append(_CRLF)
        fixed.append(b"Access-Control-Max-Age: %d\r\n" % cors.max_age_s)
        self.fixed = b"".join(fixed)
        """Preflight lines that do not depend on the request."""

    def allows(self, origin: bytes) -> bool:
        if self.any_origin:
            return True
        if self.regex is not None:
            return self.regex.fullmatch(origin) is not None
        return origin.lower() in self.origins

    def _origin_lines(self, origin: bytes) -> bytes:
        if self.star_origin:
            return b"Access-Control-Allow-Origin: *\r\n"
        return b"Access-Control-Allow-Origin: " + origin + b"\r\nVary: Origin\r\n"

    def actual_lines(self, origin: bytes | None) -> bytes:
        """CORS lines for the response to a non-preflight request (b"" if none)."""
        if origin is None or not self.allows(origin):
            return b""
        return self._origin_lines(origin) + self.expose

    def preflight_lines(self, origin: bytes, method: bytes, headers: bytes | None) -> bytes:
        """CORS lines of the gateway's answer to a preflight (b"" when not allowed)."""
        if not self.allows(origin):
            return b""
        parts = [self._origin_lines(origin), self.fixed]
        if self.echo_methods:
            parts.append(b"Access-Control-Allow-Methods: " + method + _CRLF)
        if self.echo_headers and headers:
            parts.append(b"Access-Control-Allow-Headers: " + headers + _CRLF)
        return b"".join(parts)


class MirrorPlan:
    __slots__ = ("always", "backend", "denominator", "numerator")

    def __init__(self, mirror: table.Mirror) -> None:
        self.backend = mirror.backend
        self.numerator = mirror.numerator
        self.denominator = mirror.denominator
        self.always = mirror.numerator >= mirror.denominator

    def due(self, draw: float) -> bool:
        """Whether to mirror, given ``draw`` uniform in [0, 1)."""
        return self.always or draw * self.denominator < self.numerator


class Stage:
    """The compiled :class:`~mcgw.ir.table.Filters` of a route rule or a backendRef."""

    __slots__ = ("cors", "mirrors", "redirect", "request", "response", "rewrite")

    def __init__(self, filters: table.Filters) -> None:
        self.cors = None if filters.cors is None else CorsPlan(filters.cors)
        self.redirect = None if filters.redirect is None else RedirectPlan(filters.redirect)
        self.request = (
            None if filters.request_headers is None else HeaderEdit(filters.request_headers)
        )
        self.rewrite = None if filters.url_rewrite is None else RewritePlan(filters.url_rewrite)
        self.mirrors = tuple(MirrorPlan(m) for m in filters.mirrors)
        self.response = (
            None if filters.response_headers is None else HeaderEdit(filters.response_headers)
        )


_NO_FILTERS = table.Filters()


class RoutePlan:
    """Everything the protocol needs about one route beyond its match."""

    __slots__ = (
        "backend_stages",
        "backoff_s",
        "plain",
        "request_s",
        "retries",
        "retry_codes",
        "route",
        "stage",
        "try_s",
    )

    def __init__(self, route: table.Route) -> None:
        self.route = route
        self.stage = None if route.filters == _NO_FILTERS else Stage(route.filters)
        self.backend_stages: dict[int, Stage] = {
            id(wb): Stage(wb.filters) for wb in route.backends if wb.filters != _NO_FILTERS
        }
        """id(WeightedBackend) → its stage; the route (kept here) keeps the ids valid."""
        timeouts = route.timeouts
        self.request_s = timeouts.request_s or 0.0
        """Whole-request limit in seconds; 0.0: none."""
        self.try_s = timeouts.backend_request_s
        """Per-try limit: None (Backend.timeout_s to the response head), 0.0 (none)."""
        retry = route.retry
        self.retries = 0 if retry is None else retry.attempts
        self.retry_codes = frozenset(() if retry is None else retry.codes)
        self.backoff_s = 0.0 if retry is None else retry.backoff_s
        self.plain = (
            self.stage is None
            and not self.backend_stages
            and not self.request_s
            and self.try_s is None
            and not (self.retries and self.retry_codes)
        )
        """No filter, timeout or retry: the protocol's fast path."""


def origin_headers(
    headers: Sequence[tuple[bytes, bytes]],
) -> tuple[bytes | None, bytes | None, bytes | None]:
    """(Origin, Access-Control-Request-Method, -Request-Headers) of a request, if sent."""
    origin = method = names = None
    for name, value in headers:
        if len(name) < 6 or name[:1] not in b"oOaA":
            continue
        key = name.lower()
        if key == b"origin":
            origin = value
        elif key == b"access-control-request-method":
            method = value
        elif key == b"access-control-request-headers":
            names = value if names is None else names + b", " + value
    return origin, method, names

"""Hostname arithmetic of the Gateway API: intersection, coverage and specificity.

A hostname is an exact DNS name (``store.example.com``), a wildcard (``*.example.com``,
matching one or more labels before the suffix, never ``example.com`` itself) or ``*``
(any host; what a listener or route without hostnames means). Everything is lower-case.
"""

from __future__ import annotations

from mcgw.ir import validate

ANY = "*"


def normalize(hostname: str | None) -> str:
    """Lower-case; None (no hostname given) becomes ``*``."""
    return ANY if hostname is None or hostname == "" else hostname.lower()


def _suffix(hostname: str) -> str:
    return hostname[1:]  # "*.example.com" -> ".example.com"


def covers(pattern: str, hostname: str) -> bool:
    """True when every host ``hostname`` matches is also matched by ``pattern``."""
    if pattern == ANY:
        return True
    if hostname == ANY:
        return False
    if not pattern.startswith("*."):
        return pattern == hostname
    if hostname.startswith("*."):
        return hostname == pattern or hostname.endswith(_suffix(pattern))
    return hostname.endswith(_suffix(pattern))


def intersect(listener: str, route: str) -> str | None:
    """The hostname a route serves through a listener, or None if they share no host.

    The more specific of the two wins when one covers the other (``*.example.com`` ×
    ``foo.example.com`` → ``foo.example.com``); otherwise nothing is shared.
    """
    if covers(listener, route):
        return route
    if covers(route, listener):
        return listener
    return None


def effective(listener: str, route_hostnames: tuple[str, ...]) -> tuple[str, ...]:
    """The hostnames a route serves through a listener, sorted most specific first.

    A route without hostnames serves every host the listener accepts.
    """
    if not route_hostnames:
        return (listener,)
    found = {h for r in route_hostnames if (h := intersect(listener, normalize(r))) is not None}
    return tuple(sorted(found, key=validate.hostname_order_key))


def more_specific(a: str, b: str) -> bool:
    """True when ``a`` sorts strictly before ``b`` (exact < long wildcard < short < ``*``)."""
    return validate.hostname_order_key(a) < validate.hostname_order_key(b) and a != b

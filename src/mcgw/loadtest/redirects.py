"""Following HTTP redirects the way k6 (Go's ``net/http`` client) does.

k6 follows up to ``maxRedirects`` redirects (10 by default; ``params.redirects`` per
request) and measures each hop as a request of its own (an ``http_reqs`` sample each,
tagged with the hop's URL). The response a script gets is the last one: its ``url`` is
the final URL, its status the final status.

Per hop, as Go's client: 301, 302 and 303 turn any method but GET and HEAD into GET
without a body (and without the body's ``Content-Type``); 307 and 308 repeat the method
and the body. A relative ``Location`` resolves against the hop's URL, a redirect to
another host is fine, and ``Set-Cookie`` along the chain goes into the VU's jar (each hop
is an ordinary request) so the next hop sends it; as k6, each hop's ``Cookie`` is made
again from the jar and ``params.cookies`` (an explicit ``Cookie`` header is not repeated).
``Authorization`` follows only to the same host or its subdomains; ``Referer`` is set to
the previous URL (not from https to http). A 3xx without ``Location``, or another 3xx
code (300, 304…), is returned as is. Past the limit the last 3xx response is returned;
when the limit is the global ``maxRedirects`` (not ``params.redirects``) k6's warning is
logged on stderr.

A request that is not redirected pays one status comparison for all this.
"""

from __future__ import annotations

import sys
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from mcgw.loadtest import client

if TYPE_CHECKING:
    from mcgw.loadtest import script

FOLLOWED = frozenset({301, 302, 303, 307, 308})
DEFAULT_MAX = 10
"""k6's default ``maxRedirects``."""

_HOP = "__mcgw_redirect"
"""Params key carried from hop to hop: (first URL, hops so far, limit is global)."""
_SENSITIVE = frozenset({"authorization", "www-authenticate"})
_COOKIE = frozenset({"cookie", "cookie2"})
_BODY_HEADERS = frozenset({"content-type", "content-length"})


class Requester(Protocol):
    """:class:`~mcgw.loadtest.script.Http`'s request, as a hop calls it."""

    async def request(
        self,
        method: str,
        url: str,
        body: object = None,
        params: Mapping[str, Any] | None = None,
        *,
        group: str | None = None,
    ) -> script.Response: ...


def location(result: client.Result) -> str | None:
    """The response's ``Location`` header, or None."""
    for name, value in result.headers:
        if name.lower() == b"location":
            text = value.decode("latin-1").strip()
            return text or None
    return None


def next_method(method: str, status: int) -> tuple[str, bool]:
    """The next hop's method and whether it carries the body again (Go's rules)."""
    if status in (307, 308):
        return method, True
    if method in ("GET", "HEAD"):
        return method, False
    return "GET", False


def resolve(base: str, loc: str) -> str:
    """``Location`` against the hop's URL, without a fragment."""
    return urllib.parse.urldefrag(urllib.parse.urljoin(base, loc))[0]


def _domain_or_subdomain(dest: str, initial: str) -> bool:
    return dest == initial or dest.endswith("." + initial)


def next_headers(
    headers: Mapping[str, object], old_url: str, new_url: str, keep_body: bool
) -> dict[str, str]:
    """The next hop's headers from this hop's (Go's redirect rules, see the module)."""
    old = urllib.parse.urlsplit(old_url)
    new = urllib.parse.urlsplit(new_url)
    trusted = _domain_or_subdomain(new.hostname or "", old.hostname or "")
    out: dict[str, str] = {}
    for name, value in headers.items():
        low = str(name).lower()
        if low == "referer" or low in _COOKIE or (not keep_body and low in _BODY_HEADERS):
            continue  # (k6 rebuilds Cookie on each hop from the jar and params.cookies)
        if low in _SENSITIVE and not trusted:
            continue
        out[str(name)] = str(value)
    if not (old.scheme == "https" and new.scheme == "http"):
        out["Referer"] = urllib.parse.urlunsplit(old._replace(fragment="", netloc=_no_user(old)))
    return out


def _no_user(parts: urllib.parse.SplitResult) -> str:
    return parts.netloc.rpartition("@")[2]


async def follow(
    http: Requester,
    method: str,
    url: str,
    body: object,
    params: Mapping[str, Any],
    result: client.Result,
    max_redirects: int,
    group: str | None,
) -> script.Response | None:
    """The response at the end of the redirect chain starting with ``result`` (already
    recorded), or None when ``result`` is not a redirect to follow: the caller returns
    it as it is."""
    status = result.status
    if status not in FOLLOWED:
        return None
    loc = location(result)
    if loc is None:
        return None  # Go returns a 3xx without Location as the response
    hop = params.get(_HOP)
    if hop is None:
        explicit = params.get("redirects")
        first, hops, global_limit = url, 0, explicit is None
        remaining = int(max_redirects if explicit is None else explicit)
    else:
        first, hops, global_limit = hop
        remaining = int(params.get("redirects", 0))
    if remaining <= 0:
        if global_limit:
            # k6 counts the requests made so far (its ``len(via)``), the message is its.
            print(
                f"WARN Stopped after {hops + 1} redirects and returned the redirection; "
                "pass { redirects: n } in request params or set global maxRedirects to "
                f"silence this  url={first}",
                file=sys.stderr,
                flush=True,
            )
        return None
    new_url = resolve(url, loc)
    new_method, keep_body = next_method(method, status)
    headers = next_headers(params.get("headers") or {}, url, new_url, keep_body)
    nxt: dict[str, Any] = {
        **params,
        "headers": headers,
        "redirects": remaining - 1,
        _HOP: (first, hops + 1, global_limit),
    }
    last = await http.request(new_method, new_url, body if keep_body else None, nxt, group=group)
    last.redirected = True
    return last

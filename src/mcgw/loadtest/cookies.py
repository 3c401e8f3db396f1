"""A VU's cookie jar, as k6 keeps one per VU: ``Set-Cookie`` answers are stored, later
requests to a matching domain and path send them back, and scripts read or change it
(``http.cookieJar()``, ``params.cookies``, ``res.cookies``).

The matching rules (domain, path, expiry, ``Secure``) are the standard library's
:mod:`http.cookiejar` (RFC 6265 as browsers apply it); this module only adapts its
urllib-shaped interface to raw header values. A jar costs nothing while it is empty: the
request path asks :attr:`Jar.empty` before building anything.
"""

from __future__ import annotations

import email.utils
import http.cookiejar
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping


class _Headers:
    """The part of ``http.client.HTTPMessage`` that ``extract_cookies`` reads."""

    __slots__ = ("_values",)

    def __init__(self, set_cookie: list[str]) -> None:
        self._values = set_cookie

    def get_all(self, name: str, default: list[str] | None = None) -> list[str] | None:
        if name.lower() == "set-cookie" and self._values:
            return self._values
        return default


class _Response:
    __slots__ = ("_headers",)

    def __init__(self, set_cookie: list[str]) -> None:
        self._headers = _Headers(set_cookie)

    def info(self) -> _Headers:
        return self._headers


def _policy() -> http.cookiejar.DefaultCookiePolicy:
    # Loopback and IP hosts keep their cookies (k6 does; the default policy would refuse
    # a Domain attribute on an IP but accepts host-only cookies, which is what we need).
    return http.cookiejar.DefaultCookiePolicy(rfc2965=False)


class Jar:
    """One VU's cookies."""

    __slots__ = ("_jar", "empty")

    def __init__(self) -> None:
        self._jar = http.cookiejar.CookieJar(_policy())
        self.empty = True

    def _changed(self) -> None:
        self.empty = not any(True for _ in self._jar)

    def header_for(self, url: str) -> str:
        """The ``Cookie`` header value a request to ``url`` carries ("" for none)."""
        if self.empty:
            return ""
        req = urllib.request.Request(url)
        self._jar.add_cookie_header(req)
        return str(req.get_header("Cookie") or "")

    def extract(self, url: str, set_cookie: list[str]) -> None:
        """Store what a response to ``url`` set (its ``Set-Cookie`` values)."""
        if not set_cookie:
            return
        req = urllib.request.Request(url)
        self._jar.extract_cookies(_Response(set_cookie), req)  # type: ignore[arg-type]
        self._changed()

    def set(
        self, url: str, name: str, value: str, opts: Mapping[str, object] | None = None
    ) -> None:
        """k6's ``jar.set(url, name, value, {domain, path, expires, max_age, secure,
        http_only})``."""
        opts = opts or {}
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        domain = str(opts.get("domain") or host)
        path = str(opts.get("path") or "/")
        expires: int | None = None
        if opts.get("max_age") is not None:
            expires = int(time.time() + float(str(opts["max_age"])))
        elif opts.get("expires"):
            parsed = _http_time(str(opts["expires"]))
            expires = int(parsed) if parsed is not None else None
        cookie = http.cookiejar.Cookie(
            version=0,
            name=name,
            value=value,
            port=None,
            port_specified=False,
            domain=domain,
            domain_specified=bool(opts.get("domain")),
            domain_initial_dot=domain.startswith("."),
            path=path,
            path_specified=True,
            secure=bool(opts.get("secure")),
            expires=expires,
            discard=expires is None,
            comment=None,
            comment_url=None,
            rest={"HttpOnly": ""} if opts.get("http_only") else {},
        )
        self._jar.set_cookie(cookie)
        self._changed()

    def cookies_for_url(self, url: str) -> dict[str, list[str]]:
        """k6's ``jar.cookiesForURL(url)``: name → values sent to ``url``."""
        out: dict[str, list[str]] = {}
        header = self.header_for(url)
        for item in header.split("; ") if header else ():
            name, _, value = item.partition("=")
            out.setdefault(name, []).append(value)
        return out

    def delete(self, url: str, name: str) -> None:
        host = urllib.parse.urlsplit(url).hostname or ""
        for cookie in list(self._jar):
            if cookie.name == name and _domain_matches(host, cookie.domain):
                self._jar.clear(cookie.domain, cookie.path, cookie.name)
        self._changed()

    def clear(self, url: str) -> None:
        host = urllib.parse.urlsplit(url).hostname or ""
        for cookie in list(self._jar):
            if _domain_matches(host, cookie.domain):
                self._jar.clear(cookie.domain, cookie.path, cookie.name)
        self._changed()


def _http_time(text: str) -> float | None:
    """An HTTP date (``Wed, 21 Oct 2015 07:28:00 GMT``) as a Unix time, None if bad."""
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None


def _domain_matches(host: str, domain: str) -> bool:
    domain = domain.lstrip(".")
    return host == domain or host.endswith("." + domain)


def parse_set_cookie(values: list[str]) -> dict[str, list[dict[str, object]]]:
    """k6's ``res.cookies``: name → [{name, value, domain, path, http_only, secure,
    max_age, expires}] from a response's ``Set-Cookie`` values."""
    out: dict[str, list[dict[str, object]]] = {}
    for line in values:
        first, *attrs = (part.strip() for part in line.split(";"))
        name, _, value = first.partition("=")
        entry: dict[str, object] = {
            "name": name,
            "value": value,
            "domain": "",
            "path": "",
            "http_only": False,
            "secure": False,
            "max_age": 0,
            "expires": 0,
        }
        for attr in attrs:
            key, _, val = attr.partition("=")
            key = key.lower()
            if key == "domain":
                entry["domain"] = val
            elif key == "path":
                entry["path"] = val
            elif key == "httponly":
                entry["http_only"] = True
            elif key == "secure":
                entry["secure"] = True
            elif key == "max-age" and val.lstrip("-").isdigit():
                entry["max_age"] = int(val)
            elif key == "expires":
                parsed = _http_time(val)
                entry["expires"] = int(parsed * 1000) if parsed is not None else 0
        out.setdefault(name, []).append(entry)
    return out

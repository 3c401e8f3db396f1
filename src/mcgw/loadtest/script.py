"""Test scripts: k6 JavaScript (the common subset, unchanged) and Python scenarios.

**JavaScript** runs in QuickJS (PyPI ``quickjs``, an ES2020 engine as a wheel). It has no
module loader we can hook, so a small pre-pass rewrites the module syntax k6 scripts
use into plain script code, line for line (line numbers in errors stay the script's):
``import http from 'k6/http'`` → ``const http = __k6mod("k6/http")``, ``import {a, b as
c} from 'k6'`` → ``const {a, b: c} = ...``, ``export const/let/var/function`` → the
declaration (its name recorded), ``export default function`` → a function named
``__k6default``. Importing any other module (``k6/ws``, ``k6/html``, remote URLs…)
is an error naming the line. The k6 API (``http.*``, ``check``, ``group``, ``sleep``,
``__VU``, ``__ITER``, ``__ENV``, ``open``) is a JS prelude over a few Python callables.

QuickJS is synchronous, asyncio is not: each JS VU owns a QuickJS context run on a
greenlet of the event loop's thread. When the script calls ``http.get``, the Python
callable switches to the loop's greenlet with the request's awaitable (a plain repeated
``http.get`` hands over the future of the connection's fast path, else a coroutine); the VU's
asyncio task awaits it and switches back with the response, which reaches JS as a handle and a
status (body, headers, timings and cookies cross over when read). ``sleep`` is an
``asyncio.sleep`` the same way; checks, groups and metrics are recorded directly (one
thread). Any number of VUs multiplex on one thread at about a microsecond per switch;
``--workers`` uses more cores. The plain-URL path does not use any of this.

**Python scenarios** are modules with ``options`` (a dict, k6's keys) and
``async def default(vu)`` (and optionally ``setup(vu)`` / ``teardown(vu, data)``, sync or
async); ``vu`` offers the same API: ``await vu.http.get(url, params)``,
``vu.check(res, {...})``, ``with vu.group("name"):``, ``await vu.sleep(s)``, ``vu.id``,
``vu.iteration``, ``vu.env``, ``vu.data``. They run on the event loop directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import json
import os
import pathlib
import re
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from mcgw.loadtest import (
    client,
    cookies,
    custom,
    errors,
    execution,
    redirects,
    runner,
    statuses,
    stdlib,
)

_PRELUDE_OFFSET = 100_000
"""The JS prelude starts at this line, so frames in it are told apart from the script's."""

_SUPPORTED_MODULES = (
    "k6",
    "k6/http",
    "k6/metrics",
    "k6/encoding",
    "k6/crypto",
    "k6/execution",
    "k6-summary",
)
_K6_SUMMARY_RE = re.compile(r"^https://jslib\.k6\.io/k6-summary/[\d.]+/index\.js$")


class ScriptLoadError(errors.LoadError):
    """A script that cannot run: syntax, an unsupported module or construct; names the line."""


# ---------------------------------------------------------------------------- HTTP API


class Response:
    """What ``http.*`` returns (k6's Response, the common fields).

    Lazy over the client's :class:`~mcgw.loadtest.client.Result`: most iterations read
    ``status`` at most, so the body is decoded and the headers and timings built only when
    read (they were a third of a Python scenario's cost per request when eager).
    """

    __slots__ = ("_body", "_headers", "_result", "method", "redirected", "url")

    def __init__(self, result: client.Result, url: str, method: str = "GET") -> None:
        self._result = result
        self.url = url
        self.method = method
        self._body: str | None = None
        self._headers: dict[str, str] | None = None
        self.redirected = False
        """The end of a redirect chain (``url`` is then the final URL)."""

    @property
    def status(self) -> int:
        return self._result.status

    @property
    def error(self) -> str:
        return self._result.error

    @property
    def error_code(self) -> int:
        return 1000 if self._result.error else 0

    @property
    def body(self) -> str:
        if self._body is None:
            self._body = self._result.body.decode("utf-8", "replace")
        return self._body

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            out: dict[str, str] = {}
            for name, value in self._result.headers:
                key = canonical_header(name.decode("latin-1"))
                text = value.decode("latin-1")
                # Go's http.Header.Get and k6 show the first value; Set-Cookie lines are
                # read by the cookie jar from the raw headers.
                out.setdefault(key, text)
            self._headers = out
        return self._headers

    @property
    def cookies(self) -> dict[str, list[dict[str, object]]]:
        """k6's ``res.cookies``: what this response set, by name."""
        if not self._result.set_cookie:
            return {}
        return cookies.parse_set_cookie(_set_cookie_values(self._result))

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in order."""
        want = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self._result.headers if k.lower() == want]

    @property
    def timings(self) -> dict[str, float]:
        """k6's ``timings``: blocked, connecting, tls_handshaking, sending, waiting,
        receiving, duration; in ms."""
        r = self._result
        ms = 1e-6
        return {
            "blocked": r.blocked * ms,
            "connecting": r.connecting * ms,
            "tls_handshaking": r.tls * ms,
            "sending": r.sending * ms,
            "waiting": r.waiting * ms,
            "receiving": r.receiving * ms,
            "duration": r.duration * ms,
        }

    def json(self, selector: str | None = None) -> Any:
        doc = json.loads(self.body)
        if selector:
            for part in selector.split("."):
                doc = doc[int(part)] if isinstance(doc, list) else doc[part]
        return doc

    def to_js(self) -> dict[str, object]:
        return {
            "status": self.status,
            "body": self.body,
            "headers": self.headers,
            "url": self.url,
            "error": self.error,
            "error_code": self.error_code,
            "timings": self.timings,
            "proto": "HTTP/1.1",
            "request": {"method": self.method, "url": self.url},
        }


_alloc = object.__new__


def _new_response(result: client.Result, url: str, method: str) -> Response:
    """``Response(result, url, method)``, the fast path's way: type() reaches ``__init__``
    through a call from C (~700 instructions a request more than these stores)."""
    res: Response = _alloc(Response)
    res._result = result
    res.url = url
    res.method = method
    res._body = None
    res._headers = None
    res.redirected = False
    return res


class DiscardedResponse(Response):
    """A response whose body is not kept (k6's ``responseType: 'none'``, the default with
    ``options.discardResponseBodies``): ``body`` is null; headers, cookies, timings stay."""

    __slots__ = ()

    def __init__(self, result: client.Result, url: str, method: str = "GET") -> None:
        # (a copy without the body: the VU keeps its latest responses for a while)
        super().__init__(result._replace(body=b"") if result.body else result, url, method)

    @property
    def body(self) -> str | None:  # type: ignore[override]
        return None


def _response_type(value: object) -> type[Response]:
    """``params.responseType``: ``'text'`` (the body as a string) or ``'none'``.

    Raises:
        runner.ScriptError: ``'binary'`` (not supported here) or another value.
    """
    if value == "text":
        return Response
    if value == "none":
        return DiscardedResponse
    if value == "binary":
        raise runner.ScriptError("responseType 'binary' is not supported by mcgw load")
    raise runner.ScriptError(f"invalid responseType {value!r} (use 'text' or 'none')")


def _set_cookie_values(result: client.Result) -> list[str]:
    return [v.decode("latin-1") for k, v in result.headers if k.lower() == b"set-cookie"]


def canonical_header(name: str) -> str:
    """Go's canonical MIME header key (``content-type`` → ``Content-Type``), as k6 shows."""
    canon = _CANONICAL.get(name)
    if canon is None:
        canon = "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))
        if len(_CANONICAL) < 4096:  # the same few names come back on every response
            _CANONICAL[name] = canon
    return canon


_CANONICAL: dict[str, str] = {}


def _timeout_s(value: object, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000.0  # k6: a number is milliseconds
    from mcgw.loadtest import options

    return options.parse_duration(str(value))


def _encode_body(body: object, headers: dict[str, str]) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, Mapping):
        # k6 sends an object body as a form.
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return urllib.parse.urlencode({str(k): str(v) for k, v in body.items()}).encode()
    return str(body).encode()


_NO_PARAMS: Mapping[str, Any] = {}
_BATCH = runner.BATCH
_now = time.perf_counter_ns
_DEFAULT_STATUSES = statuses.DEFAULT
_HEAD: Final = 11
"""``client.Result.head``'s index (a literal, so the type checker knows the field's type;
tests check it against the named tuple's fields)."""
_STATUS: Final = 0
"""``client.Result.status``'s index."""
_refs = sys.getrefcount
_UNHELD = 3
"""``_refs(res)`` of a Response held by ``Http._last`` and a local only (with the
call's own argument)."""

_Plain = tuple[client.Target, bytes, list[client.Client], str, str]
"""A plain request's target, bytes, connection pool, method and URL (built once)."""


class Http:
    """``http.*`` for one VU: keep-alive connections per host, a cookie jar, k6's tags
    and metrics."""

    def __init__(self, run: runner.Run, vu: runner.VU) -> None:
        self._run = run
        self._vu = vu
        self._targets: dict[str, client.Target] = {}
        self._plain: dict[tuple[str, str], _Plain] = {}
        self._gets: dict[str, _Plain] = {}
        """The GET entries of :attr:`_plain` by URL (:meth:`get` builds no key tuple)."""
        self._fast = not run.rps_interval
        self._tagged = run.tagged
        """The fast path may be taken (``--rps`` gives every request a slot first)."""
        self._timeout_s = run.opts.timeout_s
        self._no_cookies = b""
        """The head of the last response found to set no cookie: a response with the same
        head bytes sets none either (a bytes comparison instead of two searches, ~2 ns a
        byte, for the usual run of alike responses)."""
        self.jar = cookies.Jar()
        self.expect: statuses.ExpectedStatuses | None = statuses.DEFAULT
        """k6's response callback for this VU (``setResponseCallback``; None: ``null``)."""
        self._record: Callable[[client.Result, runner.VU, dict[str, str] | None], None] = run.record
        """How a request without params is recorded: the run's own batched ``record``
        for the default callback (no test per request), else judged by :attr:`expect`."""
        self._response: Callable[[client.Result, str, str], Response] = (
            DiscardedResponse if run.opts.discard_response_bodies else _new_response
        )
        """What requests make by default: ``options.discardResponseBodies`` keeps no body."""
        self._quick = False
        """:meth:`_sent` may record and make the Response inline (see _requick)."""
        self._last: Response = _alloc(Response)
        """The fast path's last Response (see _sent; a blank one until then)."""
        self._requick()

    @staticmethod
    def expected_statuses(*args: object) -> statuses.ExpectedStatuses:
        """k6's ``http.expectedStatuses(200, {"min": 400, "max": 499}, ...)``."""
        try:
            return statuses.expected_statuses(*args)
        except statuses.StatusesError as exc:
            raise runner.ScriptError(str(exc)) from None

    def set_response_callback(self, callback: statuses.ExpectedStatuses | None) -> None:
        """k6's ``http.setResponseCallback``: this VU's responses are judged by
        ``callback`` from now on (None: not judged, no ``http_req_failed`` sample)."""
        try:
            self.expect = statuses.callback(callback)
        except statuses.StatusesError as exc:
            raise runner.ScriptError(
                "setResponseCallback: unsupported argument, expected http.expectedStatuses"
            ) from exc
        self._record = self._run.record if self.expect is _DEFAULT_STATUSES else self._judged
        self._requick()

    def _requick(self) -> None:
        run = self._run
        self._quick = (
            not run.tagged
            and run.response_time is None
            and self._record == run.record
            and self._response is _new_response
            and not run.opts.throw
        )

    def _judged(self, result: client.Result, vu: runner.VU, tags: dict[str, str] | None) -> None:
        expect = self.expect
        self._run.record_judged(result, vu, tags, None if expect is None else expect(result.status))

    def cookie_jar(self) -> cookies.Jar:
        """k6's ``http.cookieJar()``: this VU's jar."""
        return self.jar

    def _target(self, url: str) -> client.Target:
        target = self._targets.get(url)
        if target is None:
            target = client.parse_target(url, self._run.opts.host_map)
            if len(self._targets) < 1024:
                self._targets[url] = target
        return target

    def _pool(self, target: client.Target, method: str) -> list[client.Client]:
        # HEAD requests have connections of their own (see client._HeadConnection).
        return self._vu.clients.setdefault(
            (target.scheme, target.connect_host, target.connect_port, method == "HEAD"), []
        )

    async def request(
        self,
        method: str,
        url: str,
        body: object = None,
        params: Mapping[str, Any] | None = None,
        *,
        group: str | None = None,
    ) -> Response:
        run = self._run
        method = method.upper()
        jar = self.jar
        if not params and body is None and jar.empty:
            # The common call (``http.get(url)``): its bytes are the same every time.
            plain = self._plain.get((method, url))
            if plain is None:
                target = self._target(url)
                raw = client.build_request(target, method)
                plain = (target, raw, self._pool(target, method), method, url)
                if len(self._plain) < 1024:
                    self._plain[(method, url)] = plain
                    if method == "GET":
                        self._gets[url] = plain
            target, raw, pool, _, _ = plain
            timeout = run.opts.timeout_s
            params = _NO_PARAMS
        else:
            params = params or _NO_PARAMS
            target = self._target(url)
            headers = {
                canonical_header(str(k)): str(v)
                for k, v in dict(params.get("headers") or {}).items()
            }
            cookie = self._cookie_header(url, params.get("cookies"))
            if cookie and "Cookie" not in headers:
                headers["Cookie"] = cookie
            if "responseType" in params:
                _response_type(params["responseType"])  # refused before the request
            if "responseCallback" in params:  # refused before the request, as k6 does
                try:
                    judge = statuses.callback(params["responseCallback"])
                except statuses.StatusesError as exc:
                    raise runner.ScriptError(str(exc)) from None
                params = {**params, "responseCallback": judge}
            raw_body = _encode_body(body, headers)
            raw = client.build_request(target, method, tuple(headers.items()), raw_body)
            timeout = _timeout_s(params.get("timeout"), run.opts.timeout_s)
            pool = self._pool(target, method)
        # Batch with the other ready VUs (see runner.yield_once): before the connection is
        # taken from the pool and before the request's clock starts.
        await runner.yield_once()
        conn = (
            pool.pop()
            if pool and not pool[-1].busy  # (busy: a _send of this VU's in flight)
            else client.Client(
                target,
                timeout_s=timeout,
                capture=True,
                collect=run.collect,
                insecure=run.opts.insecure_skip_tls_verify,
                on_result=self._sent,
                head=method == "HEAD",
            )
        )
        if run.rps_interval:
            await run.rps_wait()
        try:
            result = await conn.request(raw, timeout)
        finally:
            pool.append(conn)
        res = self._finish(result, method, url, params, group)
        if 300 <= result.status < 400:  # maybe a redirect to follow: the chain's last
            last = await redirects.follow(
                self, method, url, body, params, result, run.opts.max_redirects, group
            )
            if last is not None:
                return last
        return res

    def _send(self, method: str, url: str) -> asyncio.Future[Response] | None:
        """The fast path of a plain ``http.get(url)`` seen before, on an idle kept-alive
        connection: no coroutine — the protocol callback completing the response records
        it (:meth:`_sent`) and resolves the future. None: take :meth:`request`."""
        if not self.jar.empty or not self._fast:
            return None
        plain = self._plain.get((method, url))
        if plain is None or not plain[2]:
            return None
        return plain[2][-1].send(plain[1], plain, self._timeout_s)

    def _sent(
        self, c: client.Client, result: client.Result, plain: _Plain
    ) -> Response | asyncio.Task[Response]:
        if self._quick:
            # = _finish without params or tags, with the run's record (closed model,
            # default response callback) and _new_response inline: this runs for every
            # fast-path response, and each call saved is ~600 instructions of ~55k.
            # (the Result's fields by index here: a named tuple's attribute is a generic
            # lookup, ~100 instructions, where an index is ~40)
            if result[_HEAD] != self._no_cookies:
                self._cookies(result, plain[4])
            run = self._run
            now = c.done_ns  # = run.record(result, self._vu), inline from here
            if now >= run._sec_end:
                run.flush()
                run._next_second(now)
            batch = run._batch
            batch.append(result)
            if len(batch) >= _BATCH:
                run.flush()
            # (no --throw test: _quick is off with --throw)
            res: Response = self._last
            if _refs(res) != _UNHELD:
                # (held elsewhere: a new one; else the VU let the last one go — only
                # self._last and this frame hold it — and it is refilled, every field,
                # which saves an allocation and a deallocation per request)
                res = self._last = _alloc(Response)  # = _new_response(...), inline
            res._result = result
            res.url = plain[4]
            res.method = plain[3]
            res._body = None
            res._headers = None
            res.redirected = False
        elif self._tagged:
            res = self._finish(result, plain[3], plain[4], _NO_PARAMS, None)
        else:  # = _finish without params or tags, inline (a call less per request)
            if result.head != self._no_cookies:
                self._cookies(result, plain[4])
            self._record(result, self._vu, None)
            if result.error and self._run.opts.throw:
                raise runner.ScriptError(f"{plain[3]} {plain[4]}: {result.error}")
            res = self._response(result, plain[4], plain[3])
        if 300 <= result[_STATUS] < 400:
            # Maybe a redirect to follow: that takes requests, so a task does it and the
            # VU's future resolves with the chain's last response (Client.send chains it).
            return asyncio.get_running_loop().create_task(self._follow(res, result, plain))
        return res

    async def _follow(self, res: Response, result: client.Result, plain: _Plain) -> Response:
        last = await redirects.follow(
            self, plain[3], plain[4], None, _NO_PARAMS, result, self._run.opts.max_redirects, None
        )
        return res if last is None else last

    def _finish(
        self,
        result: client.Result,
        method: str,
        url: str,
        params: Mapping[str, Any],
        group: str | None,
    ) -> Response:
        """Record a completed request (cookies, metrics) and make its Response."""
        run = self._run
        vu = self._vu
        if result.head != self._no_cookies:
            self._cookies(result, url)
        tags: dict[str, str] | None = None
        if run.tagged:  # only JSON output and tag-selecting submetrics read them
            user_tags = {str(k): str(v) for k, v in dict(params.get("tags") or {}).items()}
            tags = {
                **vu.tags,
                "group": vu.group if group is None else group,
                "method": method,
                "url": url,
                "name": url,
                "proto": "HTTP/1.1",
                **user_tags,
            }
        response = self._response
        if params:
            self._record_judged(result, params, tags)
            if "responseType" in params:
                response = _response_type(params["responseType"])
        else:
            self._record(result, vu, tags)  # (the run's batched record by default)
        if run.opts.throw and result.error:
            raise runner.ScriptError(f"{method} {url}: {result.error}")
        return response(result, url, method)

    def _cookies(self, result: client.Result, url: str) -> None:
        """Store the cookies a response sets (every scripted request's)."""
        # = result.set_cookie, over the header block only: the bytes received less the body
        # are at least that (a byte search costs ~2 ns a byte).
        head = result.head
        end = result.bytes_received - len(result.body)
        if head.find(b"ookie", 0, end) >= 0 or head.find(b"OOKIE", 0, end) >= 0:
            values = _set_cookie_values(result)
            if values:
                self.jar.extract(url, values)
                return
        self._no_cookies = head

    def _record_judged(
        self, result: client.Result, params: Mapping[str, Any], tags: dict[str, str] | None
    ) -> None:
        """Record a request whose response callback may not be the default (this VU's
        ``setResponseCallback``, or ``params.responseCallback``)."""
        if "responseCallback" not in params:
            self._record(result, self._vu, tags)
            return
        try:
            expect = statuses.callback(params["responseCallback"])
        except statuses.StatusesError as exc:
            raise runner.ScriptError(str(exc)) from None
        if expect is _DEFAULT_STATUSES:
            self._run.record(result, self._vu, tags)
        else:
            verdict = None if expect is None else expect(result.status)
            self._run.record_judged(result, self._vu, tags, verdict)

    def _cookie_header(self, url: str, extra: object) -> str:
        """The jar's cookies for ``url`` with ``params.cookies`` (k6: ``{name: value}`` or
        ``{name: {value, replace}}``; without ``replace`` both are sent)."""
        jar_cookies = self.jar.cookies_for_url(url) if not self.jar.empty else {}
        pairs: list[tuple[str, str]] = []
        replaced: set[str] = set()
        if isinstance(extra, Mapping):
            for name, spec in extra.items():
                if isinstance(spec, Mapping):
                    value = str(spec.get("value", ""))
                    if spec.get("replace"):
                        replaced.add(str(name))
                else:
                    value = str(spec)
                pairs.append((str(name), value))
        out = [
            (name, value)
            for name, values in jar_cookies.items()
            if name not in replaced
            for value in values
        ]
        return "; ".join(f"{n}={v}" for n, v in [*out, *pairs])

    def get(self, url: str, params: Mapping[str, Any] | None = None) -> Awaitable[Response]:
        # Not async: the caller awaits the fast path's future, or request's coroutine,
        # itself (no frame of ours in between). The fast path is _send's, inlined for the
        # most common call of all.
        if not params and self.jar.empty and self._fast:
            plain = self._gets.get(url)
            if plain is not None and plain[2]:
                c = plain[2][-1]
                conn = c._conn
                if conn is not None and not conn.lost and conn.keep_alive and not c.busy:
                    # = c.send(plain[1], plain, self._timeout_s), inline: the call was
                    # ~600 instructions of a request's ~40k.
                    c.busy = True
                    c._fut = fut = c._loop.create_future()
                    c._ctx = plain
                    c._raw = plain[1]
                    c._send_timeout_s = self._timeout_s
                    c._pending = conn
                    writes = c._writes
                    due = writes._due
                    due.append(c)
                    if len(due) == 1:  # the pass's first: one call_soon writes them all
                        c._loop.call_soon(writes._flush)
                    return fut
        return self.request("GET", url, None, params)

    def head(self, url: str, params: Mapping[str, Any] | None = None) -> Awaitable[Response]:
        if not params:
            sent = self._send("HEAD", url)
            if sent is not None:
                return sent
        return self.request("HEAD", url, None, params)

    def post(
        self, url: str, body: object = None, params: Mapping[str, Any] | None = None
    ) -> Coroutine[Any, Any, Response]:
        return self.request("POST", url, body, params)

    def put(
        self, url: str, body: object = None, params: Mapping[str, Any] | None = None
    ) -> Coroutine[Any, Any, Response]:
        return self.request("PUT", url, body, params)

    def patch(
        self, url: str, body: object = None, params: Mapping[str, Any] | None = None
    ) -> Coroutine[Any, Any, Response]:
        return self.request("PATCH", url, body, params)

    def delete(
        self, url: str, body: object = None, params: Mapping[str, Any] | None = None
    ) -> Coroutine[Any, Any, Response]:
        return self.request("DELETE", url, body, params)

    del_ = delete

    async def batch(self, requests: object, *, group: str | None = None) -> Any:
        """k6's ``http.batch``: a list (or dict) of URLs, ``[method, url, body, params]``
        lists or ``{method, url, body, params}`` objects, sent concurrently."""

        def one(item: object) -> Awaitable[Response]:
            if isinstance(item, str):
                return self.request("GET", item, group=group)
            if isinstance(item, list | tuple):
                parts = [*item, None, None, None][:4]
                return self.request(str(parts[0]), str(parts[1]), parts[2], parts[3], group=group)
            if isinstance(item, Mapping):
                return self.request(
                    str(item.get("method", "GET")),
                    str(item["url"]),
                    item.get("body"),
                    item.get("params"),
                    group=group,
                )
            raise runner.ScriptError(f"http.batch: unsupported request {item!r}")

        if isinstance(requests, Mapping):
            keys = list(requests)
            results = await asyncio.gather(*(one(requests[k]) for k in keys))
            return dict(zip(keys, results, strict=True))
        if isinstance(requests, list | tuple):
            return list(await asyncio.gather(*(one(r) for r in requests)))
        raise runner.ScriptError("http.batch: expected an array or an object")


# ------------------------------------------------------------------- Python scenarios


class PyVu:
    """What a Python scenario's functions receive."""

    def __init__(
        self, run: runner.Run, vu: runner.VU, env: Mapping[str, str], path: str = ""
    ) -> None:
        self._run = run
        self._vu = vu
        self._path = path
        self._execution: execution.Execution | None = None
        self.http = Http(run, vu)
        self.env = dict(env)

    @property
    def execution(self) -> execution.Execution:
        """k6/execution: ``vu.execution.vu.id_in_test``, ``.scenario.iteration_in_test``,
        ``.instance.vus_active``, ``.test.abort(reason)``…"""
        if self._execution is None:
            self._execution = execution.Execution(self._run, self._vu, self._path)
        return self._execution

    @property
    def id(self) -> int:
        return self._vu.id

    @property
    def iteration(self) -> int:
        return self._vu.iteration

    @property
    def data(self) -> object:
        return self._vu.data

    @property
    def scenario(self) -> str:
        return self._vu.scen.name

    def check(self, value: object, conditions: Mapping[str, object]) -> bool:
        ok_all = True
        for name, cond in conditions.items():
            ok = bool(cond(value)) if callable(cond) else bool(cond)
            self._run.check(self._vu, name, ok)
            ok_all = ok_all and ok
        return ok_all

    @contextlib.contextmanager
    def group(self, name: str) -> Iterator[None]:
        vu = self._vu
        outer = vu.group
        vu.group = f"{outer}::{name}"
        begin = time.perf_counter_ns()
        try:
            yield
        finally:
            self._run.group_done(vu, vu.group, time.perf_counter_ns() - begin)
            vu.group = outer

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class PyProgram:
    """A Python scenario module."""

    path: str
    module: Any
    env: Mapping[str, str] = field(default_factory=dict)
    custom_metrics: custom.Definitions = field(default_factory=dict)
    """:mod:`~mcgw.loadtest.custom` metrics the module declared at its top level."""
    numbered: bool = False
    """The module mentions ``execution``: its iterations are numbered (k6/execution)."""

    @property
    def options(self) -> Mapping[str, object]:
        opts = getattr(self.module, "options", {}) or {}
        if not isinstance(opts, Mapping):
            raise ScriptLoadError(f"{self.path}: options must be a dict")
        return opts

    def exports(self) -> frozenset[str]:
        return frozenset(
            name for name, value in vars(self.module).items() if inspect.isfunction(value)
        )

    async def _call(self, fn: Callable[..., Any], *args: object) -> object:
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                result = await result
        except (asyncio.CancelledError, runner.ScriptError, runner.OutOfTime):
            raise
        except Exception as exc:
            raise runner.ScriptError(_py_where(exc, self.path)) from exc
        return result

    async def setup(self, run: runner.Run) -> object:
        fn = getattr(self.module, "setup", None)
        if fn is None:
            return None
        vu = runner.VU(0, run.scenarios[0], {"scenario": "setup", "group": "::setup"})
        try:
            with custom.adding(run.custom, vu):  # k6: setup may add samples to custom metrics
                return await self._call(fn, PyVu(run, vu, self.env, self.path))
        finally:
            vu.close()  # its connections (a scenario VU's close at the scenario's end)

    async def teardown(self, run: runner.Run, data: object) -> None:
        fn = getattr(self.module, "teardown", None)
        if fn is not None:
            vu = runner.VU(0, run.scenarios[0], {"scenario": "teardown"}, data=data)
            try:
                with custom.adding(run.custom, vu):
                    await self._call(fn, PyVu(run, vu, self.env, self.path), data)
            finally:
                vu.close()

    def handle_summary(self, data: Mapping[str, object], text: str) -> Mapping[str, str] | None:
        """The module's ``handle_summary(data)`` (or ``handleSummary``), as k6's: what
        to write where; None when the module has neither."""
        fn = getattr(self.module, "handle_summary", None) or getattr(
            self.module, "handleSummary", None
        )
        if fn is None:
            return None
        try:
            out = fn(dict(data))
        except Exception as exc:
            raise runner.ScriptError(_py_where(exc, self.path)) from exc
        return _summary_outputs(out, self.path)

    async def new_vu(self, run: runner.Run, vu: runner.VU) -> runner.VuCode:
        fn = getattr(self.module, vu.scen.exec_name)
        if not inspect.iscoroutinefunction(fn):
            raise ScriptLoadError(
                f"{self.path}: {vu.scen.exec_name}() must be `async def` (it awaits vu.http)"
            )
        api = PyVu(run, vu, {**self.env, **dict(vu.scen.env)}, self.path)
        return _PyVuCode(self, fn, api)


class _PyVuCode:
    def __init__(self, program: PyProgram, fn: Callable[..., Any], api: PyVu) -> None:
        self._program = program
        self._fn = fn
        self._api = api
        self._metrics = (api._run.custom, api._vu)
        self._numbered = program.numbered

    def entry(self, vu: runner.VU) -> tuple[Callable[[Any], Awaitable[None]], object]:
        custom.CURRENT.set(self._metrics)  # whose samples custom metrics record (this task)
        if self._numbered:
            return self.iteration, vu
        # The scenario's own function: Run.iterate calls it and awaits its coroutine, no
        # frame of ours around either (each costs on every request). Its exceptions: see
        # describe.
        return self._fn, self._api

    def iteration(self, vu: runner.VU) -> Awaitable[None]:
        if self._numbered:
            self._api._run.number_iteration(vu)
        if custom.CURRENT.get() is not self._metrics:  # (when not run through entry)
            custom.CURRENT.set(self._metrics)
        return self._fn(self._api)  # type: ignore[no-any-return]

    def describe(self, exc: Exception) -> str:
        return _py_where(exc, self._program.path)

    def close(self) -> None:
        return None


def _py_where(exc: BaseException, path: str) -> str:
    tb = exc.__traceback__
    line = 0
    while tb is not None:
        if pathlib.Path(tb.tb_frame.f_code.co_filename).resolve() == pathlib.Path(path).resolve():
            line = tb.tb_lineno
        tb = tb.tb_next
    where = f"{path}:{line}" if line else path
    return f"{where}: {type(exc).__name__}: {exc}"


def load_python(path: str, env: Mapping[str, str]) -> PyProgram:
    spec = importlib.util.spec_from_file_location(f"mcgw_scenario_{abs(hash(path))}", path)
    if spec is None or spec.loader is None:
        raise ScriptLoadError(f"{path}: cannot load as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        with custom.collecting() as defs:  # its custom metrics (the init context)
            spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise ScriptLoadError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from exc
    except Exception as exc:
        raise ScriptLoadError(_py_where(exc, path)) from exc
    try:
        numbered = "execution" in pathlib.Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        numbered = True
    return PyProgram(path, module, env, defs, numbered)


# ------------------------------------------------------------------------ JavaScript

_IMPORT_RE = re.compile(
    r"""^(?P<indent>[ \t]*)import\s+(?P<what>[^'";]*?)\s*from\s*['"](?P<mod>[^'"]+)['"]\s*;?""",
    re.MULTILINE | re.DOTALL,
)
_BARE_IMPORT_RE = re.compile(r"""^[ \t]*import\s*['"]([^'"]+)['"]""", re.MULTILINE)
_EXPORT_DEFAULT_FN_RE = re.compile(
    r"^([ \t]*)export\s+default\s+(async\s+)?function\b\s*(\w*)", re.MULTILINE
)
_EXPORT_DEFAULT_EXPR_RE = re.compile(r"^([ \t]*)export\s+default\s+", re.MULTILINE)
_EXPORT_DECL_RE = re.compile(
    r"^([ \t]*)export\s+((?:const|let|var|function\*?|async\s+function|class)\s+)(\w+)",
    re.MULTILINE,
)
_EXPORT_LIST_RE = re.compile(r"^([ \t]*)export\s*\{([^}]*)\}\s*;?", re.MULTILINE)


def _line_of(source: str, pos: int) -> int:
    return source.count("\n", 0, pos) + 1


def _binding(what: str, path: str, line: int) -> str:
    """``http, { a, b as c }`` → a JS destructuring target for ``__k6mod(...)``."""
    what = what.strip()
    if what.startswith("* as "):
        return f"const {what[5:].strip()} ="
    default, _, named = what.partition("{")
    default = default.strip().rstrip(",").strip()
    named = named.rstrip("}").strip() if named else ""
    if named:
        items = []
        for item in named.split(","):
            item = item.strip()
            if not item:
                continue
            name, _, alias = item.partition(" as ")
            items.append(f"{name.strip()}: {alias.strip()}" if alias else name.strip())
        pattern = "{" + ", ".join(items) + "}"
        if default:
            return f"const {{default: {default}, ...{{}}}} = {{default: null}}, {pattern} ="
        return f"const {pattern} ="
    if not default:
        raise ScriptLoadError(f"{path}:{line}: cannot read this import")
    return f"const {default} ="


def transform(source: str, path: str = "<script>") -> tuple[str, tuple[str, ...]]:
    """Rewrite k6's ES module syntax into script code, keeping every line in place.

    Returns:
        The code and the exported names (``default`` for the default export).

    Raises:
        ScriptLoadError: an import of an unsupported module, naming the line.
    """
    exports: list[str] = []

    def on_import(m: re.Match[str]) -> str:
        line = _line_of(source, m.start())
        module = m["mod"]
        if _K6_SUMMARY_RE.match(module):
            module = "k6-summary"  # jslib's textSummary: mcgw's own end-of-test text
        if module not in _SUPPORTED_MODULES:
            raise ScriptLoadError(
                f"{path}:{line}: import from {module!r} is not supported "
                f"(mcgw load supports {', '.join(repr(s) for s in _SUPPORTED_MODULES)})"
            )
        what = m["what"]
        newlines = "\n" * m.group(0).count("\n")
        binding = _binding(what.replace("\n", " "), path, line)
        if binding.startswith("const {default:"):
            # `import http, { x } from 'k6/http'`
            default = what.split(",")[0].strip()
            named = binding.split(", ", 1)[1]
            return (
                f'{m["indent"]}const {default} = __k6mod("{module}"); {named} '
                f'__k6mod("{module}");{newlines}'
            )
        return f'{m["indent"]}{binding} __k6mod("{module}");{newlines}'

    code = _IMPORT_RE.sub(on_import, source)
    bare = _BARE_IMPORT_RE.search(code)
    if bare:
        line = _line_of(code, bare.start())
        raise ScriptLoadError(f"{path}:{line}: import of {bare.group(1)!r} is not supported")

    def on_default_fn(m: re.Match[str]) -> str:
        exports.append("default")
        name = m.group(3)
        if name:
            # Keep the name for the script, and alias it for the runner.
            exports.append(f"={name}")
        return f"{m.group(1)}{m.group(2) or ''}function {name or '__k6default'}"

    code = _EXPORT_DEFAULT_FN_RE.sub(on_default_fn, code)

    def on_default_expr(m: re.Match[str]) -> str:
        exports.append("default")
        return f"{m.group(1)}var __k6default = "

    code = _EXPORT_DEFAULT_EXPR_RE.sub(on_default_expr, code)

    def on_decl(m: re.Match[str]) -> str:
        exports.append(m.group(3))
        return f"{m.group(1)}{m.group(2)}{m.group(3)}"

    code = _EXPORT_DECL_RE.sub(on_decl, code)

    def on_list(m: re.Match[str]) -> str:
        for item in m.group(2).split(","):
            name, _, alias = item.strip().partition(" as ")
            if name.strip():
                exports.append(f"{alias.strip()}={name.strip()}" if alias else name.strip())
        return m.group(1)

    code = _EXPORT_LIST_RE.sub(on_list, code)
    leftover = re.search(r"^[ \t]*(export|import)\b", code, re.MULTILINE)
    if leftover:
        line = _line_of(code, leftover.start())
        raise ScriptLoadError(f"{path}:{line}: unsupported {leftover.group(1)} syntax")
    # Map exported names to values, evaluated after the script (same last line).
    pairs = []
    default_alias = ""
    for name in exports:
        if name.startswith("="):
            default_alias = name[1:]
        elif "=" in name:
            alias, _, local = name.partition("=")
            pairs.append(f"{json.dumps(alias)}: {local}")
        elif name != "default":
            pairs.append(f"{json.dumps(name)}: {name}")
    if "default" in exports:
        pairs.append(f'"default": {default_alias or "__k6default"}')
    code += "\n;globalThis.__k6exports = {" + ", ".join(pairs) + "};\n"
    names = tuple(
        n.partition("=")[0] if "=" in n and not n.startswith("=") else n
        for n in exports
        if not n.startswith("=")
    )
    return code, names


_PRELUDE = r"""
// The Python callables as the closure's parameters: a local read per call instead of a
// lookup in the global object.
var __k6 = (function (
    __py_get, __py_request, __py_batch, __py_res, __py_last_error, __py_jar, __py_check,
    __py_group_enter, __py_group_exit, __py_sleep, __py_text_summary, __py_expected,
    __py_set_callback) {
  function call(fn, args) {
    var out = JSON.parse(fn.apply(null, args));
    if (out !== null && typeof out === 'object' && out.__error) { throw new Error(out.__error); }
    return out;
  }
  // A response is a handle into the VU's recent responses on the Python side plus its
  // status; body, headers, timings, cookies and error cross over only when read.
  function Response(code, method, url) {
    if (code < 0) {  // redirected: the chain's final URL and method (see _JsVu._send)
      code = -code;
      url = __py_res(Math.floor(code / 1000), 'url');
      method = __py_res(Math.floor(code / 1000), 'method');
    }
    // Math.floor, not |0: a VU's handles pass 2^31 / 1000 after ~2.1 million requests.
    this._h = Math.floor(code / 1000);
    this.status = code % 1000;
    this.url = url;
    // GET from the prototype: one own property (a shape transition) less per request.
    if (method !== GET) { this._m = method; }
  }
  // A closure variable: a string literal is converted from its atom on each use.
  var GET = 'GET';
  Response.prototype.proto = 'HTTP/1.1';
  Response.prototype._m = 'GET';
  Object.defineProperty(Response.prototype, 'request', {
    configurable: true,
    get: function () { return { method: this._m, url: this.url }; },
  });
  function lazy(name, parse) {
    Object.defineProperty(Response.prototype, name, {
      configurable: true,
      get: function () {
        var raw = __py_res(this._h, name);
        var v = parse ? JSON.parse(raw) : raw;
        Object.defineProperty(this, name, {
          value: v, writable: true, enumerable: true, configurable: true });
        return v;
      },
      set: function (v) {
        Object.defineProperty(this, name, {
          value: v, writable: true, enumerable: true, configurable: true });
      },
    });
  }
  lazy('body', false);
  lazy('error', false);
  lazy('headers', true);
  lazy('timings', true);
  lazy('cookies', true);
  lazy('error_code', true);
  Response.prototype.json = function (selector) {
    var doc = JSON.parse(this.body);
    if (selector) {
      var parts = String(selector).split('.');
      for (var i = 0; i < parts.length; i++) { doc = doc[parts[i]]; }
    }
    return doc;
  };
  Response.prototype.html = function () {
    throw new Error('Response.html() is not supported by mcgw load');
  };
  // http.expectedStatuses' result: opaque to the script, its JSON form crosses to Python
  // (setResponseCallback, params.responseCallback).
  function ExpectedStatuses(spec) {
    this.__k6expected = spec;
    Object.freeze(this);
  }
  function callbackParams(p) {
    // k6 refuses anything but expectedStatuses or null (JSON would drop a function);
    // undefined is null, which JSON would drop too.
    if (p !== null && typeof p === 'object' && 'responseCallback' in p) {
      var cb = p.responseCallback;
      if (cb === undefined || cb === null) {
        p = Object.assign({}, p, { responseCallback: null });
      } else if (!(cb instanceof ExpectedStatuses)) {
        throw new Error('unsupported responseCallback, expected http.expectedStatuses(...)');
      }
    }
    return p;
  }
  function send(method, url, b, p) {
    var code;
    p = callbackParams(p);
    if ((b === undefined || b === null) && (p === undefined || p === null)) {
      code = __py_get(method, url);
    } else {
      code = __py_request(method, url, JSON.stringify(b === undefined ? null : b),
                          JSON.stringify(p === undefined || p === null ? {} : p));
    }
    if (code === -1) { throw new Error(__py_last_error()); }
    return new Response(code, method, url);
  }
  function request(method, url, b, p) {
    return send(String(method).toUpperCase(), String(url), b, p);
  }
  function describe(item) {
    if (typeof item === 'string') { return ['GET', item]; }
    if (Array.isArray(item)) { return [String(item[0]).toUpperCase(), String(item[1])]; }
    return [String(item.method || 'GET').toUpperCase(), String(item.url)];
  }
  function CookieJar() {}
  CookieJar.prototype.set = function (url, name, value, opts) {
    call(__py_jar, ['set', JSON.stringify([url, name, value, opts || {}])]);
  };
  CookieJar.prototype.cookiesForURL = function (url) {
    return call(__py_jar, ['cookiesForURL', JSON.stringify([url])]);
  };
  CookieJar.prototype.clear = function (url) {
    call(__py_jar, ['clear', JSON.stringify([url])]);
  };
  CookieJar.prototype.delete = function (url, name) {
    call(__py_jar, ['delete', JSON.stringify([url, name])]);
  };
  var jar = new CookieJar();
  var http = {
    get: function (url, p) {
      // send('GET', url, null, p), inlined for the common call (one JS frame less
      // on every request and on the greenlet's saved stack).
      if (p === undefined || p === null) {
        var code = __py_get(GET, typeof url === 'string' ? url : (url = String(url)));
        if (code === -1) { throw new Error(__py_last_error()); }
        return new Response(code, GET, url);
      }
      return send(GET, String(url), null, p);
    },
    head: function (url, p) { return request('HEAD', url, null, p); },
    options: function (url, b, p) { return request('OPTIONS', url, b, p); },
    post: function (url, b, p) { return request('POST', url, b, p); },
    put: function (url, b, p) { return request('PUT', url, b, p); },
    patch: function (url, b, p) { return request('PATCH', url, b, p); },
    del: function (url, b, p) { return request('DELETE', url, b, p); },
    request: function (method, url, b, p) { return request(method, url, b, p); },
    cookieJar: function () { return jar; },
    expectedStatuses: function () {
      var args = Array.prototype.slice.call(arguments);
      return new ExpectedStatuses(call(__py_expected, [JSON.stringify(args)]));
    },
    setResponseCallback: function (cb) {
      var spec;
      if (cb === undefined || cb === null) { spec = 'null'; }
      else if (cb instanceof ExpectedStatuses) { spec = JSON.stringify(cb.__k6expected); }
      else {
        throw new Error(
          'setResponseCallback: unsupported argument, expected http.expectedStatuses');
      }
      __py_set_callback(spec);
    },
    batch: function (reqs) {
      var sent = Array.isArray(reqs) ? [] : {};
      for (var key in reqs) {
        var item = reqs[key];
        if (Array.isArray(item) && item.length > 3) {
          item = item.slice();
          item[3] = callbackParams(item[3]);
        } else if (item !== null && typeof item === 'object' && item.params) {
          item = Object.assign({}, item, { params: callbackParams(item.params) });
        }
        sent[key] = item;
      }
      var out = call(__py_batch, [JSON.stringify(sent)]);
      var res = Array.isArray(out) ? [] : {};
      for (var k in out) {
        var d = describe(reqs[k]);
        res[k] = new Response(out[k], d[0], d[1]);
      }
      return res;
    },
  };
  function check(value, sets, tags) {
    var all = true;
    for (var name in sets) {
      var f = sets[name];
      var ok = typeof f === 'function' ? !!f(value) : !!f;
      __py_check(name, ok);
      if (!ok) { all = false; }
    }
    return all;
  }
  function group(name, fn) {
    __py_group_enter(String(name));
    try { return fn(); } finally { __py_group_exit(); }
  }
  function sleep(seconds) {
    var err = __py_sleep(Number(seconds));
    if (err) { throw new Error(err); }
  }
  function fail(message) { throw new Error(message === undefined ? 'fail' : String(message)); }
  function textSummary(data, opts) { return __py_text_summary(); }
  var k6 = { check: check, group: group, sleep: sleep, fail: fail };
  var modules = { 'k6': k6, 'k6/http': http, 'k6-summary': { textSummary: textSummary } };
  return { modules: modules };
})(
    __py_get, __py_request, __py_batch, __py_res, __py_last_error, __py_jar, __py_check,
    __py_group_enter, __py_group_exit, __py_sleep, __py_text_summary, __py_expected,
    __py_set_callback);
function __k6mod(name) { return __k6.modules[name]; }
var __k6iter = (function () {
  // __ITER and setup's data are closure variables behind global accessors: each
  // iteration sets and reads these instead of looking up the global object's properties.
  var iteration = 0;
  var data = null;
  Object.defineProperty(globalThis, '__ITER', {
    get: function () { return iteration; },
    set: function (v) { iteration = v; },
    enumerable: true,
    configurable: true,
  });
  Object.defineProperty(globalThis, '__k6data', {
    get: function () { return data; },
    set: function (v) { data = v; },
    configurable: true,
  });
  return function (name) {
    // One closure per exec function: no export lookup, no name string per iteration.
    var fn = globalThis.__k6exports[name];
    return function (iter) {
      iteration = iter;
      fn(data);
    };
  };
})();
var console = (function () {
  function log() {
    var parts = [];
    for (var i = 0; i < arguments.length; i++) {
      var a = arguments[i];
      parts.push(typeof a === 'object' ? JSON.stringify(a) : String(a));
    }
    __py_log(parts.join(' '));
  }
  return { log: log, info: log, warn: log, error: log, debug: log };
})();
function open(path) {
  var out = JSON.parse(__py_open(String(path)));
  if (out.__error) { throw new Error(out.__error); }
  return out.text;
}
"""


class _Interrupted(Exception):
    """The test ended while this VU was waiting in a request or a sleep."""


_INTERRUPTED = "iteration interrupted: the test ended"


class _Failure:
    """Into a VU's greenlet: what it awaited raised ``exc`` (raised there in turn)."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_Call = tuple[Callable[..., object], tuple[object, ...]]
"""Into a VU's greenlet: a call to run there (setup and teardown, via drive)."""


class _Outcome:
    """Out of a VU's greenlet: the call it was started with returned or failed."""

    __slots__ = ("error", "value")

    def __init__(self, value: object, error: Exception | None = None) -> None:
        self.value = value
        self.error = error


_DONE = _Outcome(None)
"""An iteration's end (one shared object: nothing allocated per iteration)."""
_RECENT_RESPONSES = 256
"""Responses a JS VU keeps for lazy reads (body, headers…): its latest ones."""
_FIRST_HANDLE = 1
"""A VU's first response handle (a test starts it high, where long runs end up)."""
_INT32 = 2**31
"""Where the quickjs binding's int conversion wraps (handles pass it after ~2.1 M requests)."""
_EMPTY_SLOT: tuple[int, Response | None] = (0, None)


def _js_error(exc: Exception, path: str, source: str = "") -> str:
    """``path:line: message`` from a QuickJS exception: the innermost frame in the script.

    QuickJS omits the line for an error on a function's first line (a one-line
    function); the function's definition line is used then.
    """
    text = str(exc).strip()
    first, _, stack = text.partition("\n")
    for frame in re.finditer(r"at (\S+) \(<input>(?::(\d+))?\)", stack):
        name, line_text = frame.groups()
        if line_text:
            line = int(line_text)
            if line < _PRELUDE_OFFSET:
                return f"{path}:{line}: {first}"
            continue
        if name.startswith("<") or not source:
            continue
        defined = re.search(rf"\bfunction\s+{re.escape(name)}\s*\(", source)
        if defined:
            return f"{path}:{_line_of(source, defined.start())}: {first}"
    match = re.search(r"<input>:(\d+)", text)
    if match and int(match.group(1)) < _PRELUDE_OFFSET:
        return f"{path}:{match.group(1)}: {first}"
    return f"{path}: {first}"


def _js_expected_statuses(args_json: str) -> str:
    """``http.expectedStatuses(...)``'s arguments (JSON) → the matcher's JSON form, or an
    error for the prelude to throw (nothing raises into QuickJS)."""
    try:
        matcher = statuses.expected_statuses(*json.loads(args_json))
    except statuses.StatusesError as exc:
        return json.dumps({"__error": str(exc)})
    return json.dumps(matcher.to_spec())


class _InitHost:
    """What the script's Python callables do in the init context (and in
    handleSummary): no requests, no sleeping, no metrics."""

    last_error = "http requests are not allowed in the init context"
    text_summary = ""

    def get(self, method: str, url: str) -> int:
        return -1

    def request(self, method: str, url: str, body: str, params: str) -> int:
        return -1

    def batch(self, reqs: str) -> str:
        return json.dumps({"__error": self.last_error})

    def res(self, handle: int, name: str) -> str:
        return "null"

    def jar(self, op: str, args: str) -> str:
        return json.dumps({"__error": "http.cookieJar() is not available in the init context"})

    def check(self, name: str, ok: bool) -> None:
        return None

    def group_enter(self, name: str) -> None:
        return None

    def group_exit(self) -> None:
        return None

    def sleep(self, seconds: float) -> str:
        return "sleep() is not allowed in the init context"

    def set_callback(self, spec_json: str) -> None:
        return None  # (checked by the prelude; each VU's context sets its own)


class _JsContext:
    """One QuickJS context with the k6 prelude and the script."""

    def __init__(
        self,
        program: JsProgram,
        vu_id: int,
        env: Mapping[str, str],
        host: _InitHost | _JsVu,
    ) -> None:
        import quickjs  # type: ignore[import-untyped]

        self._quickjs = quickjs
        self.js_exception: type[Exception] = quickjs.JSException
        self.program = program
        self.ctx = quickjs.Context()
        self.ctx.set_max_stack_size(4 * 1024 * 1024)
        add = self.ctx.add_callable
        # Callables never raise into QuickJS (its binding mishandles that): errors come
        # back as -1 / {"__error": ...} / a message, and the prelude throws them in JS.
        add("__py_get", host.get)
        add("__py_request", host.request)
        add("__py_batch", host.batch)
        add("__py_res", host.res)
        add("__py_last_error", lambda: host.last_error)
        add("__py_jar", host.jar)
        add("__py_check", host.check)
        add("__py_group_enter", host.group_enter)
        add("__py_group_exit", host.group_exit)
        add("__py_sleep", host.sleep)
        add("__py_text_summary", lambda: host.text_summary)
        add("__py_expected", _js_expected_statuses)
        add("__py_set_callback", host.set_callback)
        add("__py_open", self._open)
        add("__py_log", self._log)
        # Only the modules the script imports: their JS costs ~0.2-0.4 ms a VU to compile.
        code = program.code
        modules = ""
        if "k6/encoding" in code or "k6/crypto" in code or "k6/execution" in code:
            modules += stdlib.install_js(self.ctx)  # k6/encoding, k6/crypto (+ strict)
        if "k6/execution" in code:
            modules += execution.install_js(self.ctx, host, program.path)
        self.ctx.eval("\n" * _PRELUDE_OFFSET + _PRELUDE + modules)
        custom.install_js(self.ctx, program.custom_metrics, host)  # k6/metrics
        self.ctx.set("__VU", vu_id)
        self.ctx.set("__ITER", 0)
        self.ctx.eval(f"var __ENV = {json.dumps(dict(env))};")
        try:
            self.ctx.eval(program.code)
        except quickjs.JSException as exc:
            raise ScriptLoadError(_js_error(exc, program.path, program.code)) from None

    def _log(self, text: str) -> None:
        # k6 logs to stderr with a level and source; mcgw keeps the message.
        print(f"INFO[console] {text}", file=sys.stderr, flush=True)

    def _open(self, path: str) -> str:
        base = pathlib.Path(self.program.path).parent
        try:
            return json.dumps({"text": (base / path).read_text()})
        except OSError as exc:
            return json.dumps({"__error": f"open({path!r}): {exc.strerror or exc}"})

    def export_json(self, name: str) -> object:
        raw = self.ctx.eval(
            f"(function(){{var v = globalThis.__k6exports[{json.dumps(name)}];"
            "return v === undefined ? 'null' : JSON.stringify(v);})()"
        )
        return json.loads(raw)

    def call(self, name: str, data_json: str) -> str:
        """Call an exported function with ``data`` (JSON); returns its result as JSON."""
        try:
            return str(
                self.ctx.eval(
                    f"(function(){{var r = globalThis.__k6exports[{json.dumps(name)}]"
                    f"({data_json}); return r === undefined ? 'null' : JSON.stringify(r);}})()"
                )
            )
        except self._quickjs.JSException as exc:
            raise runner.ScriptError(_js_error(exc, self.program.path, self.program.code)) from None


@dataclass
class JsProgram:
    """A k6 script, transformed; each VU evaluates it in its own QuickJS context."""

    path: str
    code: str
    export_names: tuple[str, ...]
    options: Mapping[str, object]
    env: Mapping[str, str] = field(default_factory=dict)
    custom_metrics: custom.Definitions = field(default_factory=dict)
    """``k6/metrics`` metrics the init context declared."""

    def exports(self) -> frozenset[str]:
        return frozenset(self.export_names)

    async def _once(self, run: runner.Run, vu: runner.VU, name: str, data: object) -> object:
        code = vu.code = _JsVu(self, run, vu, self.env)
        try:
            out = await asyncio.wait_for(
                code.drive(code.ctx.call, name, json.dumps(data)), run.opts.setup_timeout_s
            )
        finally:
            vu.close()  # the code's greenlet and the VU's connections
        return json.loads(str(out))

    async def setup(self, run: runner.Run) -> object:
        if "setup" not in self.export_names:
            return None
        vu = runner.VU(0, run.scenarios[0], {"scenario": "setup", "group": "::setup"})
        return await self._once(run, vu, "setup", None)

    async def teardown(self, run: runner.Run, data: object) -> None:
        if "teardown" not in self.export_names:
            return
        vu = runner.VU(0, run.scenarios[0], {"scenario": "teardown", "group": "::teardown"})
        await self._once(run, vu, "teardown", data)

    async def new_vu(self, run: runner.Run, vu: runner.VU) -> runner.VuCode:
        return _JsVu(self, run, vu, {**self.env, **dict(vu.scen.env)})

    def handle_summary(self, data: Mapping[str, object], text: str) -> Mapping[str, str] | None:
        """k6's ``handleSummary(data)``: what to write where (``stdout``, ``stderr``,
        file paths), or None when the script does not export it."""
        if "handleSummary" not in self.export_names:
            return None
        host = _InitHost()
        host.text_summary = text
        ctx = _JsContext(self, 0, self.env, host)
        out = json.loads(ctx.call("handleSummary", json.dumps(data)))
        return _summary_outputs(out, self.path)


def _summary_outputs(out: object, path: str) -> Mapping[str, str]:
    if out is None:
        return {}
    if not isinstance(out, Mapping):
        raise runner.ScriptError(f"{path}: handleSummary must return an object")
    return {str(k): v if isinstance(v, str) else json.dumps(v, indent=2) for k, v in out.items()}


class _JsVu:
    """One JS VU: a QuickJS context run on a greenlet of the event loop's thread.

    QuickJS is synchronous and k6's API is blocking (``http.get`` returns the response);
    asyncio is not. So each VU's script runs in its own greenlet: when the script calls
    ``http.get``, the Python callable switches back to the event loop's greenlet with the
    request's awaitable (:meth:`Http._send`'s future or :meth:`Http.request`'s coroutine),
    the VU's task awaits it like any other, and switches into the
    greenlet again with the response. Any number of VUs multiplex on the loop's one
    thread, with two greenlet switches (about a microsecond each) per request instead of
    thread hand-offs. Cost of that design: a script busy in a loop that makes no request
    and no sleep holds up the whole process (all VUs of this worker) until it returns.
    """

    def __init__(
        self, program: JsProgram, run: runner.Run, vu: runner.VU, env: Mapping[str, str]
    ) -> None:
        import greenlet  # type: ignore[import-untyped]

        self.run = run
        self.vu = vu
        self.http = Http(run, vu)
        # The latest responses, by handle modulo the ring's size: a slot holds the handle
        # it was stored under, so a stale handle misses (cheaper than a dict and a pop).
        self.ring: list[tuple[int, Response | None]] = [_EMPTY_SLOT] * _RECENT_RESPONSES
        self.next_handle = _FIRST_HANDLE
        self.iteration_first = _FIRST_HANDLE
        """The first handle of the current iteration: older ones are not readable."""
        self.last_error = ""
        self.text_summary = ""
        self.interrupting = False
        """The VU's task was cancelled mid-iteration: the script is being unwound."""
        self.closed = False
        self.out_of_time = False
        self.groups: list[tuple[str, int]] = []
        self.numbered = "k6/execution" in program.code
        """The script imports k6/execution: its iterations are numbered."""
        self.ctx = _JsContext(program, vu.id, env, self)
        if vu.data is not None:
            self.ctx.ctx.eval(f"__k6data = {json.dumps(vu.data)};")
        # Function objects called with arguments: no JS source compiled per iteration.
        self._bind = self.ctx.ctx.get("__k6iter")
        self._iters: dict[str, Any] = {}
        self.glet = greenlet.greenlet(self._body)
        self._exit = greenlet.GreenletExit

    # -- on the loop's greenlet --
    def drive(self, fn: Callable[..., object], *args: object) -> Awaitable[object]:
        """Run ``fn(*args)`` in the VU's greenlet, awaiting what it waits for."""
        return self._drive((fn, args))

    async def _drive(self, start: object) -> object:
        # The hot path of every JS iteration. Messages are the objects themselves, told
        # apart by class (no tuple built and unpacked per switch): into the greenlet go an
        # iteration number or a (fn, args) call to start, then an awaited value or a
        # _Failure; out of it come awaitables until an _Outcome.
        glet = self.glet
        msg = glet.switch(start)
        while msg.__class__ is not _Outcome:
            try:
                value = await msg
            except asyncio.CancelledError:
                # Unwind the script: its pending call fails, and so does every later one
                # until the iteration is over (the VU itself lives on: ramping-vus parks
                # interrupted VUs and runs them again).
                self.interrupting = True
                try:
                    msg = glet.switch(_Failure(_Interrupted()))
                    for _ in range(10_000):
                        if msg.__class__ is _Outcome:
                            break
                        if inspect.iscoroutine(msg):
                            msg.close()
                        elif isinstance(msg, asyncio.Future):
                            msg.cancel()  # (Http._send's: its connection is dropped)
                        msg = glet.switch(_Failure(_Interrupted()))
                finally:
                    self.interrupting = False
                raise
            except Exception as exc:
                msg = glet.switch(_Failure(exc))
                continue
            msg = glet.switch(value)
        if msg.error is not None:
            if self.out_of_time:
                self.out_of_time = False
                raise runner.OutOfTime
            raise msg.error
        return msg.value

    def entry(self, vu: runner.VU) -> tuple[Callable[[runner.VU], Awaitable[None]], object]:
        return self.iteration, vu

    def iteration(self, vu: runner.VU) -> Awaitable[None]:
        if self.numbered:
            self.run.number_iteration(vu)
        return self._drive(vu.iteration)  # type: ignore[return-value]

    def describe(self, exc: Exception) -> str:
        return f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        self.closed = True
        if not self.glet.dead:
            self.glet.throw(self._exit)

    # -- on the VU's greenlet --
    def _body(self, start: object) -> None:
        parent = self.glet.parent
        while True:
            try:
                if start.__class__ is int:
                    self._iterate(start)
                    out = _DONE
                else:
                    call: _Call = start  # type: ignore[assignment]
                    out = _Outcome(call[0](*call[1]))
            except runner.ScriptError as exc:
                out = _Outcome(None, exc)
            if self.closed:
                return
            start = parent.switch(out)

    def _iterate(self, iteration: int) -> None:
        # Drop the last iteration's responses (their bodies), slot by slot: usually one.
        first, end = self.iteration_first, self.next_handle
        if end - first == 1:
            self.ring[first % _RECENT_RESPONSES] = _EMPTY_SLOT
        elif end != first:
            ring = self.ring
            for handle in range(max(first, end - _RECENT_RESPONSES), end):
                ring[handle % _RECENT_RESPONSES] = _EMPTY_SLOT
        self.iteration_first = end
        try:
            run = self._iters.get(self.vu.scen.exec_name)
            if run is None:
                name = self.vu.scen.exec_name
                run = self._iters[name] = self._bind(name)
            run(iteration)
        except self.ctx.js_exception as exc:
            program = self.ctx.program
            where = _js_error(exc, program.path, program.code)
            if self.run.abort_code:  # exec.test.abort(): the run is being stopped
                raise runner.TestAborted(where) from None
            raise runner.ScriptError(where) from None

    def _await(self, aw: Awaitable[Any]) -> Any:
        if self.interrupting or self.closed:
            if inspect.iscoroutine(aw):
                aw.close()
            raise _Interrupted
        value = self.glet.parent.switch(aw)
        if value.__class__ is _Failure:
            raise value.exc
        return value

    def _store(self, res: Response) -> int:
        handle = self.next_handle
        self.next_handle = handle + 1
        self.ring[handle % _RECENT_RESPONSES] = (handle, res)
        return handle * 1000 + res.status

    def _stored(self, handle: int) -> Response | None:
        if handle < self.iteration_first:
            return None
        stored, res = self.ring[handle % _RECENT_RESPONSES]
        return res if stored == handle else None

    def _send(
        self, method: str, url: str, body: object = None, params: object = None
    ) -> int | float:
        if self.interrupting or self.closed:
            self.last_error = _INTERRUPTED
            return -1
        http = self.http
        # A plain call seen before, on an idle kept-alive connection: Http._send's future,
        # resolved by the protocol callback (no coroutine, no yield_once: one wake-up).
        aw: Awaitable[Response] | None = (
            http._send(method, url) if body is None and params is None else None
        )
        if aw is None:
            aw = http.request(
                method,
                url,
                body,
                # (not isinstance first: an ABC check of None costs a µs per request)
                params if params is not None and isinstance(params, Mapping) else None,
            )
        try:
            # = _await(aw), inlined: this runs for every scripted request.
            res = self.glet.parent.switch(aw)
        except self._exit:
            self.last_error = _INTERRUPTED
            return -1
        if res.__class__ is _Failure:
            self.last_error = self._failed(res.exc)
            return -1
        # = _store(res), inlined
        handle = self.next_handle
        self.next_handle = handle + 1
        self.ring[handle % _RECENT_RESPONSES] = (handle, res)
        code: int | float = handle * 1000 + res.status
        if code >= _INT32:  # the quickjs binding wraps ints past 2^31; a float crosses whole
            code = float(code)
        # JS reads a redirect chain's final URL (see the prelude's Response)
        return -code if res.redirected else code

    def _failed(self, exc: BaseException) -> str:
        """Why a request failed, for the script's exception."""
        if isinstance(exc, _Interrupted):
            return _INTERRUPTED
        if isinstance(exc, runner.OutOfTime):
            self.out_of_time = True
            return _INTERRUPTED
        if isinstance(exc, runner.ScriptError | errors.LoadError):
            return str(exc)
        # never into QuickJS (see _JsContext)
        return f"{type(exc).__name__}: {exc}"

    # The script's callables (see the prelude).
    get = _send
    """``http.get(url)`` and the other calls without a body or params: (method, url)."""

    def request(self, method: str, url: str, body: str, params: str) -> int | float:
        return self._send(method, url, json.loads(body), json.loads(params))

    def batch(self, reqs: str) -> str:
        try:
            res = self._await(self.http.batch(json.loads(reqs)))
        except (_Interrupted, self._exit):
            return json.dumps({"__error": _INTERRUPTED})
        except runner.OutOfTime:
            self.out_of_time = True
            return json.dumps({"__error": _INTERRUPTED})
        except (runner.ScriptError, errors.LoadError) as exc:
            return json.dumps({"__error": str(exc)})
        except Exception as exc:  # never into QuickJS (see _JsContext)
            return json.dumps({"__error": f"{type(exc).__name__}: {exc}"})
        if isinstance(res, dict):
            return json.dumps({k: self._store_batched(v) for k, v in res.items()})
        return json.dumps([self._store_batched(r) for r in res])

    def _store_batched(self, res: Response) -> int:
        # A redirected response's final URL differs from the one requested.
        return -self._store(res) if res.redirected else self._store(res)

    def res(self, handle: int, name: str) -> str:
        r = self._stored(int(handle))
        if r is None:
            return "" if name in ("body", "error") else "null"
        if name == "body":
            return r.body
        if name == "error":
            return r.error
        if name == "url":
            return r.url
        if name == "method":
            return r.method
        if name == "headers":
            return json.dumps(r.headers)
        if name == "timings":
            return json.dumps(r.timings)
        if name == "cookies":
            return json.dumps(r.cookies)
        return json.dumps(r.error_code)

    def jar(self, op: str, args_json: str) -> str:
        args = json.loads(args_json)
        jar = self.http.jar
        try:
            if op == "set":
                url, name, value, opts = args
                jar.set(str(url), str(name), str(value), opts if isinstance(opts, dict) else {})
                return "null"
            if op == "cookiesForURL":
                return json.dumps(jar.cookies_for_url(str(args[0])))
            if op == "clear":
                jar.clear(str(args[0]))
                return "null"
            if op == "delete":
                jar.delete(str(args[0]), str(args[1]))
                return "null"
        except (ValueError, TypeError) as exc:
            return json.dumps({"__error": f"cookieJar.{op}: {exc}"})
        return json.dumps({"__error": f"cookieJar.{op} is not supported"})

    def check(self, name: str, ok: bool) -> None:
        self.run.check(self.vu, str(name), bool(ok))

    def set_callback(self, spec_json: str) -> None:
        spec = json.loads(spec_json)
        # (the prelude sends only null or an expectedStatuses' own spec: it parses)
        self.http.set_response_callback(None if spec is None else statuses.expected_statuses(*spec))

    def group_enter(self, name: str) -> None:
        vu = self.vu
        self.groups.append((vu.group, time.perf_counter_ns()))
        vu.group = f"{vu.group}::{name}"

    def group_exit(self) -> None:
        vu = self.vu
        path = vu.group
        outer, begin = self.groups.pop()
        vu.group = outer
        self.run.group_done(vu, path, time.perf_counter_ns() - begin)

    def sleep(self, seconds: float) -> str:
        try:
            self._await(asyncio.sleep(max(0.0, float(seconds))))
        except (_Interrupted, self._exit):
            return _INTERRUPTED
        return ""


def load_js(path: str, env: Mapping[str, str]) -> JsProgram:
    try:
        source = pathlib.Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptLoadError(f"{path}: {exc.strerror or exc}") from exc
    code, names = transform(source, path)
    program = JsProgram(path, code, names, {}, env)
    ctx = _JsContext(program, 0, env, _InitHost())  # the init context: options and exports
    opts = ctx.export_json("options") if "options" in names else None
    if opts is not None and not isinstance(opts, dict):
        raise ScriptLoadError(f"{path}: options must be an object")
    program.options = opts or {}
    return program


def load(path: str, env: Mapping[str, str]) -> JsProgram | PyProgram:
    """Load a ``.js`` (k6) or ``.py`` (Python scenario) file.

    Raises:
        ScriptLoadError: unreadable, a syntax error or unsupported construct (with the line).
    """
    # k6 run includes the system's environment in __ENV; -e values win.
    full = {**os.environ, **env}
    if path.endswith(".py"):
        return load_python(path, full)
    return load_js(path, full)

"""Test scripts: k6 JavaScript (the common subset, unchanged) and Python scenarios.

**JavaScript** runs in QuickJS (PyPI ``quickjs``, an ES2020 engine as a wheel). It has no
module loader we can hook, so a small pre-pass rewrites the module syntax k6 scripts
use into plain script code, line for line (line numbers in errors stay the script's):
``import http from 'k6/http'`` → ``const http = __k6mod("k6/http")``, ``import {a, b as
c} from 'k6'`` → ``const {a, b: c} = ...``, ``export const/let/var/function`` → the
declaration (its name recorded), ``export default function`` → a function named
``__k6default``. Importing any other module (``k6/ws``, ``k6/metrics``, remote URLs…)
is an error naming the line. The k6 API (``http.*``, ``check``, ``group``, ``sleep``,
``__VU``, ``__ITER``, ``__ENV``, ``open``) is a JS prelude over a few Python callables.

QuickJS is synchronous, asyncio is not: each JS VU owns one OS thread holding its own
QuickJS context. An iteration is handed to that thread; when the script calls
``http.get`` the thread submits the request to the event loop
(``run_coroutine_threadsafe``) and blocks until the response, which is then returned to
JS as a plain object. ``sleep`` blocks the thread on an Event that the end of the test
sets. Check and group results travel back with ``call_soon_threadsafe``, so all metric
state is still touched by the loop thread only. Cost: two thread hand-offs per request
and one per iteration (tens of µs, measured in bench/); the GIL means JS VUs share one
core — ``--workers`` is the way to scale scripts. The plain-URL path does not use any of
this.

**Python scenarios** are modules with ``options`` (a dict, k6's keys) and
``async def default(vu)`` (and optionally ``setup(vu)`` / ``teardown(vu, data)``, sync or
async); ``vu`` offers the same API: ``await vu.http.get(url, params)``,
``vu.check(res, {...})``, ``with vu.group("name"):``, ``await vu.sleep(s)``, ``vu.id``,
``vu.iteration``, ``vu.env``, ``vu.data``. They run on the event loop directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.util
import inspect
import json
import os
import pathlib
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcgw.loadtest import client, errors, runner

_PRELUDE_OFFSET = 100_000
"""The JS prelude starts at this line, so frames in it are told apart from the script's."""

_SUPPORTED_MODULES = ("k6", "k6/http")


class ScriptLoadError(errors.LoadError):
    """A script that cannot run: syntax, an unsupported module or construct; names the line."""


# ---------------------------------------------------------------------------- HTTP API


@dataclass(frozen=True, slots=True)
class Response:
    """What ``http.*`` returns (k6's Response, the common fields)."""

    status: int
    body: str
    headers: dict[str, str]
    url: str
    error: str
    error_code: int
    timings: dict[str, float]
    """k6's ``timings``: blocked, connecting, tls_handshaking, sending, waiting,
    receiving, duration; in ms."""
    method: str = "GET"

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


class Http:
    """``http.*`` for one VU: keep-alive connections per host, k6's tags and metrics."""

    def __init__(self, run: runner.Run, vu: runner.VU) -> None:
        self._run = run
        self._vu = vu
        self._targets: dict[str, client.Target] = {}
        self._plain: dict[tuple[str, str], bytes] = {}

    async def request(
        self,
        method: str,
        url: str,
        body: object = None,
        params: Mapping[str, Any] | None = None,
        *,
        group: str | None = None,
    ) -> Response:
        run, vu = self._run, self._vu
        params = params or {}
        method = method.upper()
        target = self._targets.get(url)
        if target is None:
            target = client.parse_target(url, run.opts.host_map)
            if len(self._targets) < 1024:
                self._targets[url] = target
        if not params and body is None:
            # The common call (``http.get(url)``): its bytes are the same every time.
            raw = self._plain.get((method, url))
            if raw is None:
                raw = client.build_request(target, method)
                if len(self._plain) < 1024:
                    self._plain[(method, url)] = raw
            timeout = run.opts.timeout_s
        else:
            headers = {
                canonical_header(str(k)): str(v)
                for k, v in dict(params.get("headers") or {}).items()
            }
            raw_body = _encode_body(body, headers)
            raw = client.build_request(target, method, tuple(headers.items()), raw_body)
            timeout = _timeout_s(params.get("timeout"), run.opts.timeout_s)
        key = (target.connect_host, target.connect_port)
        pool = vu.clients.setdefault(key, [])
        conn = (
            pool.pop()
            if pool
            else client.Client(target, timeout_s=timeout, capture=True, collect=run.collect)
        )
        if run.rps_interval:
            await run.rps_wait()
        try:
            result = await conn.request(raw, timeout)
        finally:
            pool.append(conn)
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
        run.record(result, vu, tags)
        if run.opts.throw and result.error:
            raise runner.ScriptError(f"{method} {url}: {result.error}")
        ms = 1e-6
        return Response(
            status=result.status,
            body=result.body.decode("utf-8", "replace"),
            headers={canonical_header(k): v for k, v in result.headers},
            url=url,
            error=result.error,
            error_code=1000 if result.error else 0,
            timings={
                "blocked": result.blocked * ms,
                "connecting": result.connecting * ms,
                "tls_handshaking": 0.0,
                "sending": result.sending * ms,
                "waiting": result.waiting * ms,
                "receiving": result.receiving * ms,
                "duration": result.duration * ms,
            },
            method=method,
        )

    async def get(self, url: str, params: Mapping[str, Any] | None = None) -> Response:
        return await self.request("GET", url, None, params)

    async def head(self, url: str, params: Mapping[str, Any] | None = None) -> Response:
        return await self.request("HEAD", url, None, params)

    async def post(
        self, url: str, body: object = None, params: Mapping[str, Any] | None = None
    ) -> Response:
        return await self.request("POST", url, body, params)

    async def put(
        self, url: str, body: object = None, params: Mapping[str, Any] | None = None
    ) -> Response:
        return await self.request("PUT", url, body, params)

    async def patch(
        self, url: str, body: object = None, params: Mapping[str, Any] | None = None
    ) -> Response:
        return await self.request("PATCH", url, body, params)

    async def delete(
        self, url: str, body: object = None, params: Mapping[str, Any] | None = None
    ) -> Response:
        return await self.request("DELETE", url, body, params)

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

    def __init__(self, run: runner.Run, vu: runner.VU, env: Mapping[str, str]) -> None:
        self._run = run
        self._vu = vu
        self.http = Http(run, vu)
        self.env = dict(env)

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
        except (asyncio.CancelledError, runner.ScriptError):
            raise
        except Exception as exc:
            raise runner.ScriptError(_py_where(exc, self.path)) from exc
        return result

    async def setup(self, run: runner.Run) -> object:
        fn = getattr(self.module, "setup", None)
        if fn is None:
            return None
        vu = runner.VU(0, run.scenarios[0], {"scenario": "setup", "group": "::setup"})
        return await self._call(fn, PyVu(run, vu, self.env))

    async def teardown(self, run: runner.Run, data: object) -> None:
        fn = getattr(self.module, "teardown", None)
        if fn is not None:
            vu = runner.VU(0, run.scenarios[0], {"scenario": "teardown"}, data=data)
            await self._call(fn, PyVu(run, vu, self.env), data)

    async def new_vu(self, run: runner.Run, vu: runner.VU) -> runner.VuCode:
        fn = getattr(self.module, vu.scen.exec_name)
        if not inspect.iscoroutinefunction(fn):
            raise ScriptLoadError(
                f"{self.path}: {vu.scen.exec_name}() must be `async def` (it awaits vu.http)"
            )
        return _PyVuCode(self, fn, PyVu(run, vu, {**self.env, **dict(vu.scen.env)}))


class _PyVuCode:
    def __init__(self, program: PyProgram, fn: Callable[..., Any], api: PyVu) -> None:
        self._program = program
        self._fn = fn
        self._api = api

    async def iteration(self, vu: runner.VU) -> None:
        await self._program._call(self._fn, self._api)

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
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise ScriptLoadError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from exc
    except Exception as exc:
        raise ScriptLoadError(_py_where(exc, path)) from exc
    return PyProgram(path, module, env)


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
var __k6 = (function () {
  function call(fn, args) {
    var out = JSON.parse(fn.apply(null, args));
    if (out.__error) { throw new Error(out.__error); }
    return out;
  }
  function response(r) {
    r.json = function (selector) {
      var doc = JSON.parse(this.body);
      if (selector) {
        var parts = String(selector).split('.');
        for (var i = 0; i < parts.length; i++) { doc = doc[parts[i]]; }
      }
      return doc;
    };
    r.html = function () { throw new Error('Response.html() is not supported by mcgw load'); };
    return r;
  }
  function params(p) { return JSON.stringify(p === undefined || p === null ? {} : p); }
  function body(b) { return JSON.stringify(b === undefined ? null : b); }
  function request(method, url, b, p) {
    return response(call(__py_request, [String(method), String(url), body(b), params(p)]));
  }
  var http = {
    get: function (url, p) { return request('GET', url, null, p); },
    head: function (url, p) { return request('HEAD', url, null, p); },
    options: function (url, b, p) { return request('OPTIONS', url, b, p); },
    post: function (url, b, p) { return request('POST', url, b, p); },
    put: function (url, b, p) { return request('PUT', url, b, p); },
    patch: function (url, b, p) { return request('PATCH', url, b, p); },
    del: function (url, b, p) { return request('DELETE', url, b, p); },
    request: function (method, url, b, p) { return request(method, url, b, p); },
    batch: function (reqs) {
      var out = call(__py_batch, [JSON.stringify(reqs)]);
      if (Array.isArray(out)) { return out.map(response); }
      for (var k in out) { out[k] = response(out[k]); }
      return out;
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
    var out = JSON.parse(__py_sleep(Number(seconds)));
    if (out.__error) { throw new Error(out.__error); }
  }
  function fail(message) { throw new Error(message === undefined ? 'fail' : String(message)); }
  var k6 = { check: check, group: group, sleep: sleep, fail: fail };
  var modules = { 'k6': k6, 'k6/http': http };
  return { modules: modules };
})();
function __k6mod(name) { return __k6.modules[name]; }
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
    """The test ended while this VU was blocked in a request or a sleep."""


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


class _JsContext:
    """One QuickJS context with the k6 prelude and the script, used from one thread."""

    def __init__(
        self,
        program: JsProgram,
        vu_id: int,
        env: Mapping[str, str],
        bridge: _Bridge | None,
    ) -> None:
        import quickjs  # type: ignore[import-untyped]

        self._quickjs = quickjs
        self.program = program
        self.ctx = quickjs.Context()
        self.ctx.set_max_stack_size(4 * 1024 * 1024)
        self.bridge = bridge
        for name in (
            "__py_request",
            "__py_batch",
            "__py_check",
            "__py_group_enter",
            "__py_group_exit",
            "__py_sleep",
        ):
            self.ctx.add_callable(name, getattr(self, "_" + name.removeprefix("__py_")))
        self.ctx.add_callable("__py_open", self._open)
        self.ctx.add_callable("__py_log", self._log)
        self.ctx.eval("\n" * _PRELUDE_OFFSET + _PRELUDE)
        self.ctx.set("__VU", vu_id)
        self.ctx.set("__ITER", 0)
        self.ctx.eval(f"var __ENV = {json.dumps(dict(env))};")
        try:
            self.ctx.eval(program.code)
        except quickjs.JSException as exc:
            raise ScriptLoadError(_js_error(exc, program.path, program.code)) from None

    # Callables never raise into QuickJS (its binding mishandles that): errors come back
    # as {"__error": ...} and the prelude throws them in JS.
    def _request(self, method: str, url: str, body: str, params: str) -> str:
        if self.bridge is None:
            return json.dumps({"__error": "http requests are not allowed in the init context"})
        return self.bridge.request(method, url, json.loads(body), json.loads(params))

    def _batch(self, reqs: str) -> str:
        if self.bridge is None:
            return json.dumps({"__error": "http requests are not allowed in the init context"})
        return self.bridge.batch(json.loads(reqs))

    def _check(self, name: str, ok: bool) -> None:
        if self.bridge is not None:
            self.bridge.check(str(name), bool(ok))

    def _group_enter(self, name: str) -> None:
        if self.bridge is not None:
            self.bridge.group_enter(name)

    def _group_exit(self) -> None:
        if self.bridge is not None:
            self.bridge.group_exit()

    def _sleep(self, seconds: float) -> str:
        if self.bridge is None:
            return json.dumps({"__error": "sleep() is not allowed in the init context"})
        return self.bridge.sleep(float(seconds))

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


class _Bridge:
    """The blocking side of a JS VU: runs on its thread, waits on the event loop."""

    def __init__(self, run: runner.Run, vu: runner.VU) -> None:
        self.run = run
        self.vu = vu
        self.loop = run.loop
        self.http = Http(run, vu)
        self.groups: list[tuple[str, int]] = []
        self.group = ""
        self.stop = threading.Event()
        self.pending: concurrent.futures.Future[Any] | None = None

    def _wait(self, coro: Awaitable[Any]) -> Any:
        if self.stop.is_set():
            raise _Interrupted
        fut: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(
            coro,  # type: ignore[arg-type]
            self.loop,
        )
        self.pending = fut
        try:
            return fut.result()
        except concurrent.futures.CancelledError:
            raise _Interrupted from None
        finally:
            self.pending = None

    def request(self, method: str, url: str, body: object, params: object) -> str:
        try:
            res = self._wait(
                self.http.request(
                    method,
                    url,
                    body,
                    params if isinstance(params, Mapping) else None,
                    group=self.group,
                )
            )
        except _Interrupted:
            return json.dumps({"__error": "iteration interrupted: the test ended"})
        except (runner.ScriptError, errors.LoadError) as exc:
            return json.dumps({"__error": str(exc)})
        return json.dumps(res.to_js())

    def batch(self, reqs: object) -> str:
        try:
            res = self._wait(self.http.batch(reqs, group=self.group))
        except _Interrupted:
            return json.dumps({"__error": "iteration interrupted: the test ended"})
        except (runner.ScriptError, errors.LoadError) as exc:
            return json.dumps({"__error": str(exc)})
        if isinstance(res, dict):
            return json.dumps({k: v.to_js() for k, v in res.items()})
        return json.dumps([r.to_js() for r in res])

    def check(self, name: str, ok: bool) -> None:
        vu = self.vu
        group = self.group

        def record() -> None:
            vu.group = group
            self.run.check(vu, name, ok)

        self.loop.call_soon_threadsafe(record)

    def group_enter(self, name: str) -> None:
        self.groups.append((self.group, time.perf_counter_ns()))
        self.group = f"{self.group}::{name}"

    def group_exit(self) -> None:
        path = self.group
        outer, begin = self.groups.pop()
        self.group = outer
        took = time.perf_counter_ns() - begin
        self.loop.call_soon_threadsafe(self.run.group_done, self.vu, path, took)

    def sleep(self, seconds: float) -> str:
        if self.stop.wait(max(0.0, seconds)):
            return json.dumps({"__error": "iteration interrupted: the test ended"})
        return "{}"


@dataclass
class JsProgram:
    """A k6 script, transformed; each VU evaluates it in its own context and thread."""

    path: str
    code: str
    export_names: tuple[str, ...]
    options: Mapping[str, object]
    env: Mapping[str, str] = field(default_factory=dict)

    def exports(self) -> frozenset[str]:
        return frozenset(self.export_names)

    async def _in_thread(
        self, run: runner.Run, fn: Callable[[], object], timeout_s: float
    ) -> object:
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="k6-setup")
        try:
            return await asyncio.wait_for(run.loop.run_in_executor(pool, fn), timeout_s)
        finally:
            pool.shutdown(wait=False)

    async def setup(self, run: runner.Run) -> object:
        if "setup" not in self.export_names:
            return None
        vu = runner.VU(0, run.scenarios[0], {"scenario": "setup", "group": "::setup"})

        def go() -> object:
            ctx = _JsContext(self, 0, self.env, _Bridge(run, vu))
            return json.loads(ctx.call("setup", "null"))

        return await self._in_thread(run, go, run.opts.setup_timeout_s)

    async def teardown(self, run: runner.Run, data: object) -> None:
        if "teardown" not in self.export_names:
            return
        vu = runner.VU(0, run.scenarios[0], {"scenario": "teardown", "group": "::teardown"})

        def go() -> object:
            ctx = _JsContext(self, 0, self.env, _Bridge(run, vu))
            return ctx.call("teardown", json.dumps(data))

        await self._in_thread(run, go, run.opts.setup_timeout_s)

    async def new_vu(self, run: runner.Run, vu: runner.VU) -> runner.VuCode:
        code = _JsVu(self, run, vu)
        await code.start()
        return code


class _JsVu:
    def __init__(self, program: JsProgram, run: runner.Run, vu: runner.VU) -> None:
        self.program = program
        self.run = run
        self.vu = vu
        self.thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"vu-{vu.id}")
        self.bridge = _Bridge(run, vu)
        self.ctx: _JsContext | None = None
        self.data_json = json.dumps(vu.data)

    async def start(self) -> None:
        env = {**self.program.env, **dict(self.vu.scen.env)}

        def init() -> None:
            self.ctx = _JsContext(self.program, self.vu.id, env, self.bridge)

        await self.run.loop.run_in_executor(self.thread, init)

    def _iterate(self, iteration: int) -> None:
        assert self.ctx is not None
        self.ctx.ctx.set("__ITER", iteration)
        self.bridge.group = ""
        self.ctx.call(self.vu.scen.exec_name, self.data_json)

    async def iteration(self, vu: runner.VU) -> None:
        try:
            await self.run.loop.run_in_executor(self.thread, self._iterate, vu.iteration)
        except asyncio.CancelledError:
            # The thread cannot be cancelled: make its next request or sleep fail fast.
            self.bridge.stop.set()
            pending = self.bridge.pending
            if pending is not None:
                pending.cancel()
            raise

    def close(self) -> None:
        self.bridge.stop.set()
        pending = self.bridge.pending
        if pending is not None:
            pending.cancel()
        self.thread.shutdown(wait=False)


def load_js(path: str, env: Mapping[str, str]) -> JsProgram:
    try:
        source = pathlib.Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptLoadError(f"{path}: {exc.strerror or exc}") from exc
    code, names = transform(source, path)
    program = JsProgram(path, code, names, {}, env)
    ctx = _JsContext(program, 0, env, None)  # the init context: options and exports
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

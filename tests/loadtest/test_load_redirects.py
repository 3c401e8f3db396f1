"""Redirects as k6 follows them: each hop measured, the final URL and status returned,
301/302/303 turning POST into a bodiless GET, 307/308 repeating it, cross-host hops,
cookies set along the chain, the limit (global and per request) — JS and Python scripts
against a loopback server that redirects by path; the pure rules first."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import loadtest_threaded
import pytest

from mcgw.cli import main as cli
from mcgw.loadtest import redirects


def test_method_rules_follow_go() -> None:
    for status in (301, 302, 303):
        assert redirects.next_method("POST", status) == ("GET", False)
        assert redirects.next_method("PUT", status) == ("GET", False)
        assert redirects.next_method("HEAD", status) == ("HEAD", False)
    for status in (307, 308):
        assert redirects.next_method("POST", status) == ("POST", True)


def test_location_resolves_and_drops_fragment() -> None:
    assert redirects.resolve("http://a.test/x/y?q=1", "z#frag") == "http://a.test/x/z"
    assert redirects.resolve("http://a.test/x/y", "/top") == "http://a.test/top"
    assert redirects.resolve("http://a.test/", "http://b.test/p") == "http://b.test/p"


def test_sensitive_headers_stay_on_the_same_domain() -> None:
    headers = {
        "Authorization": "Bearer t",
        "X-Keep": "1",
        "Content-Type": "text/plain",
        "Cookie": "mine=1",
    }
    same = redirects.next_headers(headers, "http://a.test/", "http://api.a.test/", True)
    assert same["Authorization"] == "Bearer t" and same["Content-Type"] == "text/plain"
    assert "Cookie" not in same  # k6 makes it again from the jar and params.cookies
    other = redirects.next_headers(headers, "http://a.test/", "http://b.test/", False)
    assert "Authorization" not in other and "Content-Type" not in other
    assert other["X-Keep"] == "1" and other["Referer"] == "http://a.test/"
    down = redirects.next_headers({}, "https://a.test/", "http://a.test/", False)
    assert "Referer" not in down  # no Referer from https to http


@dataclass
class Seen:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class RedirectServer:
    """``/go/CODE?to=URL[&cookie=n=v]`` answers CODE with ``Location: URL`` (none when
    ``to`` is missing); ``/chain/N`` redirects (302) to ``/chain/N-1`` down to 0; anything
    else is a 200 echoing method and body. Every request is recorded."""

    port: int = 0
    seen: list[Seen] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (head := await loadtest_threaded.read_head(reader)) is not None:
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ")
                headers = {}
                for line in lines[1:]:
                    name, colon, value = line.partition(":")
                    if colon:
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                parts = urllib.parse.urlsplit(target)
                query = dict(urllib.parse.parse_qsl(parts.query))
                self.seen.append(Seen(method, parts.path, body, headers))
                out_headers: list[tuple[str, str]] = []
                status, payload = 200, json.dumps({"method": method, "body": body.decode()})
                if parts.path.startswith("/go/"):
                    status = int(parts.path[4:])
                    if "to" in query:
                        out_headers.append(("Location", query["to"]))
                    payload = ""
                elif parts.path.startswith("/chain/") and parts.path != "/chain/0":
                    status = 302
                    out_headers.append(("Location", f"/chain/{int(parts.path[7:]) - 1}"))
                    payload = ""
                if "cookie" in query:
                    out_headers.append(("Set-Cookie", f"{query['cookie']}; Path=/"))
                data = payload.encode()
                out = [f"HTTP/1.1 {status} X", f"Content-Length: {len(data)}"]
                out += [f"{k}: {v}" for k, v in out_headers]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + data)
                await writer.drain()
        finally:
            writer.close()


@contextlib.contextmanager
def serving(count: int = 1) -> Iterator[list[RedirectServer]]:
    """``count`` redirect servers, each on its own thread and loop (the CLI runs its own)."""
    servers = [RedirectServer() for _ in range(count)]
    with contextlib.ExitStack() as stack:
        for server in servers:
            server.port = stack.enter_context(loadtest_threaded.handling(server.handle))
        yield servers


def _load(
    tmp_path: pathlib.Path, name: str, text: str, *flags: str
) -> tuple[int, dict[str, object], str]:
    path = tmp_path / name
    path.write_text(text)
    export = tmp_path / "summary.json"
    rc = cli.main(["load", "--summary-export", str(export), *flags, str(path)])
    return rc, json.loads(export.read_text()), str(path)


def _metric(summary: dict[str, object], name: str) -> dict[str, float]:
    metrics = summary["metrics"]
    assert isinstance(metrics, dict)
    return metrics[name]  # type: ignore[no-any-return]


JS_CODES = """\
import http from 'k6/http';
import { check } from 'k6';
export const options = { iterations: 1, thresholds: { checks: ['rate==1'] } };
const B = 'BASE';
export default function () {
  for (const code of [301, 302, 303]) {
    const r = http.post(`${B}/go/${code}?to=${encodeURIComponent(B + '/final')}`, 'payload',
                        { headers: { 'Content-Type': 'text/plain' } });
    check(r, {
      [`${code} ends at /final`]: (x) => x.status === 200 && x.url === `${B}/final`,
      [`${code} turns POST into GET`]: (x) => x.json().method === 'GET' && x.json().body === '',
      [`${code} request is the final one`]: (x) => x.request.method === 'GET',
    });
  }
  for (const code of [307, 308]) {
    const r = http.post(`${B}/go/${code}?to=${encodeURIComponent(B + '/final')}`, 'payload');
    check(r, {
      [`${code} keeps method and body`]: (x) => x.json().method === 'POST'
                                                 && x.json().body === 'payload',
    });
  }
  const plain = http.get(`${B}/go/302`);
  check(plain, { '3xx without Location is returned': (x) => x.status === 302 });
  const other = http.get(`${B}/go/300?to=${encodeURIComponent(B + '/final')}`);
  check(other, { '300 is not followed': (x) => x.status === 300 && x.url.indexOf('/go/300') > 0 });
  const [batched] = http.batch([['GET', `${B}/chain/1`]]);
  check(batched, { 'batch follows too': (x) => x.status === 200 && x.url === `${B}/chain/0` });
}
"""


def test_js_redirect_codes_and_methods(tmp_path: pathlib.Path) -> None:
    with serving() as (server,):
        base = f"http://127.0.0.1:{server.port}"
        rc, summary, _ = _load(tmp_path, "codes.js", JS_CODES.replace("BASE", base))
    assert rc == 0, summary
    assert _metric(summary, "checks")["value"] == 1
    # Each hop is a request: 5 redirected requests of 2 hops each, 2 single ones, a
    # batched one of 2 hops.
    assert _metric(summary, "http_reqs")["count"] == 14 == len(server.seen)
    finals = [s for s in server.seen if s.path == "/final"]
    assert [f.method for f in finals] == ["GET", "GET", "GET", "POST", "POST"]
    assert [f.body for f in finals] == [b"", b"", b"", b"payload", b"payload"]
    assert "content-type" not in finals[0].headers  # dropped with the body
    assert finals[0].headers["referer"].startswith(f"{base}/go/301")


JS_CHAIN = """\
import http from 'k6/http';
import { check } from 'k6';
export const options = { iterations: 1, maxRedirects: 3, thresholds: { checks: ['rate==1'] } };
export default function () {
  check(http.get('BASE/chain/3'), { 'three hops are fine': (r) => r.status === 200 });
  const cut = http.get('BASE/chain/5');
  check(cut, {
    'past the limit: the last 3xx': (r) => r.status === 302 && r.url === 'BASE/chain/2',
    'its Location': (r) => r.headers['Location'] === '/chain/1',
  });
  const none = http.get('BASE/chain/2', { redirects: 0 });
  check(none, { 'redirects: 0 returns the first': (r) => r.status === 302 });
  const more = http.get('BASE/chain/6', { redirects: 6 });
  check(more, { 'params.redirects beats the option': (r) => r.status === 200 });
}
"""


def test_js_redirect_limits(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serving() as (server,):
        base = f"http://127.0.0.1:{server.port}"
        rc, summary, _ = _load(tmp_path, "chain.js", JS_CHAIN.replace("BASE", base))
    err = capsys.readouterr().err
    assert rc == 0, summary
    assert _metric(summary, "checks")["value"] == 1
    # 4 + 4 (3 redirects followed, the 4th response returned) + 1 + 7 requests.
    assert _metric(summary, "http_reqs")["count"] == 16 == len(server.seen)
    # k6 warns when the global limit cut a chain, not when params.redirects did.
    # (k6 counts the requests made so far: 4 with maxRedirects 3.)
    assert err.count("Stopped after 4 redirects and returned the redirection") == 1
    assert f"url={base}/chain/5" in err


def test_cli_max_redirects_flag_wins(tmp_path: pathlib.Path) -> None:
    with serving() as (server,):
        base = f"http://127.0.0.1:{server.port}"
        text = (
            "import http from 'k6/http';\n"
            "export const options = { iterations: 1, maxRedirects: 0 };\n"
            f"export default function () {{ http.get('{base}/chain/2'); }}\n"
        )
        rc, summary, _ = _load(tmp_path, "flag.js", text, "--max-redirects", "5")
    assert rc == 0
    assert [s.path for s in server.seen] == ["/chain/2", "/chain/1", "/chain/0"]
    assert _metric(summary, "http_reqs")["count"] == 3


PY_CROSS = """\
import urllib.parse

options = {"iterations": 1, "hosts": {"other.test": "127.0.0.1:OTHER"}}
B = "BASE"

async def default(vu):
    to = urllib.parse.quote("http://other.test/final?cookie=b=2")
    res = await vu.http.get(
        f"{B}/go/302?cookie=a=1&to={to}",
        {"headers": {"Authorization": "Bearer secret", "X-Trace": "t1"}},
    )
    vu.check(res, {
        "final status": lambda r: r.status == 200,
        "final url": lambda r: r.url == "http://other.test/final?cookie=b=2",
        "redirected": lambda r: r.redirected,
    })
    # Cookies set along the chain are in the jar, each for its own host.
    await vu.http.get(f"{B}/final")
    await vu.http.get("http://other.test/final")
"""


def test_python_cross_host_redirect_with_cookies(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(2) as (first, other):
        text = PY_CROSS.replace("BASE", f"http://127.0.0.1:{first.port}")
        rc, summary, _ = _load(tmp_path, "cross.py", text.replace("OTHER", str(other.port)))
    assert rc == 0, capsys.readouterr().out
    assert _metric(summary, "checks")["value"] == 1
    assert _metric(summary, "http_reqs")["count"] == 4
    hop = other.seen[0]
    assert hop.headers["host"] == "other.test"
    assert "authorization" not in hop.headers  # not to another host
    assert hop.headers["x-trace"] == "t1"
    assert "cookie" not in hop.headers  # a=1 belongs to 127.0.0.1
    assert first.seen[1].headers["cookie"] == "a=1"
    assert other.seen[1].headers["cookie"] == "b=2"


def test_redirects_in_json_output_are_samples_per_hop(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "out.ndjson"
    with serving() as (server,):
        base = f"http://127.0.0.1:{server.port}"
        text = (
            "import http from 'k6/http';\n"
            "export const options = { iterations: 1 };\n"
            f"export default function () {{ http.get('{base}/chain/2'); }}\n"
        )
        rc, _, _ = _load(tmp_path, "json.js", text, "--out", f"json={out}")
    assert rc == 0
    points = [json.loads(line) for line in out.read_text().splitlines()]
    reqs = [p for p in points if p["metric"] == "http_reqs" and p["type"] == "Point"]
    assert [(p["data"]["tags"]["url"], p["data"]["tags"]["status"]) for p in reqs] == [
        (f"{base}/chain/2", "302"),
        (f"{base}/chain/1", "302"),
        (f"{base}/chain/0", "200"),
    ]


PY_REPEAT = """\
options = {"iterations": 3, "vus": 1}

async def default(vu):
    # The same plain GET each iteration: from the second on it takes the kept-alive fast
    # path (Http._send), whose protocol callback hands the redirect to a task.
    res = await vu.http.get("BASE/chain/2")
    vu.check(res, {"followed": lambda r: r.status == 200 and r.url == "BASE/chain/0"})
"""


def test_python_redirect_on_the_fast_path(tmp_path: pathlib.Path) -> None:
    with serving() as (server,):
        base = f"http://127.0.0.1:{server.port}"
        rc, summary, _ = _load(tmp_path, "repeat.py", PY_REPEAT.replace("BASE", base))
    assert rc == 0, summary
    checks = _metric(summary, "checks")
    assert (checks["passes"], checks["fails"]) == (3, 0)
    assert _metric(summary, "http_reqs")["count"] == 9 == len(server.seen)

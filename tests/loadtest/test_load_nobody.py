"""Responses without a body whatever their framing headers say: the answer to a HEAD
request (a real server sends the GET's Content-Length and no body), 204 and 304 (RFC 9110
§6.4.1), and 1xx interim responses before the final one. The client must complete each
at the end of its head, not wait for a body until the request's timeout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import time
from collections.abc import Iterator

import loadtest_threaded
import pytest

from mcgw.cli import main as cli
from mcgw.loadtest import client, metrics, options, runner, script

BODY = b"hello, body\n"


UNFRAMED_HEAD = {
    "/unframed": b"HTTP/1.1 200 OK\r\nX-Method: HEAD\r\n\r\n",
    "/unframed/keep-alive-1.0": b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n",
    "/unframed/close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
    "/unframed/1.0": b"HTTP/1.0 200 OK\r\nX-Method: HEAD\r\n\r\n",
}
"""Answers to HEAD without Content-Length or Transfer-Encoding (a HEAD response has no
body whatever it announces, RFC 9110 §9.3.2; RFC 9112 §6.3), by target. The server
closes after an HTTP/1.0 response without keep-alive (and after ``Connection: close``,
as the client must then not send another request)."""


class NoBodyServer:
    """Answers HEAD with GET's head (Content-Length of a body it does not send), ``/204``
    and ``/304`` with a Content-Length and no body, ``/302`` with a redirect to ``/``,
    ``/103`` with an Early Hints interim response before the 200 (``/103/apart``: sent
    20 ms before it), anything else with 200 and :data:`BODY`."""

    def __init__(self) -> None:
        self.port = 0
        self.seen: list[tuple[str, str]] = []
        """(method, target) of each request."""
        self.connections = 0
        self.per_connection: list[int] = []
        """How many requests each connection carried, by connection."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.per_connection.append(0)
        mine = len(self.per_connection) - 1
        try:
            while (head := await loadtest_threaded.read_head(reader)) is not None:
                method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
                self.seen.append((method, target))
                self.per_connection[mine] += 1
                length = f"Content-Length: {len(BODY)}\r\n"
                if target in ("/204", "/304"):
                    out = f"HTTP/1.1 {target[1:]} X\r\n{length}\r\n".encode()
                elif target == "/302":
                    out = b"HTTP/1.1 302 Found\r\nLocation: /\r\nContent-Length: 0\r\n\r\n"
                elif method == "HEAD" and target in UNFRAMED_HEAD:
                    out = UNFRAMED_HEAD[target]
                    if out.startswith(b"HTTP/1.0") and b"keep-alive" not in out:
                        writer.write(out)  # the connection ends with the response
                        await writer.drain()
                        break
                elif method == "HEAD":
                    out = f"HTTP/1.1 200 OK\r\n{length}X-Method: HEAD\r\n\r\n".encode()
                else:
                    out = f"HTTP/1.1 200 OK\r\n{length}\r\n".encode() + BODY
                    if target.startswith("/103"):
                        hints = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
                        if target == "/103/apart":  # the final response in a later read
                            writer.write(hints)
                            await writer.drain()
                            await asyncio.sleep(0.02)
                        else:
                            out = hints + out
                writer.write(out)
                await writer.drain()
                if b"Connection: close" in out:
                    break
        finally:
            writer.close()


@contextlib.contextmanager
def serving() -> Iterator[NoBodyServer]:
    """The server on its own thread and loop (the load runner runs its own)."""
    server = NoBodyServer()
    with loadtest_threaded.handling(server.handle) as port:
        server.port = port
        yield server


TIMEOUT_S = 2.0
"""Every request's timeout here: a response waited for until then fails its test (the
bug this file guards against) instead of hanging the suite."""


@pytest.mark.parametrize(
    ("path", "reused"),
    [("/", True), ("/unframed", True), ("/unframed/keep-alive-1.0", True),
     ("/unframed/close", False), ("/unframed/1.0", False)],
)  # fmt: skip
def test_head_completes_at_the_end_of_its_head_and_keeps_the_connection(
    path: str, reused: bool
) -> None:
    # A HEAD response ends with its head: the GET's Content-Length (``/``) announces a
    # body that never comes, and neither a missing Content-Length nor a missing
    # Transfer-Encoding (``/unframed…``) means "until the connection closes". The
    # connection is reused unless the response says otherwise (HTTP/1.1 "Connection:
    # close", HTTP/1.0 without "keep-alive"). Both the coroutine and the fast path.
    async def go(port: int) -> list[client.Result]:
        target = client.parse_target(f"http://127.0.0.1:{port}{path}")
        raw = client.build_request(target, "HEAD")
        head = client.Client(target, raw, timeout_s=TIMEOUT_S, head=True)
        try:
            results = [await head.request(), await head.request()]
            fast = head.send(raw)
            assert (fast is not None) == reused, "a kept-alive connection takes the fast path"
            results.append(await fast if fast is not None else await head.request())
        finally:
            head.close()
        return results

    with serving() as server:
        start = time.monotonic()
        results = asyncio.run(go(server.port))
        took = time.monotonic() - start
    assert [(r.status, r.error) for r in results] == [(200, "")] * 3
    assert took < TIMEOUT_S / 2
    assert server.seen == [("HEAD", path)] * 3
    assert server.per_connection == ([3] if reused else [1, 1, 1])


def test_scripts_and_url_mode_reuse_the_connection_after_an_unframed_head(
    tmp_path: pathlib.Path,
) -> None:
    text = PY_UNFRAMED.replace("BASE", "http://127.0.0.1:{port}")
    with serving() as server:
        summary, _ = _run(tmp_path, "unframed.py", text.replace("{port}", str(server.port)))
        rc = cli.main(
            ["load", "-X", "HEAD", "--timeout", f"{TIMEOUT_S}s", "--iterations", "4",
             "--vus", "1", "--sleep", "0", f"http://127.0.0.1:{server.port}/unframed"]
        )  # fmt: skip
    assert rc == 0
    failed = summary.metric("http_req_failed")
    assert failed is not None and failed.get("passes") == 0
    # The script's 3 HEADs on one connection, then URL mode's 4 on one.
    assert server.per_connection == [3, 4]


PY_UNFRAMED = """\
options = {"iterations": 1}

async def default(vu):
    for _ in range(3):
        await vu.http.head("BASE/unframed")
"""


JS = """\
import http from 'k6/http';
import { check } from 'k6';
export const options = { iterations: 2, thresholds: { checks: ['rate==1'] } };
const B = 'BASE';
export default function () {
  const checks = {};
  for (let i = 0; i < 3; i++) {  // the 2nd and 3rd on the kept-alive fast path
    const h = http.head(`${B}/`);
    checks[`head ${i}`] = h.status === 200 && !h.body && h.headers['X-Method'] === 'HEAD'
      && h.headers['Content-Length'] === '12';
  }
  checks['get after head'] = http.get(`${B}/`).body === 'hello, body\\n';
  checks['request HEAD'] = http.request('HEAD', `${B}/`, null, { tags: { t: 'x' } }).status === 200;
  checks['head with params'] = http.head(`${B}/`, { headers: { 'X-A': '1' } }).status === 200;
  const [b1, b2, b3] = http.batch([['HEAD', `${B}/`], ['GET', `${B}/`],
                                   { method: 'HEAD', url: `${B}/` }]);
  checks['batch'] = b1.status === 200 && b2.body === 'hello, body\\n' && b3.status === 200;
  checks['204'] = http.get(`${B}/204`).status === 204;
  checks['304'] = http.get(`${B}/304`).status === 304;
  checks['get after 204/304'] = http.get(`${B}/`).body === 'hello, body\\n';
  for (const path of ['/103', '/103/apart']) {
    const r = http.get(`${B}${path}`);
    checks[`${path} then 200`] = r.status === 200 && r.body === 'hello, body\\n'
      && r.headers['Link'] === undefined && r.headers['Content-Length'] === '12';
    checks[`get after ${path}`] = http.get(`${B}/`).body === 'hello, body\\n';
  }
  for (const [name, ok] of Object.entries(checks)) check(null, { [name]: () => ok });
}
"""

PY = """\
options = {"iterations": 2, "thresholds": {"checks": ["rate==1"]}}
B = "BASE"

async def default(vu):
    for i in range(3):
        h = await vu.http.head(f"{B}/")
        vu.check(h, {f"head {i}": lambda r: r.status == 200 and r.body == ""
                                            and r.headers["X-Method"] == "HEAD"})
    g = await vu.http.get(f"{B}/")
    vu.check(g, {"get after head": lambda r: r.status == 200 and r.body == "hello, body\\n"})
    r = await vu.http.request("HEAD", f"{B}/", None, {"tags": {"t": "x"}})
    vu.check(r, {"request HEAD": lambda r: r.status == 200})
    b = await vu.http.batch([["HEAD", f"{B}/"], ["GET", f"{B}/204"], ["GET", f"{B}/304"]])
    vu.check(b, {"batch": lambda b: [x.status for x in b] == [200, 204, 304]})
    for path in ("/103", "/103/apart"):
        g = await vu.http.get(f"{B}{path}")
        vu.check(g, {f"{path} then 200": lambda r: r.status == 200 and r.body == "hello, body\\n"
                                                   and "Link" not in r.headers})
"""


def _run(tmp_path: pathlib.Path, name: str, text: str) -> tuple[metrics.Summary, float]:
    path = tmp_path / name
    path.write_text(text)
    program = script.load(str(path), {})
    opts = options.with_script_options(
        options.LoadOptions(url="", script=str(path), vus=1, timeout_s=TIMEOUT_S),
        program.options,
        frozenset({"vus", "timeout_s"}),
    )
    start = time.monotonic()
    summary = runner.run_sync(opts, None, program)
    return summary, time.monotonic() - start


@pytest.mark.parametrize(("name", "text"), [("nobody.js", JS), ("nobody.py", PY)])
def test_scripts_head_204_304_and_1xx_do_not_wait_for_a_body(
    tmp_path: pathlib.Path, name: str, text: str
) -> None:
    with serving() as server:
        summary, took = _run(
            tmp_path, name, text.replace("BASE", f"http://127.0.0.1:{server.port}")
        )
    checks = summary.metric("checks")
    failed = summary.metric("http_req_failed")
    assert checks is not None and failed is not None
    assert (checks.get("fails"), failed.get("passes")) == (0, 0), summary
    assert checks.get("passes", 0) > 0
    assert took < TIMEOUT_S
    assert ("HEAD", "/") in server.seen


def test_url_mode_head(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "summary.json"
    with serving() as server:
        start = time.monotonic()
        rc = cli.main(
            ["load", "-X", "HEAD", "--timeout", f"{TIMEOUT_S}s", "--iterations", "5",
             "--vus", "1", "--sleep", "0", "--summary-export", str(export), f"http://127.0.0.1:{server.port}/"]
        )  # fmt: skip
        took = time.monotonic() - start
    assert rc == 0, capsys.readouterr().out
    assert server.seen == [("HEAD", "/")] * 5
    assert server.connections == 1
    assert took < TIMEOUT_S
    assert json.loads(export.read_text())["metrics"]["http_req_failed"]["passes"] == 0


def test_url_mode_measures_a_redirect_without_following_it(tmp_path: pathlib.Path) -> None:
    # k6 needs a script; mcgw's URL mode measures exactly the URL given: a 3xx is the
    # response (not followed), and an expected one, as k6's default 200–399 has it.
    out = tmp_path / "out.ndjson"
    export = tmp_path / "summary.json"
    with serving() as server:
        rc = cli.main(
            ["load", "--iterations", "3", "--vus", "1", "--sleep", "0", "--timeout", "2s",
             "--out", f"json={out}", "--summary-export", str(export),
             f"http://127.0.0.1:{server.port}/302"]
        )  # fmt: skip
    assert rc == 0
    assert server.seen == [("GET", "/302")] * 3
    m = json.loads(export.read_text())["metrics"]
    assert m["http_req_failed"]["passes"] == 0 and m["http_reqs"]["count"] == 3
    points = [json.loads(line) for line in out.read_text().splitlines()]
    tags = [
        p["data"]["tags"]
        for p in points
        if p["type"] == "Point" and p["metric"] == "http_req_duration"
    ]
    assert [(t["status"], t["expected_response"]) for t in tags] == [("302", "true")] * 3

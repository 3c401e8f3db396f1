"""JS ``http.get(url)`` on the connection's fast path (Http._send's future, resolved in the
protocol callback): the same responses, redirects, failures and interruption as the
coroutine path it replaces for a plain request seen before."""

from __future__ import annotations

import asyncio
import pathlib
import socket
import threading

import loadtest_server as fake
import loadtest_threaded as threaded
import pytest

from mcgw.loadtest import metrics, options, runner, script


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> list[asyncio.Future[object]]:
    """The futures Http._send handed out (wrapped, not replaced: the requests are real),
    to tell that the fast path was taken."""
    taken: list[asyncio.Future[object]] = []
    real = script.Http._send

    def spy(self: script.Http, method: str, url: str) -> asyncio.Future[script.Response] | None:
        fut = real(self, method, url)
        if fut is not None:
            taken.append(fut)  # type: ignore[arg-type]
        return fut

    monkeypatch.setattr(script.Http, "_send", spy)
    return taken


def _run(tmp_path: pathlib.Path, body: str, **kwargs: object) -> metrics.Summary:
    path = tmp_path / "fast.js"
    path.write_text("import http from 'k6/http';\nimport { check, sleep } from 'k6';\n" + body)
    program = script.load(str(path), {})
    opts = options.with_script_options(
        options.LoadOptions(url="", script=str(path), **kwargs),  # type: ignore[arg-type]
        program.options,
        frozenset(kwargs),
    )
    return runner.run_sync(opts, None, program)


def _checks(summary: metrics.Summary) -> tuple[object, object]:
    checks = summary.metric("checks")
    assert checks is not None
    return checks.get("passes"), checks.get("fails")


def test_repeated_get_takes_the_fast_path_with_k6_fields(
    tmp_path: pathlib.Path, fast: list[asyncio.Future[object]]
) -> None:
    with threaded.serving() as server:
        url = f"http://127.0.0.1:{server.port}/"
        summary = _run(
            tmp_path,
            "export default function () {\n"
            "  for (var i = 0; i < 5; i++) {\n"
            f"    var r = http.get('{url}');\n"
            "    var t = r.timings;\n"
            "    check(r, {\n"
            "      status: (r) => r.status === 200,\n"
            "      body: (r) => r.json().ok === true,\n"
            f"      url: (r) => r.url === '{url}' && r.request.method === 'GET',\n"
            "      header: (r) => r.headers['Content-Type'] === 'application/json',\n"
            "      timings: () => t.duration > 0 && Math.abs(t.duration - (t.sending"
            " + t.waiting + t.receiving)) < 1e-6 && t.connecting >= 0,\n"
            "    });\n"
            "  }\n"
            "}\n",
            vus=1,
            iterations=3,
        )
    assert _checks(summary) == (75, 0)
    reqs = summary.metric("http_reqs")
    assert reqs is not None and reqs.get("count") == 15 == server.requests
    assert server.connections == 1  # kept alive throughout
    assert len(fast) == 14  # every request but the first (no connection yet)
    failed = summary.metric("http_req_failed")
    assert failed is not None and failed.get("passes") == 0


def test_repeated_get_follows_a_redirect(
    tmp_path: pathlib.Path, fast: list[asyncio.Future[object]]
) -> None:
    with threaded.serving() as final:
        to = f"http://127.0.0.1:{final.port}/"
        moved = fake.Behaviour(status=302, body=b"", headers=(("Location", to),))
        with threaded.serving(moved) as server:
            url = f"http://127.0.0.1:{server.port}/"
            summary = _run(
                tmp_path,
                "export default function () {\n"
                f"  var r = http.get('{url}');\n"
                "  check(r, {\n"
                "    'final status': (r) => r.status === 200,\n"
                f"    'final url': (r) => r.url === '{to}',\n"
                "    'final body': (r) => r.json().ok === true,\n"
                "  });\n"
                "}\n",
                vus=1,
                iterations=3,
            )
    assert _checks(summary) == (9, 0)
    assert server.requests == 3 and final.requests == 3
    assert len(fast) >= 2  # the later iterations' first hops (a task follows the chain)
    reqs = summary.metric("http_reqs")
    assert reqs is not None and reqs.get("count") == 6  # each hop is a request


@pytest.mark.parametrize("throw", [False, True])
def test_connection_closed_then_refused_is_reported_as_on_the_general_path(
    tmp_path: pathlib.Path, fast: list[asyncio.Future[object]], throw: bool
) -> None:
    # A server that answers one request, stops listening, and closes the kept-alive
    # connection without a byte when the next request comes: the fast path sends it,
    # retries once on a new connection (refused) and reports that as the general path
    # (the third get, with no connection left) does.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def serve_once() -> None:
        conn, _ = listener.accept()
        listener.close()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            conn.recv(65536)  # the second request: closed unanswered

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/"
    outcome = (
        "function get() { try { http.get(URL); return ''; }"
        " catch (e) { return String(e.message); } }\n"
        if throw
        else "function get() { var r = http.get(URL); return r.status + ' ' + r.error"
        " + ' ' + r.error_code; }\n"
    )
    try:
        summary = _run(
            tmp_path,
            f"var URL = '{url}';\n" + outcome + "export default function () {\n"
            "  var first = http.get(URL);\n"
            "  var second = get();\n"
            "  var third = get();\n"
            "  check(first, { 'answered': (r) => r.status === 200 && r.body === 'ok' });\n"
            "  check(second, { 'failure reported': (m) => m.length > 0 && m === third });\n"
            + (
                "  check(second, { 'names the url': (m) => m.indexOf(URL) >= 0 });\n"
                if throw
                else "  check(second, { 'status 0': (m) => m.indexOf('0 ') === 0 });\n"
            )
            + "}\n",
            vus=1,
            iterations=1,
            throw=throw,
        )
    finally:
        thread.join(5)
    assert _checks(summary) == (3, 0)
    assert len(fast) == 1  # the second get
    failed = summary.metric("http_req_failed")
    assert failed is not None and failed.get("passes") == 2


def test_fast_path_request_in_flight_is_interrupted_at_the_end(
    tmp_path: pathlib.Path, fast: list[asyncio.Future[object]]
) -> None:
    # The backend turns slow mid-run: the requests in flight at the end of the duration
    # (gracefulStop 0) are fast-path futures, cancelled with their iterations.
    behaviour = fake.Behaviour()
    with threaded.serving(behaviour) as server:
        done = threading.Event()

        def slow_down() -> None:  # once the VUs are on the fast path (not at a fixed time)
            while server.requests < 20 and not done.wait(0.01):
                pass
            behaviour.delay_s = 5.0

        slow = threading.Thread(target=slow_down, daemon=True)
        slow.start()
        try:
            summary = _run(
                tmp_path,
                "export const options = { scenarios: { s: { executor: 'constant-vus',"
                " vus: 2, duration: '1s', gracefulStop: '0s' } } };\n"
                f"export default function () {{ http.get('http://127.0.0.1:{server.port}/'); }}\n",
            )
        finally:
            done.set()
            slow.join(5)
    assert summary.duration_s < 3
    assert summary.interrupted == 2
    assert fast and all(f.done() for f in fast)
    assert sum(f.cancelled() for f in fast) == 2
    reqs = summary.metric("http_reqs")
    iterations = summary.metric("iterations")
    assert reqs is not None and iterations is not None
    assert iterations.get("count") == reqs.get("count") == server.requests - 2

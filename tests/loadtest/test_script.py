"""k6 scripts (QuickJS) and Python scenarios, through the CLI against a loopback server."""

from __future__ import annotations

import json
import pathlib

import loadtest_server as fake
import loadtest_threaded as threaded
import pytest

from mcgw.cli import main as cli
from mcgw.loadtest import script

SEED_TEST_JS = """\
import http from 'k6/http';
import { sleep } from 'k6';
export default function () {
  http.get('http://store.example.com');
  sleep(1);
}
"""


def _write(tmp_path: pathlib.Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_seed_test_js_verbatim(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "test.js", SEED_TEST_JS)
    with threaded.serving() as server:
        host = f"store.example.com=127.0.0.1:{server.port}"
        rc = cli.main(["load", "--vus", "3", "--duration", "1500ms", "--host", host, path])
    out = capsys.readouterr().out
    assert rc == 0
    assert "* default: 3 looping VUs for 1.5s (gracefulStop: 30s)" in out
    assert "default ✓ [======================================] 3 VUs  1.5s" in out
    # 3 VUs × 2 iterations (t=0 and t=1 s); each iteration one request.
    assert server.requests == 6
    assert set(server.hosts) == {"store.example.com"}
    assert "http_reqs......................: 6 " in out
    assert "iterations.....................: 6 " in out


RICH_JS = """\
import http from 'k6/http';
import { check, group, sleep } from 'k6';

export const options = {
  vus: 2,
  iterations: 6,
  thresholds: { checks: ['rate==1'], 'http_reqs{method:POST}': ['count==12'] },
};

export function setup() {
  return { base: 'http://store.example.com', token: __ENV.TOKEN };
}

export default function (data) {
  group('shop', function () {
    const res = http.get(`${data.base}/item?vu=${__VU}&iter=${__ITER}`, {
      headers: { 'X-Token': data.token },
      tags: { name: 'item' },
    });
    check(res, {
      'status is 200': (r) => r.status === 200,
      'json ok': (r) => r.json().ok === true,
      'has header': (r) => r.headers['Content-Type'] === 'application/json',
    });
  });
  const rs = http.batch([
    ['POST', `${data.base}/cart`, 'x=1'],
    { method: 'PUT', url: `${data.base}/cart/1`, body: 'y' },
  ]);
  check(rs, { 'batch 200': (r) => r[0].status === 200 && r[1].status === 200 });
  http.del(`${data.base}/cart/1`);
  http.post(`${data.base}/form`, { a: 1 });
}

export function teardown(data) {
  http.get(`${data.base}/teardown`);
}
"""


def test_js_api_subset(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "rich.js", RICH_JS)
    export = tmp_path / "summary.json"
    with threaded.serving() as server:
        host = f"store.example.com=127.0.0.1:{server.port}"
        argv = ["load", "-e", "TOKEN=t0k", "--host", host, "--summary-export", str(export), path]
        rc = cli.main(argv)
    out = capsys.readouterr().out
    assert rc == 0, out
    # 6 iterations × 5 requests, plus teardown's one.
    assert server.requests == 31
    assert server.targets[-1] == "/teardown"
    items = sorted(t for t in server.targets if t.startswith("/item"))
    assert items[0].startswith("/item?vu=")
    assert {t.split("&")[1] for t in items} >= {"iter=0", "iter=1", "iter=2"}
    assert "█ shop" in out and "✓ status is 200" in out and "✓ batch 200" in out
    assert "6 iterations shared among 2 VUs" in out
    doc = json.loads(export.read_text())
    assert doc["metrics"]["checks"]["passes"] == 24
    assert doc["root_group"]["checks"]["json ok"]["path"] == "::shop::json ok"
    assert doc["metrics"]["http_reqs{method:POST}"]["count"] == 12
    assert doc["metrics"]["http_reqs{method:POST}"]["thresholds"] == {"count==12": False}
    assert doc["metrics"]["group_duration"]["max"] > 0


def test_failed_threshold_exit_code_99(tmp_path: pathlib.Path) -> None:
    text = RICH_JS.replace("'count==12'", "'count<1'")
    path = _write(tmp_path, "fail.js", text)
    with threaded.serving() as server:
        host = f"store.example.com=127.0.0.1:{server.port}"
        assert cli.main(["load", "-e", "TOKEN=x", "--host", host, path]) == 99


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("import http from 'k6/http';\nexport default function () {\n  http.get(;\n}\n", ":3:"),
        ("import http from 'k6/http';\nimport ws from 'k6/ws';\n", ":2: import from 'k6/ws'"),
        ("import http from 'k6/http';\nconst x = 1;\nundefinedThing();\n", ":3: ReferenceError"),
        ("export default function () {}\nexport * from 'k6';\n", ":2:"),
    ],
)
def test_script_errors_name_the_line(tmp_path: pathlib.Path, text: str, where: str) -> None:
    path = _write(tmp_path, "bad.js", text)
    with pytest.raises(script.ScriptLoadError) as info:
        script.load(path, {})
    assert f"{path}{where}" in str(info.value)


def test_iteration_error_names_the_line_and_run_goes_on(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        "import http from 'k6/http';\n"
        "export default function () {\n"
        "  const r = http.get('http://store.example.com/');\n"
        "  if (__ITER === 1) { null.boom; }\n"
        "}\n"
    )
    path = _write(tmp_path, "it.js", text)
    export = tmp_path / "s.json"
    with threaded.serving() as server:
        host = f"store.example.com=127.0.0.1:{server.port}"
        rc = cli.main(["load", "-i", "3", "--host", host, "--summary-export", str(export), path])
    assert rc == 0
    assert server.requests == 3
    out = capsys.readouterr().out
    assert "2 complete and 1 interrupted iterations" in out


def test_cli_exit_code_for_a_bad_script(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "bad.js", "export default function () {\n  let = ;\n}\n")
    assert cli.main(["load", path]) == cli.EXIT_BAD_INPUT
    assert "bad.js:2:" in capsys.readouterr().err


PY_SCENARIO = """\
options = {"vus": 2, "iterations": 4, "thresholds": {"checks": ["rate==1"]}}


async def setup(vu):
    return {"base": "http://store.example.com"}


async def default(vu):
    with vu.group("g"):
        res = await vu.http.get(f"{vu.data['base']}/py?vu={vu.id}", {"tags": {"name": "py"}})
    vu.check(res, {"200": lambda r: r.status == 200, "json": lambda r: r.json()["ok"]})
    await vu.sleep(0)
"""


def test_python_scenario(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "scenario.py", PY_SCENARIO)
    with threaded.serving() as server:
        host = f"store.example.com=127.0.0.1:{server.port}"
        rc = cli.main(["load", "--host", host, path])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert server.requests == 4
    assert "✓ json" in out and "group_duration" in out
    assert "checks.........................: 100.00% ✓ 8" in out


def test_transform_keeps_lines() -> None:
    src = (
        "import http, { get } from 'k6/http';\n"
        "import {\n  check,\n  sleep as nap,\n} from 'k6';\n"
        "export const options = {};\n"
        "export default function main() {}\n"
        "export function setup() {}\n"
    )
    code, names = script.transform(src)
    assert code.count("\n") >= src.count("\n")
    assert code.splitlines()[5] == "const options = {};"
    assert code.splitlines()[6] == "function main() {}"
    assert set(names) == {"options", "default", "setup"}
    assert "sleep: nap" in code.splitlines()[1]
    _ = fake  # the server module is imported for its side-effect-free helpers


def test_js_vus_share_the_loop_thread(tmp_path: pathlib.Path) -> None:
    # 40 JS VUs, each sleeping within its iteration: they run as greenlets of the event
    # loop's thread, so no thread is started for them (before: one per VU).
    import threading

    from mcgw.loadtest import options, runner

    seen: list[int] = []
    with threaded.serving() as server:
        path = _write(
            tmp_path,
            "many.js",
            "import http from 'k6/http';\nimport { sleep } from 'k6';\n"
            f"export default function () {{ http.get('http://127.0.0.1:{server.port}/');"
            " sleep(0.3); }\n",
        )
        program = script.load(path, {})
        before = threading.active_count()
        opts = options.LoadOptions(url="", script=path, vus=40, duration_s=1.2)
        summary = runner.run_sync(opts, lambda p: seen.append(threading.active_count()), program)
    assert seen and max(seen) == before
    reqs = summary.metric("http_reqs")
    assert reqs is not None and reqs.get("count") >= 40 * 3
    # VUs sleeping at the end are interrupted, not waited for (gracefulStop 30 s).
    assert summary.duration_s < 3


def test_js_vu_interrupted_by_ramp_down_runs_again(tmp_path: pathlib.Path) -> None:
    # ramping-vus parks VUs above the target and interrupts their iteration after
    # gracefulRampDown; when the target comes back up the same VUs (same QuickJS
    # context) run again and must really run the script.
    from mcgw.loadtest import options, runner

    with threaded.serving() as server:
        path = _write(
            tmp_path,
            "ramp.js",
            "import http from 'k6/http';\nimport { sleep } from 'k6';\n"
            "export const options = { scenarios: { r: { executor: 'ramping-vus',"
            " startVUs: 2, gracefulRampDown: '0s', stages: ["
            " { duration: '600ms', target: 2 }, { duration: '1ms', target: 0 },"
            " { duration: '400ms', target: 0 }, { duration: '1ms', target: 2 },"
            " { duration: '600ms', target: 2 } ] } } };\n"
            f"export default function () {{ http.get('http://127.0.0.1:{server.port}/');"
            " sleep(0.25); }\n",
        )
        program = script.load(path, {})
        opts = options.with_script_options(
            options.LoadOptions(url="", script=path), program.options, frozenset()
        )
        summary = runner.run_sync(opts, None, program)
    reqs = summary.metric("http_reqs")
    iterations = summary.metric("iterations")
    assert reqs is not None and iterations is not None
    assert summary.interrupted >= 2  # the ramp-down cut the two sleeping VUs
    # Every completed iteration made its request: none "completed" without running.
    assert iterations.get("count") <= reqs.get("count") == server.requests
    # Both phases ran: ~3 iterations per VU in each 600 ms phase.
    assert reqs.get("count") >= 8


def test_js_lazy_response_fields_live_for_the_iteration_and_latest_256(
    tmp_path: pathlib.Path,
) -> None:
    # Body, headers… cross into JS when first read, from the VU's latest 256 responses of
    # the current iteration; older ones (and any kept from an earlier iteration) read as
    # empty. Status is always there.
    from mcgw.loadtest import options, runner

    with threaded.serving() as server:
        url = f"http://127.0.0.1:{server.port}/"
        path = _write(
            tmp_path,
            "lazy.js",
            "import http from 'k6/http';\nimport { check } from 'k6';\nvar kept = null;\n"
            "export default function () {\n"
            "  if (kept !== null) {\n"
            "    check(kept, { 'earlier iteration: body gone': (r) => r.body === '',\n"
            "                  'earlier iteration: status kept': (r) => r.status === 200 });\n"
            "    return;\n"
            "  }\n"
            f"  var first = http.get('{url}');\n"
            f"  var second = http.get('{url}');\n"
            "  check(second, { 'read in time': (r) => r.body.length > 0 });\n"
            f"  for (var i = 0; i < 256; i++) {{ kept = http.get('{url}'); }}\n"
            "  check(first, { 'evicted: body gone': (r) => r.body === '' });\n"
            "  check(kept, { 'latest: body': (r) => r.body.length > 0 });\n"
            "  kept = http.get('" + url + "');\n"
            "}\n",
        )
        program = script.load(path, {})
        opts = options.LoadOptions(url="", script=path, vus=1, iterations=2)
        summary = runner.run_sync(opts, lambda p: None, program)
    checks = summary.metric("checks")
    assert checks is not None
    assert (checks.get("passes"), checks.get("fails")) == (5, 0)


def test_ready_vus_run_their_script_parts_before_their_writes(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each request first yields one loop pass (runner.yield_once), so VUs ready at the same
    # time run their script parts back to back and send together. Client.request is wrapped
    # (not replaced: the requests are real) only to see when each request is sent.
    from mcgw.loadtest import client, options, runner

    events: list[str] = []
    real = client.Client.request

    def sending(self: client.Client, *args: object, **kwargs: object) -> object:
        events.append("send")
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(client.Client, "request", sending)
    with threaded.serving() as server:
        path = _write(
            tmp_path,
            "order.py",
            "from __future__ import annotations\n\nimport sys\n\noptions = {}\n\n\n"
            "async def default(vu):\n"
            "    sys.modules['mcgw.loadtest.script'].ORDER_EVENTS.append('script')\n"
            f"    await vu.http.get('http://127.0.0.1:{server.port}/')\n",
        )
        monkeypatch.setattr(script, "ORDER_EVENTS", events, raising=False)
        program = script.load(path, {})
        opts = options.LoadOptions(url="", script=path, vus=3, iterations=3)
        summary = runner.run_sync(opts, lambda p: None, program)
    reqs = summary.metric("http_reqs")
    assert reqs is not None and reqs.get("count") == 3
    assert events == ["script"] * 3 + ["send"] * 3


def test_js_get_fast_path_keeps_response_fields_and_errors(tmp_path: pathlib.Path) -> None:
    # http.get without params takes the prelude's inlined path (one Python call, a
    # Response with its method on the prototype for GET): the fields k6 scripts read are
    # the same as on the general path, a non-string URL is converted, and a failed
    # request under --throw is an exception the script can catch, with its message.
    import socket

    from mcgw.loadtest import options, runner

    with socket.socket() as unused:  # a port with no listener: connection refused
        unused.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{unused.getsockname()[1]}/"
    with threaded.serving() as server:
        url = f"http://127.0.0.1:{server.port}/"
        path = _write(
            tmp_path,
            "fields.js",
            "import http from 'k6/http';\nimport { check } from 'k6';\n"
            "export default function () {\n"
            f"  const g = http.get('{url}');\n"
            f"  const p = http.post('{url}', 'x');\n"
            f"  const o = http.get({{ toString: function () {{ return '{url}'; }} }});\n"
            "  let message = '';\n"
            f"  try {{ http.get('{refused}'); }} catch (e) {{ message = String(e.message); }}\n"
            "  check(g, {\n"
            "    'get status': (r) => r.status === 200,\n"
            f"    'get url': (r) => r.url === '{url}',\n"
            "    'get method': (r) => r.request.method === 'GET',\n"
            "    'get body': (r) => r.body.length > 0,\n"
            "  });\n"
            "  check(p, { 'post method': (r) => r.request.method === 'POST' });\n"
            f"  check(o, {{ 'converted url': (r) => r.status === 200 && r.url === '{url}' }});\n"
            f"  check(message, {{ 'error named': (m) => m.indexOf('{refused}') >= 0 }});\n"
            "}\n",
        )
        program = script.load(path, {})
        opts = options.LoadOptions(url="", script=path, vus=1, iterations=2, throw=True)
        summary = runner.run_sync(opts, lambda p: None, program)
    checks = summary.metric("checks")
    assert checks is not None
    assert (checks.get("passes"), checks.get("fails")) == (14, 0)
    assert server.requests == 6


def test_js_response_handles_past_two_to_the_31(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A VU's handle × 1000 + status crosses into JS as a number; after ~2.1 million
    # requests it passes 2^31, where a 32-bit truncation would wrap to another handle
    # and lose the body. Start the handles there instead of making 2 million requests.
    from mcgw.loadtest import options, runner

    monkeypatch.setattr(script, "_FIRST_HANDLE", 2**31 // 1000 + 5)
    with threaded.serving() as server:
        url = f"http://127.0.0.1:{server.port}/"
        path = _write(
            tmp_path,
            "handles.js",
            "import http from 'k6/http';\nimport { check } from 'k6';\n"
            "export default function () {\n"
            f"  const g = http.get('{url}');\n"
            "  check(g, { 'body read': (r) => r.status === 200 && r.body.length > 0 });\n"
            "}\n",
        )
        program = script.load(path, {})
        opts = options.LoadOptions(url="", script=path, vus=1, iterations=3)
        summary = runner.run_sync(opts, lambda p: None, program)
    checks = summary.metric("checks")
    assert checks is not None
    assert (checks.get("passes"), checks.get("fails")) == (3, 0)

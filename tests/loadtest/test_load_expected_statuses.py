"""k6's ``http.expectedStatuses`` / ``http.setResponseCallback`` / ``params.responseCallback``:
what they make of ``http_req_failed``, the ``expected_response`` tag and
``http_req_duration{expected_response:true}`` — the pure matcher first, then JS and Python
scripts against a loopback server that answers the status its path names."""

from __future__ import annotations

import json
import pathlib

import loadtest_server as fake
import loadtest_threaded as threaded
import pytest

from mcgw.cli import main as cli
from mcgw.loadtest import options as options_mod
from mcgw.loadtest import runner, script, statuses


def test_matcher_takes_codes_and_ranges_as_k6() -> None:
    m = statuses.expected_statuses(406, 500, {"min": 200, "max": 204}, 302, 200.0)
    assert [s for s in (199, 200, 204, 205, 302, 303, 406, 500) if m(s)] == [
        200,
        204,
        302,
        406,
        500,
    ]
    assert statuses.DEFAULT(200) and statuses.DEFAULT(399) and not statuses.DEFAULT(400)
    assert not statuses.DEFAULT(0)  # a request without a response is judged by status 0
    again = statuses.callback({"__k6expected": m.to_spec()})
    assert again == m
    assert statuses.callback(None) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no arguments"),
        (("200",), "argument number 1 to expectedStatuses was neither"),
        ((200, {"min": 1}), "argument number 2 to expectedStatuses was neither"),
        (({"min": 1.5, "max": 3},), "both min and max need to be integers for argument number 1"),
        ((True,), "argument number 1"),
    ],
)
def test_matcher_refuses_what_k6_refuses(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(statuses.StatusesError, match=message):
        statuses.expected_statuses(*args)


def test_a_callback_must_be_a_matcher() -> None:
    with pytest.raises(statuses.StatusesError, match="unsupported responseCallback"):
        statuses.callback(lambda status: True)


JS = """\
import http from 'k6/http';
export const options = { iterations: 1, summaryTrendStats: ['count', 'max'] };
http.setResponseCallback(http.expectedStatuses(200, { min: 400, max: 499 }));
const only500 = http.expectedStatuses(500);
export default function () {
  http.get('BASE/status/200');
  http.get('BASE/status/404');
  http.get('BASE/status/500');
  http.get('BASE/status/500', { responseCallback: only500 });
  http.post('BASE/status/200', 'x', { responseCallback: null });
  http.batch([['GET', 'BASE/status/201', null, { responseCallback: undefined }]]);
}
"""

PY = """\
from mcgw.loadtest import statuses

options = {"iterations": 1, "summaryTrendStats": ["count", "max"]}
ONLY_500 = statuses.expected_statuses(500)

async def default(vu):
    vu.http.set_response_callback(vu.http.expected_statuses(200, {"min": 400, "max": 499}))
    await vu.http.get("BASE/status/200")
    await vu.http.get("BASE/status/404")
    await vu.http.get("BASE/status/500")
    await vu.http.get("BASE/status/500", {"responseCallback": ONLY_500})
    await vu.http.post("BASE/status/200", "x", {"responseCallback": None})
    await vu.http.batch([["GET", "BASE/status/201", None, {"responseCallback": None}]])
"""


def _run(
    tmp_path: pathlib.Path, name: str, text: str, *flags: str
) -> tuple[int, dict[str, dict[str, object]], list[dict[str, object]]]:
    path = tmp_path / name
    export = tmp_path / "summary.json"
    samples = tmp_path / "samples.ndjson"
    with threaded.serving(fake.Behaviour(status_by_path=True)) as server:
        path.write_text(text.replace("BASE", f"http://127.0.0.1:{server.port}"))
        rc = cli.main(
            ["load", "--summary-export", str(export), "--out", f"json={samples}", *flags, str(path)]
        )
    points = [
        json.loads(line)
        for line in samples.read_text().splitlines()
        if json.loads(line)["type"] == "Point"
    ]
    return rc, json.loads(export.read_text())["metrics"], points


@pytest.mark.parametrize(("name", "text"), [("cb.js", JS), ("cb.py", PY)])
def test_response_callbacks_decide_failures_and_expected_durations(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], name: str, text: str
) -> None:
    rc, m, points = _run(tmp_path, name, text)
    assert rc == 0, capsys.readouterr()
    assert m["http_reqs"]["count"] == 6
    # Judged: 200 and 404 (VU's callback), 500 (VU's: failed), 500 (per request: expected);
    # the last two have a null callback: no http_req_failed sample at all.
    assert (m["http_req_failed"]["passes"], m["http_req_failed"]["fails"]) == (1, 3)
    assert m["http_req_duration"]["count"] == 6
    assert m["http_req_duration{expected_response:true}"]["count"] == 3
    by_status: dict[str, list[object]] = {}
    for p in points:
        if p["metric"] == "http_reqs":
            tags = p["data"]["tags"]  # type: ignore[index]
            by_status.setdefault(tags["status"], []).append(tags.get("expected_response"))  # type: ignore[index]
    assert by_status == {
        "200": ["true", None],
        "404": ["true"],
        "500": ["false", "true"],
        "201": [None],
    }
    failed_points = [p["data"]["value"] for p in points if p["metric"] == "http_req_failed"]  # type: ignore[index]
    assert sorted(failed_points) == [0, 0, 0, 1]  # type: ignore[type-var]


JS_NULL = """\
import http from 'k6/http';
export const options = { iterations: 2, thresholds: { http_req_failed: ['rate<0.5'] } };
export default function () {
  http.setResponseCallback(null);
  http.get('BASE/status/500');
}
"""


def test_a_null_callback_emits_no_failures(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, m, points = _run(tmp_path, "null.js", JS_NULL)
    assert rc == 0, capsys.readouterr()
    assert (m["http_req_failed"]["passes"], m["http_req_failed"]["fails"]) == (0, 0)
    assert m["http_reqs"]["count"] == 2
    assert not [p for p in points if p["metric"] == "http_req_failed"]
    # Without a callback the same 500s fail the threshold: exit 99.
    rc, m, _ = _run(tmp_path, "default.js", JS_NULL.replace("http.setResponseCallback(null);", ""))
    assert rc == 99
    assert m["http_req_failed"]["passes"] == 2


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("http.setResponseCallback(function (r) { return true; });\n", 3, "unsupported argument"),
        ("const x = http.expectedStatuses('200');\n", 3, "neither an integer nor an object"),
        ("const y = http.expectedStatuses();\n", 3, "no arguments"),
    ],
)
def test_init_context_misuse_names_the_line(
    tmp_path: pathlib.Path, body: str, line: int, message: str
) -> None:
    path = tmp_path / "bad.js"
    path.write_text("import http from 'k6/http';\n\n" + body + "export default function () {}\n")
    with pytest.raises(script.ScriptLoadError, match=rf"bad\.js:{line}: .*{message}"):
        script.load(str(path), {})


def test_a_function_as_per_request_callback_is_an_error_naming_the_line(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "fn.js"
    with threaded.serving(fake.Behaviour(status_by_path=True)) as server:
        path.write_text(
            "import http from 'k6/http';\n"
            "const f = (r) => true;\n"
            "export default function () {\n"
            f"  http.get('http://127.0.0.1:{server.port}/status/200', {{ responseCallback: f }});\n"
            "}\n"
        )
        program = script.load(str(path), {})
        opts = options_mod.LoadOptions(url="", script=str(path), iterations=2)
        summary = runner.run_sync(opts, program=program)
        assert server.requests == 0  # refused before sending, as k6
    assert summary.interrupted == 2
    (error, count), *_ = summary.errors
    assert count == 2
    assert f"{path}:4: Error: unsupported responseCallback" in error

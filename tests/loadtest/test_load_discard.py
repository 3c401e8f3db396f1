"""``options.discardResponseBodies`` and ``params.responseType`` (``'none'`` | ``'text'``):
a discarded response has a null body and keeps its status, headers and timings; the
request is measured the same (JS and Python scenarios against a loopback server)."""

from __future__ import annotations

import json
import pathlib

import loadtest_threaded as threaded
import pytest

from mcgw.cli import main as cli
from mcgw.loadtest import options as options_mod
from mcgw.loadtest import runner, script

JS = """\
import http from 'k6/http';
export const options = { iterations: 1, discardResponseBodies: true };
export default function () {
  const none = http.get('BASE/');
  const text = http.get('BASE/', { responseType: 'text' });
  const again = http.post('BASE/', 'x', { responseType: 'none' });
  console.log(JSON.stringify({
    none: [none.status, none.body, none.headers['Content-Type'], none.timings.duration > 0],
    text: [text.status, text.body],
    again: [again.status, again.body],
  }));
}
"""

PY = """\
import json
import sys

options = {"iterations": 1}

async def default(vu):
    kept = await vu.http.get("BASE/")
    none = await vu.http.get("BASE/", {"responseType": "none"})
    print("INFO[console] " + json.dumps({
        "none": [
            none.status, none.body, none.headers["Content-Type"], none.timings["duration"] > 0
        ],
        "text": [kept.status, kept.body],
        "again": [none.status, none.body],
    }), file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("name", "text", "requests"), [("discard.js", JS, 3), ("discard.py", PY, 2)]
)
def test_discarded_bodies_are_null(
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    text: str,
    requests: int,
) -> None:
    path = tmp_path / name
    export = tmp_path / "summary.json"
    with threaded.serving() as server:
        path.write_text(text.replace("BASE", f"http://127.0.0.1:{server.port}"))
        rc = cli.main(["load", "--summary-export", str(export), str(path)])
    err = capsys.readouterr().err
    assert rc == 0, err
    line = next(x for x in err.splitlines() if "[console]" in x)
    seen = json.loads(line.split("] ", 1)[1])
    body = server.behaviour.body.decode()
    assert seen["none"] == [200, None, "application/json", True]
    assert seen["text"] == [200, body]
    assert seen["again"] == [200, None]
    m = json.loads(export.read_text())["metrics"]
    # Measured as any other request: the bytes were received, only not kept.
    assert m["http_reqs"]["count"] == requests
    assert m["data_received"]["count"] > requests * len(body)


@pytest.mark.parametrize(
    ("value", "message"),
    [("'binary'", "responseType 'binary' is not supported"), ("'blob'", "invalid responseType")],
)
def test_other_response_types_are_errors_naming_the_line(
    tmp_path: pathlib.Path, value: str, message: str
) -> None:
    path = tmp_path / "rt.js"
    with threaded.serving() as server:
        path.write_text(
            "import http from 'k6/http';\n"
            "export default function () {\n"
            f"  http.get('http://127.0.0.1:{server.port}/', {{ responseType: {value} }});\n"
            "}\n"
        )
        program = script.load(str(path), {})
        opts = options_mod.LoadOptions(url="", script=str(path), iterations=1)
        summary = runner.run_sync(opts, program=program)
        assert server.requests == 0  # refused before sending
    (error, _), *_ = summary.errors
    assert f"{path}:3: Error: {message}" in error

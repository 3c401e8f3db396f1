"""A custom metric declared under a built-in's name and type is that built-in (k6's
registry returns the existing metric): its samples reach the built-in's submetrics that
thresholds declare (``http_req_duration{name:x}``), as the built-in's own samples do —
and stay out of ``http_req_duration{expected_response:true}`` unless tagged so."""

from __future__ import annotations

import json
import pathlib

import loadtest_threaded as threaded
import pytest

from mcgw.cli import main as cli

JS = """\
import http from 'k6/http';
import { Counter, Trend } from 'k6/metrics';

const duration = new Trend('http_req_duration', true);
const reqs = new Counter('http_reqs');

export const options = {
  iterations: 3,
  thresholds: {
    'http_req_duration{name:custom}': ['min>4000', 'max<THRESHOLD'],
    'http_req_duration{expected_response:true}': ['max<4000'],
    'http_reqs{kind:custom}': ['count==6'],
  },
};

export default function () {
  http.get('BASE/');
  duration.add(5000, { name: 'custom' });
  reqs.add(2, { kind: 'custom' });
}
"""

PY = """\
from mcgw.loadtest import custom

duration = custom.Trend("http_req_duration", is_time=True)
reqs = custom.Counter("http_reqs")

options = {
    "iterations": 3,
    "thresholds": {
        "http_req_duration{name:custom}": ["min>4000", "max<THRESHOLD"],
        "http_req_duration{expected_response:true}": ["max<4000"],
        "http_reqs{kind:custom}": ["count==6"],
    },
}

async def default(vu):
    await vu.http.get("BASE/")
    duration.add(5000, {"name": "custom"})
    reqs.add(2, {"kind": "custom"})
"""


@pytest.mark.parametrize(("name", "text"), [("builtin.js", JS), ("builtin.py", PY)])
def test_custom_samples_of_a_builtin_reach_its_submetrics(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], name: str, text: str
) -> None:
    def run(threshold: int) -> tuple[int, dict[str, dict[str, object]]]:
        path = tmp_path / name
        export = tmp_path / "summary.json"
        with threaded.serving() as server:
            body = text.replace("BASE", f"http://127.0.0.1:{server.port}")
            path.write_text(body.replace("THRESHOLD", str(threshold)))
            rc = cli.main(["load", "--summary-export", str(export), str(path)])
        return rc, json.loads(export.read_text())["metrics"]

    rc, m = run(6000)
    assert rc == 0, capsys.readouterr().out
    sub = m["http_req_duration{name:custom}"]
    assert sub["min"] == sub["max"] == 5000
    assert m["http_reqs{kind:custom}"]["count"] == 6
    assert m["http_reqs"]["count"] == 3 + 6  # the requests and the custom samples
    assert m["http_req_duration"]["max"] == 5000
    assert m["http_req_duration{expected_response:true}"]["max"] < 4000  # type: ignore[operator]
    # The same samples fail a threshold they do not meet: exit 99, as k6.
    rc, m = run(4500)
    assert rc == 99
    assert m["http_req_duration{name:custom}"]["thresholds"] == {
        "min>4000": False,
        "max<4500": True,
    }

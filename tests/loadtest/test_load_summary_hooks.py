"""handleSummary (k6's) in JS and Python scenarios, jslib's textSummary, and the HTML
report through ``--report`` / ``--out html=`` — via the CLI against a loopback server."""

from __future__ import annotations

import json
import pathlib
import re

import loadtest_threaded as threaded
import pytest

from mcgw.cli import main as cli

JS = """\
import http from 'k6/http';
import { check, group } from 'k6';
import { textSummary } from 'https://jslib.k6.io/k6-summary/0.0.2/index.js';
export const options = { iterations: 3, thresholds: { http_req_duration: ['p(95)<5000'] } };
export default function () {
  group('shop', function () {
    check(http.get('BASE/'), { 'is 200': (r) => r.status === 200 });
  });
}
export function handleSummary(data) {
  const reqs = data.metrics.http_reqs.values.count;
  const p95 = data.metrics.http_req_duration.values['p(95)'];
  const ok = data.metrics.http_req_duration.thresholds['p(95)<5000'].ok;
  const shop = data.root_group.groups[0];
  return {
    stdout: 'custom: ' + reqs + ' requests\\n' + textSummary(data, { indent: ' ' }),
    'OUT/summary.json': JSON.stringify({ reqs: reqs, p95: p95, ok: ok,
                                         group: shop.name, check: shop.checks[0] }),
  };
}
"""

PY = """\
import json

options = {"iterations": 2}

async def default(vu):
    await vu.http.get("BASE/")

def handle_summary(data):
    return {"stderr": "to stderr\\n", "OUT/py.json": json.dumps(data["metrics"]["iterations"])}
"""


def test_js_handle_summary_replaces_the_summary(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with threaded.serving() as server:
        path = tmp_path / "t.js"
        base = f"http://127.0.0.1:{server.port}"
        path.write_text(JS.replace("BASE", base).replace("OUT", str(tmp_path)))
        rc = cli.main(["load", str(path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.startswith("custom: 3 requests\n")
    # textSummary is mcgw's own end-of-test text, printed once (by the script).
    assert out.count("http_reqs......................: 3 ") == 1
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["reqs"] == 3 and doc["ok"] is True and doc["p95"] > 0
    assert doc["group"] == "shop"
    assert doc["check"]["name"] == "is 200" and doc["check"]["passes"] == 3


def test_python_handle_summary(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    with threaded.serving() as server:
        path = tmp_path / "t.py"
        base = f"http://127.0.0.1:{server.port}"
        path.write_text(PY.replace("BASE", base).replace("OUT", str(tmp_path)))
        rc = cli.main(["load", str(path)])
    captured = capsys.readouterr()
    assert rc == 0
    assert "http_reqs" not in captured.out  # replaced by handle_summary
    assert "to stderr" in captured.err
    iterations = json.loads((tmp_path / "py.json").read_text())
    assert iterations == {"type": "counter", "contains": "default", "values": iterations["values"]}
    assert iterations["values"]["count"] == 2


def test_html_report_is_self_contained(tmp_path: pathlib.Path) -> None:
    body = b'{"cluster_name": "gke-west-1", "zone": "us-west1-a"}'
    import loadtest_server as fake

    with threaded.serving(fake.Behaviour(body=body)) as server:
        report = tmp_path / "r.html"
        other = tmp_path / "o.html"
        rc = cli.main(
            [
                "load",
                "--iterations", "20",
                "--vus", "2",
                "--sleep", "0",
                "--breakdown",
                "--report", str(report),
                "--out", f"html={other}",
                f"http://127.0.0.1:{server.port}/",
            ]
        )  # fmt: skip
    assert rc == 0
    page = report.read_text()
    assert page == other.read_text()
    assert page.startswith("<!doctype html>")
    # No CDN, no script, no remote resource of any kind: it opens offline.
    assert not re.search(r"(src|href)=['\"]?https?:", page)
    assert "<script" not in page
    assert 'aria-label="latency over time"' in page
    assert 'aria-label="responses per cluster"' in page
    assert "gke-west-1 / us-west1-a" in page and "20 (100.0%)" in page

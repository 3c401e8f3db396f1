"""--out json (k6 NDJSON), --summary-export, the HTML report, --workers, via the CLI."""

from __future__ import annotations

import json
import pathlib
import re

import loadtest_server as fake
import loadtest_threaded as threaded
import pytest

from mcgw.cli import main as cli

_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+[+-]\d\d:\d\d$")


def test_json_output_lines(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "out.json"
    with threaded.serving() as server:
        url = f"http://127.0.0.1:{server.port}/x"
        argv = ["load", "-i", "3", "--sleep", "0", "--tag", "team=sre", "--out", f"json={out}", url]
        assert cli.main(argv) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    declared: set[str] = set()
    for line in lines:
        assert set(line) == {"type", "data", "metric"}
        if line["type"] == "Metric":
            assert set(line["data"]) == {"name", "type", "contains", "thresholds", "submetrics"}
            declared.add(line["metric"])
        else:
            assert line["type"] == "Point" and line["metric"] in declared  # declared first
            assert set(line["data"]) == {"time", "value", "tags"}
            assert _TIME.match(line["data"]["time"])
    reqs = [p for p in lines if p["type"] == "Point" and p["metric"] == "http_reqs"]
    assert len(reqs) == 3
    tags = reqs[0]["data"]["tags"]
    assert tags["method"] == "GET" and tags["status"] == "200" and tags["team"] == "sre"
    assert tags["url"] == tags["name"] == url and tags["expected_response"] == "true"
    assert tags["scenario"] == "default"
    durations = [p for p in lines if p["type"] == "Point" and p["metric"] == "http_req_duration"]
    assert all(0 < p["data"]["value"] < 1000 for p in durations)  # milliseconds
    meta = next(m for m in lines if m["type"] == "Metric" and m["metric"] == "http_req_duration")
    assert meta["data"]["type"] == "trend" and meta["data"]["contains"] == "time"


def test_summary_export_html_and_trend_stats(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary, page = tmp_path / "s.json", tmp_path / "r.html"
    body = fake.whereami("gke-west-1", "us-west1-a")
    with threaded.serving(fake.Behaviour(body=body)) as server:
        argv = [
            "load",
            "-u",
            "2",
            "-d",
            "1200ms",
            "--sleep",
            "50ms",
            "--breakdown",
            "--summary-trend-stats",
            "avg,p(99),count",
            "--summary-export",
            str(summary),
            "--out",
            f"html={page}",
            f"http://127.0.0.1:{server.port}/",
        ]
        assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert re.search(r"http_req_duration\.+: avg=\S+ +p\(99\)=\S+ +count=\d+", text)
    doc = json.loads(summary.read_text())
    assert set(doc["metrics"]["http_req_duration"]) == {"avg", "p(99)", "count"}
    assert doc["metrics"]["http_reqs"]["count"] == server.requests
    assert doc["breakdown"][0]["cluster"] == "gke-west-1"
    html = page.read_text()
    assert html.count("<svg") >= 2 and "gke-west-1" in html
    assert "<script" not in html and "http-equiv" not in html and "src=" not in html


def test_workers_merge_counts(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "w.json"
    with threaded.serving() as server:
        url = f"http://127.0.0.1:{server.port}/"
        argv = [
            "load",
            "--workers",
            "2",
            "-u",
            "3",
            "-i",
            "21",
            "--sleep",
            "0",
            "--out",
            f"json={out}",
            url,
        ]
        assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert server.requests == 21
    assert "http_reqs......................: 21 " in text
    points = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(1 for p in points if p["type"] == "Point" and p["metric"] == "http_reqs") == 21


def test_workers_share_the_rps_cap(capsys: pytest.CaptureFixture[str]) -> None:
    # --rps caps the whole test: two workers get half the rate each, so the server sees
    # the cap, not twice it.
    with threaded.serving() as server:
        url = f"http://127.0.0.1:{server.port}/"
        argv = ["load", "--workers", "2", "-u", "4", "-d", "1s", "--rps", "20", "--sleep", "0"]
        assert cli.main([*argv, url]) == 0
    capsys.readouterr()
    assert 18 <= server.requests <= 20

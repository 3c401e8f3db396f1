"""k6/metrics custom metrics: the pure rules (names, types, storage, merge), then JS and
Python scripts against a loopback server — summary, ``--out json``, summary export,
thresholds (exit 99), submetrics with tags, errors naming the line, ``--workers``."""

from __future__ import annotations

import json
import pathlib
import pickle

import loadtest_threaded as threaded
import pytest

from mcgw.cli import main as cli
from mcgw.loadtest import custom, metrics, output, runner, script
from mcgw.loadtest import options as options_mod


def test_names_and_types_are_checked_as_k6_does() -> None:
    defs: custom.Definitions = {}
    trend = custom.define(defs, "waiting_time", "trend", True)
    assert trend == custom.Definition("waiting_time", "trend", "time")
    assert custom.define(defs, "waiting_time", "trend", True) is trend  # same again: fine
    for bad in ("1st", "with-dash", "x", "é_name", "a" * 130, 42):
        with pytest.raises(custom.CustomMetricError, match="invalid metric name"):
            custom.define(defs, bad, "counter")
    with pytest.raises(custom.CustomMetricError, match="type trend, instead of counter"):
        custom.define(defs, "waiting_time", "counter")
    with pytest.raises(custom.CustomMetricError, match="value type time, instead of default"):
        custom.define(defs, "waiting_time", "trend", False)
    # Built-in names: the same type adds to the built-in; another type is an error.
    assert custom.define(defs, "http_reqs", "counter").contains == "default"
    with pytest.raises(custom.CustomMetricError, match="type counter, instead of gauge"):
        custom.define(defs, "http_reqs", "gauge")


class _Vu:
    def __init__(self, scenario: str) -> None:
        self.tags = {"scenario": scenario, "group": ""}
        self.group = "::g"


def test_recorder_units_submetrics_and_json(tmp_path: pathlib.Path) -> None:
    defs: custom.Definitions = {}
    custom.define(defs, "waiting_time", "trend", True)
    custom.define(defs, "sizes", "trend")
    custom.define(defs, "hits", "counter")
    custom.define(defs, "level", "gauge")
    custom.define(defs, "ok_rate", "rate")
    reg = metrics.Registry()
    path = tmp_path / "o.ndjson"
    out = output.JsonOutput.open(str(path))
    rec = custom.Recorder(reg, out, defs, ("sizes{page:home}", "hits{group:::g}"))
    vu = _Vu("s1")
    rec.add(vu, "waiting_time", 12.5)
    rec.add(vu, "sizes", 2.25, {"page": "home"})
    rec.add(vu, "sizes", 1000.5, {"page": "other"})
    rec.add(vu, "hits", 1.5)
    rec.add(vu, "level", 7)
    rec.add(vu, "level", 3)
    rec.add(vu, "ok_rate", 0)
    rec.add(vu, "ok_rate", 2)
    out.close()
    assert reg.get("waiting_time").stat("avg") == pytest.approx(12.5)  # type: ignore[union-attr]
    sizes = reg.get("sizes")
    assert sizes is not None and sizes.stat("max") == pytest.approx(1000.5, rel=1e-3)
    assert sizes.stat("min") == pytest.approx(2.25) and sizes.stat("count") == 2
    home = reg.get("sizes{page:home}")
    assert home is not None and home.stat("count") == 1 and home.stat("avg") == 2.25
    assert reg.get("hits{group:::g}").stat("count", 1) == 1.5  # type: ignore[union-attr]
    level = reg.get("level")
    assert level is not None and level.summary(1, ()).values == (
        ("value", 3),
        ("min", 3),
        ("max", 7),
    )
    assert reg.get("ok_rate").stat("rate", 1) == 0.5  # type: ignore[union-attr]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    declared = {ln["data"]["name"]: ln["data"] for ln in lines if ln["type"] == "Metric"}
    assert declared["waiting_time"]["type"] == "trend"
    assert declared["waiting_time"]["contains"] == "time"
    assert declared["hits"]["type"] == "counter"
    points = [ln for ln in lines if ln["type"] == "Point"]
    first = points[0]
    assert first["metric"] == "waiting_time" and first["data"]["value"] == 12.5
    assert first["data"]["tags"] == {"scenario": "s1", "group": "::g"}
    assert points[1]["data"]["tags"]["page"] == "home"
    assert [p["data"]["value"] for p in points if p["metric"] == "level"] == [7, 3]
    assert [p["data"]["value"] for p in points if p["metric"] == "ok_rate"] == [0, 1]


def test_workers_merge_custom_gauges_by_time_and_trends_exactly() -> None:
    d = custom.Definition("level", "gauge", "default")
    a, b = custom._new_metric(d, "level"), custom._new_metric(d, "level")
    assert isinstance(a, metrics.Gauge) and isinstance(b, metrics.Gauge)
    a.set(5)
    b.set(2)  # later
    a.merge(pickle.loads(pickle.dumps(b)))
    assert (a.value, a.min, a.max) == (2, 2, 5)
    t = custom.Definition("sizes", "trend", "default")
    one, two = custom._new_metric(t, "sizes"), custom._new_metric(t, "sizes")
    custom._put(t, one, 1.5)
    custom._put(t, two, 3.5)
    one.merge(pickle.loads(pickle.dumps(two)))  # type: ignore[arg-type]
    assert one.stat("avg", 1) == 2.5 and one.stat("count", 1) == 2


JS = """\
import http from 'k6/http';
import { Counter, Gauge, Rate, Trend } from 'k6/metrics';

const waiting = new Trend('waiting_time', true);
const sizes = new Trend('sizes');
const hits = new Counter('hits');
const level = new Gauge('level');
const okRate = new Rate('ok_rate');

export const options = {
  iterations: 4,
  thresholds: {
    waiting_time: ['p(95)<5000'],
    'sizes{kind:big}': ['min>=10'],
    hits: ['count==8'],
    ok_rate: ['rate==1'],
  },
};

export default function () {
  const r = http.get('BASE/');
  waiting.add(r.timings.waiting);
  sizes.add(2.5, { kind: 'small' });
  sizes.add(10, { kind: 'big' });
  hits.add(2);
  level.add(__ITER);
  okRate.add(r.status === 200);
}
"""


def _run_cli(
    tmp_path: pathlib.Path, name: str, text: str, *flags: str
) -> tuple[int, dict[str, dict[str, object]], str]:
    with threaded.serving() as server:
        path = tmp_path / name
        path.write_text(text.replace("BASE", f"http://127.0.0.1:{server.port}"))
        export = tmp_path / "summary.json"
        rc = cli.main(["load", "--summary-export", str(export), *flags, str(path)])
    doc = json.loads(export.read_text())
    return rc, doc["metrics"], str(path)


def test_js_custom_metrics_in_summary_json_and_thresholds(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.ndjson"
    rc, m, _ = _run_cli(tmp_path, "m.js", JS, "--out", f"json={out}")
    text = capsys.readouterr().out
    assert rc == 0, text
    assert m["hits"]["count"] == 8 and m["hits"]["thresholds"] == {"count==8": False}
    assert m["sizes"]["min"] == 2.5 and m["sizes"]["max"] == 10
    assert m["sizes{kind:big}"]["avg"] == 10
    assert m["ok_rate"]["value"] == 1 and m["ok_rate"]["passes"] == 4
    assert m["level"]["value"] == 3 and m["level"]["max"] == 3
    waiting = m["waiting_time"]["avg"]
    assert isinstance(waiting, float) and 0 < waiting < m["http_req_duration"]["max"]  # type: ignore[operator]
    # The summary: the time trend humanized like http_req_waiting, the others as numbers.
    line = next(ln for ln in text.splitlines() if "waiting_time" in ln)
    assert "✓ waiting_time" in line and "avg=" in line and "s " in line
    assert "sizes" in text and "min=2.5" in text and "{ kind:big }" in text
    assert "hits" in text and "8 " in text
    points = [json.loads(ln) for ln in out.read_text().splitlines()]
    meta = [p for p in points if p["type"] == "Metric" and p["metric"] == "sizes"]
    assert meta[0]["data"]["thresholds"] == ["min>=10"]
    big = [p for p in points if p["metric"] == "sizes" and p["type"] == "Point"]
    assert len(big) == 8 and {p["data"]["tags"]["kind"] for p in big} == {"small", "big"}


def test_js_failed_custom_threshold_exits_99(tmp_path: pathlib.Path) -> None:
    text = JS.replace("'count==8'", "'count<8'")
    rc, m, _ = _run_cli(tmp_path, "fail.js", text)
    assert rc == 99
    assert m["hits"]["thresholds"] == {"count<8": True}


def test_js_threshold_on_an_undeclared_metric_is_an_error(tmp_path: pathlib.Path) -> None:
    text = JS.replace("hits: ['count==8']", "nope: ['count==8']")
    path = tmp_path / "undeclared.js"
    path.write_text(text.replace("BASE", "http://127.0.0.1:9"))
    assert cli.main(["load", str(path)]) == cli.EXIT_BAD_INPUT


@pytest.mark.parametrize(
    ("decl", "message"),
    [
        ("const t = new Trend('bad-name');", ":3: Error: invalid metric name 'bad-name'"),
        (
            "const t = new Trend('same');\nconst c = new Counter('same');",
            ":4: Error: metric 'same' already exists but with type trend, instead of counter",
        ),
        ("const t = new Trend('x_t'); t.add(1);", ":3: Error: using metrics in the init"),
    ],
)
def test_js_init_errors_name_the_line(tmp_path: pathlib.Path, decl: str, message: str) -> None:
    path = tmp_path / "bad.js"
    path.write_text(
        "import http from 'k6/http';\nimport { Counter, Trend } from 'k6/metrics';\n"
        f"{decl}\nexport default function () {{}}\n"
    )
    with pytest.raises(script.ScriptLoadError) as info:
        script.load(str(path), {})
    assert f"{path}{message}" in str(info.value)


def test_js_metric_made_in_an_iteration_is_an_error_naming_the_line(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "late.js"
    with threaded.serving() as server:
        path.write_text(
            "import http from 'k6/http';\n"
            "import { Trend } from 'k6/metrics';\n"
            "export default function () {\n"
            f"  http.get('http://127.0.0.1:{server.port}/');\n"
            "  const late = new Trend('late_trend');\n"
            "}\n"
        )
        program = script.load(str(path), {})
        opts = options_mod.LoadOptions(url="", script=str(path), iterations=2)
        summary = runner.run_sync(opts, program=program)
    assert summary.interrupted == 2
    (error, count), *_ = summary.errors
    assert count == 2
    assert f"{path}:5: Error: metrics must be declared in the init context" in error


PY = """\
import os

from mcgw.loadtest import custom

waiting = custom.Trend("waiting_time", is_time=True)
pages = custom.Counter("pages")
options = {
    "iterations": 3,
    "thresholds": {"pages{page:home}": ["count==3"], "waiting_time": ["max<10000"]},
}


async def setup(vu):
    pages.add(10, {"page": "setup"})  # k6: setup may add samples too


async def default(vu):
    res = await vu.http.get("BASE/")
    waiting.add(res.timings["waiting"])
    pages.add(1, {"page": "home"})
    pages.add(2, {"page": "other"})
    if vu.iteration == 2 and os.environ.get("LATE"):
        custom.Trend("late_metric")
"""


def test_python_custom_metrics(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, m, _ = _run_cli(tmp_path, "m.py", PY)
    assert rc == 0, capsys.readouterr().out
    assert m["pages"]["count"] == 19
    assert m["pages{page:home}"]["count"] == 3
    assert m["pages{page:home}"]["thresholds"] == {"count==3": False}
    assert m["waiting_time"]["max"] > 0  # type: ignore[operator]


def test_python_metric_made_in_an_iteration_is_an_error(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATE", "1")
    path = tmp_path / "late.py"
    with threaded.serving() as server:
        path.write_text(PY.replace("BASE", f"http://127.0.0.1:{server.port}"))
        program = script.load(str(path), {})
        opts = options_mod.LoadOptions(url="", script=str(path), iterations=3)
        summary = runner.run_sync(opts, program=program)
    assert summary.complete == 2 and summary.interrupted == 1
    (error, _), *_ = summary.errors
    assert f"{path}:23: CustomMetricError: metric 'late_metric': metrics must be declared" in error


def test_workers_merge_custom_metrics(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = JS.replace("iterations: 4", "vus: 2, iterations: 6").replace("count==8", "count==12")
    stats = ("--summary-trend-stats", "avg,min,max,count")
    rc, m, _ = _run_cli(tmp_path, "w.js", text, "--workers", "2", *stats)
    assert rc == 0, capsys.readouterr().out
    assert m["hits"]["count"] == 12
    assert m["sizes"]["count"] == 12 and m["sizes"]["avg"] == 6.25
    assert m["sizes{kind:big}"]["count"] == 6
    assert m["ok_rate"]["passes"] == 6
    assert m["waiting_time"]["max"] > 0  # type: ignore[operator]


def test_handle_summary_sees_custom_metrics(tmp_path: pathlib.Path) -> None:
    text = JS.replace(
        "export default function",
        "export function handleSummary(data) {\n"
        "  const w = data.metrics.waiting_time;\n"
        "  return { 'BASE_OUT': JSON.stringify({ type: w.type, contains: w.contains,\n"
        "           hits: data.metrics.hits.values.count }) };\n"
        "}\n"
        "export default function",
    ).replace("BASE_OUT", str(tmp_path / "handled.json"))
    rc, _, _ = _run_cli(tmp_path, "h.js", text)
    assert rc == 0
    handled = json.loads((tmp_path / "handled.json").read_text())
    assert handled == {"type": "trend", "contains": "time", "hits": 8}

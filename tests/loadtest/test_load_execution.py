"""``k6/execution`` (JS) and ``vu.execution`` (Python scenarios): the values an iteration
sees against what the run did, ``test.options``, and ``test.abort()`` — exit 108, the
reason in the summary, teardown still run, the test stopped early."""

from __future__ import annotations

import json
import pathlib
import time

import loadtest_threaded as threaded
import pytest

from mcgw.cli import main as cli
from mcgw.loadtest import script

JS = """\
import http from 'k6/http';
import exec from 'k6/execution';
import { scenario } from 'k6/execution';

export const options = {
  scenarios: { first: { executor: 'shared-iterations', vus: 2, iterations: 6 } },
};

export default function () {
  http.get('BASE/');
  console.log(JSON.stringify({
    vu: __VU, iter: __ITER,
    idInTest: exec.vu.idInTest, idInInstance: exec.vu.idInInstance,
    iterationInInstance: exec.vu.iterationInInstance,
    iterationInScenario: exec.vu.iterationInScenario,
    name: scenario.name, executor: scenario.executor, startTime: scenario.startTime,
    progress: scenario.progress, inTest: scenario.iterationInTest,
    inInstance: scenario.iterationInInstance,
    active: exec.instance.vusActive, initialized: exec.instance.vusInitialized,
    completed: exec.instance.iterationsCompleted,
    interrupted: exec.instance.iterationsInterrupted,
    runMs: exec.instance.currentTestRunDuration,
    options: exec.test.options.scenarios.first,
  }));
}
"""

PY = """\
import json
import sys

options = {"scenarios": {"first": {"executor": "shared-iterations", "vus": 2, "iterations": 6}}}

async def default(vu):
    await vu.http.get("BASE/")
    ex = vu.execution
    print("INFO[console] " + json.dumps({
        "vu": vu.id, "iter": vu.iteration,
        "idInTest": ex.vu.id_in_test, "idInInstance": ex.vu.id_in_instance,
        "iterationInInstance": ex.vu.iteration_in_instance,
        "iterationInScenario": ex.vu.iteration_in_scenario,
        "name": ex.scenario.name, "executor": ex.scenario.executor,
        "startTime": ex.scenario.start_time, "progress": ex.scenario.progress,
        "inTest": ex.scenario.iteration_in_test, "inInstance": ex.scenario.iteration_in_instance,
        "active": ex.instance.vus_active, "initialized": ex.instance.vus_initialized,
        "completed": ex.instance.iterations_completed,
        "interrupted": ex.instance.iterations_interrupted,
        "runMs": ex.instance.current_test_run_duration,
        "options": ex.test.options["scenarios"]["first"],
    }), file=sys.stderr)
"""


@pytest.mark.parametrize(("name", "text"), [("ex.js", JS), ("ex.py", PY)])
def test_execution_values_match_the_run(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], name: str, text: str
) -> None:
    path = tmp_path / name
    before = time.time() * 1000
    with threaded.serving() as server:
        path.write_text(text.replace("BASE", f"http://127.0.0.1:{server.port}"))
        rc = cli.main(["load", str(path)])
    after = time.time() * 1000
    err = capsys.readouterr().err
    assert rc == 0, err
    seen = [json.loads(line.split("] ", 1)[1]) for line in err.splitlines() if "[console]" in line]
    assert len(seen) == 6
    for s in seen:
        assert s["idInTest"] == s["idInInstance"] == s["vu"] in (1, 2)
        assert s["iterationInInstance"] == s["iterationInScenario"] == s["iter"]
        assert (s["name"], s["executor"]) == ("first", "shared-iterations")
        assert before <= s["startTime"] <= after
        assert s["inInstance"] == s["inTest"]
        assert 1 <= s["active"] <= 2 and s["initialized"] == 2
        assert s["interrupted"] == 0 and 0 < s["runMs"] < after - before
        assert s["options"]["executor"] == "shared-iterations"
        assert s["options"]["iterations"] == 6 and s["options"]["vus"] == 2
    # Each iteration of the scenario has its own number, 0 to 5.
    assert sorted(s["inTest"] for s in seen) == list(range(6))
    # Progress and completed iterations only grow, and stay within the scenario.
    completed = [s["completed"] for s in seen]
    assert completed == sorted(completed) and completed[-1] <= 5
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress) and progress[0] >= 0 and progress[-1] <= 5 / 6


ABORT_JS = """\
import http from 'k6/http';
import exec from 'k6/execution';
export const options = { vus: 2, duration: '30s', thresholds: { http_reqs: ['count<0'] } };
export default function () {
  http.get('BASE/');
  if (exec.scenario.iterationInTest === 5) {
    exec.test.abort('enough seen');
  }
}
export function teardown() { console.log('teardown ran'); }
"""

ABORT_PY = """\
import sys

options = {"vus": 2, "duration": "30s", "thresholds": {"http_reqs": ["count<0"]}}

async def default(vu):
    await vu.http.get("BASE/")
    if vu.execution.scenario.iteration_in_test == 5:
        vu.execution.test.abort("enough seen")

def teardown(vu, data):
    print("INFO[console] teardown ran", file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [("abort.js", ABORT_JS, "abort.js:7"), ("abort.py", ABORT_PY, "abort.py:8")],
)
def test_abort_stops_the_test_with_108(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], name: str, text: str, where: str
) -> None:
    path = tmp_path / name
    begin = time.monotonic()
    with threaded.serving() as server:
        path.write_text(text.replace("BASE", f"http://127.0.0.1:{server.port}"))
        rc = cli.main(["load", str(path)])
    took = time.monotonic() - begin
    out = capsys.readouterr()
    assert rc == 108  # k6's, over the failed threshold's 99
    assert "test aborted: enough seen" in out.out and where in out.out
    assert "teardown ran" in out.err
    assert took < 15  # not the 30 s of its duration
    assert server.requests < 1000


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("exec.vu.nope();", "k6/execution.vu.nope is not supported"),
        ("exec.test.stop();", "k6/execution.test.stop is not supported"),
    ],
)
def test_unsupported_members_name_the_line(tmp_path: pathlib.Path, line: str, message: str) -> None:
    path = tmp_path / "bad.js"
    path.write_text(
        f"import exec from 'k6/execution';\n\n{line}\nexport default function () {{}}\n"
    )
    with pytest.raises(script.ScriptLoadError, match=rf"bad\.js:3: .*{message}"):
        script.load(str(path), {})


def test_vu_values_are_not_in_the_init_context(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "init.js"
    path.write_text(
        "import exec from 'k6/execution';\nconst id = exec.vu.idInTest;\n"
        "export default function () {}\n"
    )
    with pytest.raises(script.ScriptLoadError, match=r"vu\.idInTest is not available in the init"):
        script.load(str(path), {})


def test_python_unknown_member_says_what_there_is(tmp_path: pathlib.Path) -> None:
    from mcgw.loadtest import execution

    section = execution.Section(None, None, "vu")  # type: ignore[arg-type]
    with pytest.raises(
        AttributeError, match=r"vu\.execution\.vu\.tags is not supported.*id_in_test"
    ):
        _ = section.tags

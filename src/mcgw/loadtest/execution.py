"""k6's ``k6/execution``: where a VU is in the test, and ``test.abort()``.

JS scripts ``import exec from 'k6/execution'`` (``exec.vu.idInTest``, ``exec.scenario.name``,
``exec.instance.vusActive``, ``exec.test.abort('why')``, …); Python scenarios read the
same through ``vu.execution`` in snake case (``vu.execution.vu.id_in_test``,
``vu.execution.scenario.iteration_in_test``, ``vu.execution.test.abort("why")``). Every
value is computed when read, from the run's own counters: nothing is kept per request.

Numbering with ``--workers N`` (each worker an *instance*): ``idInInstance`` is ``__VU``
and ``iterationInInstance`` counts the worker's own; ``idInTest`` and the scenario's
``iterationInTest`` interleave the workers' (worker ``w`` of ``N`` takes ``w``,
``w + N``, …) so they stay unique over the test. A scenario numbers its iterations only
when the script mentions ``execution`` at all (one counter step per iteration, else
nothing). ``test.abort()`` stops the run (its worker, with ``--workers``): running
iterations are interrupted, ``teardown`` still runs, the summary says ``test aborted:
<reason>`` and ``mcgw load`` exits with k6's 108.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Mapping
from typing import Any

from mcgw.loadtest import errors, runner, scenario

KEYS: Mapping[str, tuple[str, ...]] = {
    "vu": ("idInTest", "idInInstance", "iterationInInstance", "iterationInScenario"),
    "scenario": (
        "name",
        "executor",
        "startTime",
        "progress",
        "iterationInInstance",
        "iterationInTest",
    ),
    "instance": (
        "vusActive",
        "vusInitialized",
        "iterationsCompleted",
        "iterationsInterrupted",
        "currentTestRunDuration",
    ),
    "test": ("options",),
}
"""What mcgw offers of k6/execution (plus ``test.abort``); anything else is an error."""


class ExecutionError(errors.LoadError):
    """A k6/execution read that has no value here (the init context, an unknown name)."""


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


def _scenario_options(s: scenario.Scenario) -> dict[str, object]:
    out: dict[str, object] = {
        "executor": s.executor,
        "startTime": _duration(s.start_time_s),
        "gracefulStop": _duration(s.graceful_stop_s),
        "exec": s.exec_name,
        "env": dict(s.env),
        "tags": dict(s.tags),
    }
    if s.open_model:
        out.update(
            rate=s.rate,
            timeUnit=_duration(s.time_unit_s),
            preAllocatedVUs=s.vus,
            maxVUs=s.max_vus,
        )
    else:
        out["vus"] = s.vus
    if s.iterations is not None:
        out["iterations"] = s.iterations
        out["maxDuration"] = _duration(s.duration_s)
    elif s.stages:
        out["stages"] = [
            {"duration": _duration(stage.duration_s), "target": stage.target} for stage in s.stages
        ]
        out["gracefulRampDown"] = _duration(s.graceful_ramp_down_s)
    else:
        out["duration"] = _duration(s.duration_s)
    return out


def test_options(run: runner.Run) -> dict[str, object]:
    """k6's consolidated options as the run uses them: flags over the script's
    ``options``, shortcuts turned into ``scenarios``, defaults filled in."""
    o = run.opts
    return {
        "scenarios": {s.name: _scenario_options(s) for s in run.scenarios},
        "thresholds": {name: list(exprs) for name, exprs in o.thresholds},
        "tags": dict(o.tags),
        "hosts": dict(o.host_map),
        "summaryTrendStats": list(o.summary_trend_stats),
        "maxRedirects": o.max_redirects,
        "insecureSkipTLSVerify": o.insecure_skip_tls_verify,
        "throw": o.throw,
        "setupTimeout": _duration(o.setup_timeout_s),
        "discardResponseBodies": o.discard_response_bodies,
        **({"rps": o.rps} if o.rps else {}),
    }


def value(run: runner.Run, vu: runner.VU, section: str, key: str) -> object:
    """``exec.<section>.<key>`` for ``vu`` now.

    Raises:
        ExecutionError: a name mcgw does not offer.
    """
    scen = vu.scen
    if section == "vu":
        if key == "idInTest":
            return (vu.id - 1) * scen.share_count + scen.share_index + 1
        if key == "idInInstance":
            return vu.id
        if key in ("iterationInInstance", "iterationInScenario"):
            return vu.iteration
    elif section == "scenario":
        if key == "name":
            return scen.name
        if key == "executor":
            return scen.executor
        if key == "startTime":
            return run.scenario_start_ms.get(scen.name, 0)
        if key == "progress":
            return _progress(run, scen)
        if key == "iterationInInstance":
            return vu.in_scenario
        if key == "iterationInTest":
            return vu.in_scenario * scen.share_count + scen.share_index
    elif section == "instance":
        if key == "vusActive":
            return run.active
        if key == "vusInitialized":
            return run.allocated
        if key == "iterationsCompleted":
            return run.complete
        if key == "iterationsInterrupted":
            return run.interrupted
        if key == "currentTestRunDuration":
            return run.elapsed_s() * 1000.0
    elif section == "test" and key == "options":
        return test_options(run)
    raise ExecutionError(f"k6/execution: {section}.{key} is not supported by mcgw load")


def _progress(run: runner.Run, scen: scenario.Scenario) -> float:
    """k6's progress of the scenario (0–1): done iterations of a fixed count, else the
    share of its duration elapsed."""
    if scen.iterations is not None and scen.executor in ("shared-iterations", "per-vu-iterations"):
        total = scen.iterations * (scen.vus if scen.executor == "per-vu-iterations" else 1)
        done = sum(run.by_scenario.get(scen.name, [0, 0]))
        return min(1.0, done / total) if total else 1.0
    started = run.scenario_start_ms.get(scen.name)
    if started is None or scen.duration_s <= 0:
        return 0.0
    return max(0.0, min(1.0, (time.time() * 1000.0 - started) / (scen.duration_s * 1000.0)))


_FRAME = re.compile(r"at [^(]*\(<input>:(\d+)\)")


def abort_message(reason: str | None, stack: str, path: str, prelude_offset: int) -> str:
    """The summary's ``test aborted: …`` text: the reason and where the script called it
    (the innermost frame of the script's own lines in a QuickJS stack)."""
    text = reason if reason else "test aborted by the script"
    for match in _FRAME.finditer(stack):
        line = int(match.group(1))
        if line < prelude_offset:
            return f"{text} at {path}:{line}"
    return text


def js_call(run: runner.Run | None, vu: runner.VU | None, path: str, arg: str) -> str:
    """The JS module's Python callable: ``section.key`` → its value as JSON, or
    ``test.abort``; never raises into QuickJS (``{"__error": …}`` is thrown by the
    module at the script's line)."""
    section, _, key = path.partition(".")
    if run is None or vu is None:
        return json.dumps({"__error": f"k6/execution: {path} is not available in the init context"})
    if path == "test.abort":
        reason, message = json.loads(arg)
        run.abort_test(str(message))
        return json.dumps({"__error": f"test aborted: {reason or ''}".rstrip(": ")})
    try:
        return json.dumps(value(run, vu, section, key))
    except ExecutionError as exc:
        return json.dumps({"__error": str(exc)})


JS_MODULE = r"""
(function (ex, strict) {
  function get(path, arg) {
    var out = JSON.parse(ex(path, arg === undefined ? '' : arg));
    if (out !== null && typeof out === 'object' && out.__error !== undefined) {
      throw new Error(out.__error);
    }
    return out;
  }
  function section(name, keys, extra) {
    var o = extra || {};
    keys.forEach(function (k) {
      Object.defineProperty(o, k, {
        get: function () { return get(name + '.' + k); }, enumerable: true });
    });
    return strict('k6/execution.' + name, o);
  }
  var keys = KEYS;
  var test = section('test', keys.test, {
    abort: function (reason) {
      var why = reason === undefined || reason === null ? null : String(reason);
      get('test.abort', JSON.stringify([why, new Error(why || '').stack || '']));
    },
  });
  __k6.modules['k6/execution'] = strict('k6/execution', {
    vu: section('vu', keys.vu), scenario: section('scenario', keys.scenario),
    instance: section('instance', keys.instance), test: test,
  });
})(__py_exec, __k6.strict);
""".replace("KEYS", json.dumps(KEYS))


def install_js(ctx: Any, host: object, program: str) -> str:
    """Add ``k6/execution``'s callable to a QuickJS context; returns the JS to evaluate
    after the k6 prelude and :mod:`stdlib`'s (whose strict member check it shares).
    ``host`` is a JS VU (``run``, ``vu``; in its init context until it has its ``ctx``) or
    the init context's; ``program`` the script's path."""

    def call(path: str, arg: str) -> str:
        in_init = getattr(host, "ctx", None) is None
        run = None if in_init else getattr(host, "run", None)
        vu = None if in_init else getattr(host, "vu", None)
        if path == "test.abort" and run is not None:
            reason, stack = json.loads(arg)
            message = abort_message(reason, stack, program, _PRELUDE_LIMIT)
            return js_call(run, vu, path, json.dumps([reason, message]))
        return js_call(run, vu, path, arg)

    ctx.add_callable("__py_exec", call)
    return JS_MODULE


_PRELUDE_LIMIT = 100_000
"""Lines from here on are mcgw's (script._PRELUDE_OFFSET): not where a script called."""


# --------------------------------------------------------------- Python scenarios


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class Section:
    """One of ``vu.execution.vu`` / ``.scenario`` / ``.instance``: attributes in snake
    case (``id_in_test``), read when asked."""

    def __init__(self, run: runner.Run, vu: runner.VU, name: str) -> None:
        self._run = run
        self._vu = vu
        self._name = name

    def __getattr__(self, attr: str) -> object:
        key = _camel(attr)
        if attr.startswith("_") or key not in KEYS[self._name]:
            raise AttributeError(
                f"vu.execution.{self._name}.{attr} is not supported by mcgw load "
                f"(there are: {', '.join(_snake(k) for k in KEYS[self._name])})"
            )
        return value(self._run, self._vu, self._name, key)


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


class Test:
    """``vu.execution.test``: ``options`` and ``abort(reason)``."""

    def __init__(self, run: runner.Run, path: str) -> None:
        self._run = run
        self._path = path

    @property
    def options(self) -> dict[str, object]:
        return test_options(self._run)

    def abort(self, reason: str = "") -> None:
        """Stop the test (exit code 108); raises to end the calling iteration.

        Raises:
            runner.TestAborted: always.
        """
        text = reason or "test aborted by the script"
        caller = sys._getframe(1)  # where the scenario called it, as k6 says for JS
        where = f"{self._path}:{caller.f_lineno}" if caller.f_code.co_filename == self._path else ""
        self._run.abort_test(f"{text} at {where or self._path}")
        raise runner.TestAborted(f"test aborted: {reason}".rstrip(": "))


class Execution:
    """``vu.execution`` of a Python scenario."""

    def __init__(self, run: runner.Run, vu: runner.VU, path: str) -> None:
        self.vu = Section(run, vu, "vu")
        self.scenario = Section(run, vu, "scenario")
        self.instance = Section(run, vu, "instance")
        self.test = Test(run, path)

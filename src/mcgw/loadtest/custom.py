"""k6's custom metrics (``k6/metrics``): Counter, Gauge, Rate and Trend made by a script.

A script declares its metrics in the init context — k6's rule, so thresholds on them can
be checked before the test starts — and adds samples during iterations::

    import { Trend } from 'k6/metrics';
    const waiting = new Trend('waiting_time', true);     // true: values are times (ms)
    export default function () { waiting.add(http.get(url).timings.waiting, {page: 'home'}); }

Python scenarios declare them at module level (their init context) the same way::

    from mcgw.loadtest import custom
    waiting = custom.Trend("waiting_time", is_time=True)
    async def default(vu): waiting.add((await vu.http.get(URL)).timings["waiting"])

A custom metric is one more entry of the run's :class:`~mcgw.loadtest.metrics.Registry`,
so it is in the summary, ``--out json``, ``--summary-export``, ``handleSummary``, the
thresholds and the ``--workers`` merge like a built-in one. Each sample carries the VU's
tags (scenario, group, ``--tag``) plus the ones given to ``add``, so submetrics such as
``waiting_time{page:home}`` work in thresholds.

Storage: time trends keep nanoseconds like the built-ins; other trends keep thousandths
in the same HdrHistogram (so 3 decimals; values from 0 to 3.6e9, negatives count as 0).
Gauges merged over workers keep the most recent value (built-in ``vus`` adds up instead).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import re
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mcgw.loadtest import errors, metrics, output

NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{1,128}$")
"""k6's rule for metric names (its own expression, so a 1-character name is refused too)."""

_KINDS: tuple[metrics.MetricType, ...] = ("counter", "gauge", "rate", "trend")
_THOUSANDTHS = 1000
"""Non-time trends keep value × this as an integer in the histogram."""


class CustomMetricError(errors.LoadError):
    """A custom metric misused: a bad name, a type clash, made outside the init context."""


@dataclass(frozen=True, slots=True)
class Definition:
    """A custom metric as the script declared it."""

    name: str
    kind: metrics.MetricType
    contains: metrics.Contains
    """``time`` for ``isTime``, else ``default``."""


Definitions = dict[str, Definition]


def define(defs: Definitions, name: object, kind: str, is_time: object = False) -> Definition:
    """Declare ``name`` (again): the same name and type return the same metric, as in k6.

    Raises:
        CustomMetricError: an invalid name, or a name already used with another type
            (a built-in metric's too).
    """
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise CustomMetricError(
            f"invalid metric name {name!r}: metric names must start with a letter or an "
            "underscore and have 2 to 129 ASCII letters, digits or underscores"
        )
    assert kind in _KINDS, kind
    contains: metrics.Contains = "time" if is_time else "default"
    new = Definition(name, kind, contains)
    builtin = metrics.BUILTIN.get(name)
    old = defs.get(name) or (Definition(name, *builtin) if builtin else None)
    if old is not None:
        if old.kind != kind:
            raise CustomMetricError(
                f"metric {name!r} already exists but with type {old.kind}, instead of {kind}"
            )
        if old.contains != contains:
            raise CustomMetricError(
                f"metric {name!r} already exists but with a value type {old.contains}, "
                f"instead of {contains}"
            )
        defs[name] = old  # a built-in's name: samples go to the built-in
        return old
    defs[name] = new
    return new


def kinds(defs: Mapping[str, Definition]) -> dict[str, str]:
    """Metric name → type, what threshold parsing needs."""
    return {name: d.kind for name, d in defs.items()}


def registry_kinds(registry: metrics.Registry) -> dict[str, str]:
    """The custom metrics' types as a finished run's registry holds them."""
    out: dict[str, str] = {}
    for name in registry.names():
        metric = registry.get(name)
        if "{" not in name and name not in metrics.BUILTIN and metric is not None:
            out[name] = metric.kind
    return out


# ------------------------------------------------------------------------- storage


class _Counter(metrics.Counter):
    """A Counter whose samples may be fractions (k6's counters are float sums)."""

    __slots__ = ()

    def add(self, value: float = 1) -> None:
        self.count = self.count + value  # type: ignore[assignment]


class _Gauge(metrics.Gauge):
    """A Gauge that remembers when it was last set: merged over workers, the latest
    value wins (a custom gauge is one quantity, not a share of one like ``vus``)."""

    __slots__ = ("at",)

    def __init__(self, name: str, contains: metrics.Contains = "default") -> None:
        super().__init__(name, contains)
        self.at = 0.0

    def set(self, value: float) -> None:
        super().set(value)
        self.at = time.time()

    def merge(self, other: metrics.Gauge) -> None:
        at = getattr(other, "at", 0.0)
        if other.max == float("-inf"):
            return
        if at >= self.at:
            self.value, self.at = other.value, at
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)


class _FractionTrend(metrics.Trend):
    """A non-time Trend: thousandths in the histogram, values back in the summary."""

    __slots__ = ()

    def stat(self, name: str, duration_s: float = 0.0) -> float | None:
        value = super().stat(name, duration_s)
        if value is None or name == "count":
            return value
        return value / _THOUSANDTHS

    def summary(self, duration_s: float, stats: tuple[str, ...]) -> metrics.MetricSummary:
        raw = super().summary(duration_s, stats)
        values = tuple((k, v if k == "count" else v / _THOUSANDTHS) for k, v in raw.values)
        return metrics.MetricSummary(raw.name, raw.type, raw.contains, values)


def _new_metric(d: Definition, name: str) -> metrics.Metric:
    if d.kind == "counter":
        return _Counter(name, d.contains)
    if d.kind == "gauge":
        return _Gauge(name, d.contains)
    if d.kind == "rate":
        return metrics.Rate(name)
    if d.contains == "time":
        return metrics.Trend(name, "time")
    return _FractionTrend(name, "default")


def _put(d: Definition, metric: metrics.Metric, value: float) -> None:
    """One sample into ``metric``: value as the script gave it (ms for time)."""
    if isinstance(metric, metrics.Trend):
        scale = 1_000_000 if d.contains == "time" else _THOUSANDTHS
        metric.add(round(value * scale))
    elif isinstance(metric, metrics.Rate):
        metric.add(value != 0)
    elif isinstance(metric, metrics.Gauge):
        metric.set(value)
    else:
        metric.add(value)  # type: ignore[arg-type]  # _Counter takes fractions


class TaggedVu(Protocol):
    """What a sample takes from its VU (runner.VU)."""

    tags: dict[str, str]
    group: str


@dataclass(slots=True)
class _Target:
    definition: Definition
    metric: metrics.Metric
    subs: list[tuple[metrics.Selector, metrics.Metric]]
    unexpected: metrics.Metric | None = None
    """http_req_duration: where a sample not tagged ``expected_response:true`` goes too,
    so that it stays out of ``http_req_duration{expected_response:true}`` (the run keeps
    that submetric as the difference of the two)."""


class Recorder:
    """A run's custom metrics: declared up front (with the submetrics its thresholds
    name), samples recorded with their tags, sent to ``--out json`` too."""

    __slots__ = ("_defs", "_json", "_registry", "_targets", "unexpected_duration")

    def __init__(
        self,
        registry: metrics.Registry,
        json_out: output.JsonOutput | None,
        defs: Definitions,
        threshold_names: tuple[str, ...] = (),
    ) -> None:
        self._registry = registry
        self._json = json_out
        self._defs = defs
        """The program's definitions (VUs made later may still add to it)."""
        self._targets: dict[str, _Target] = {}
        self.unexpected_duration: metrics.Metric | None = None
        """The run's durations of unexpected responses (see _Target.unexpected)."""
        # Like the built-ins, a metric is in the summary once it has a sample, or from
        # the start when a threshold names it.
        for full in threshold_names:
            parent, selector = metrics.parse_submetric(full)
            if parent not in defs or parent in metrics.BUILTIN:
                continue
            target = self._target(parent)
            if selector and registry.get(full) is None:
                sub = registry.adopt(_new_metric(target.definition, full))
                target.subs.append((selector, sub))

    def _target(self, name: str, declared: Definition | None = None) -> _Target:
        target = self._targets.get(name)
        if target is not None:
            return target
        d = self._defs.get(name)
        if d is None and declared is not None:
            # A Python metric declared where the scenario's import did not see it (a
            # helper module imported before): its own definition, checked against ours.
            d = define(self._defs, name, declared.kind, declared.contains == "time")
        if d is None:
            raise CustomMetricError(f"metric {name!r} was not declared in the init context")
        metric = self._registry.get(name)
        if metric is None:
            metric = self._registry.adopt(_new_metric(d, name))
        if self._json is not None:
            self._json.declare_metric(name, d.kind, d.contains)
        target = self._targets[name] = _Target(d, metric, [])
        if name in metrics.BUILTIN:
            # Samples added to a built-in (k6 returns it for its name and type) reach its
            # submetrics, declared by the thresholds that name them, as its own do.
            target.subs = list(self._registry.submetrics.get(name, ()))
            if name == "http_req_duration":
                target.unexpected = self.unexpected_duration
        return target

    def add(
        self,
        vu: TaggedVu,
        name: str,
        value: float,
        tags: Mapping[str, str] | None = None,
        declared: Definition | None = None,
    ) -> None:
        """One sample of custom metric ``name`` (time in ms), tagged as the VU is."""
        target = self._targets.get(name) or self._target(name, declared)
        d = target.definition
        _put(d, target.metric, value)
        if not target.subs and self._json is None and target.unexpected is None:
            return  # nothing reads the tags
        full = dict(vu.tags)
        if vu.group:  # in a group; else the VU's own (``::setup`` in setup)
            full["group"] = vu.group
        if tags:
            full.update(tags)
        for selector, sub in target.subs:
            if all(full.get(k) == v for k, v in selector):
                _put(d, sub, value)
        if target.unexpected is not None and full.get("expected_response") != "true":
            _put(d, target.unexpected, value)
        if self._json is not None:
            # JsonOutput takes time trends in ns (as the built-ins record them).
            if d.kind == "trend" and d.contains == "time":
                raw: float = value * 1_000_000
            else:  # k6 writes 2, not 2.0 (a JS number)
                raw = int(value) if float(value).is_integer() else value
            self._json.point(name, raw, full)


def sample_value(value: object) -> float | None:
    """A sample as k6 takes it: a number or a boolean; None for anything else (NaN too)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def tag_map(tags: object) -> dict[str, str] | None:
    """``add``'s tags argument as strings (k6 turns tag values into strings too)."""
    if not tags:
        return None
    if not isinstance(tags, Mapping):
        raise CustomMetricError(f"metric tags must be an object, got {tags!r}")
    return {str(k): v if isinstance(v, str) else _js_string(v) for k, v in tags.items()}


def _js_string(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def warn_invalid(name: str, value: object) -> None:
    """k6 drops a sample that is not a number, with a warning (an error with --throw)."""
    print(
        f"WARN[0000] {value!r} is an invalid value for metric {name!r}, "
        "a number or a boolean value is expected",
        file=sys.stderr,
        flush=True,
    )


# ------------------------------------------------------------------ Python scenarios

_LOADING: contextvars.ContextVar[Definitions | None] = contextvars.ContextVar(
    "mcgw_custom_loading", default=None
)
CURRENT: contextvars.ContextVar[tuple[Recorder, TaggedVu] | None] = contextvars.ContextVar(
    "mcgw_custom_current", default=None
)
"""The recorder and VU of the iteration running in this task (set per iteration)."""


@contextlib.contextmanager
def collecting() -> Iterator[Definitions]:
    """While a Python scenario module is imported (its init context): the metrics it
    declares are collected here."""
    defs: Definitions = {}
    token = _LOADING.set(defs)
    try:
        yield defs
    finally:
        _LOADING.reset(token)


@contextlib.contextmanager
def adding(recorder: Recorder, vu: TaggedVu) -> Iterator[None]:
    """Samples added in this block (a Python ``setup``/``teardown``) go to ``recorder``
    with ``vu``'s tags; iterations set :data:`CURRENT` themselves (once per iteration)."""
    token = CURRENT.set((recorder, vu))
    try:
        yield
    finally:
        CURRENT.reset(token)


class _Metric:
    kind: metrics.MetricType = "counter"

    __slots__ = ("_def",)

    def __init__(self, name: str, is_time: bool = False) -> None:
        if CURRENT.get() is not None:
            raise CustomMetricError(
                f"metric {name!r}: metrics must be declared in the init context "
                "(at module level of the scenario), not in an iteration"
            )
        defs = _LOADING.get()
        self._def = define(defs if defs is not None else {}, name, self.kind, is_time)

    @property
    def name(self) -> str:
        return self._def.name

    def add(self, value: float | bool, tags: Mapping[str, object] | None = None) -> None:
        """Record one sample (for a time metric: milliseconds), with optional tags."""
        current = CURRENT.get()
        if current is None:
            raise CustomMetricError(
                f"metric {self._def.name!r}: samples can only be added during iterations"
            )
        number = sample_value(value)
        if number is None:
            raise CustomMetricError(
                f"{value!r} is an invalid value for metric {self._def.name!r}, "
                "a number or a boolean value is expected"
            )
        recorder, vu = current
        recorder.add(vu, self._def.name, number, tag_map(tags), self._def)


class Counter(_Metric):
    """k6's ``Counter``: a sum (and its rate per second)."""

    __slots__ = ()
    kind: metrics.MetricType = "counter"


class Gauge(_Metric):
    """k6's ``Gauge``: the latest value, with min and max."""

    __slots__ = ()
    kind: metrics.MetricType = "gauge"


class Rate(_Metric):
    """k6's ``Rate``: the share of non-zero samples."""

    __slots__ = ()
    kind: metrics.MetricType = "rate"


class Trend(_Metric):
    """k6's ``Trend``: avg, min, med, max and percentiles (``is_time``: values in ms)."""

    __slots__ = ()
    kind: metrics.MetricType = "trend"


# ------------------------------------------------------------------------ JavaScript

_JS_LINE_OFFSET = 200_000
JS_MODULE = r"""
__k6.modules['k6/metrics'] = (function (newMetric, addSample) {
  function make(kind) {
    function Metric(name, isTime) {
      if (!(this instanceof Metric)) { throw new TypeError(kind + ' must be called with new'); }
      var err = newMetric(String(name), kind, !!isTime);
      if (err) { throw new Error(err); }
      this.name = String(name);
      this.type = kind;
      this.isTime = !!isTime;
    }
    Metric.prototype.add = function (value, tags) {
      var v = (typeof value === 'boolean') ? (value ? 1 : 0) : value;
      var err = addSample(this.name, typeof v === 'number' ? v : String(v),
                          tags === undefined || tags === null ? '' : JSON.stringify(tags));
      if (err) { throw new Error(err); }
      return true;
    };
    return Metric;
  }
  return { Counter: make('counter'), Gauge: make('gauge'), Rate: make('rate'),
           Trend: make('trend') };
})(__py_metric_new, __py_metric_add);
"""


def install_js(ctx: Any, defs: Definitions, host: object) -> None:
    """Add ``k6/metrics`` to a QuickJS context: its callables never raise into QuickJS
    (they return an error message, thrown on the JS side with the script's line).

    A context is in its init context while its host has no ``ctx`` yet (a VU's host gets
    it once the script's top level has run) or when the host is not a VU at all.
    """
    import json

    def in_init() -> bool:
        return getattr(host, "ctx", None) is None or not hasattr(host, "vu")

    def new_metric(name: str, kind: str, is_time: bool) -> str:
        if not in_init():
            return "metrics must be declared in the init context"
        try:
            define(defs, name, kind, is_time)
        except CustomMetricError as exc:
            return str(exc)
        return ""

    def add_sample(name: str, value: object, tags_json: str) -> str:
        if in_init():
            return "using metrics in the init context is not supported"
        run = getattr(host, "run")  # noqa: B009 — duck-typed: script._JsVu
        number = sample_value(value)
        if number is None:
            if run.opts.throw:
                return (
                    f"{value!r} is an invalid value for metric {name!r}, "
                    "a number or a boolean value is expected"
                )
            warn_invalid(name, value)
            return ""
        try:
            tags = tag_map(json.loads(tags_json)) if tags_json else None
            run.custom.add(getattr(host, "vu"), name, number, tags)  # noqa: B009
        except CustomMetricError as exc:
            return str(exc)
        return ""

    ctx.add_callable("__py_metric_new", new_metric)
    ctx.add_callable("__py_metric_add", add_sample)
    # Far below the script's and the prelude's lines: an error thrown here is reported
    # at the script's line that called it (see script._js_error).
    ctx.eval("\n" * _JS_LINE_OFFSET + JS_MODULE)

"""k6 thresholds: pass/fail criteria on metrics, in k6's syntax.

An expression is ``STAT OP VALUE``: ``p(95)<200``, ``avg<=100``, ``rate<0.01``,
``count>10``, ``value==1``; operators ``<``, ``<=``, ``>``, ``>=``, ``==``, ``===``,
``!=``. Time values are in milliseconds, as in k6. The statistics a metric offers follow
its type: counter ``count``/``rate``; gauge ``value``; rate ``rate``; trend ``avg``,
``min``, ``max``, ``med``, ``p(N)``. An object form adds ``abortOnFail`` (stop the test
when it fails) and ``delayAbortEval`` (not before this much test time).

Beyond k6, ``cluster{name:X}`` and ``zone{name:X}`` are rate metrics of the per-cluster
breakdown: the share of answered requests that cluster (zone) served, e.g.
``'cluster{name:gke-west-1}': ['rate>0.8']`` (``share`` is accepted for ``rate``).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mcgw.loadtest import errors, metrics

_EXPR = re.compile(
    r"^\s*(avg|min|max|med|count|rate|share|value|p\(\d+(?:\.\d+)?\))\s*"
    r"(<=|>=|===|==|!=|<|>)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$"
)
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "===": operator.eq,
    "!=": operator.ne,
}
_STATS_BY_TYPE = {
    "counter": ("count", "rate"),
    "gauge": ("value",),
    "rate": ("rate", "share", "count"),
    "trend": ("avg", "min", "max", "med", "p("),
}
BREAKDOWN_METRICS = ("cluster", "zone")
"""Rate metrics mcgw derives from the per-cluster breakdown."""


@dataclass(frozen=True, slots=True)
class Threshold:
    metric: str
    """The metric or submetric name, e.g. ``http_req_duration{status:200}``."""
    source: str
    stat: str
    op: str
    value: float
    abort_on_fail: bool = False
    delay_abort_eval_s: float = 0.0

    def check(self, actual: float | None) -> bool:
        if actual is None:
            return False
        return _OPS[self.op](actual, self.value)


def _parse_one(metric: str, raw: object, custom: Mapping[str, str] = {}) -> Threshold:
    abort, delay = False, 0.0
    if isinstance(raw, Mapping):
        source = raw.get("threshold")
        abort = bool(raw.get("abortOnFail", False))
        delay_raw = raw.get("delayAbortEval")
        if delay_raw is not None:
            from mcgw.loadtest import options

            delay = options.parse_duration(str(delay_raw))
    else:
        source = raw
    if not isinstance(source, str):
        raise errors.LoadError(f"thresholds.{metric}: expected 'stat<value', got {raw!r}")
    match = _EXPR.match(source)
    if match is None:
        raise errors.LoadError(
            f"thresholds.{metric}: cannot parse {source!r}; expected e.g. 'p(95)<200', "
            "'rate<0.01', 'count>10'"
        )
    stat, op, value = match.groups()
    parent, _ = metrics.parse_submetric(metric)
    kind = (
        "rate"
        if parent in BREAKDOWN_METRICS
        else custom.get(parent) or metrics.BUILTIN.get(parent, ("trend", "time"))[0]
    )
    if not any(stat.startswith(s) for s in _STATS_BY_TYPE[kind]):
        raise errors.LoadError(
            f"thresholds.{metric}: {stat!r} does not apply to a {kind} metric "
            f"(use {', '.join(_STATS_BY_TYPE[kind])})"
        )
    if parent not in metrics.BUILTIN and parent not in BREAKDOWN_METRICS and parent not in custom:
        raise errors.LoadError(f"thresholds: unknown metric {parent!r}")
    return Threshold(metric, source.strip(), stat, op, float(value), abort, delay)


def parse(
    config: tuple[tuple[str, tuple[object, ...]], ...], custom: Mapping[str, str] = {}
) -> tuple[Threshold, ...]:
    """Parse every metric's expressions; ``custom`` gives the script's own metrics' types
    (name → counter/gauge/rate/trend).

    Raises:
        errors.LoadError: an expression k6 would reject, or an unknown metric.
    """
    out: list[Threshold] = []
    for metric, exprs in config:
        try:
            metrics.parse_submetric(metric)
        except ValueError as exc:
            raise errors.LoadError(f"thresholds: {exc}") from exc
        out.extend(_parse_one(metric, raw, custom) for raw in exprs)
    return tuple(out)


def breakdown_share(threshold: Threshold, breakdown: Mapping[tuple[str, str], int]) -> float | None:
    """``cluster{name:X}``/``zone{name:X}``: X's share (or count) of answered requests."""
    parent, selector = metrics.parse_submetric(threshold.metric)
    wanted = dict(selector).get("name")
    total = sum(breakdown.values())
    index = 0 if parent == "cluster" else 1
    mine = sum(n for key, n in breakdown.items() if wanted is None or key[index] == wanted)
    if threshold.stat == "count":
        return float(mine)
    return mine / total if total else 0.0


def evaluate(
    threshold: Threshold,
    registry: metrics.Registry,
    duration_s: float,
    breakdown: Mapping[tuple[str, str], int],
) -> bool:
    """Whether the threshold holds now. A metric with no samples fails a threshold
    on it, except counters (count 0) — as k6 evaluates empty sinks."""
    parent, _ = metrics.parse_submetric(threshold.metric)
    if parent in BREAKDOWN_METRICS:
        return threshold.check(breakdown_share(threshold, breakdown))
    metric = registry.get(threshold.metric)
    if metric is None:
        return threshold.check(0.0) if threshold.stat in ("count", "rate") else False
    stat = "rate" if threshold.stat == "share" else threshold.stat
    return threshold.check(metric.stat(stat, duration_s))

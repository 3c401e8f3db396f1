"""k6's end-of-test summary and progress lines, as text.

The layout and number formats follow k6's classic summary (the one in SEED.md): the
scenarios header, one row per metric sorted by name with dots up to a common column,
trend stats in aligned columns, durations humanized (``709ns``, ``5.89µs``,
``128.9ms``, ``1.15s``, ``1m0s``), data in decimal kB/MB, rates as truncated
percentages, then the final ``running (…)`` line and the scenario's progress bar.
"""

from __future__ import annotations

import math
from dataclasses import replace

from mcgw.loadtest import metrics, runner, scenario
from mcgw.loadtest import options as options_mod

BAR_WIDTH = 38
_INDENT = "     "
_SUCCESS, _FAILURE = "✓", "✗"

_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000
_NS_PER_MIN = 60 * _NS_PER_S


def _trunc_fixed(ns: int, unit_ns: int, prec: int) -> str:
    """``ns / unit_ns`` truncated to ``prec`` decimals, trailing zeros dropped.

    Integer arithmetic, so 1.15 s prints as ``1.15s`` and not, through binary floating
    point, as ``1.14s``.
    """
    scaled = ns * 10**prec // unit_ns
    whole, frac = divmod(scaled, 10**prec)
    text = str(frac).rjust(prec, "0").rstrip("0") if prec else ""
    return f"{whole}.{text}" if text else str(whole)


def duration(ms: float) -> str:
    """Humanize a duration given in milliseconds, as k6's summary does."""
    ns = round(ms * _NS_PER_MS)
    if ns <= 0:
        return "0s"
    if ns < 1_000:
        return f"{ns}ns"
    if ns < _NS_PER_MS:
        return _trunc_fixed(ns, 1_000, 2) + "µs"
    if ns < _NS_PER_S:
        return _trunc_fixed(ns, _NS_PER_MS, 2) + "ms"
    seconds = _trunc_fixed(ns % _NS_PER_MIN, _NS_PER_S, 0 if ns > _NS_PER_MIN else 2) + "s"
    minutes = ns // _NS_PER_MIN
    if minutes < 1:
        return seconds
    if minutes < 60:
        return f"{minutes}m{seconds}"
    return f"{minutes // 60}h{minutes % 60}m{seconds}"


def _number(value: float, prec: int = 6) -> str:
    """k6's ``toFixedNoTrailingZeros``: fixed decimals, trailing zeros dropped."""
    text = f"{value:.{prec}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def data(size: float) -> str:
    """Humanize a byte count with decimal units, as k6 does (``849 kB``, ``2.1 kB``)."""
    if size < 10:
        return f"{_number(size)} B"
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    exp = min(math.floor(math.log(size) / math.log(1000)), len(units) - 1)
    value = math.floor(size / 1000**exp * 10 + 0.5) / 10
    return f"{value:.{1 if value < 10 else 0}f} {units[exp]}"


def percent(rate: float) -> str:
    """A rate as k6 prints it: truncated, not rounded, to two decimals."""
    return f"{math.trunc(rate * 100 * 100) / 100:.2f}%"


def go_duration(seconds: float) -> str:
    """Format like Go's ``time.Duration.String`` (``30s``, ``1m0s``, ``1m30s``, ``1h0m0s``)."""
    ns = round(seconds * _NS_PER_S)
    if ns == 0:
        return "0s"
    if ns < _NS_PER_S:
        for unit, size in (("ms", _NS_PER_MS), ("µs", 1_000)):
            if ns >= size:
                return _number(ns / size, 9) + unit
        return f"{ns}ns"
    hours, rest = divmod(ns, 3_600 * _NS_PER_S)
    minutes, rest = divmod(rest, _NS_PER_MIN)
    secs = _number(rest / _NS_PER_S, 9) + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs


def elapsed(seconds: float, max_seconds: float = 0.0) -> str:
    """k6's fixed-length running time: ``0m12.0s``, ``1m01.1s`` (tenths, truncated)."""
    tenths = max(0, int(seconds * 10))
    hours, rest = divmod(tenths, 36_000)
    minutes, rest = divmod(rest, 600)
    secs, tenth = divmod(rest, 10)
    if hours or max_seconds >= 3_600:
        return f"{hours}h{minutes:02d}m{secs:02d}.{tenth}s"
    return f"{minutes}m{secs:02d}.{tenth}s"


def _describe(scen: scenario.Scenario) -> str:
    grace = f"gracefulStop: {go_duration(scen.graceful_stop_s)}"
    ex = scen.executor
    if ex == "constant-vus":
        what = f"{scen.vus} looping VUs for {go_duration(scen.duration_s)} ({grace}"
    elif ex == "shared-iterations":
        what = (
            f"{scen.iterations} iterations shared among {scen.vus} VUs "
            f"(maxDuration: {go_duration(scen.duration_s)}, {grace}"
        )
    elif ex == "per-vu-iterations":
        what = (
            f"{scen.iterations} iterations for each of {scen.vus} VUs "
            f"(maxDuration: {go_duration(scen.duration_s)}, {grace}"
        )
    elif ex == "ramping-vus":
        what = (
            f"Up to {scen.peak_vus} looping VUs for {go_duration(scen.duration_s)} over "
            f"{len(scen.stages)} stages (gracefulRampDown: "
            f"{go_duration(scen.graceful_ramp_down_s)}, {grace}"
        )
    else:
        unit = (
            go_duration(scen.time_unit_s).removeprefix("1")
            if scen.time_unit_s == 1
            else (go_duration(scen.time_unit_s))
        )
        rate = (
            scen.rate
            if ex == "constant-arrival-rate"
            else max([scen.rate, *(s.target for s in scen.stages)])
        )
        prefix = "" if ex == "constant-arrival-rate" else "Up to "
        stages = "" if ex == "constant-arrival-rate" else f" over {len(scen.stages)} stages"
        what = (
            f"{prefix}{rate:.2f} iterations/{unit} for {go_duration(scen.duration_s)}{stages} "
            f"(maxVUs: {scen.vus}-{scen.peak_vus}, {grace}"
        )
    if scen.start_time_s:
        what += f", startTime: {go_duration(scen.start_time_s)}"
    if scen.exec_name != "default":
        what += f", exec: {scen.exec_name}"
    return what + ")"


def header(scen: scenario.Scenario | tuple[scenario.Scenario, ...]) -> str:
    """The ``scenarios:`` lines k6 prints before the run."""
    scens = scen if isinstance(scen, tuple) else (scen,)
    max_vus = sum(s.peak_vus for s in scens)
    max_duration = max(s.start_time_s + s.max_duration_s for s in scens)
    count = f"{len(scens)} scenario" + ("s" if len(scens) > 1 else "")
    lines = [
        f"  scenarios: (100.00%) {count}, {max_vus} max VUs, "
        f"{go_duration(max_duration)} max duration (incl. graceful stop):"
    ]
    lines += [f"           * {s.name}: {_describe(s)}" for s in scens]
    return "\n".join(lines) + "\n"


def progress_line(p: runner.Progress) -> str:
    """``running (0m12.0s), 30/30 VUs, 340 complete and 0 interrupted iterations``."""
    width = len(str(p.vus_max))
    seconds = p.elapsed_s if p.test_elapsed_s is None else p.test_elapsed_s
    return (
        f"running ({elapsed(seconds, p.scenario.max_duration_s)}), "
        f"{p.vus:0{width}d}/{p.vus_max} VUs, {p.complete} complete and "
        f"{p.interrupted} interrupted iterations"
    )


def bar_line(p: runner.Progress, *, done: bool = False) -> str:
    """The scenario's progress bar, e.g. ``default ✓ [====] 30 VUs  1m0s`` when done."""
    scen = p.scenario
    if scen.executor == "shared-iterations" and scen.iterations:
        fraction = p.complete / scen.iterations
    elif scen.executor == "per-vu-iterations" and scen.iterations:
        fraction = p.complete / (scen.iterations * scen.vus)
    else:
        fraction = p.elapsed_s / scen.duration_s if scen.duration_s else 1.0
    fraction = 1.0 if done else min(max(fraction, 0.0), 1.0)
    filled = int(fraction * BAR_WIDTH)
    bar = "=" * filled + (">" + "-" * (BAR_WIDTH - filled - 1) if filled < BAR_WIDTH else "")
    mark = _SUCCESS if done else " "
    limit = go_duration(scen.duration_s)
    if scen.executor == "per-vu-iterations":
        right = (
            f"{elapsed(p.elapsed_s, scen.max_duration_s)}/{limit}  "
            f"{p.complete}/{(scen.iterations or 0) * scen.vus} iters, {scen.iterations} per VU"
        )
    elif scen.executor != "shared-iterations":
        right = limit if done else f"{elapsed(p.elapsed_s, scen.max_duration_s)}/{limit}"
    else:
        right = (
            f"{elapsed(p.elapsed_s, scen.max_duration_s)}/{limit}  "
            f"{p.complete}/{scen.iterations} shared iters"
        )
    if scen.open_model:
        return f"{scen.name} {mark} [{bar}] {scen.vus}/{scen.peak_vus} VUs  {right}"
    return f"{scen.name} {mark} [{bar}] {scen.peak_vus} VUs  {right}"


def _display_name(name: str) -> str:
    _, brace, tags = name.partition("{")
    if not brace:
        return name
    return "  { " + tags.rstrip("}") + " }"


def _value(value: float, metric: metrics.MetricSummary) -> str:
    if metric.type == "rate":
        return percent(value)
    if metric.contains == "data":
        return data(value)
    if metric.contains == "time":
        return duration(value)
    return _number(value)


def metric_rows(summary: metrics.Summary, trend_stats: tuple[str, ...]) -> list[str]:
    """The metric block: one aligned row per metric, sorted by name; a metric with
    thresholds is marked ✓ (all hold) or ✗ (one failed) before its name, as k6 does."""
    marks: dict[str, str] = {}
    for row in summary.thresholds:
        if not row.ok:
            marks[row.metric] = _FAILURE
        else:
            marks.setdefault(row.metric, _SUCCESS)
    if not summary.metrics:
        return []
    names = {m.name: _display_name(m.name) for m in summary.metrics}
    name_width = max(len(n) for n in names.values())
    trend_cols: dict[str, list[str]] = {}
    col_widths = [0] * len(trend_stats)
    plain: dict[str, tuple[str, list[str]]] = {}
    value_width = 0
    extra_widths = [0, 0]
    for m in summary.metrics:
        if m.type == "trend":
            cols = [f"{stat}={_value(m.get(stat), m)}" for stat in trend_stats]
            if "count" in trend_stats:  # a count is a number, whatever the trend holds
                cols[trend_stats.index("count")] = f"count={_number(m.get('count'))}"
            trend_cols[m.name] = cols
            for i, col in enumerate(cols):
                col_widths[i] = max(col_widths[i], len(col))
            continue
        if m.type == "counter":
            value = _value(m.get("count"), m)
            extras = [_value(m.get("rate"), m) + "/s"]
        elif m.type == "gauge":
            value = _value(m.get("value"), m)
            extras = [f"min={_value(m.get('min'), m)}", f"max={_value(m.get('max'), m)}"]
        else:  # rate: ✓ counts the true samples (for http_req_failed: the failures)
            value = percent(m.get("rate"))
            extras = [f"{_SUCCESS} {int(m.get('passes'))}", f"{_FAILURE} {int(m.get('fails'))}"]
        plain[m.name] = (value, extras)
        value_width = max(value_width, len(value))
        for i, extra in enumerate(extras):
            extra_widths[i] = max(extra_widths[i], len(extra))
    rows = []
    for m in summary.metrics:
        display = names[m.name]
        dots = "." * (name_width - len(display) + 3)
        if m.name in trend_cols:
            cells = [c.ljust(w) for c, w in zip(trend_cols[m.name], col_widths, strict=True)]
            text = " ".join(cells)
        else:
            value, extras = plain[m.name]
            text = value.ljust(value_width)
            if len(extras) == 1:
                text += " " + extras[0]
            else:
                padded = (e.ljust(w) for e, w in zip(extras, extra_widths, strict=True))
                text += " " + " ".join(padded)
        indent = _INDENT
        mark = marks.get(m.name)
        if mark:
            # k6: indent, the mark, a space, then the (sub)metric name.
            if display.startswith("  "):
                indent, display = _INDENT + "  ", display[2:]
            indent = indent[:-2] + mark + " "
        rows.append(f"{indent}{display}{dots}: {text}".rstrip())
    return rows


def check_rows(summary: metrics.Summary) -> list[str]:
    """k6's checks block: groups as ``█ name``, each check ✓ or ✗ with its pass share."""
    if not summary.checks:
        return []
    out: list[str] = []
    by_group: dict[str, list[metrics.CheckRow]] = {}
    for row in summary.checks:
        by_group.setdefault(row.group, []).append(row)
    for group in sorted(by_group):
        depth = group.count("::")
        pad = _INDENT + "  " * depth
        if group:
            out.append(f"{pad[:-2]}█ {group.rsplit('::', 1)[-1]}")
            out.append("")
        for row in by_group[group]:
            total = row.passes + row.fails
            if row.fails == 0:
                out.append(f"{pad}{_SUCCESS} {row.name}")
            else:
                out.append(f"{pad}{_FAILURE} {row.name}")
                share = int(100 * row.passes / total) if total else 0
                out.append(f"{pad} ↳  {share}% — {_SUCCESS} {row.passes} / {_FAILURE} {row.fails}")
        out.append("")
    return out


def breakdown_rows(summary: metrics.Summary) -> list[str]:
    """Responses per backend cluster and zone, most first, with their share."""
    if not summary.breakdown:
        return []
    total = sum(row.responses for row in summary.breakdown)
    labels = [
        f"  {row.cluster or '(unknown)'} / {row.zone or '(unknown)'}" for row in summary.breakdown
    ]
    width = max(len(label) for label in labels)
    count_width = max(len(str(row.responses)) for row in summary.breakdown)
    out = [f"{_INDENT}responses by cluster_name / zone:"]
    for label, row in zip(labels, summary.breakdown, strict=True):
        share = f"{100 * row.responses / total:.2f}%"
        dots = "." * (width - len(label) + 3)
        out.append(f"{_INDENT}{label}{dots}: {str(row.responses).ljust(count_width)} {share}")
    return out


def render(summary: metrics.Summary, options: options_mod.LoadOptions) -> str:
    """The whole end-of-test text: header, metrics, final progress, then the breakdown."""
    scens = tuple(
        s for s in summary.scenarios if isinstance(s, scenario.Scenario)
    ) or runner.scenarios_for(options)
    final = runner.Progress(
        elapsed_s=summary.duration_s,
        vus=0,
        vus_max=summary.vus_max,
        complete=summary.complete,
        interrupted=summary.interrupted,
        scenario=scens[0],
    )
    lines = [header(scens), *check_rows(summary)]
    lines += [*metric_rows(summary, options.summary_trend_stats), ""]
    lines.append(progress_line(final))
    counts = {name: (done, cut) for name, done, cut in summary.scenario_counts}
    for scen in scens:
        done, cut = counts.get(scen.name, (summary.complete, summary.interrupted))
        mine = replace(final, scenario=scen, complete=done, interrupted=cut)
        lines.append(bar_line(mine, done=summary.finished))
    extra = breakdown_rows(summary)
    if extra:
        lines += ["", *extra]
    if summary.aborted:
        lines += ["", f"ERRO[{elapsed(summary.duration_s)}] test aborted: {summary.aborted}"]
    failed = [r for r in summary.thresholds if not r.ok]
    if failed:
        names = ", ".join(sorted({r.metric for r in failed}))
        lines += ["", f"ERRO thresholds on metrics '{names}' have been crossed"]
    return "\n".join(lines) + "\n"

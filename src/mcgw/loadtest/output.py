"""Machine-readable results: k6's ``--out json`` NDJSON, ``--summary-export`` JSON, and
a self-contained HTML report (inline SVG charts, no scripts or CDN).

The NDJSON stream has k6's two line shapes: a ``Metric`` line the first time a metric
appears (name, type, contains, thresholds) and one ``Point`` line per sample with its
time (RFC 3339, local offset), value (ms for time metrics) and tags. Writes go through a
large buffer; the file is flushed at the end of the run.
"""

from __future__ import annotations

import datetime
import html
import json
from collections.abc import Mapping
from typing import IO

from mcgw.loadtest import metrics

_BUFFER = 1 << 20
_UNKNOWN: tuple[metrics.MetricType, metrics.Contains] = ("trend", "default")


class JsonOutput:
    """k6's ``--out json=FILE``."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._declared: set[str] = set()
        self._thresholds: dict[str, list[str]] = {}
        self._dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        self._types: dict[str, tuple[metrics.MetricType, metrics.Contains]] = dict(metrics.BUILTIN)

    @classmethod
    def open(cls, path: str) -> JsonOutput:
        return cls(open(path, "w", encoding="utf-8", buffering=_BUFFER))

    def declare_thresholds(self, config: tuple[tuple[str, tuple[object, ...]], ...]) -> None:
        for name, exprs in config:
            parent = name.partition("{")[0]
            self._thresholds.setdefault(parent, []).extend(
                str(e.get("threshold") if isinstance(e, Mapping) else e) for e in exprs
            )

    def declare_metric(self, name: str, kind: metrics.MetricType, contains: str) -> None:
        """A script's custom metric: its type for the ``Metric`` line and its values."""
        self._types[name] = (kind, contains)  # type: ignore[assignment]

    def point(self, name: str, raw: float, tags: Mapping[str, str]) -> None:
        kind, contains = self._types.get(name, _UNKNOWN)
        if name not in self._declared:
            self._declared.add(name)
            meta = {
                "type": "Metric",
                "data": {
                    "name": name,
                    "type": kind,
                    "contains": contains,
                    "thresholds": self._thresholds.get(name, []),
                    "submetrics": None,
                },
                "metric": name,
            }
            self._stream.write(self._dumps(meta) + "\n")
        if kind == "trend" and contains == "time":
            value: float = raw / 1e6  # ns → ms, as k6 writes time values
        elif kind == "rate":
            value = 1 if raw else 0
        else:
            value = raw
        line = {
            "metric": name,
            "type": "Point",
            "data": {
                "time": datetime.datetime.now().astimezone().isoformat(),
                "value": value,
                "tags": dict(tags),
            },
        }
        self._stream.write(self._dumps(line) + "\n")

    def close(self) -> None:
        self._stream.close()


def summary_json(summary: metrics.Summary) -> dict[str, object]:
    """k6's ``--summary-export`` shape: ``metrics`` by name with their values (time in
    ms), thresholds per metric as ``{source: failed?}`` under ``thresholds``, plus the
    ``root_group`` checks and mcgw's ``breakdown``."""
    thresholds: dict[str, dict[str, bool]] = {}
    for row in summary.thresholds:
        # k6's export stores, per threshold, whether it *failed*.
        thresholds.setdefault(row.metric, {})[row.source] = not row.ok
    out_metrics: dict[str, object] = {}
    for m in summary.metrics:
        entry: dict[str, object] = dict(m.values)
        if m.type == "rate":
            entry = {
                "value": m.get("rate"),
                "passes": int(m.get("passes")),
                "fails": int(m.get("fails")),
            }
        if m.name in thresholds:
            entry["thresholds"] = thresholds[m.name]
        out_metrics[m.name] = entry
    for name, ths in thresholds.items():
        if name not in out_metrics:
            out_metrics[name] = {"thresholds": ths}
    checks: dict[str, object] = {}
    for check in summary.checks:
        checks[check.name] = {
            "name": check.name,
            "path": f"{check.group}::{check.name}",
            "passes": check.passes,
            "fails": check.fails,
        }
    return {
        "root_group": {"name": "", "path": "", "checks": checks, "groups": {}},
        "metrics": out_metrics,
        "state": {"testRunDurationMs": summary.duration_s * 1000},
        "breakdown": [
            {"cluster": r.cluster, "zone": r.zone, "responses": r.responses}
            for r in summary.breakdown
        ],
        "thresholds_ok": summary.thresholds_ok,
    }


def summary_data(summary: metrics.Summary, trend_stats: tuple[str, ...]) -> dict[str, object]:
    """What k6 hands ``handleSummary(data)``: ``metrics`` by name as ``{type, contains,
    values, thresholds?}`` (time in ms, thresholds as ``{source: {ok}}``), ``root_group``
    with nested ``groups`` and ``checks`` lists, ``options`` and ``state``; plus mcgw's
    ``breakdown``."""
    thresholds: dict[str, dict[str, dict[str, bool]]] = {}
    for row in summary.thresholds:
        thresholds.setdefault(row.metric, {})[row.source] = {"ok": row.ok}
    out_metrics: dict[str, object] = {}
    for m in summary.metrics:
        values: dict[str, float] = dict(m.values)
        entry: dict[str, object] = {"type": m.type, "contains": m.contains, "values": values}
        if m.name in thresholds:
            entry["thresholds"] = thresholds[m.name]
        out_metrics[m.name] = entry

    def new_group(name: str, path: str) -> dict[str, object]:
        return {"name": name, "path": path, "id": "", "groups": [], "checks": []}

    root = new_group("", "")
    by_path: dict[str, dict[str, object]] = {"": root}
    for check in summary.checks:
        group = root
        path = ""
        for part in check.group.split("::")[1:]:
            path = f"{path}::{part}"
            found = by_path.get(path)
            if found is None:
                found = by_path[path] = new_group(part, path)
                group["groups"].append(found)  # type: ignore[attr-defined]
            group = found
        group["checks"].append(  # type: ignore[attr-defined]
            {
                "name": check.name,
                "path": f"{check.group}::{check.name}",
                "id": "",
                "passes": check.passes,
                "fails": check.fails,
            }
        )
    return {
        "root_group": root,
        "options": {
            "summaryTrendStats": list(trend_stats),
            "summaryTimeUnit": "",
            "noColor": False,
        },
        "state": {
            "isStdOutTTY": False,
            "isStdErrTTY": False,
            "testRunDurationMs": summary.duration_s * 1000,
        },
        "metrics": out_metrics,
        "breakdown": [
            {"cluster": r.cluster, "zone": r.zone, "responses": r.responses}
            for r in summary.breakdown
        ],
    }


def write_summary(path: str, summary: metrics.Summary) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(summary_json(summary), f, indent=2, ensure_ascii=False)
        f.write("\n")


_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def _polyline(points: list[tuple[float, float]], color: str) -> str:
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{coords}"/>'


def _latency_svg(timeline: tuple[metrics.TimePoint, ...]) -> str:
    width, height, pad = 760, 240, 40
    if not timeline:
        return "<p>No requests.</p>"
    t_max = max(p.t for p in timeline) or 1
    y_max = max(max(p.p95_ms for p in timeline), max(p.p50_ms for p in timeline), 0.001)

    def xy(t: float, v: float) -> tuple[float, float]:
        return (
            pad + (width - 2 * pad) * t / t_max,
            height - pad - (height - 2 * pad) * v / y_max,
        )

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'role="img" aria-label="latency over time">',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#999"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#999"/>',
        f'<text x="{pad}" y="{pad - 8}" font-size="11">{y_max:.2f} ms</text>',
        f'<text x="{width - pad}" y="{height - pad + 16}" font-size="11" '
        f'text-anchor="end">{t_max} s</text>',
        _polyline([xy(p.t, p.p50_ms) for p in timeline], _PALETTE[0]),
        _polyline([xy(p.t, p.p95_ms) for p in timeline], _PALETTE[1]),
        f'<text x="{width - pad}" y="{pad}" font-size="11" fill="{_PALETTE[0]}" '
        'text-anchor="end">p50</text>',
        f'<text x="{width - pad}" y="{pad + 14}" font-size="11" fill="{_PALETTE[1]}" '
        'text-anchor="end">p95</text>',
        "</svg>",
    ]
    return "".join(parts)


def _breakdown_svg(summary: metrics.Summary) -> str:
    rows = summary.breakdown
    if not rows:
        return "<p>No per-cluster breakdown (run with <code>--breakdown</code>).</p>"
    total = sum(r.responses for r in rows) or 1
    bar_h, width, label_w = 22, 760, 260
    height = bar_h * len(rows) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'role="img" aria-label="responses per cluster">'
    ]
    for i, r in enumerate(rows):
        y = 5 + i * bar_h
        share = r.responses / total
        w = (width - label_w - 80) * share
        label = html.escape(f"{r.cluster or '(unknown)'} / {r.zone or '(unknown)'}")
        color = _PALETTE[i % len(_PALETTE)]
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{label}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{bar_h - 6}" fill="{color}"/>'
        )
        parts.append(
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="12">'
            f"{r.responses} ({100 * share:.1f}%)</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _cluster_time_svg(timeline: tuple[metrics.TimePoint, ...]) -> str:
    names = sorted({name for p in timeline for name, _ in p.clusters})
    if not names:
        return ""
    width, height, pad = 760, 200, 40
    t_max = max(p.t for p in timeline) or 1
    y_max = max((n for p in timeline for _, n in p.clusters), default=1) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'role="img" aria-label="responses per cluster over time">'
    ]
    for i, name in enumerate(names):
        color = _PALETTE[i % len(_PALETTE)]
        pts = [
            (
                pad + (width - 2 * pad) * p.t / t_max,
                height - pad - (height - 2 * pad) * dict(p.clusters).get(name, 0) / y_max,
            )
            for p in timeline
        ]
        parts.append(_polyline(pts, color))
        parts.append(
            f'<text x="{width - pad}" y="{pad + 14 * i}" font-size="11" fill="{color}" '
            f'text-anchor="end">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def html_report(summary: metrics.Summary, text_summary: str) -> str:
    """One self-contained HTML page: charts as inline SVG and the text summary."""
    th_rows = "".join(
        f"<tr><td>{'✓' if r.ok else '✗'}</td><td>{html.escape(r.metric)}</td>"
        f"<td><code>{html.escape(r.source)}</code></td></tr>"
        for r in summary.thresholds
    )
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>mcgw load report</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{background:#f6f6f6;padding:1em}"
        "td{padding:0 .6em}</style></head><body>\n"
        "<h1>mcgw load report</h1>\n"
        "<h2>Latency over time (http_req_duration, per second)</h2>\n"
        f"{_latency_svg(summary.timeline)}\n"
        "<h2>Responses per cluster</h2>\n"
        f"{_breakdown_svg(summary)}\n{_cluster_time_svg(summary.timeline)}\n"
        + (f"<h2>Thresholds</h2><table>{th_rows}</table>\n" if th_rows else "")
        + f"<h2>Summary</h2>\n<pre>{html.escape(text_summary)}</pre>\n</body></html>\n"
    )

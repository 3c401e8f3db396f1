"""``mcgw translate``, ``mcgw status`` and ``mcgw features``: what the control plane makes
of the files, and what it supports."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from mcgw.config import load
from mcgw.dataplane import conditions
from mcgw.fleet import endpoints
from mcgw.fleet import errors as fleet_errors
from mcgw.ir import codec
from mcgw.ir import table as ir
from mcgw.translate import features, status, translator


def translate(paths: Sequence[Path], fmt: str = "yaml") -> str:
    """The compiled route table, exactly as the data plane would run it."""
    result = translator.translate(load.load(paths).resources)
    if fmt == "json":
        return codec.dump_json(result.table).decode()
    return codec.dump_yaml(result.table)


def status_report(paths: Sequence[Path], *, planned: bool = True, probe: bool = False) -> str:
    """Every resource with its conditions, then every backend group with its endpoints.

    Args:
        planned: add the endpoints of the pods the local fleet would run for the
            Deployments in the files (``mcgw up``), so backends show where traffic
            would go; EndpointSlices in the files are shown either way.
        probe: send each endpoint its health check once (they must be running, e.g.
            under ``mcgw up``) and warn of paths answering 404.
    """
    loaded = load.load(paths)
    resources = loaded.resources
    notes = list(loaded.warnings)
    shown_planned = False
    if planned and any(cluster.deployments for cluster in resources.clusters):
        try:
            resources = endpoints.with_planned(resources, python=sys.executable)
            shown_planned = True
            notes.append(
                "endpoints of Deployments are the local fleet's plan (`mcgw up`); "
                "pod names get a new suffix at each start"
            )
        except fleet_errors.NotRunnableError as exc:
            notes.append(f"the local fleet could not run these Deployments: {exc}")
    result = translator.translate(resources)
    if probe:
        notes += asyncio.run(probe_notes(result.table))
    return render_status(result, notes, planned=shown_planned)


async def probe_notes(route_table: ir.RouteTable, timeout_s: float = 2.0) -> list[str]:
    """Probe every endpoint's health check once; warnings for paths answering 404, and a
    count of what answered."""
    targets: dict[tuple[str, int, str], str] = {}
    for backend in route_table.backends:
        check = backend.health_check
        for group in backend.groups:
            for ep in group.endpoints:
                port = check.port if check.port is not None else ep.port
                targets.setdefault((ep.address, port, check.path), backend.name)
    keys = sorted(targets)
    statuses = await asyncio.gather(
        *(
            conditions.probe_status(
                address,
                port,
                f"GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: mcgw-status\r\n"
                "Connection: close\r\n\r\n".encode("latin-1"),
                timeout_s,
            )
            for address, port, path in keys
        )
    )
    notes = [
        f"warning: backend {targets[key]}: {conditions.not_found_message(*key)}"
        for key, status in zip(keys, statuses, strict=True)
        if status == 404
    ]
    answered = sum(1 for status in statuses if status is not None)
    healthy = sum(1 for status in statuses if status == 200)
    notes.append(
        f"probed {len(keys)} health checks: {healthy} healthy (200), "
        f"{answered - healthy} answered otherwise, {len(keys) - answered} did not answer"
    )
    return notes


def status_objects(paths: Sequence[Path], fmt: str = "yaml", now: datetime | None = None) -> str:
    """Every object's status as Kubernetes would show it: a ``List`` in YAML or JSON.

    Args:
        fmt: ``yaml`` or ``json``.
        now: the ``lastTransitionTime`` of every condition (default: the current time).
    """
    result = translator.translate(load.load(paths).resources)
    return render_objects(result, fmt, now)


def render_objects(
    result: translator.Result, fmt: str = "yaml", now: datetime | None = None
) -> str:
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    supported = features.supported()
    document = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [status.kubernetes(obj, stamp, supported) for obj in result.statuses],
    }
    if fmt == "json":
        return json.dumps(document, indent=2) + "\n"
    return codec.to_yaml(document)


def features_report(*, show_all: bool = False) -> str:
    """One supported Gateway API feature name a line; with ``show_all`` also those left
    out, with why."""
    lines = list(features.supported())
    if show_all:
        lines += [f"# not supported: {name}: {why}" for name, why in features.NOT_CLAIMED]
    return "\n".join(lines) + "\n"


def _condition_lines(conditions: Sequence[status.Condition], indent: str) -> list[str]:
    return [
        f"{indent}{c.type}={c.status} ({c.reason})" + (f": {c.message}" if c.message else "")
        for c in conditions
    ]


def render_status(
    result: translator.Result, warnings: Sequence[str] = (), *, planned: bool = False
) -> str:
    lines: list[str] = []
    for obj in result.statuses:
        where = f" [cluster {obj.cluster}]" if obj.cluster else ""
        name = f"{obj.namespace}/{obj.name}" if obj.namespace else obj.name
        lines.append(f"{obj.kind} {name}{where}")
        if obj.addresses:
            lines.append(f"    addresses: {', '.join(obj.addresses)}")
        lines += _condition_lines(obj.conditions, "    ")
        for listener in obj.listeners:
            lines.append(f"    listener {listener.name}: attachedRoutes={listener.attached_routes}")
            lines += _condition_lines(listener.conditions, "        ")
        for parent in obj.parents:
            lines.append(f"    parent {parent.parent_ref}")
            lines += _condition_lines(parent.conditions, "        ")
    lines.append("")
    lines += render_backends(result.table, planned=planned)
    for note in (*warnings, *result.warnings):
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def render_backends(table: ir.RouteTable, *, planned: bool = False) -> list[str]:
    lines = []
    rank = {region: i for i, (region, _) in enumerate(table.locality.region_rtt_ms)}
    rtt = dict(table.locality.region_rtt_ms)
    if table.locality.entry_region:
        order = ", ".join(f"{r} ({ms:.0f} ms)" for r, ms in table.locality.region_rtt_ms)
        lines.append(f"Locality: entry {table.locality.entry_region}; regions by RTT: {order}")
    for entry in table.locality.other_entries:
        order = ", ".join(f"{r} ({ms:.0f} ms)" for r, ms in entry.region_rtt_ms)
        lines.append(f"    entering at {entry.entry_region}: {order}")
    for client in table.locality.client_regions:
        lines.append(f"    clients of {client.cidr} enter at {client.region}")
    for backend in table.backends:
        lines.append(f"Backend {backend.name}")
        groups = sorted(backend.groups, key=lambda g: (rank.get(g.region, len(rank)), g.cluster))
        if not groups:
            lines.append("    (no endpoints)")
        for group in groups:
            ms = rtt.get(group.region)
            far = f", {ms:.0f} ms" if ms is not None else ""
            lines.append(f"    group {group.cluster} {group.zone} ({group.region}{far})")
            for ep in group.endpoints:
                state = "planned" if planned else "ready" if ep.ready else "not ready"
                pod = f" {ep.pod}" if ep.pod else ""
                lines.append(f"        {ep.address}:{ep.port}{pod} {state}")
    return lines

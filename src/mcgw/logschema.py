"""The shape of mcgw's logs: the data plane and the fleet write it, analytics reads it.

Every line of every log file is one JSON object shaped like a Cloud Logging
``LogEntry`` (https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry), so
that queries written for Log Analytics read them unchanged:

* the gateway's access log: ``resource.type = "http_load_balancer"``, with
  ``httpRequest`` and a ``jsonPayload`` naming the backend cluster, zone and pod and
  why they were chosen;
* pods' stdout/stderr under the local fleet: ``resource.type = "k8s_container"``, with
  ``resource.labels.location`` the pod's zone.

Records are built cheaply on the hot path (:class:`AccessRecord` is a slotted tuple of
plain values) and turned into JSON later, in batches, by the log writer.

Files: ``<log dir>/access-*.jsonl`` and ``<log dir>/containers-*.jsonl``; readers take
every ``*.jsonl`` below the log directory.
"""

from __future__ import annotations

import json
import json.encoder
import os
import time
from datetime import UTC, datetime
from typing import Any, NamedTuple

DEFAULT_PROJECT = "mcgw-local"
"""``project_id`` label when no Fleet names a project."""

LB_LOG_NAME = "requests"
"""Cloud Logging's log id for load balancer request logs."""

LB_PAYLOAD_TYPE = "type.googleapis.com/google.cloud.loadbalancing.type.LoadBalancerLogEntry"


class AccessRecord(NamedTuple):
    """One request as the gateway saw it. Field order is part of the schema."""

    timestamp: float
    """When the request arrived, seconds since the epoch (time.time())."""
    method: str
    scheme: str
    host: str
    target: str
    """Request target as received: path and query."""
    protocol: str
    """``HTTP/1.1`` or ``HTTP/1.0``."""
    status: int
    latency_s: float
    """From the first byte of the request to the last byte of the response."""
    request_size: int
    response_size: int
    remote_ip: str
    server_ip: str
    user_agent: str
    gateway: str
    """``<namespace>/<name>`` of the Gateway."""
    route: str
    """:attr:`mcgw.ir.table.Route.name`, or empty when no route matched."""
    backend: str
    """:attr:`mcgw.ir.table.Backend.name`, or empty."""
    cluster: str
    region: str
    zone: str
    pod: str
    endpoint: str
    """``address:port`` of the endpoint that answered, or empty."""
    reason: str
    """Why this cluster: ``closest``, ``failover``, ``retry``, ``no_route``, …"""
    entry_region: str
    attempts: int
    """Upstream attempts made (1 unless a connect failure was retried)."""
    status_details: str
    """Cloud Load Balancing's statusDetails, e.g. ``response_sent_by_backend``."""


def rfc3339(ts: float) -> str:
    """Format epoch seconds as Cloud Logging does: UTC, microseconds, ``Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _insert_id() -> str:
    return os.urandom(8).hex()


_q = json.encoder.encode_basestring_ascii
"""JSON string literal of a str (quotes included), in C: the cheapest correct escaping."""


class AccessFormatter:
    """Turns :class:`AccessRecord` s into LogEntry JSON lines, fast.

    This runs for every request the gateway serves, so it avoids what a generic
    ``json.dumps(dict)`` costs (about four times as much): names that come from the
    route table are escaped once and remembered, timestamps reuse the formatted second,
    and insertIds are a per-process random prefix plus a counter rather than a syscall
    each. Output is exactly ``json.dumps(entry, separators=(",", ":"))`` of the entry
    :func:`access_entry` returns.
    """

    _MAX_CACHED = 4096
    """Bound on remembered names; the cache restarts past it (a table with more names
    than this only loses the speed-up, never correctness)."""

    def __init__(self, project_id: str = DEFAULT_PROJECT) -> None:
        self._prefix = os.urandom(4).hex()
        self._seq = 0
        self._second = -1
        self._second_text = ""
        self._quoted: dict[str, str] = {}
        log_name = _q(f"projects/{project_id}/logs/{LB_LOG_NAME}")
        self._head = (
            f',"logName":{log_name},"resource":{{"type":"http_load_balancer",'
            f'"labels":{{"project_id":{_q(project_id)},"zone":"global","forwarding_rule_name":'
        )

    def _name(self, text: str) -> str:
        quoted = self._quoted.get(text)
        if quoted is None:
            if len(self._quoted) >= self._MAX_CACHED:
                self._quoted.clear()
            quoted = self._quoted[text] = _q(text)
        return quoted

    def _stamp(self, ts: float) -> str:
        second = int(ts)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return "%s.%06dZ" % (self._second_text, (ts - second) * 1e6)  # noqa: UP031

    def line(self, r: AccessRecord) -> str:
        """One LogEntry as compact JSON, without the newline."""
        self._seq = seq = (self._seq + 1) & 0xFFFFFFFF
        name = self._name
        gateway = name(r.gateway)
        backend = name(r.backend)
        sep = "" if r.target.startswith("/") else "/"
        return (
            f'{{"insertId":"{self._prefix}{seq:08x}"{self._head}'
            f'{gateway},"url_map_name":{gateway},"target_proxy_name":{gateway},'
            f'"backend_service_name":{backend}}}}},'
            f'"timestamp":"{self._stamp(r.timestamp)}",'
            f'"receiveTimestamp":"{self._stamp(r.timestamp + r.latency_s)}",'
            f'"severity":"{"WARNING" if r.status >= 500 else "INFO"}",'
            f'"httpRequest":{{"requestMethod":{name(r.method)},'
            f'"requestUrl":{_q(f"{r.scheme}://{r.host}{sep}{r.target}")},'
            f'"requestSize":"{r.request_size}","status":{r.status},'
            f'"responseSize":"{r.response_size}","userAgent":{_q(r.user_agent)},'
            f'"remoteIp":{name(r.remote_ip)},"serverIp":{name(r.server_ip)},'
            f'"latency":"{r.latency_s:.6f}s","protocol":{name(r.protocol)}}},'
            f'"jsonPayload":{{"@type":"{LB_PAYLOAD_TYPE}",'
            f'"statusDetails":{name(r.status_details)},"gateway":{gateway},'
            f'"route":{name(r.route)},"backend":{backend},"cluster":{name(r.cluster)},'
            f'"region":{name(r.region)},"zone":{name(r.zone)},"pod":{name(r.pod)},'
            f'"endpoint":{name(r.endpoint)},"reason":{name(r.reason)},'
            f'"entryRegion":{name(r.entry_region)},"attempts":{r.attempts}}}}}'
        )


def access_entry(record: AccessRecord, project_id: str = DEFAULT_PROJECT) -> dict[str, Any]:
    """Return the LogEntry for one request (``resource.type = http_load_balancer``).

    The line the access log writes is this entry's compact JSON
    (:class:`AccessFormatter`); fields are described in the Cloud Logging docs for
    external Application Load Balancer request logs.
    """
    entry: dict[str, Any] = json.loads(AccessFormatter(project_id).line(record))
    return entry


def container_entry(
    *,
    timestamp: float,
    text: str,
    stream: str,
    project_id: str,
    cluster: str,
    zone: str,
    namespace: str,
    pod: str,
    container: str,
) -> dict[str, Any]:
    """Return the LogEntry for one line a pod wrote (``resource.type = k8s_container``).

    A line that is a JSON object becomes ``jsonPayload`` (its ``severity`` field, if
    any, lifted as GKE does); anything else is ``textPayload``.
    """
    entry: dict[str, Any] = {
        "insertId": _insert_id(),
        "logName": f"projects/{project_id}/logs/{stream}",
        "resource": {
            "type": "k8s_container",
            "labels": {
                "project_id": project_id,
                "location": zone,
                "cluster_name": cluster,
                "namespace_name": namespace,
                "pod_name": pod,
                "container_name": container,
            },
        },
        "timestamp": rfc3339(timestamp),
        "receiveTimestamp": rfc3339(timestamp),
        "severity": "ERROR" if stream == "stderr" else "INFO",
    }
    payload: Any = None
    if text.startswith("{"):
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
    if isinstance(payload, dict):
        severity = payload.pop("severity", None)
        if isinstance(severity, str):
            entry["severity"] = severity.upper()
        entry["jsonPayload"] = payload
    else:
        entry["textPayload"] = text
    return entry

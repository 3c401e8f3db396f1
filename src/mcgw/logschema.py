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
import os
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


def access_entry(record: AccessRecord, project_id: str = DEFAULT_PROJECT) -> dict[str, Any]:
    """Return the LogEntry for one request (``resource.type = http_load_balancer``)."""
    query_sep = "" if record.target.startswith("/") else "/"
    return {
        "insertId": _insert_id(),
        "logName": f"projects/{project_id}/logs/{LB_LOG_NAME}",
        "resource": {
            "type": "http_load_balancer",
            "labels": {
                "project_id": project_id,
                "zone": "global",
                "forwarding_rule_name": record.gateway,
                "url_map_name": record.gateway,
                "target_proxy_name": record.gateway,
                "backend_service_name": record.backend,
            },
        },
        "timestamp": rfc3339(record.timestamp),
        "receiveTimestamp": rfc3339(record.timestamp + record.latency_s),
        "severity": "WARNING" if record.status >= 500 else "INFO",
        "httpRequest": {
            "requestMethod": record.method,
            "requestUrl": f"{record.scheme}://{record.host}{query_sep}{record.target}",
            "requestSize": str(record.request_size),
            "status": record.status,
            "responseSize": str(record.response_size),
            "userAgent": record.user_agent,
            "remoteIp": record.remote_ip,
            "serverIp": record.server_ip,
            "latency": f"{record.latency_s:.6f}s",
            "protocol": record.protocol,
        },
        "jsonPayload": {
            "@type": LB_PAYLOAD_TYPE,
            "statusDetails": record.status_details,
            "gateway": record.gateway,
            "route": record.route,
            "backend": record.backend,
            "cluster": record.cluster,
            "region": record.region,
            "zone": record.zone,
            "pod": record.pod,
            "endpoint": record.endpoint,
            "reason": record.reason,
            "entryRegion": record.entry_region,
            "attempts": record.attempts,
        },
    }


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

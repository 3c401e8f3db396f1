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
plain values) and turned into JSON later, in batches, by the log writer process
(:mod:`mcgw.dataplane.logwriter`).

Files: ``<log dir>/access-<time>-<pid>.jsonl`` and ``<log dir>/containers-<time>-<pid>.jsonl``
(both rotated by size, kept by count and age: :mod:`mcgw.logfiles`); readers take every
``*.jsonl`` below the log directory.
"""

from __future__ import annotations

import json
import json.encoder
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

DEFAULT_PROJECT = "mcgw-local"
"""``project_id`` label when no Fleet names a project."""

LB_LOG_NAME = "requests"
"""Cloud Logging's log id for load balancer request logs."""

LB_PAYLOAD_TYPE = "type.googleapis.com/google.cloud.loadbalancing.type.LoadBalancerLogEntry"

ROUTING_REASONS = ("closest", "spillover", "failover", "retry", "no_route")
"""Every ``jsonPayload.reason`` the gateway writes: the balancer's reasons
(:mod:`mcgw.dataplane.balancer`) and ``no_route``, so that a filter can tell a typo
from a reason that did not occur."""

LB_PAYLOAD_STRINGS = (
    "statusDetails",
    "gateway",
    "route",
    "backend",
    "cluster",
    "region",
    "zone",
    "pod",
    "endpoint",
    "reason",
    "entryRegion",
    "entrySource",
    "ranking",
    "seen",
)
"""String fields of the access log's ``jsonPayload`` that analytics keeps typed as well
as in JSON, so ``JSON_VALUE(json_payload.cluster)`` costs a column read, not a JSON
parse per row. A field added to the payload can be listed here for the same speed."""


class AccessRecord(NamedTuple):
    """One request as the gateway saw it. Field order is part of the schema: it is
    the wire format of the records the gateway hands its log writer (as plain tuples).

    The request line's pieces and the user agent are the bytes received, and the
    route table's and balancer's parts are the tuples they already hold, unopened:
    decoding and taking apart happen in the log writer process, off the request path
    (each element a record carries is one more object to build and to marshal)."""

    timestamp: float
    """When the request arrived, seconds since the epoch (time.time())."""
    method: bytes | str
    """As received (bytes, read as latin-1 by the writer), or as text."""
    scheme: str
    host: bytes | str
    target: bytes | str
    """Request target as received: path and query."""
    protocol: str
    """``HTTP/1.1``, ``HTTP/1.0`` or ``HTTP/2`` (as Cloud Logging spells them)."""
    status: int
    latency_s: float
    """From the first byte of the request to the last byte of the response."""
    request_size: int
    response_size: int
    remote_ip: str
    server_ip: str
    user_agent: bytes | str
    trace_headers: Sequence[tuple[bytes, bytes]]
    """The request's trace context header fields (``traceparent``,
    ``X-Cloud-Trace-Context``) as received, usually none: the gateway's header parser
    sets them aside, the log writer process parses them (:func:`trace_context`)."""
    gateway: str
    """``<namespace>/<name>`` of the Gateway."""
    route: str
    """:attr:`mcgw.ir.table.Route.name`, or empty when no route matched."""
    backend: str
    """:attr:`mcgw.ir.table.Backend.name`, or empty."""
    picked: tuple[str, str, str, str, str, str]
    """cluster, region, zone, pod, endpoint (``address:port``) and reason (why this
    cluster: ``closest``, ``failover``, ``retry``, ``no_route``, …) of the endpoint
    that answered; empty strings when none did."""
    decision: tuple[str, str, str] = ("", "", "")
    """The balancer's decision trace: the entry region its plan ranked from, the
    ranking (regions closest first with their round trips in ms:
    ``us-west1:111.4,us-east1:159.4``) and, for a capacity-aware backend, what it saw
    per region (requests per second over capacity, healthy over ready endpoints:
    ``us-west1 19/20rps 2/2ok;…``). Empty strings on the fast path."""
    entry: tuple[str, str] = ("", "")
    """Where the request entered and how that was decided: ``header`` (a trusted
    peer's entry-region header), ``client`` (the Fleet's client networks), or an empty
    region and ``gateway`` (the gateway's location: :attr:`gateway_region`)."""
    gateway_region: str = ""
    """The gateway's own region: the entry region when neither of the above says."""
    attempts: int = 1
    """Upstream attempts made (1 unless a connect failure was retried)."""
    status_details: str = ""
    """Cloud Load Balancing's statusDetails, e.g. ``response_sent_by_backend``."""

    @classmethod
    def of(
        cls,
        timestamp: float,
        method: str,
        scheme: str,
        host: str,
        target: str,
        protocol: str,
        status: int,
        latency_s: float,
        request_size: int,
        response_size: int,
        remote_ip: str,
        server_ip: str,
        user_agent: str,
        trace_headers: Sequence[tuple[bytes, bytes]],
        gateway: str,
        route: str,
        backend: str,
        cluster: str,
        region: str,
        zone: str,
        pod: str,
        endpoint: str,
        reason: str,
        entry_region: str,
        attempts: int,
        status_details: str,
        entry_source: str = "",
        ranking: str = "",
        seen: str = "",
    ) -> AccessRecord:
        """A record from the fields its log line names, one by one, as text: for
        tools and tests that make up records (the gateway builds the tuple itself)."""
        return cls(
            timestamp,
            method,
            scheme,
            host,
            target,
            protocol,
            status,
            latency_s,
            request_size,
            response_size,
            remote_ip,
            server_ip,
            user_agent,
            trace_headers,
            gateway,
            route,
            backend,
            (cluster, region, zone, pod, endpoint, reason),
            (entry_region, ranking, seen),
            ("", entry_source),
            "",
            attempts,
            status_details,
        )


AccessValues = tuple[
    float,
    bytes | str,
    str,
    bytes | str,
    bytes | str,
    str,
    int,
    float,
    int,
    int,
    str,
    str,
    bytes | str,
    Sequence[tuple[bytes, bytes]],
    str,
    str,
    str,
    tuple[str, str, str, str, str, str],
    tuple[str, str, str],
    tuple[str, str],
    str,
    int,
    str,
]
"""An :class:`AccessRecord`'s values as a plain tuple, in its field order: what the
gateway's hot path builds (a NamedTuple costs a copy there, and another to marshal it
to the log writer, which takes exact tuples only). An AccessRecord is one too."""

_Tail = tuple[
    str,
    str,
    str,
    tuple[str, str, str, str, str, str],
    tuple[str, str, str],
    tuple[str, str],
    str,
    int,
    str,
]
"""The route-table and balancer part of an access record (gateway … status_details)."""


def rfc3339(ts: float) -> str:
    """Format epoch seconds as Cloud Logging does: UTC, microseconds, ``Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_insert_id_prefix() -> str:
    """A random start for an :class:`AccessFormatter`'s insertIds (8 hex digits)."""
    return os.urandom(4).hex()


_LINE_START = b'{"insertId":"'


def insert_id_counter(line: bytes, prefix: str) -> int | None:
    """The counter of an :class:`AccessFormatter` line's insertId (how many lines that
    formatter had made, the wrap at 2**32 aside) if it starts with ``prefix``; else None."""
    head = _LINE_START + prefix.encode()
    if not line.startswith(head):
        return None
    digits = line[len(head) : len(head) + 8]
    if line[len(head) + 8 : len(head) + 9] != b'"':
        return None
    try:
        return int(digits, 16)
    except ValueError:
        return None


def _insert_id() -> str:
    return os.urandom(8).hex()


_HEX = frozenset("0123456789abcdef")


def trace_context(headers: Sequence[tuple[bytes, bytes]]) -> tuple[str, str, bool] | None:
    """Return (trace id, span id, sampled) from a request's trace headers, or None.

    W3C ``traceparent`` (``00-<32 hex>-<16 hex>-<flags>``) wins over Google's
    ``X-Cloud-Trace-Context`` (``<32 hex>/<decimal span>;o=1``), whose span id is
    written in hex as Cloud Logging's ``spanId`` is. Malformed values are ignored, as
    is an all-zero trace id (invalid in both formats).
    """
    parent = cloud = None
    for name, value in headers:
        # Lengths first: most requests carry neither header.
        n = len(name)
        if n == 11 and name.lower() == b"traceparent":
            parent = value
        elif n == 21 and name.lower() == b"x-cloud-trace-context":
            cloud = value
    if parent is not None:
        parts = parent.decode("latin-1").strip().lower().split("-")
        if (
            len(parts) >= 4
            and len(parts[0]) == 2
            and len(parts[1]) == 32
            and len(parts[2]) == 16
            and len(parts[3]) == 2
            and _HEX.issuperset(parts[0] + parts[1] + parts[2] + parts[3])
            and parts[0] != "ff"
            and parts[1].strip("0")
        ):
            return parts[1], parts[2], bool(int(parts[3], 16) & 1)
    if cloud is not None:
        text = cloud.decode("latin-1").strip()
        trace, _, rest = text.partition("/")
        trace = trace.lower()
        span_text, _, options = rest.partition(";")
        if len(trace) == 32 and _HEX.issuperset(trace) and trace.strip("0"):
            span = ""
            if span_text.isdigit() and 0 < int(span_text) < 2**64:
                span = f"{int(span_text):016x}"
            return trace, span, options.strip() == "o=1"
    return None


_q = json.encoder.encode_basestring_ascii
"""JSON string literal of a str (quotes included), in C: the cheapest correct escaping."""


class _Seconds(dict[int, str]):
    """Epoch second → its RFC 3339 text (``2023-11-14T22:13:20``), formatted once: the
    lines of a batch share a few seconds, and both timestamps of a line usually one."""

    __slots__ = ()

    _MAX = 64

    def __missing__(self, second: int) -> str:
        if len(self) >= self._MAX:
            self.clear()
        text = self[second] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return text


class _Decimals(dict[int, str]):
    """Number → its decimal text: statuses and sizes repeat, and a lookup costs a fifth
    of formatting one."""

    __slots__ = ()

    _MAX = 4096

    def __missing__(self, number: int) -> str:
        if len(self) >= self._MAX:
            self.clear()
        text = self[number] = str(number)
        return text


class _Methods(dict[bytes | str, str]):
    """Request method (the bytes received, or text) → its JSON string literal: a
    gateway sees a handful of methods, and a lookup costs a fraction of decoding and
    escaping one."""

    __slots__ = ()

    _MAX = 64

    def __missing__(self, method: bytes | str) -> str:
        if len(self) >= self._MAX:
            self.clear()
        text = method.decode("latin-1") if isinstance(method, bytes) else method
        literal = self[method] = _q(text)
        return literal


class AccessFormatter:
    """Turns access records into LogEntry JSON lines, fast, a batch at a time.

    This runs for every request the gateway serves (in the log writer process, which
    shares the gateway's core unless told otherwise), so it avoids what a generic
    ``json.dumps(dict)`` costs (about ten times as much), and what was measured to
    matter beyond that:

    * the fields from :attr:`AccessRecord.gateway` on (gateway, route, backend,
      cluster, region, zone, pod, endpoint, reason, entry region, attempts, status
      details, decision trace) come from the route table and the balancer's pick, so a
      gateway sees few distinct combinations: the tail of the record (one tuple
      slice, compared in C) keys two pre-encoded fragments, the resource labels and
      the whole ``jsonPayload``;
    * each second is formatted once, for every timestamp that falls in it, and each
      status and size once (until more than a few thousand were seen);
    * the insertIds of a batch are formatted in one pass, in C;
    * the other strings go straight through the C JSON escaper: a cache lookup of a
      string just unmarshalled (hashed afresh) costs as much;
    * one f-string per line in one loop over the batch with everything in locals, and
      the batch's lines joined into one string, which the caller encodes once (it is
      ASCII: every string in it went through the escaper);
    * insertIds are a per-process random prefix plus a counter rather than a syscall
      each.

    Output is exactly ``json.dumps(entry, separators=(",", ":"))`` of the entry
    :func:`access_entry` returns.
    """

    _MAX_CACHED = 4096
    """Bound on remembered fragments; the cache restarts past it (a table with more
    than this only loses the speed-up, never correctness)."""

    _TAIL = 14
    """Index of :attr:`AccessRecord.gateway`: ``record[_TAIL:]`` keys the fragments
    (written as a literal in the slices, where mypy needs one)."""

    def __init__(
        self, project_id: str = DEFAULT_PROJECT, *, pid: int | None = None, prefix: str = ""
    ) -> None:
        self._pid = os.getpid() if pid is None else pid
        """The gateway worker named in ``labels.worker_pid`` (the log writer process
        formats for the worker that started it)."""
        self._prefix = ""
        """Every insertId's start (the counter follows, :func:`insert_id_counter`)."""
        self._open = ""
        """Every line's start, up to its insertId's counter."""
        self.new_prefix(prefix)
        self._traces = ',"trace":' + _q(f"projects/{project_id}/traces/")[:-1]
        self._seq = 0
        self._seconds = _Seconds()
        self._decimals = _Decimals()
        self._methods = _Methods()
        self._fragments: dict[tuple[Any, ...], tuple[str, str]] = {}
        log_name = _q(f"projects/{project_id}/logs/{LB_LOG_NAME}")
        self._head = (
            f',"logName":{log_name},"resource":{{"type":"http_load_balancer",'
            f'"labels":{{"project_id":{_q(project_id)},"zone":"global","forwarding_rule_name":'
        )

    def _encode_tail(self, tail: _Tail) -> tuple[str, str]:
        """Encode the resource labels and the jsonPayload of a record's tail (a cache miss)."""
        (
            gateway_name,
            route,
            backend_name,
            picked,
            decision,
            entry,
            here,
            attempts,
            status_details,
        ) = tail
        cluster, region, zone, pod, endpoint, reason = picked
        entry_region = decision[0] or entry[0] or here
        entry_source = entry[1]
        _, ranking, seen = decision
        gateway = _q(gateway_name)
        backend = _q(backend_name)
        labels = (
            f'{self._head}{gateway},"url_map_name":{gateway},"target_proxy_name":{gateway},'
            f'"backend_service_name":{backend}}}}},"timestamp":"'
        )
        # The decision trace's own payload fields, those that are set.
        trace = "".join(
            f',"{key}":{_q(value)}'
            for key, value in (("entrySource", entry_source), ("ranking", ranking), ("seen", seen))
            if value
        )
        payload = (
            f',"jsonPayload":{{"@type":"{LB_PAYLOAD_TYPE}",'
            f'"statusDetails":{_q(status_details)},"gateway":{gateway},'
            f'"route":{_q(route)},"backend":{backend},"cluster":{_q(cluster)},'
            f'"region":{_q(region)},"zone":{_q(zone)},"pod":{_q(pod)},'
            f'"endpoint":{_q(endpoint)},"reason":{_q(reason)},'
            f'"entryRegion":{_q(entry_region)},"attempts":{attempts}{trace}}},'
            f'"labels":{{"gateway":{gateway},"worker_pid":"{self._pid}"}}}}'
        )
        if len(self._fragments) >= self._MAX_CACHED:
            self._fragments.clear()
        self._fragments[tail] = (labels, payload)
        return labels, payload

    def _trace(self, headers: Sequence[tuple[bytes, bytes]]) -> str:
        """The trace fields of a request whose trace headers are ``headers`` (not empty)."""
        context = trace_context(headers)
        if context is None:
            return ""
        trace_id, span_id, sampled = context
        span = f'"spanId":"{span_id}",' if span_id else ""
        return f'{self._traces}{trace_id}",{span}"traceSampled":{"true" if sampled else "false"}'

    def line(self, r: AccessValues) -> str:
        """One LogEntry as compact JSON, without the newline."""
        return self.block((r,))[:-1]

    def new_prefix(self, prefix: str = "") -> None:
        """Start the insertIds under ``prefix`` (a new random one by default), e.g. when
        the counter under the old one no longer says how many records were written
        (see :mod:`mcgw.dataplane.logwriter`)."""
        self._prefix = prefix or new_insert_id_prefix()
        self._open = _LINE_START.decode() + self._prefix

    def skip(self, n: int) -> None:
        """Count ``n`` records as formatted without formatting them (another writer
        wrote them): the counter then still counts every record taken, in order."""
        self._seq = (self._seq + n) & 0xFFFFFFFF

    def line_bytes(self, r: AccessValues) -> bytes:
        """One LogEntry as a line of a JSON-lines file: :meth:`line`, a newline, encoded."""
        return self.block((r,)).encode()

    def block(self, records: Sequence[AccessValues]) -> str:
        """The lines of ``records`` (:class:`AccessRecord` s or their plain tuples), each
        ending in a newline, as one string of ASCII characters."""
        fragments = self._fragments
        seconds = self._seconds
        decimals = self._decimals
        methods = self._methods
        q = _q
        trace = self._trace
        n = len(records)
        first = self._seq + 1
        self._seq = (self._seq + n) & 0xFFFFFFFF
        counters: Sequence[int] = range(first, first + n)
        if first + n > 0x100000000:  # the counter wraps in this batch
            counters = [c & 0xFFFFFFFF for c in counters]
        # Every line's start, up to its insertId's closing quote, in one formatting pass.
        starts = (f'{self._open}%08x"\n' * n % tuple(counters)).splitlines()
        lines: list[str] = []
        append = lines.append
        for r, start in zip(records, starts, strict=True):
            fragment = fragments.get(r[14:])
            if fragment is None:
                fragment = self._encode_tail(r[14:])
            # One unpacking instead of an index or attribute lookup per field.
            (
                ts,
                method,
                scheme,
                host,
                target,
                protocol,
                status,
                latency_s,
                request_size,
                response_size,
                remote_ip,
                server_ip,
                user_agent,
                headers,
            ) = r[:14]
            second = int(ts)
            done = ts + latency_s
            done_second = int(done)
            # The request line's bytes as received, decoded here rather than on the
            # request path (latin-1: every byte is a character, nothing can fail);
            # records made up by tools may hold text already.
            if isinstance(target, bytes) and isinstance(host, bytes):
                # One decode for both.
                where = (host + target if target[:1] == b"/" else host + b"/" + target).decode(
                    "latin-1"
                )
            else:
                host = host.decode("latin-1") if isinstance(host, bytes) else host
                target = target.decode("latin-1") if isinstance(target, bytes) else target
                where = host + target if target[:1] == "/" else f"{host}/{target}"
            if isinstance(user_agent, bytes):
                user_agent = user_agent.decode("latin-1")
            url = f"{scheme}://{where}"
            # Microseconds truncated, not rounded (%d of a float): as Cloud Logging's are.
            append(
                f"{start}{fragment[0]}{seconds[second]}."
                f'{"%06d" % ((ts - second) * 1e6)}Z",'  # noqa: UP031
                f'"receiveTimestamp":"{seconds[done_second]}.'
                f'{"%06d" % ((done - done_second) * 1e6)}Z",'  # noqa: UP031
                f'"severity":"{"WARNING" if status >= 500 else "INFO"}",'
                f'"httpRequest":{{"requestMethod":{methods[method]},"requestUrl":{q(url)},'
                f'"requestSize":"{decimals[request_size]}","status":{decimals[status]},'
                f'"responseSize":"{decimals[response_size]}","userAgent":{q(user_agent)},'
                f'"remoteIp":{q(remote_ip)},"serverIp":{q(server_ip)},'
                f'"latency":"{latency_s:.6f}s","protocol":{q(protocol)}}}'
                f"{trace(headers) if headers else ''}{fragment[1]}\n"
            )
        return "".join(lines)


def access_entry(record: AccessRecord, project_id: str = DEFAULT_PROJECT) -> dict[str, Any]:
    """Return the LogEntry for one request (``resource.type = http_load_balancer``).

    The line the access log writes is this entry's compact JSON
    (:class:`AccessFormatter`); fields are described in the Cloud Logging docs for
    external Application Load Balancer request logs.
    """
    entry: dict[str, Any] = json.loads(AccessFormatter(project_id).line(record))
    return entry


_SPECIAL = "logging.googleapis.com/"
"""Prefix of the keys of a JSON log line that GKE's agent lifts into the entry."""


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
    pod_labels: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """Return the LogEntry for one line a pod wrote (``resource.type = k8s_container``).

    Shaped as GKE's logging agent writes them: the ``k8s_container`` resource labels
    (project_id, location, cluster_name, namespace_name, pod_name, container_name),
    ``logName`` ``projects/<project>/logs/stdout|stderr``, severity INFO for stdout and
    ERROR for stderr, and the pod's labels as ``labels["k8s-pod/<key>"]``. A line that
    is a JSON object becomes ``jsonPayload``, with the special fields lifted as the
    agent does: ``severity``, ``logging.googleapis.com/trace``, ``…/spanId``,
    ``…/trace_sampled``, ``…/labels`` and ``…/insertId``; anything else is
    ``textPayload``.
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
    labels = {f"k8s-pod/{key}": value for key, value in pod_labels}
    payload: Any = None
    if text.startswith("{"):
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
    if isinstance(payload, dict):
        severity = payload.pop("severity", None)
        if isinstance(severity, str):
            entry["severity"] = _SEVERITIES.get(severity.strip().upper(), "DEFAULT")
        if any(key.startswith(_SPECIAL) for key in payload):
            _lift(payload, entry, labels)
        entry["jsonPayload"] = payload
    else:
        entry["textPayload"] = text
    if labels:
        entry["labels"] = labels
    return entry


_LOG_SEVERITIES = (
    "DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"
)  # fmt: skip
_SEVERITIES = {
    **{name: name for name in _LOG_SEVERITIES},
    # What logging libraries write, read as GKE's logging agent reads them: a pod that
    # logs "warn" is at WARNING, so severity_number and severity >= filters work.
    **dict.fromkeys(("WARN", "W"), "WARNING"),
    **dict.fromkeys(("ERR", "E", "SEVERE"), "ERROR"),
    **dict.fromkeys(("FATAL", "CRIT", "C", "F"), "CRITICAL"),
    **dict.fromkeys(("TRACE", "D", "FINE", "FINER", "FINEST", "CONFIG"), "DEBUG"),
    "I": "INFO",
    "N": "NOTICE",
    "A": "ALERT",
    "EMERG": "EMERGENCY",
}
"""A JSON line's ``severity`` (upper-cased) → Cloud Logging's LogSeverity; anything
else is DEFAULT, as Cloud Logging takes a severity it does not know."""


def _lift(payload: dict[str, Any], entry: dict[str, Any], labels: dict[str, str]) -> None:
    """Move the agent's special fields out of ``payload`` into ``entry``."""
    insert_id = payload.pop(_SPECIAL + "insertId", None)
    if isinstance(insert_id, str) and insert_id:
        entry["insertId"] = insert_id
    extra = payload.pop(_SPECIAL + "labels", None)
    if isinstance(extra, dict):
        labels.update({str(k): str(v) for k, v in extra.items()})
    trace = payload.pop(_SPECIAL + "trace", None)
    if isinstance(trace, str) and trace:
        entry["trace"] = trace
    span = payload.pop(_SPECIAL + "spanId", None)
    if isinstance(span, str) and span:
        entry["spanId"] = span
    sampled = payload.pop(_SPECIAL + "trace_sampled", None)
    if isinstance(sampled, bool):
        entry["traceSampled"] = sampled

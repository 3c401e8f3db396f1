"""The Store API's answers as bytes: pure, no sockets, everything fixed encoded once.

:class:`Payload` is built once per process from :class:`~mcgw.store.settings.Settings`.
Pod fields are encoded at construction into a few string fragments laid out in the
order whereami's JSON has (keys sorted, as Flask's ``jsonify`` sorts them); a request
adds only ``echo``, ``host_header``, ``timestamp`` and, with ``ECHO_HEADERS``, ``headers``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import formatdate

from mcgw.store import settings as settings_

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode

# ISO 3166-1 alpha-2 codes, space-separated: each is a flag emoji as a pair of regional
# indicator symbols.
_COUNTRIES = (
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO "
    "BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ "
    "DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP "
    "GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG "
    "KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML "
    "MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE "
    "PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL "
    "SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM "
    "US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW"
)

_REGIONAL_A = 0x1F1E6

FLAGS: tuple[str, ...] = tuple(
    chr(_REGIONAL_A + ord(code[0]) - ord("A")) + chr(_REGIONAL_A + ord(code[1]) - ord("A"))
    for code in (_COUNTRIES[i : i + 2] for i in range(0, len(_COUNTRIES), 3))
)
"""The emoji ``pod_name_emoji`` is chosen from."""

HEALTHZ_BODY = b"OK"

# whereami answers through Werkzeug (``server: Werkzeug/2.3.7 Python/3.11.3`` in SEED.md);
# naming ourselves instead keeps benchmark results honest about what answered.
SERVER = "mcgw-store"

_REASONS = {200: "OK", 400: "Bad Request"}


def pod_name_emoji(pod_name: str) -> str:
    """Return the emoji for a pod name: the same name always gets the same flag.

    A stable digest, not :func:`hash`, so that every process and every run agree.
    """
    digest = hashlib.sha256(pod_name.encode()).digest()
    return FLAGS[int.from_bytes(digest[:8], "big") % len(FLAGS)]


def timestamp(epoch_second: int) -> str:
    """whereami's timestamp: UTC, to the second, no zone suffix (``2023-11-28T05:01:27``)."""
    return datetime.fromtimestamp(epoch_second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def http_date(epoch_second: int) -> str:
    """The ``date`` header's format (RFC 9110 IMF-fixdate)."""
    return formatdate(epoch_second, usegmt=True)


def _field(name: str, value: str) -> str:
    return f'"{name}":{_encode(value)},'


class Payload:
    """Renders the JSON answer for one request; built once per process."""

    __slots__ = ("_after_echo", "_after_host", "_echo_headers", "_head", "_tail")

    def __init__(self, settings: settings_.Settings) -> None:
        s = settings
        # Fragments in sorted-key order; each ends with a comma except the tail.
        self._head = "{" + (_field("cluster_name", s.cluster_name) if s.cluster_name else "")
        after_echo = ""
        if s.gce_instance_id:
            after_echo += _field("gce_instance_id", s.gce_instance_id)
        if s.gce_service_account:
            after_echo += _field("gce_service_account", s.gce_service_account)
        self._after_echo = after_echo
        after_host = ""
        if s.metadata is not None:
            after_host += _field("metadata", s.metadata)
        if s.node_name:
            after_host += _field("node_name", s.node_name)
        if s.pod_ip:
            after_host += _field("pod_ip", s.pod_ip)
        after_host += _field("pod_name", s.pod_name)
        after_host += _field("pod_name_emoji", pod_name_emoji(s.pod_name))
        if s.pod_namespace:
            after_host += _field("pod_namespace", s.pod_namespace)
        if s.pod_service_account:
            after_host += _field("pod_service_account", s.pod_service_account)
        if s.project_id:
            after_host += _field("project_id", s.project_id)
        self._after_host = after_host
        self._tail = (',"zone":' + _encode(s.zone) if s.zone else "") + "}"
        self._echo_headers = s.echo_headers

    def render(
        self,
        method: str,
        target: str,
        host: str,
        headers: Sequence[tuple[str, str]],
        body_size: int,
        timestamp: str,
    ) -> bytes:
        """Return the JSON body for a request.

        Args:
            method: request method as received.
            target: request target as received (path and query, not normalised).
            host: the ``Host`` header, or ``""``.
            headers: every header as received, in order, names in their original case.
            body_size: bytes of request body received (after de-chunking).
            timestamp: :func:`timestamp` of the current second (cached by the caller).
        """
        echo = _encode(
            {
                "method": method,
                "path": target,
                "host": host,
                "headers": headers,
                "body_size": body_size,
            }
        )
        echoed = ""
        if self._echo_headers:
            # whereami echoes a name → value object; repeated names are joined as
            # RFC 9110 allows for list-valued fields.
            merged: dict[str, str] = {}
            for name, value in headers:
                merged[name] = f"{merged[name]}, {value}" if name in merged else value
            echoed = '"headers":' + _encode(merged) + ","
        return (
            f'{self._head}"echo":{echo},{self._after_echo}{echoed}"host_header":{_encode(host)},'
            f'{self._after_host}"timestamp":"{timestamp}"{self._tail}'
        ).encode()


class Heads:
    """Response heads with everything but the length and the date encoded in advance."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[tuple[int, bytes, bool, bool], tuple[bytes, bytes]] = {}

    def head(
        self,
        status: int,
        content_type: bytes,
        content_length: int,
        date: bytes,
        *,
        http10: bool,
        keep_alive: bool,
    ) -> bytes:
        """Return the status line and headers, ending with the blank line."""
        key = (status, content_type, http10, keep_alive)
        parts = self._cache.get(key)
        if parts is None:
            parts = self._cache[key] = _head_parts(*key)
        before, after = parts
        return b"%s%d\r\ndate: %s%s" % (before, content_length, date, after)


def _head_parts(
    status: int, content_type: bytes, http10: bool, keep_alive: bool
) -> tuple[bytes, bytes]:
    version = b"HTTP/1.0" if http10 else b"HTTP/1.1"
    reason = _REASONS.get(status, "Unknown").encode()
    if http10:
        connection = b"connection: keep-alive\r\n" if keep_alive else b""
    else:
        connection = b"" if keep_alive else b"connection: close\r\n"
    before = (
        b"%s %d %s\r\ncontent-type: %s\r\naccess-control-allow-origin: *\r\n"
        b"server: %s\r\ncontent-length: "
    ) % (version, status, reason, content_type, SERVER.encode())
    return before, b"\r\n" + connection + b"\r\n"


class Clock:
    """The two clock strings an answer carries, recomputed once a second, not per request."""

    __slots__ = ("date", "second", "timestamp")

    def __init__(self) -> None:
        self.second = -1
        self.timestamp = ""
        self.date = b""

    def advance(self, now: float) -> None:
        """Bring :attr:`timestamp` and :attr:`date` to ``now`` (epoch seconds)."""
        second = int(now)
        if second != self.second:
            self.second = second
            self.timestamp = timestamp(second)
            self.date = http_date(second).encode()

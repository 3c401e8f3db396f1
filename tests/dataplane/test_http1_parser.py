"""The strict HTTP/1.1 parser alone (no sockets): the corpus, splits and property fuzzing.

Hypothesis explores the parser with generated requests: valid ones framed every way
must parse the same whole or split at any points; mutated ones must either parse or
raise a :class:`errors.ProxyError` (never another exception, never hang), and what
parses must be unambiguous (the body the parser hands out is exactly the framed one).
``make fuzz`` runs the same properties with many more examples (HYPOTHESIS_PROFILE).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from mcgw.dataplane import errors, http1
from mcgw.dataplane.settings import ProxySettings

CORPUS = Path(__file__).parent / "testdata" / "http1_corpus.yaml"

settings.register_profile(
    "test", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "50000")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "test"))


def load_corpus() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = yaml.safe_load(CORPUS.read_text())
    for case in cases:
        case["bytes"] = case["raw"].encode("latin-1")
    return cases


class Recorder:
    """The callbacks, recording what a connection would see."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []
        self.messages: list[dict[str, Any]] = []
        self._cur: dict[str, Any] = {}

    def on_message_begin(self) -> None:
        self._cur = {"target": b"", "headers": [], "body": b""}

    def on_url(self, url: bytes) -> None:
        self._cur["target"] += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._cur["headers"].append((name, value))

    def on_headers_complete(self) -> None:
        pass

    def on_body(self, body: bytes) -> None:
        self._cur["body"] += body

    def on_message_complete(self) -> None:
        self.messages.append(self._cur)


def parse(data: bytes, splits: list[int] | None = None, **limits: int) -> tuple[Recorder, Any]:
    """Feed ``data`` (cut at ``splits``); return the recorder and the exception or None."""
    s = ProxySettings(**limits)  # type: ignore[arg-type]
    rec = Recorder()
    parser = http1.RequestParser(
        rec,
        max_target=s.max_request_line_bytes,
        max_fields=s.max_header_bytes + 8 * s.max_headers + 64,
    )
    cuts = [*sorted(set(splits or [])), len(data)]
    start = 0
    try:
        for cut in cuts:
            parser.feed_data(data[start:cut])
            start = cut
    except (errors.ProxyError, http1.Upgrade, http1.H2Preface) as exc:
        return rec, exc
    return rec, None


@pytest.mark.parametrize("case", load_corpus(), ids=lambda c: c["name"])
def test_corpus_case_gets_its_status_from_the_parser(case: dict[str, Any]) -> None:
    statuses = case.get("statuses", [case["status"]])
    rec, exc = parse(case["bytes"], **case.get("settings", {}))
    good = [s for s in statuses if s == 200]
    bad = [s for s in statuses if s != 200]
    if exc is None:
        # Only the limits the connection counts itself (header count and bytes, body
        # bytes) are left for it to refuse.
        assert not bad or bad == [431] or bad == [413], (rec.messages, statuses)
        assert len(rec.messages) >= len(good)
        return
    assert isinstance(exc, errors.ProxyError), exc
    assert len(rec.messages) == len(good)
    assert [exc.status] == bad, str(exc)


def test_byte_at_a_time_gives_the_same_result_for_every_case() -> None:
    for case in load_corpus():
        data = case["bytes"]
        limits = case.get("settings", {})
        whole, whole_exc = parse(data, **limits)
        split, split_exc = parse(data, list(range(1, len(data))), **limits)
        assert split.messages == whole.messages, case["name"]
        assert type(split_exc) is type(whole_exc), case["name"]
        if whole_exc is not None:
            assert getattr(split_exc, "status", None) == getattr(whole_exc, "status", None)


def test_upgrade_stops_after_the_request_with_the_offset_of_what_follows() -> None:
    head = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    rec, exc = parse(head + b"\x81\x00")
    assert isinstance(exc, http1.Upgrade)
    assert (head + b"\x81\x00")[exc.offset :] == b"\x81\x00"
    assert len(rec.messages) == 1


def test_h2_preface_is_told_apart() -> None:
    _, exc = parse(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert isinstance(exc, http1.H2Preface)


def test_keep_alive_follows_version_and_connection() -> None:
    def keep(data: bytes) -> bool:
        rec = Recorder()
        p = http1.RequestParser(rec, max_target=100, max_fields=1000)
        p.feed_data(data)
        return p.should_keep_alive()

    assert keep(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert not keep(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: x, Close\r\n\r\n")
    assert not keep(b"GET / HTTP/1.0\r\n\r\n")
    assert keep(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")


# -- property-based fuzzing ---------------------------------------------------------------

_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-_.!~*'", min_size=1)
_value = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
_body = st.binary(max_size=300)


@st.composite
def valid_requests(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """Return pipelined valid requests and the body each one carries."""
    out: list[bytes] = []
    bodies: list[bytes] = []
    for _ in range(draw(st.integers(1, 3))):
        method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE"]))
        path = (
            b"/" + draw(st.text(alphabet="abc/-_.~%20", max_size=15)).replace("%", "%25").encode()
        )
        lines = [method + b" " + path + b" HTTP/1.1", b"Host: h.example"]
        for name, value in draw(st.lists(st.tuples(_token, _value), max_size=4)):
            if name.lower() in ("host", "content-length", "transfer-encoding", "connection"):
                continue
            lines.append(name.encode() + b":" + value.strip(" ").encode())
        body = draw(_body)
        framing = draw(st.sampled_from(["none", "length", "chunked"]))
        if framing == "none":
            body = b""
            payload = b""
        elif framing == "length":
            lines.append(b"Content-Length: %d" % len(body))
            payload = body
        else:
            lines.append(b"Transfer-Encoding: chunked")
            cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
            pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
            payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p)
            payload += b"0\r\n\r\n"
        out.append(b"\r\n".join(lines) + b"\r\n\r\n" + payload)
        bodies.append(body)
    return b"".join(out), bodies


@given(valid_requests(), st.lists(st.integers(0, 2000), max_size=8))
def test_valid_requests_parse_the_same_however_split(
    req: tuple[bytes, list[bytes]], splits: list[int]
) -> None:
    data, bodies = req
    rec, exc = parse(data, [s for s in splits if s < len(data)])
    assert exc is None, exc
    assert [m["body"] for m in rec.messages] == bodies
    for message in rec.messages:
        assert_unambiguous(message)


@given(valid_requests(), st.data())
def test_mutated_requests_parse_or_fail_with_a_status(
    req: tuple[bytes, list[bytes]], data: st.DataObject
) -> None:
    raw = bytearray(req[0])
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        at = data.draw(st.integers(0, len(raw)))
        byte = data.draw(st.sampled_from(b'\r\n \t\0:;,0aZ\x7f\xff"-'))
        if op == "flip" and at < len(raw):
            raw[at] = byte
        elif op == "insert":
            raw.insert(at, byte)
        elif at < len(raw):
            del raw[at]
    mutated = bytes(raw)
    splits = data.draw(st.lists(st.integers(0, len(mutated)), max_size=4))
    whole, whole_exc = parse(mutated)
    split, split_exc = parse(mutated, splits)
    # Only the intended errors, and the same outcome however the bytes arrive.
    for exc in (whole_exc, split_exc):
        assert exc is None or isinstance(exc, (errors.ProxyError, http1.Upgrade)), exc
    assert split.messages == whole.messages
    assert getattr(split_exc, "status", None) == getattr(whole_exc, "status", None)
    for message in whole.messages:
        assert_unambiguous(message)


def assert_unambiguous(message: dict[str, Any]) -> None:
    """What the parser accepted has one framing and one Host, all consistent."""
    names = [n.lower() for n, _ in message["headers"]]
    lengths = [v for n, v in message["headers"] if n.lower() == b"content-length"]
    codings = [v for n, v in message["headers"] if n.lower() == b"transfer-encoding"]
    assert names.count(b"host") <= 1
    assert len(lengths) <= 1
    assert not (lengths and codings)
    if lengths:
        assert lengths[0].isdigit() and int(lengths[0]) == len(message["body"])
    if codings:
        listed = [c.strip(b" \t").lower() for c in b",".join(codings).split(b",")]
        assert [c for c in listed if c] == [b"chunked"]
    if not lengths and not codings:
        assert message["body"] == b""
    assert message["target"][:1] in (b"/", b"h", b"H", b"*")


@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=4))
def test_arbitrary_bytes_never_raise_anything_else(data: bytes, splits: list[int]) -> None:
    _, exc = parse(data, [s for s in splits if s < len(data)])
    assert exc is None or isinstance(exc, (errors.ProxyError, http1.Upgrade, http1.H2Preface))


def test_upgrade_offset_after_a_pipelined_request_in_the_same_read() -> None:
    # The first head takes the one-read fast path, the second the general loop: the
    # offset is still counted from the start of the read.
    first = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    head = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    rec, exc = parse(first + head + b"\x81\x00")
    assert isinstance(exc, http1.Upgrade)
    assert (first + head + b"\x81\x00")[exc.offset :] == b"\x81\x00"
    assert [m["target"] for m in rec.messages] == [b"/", b"/ws"]


def test_name_and_host_caches_stay_bounded_and_never_change_an_answer() -> None:
    # Clients inventing names and hosts fill the caches up to their bounds, no further.
    for i in range(http1._VALID_HOSTS_MAX + 100):
        _, exc = parse(b"GET / HTTP/1.1\r\nHost: h%d.example\r\nX-Made-Up-%d: v\r\n\r\n" % (i, i))
        assert exc is None
    assert len(http1._valid_hosts) <= http1._VALID_HOSTS_MAX
    assert len(http1._kind_cache) <= http1._KIND_CACHE_MAX
    # Long hosts are checked every time, not remembered.
    long_host = b"a" * (http1._CACHED_MAX_LEN + 1)
    _, exc = parse(b"GET / HTTP/1.1\r\nHost: " + long_host + b"\r\n\r\n")
    assert exc is None and long_host not in http1._valid_hosts
    # Full caches: valid and invalid Hosts and framing headers still get their answers.
    _, exc = parse(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n")
    assert isinstance(exc, errors.BadRequest) and "invalid Host" in str(exc)
    _, exc = parse(b"GET / HTTP/1.1\r\nHost: new.example\r\n\r\n")
    assert exc is None
    _, exc = parse(b"POST / HTTP/1.1\r\nHost: h\r\ncOnTeNt-LeNgTh: 1\r\nContent-Length: 1\r\n\r\nx")
    assert isinstance(exc, errors.BadRequest) and "several Content-Length" in str(exc)
    _, exc = parse(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\n\r\n")
    assert exc is None  # a lookalike: dropped, so no body is framed

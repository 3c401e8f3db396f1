"""The Store API over real loopback sockets: answers, HTTP/1.x behaviour, logs, exit."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvloop

from mcgw.store import errors, payload, requestlog, server
from mcgw.store import settings as settings_

POD = settings_.Settings(
    pod_name="store-5b74fdb87c-lbggt",
    pod_namespace="store",
    pod_ip="127.0.0.1",
    node_name="gke-gke-east-1-default-pool-1b913ea3-poei",
    cluster_name="gke-east-1",
    zone="us-east1-b",
    project_id="sandbox-mc-gateway",
    gce_instance_id="6205714523048438393",
    gce_service_account="sandbox-mc-gateway.svc.id.goog",
    pod_service_account="default",
    metadata="frontend",
    host="127.0.0.1",
    port=0,
)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")


class Running:
    """A Store API server on its own uvloop thread, driven by blocking test code."""

    def __init__(self, settings: settings_.Settings) -> None:
        self.log = io.BytesIO()
        self._loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.server = self._call(server.serve(settings, log=self.log))
        self.port = self.server.port

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def close(self, grace_s: float = 1.0) -> None:
        if self._loop.is_closed():
            return
        try:
            self._call(self.server.close(grace_s))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines()]


@pytest.fixture
def start() -> Iterator[Callable[..., Running]]:
    running: list[Running] = []

    def start(**overrides: Any) -> Running:
        r = Running(dataclasses.replace(POD, **overrides))
        running.append(r)
        return r

    yield start
    for r in running:
        r.close()


@pytest.fixture
def store(start: Callable[..., Running]) -> Running:
    return start()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def read_response(f: io.BufferedReader) -> tuple[str, dict[str, str], bytes]:
    """Read one response: status line, headers (lower-cased names), body by content-length."""
    status = f.readline().decode().rstrip("\r\n")
    headers: dict[str, str] = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.lower()] = value.strip()
    body = f.read(int(headers["content-length"])) if "content-length" in headers else b""
    return status, headers, body


def request(port: int, raw: bytes) -> tuple[str, dict[str, str], bytes]:
    with connect(port) as sock:
        sock.sendall(raw)
        return read_response(sock.makefile("rb"))


def get_json(port: int, raw: bytes) -> dict[str, Any]:
    status, headers, body = request(port, raw)
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-type"] == "application/json"
    result: dict[str, Any] = json.loads(body)
    return result


def test_answers_whereami_fields(store: Running) -> None:
    answer = get_json(store.port, b"GET /east HTTP/1.1\r\nHost: store.example.com\r\n\r\n")
    assert list(answer) == sorted(answer), "keys sorted, as whereami's Flask jsonify does"
    assert {k: v for k, v in answer.items() if k not in ("echo", "timestamp")} == {
        "cluster_name": "gke-east-1",
        "gce_instance_id": "6205714523048438393",
        "gce_service_account": "sandbox-mc-gateway.svc.id.goog",
        "host_header": "store.example.com",
        "metadata": "frontend",
        "node_name": "gke-gke-east-1-default-pool-1b913ea3-poei",
        "pod_ip": "127.0.0.1",
        "pod_name": "store-5b74fdb87c-lbggt",
        "pod_name_emoji": payload.pod_name_emoji("store-5b74fdb87c-lbggt"),
        "pod_namespace": "store",
        "pod_service_account": "default",
        "project_id": "sandbox-mc-gateway",
        "zone": "us-east1-b",
    }
    assert TIMESTAMP.match(answer["timestamp"])


def test_unset_pod_fields_are_left_out() -> None:
    bare = settings_.Settings(pod_name="p", host="127.0.0.1", port=0)
    r = Running(bare)
    try:
        answer = get_json(r.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    finally:
        r.close()
    assert set(answer) == {"echo", "host_header", "pod_name", "pod_name_emoji", "timestamp"}


def test_echo_shows_the_request_as_received(store: Running) -> None:
    body = b"0123456789"
    raw = (
        b"PATCH /a/../b%20c?x=1&x=2 HTTP/1.1\r\nHost: store.example.com\r\n"
        b"X-Trace: one\r\nx-trace: two\r\nContent-Length: 10\r\n\r\n" + body
    )
    echo = get_json(store.port, raw)["echo"]
    assert echo == {
        "method": "PATCH",
        "path": "/a/../b%20c?x=1&x=2",
        "host": "store.example.com",
        "headers": [
            ["Host", "store.example.com"],
            ["X-Trace", "one"],
            ["x-trace", "two"],
            ["Content-Length", "10"],
        ],
        "body_size": 10,
    }


def test_echo_headers_option(start: Callable[..., Running]) -> None:
    r = start(echo_headers=True)
    answer = get_json(
        r.port, b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nA: 2\r\nUser-Agent: k6\r\n\r\n"
    )
    assert answer["headers"] == {"Host": "h", "A": "1, 2", "User-Agent": "k6"}


def test_no_headers_object_by_default(store: Running) -> None:
    assert "headers" not in get_json(store.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")


def test_healthz(store: Running) -> None:
    status, headers, body = request(store.port, b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (status, body) == ("HTTP/1.1 200 OK", b"OK")
    assert headers["content-type"].startswith("text/plain")


def test_response_headers(store: Running) -> None:
    _, headers, body = request(store.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert headers["content-type"] == "application/json"
    assert headers["access-control-allow-origin"] == "*"
    assert headers["server"] == "mcgw-store"
    assert headers["content-length"] == str(len(body))
    assert headers["date"].endswith(" GMT")
    assert "connection" not in headers


def test_head_has_length_but_no_body(store: Running) -> None:
    with connect(store.port) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
        f = sock.makefile("rb")
        status = f.readline()
        head: dict[str, str] = {}
        while (line := f.readline()) != b"\r\n":
            name, _, value = line.decode().partition(":")
            head[name.lower()] = value.strip()
        # The next bytes are the GET's answer, so HEAD sent no body.
        _, _, get_body = read_response(f)
    assert status.startswith(b"HTTP/1.1 200")
    # HEAD's answer is GET's with its own method in the echo: same length, not sent.
    assert int(head["content-length"]) == len(get_body.replace(b'"GET"', b'"HEAD"'))


def test_keep_alive_and_pipelining(store: Running) -> None:
    with connect(store.port) as sock:
        f = sock.makefile("rb")
        sock.sendall(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
        first = json.loads(read_response(f)[2])
        # Two requests in one segment are answered in order on the same connection.
        sock.sendall(b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n")
        second = json.loads(read_response(f)[2])
        third = json.loads(read_response(f)[2])
    assert [a["echo"]["path"] for a in (first, second, third)] == ["/1", "/2", "/3"]


def test_connection_close_is_honoured(store: Running) -> None:
    with connect(store.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        f = sock.makefile("rb")
        _, headers, _ = read_response(f)
        assert headers["connection"] == "close"
        assert f.read() == b""


def test_http10_closes_unless_keep_alive(store: Running) -> None:
    with connect(store.port) as sock:
        sock.sendall(b"GET /old HTTP/1.0\r\n\r\n")
        f = sock.makefile("rb")
        status, _, body = read_response(f)
        assert status == "HTTP/1.0 200 OK"
        assert json.loads(body)["host_header"] == ""
        assert f.read() == b""
    with connect(store.port) as sock:
        f = sock.makefile("rb")
        for _ in range(2):
            sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, _ = read_response(f)
            assert (status, headers["connection"]) == ("HTTP/1.0 200 OK", "keep-alive")


def test_chunked_body_is_counted(store: Running) -> None:
    raw = (
        b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    with connect(store.port) as sock:
        f = sock.makefile("rb")
        # Sent in pieces, as a slow client would, then a second request on the same socket.
        for i in range(0, len(raw), 7):
            sock.sendall(raw[i : i + 7])
        assert json.loads(read_response(f)[2])["echo"]["body_size"] == 11
        sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert json.loads(read_response(f)[2])["echo"]["body_size"] == 0


def test_expect_100_continue(store: Running) -> None:
    with connect(store.port) as sock:
        sock.sendall(
            b"PUT /big HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        )
        f = sock.makefile("rb")
        assert f.readline() == b"HTTP/1.1 100 Continue\r\n" and f.readline() == b"\r\n"
        sock.sendall(b"abc")
        status, _, body = read_response(f)
    assert status == "HTTP/1.1 200 OK" and json.loads(body)["echo"]["body_size"] == 3


def test_malformed_request_gets_400_and_close(store: Running) -> None:
    with connect(store.port) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        f = sock.makefile("rb")
        status, _, _ = read_response(f)
        assert status == "HTTP/1.1 400 Bad Request"
        assert f.read() == b""


def test_request_log_lines(store: Running) -> None:
    request(store.port, b"GET /west?a=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    store.close()
    lines = store.log_lines()
    assert lines[0]["severity"] == "INFO" and lines[0]["port"] == store.port
    assert lines[1]["message"] == "GET /west?a=1 200"
    assert {k: lines[1][k] for k in ("severity", "method", "path", "status")} == {
        "severity": "INFO",
        "method": "GET",
        "path": "/west?a=1",
        "status": 200,
    }
    assert 0 <= lines[1]["latency"] < 1


def test_close_ends_idle_keep_alive_connections(store: Running) -> None:
    with connect(store.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        f = sock.makefile("rb")
        read_response(f)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            closing = pool.submit(store.close, 5.0)
            assert f.read() == b"", "idle connection closed by the server"
            closing.result(timeout=2)


def test_listen_error_is_a_store_error() -> None:
    with socket.socket() as blocker:
        # A port bound without SO_REUSEADDR by someone else cannot be listened on.
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]

        async def clash_bound() -> None:
            await server.serve(dataclasses.replace(POD, port=port), log=io.BytesIO())

        with pytest.raises(errors.StoreError, match=f"cannot listen on 127.0.0.1:{port}"):
            asyncio.run(clash_bound())


def test_settings_from_env() -> None:
    s = settings_.Settings.from_env(
        {"POD_NAME": "p", "PROJECT_ID": "proj", "ECHO_HEADERS": "True", "PORT": "9000"}
    )
    assert (s.pod_name, s.port, s.echo_headers) == ("p", 9000, True)
    assert s.gce_service_account == "proj.svc.id.goog"
    assert s.metadata is None and s.host == "0.0.0.0"
    assert settings_.Settings.from_env({"METADATA": ""}).metadata == ""
    with pytest.raises(errors.SettingError, match="PORT='http'"):
        settings_.Settings.from_env({"PORT": "http"})
    with pytest.raises(errors.SettingError, match="ECHO_HEADERS"):
        settings_.Settings.from_env({"ECHO_HEADERS": "maybe"})


def test_pod_name_emoji_is_a_stable_flag() -> None:
    names = [f"store-5b74fdb87c-{i:05d}" for i in range(50)]
    emojis = [payload.pod_name_emoji(n) for n in names]
    assert emojis == [payload.pod_name_emoji(n) for n in names]
    assert all(e in payload.FLAGS and len(e) == 2 for e in emojis)
    assert len(set(emojis)) > 30, "different pods mostly look different"
    assert all(0x1F1E6 <= ord(c) <= 0x1F1FF for flag in payload.FLAGS for c in flag)


def test_request_log_survives_a_closed_stream() -> None:
    stream = io.BytesIO()
    log = requestlog.RequestLog(stream)
    stream.close()
    log.record(b"GET", b"/", 200, 0.001)
    log.flush()
    assert log.dropped == 1


def test_process_serves_and_exits_0_on_sigterm() -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PORT": "0",
        "HOST": "127.0.0.1",
        "POD_NAME": "store-abc1234567-xyzzy",
        "CLUSTER_NAME": "gke-west-1",
        "ZONE": "us-west1-a",
        # Longer than the test: the request line must come from the flush on exit.
        "LOG_INTERVAL": "60",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcgw.store"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        assert started["severity"] == "INFO" and started["pod_name"] == env["POD_NAME"]
        answer = get_json(started["port"], b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (answer["cluster_name"], answer["zone"]) == ("gke-west-1", "us-west1-a")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert [line["path"] for line in lines] == ["/x"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_process_reports_bad_settings() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mcgw.store"],
        env={"PATH": os.environ.get("PATH", ""), "PORT": "99999"},
        capture_output=True,
        timeout=20,
    )
    assert proc.returncode == 1
    line = json.loads(proc.stderr)
    assert line["severity"] == "ERROR" and "PORT='99999'" in line["message"]

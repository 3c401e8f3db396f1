#!/usr/bin/env python3
"""The HTTP/1.1 strictness corpus against mcgw and nginx, side by side.

Every case of tests/dataplane/testdata/http1_corpus.yaml is sent, raw, to mcgw (a
gateway in this process) and to nginx (1 worker, ``proxy_pass`` with upstream
keep-alive), both in front of the same recording backend. A target passes a case when
the statuses it answers are the expected ones and the backend received exactly the
requests expected (none for a refused one). Cases that set limits (``settings``) are
run on nginx with the matching directives where one exists.

Usage: python bench/http1_corpus.py [--only NAME] [--verbose]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from mcgw.testing import tables
from mcgw.testing.client import RawClient
from mcgw.testing.gateway import serve
from mcgw.testing.upstream import FakeUpstream

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "dataplane" / "testdata" / "http1_corpus.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_conf(work: Path, port: int, backend: tuple[str, int], settings: dict[str, int]) -> str:
    """An nginx proxy like mcgw's defaults, with the case's limits where nginx has them."""
    body = settings.get("max_body_bytes", 100 * 1024 * 1024)
    line = settings.get("max_request_line_bytes", 8192)
    fields = settings.get("max_header_bytes", 65536)
    # nginx has no per-count header limit and one buffer size for a line and a header.
    buffer = max(1024, min(line, fields) + 64)
    return f"""
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log crit;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    access_log off;
    client_max_body_size {body};
    large_client_header_buffers 4 {buffer};
    upstream backend {{ server {backend[0]}:{backend[1]}; keepalive 8; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
        }}
    }}
}}
"""


async def exchange(addr: tuple[str, int], case: dict[str, Any]) -> list[int]:
    """Send the case; return the statuses read (0: none, -1: not an HTTP/1.x response)."""
    want = case.get("statuses", [case["status"]])
    c = await RawClient.connect(addr)
    got: list[int] = []
    try:
        await c.send(case["raw"].encode("latin-1"))
        for _ in want:
            try:
                got.append((await c.response(timeout_s=2.0)).status)
            except (ConnectionError, TimeoutError):
                got.append(0)  # no response
                break
            except Exception:  # an unparsable answer, e.g. an HTTP/0.9 one
                got.append(-1)
                break
    finally:
        await c.close()
    return got


def verdict(case: dict[str, Any], got: list[int], seen: int) -> bool:
    want: list[int] = case.get("statuses", [case["status"]])
    forwarded: int = case.get("forwarded", 1 if case["status"] == 200 else 0)
    return got == want and seen == forwarded


async def run_nginx(case: dict[str, Any], work: Path) -> tuple[list[int], int]:
    async with FakeUpstream() as up:
        port = free_port()
        conf = work / "nginx.conf"
        conf.write_text(nginx_conf(work, port, up.address, case.get("settings", {})))
        proc = subprocess.Popen(
            ["nginx", "-c", str(conf), "-p", str(work)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
            got = await exchange(("127.0.0.1", port), case)
            await asyncio.sleep(0.05)
            return got, len(up.seen)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)


async def run_mcgw(case: dict[str, Any]) -> tuple[list[int], int]:
    async with FakeUpstream() as up:
        t = tables.route_table([tables.route("r", "b")], [tables.backend("b", up.address)])
        async with serve(t, **case.get("settings", {})) as (_, addr):
            got = await exchange(addr, case)
            await asyncio.sleep(0.02)
            return got, len(up.seen)


async def main_async(args: argparse.Namespace) -> int:
    cases: list[dict[str, Any]] = yaml.safe_load(CORPUS.read_text())
    if args.only:
        cases = [c for c in cases if c["name"] == args.only]
    passed = {"mcgw": 0, "nginx": 0}
    agree = 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="mcgw-corpus-") as tmp:
        for case in cases:
            m_got, m_seen = await run_mcgw(case)
            n_got, n_seen = await run_nginx(case, Path(tmp))
            m_ok, n_ok = verdict(case, m_got, m_seen), verdict(case, n_got, n_seen)
            passed["mcgw"] += m_ok
            passed["nginx"] += n_ok
            agree += m_got == n_got and m_seen == n_seen
            if args.verbose or not (m_ok and n_ok):
                want = case.get("statuses", [case["status"]])
                rows.append(
                    f"{case['name']:40} want {want!s:12} mcgw {m_got!s:12} fwd {m_seen}"
                    f" {'ok' if m_ok else 'FAIL':4}  nginx {n_got!s:12} fwd {n_seen}"
                    f" {'ok' if n_ok else 'FAIL'}"
                )
    print("\n".join(rows))
    n = len(cases)
    print(f"\n{n} cases: mcgw passes {passed['mcgw']}, nginx passes {passed['nginx']};")
    print(f"they give the same answers and forward the same on {agree}")
    return 0 if passed["mcgw"] == n else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run one case by name")
    parser.add_argument("--verbose", action="store_true", help="list every case")
    args = parser.parse_args()
    if shutil.which("nginx") is None:
        sys.exit("needs nginx (apt-get install nginx-light)")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    # SIGTERM (`timeout`, kill) ends a run as Ctrl-C does: through the finally
    # blocks that stop the processes it started, by their PIDs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())

"""The scripted client skips the Set-Cookie search for a response whose head is the same
bytes as the last one that set no cookie: cookies must still be stored whenever a response
sets one, after any run of alike cookie-free responses, on the fast path and the general
one (a Python scenario and a JS script, against a loopback server answering fixed bytes)."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
from collections.abc import Iterator

import loadtest_threaded
import pytest

from mcgw.cli import main as cli

PLAIN = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nno cookie"
"""Every cookie-free answer: the same bytes each time (no Date header)."""
LOOKALIKE = b"HTTP/1.1 200 OK\r\nX-Note: Cookie-free\r\nContent-Length: 2\r\n\r\nok"
"""Mentions cookies in its head but sets none."""
SETS = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: sid=s1; Path=/\r\n\r\nok"


class FixedServer:
    """Answers ``/set`` with :data:`SETS`, ``/lookalike`` with :data:`LOOKALIKE`, anything
    else with :data:`PLAIN`; records each request's target and Cookie header."""

    def __init__(self) -> None:
        self.port = 0
        self.seen: list[tuple[str, str]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (head := await loadtest_threaded.read_head(reader)) is not None:
                lines = head.decode("latin-1").split("\r\n")
                target = lines[0].split(" ")[1]
                cookie = next(
                    (
                        ln.split(":", 1)[1].strip()
                        for ln in lines
                        if ln.lower().startswith("cookie:")
                    ),
                    "",
                )
                self.seen.append((target, cookie))
                writer.write({"/set": SETS, "/lookalike": LOOKALIKE}.get(target, PLAIN))
                await writer.drain()
        finally:
            writer.close()


@contextlib.contextmanager
def serving() -> Iterator[FixedServer]:
    """The server on its own thread and loop (the load runner runs its own)."""
    server = FixedServer()
    with loadtest_threaded.handling(server.handle) as port:
        server.port = port
        yield server


PY = """\
options = {"iterations": 1}

async def default(vu):
    for path in ["/a", "/b", "/a", "/lookalike", "/lookalike", "/set", "/a", "/b"]:
        await vu.http.get("BASE" + path)
"""

JS = """\
import http from 'k6/http';
export const options = { iterations: 1 };
export default function () {
  for (const path of ['/a', '/b', '/a', '/lookalike', '/lookalike', '/set', '/a', '/b']) {
    http.get('BASE' + path);
  }
}
"""


@pytest.mark.parametrize(("name", "text"), [("s.py", PY), ("s.js", JS)])
def test_cookies_stored_after_alike_cookie_free_responses(
    tmp_path: pathlib.Path, name: str, text: str
) -> None:
    with serving() as server:
        path = tmp_path / name
        path.write_text(text.replace("BASE", f"http://127.0.0.1:{server.port}"))
        rc = cli.main(["load", str(path)])
    assert rc == 0
    assert server.seen == [
        ("/a", ""),
        ("/b", ""),
        ("/a", ""),
        ("/lookalike", ""),
        ("/lookalike", ""),
        ("/set", ""),
        ("/a", "sid=s1"),
        ("/b", "sid=s1"),
    ]

"""A VU closed with a request in flight leaves nothing behind that asyncio would log at
collection ("Future exception was never retrieved"): the fast path's pending future is
cancelled, not failed by the connection's loss."""

from __future__ import annotations

import asyncio
import gc
import pathlib
import subprocess
import sys

from mcgw.loadtest import client

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _collecting(loop: asyncio.AbstractEventLoop) -> list[str]:
    """The messages of the loop's exception handler (where asyncio reports an exception
    nobody retrieved when its future is collected)."""
    seen: list[str] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(str(context["message"])))
    return seen


async def _answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers a connection's first request; the next ones never."""
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(RESPONSE)
        await writer.drain()
        await reader.read()  # until the client closes
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def test_client_closed_with_a_send_pending_cancels_it() -> None:
    seen: list[str] = []

    async def go() -> None:
        handler = _collecting(asyncio.get_running_loop())
        srv = await asyncio.start_server(_answer_once, "127.0.0.1", 0)
        target = client.parse_target(f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/")
        c = client.Client(target, client.build_request(target), timeout_s=5.0)
        assert (await c.request()).status == 200
        fut = c.send(client.build_request(target))
        assert fut is not None
        await asyncio.sleep(0.05)  # written; never answered
        c.close()  # the VU goes: nobody awaits fut any more
        await asyncio.sleep(0.05)  # the connection's loss is delivered
        assert fut.cancelled()
        del fut
        gc.collect()
        srv.close()
        await srv.wait_closed()
        seen.extend(handler)

    asyncio.run(go())
    assert not [m for m in seen if "never retrieved" in m], seen


JS = """\
import http from 'k6/http';
export const options = { scenarios: {
  closed: { executor: 'constant-vus', vus: 4, duration: '1s', gracefulStop: '0s' },
  ramping: { executor: 'ramping-vus', stages: [{ duration: '1s', target: 4 }],
             gracefulStop: '0s', gracefulRampDown: '0s' },
  open: { executor: 'constant-arrival-rate', rate: 40, timeUnit: '1s', duration: '1s',
          preAllocatedVUs: 4, gracefulStop: '0s' },
} };
export default function () {
  http.get(`${__ENV.BASE}/`);
  http.get(`${__ENV.BASE}/`);   // the fast path: answered, failed or never answered
  http.get(`${__ENV.BASE}/go`); // a redirect to a hop that fails or blocks
}
"""

SERVER = """\
import asyncio, itertools, sys
count = itertools.count()
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            n = next(count)
            if b" /go " in head:
                writer.write(b"HTTP/1.1 302 Found\\r\\nLocation: /hop\\r\\n"
                             b"Content-Length: 0\\r\\n\\r\\n")
            elif n % 4 == 1:
                writer.close()  # fails: the connection closes unanswered
                return
            elif n % 9 == 2:
                await asyncio.sleep(60)  # blocks past the end of the test
            else:
                writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(120)
asyncio.run(main())
"""


def test_throw_run_ended_by_duration_logs_no_unretrieved_exception(
    tmp_path: pathlib.Path,
) -> None:
    # The whole CLI in a process of its own: what asyncio logs at collection and at exit
    # goes to its stderr.
    (tmp_path / "t.js").write_text(JS)
    (tmp_path / "server.py").write_text(SERVER)
    server = subprocess.Popen(
        [sys.executable, str(tmp_path / "server.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        proc = subprocess.run(
            [sys.executable, "-m", "mcgw", "load", "--throw", "--timeout", "3s",
             "-e", f"BASE=http://127.0.0.1:{port}", str(tmp_path / "t.js")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        server.kill()
        server.wait(5)
    assert "iterations" in proc.stdout, proc.stderr
    assert "never retrieved" not in proc.stderr, proc.stderr

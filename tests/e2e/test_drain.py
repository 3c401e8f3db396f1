"""Graceful drain of a real ``mcgw serve`` process: SIGTERM under load loses nothing.

Eight keep-alive clients keep requests in flight to a backend that takes 0.3 s per
answer; the gateway gets SIGTERM in the middle. It must stop accepting, let every
request the backend started finish with a complete response (those finishing during
the drain say ``Connection: close``), close its connections with a FIN rather than a
reset, and exit 0. A client whose connection closes before it sent anything, or whose
reconnect is refused, simply stops: no request of its was started.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mcgw.testing import manifests
from mcgw.testing.runner import run as run_async
from mcgw.testing.upstream import FakeUpstream, Reply

ROOT = Path(__file__).resolve().parents[2]
LISTENER = re.compile(rb"gateway: listener \S+ on http://([\d.]+):(\d+)")
CLIENTS = 8
BACKEND_DELAY_S = 0.3


@dataclass
class Outcomes:
    completed: list[str] = field(default_factory=list)
    """Targets answered 200 with their whole body."""
    closing: list[str] = field(default_factory=list)
    """Targets whose response said ``Connection: close``."""
    unsent: int = 0
    """Connections closed by the gateway (FIN) with a request not yet answered."""
    refused: int = 0
    problems: list[str] = field(default_factory=list)
    """Resets, cut responses, anything else: must stay empty."""


async def _client(n: int, address: tuple[str, int], out: Outcomes, stop_at: float) -> None:
    i = 0
    while time.monotonic() < stop_at:
        try:
            reader, writer = await asyncio.open_connection(*address)
        except ConnectionRefusedError:
            out.refused += 1
            return
        try:
            while time.monotonic() < stop_at:
                target = f"/load/{n}/{i}"
                i += 1
                writer.write(f"GET {target} HTTP/1.1\r\nHost: app.example.com\r\n\r\n".encode())
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        out.problems.append(f"{target}: cut head {exc.partial!r}")
                    else:
                        out.unsent += 1  # orderly close before an answer: retry elsewhere
                    break
                length = int(re.search(rb"(?i)content-length: (\d+)", head)[1])  # type: ignore[index]
                body = await asyncio.wait_for(reader.readexactly(length), 10)
                if not head.startswith(b"HTTP/1.1 200 ") or body != b"ok":
                    out.problems.append(f"{target}: {head!r} {body!r}")
                out.completed.append(target)
                if b"connection: close" in head.lower():
                    out.closing.append(target)
                    # The gateway closes after it: an orderly EOF, not a reset.
                    if await asyncio.wait_for(reader.read(1), 5) != b"":
                        out.problems.append(f"{target}: bytes after Connection: close")
                    break
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError) as exc:
            out.problems.append(f"{target}: {exc!r}")
        finally:
            writer.close()


async def _scenario(folder: Path) -> None:
    async with FakeUpstream(Reply(delay_s=BACKEND_DELAY_S)) as up:
        (folder / "app.yaml").write_text(manifests.gateway_to_endpoints(backend_port=up.address[1]))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "mcgw", "serve", "-f", str(folder), "--bind", "127.0.0.1"),
            *("--port-map", "80:0", "--no-watch", "--no-access-log"),
            *("--log-dir", str(folder / "logs")),
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stderr is not None
            address = None
            async with asyncio.timeout(30):
                while not (line := await proc.stderr.readline()).startswith(b"ready"):
                    assert line, "mcgw serve exited before it was ready"
                    if found := LISTENER.search(line):
                        address = (found[1].decode(), int(found[2]))
            assert address is not None
            out = Outcomes()
            clients = [
                asyncio.create_task(_client(n, address, out, time.monotonic() + 15))
                for n in range(CLIENTS)
            ]
            await asyncio.sleep(1.0 + BACKEND_DELAY_S / 2)  # mid-way through a round
            in_flight = len([s for s in up.seen if s.target.startswith("/load/")]) - len(
                out.completed
            )
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                await asyncio.gather(*clients)
                code = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert code == 0
    assert out.problems == []
    assert in_flight > 0, "no request was in flight at SIGTERM: the test proves nothing"
    started = sorted(s.target for s in up.seen if s.target.startswith("/load/"))
    # Every request the backend saw was answered in full, including those in flight.
    assert sorted(out.completed) == started
    assert len(out.closing) >= in_flight - CLIENTS // 2  # those finishing in the drain
    assert out.refused + out.unsent >= CLIENTS  # every client was turned away, gently


def test_sigterm_finishes_requests_in_flight_and_exits_0(tmp_path: Path) -> None:
    run_async(_scenario(tmp_path), timeout_s=60)

"""A connection remembers its last response's bytes when they were one read holding
exactly one final, kept-alive response; the same bytes again are that response again,
completed without the parser (client._Connection.data_received).
Every result must be the one parsing gives: the same sequence of responses is read with
the memo and without it (``_remember`` switched off: the general path), field by field."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from mcgw.loadtest import client

R1 = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
R2 = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nko"
R404 = b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
CLOSE = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"

SEQUENCE: list[tuple[bytes, ...]] = [
    (R1,), (R1,), (R1,),  # remembered, then twice the same
    (R2,), (R2,),  # another body: parsed, then remembered
    (R404,), (R404,),  # the status of a remembered response
    (CHUNKED,), (CHUNKED,),  # the body as the parser hands it over
    (R1,), (HINTS + R1,), (R1,),  # an interim response before the same final one
    (R1[:20], R1[20:]),  # the same response in two reads
    (R1,), (R1 + b"\r\n",), (R1,),  # a stray CRLF after it
    (R1,), (CLOSE,),  # the last one: the connection closes
]  # fmt: skip
"""Each request's answer: the writes that make it (a short pause between two)."""


@contextlib.asynccontextmanager
async def _serving() -> AsyncIterator[tuple[int, list[int]]]:
    """Answers the n-th request on a connection with SEQUENCE[n]; yields the port and the
    requests seen per connection."""
    seen: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(0)
        try:
            for parts in SEQUENCE:
                await reader.readuntil(b"\r\n\r\n")
                seen[-1] += 1
                for i, part in enumerate(parts):
                    if i:
                        await asyncio.sleep(0.02)
                    writer.write(part)
                    await writer.drain()
                if parts[-1] is CLOSE:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    srv = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    try:
        yield int(srv.sockets[0].getsockname()[1]), seen
    finally:
        srv.close()
        await srv.wait_closed()


class _CountingParser:
    """The connection's parser, counting the reads it is fed."""

    def __init__(self, parser: Any) -> None:
        self._parser = parser
        self.fed = 0

    def feed_data(self, data: bytes) -> None:
        self.fed += 1
        self._parser.feed_data(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


@contextlib.contextmanager
def _without_memo(off: bool) -> Iterator[None]:
    saved = client._Connection._remember
    if off:
        client._Connection._remember = lambda self, data: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        client._Connection._remember = saved  # type: ignore[method-assign]


def _fields(r: client.Result) -> tuple[object, ...]:
    return (r.status, r.error, r.bytes_sent, r.bytes_received, r.head, r.body, r.cluster, r.zone)


async def _read_all(
    how: str, capture: bool, collect: bool
) -> tuple[list[tuple[object, ...]], int, list[int]]:
    async with _serving() as (port, seen):
        target = client.parse_target(f"http://127.0.0.1:{port}/")
        raw = client.build_request(target)
        c = client.Client(target, raw, timeout_s=5.0, capture=capture, collect=collect)
        results: list[client.Result] = []
        fed = 0
        try:
            for i in range(len(SEQUENCE)):
                if i == 0 or how == "request":
                    results.append(await c.request())
                else:
                    sent = c.send(raw)
                    assert sent is not None, "a kept-alive connection takes the fast path"
                    results.append(await sent)
                conn = c._conn
                if i == 0:
                    assert conn is not None
                    counting = _CountingParser(conn.parser)
                    conn.parser = counting  # type: ignore[assignment]
            fed = counting.fed
        finally:
            c.close()
        return [_fields(r) for r in results], fed, seen


@pytest.mark.parametrize("how", ["send", "request"])
@pytest.mark.parametrize(
    ("capture", "collect"),
    [(False, False), (True, False), (True, True)],
    ids=["url", "body", "breakdown"],
)
def test_remembered_responses_read_as_parsed_ones(how: str, capture: bool, collect: bool) -> None:
    with _without_memo(True):
        parsed, parsed_fed, seen = asyncio.run(_read_all(how, capture, collect))
    remembered, fed, seen_again = asyncio.run(_read_all(how, capture, collect))
    assert seen == seen_again == [len(SEQUENCE)]  # one connection, every request on it
    assert [f[0] for f in parsed] == [200] * 5 + [404] * 2 + [200] * 11
    assert parsed[0][4:6] == ((R1, b"ok") if capture else (b"", b""))
    assert remembered == parsed
    # Parsed: every read after the first response's (17 responses, one in two reads).
    assert parsed_fed == len(SEQUENCE)
    # Remembered: R1 twice, R2, R404 and the chunked one are the same bytes as the
    # response before them: 5 reads not parsed. (After the hints R1 is not remembered —
    # the one remembered before them came for nothing, so the next one is skipped — and
    # after the split the next three are not: see
    # test_distinct_responses_are_remembered_less_and_less.)
    assert fed == parsed_fed - 5


def test_distinct_responses_are_remembered_less_and_less() -> None:
    # A server whose every response differs gets nothing from remembering them, which
    # costs a search of the head each time: after each remembered response that did not
    # come again, twice as many (up to 255) are not remembered.
    calls: list[int] = []
    saved = client._Connection._remember

    def counting(self: client._Connection, data: bytes) -> None:
        calls.append(self.received)
        saved(self, data)

    async def go(port: int, distinct: int, same: int) -> list[int]:
        target = client.parse_target(f"http://127.0.0.1:{port}/")
        raw = client.build_request(target)
        c = client.Client(target, raw, timeout_s=5.0, capture=True)
        statuses = []
        try:
            for _ in range(distinct + same):
                statuses.append((await c.request()).status)
        finally:
            c.close()
        return statuses

    async def serve(distinct: int, same: int) -> list[int]:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                for i in range(distinct + same):
                    await reader.readuntil(b"\r\n\r\n")
                    body = b"%05d" % min(i, distinct)  # distinct, then the same
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + body)
                    await writer.drain()
            writer.close()

        srv = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        try:
            return await go(int(srv.sockets[0].getsockname()[1]), distinct, same)
        finally:
            srv.close()
            await srv.wait_closed()

    client._Connection._remember = counting  # type: ignore[method-assign]
    try:
        statuses = asyncio.run(serve(100, 300))
    finally:
        client._Connection._remember = saved  # type: ignore[method-assign]
    assert statuses == [200] * 400
    # Responses 1, 3, 7, 15, 31, 63 and 127 (each remembered for nothing doubles the
    # gap); from the 101st on they are the same bytes: the 127th, remembered, comes
    # again and again (no more calls).
    assert len(calls) == 7

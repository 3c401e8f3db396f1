"""Graceful drain in process, over real sockets: what each kind of connection sees.

A connection is closed with a FIN even when a request of its is still unread in the
gateway's socket buffer (the race every keep-alive close has): the client reads an
orderly end, not a reset. A busy one gets its response, marked
``Connection: close``, then the FIN. A reload that removes a listener drains its
connections the same way.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from mcgw.dataplane import server
from mcgw.ir import table
from mcgw.testing import tables
from mcgw.testing.gateway import SETTINGS
from mcgw.testing.runner import run
from mcgw.testing.upstream import FakeUpstream, Reply

REQUEST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def _table(address: tuple[str, int]) -> table.RouteTable:
    return tables.route_table([tables.route("r", "b")], [tables.backend("b", address)])


async def _response(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head + await asyncio.wait_for(reader.readexactly(length), 5)


def test_unread_requests_meet_a_fin_not_a_reset() -> None:
    async def main() -> None:
        async with FakeUpstream(Reply(delay_s=0.3)) as up:
            gw = server.Gateway(SETTINGS)
            await gw.apply(_table(up.address))
            reader, writer = await asyncio.open_connection(*gw.addresses()[tables.LISTENER])
            writer.write(REQUEST)
            while not up.seen:
                await asyncio.sleep(0.01)
            # Pipelined behind the slow first one: the gateway queues the second and
            # stops reading, so the third stays unread in its socket buffer, as a
            # request sent just when a connection closes does. Closing such a socket
            # outright would answer with a reset, losing even the first response.
            writer.write(REQUEST)
            await asyncio.sleep(0.05)
            writer.write(REQUEST)
            await asyncio.sleep(0.05)
            closing = asyncio.create_task(gw.close(timeout_s=3))
            response = await _response(reader)
            assert response.startswith(b"HTTP/1.1 200 ")
            assert b"\r\nConnection: close\r\n" in response
            assert await asyncio.wait_for(reader.read(), 5) == b""  # EOF; a reset raises
            writer.close()
            await closing
        assert len(up.seen) == 1  # nothing after the drain began was forwarded

    run(main())


def test_busy_connection_finishes_its_response_with_connection_close() -> None:
    async def main() -> None:
        async with FakeUpstream(Reply(delay_s=0.3)) as up:
            gw = server.Gateway(SETTINGS)
            await gw.apply(_table(up.address))
            addr = gw.addresses()[tables.LISTENER]
            reader, writer = await asyncio.open_connection(*addr)
            writer.write(REQUEST)
            while not up.seen:
                await asyncio.sleep(0.01)
            closing = asyncio.create_task(gw.close(timeout_s=3))
            response = await _response(reader)
            assert response.startswith(b"HTTP/1.1 200 ")
            assert b"\r\nConnection: close\r\n" in response
            assert await asyncio.wait_for(reader.read(), 5) == b""
            await closing
            writer.close()
            try:
                await asyncio.open_connection(*addr)
                raise AssertionError("the listening socket is still open")
            except ConnectionRefusedError:
                pass

    run(main())


def test_a_reload_removing_a_listener_drains_its_connections() -> None:
    async def main() -> None:
        async with FakeUpstream(Reply(delay_s=0.3)) as up:
            gw = server.Gateway(SETTINGS)
            try:
                first = _table(up.address)
                await gw.apply(first)
                reader, writer = await asyncio.open_connection(*gw.addresses()[tables.LISTENER])
                writer.write(REQUEST)
                while not up.seen:
                    await asyncio.sleep(0.01)
                await gw.apply(replace(first, listeners=(), version="empty"))
                assert gw.addresses() == {}
                response = await _response(reader)  # in flight: finished on the old table
                assert response.startswith(b"HTTP/1.1 200 ")
                assert b"\r\nConnection: close\r\n" in response
                assert await asyncio.wait_for(reader.read(), 5) == b""
                writer.close()
                for _ in range(100):  # the gateway lingers until the client closes
                    if gw.connections == 0:
                        break
                    await asyncio.sleep(0.01)
                assert gw.connections == 0
            finally:
                await gw.close(timeout_s=1)

    run(main())


def test_a_client_that_keeps_its_end_open_is_closed_after_the_linger_not_the_deadline() -> None:
    # The connection's own deadlines (here the 2 s linger after the gateway's FIN) must
    # still be enforced while the gateway drains: only then does a client that never
    # closes its end hold the drain for the linger, not for the whole drain deadline.
    async def main() -> None:
        async with FakeUpstream(Reply()) as up:
            gw = server.Gateway(SETTINGS)
            await gw.apply(_table(up.address))
            reader, writer = await asyncio.open_connection(*gw.addresses()[tables.LISTENER])
            writer.write(REQUEST)
            assert (await _response(reader)).startswith(b"HTTP/1.1 200 ")
            loop = asyncio.get_running_loop()
            started = loop.time()
            await gw.close(timeout_s=8)  # the client keeps its end open throughout
            took = loop.time() - started
            assert await asyncio.wait_for(reader.read(), 1) == b""  # the gateway's FIN
            writer.close()
            assert 1.5 < took < 4, took  # LINGER_S is 2 s; the deadline would be 8

    run(main())

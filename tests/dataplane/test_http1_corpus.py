"""Every case of testdata/http1_corpus.yaml through a real gateway over real sockets.

Per case: the raw bytes go out in one write; each expected response is read back;
the gateway must close when the case says (always after an error); the backend must
receive exactly the requests expected, and for a refused request no connection at all.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings

from mcgw.testing import tables
from mcgw.testing.client import RawClient
from mcgw.testing.gateway import serve
from mcgw.testing.runner import run
from mcgw.testing.upstream import FakeUpstream, Seen

CORPUS = Path(__file__).parent / "testdata" / "http1_corpus.yaml"


def load_corpus() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = yaml.safe_load(CORPUS.read_text())
    return cases


async def run_case(case: dict[str, Any]) -> tuple[list[int], bool, list[Seen], int]:
    """Return the statuses read, whether the gateway closed, requests and connections
    the backend saw."""
    statuses = case.get("statuses", [case["status"]])
    async with FakeUpstream() as up:
        t = tables.route_table([tables.route("r", "b")], [tables.backend("b", up.address)])
        async with serve(t, **case.get("settings", {})) as (_, addr):
            c = await RawClient.connect(addr)
            try:
                await c.send(case["raw"].encode("latin-1"))
                got = []
                for _ in statuses:
                    got.append((await c.response(timeout_s=3.0)).status)
                closed = await c.closed(timeout_s=1.0 if case_closes(case) else 0.2)
            finally:
                await c.close()
        return got, closed, up.seen, up.connections


def case_closes(case: dict[str, Any]) -> bool:
    return bool(case.get("close", case["status"] != 200))


@pytest.mark.parametrize("case", load_corpus(), ids=lambda c: c["name"])
def test_corpus_case_over_sockets(case: dict[str, Any]) -> None:
    statuses = case.get("statuses", [case["status"]])
    forwarded = case.get("forwarded", 1 if case["status"] == 200 else 0)
    got, closed, seen, connections = run(run_case(case))
    assert got == statuses
    assert closed == case_closes(case)
    assert len(seen) == forwarded
    if forwarded == 0:
        assert connections == 0, "a refused request must not reach the backend at all"
    for request in seen:
        # Forwarded requests are re-framed: one Content-Length or chunked, no look-alike.
        names = [n.lower() for n, _ in request.headers]
        assert names.count("host") == 1
        assert names.count("content-length") + names.count("transfer-encoding") <= 1
        assert not any("_" in n and n.replace("_", "-") in FRAMING for n in names)
        if "transfer-encoding" in names:
            assert request.header("transfer-encoding") == "chunked"


FRAMING = ("host", "content-length", "transfer-encoding")


# -- the same cases arriving in random pieces ---------------------------------------------

SPLIT_EXAMPLES = int(os.environ.get("MCGW_SOCKET_FUZZ_EXAMPLES", "15"))
"""Hypothesis examples of the split variant (``make fuzz`` raises it)."""


async def run_split(case: dict[str, Any], cuts: list[int]) -> tuple[list[int], bool, int, int]:
    """:func:`run_case`, the bytes sent in pieces cut at ``cuts``, each its own read."""
    data = case["raw"].encode("latin-1")
    statuses = case.get("statuses", [case["status"]])
    async with FakeUpstream() as up:
        t = tables.route_table([tables.route("r", "b")], [tables.backend("b", up.address)])
        async with serve(t, **case.get("settings", {})) as (_, addr):
            c = await RawClient.connect(addr)
            try:
                bounds = [0, *sorted({x for x in cuts if 0 < x < len(data)}), len(data)]
                for a, b in itertools.pairwise(bounds):
                    try:
                        await c.send(data[a:b])
                    except ConnectionError:
                        break  # refused early: the rest is not wanted
                    await asyncio.sleep(0.003)
                got = []
                for _ in statuses:
                    got.append((await c.response(timeout_s=3.0)).status)
                closed = await c.closed(timeout_s=1.0 if case_closes(case) else 0.2)
            finally:
                await c.close()
        return got, closed, len(up.seen), up.connections


def _case(name: str) -> dict[str, Any]:
    return next(case for case in load_corpus() if case["name"] == name)


@settings(max_examples=SPLIT_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(load_corpus()), st.lists(st.integers(1, 200), max_size=5))
# The request after "Connection: close" sent in its own writes, the last after the
# gateway closed: the client's write fails, and the response before it must still read.
@example(_case("after-connection-close-nothing-read"), [47, 48])
def test_corpus_cases_split_anywhere_get_the_same_answers(
    case: dict[str, Any], cuts: list[int]
) -> None:
    statuses = case.get("statuses", [case["status"]])
    forwarded = case.get("forwarded", 1 if case["status"] == 200 else 0)
    got, closed, seen, connections = run(run_split(case, cuts))
    assert got == statuses, case["name"]
    assert closed == case_closes(case), case["name"]
    # No refused request is ever received whole. (When its head came in a read of its
    # own, the head was already streamed, re-framed, before the bad body bytes came: the
    # backend then sees that request cut, its connection closed, never the bad bytes.)
    assert seen == forwarded, case["name"]
    head_end = case["raw"].find("\r\n\r\n") + 4
    if forwarded == 0 and all(c < head_end for c in cuts):
        assert connections == 0, case["name"]

"""The Gateway API's route precedence as a sort key (no sockets)."""

from __future__ import annotations

import random

from mcgw.ir import table
from mcgw.translate import routes

OLD = "2023-01-01T00:00:00Z"
NEW = "2024-01-01T00:00:00Z"


def _m(
    kind: table.PathMatchType = table.PathMatchType.PATH_PREFIX,
    value: str = "/",
    method: str | None = None,
    headers: int = 0,
    params: int = 0,
) -> table.Match:
    return table.Match(
        path=table.PathMatch(kind, value),
        headers=tuple(table.HeaderMatch(f"h{i}", "v") for i in range(headers)),
        query_params=tuple(table.QueryParamMatch(f"q{i}", "v") for i in range(params)),
        method=method,
    )


def test_precedence_order_of_the_spec() -> None:
    ordered = [
        ("exact", _m(table.PathMatchType.EXACT, "/a"), OLD, "ns", "r", 0, 0),
        ("regex", _m(table.PathMatchType.REGULAR_EXPRESSION, "/a.*"), OLD, "ns", "r", 0, 0),
        ("longest prefix", _m(value="/a/b/c"), NEW, "ns", "z", 5, 0),
        ("method", _m(value="/a/b", method="GET"), NEW, "ns", "z", 0, 0),
        ("two headers", _m(value="/a/b", headers=2), NEW, "ns", "z", 0, 0),
        ("one header, two params", _m(value="/a/b", headers=1, params=2), NEW, "ns", "z", 0, 0),
        ("one header, one param", _m(value="/a/b", headers=1, params=1), NEW, "ns", "z", 0, 0),
        ("oldest", _m(value="/a/b"), OLD, "ns", "z", 0, 0),
        ("newer, namespace a", _m(value="/a/b"), NEW, "a", "z", 0, 0),
        ("newer, namespace b, name a", _m(value="/a/b"), NEW, "b", "a", 0, 0),
        ("newer, namespace b, name b, rule 0", _m(value="/a/b"), NEW, "b", "b", 0, 1),
        ("same, rule 1", _m(value="/a/b"), NEW, "b", "b", 1, 0),
        ("no timestamp sorts after any timestamp", _m(value="/a/b"), None, "a", "a", 0, 0),
        ("catch-all", _m(), OLD, "ns", "r", 0, 0),
    ]
    shuffled = ordered[:]
    random.Random(7).shuffle(shuffled)
    got = sorted(shuffled, key=lambda e: routes.precedence_key(*e[1:]))
    assert [e[0] for e in got] == [e[0] for e in ordered]


def test_unparseable_timestamp_counts_as_missing() -> None:
    a = routes.precedence_key(_m(), "yesterday", "ns", "a", 0, 0)
    b = routes.precedence_key(_m(), None, "ns", "a", 0, 0)
    assert a == b

"""router.compile / Router.match, without sockets."""

from __future__ import annotations

import pytest

from mcgw.dataplane import router
from mcgw.ir import table
from mcgw.testing import tables

L = tables.LISTENER


def _table(*vhosts: tuple[str, list[table.Route]]) -> table.RouteTable:
    listener = table.Listener(
        name=L,
        address="0.0.0.0",
        port=80,
        virtual_hosts=tuple(table.VirtualHost(hostname=h, routes=tuple(r)) for h, r in vhosts),
    )
    return table.RouteTable(listeners=(listener,), backends=())


def _name(r: router.Router, host: bytes = b"x", path: bytes = b"/", **kw: object) -> str | None:
    route = r.match(
        str(kw.get("listener", L)),
        host,
        path,
        kw.get("query", b""),  # type: ignore[arg-type]
        kw.get("headers", ()),  # type: ignore[arg-type]
        kw.get("method", b"GET"),  # type: ignore[arg-type]
    )
    return None if route is None else route.name


HOSTS = _table(
    ("store.example.com", [tables.route("exact", "b")]),
    ("*.example.com", [tables.route("wild", "b")]),
    ("*.a.example.com", [tables.route("wild-long", "b")]),
    ("*", [tables.route("any", "b")]),
)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (b"store.example.com", "exact"),
        (b"STORE.Example.COM", "exact"),
        (b"store.example.com:8080", "exact"),
        (b"store.example.com.", "exact"),
        (b"x.example.com", "wild"),
        (b"y.x.example.com", "wild"),
        (b"b.a.example.com", "wild-long"),
        (b"example.com", "any"),
        (b"other.org", "any"),
        (b"127.0.0.1:80", "any"),
        (b"[::1]:80", "any"),
        (b"", "any"),
    ],
)
def test_host_exact_wildcard_fallback(host: bytes, expected: str) -> None:
    r = router.compile(HOSTS)
    assert _name(r, host) == expected
    # Second lookup goes through the per-listener cache and must agree.
    assert _name(r, host) == expected


def test_no_fallback_host_and_unknown_listener_are_404() -> None:
    r = router.compile(_table(("a.example.com", [tables.route("a", "b")])))
    assert _name(r, b"a.example.com") == "a"
    assert _name(r, b"b.example.com") is None
    assert _name(r, b"a.example.com", listener="nope/gw/81") is None


def test_wildcard_needs_a_label() -> None:
    r = router.compile(_table(("*.example.com", [tables.route("w", "b")])))
    assert _name(r, b"example.com") is None
    assert _name(r, b"xexample.com") is None
    assert _name(r, b"a.example.com") == "w"


@pytest.mark.parametrize("prefix", ["/west", "/west/"])
@pytest.mark.parametrize(
    ("path", "matches"),
    [
        (b"/west", True),
        (b"/west/", True),
        (b"/west/x", True),
        (b"/west/x/y", True),
        (b"/westx", False),
        (b"/wes", False),
        (b"/", False),
        (b"/east/west", False),
    ],
)
def test_path_prefix_is_segment_aware(prefix: str, path: bytes, matches: bool) -> None:
    r = router.compile(_table(("*", [tables.route("p", "b", path=prefix)])))
    assert (_name(r, path=path) == "p") is matches


def test_root_prefix_matches_everything() -> None:
    r = router.compile(_table(("*", [tables.route("root", "b", path="/")])))
    for path in (b"/", b"/a", b"/a/b/c", b"*"):
        assert _name(r, path=path) == "root"


def test_exact_and_regex_paths() -> None:
    r = router.compile(
        _table(
            (
                "*",
                [
                    tables.route("exact", "b", path="/a", path_type=table.PathMatchType.EXACT),
                    tables.route(
                        "regex",
                        "b",
                        path=r"/items/\d+",
                        path_type=table.PathMatchType.REGULAR_EXPRESSION,
                    ),
                ],
            )
        )
    )
    assert _name(r, path=b"/a") == "exact"
    assert _name(r, path=b"/a/") is None
    assert _name(r, path=b"/items/42") == "regex"
    assert _name(r, path=b"/items/42/x") is None  # full match, not search


def test_headers_method_and_query() -> None:
    r = router.compile(
        _table(
            (
                "*",
                [
                    tables.route(
                        "hdr",
                        "b",
                        headers=(table.HeaderMatch(name="X-Env", value="canary"),),
                    ),
                    tables.route(
                        "hdr-re",
                        "b",
                        headers=(
                            table.HeaderMatch(
                                name="x-user",
                                value="u[0-9]+",
                                type=table.HeaderMatchType.REGULAR_EXPRESSION,
                            ),
                        ),
                    ),
                    tables.route("post", "b", method="POST"),
                    tables.route(
                        "query", "b", query_params=(table.QueryParamMatch(name="v", value="2"),)
                    ),
                    tables.route("rest", "b"),
                ],
            )
        )
    )
    assert _name(r, headers=[(b"x-env", b"canary")]) == "hdr"
    assert _name(r, headers=[(b"X-ENV", b"canary")]) == "hdr"
    assert _name(r, headers=[(b"x-env", b"Canary")]) == "rest"  # values are case-sensitive
    assert _name(r, headers=[(b"X-User", b"u12")]) == "hdr-re"
    assert _name(r, headers=[(b"X-User", b"u12x")]) == "rest"
    assert _name(r, method=b"POST") == "post"
    assert _name(r, query=b"a=1&v=2") == "query"
    assert _name(r, query=b"v=3&v=2") == "rest"  # the first occurrence counts
    assert _name(r) == "rest"


def test_all_conditions_must_hold() -> None:
    both = tables.route(
        "both",
        "b",
        path="/api",
        method="GET",
        headers=(table.HeaderMatch(name="x-a", value="1"),),
    )
    r = router.compile(_table(("*", [both])))
    assert _name(r, path=b"/api/x", headers=[(b"x-a", b"1")]) == "both"
    assert _name(r, path=b"/api/x", headers=[(b"x-a", b"1")], method=b"PUT") is None
    assert _name(r, path=b"/other", headers=[(b"x-a", b"1")]) is None
    assert _name(r, path=b"/api/x") is None


def test_first_match_in_table_order_wins() -> None:
    r = router.compile(
        _table(
            (
                "*",
                [
                    tables.route("long", "b", path="/west/x"),
                    tables.route("short", "b", path="/west"),
                    tables.route("all", "b", path="/"),
                ],
            )
        )
    )
    assert _name(r, path=b"/west/x/1") == "long"
    assert _name(r, path=b"/west/y") == "short"
    assert _name(r, path=b"/east") == "all"
    # Order is the table's, not re-sorted here.
    r2 = router.compile(
        _table(("*", [tables.route("all", "b", path="/"), tables.route("short", "b", path="/w")]))
    )
    assert _name(r2, path=b"/w") == "all"


def test_match_returns_the_ir_route() -> None:
    route = tables.route("r", "b", path="/a")
    r = router.compile(_table(("*", [route])))
    assert r.match(L, b"h", b"/a", b"", (), b"GET") is route

"""The compiled filters (dataplane.filters), without sockets."""

from __future__ import annotations

import pytest

from mcgw.dataplane import filters
from mcgw.ir import table
from mcgw.testing import tables


def hv(name: str, value: str) -> table.HeaderValue:
    return table.HeaderValue(name=name, key=name.lower(), value=value)


def lines(*pairs: tuple[str, str]) -> list[bytes]:
    return [f"{k}: {v}\r\n".encode() for k, v in pairs]


def test_header_edit_set_add_remove_case_insensitively() -> None:
    edit = filters.HeaderEdit(
        table.HeaderModifier(
            set=(hv("X-Header-Set", "set-overwrites-values"),),
            add=(hv("X-Header-Add", "add-appends-values"), hv("X-New", "a,b")),
            remove=("x-header-remove",),
        )
    )
    before = lines(
        ("x-header-set", "old"),
        ("X-HEADER-SET", "older"),
        ("x-header-add", "some-other-value"),
        ("X-Header-Remove", "gone"),
        ("Keep", "me"),
    )
    after = edit.apply(before)
    assert after == lines(
        ("x-header-add", "some-other-value,add-appends-values"),
        ("Keep", "me"),
        ("X-New", "a,b"),
        ("X-Header-Set", "set-overwrites-values"),
    )
    assert len(before) == 5  # the input list is left alone


def test_header_edit_add_to_the_last_of_several_lines() -> None:
    edit = filters.HeaderEdit(table.HeaderModifier(add=(hv("Via-X", "c"),)))
    assert edit.apply(lines(("via-x", "a"), ("via-x", "b"))) == lines(
        ("via-x", "a"), ("via-x", "b,c")
    )


@pytest.mark.parametrize(
    ("prefix", "value", "path", "want"),
    [
        ("/foo", "/xyz", "/foo/bar", "/xyz/bar"),
        ("/foo", "/xyz", "/foo/", "/xyz/"),
        ("/foo", "/xyz", "/foo", "/xyz"),
        ("/foo", "", "/foo", "/"),
        ("/foo", "", "/foo/bar", "/bar"),
        ("", "/xyz", "/", "/xyz/"),
        ("", "/xyz", "/bar", "/xyz/bar"),
    ],
)
def test_path_plan_matches_the_reference(prefix: str, value: str, path: str, want: str) -> None:
    modifier = table.PathModifier(
        type=table.PathModifierType.REPLACE_PREFIX_MATCH, value=value, prefix=prefix
    )
    assert modifier.apply(path) == want
    assert filters.PathPlan(modifier).apply(path.encode()) == want.encode()


def test_redirect_location() -> None:
    plan = filters.RedirectPlan(table.Redirect(scheme="https", port=8443, status_code=301))
    assert plan.status_line == b"HTTP/1.1 301 Moved Permanently\r\n"
    assert plan.location(b"a.example:8080", b"/p", b"q=1") == b"https://a.example:8443/p?q=1"
    assert plan.location(b"[::1]:80", b"/", b"") == b"https://[::1]:8443/"
    full = table.PathModifier(type=table.PathModifierType.REPLACE_FULL_PATH, value="/new")
    plan = filters.RedirectPlan(table.Redirect(scheme="http", hostname="b.example", path=full))
    assert plan.location(b"a.example", b"/old", b"") == b"http://b.example/new"


def cors(**kw: object) -> filters.CorsPlan:
    return filters.CorsPlan(table.Cors(**kw))  # type: ignore[arg-type]


def test_cors_regex_and_exact_origins() -> None:
    plan = cors(
        allow_origins=("https://www.foo.com", "https://*.bar.com"),
        origin_regex=r"https://www\.foo\.com(:443)?|https://[a-z0-9.-]+\.bar\.com(:443)?",
        allow_methods=("GET", "OPTIONS"),
        allow_headers=("x-header-1",),
        expose_headers=("x-header-3",),
        allow_credentials=True,
        max_age_s=3600,
    )
    assert plan.allows(b"https://WWW.foo.com")
    assert plan.allows(b"https://xpto.www.bar.com")
    assert not plan.allows(b"https://foobar.com")
    got = plan.preflight_lines(b"https://www.foo.com", b"GET", b"x-header-1")
    assert b"Access-Control-Allow-Origin: https://www.foo.com\r\n" in got
    assert b"Vary: Origin\r\n" in got
    assert b"Access-Control-Allow-Methods: GET, OPTIONS\r\n" in got
    assert b"Access-Control-Allow-Credentials: true\r\n" in got
    assert b"Access-Control-Max-Age: 3600\r\n" in got
    assert plan.preflight_lines(b"https://foobar.com", b"GET", None) == b""
    assert plan.actual_lines(b"https://foobar.com") == b""
    assert plan.actual_lines(None) == b""
    assert b"Access-Control-Expose-Headers: x-header-3\r\n" in plan.actual_lines(
        b"https://www.foo.com"
    )


def test_cors_wildcards_with_and_without_credentials() -> None:
    star = cors(allow_origins=("*",), allow_methods=("*",), allow_headers=("*",))
    got = star.preflight_lines(b"https://x.com", b"PUT", b"x-a")
    assert b"Access-Control-Allow-Origin: *\r\n" in got
    assert b"Access-Control-Allow-Methods: *\r\n" in got
    assert b"Credentials" not in got
    creds = cors(
        allow_origins=("*",),
        allow_methods=("*",),
        allow_headers=("*",),
        expose_headers=("*",),
        allow_credentials=True,
    )
    got = creds.preflight_lines(b"https://x.com", b"PUT", b"x-a, x-b")
    assert b"Access-Control-Allow-Origin: https://x.com\r\n" in got
    assert b"Access-Control-Allow-Methods: PUT\r\n" in got
    assert b"Access-Control-Allow-Headers: x-a, x-b\r\n" in got
    assert b"Expose" not in got
    assert b"Allow-Headers" not in creds.preflight_lines(b"https://x.com", b"PUT", None)


def test_mirror_due_honours_the_fraction() -> None:
    plan = filters.MirrorPlan(table.Mirror(backend="m", numerator=1, denominator=3))
    draws = [i / 300 for i in range(300)]
    assert sum(plan.due(d) for d in draws) == 100
    never = filters.MirrorPlan(table.Mirror(backend="m", numerator=0))
    assert not any(never.due(d) for d in draws)


def test_route_plan_is_plain_only_without_filters_timeouts_or_retry() -> None:
    route = tables.route("r", "b")
    assert filters.RoutePlan(route).plain
    # A retry without codes retries nothing on a status: still plain.
    no_codes = table.Route(
        name="r", match=route.match, backends=route.backends, retry=table.Retry()
    )
    assert filters.RoutePlan(no_codes).plain
    codes = table.Route(
        name="r", match=route.match, backends=route.backends, retry=table.Retry(codes=(503,))
    )
    assert not filters.RoutePlan(codes).plain
    timed = table.Route(
        name="r", match=route.match, backends=route.backends, timeouts=table.Timeouts(0.5)
    )
    assert not filters.RoutePlan(timed).plain
    per_backend = table.Route(
        name="r",
        match=route.match,
        backends=(
            table.WeightedBackend(
                backend="b",
                filters=table.Filters(
                    request_headers=table.HeaderModifier(remove=("x",)),
                ),
            ),
        ),
    )
    plan = filters.RoutePlan(per_backend)
    assert not plan.plain
    assert plan.backend_stages[id(per_backend.backends[0])].request is not None


def test_origin_headers() -> None:
    got = filters.origin_headers(
        [
            (b"Host", b"h"),
            (b"origin", b"https://a"),
            (b"Access-Control-Request-Method", b"GET"),
            (b"access-control-request-headers", b"x-a"),
            (b"Access-Control-Request-Headers", b"x-b"),
        ]
    )
    assert got == (b"https://a", b"GET", b"x-a, x-b")
    assert filters.origin_headers([(b"Accept", b"*/*")]) == (None, None, None)

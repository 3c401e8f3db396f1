"""Filter semantics the translator resolves for the data plane (no sockets)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from translate_support import load_case

from mcgw.config import gatewayapi
from mcgw.ir import table
from mcgw.translate import filters, translator

TESTDATA = Path(__file__).parent / "testdata"

# The table in the Gateway API's HTTPPathModifier.ReplacePrefixMatch documentation.
PREFIX_TABLE = [
    ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
    ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
    ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
    ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
    ("/foo", "/foo", "/xyz", "/xyz"),
    ("/foo/", "/foo", "/xyz", "/xyz/"),
    ("/foo/bar", "/foo", "", "/bar"),
    ("/foo/", "/foo", "", "/"),
    ("/foo", "/foo", "", "/"),
    ("/foo/", "/foo", "/", "/"),
    ("/foo", "/foo", "/", "/"),
    # Conformance httproute-rewrite-path: a root prefix and a stripped one.
    ("/prefix/one/two", "/prefix/one", "/one", "/one/two"),
    ("/strip-prefix/three", "/strip-prefix", "/", "/three"),
    ("/anything", "/", "/xyz", "/xyz/anything"),
]


@pytest.mark.parametrize(("path", "prefix", "replacement", "expected"), PREFIX_TABLE)
def test_replace_prefix_match_follows_the_spec_table(
    path: str, prefix: str, replacement: str, expected: str
) -> None:
    spec = gatewayapi.HTTPPathModifier(type="ReplacePrefixMatch", replacePrefixMatch=replacement)
    modifier = filters._path(spec, prefix)
    assert modifier is not None
    got = modifier.apply(path)
    assert got == expected
    assert "//" not in got


def test_replace_full_path_ignores_the_request_path() -> None:
    spec = gatewayapi.HTTPPathModifier(type="ReplaceFullPath", replaceFullPath="/one")
    modifier = filters._path(spec, "/full")
    assert modifier is not None and modifier.apply("/full/x/y") == "/one"


# (scheme, port in the filter, listener port) -> (scheme, port written in Location)
REDIRECT_PORTS = [
    (None, None, 80, "http", None),  # listener port 80 with http: no port
    (None, None, 8080, "http", 8080),  # listener port otherwise
    ("https", None, 80, "https", None),  # scheme given: its well-known port, omitted
    ("https", None, 8080, "https", None),
    ("http", None, 8080, "http", None),
    ("https", 8443, 80, "https", 8443),
    (None, 80, 8080, "http", None),  # explicit 80 with http: omitted
    (None, 443, 80, "http", 443),  # 443 is only implicit for https
    ("https", 443, 80, "https", None),
]


@pytest.mark.parametrize(("scheme", "port", "listener", "want_scheme", "want_port"), REDIRECT_PORTS)
def test_redirect_port_follows_the_spec_rules(
    scheme: str | None, port: int | None, listener: int, want_scheme: str, want_port: int | None
) -> None:
    draft = filters.RedirectDraft(scheme, None, port, None, 302)
    redirect = draft.resolve(listener, "http")
    assert (redirect.scheme, redirect.port) == (want_scheme, want_port)


def test_redirect_without_scheme_on_https_listener_keeps_https() -> None:
    redirect = filters.RedirectDraft(None, None, None, None, 301).resolve(443, "https")
    assert (redirect.scheme, redirect.port) == ("https", None)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://www.foo.com", True),
        ("HTTPS://WWW.FOO.COM", True),
        ("https://www.foo.com:443", True),
        ("https://www.foo.com:8443", False),
        ("http://www.foo.com", False),
        ("https://www.bar.com", True),
        ("https://xpto.www.bar.com", True),
        ("https://bar.com", False),
        ("https://evil.com/.bar.com", False),
        ("http://localhost:8080", True),
        ("http://localhost", False),
        ("http://plain.example.com", True),
        ("http://plain.example.com:80", True),
        ("https://foobar.com", False),
    ],
)
def test_origin_regex(origin: str, allowed: bool) -> None:
    regex = filters.origin_regex(
        [
            "https://www.foo.com",
            "https://*.bar.com",
            "http://localhost:8080",
            "http://plain.example.com:80",
        ]
    )
    assert regex is not None
    assert (re.fullmatch(regex, origin) is not None) is allowed


def test_origin_wildcard_alone_means_any() -> None:
    assert filters.origin_regex(["*"]) is None
    with pytest.raises(filters.Invalid):
        filters.origin_regex(["ftp://x.example.com"])


def _rule(**kwargs: object) -> gatewayapi.HTTPRouteRule:
    # model_construct skips the config layer's own CEL checks: the translator must
    # still refuse these rules (objects may come from elsewhere than the loader).
    defaults: dict[str, object] = {
        "matches": [gatewayapi.HTTPRouteMatch()],
        "filters": [],
        "backend_refs": [],
    }
    defaults.update(kwargs)
    return gatewayapi.HTTPRouteRule.model_construct(**defaults)  # type: ignore[arg-type]


def _filter(kind: str, **settings: object) -> gatewayapi.HTTPRouteFilter:
    return gatewayapi.HTTPRouteFilter.model_construct(type=kind, **settings)  # type: ignore[arg-type]


REDIRECT = _filter("RequestRedirect", request_redirect=gatewayapi.HTTPRequestRedirectFilter())
REWRITE = _filter("URLRewrite", url_rewrite=gatewayapi.HTTPURLRewriteFilter())
BACKEND = gatewayapi.HTTPBackendRef(name="app", port=80)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (_rule(filters=[REDIRECT, REWRITE]), "RequestRedirect and URLRewrite"),
        (_rule(filters=[REDIRECT], backend_refs=[BACKEND]), "together with backendRefs"),
        (_rule(filters=[REWRITE, REWRITE]), "URLRewrite is given more than once"),
        (
            _rule(
                matches=[gatewayapi.HTTPRouteMatch(path=gatewayapi.HTTPPathMatch(type="Exact"))],
                filters=[
                    _filter(
                        "URLRewrite",
                        url_rewrite=gatewayapi.HTTPURLRewriteFilter(
                            path=gatewayapi.HTTPPathModifier(
                                type="ReplacePrefixMatch", replacePrefixMatch="/x"
                            )
                        ),
                    )
                ],
            ),
            "exactly one match, of type PathPrefix",
        ),
    ],
)
def test_incompatible_filters_make_the_rule_invalid(
    rule: gatewayapi.HTTPRouteRule, message: str
) -> None:
    with pytest.raises(filters.Invalid, match=message):
        filters.check_rule(rule)


def test_timeouts_zero_means_disabled_and_absent_means_unset() -> None:
    got = filters.timeouts(gatewayapi.HTTPRouteTimeouts(request="0s"))
    assert got == table.Timeouts(request_s=0.0, backend_request_s=None)
    assert filters.timeouts(None) == table.Timeouts()


def test_address_pool_option_and_exhaustion() -> None:
    res = load_case(TESTDATA / "multiple_gateways")
    result = translator.translate(res, translator.Options(address_pool="10.9.0.0/30"))
    by_name = {s.name: s for s in result.statuses if s.kind == "Gateway"}
    # Hosts of 10.9.0.0/30: .1 and .2; gw-static asks for 127.0.0.1 itself.
    assert by_name["gw-old"].addresses == ("10.9.0.1",)
    assert by_name["gw-new"].addresses == ("10.9.0.2",)
    assert by_name["gw-static"].addresses == ("127.0.0.1",)
    empty = by_name["gw-empty"]
    assert empty.addresses == ()
    programmed = next(c for c in empty.conditions if c.type == "Programmed")
    assert (programmed.status, programmed.reason) == ("False", "AddressNotAssigned")
    sockets = sorted((lis.address, lis.port) for lis in result.table.listeners)
    assert sockets == [("10.9.0.1", 80), ("10.9.0.2", 80), ("127.0.0.1", 80)]

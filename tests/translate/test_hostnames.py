"""Hostname intersection, coverage and specificity (no sockets)."""

from __future__ import annotations

import pytest

from mcgw.translate import hostnames


@pytest.mark.parametrize(
    ("listener", "route", "expected"),
    [
        ("*", "store.example.com", "store.example.com"),
        ("*", "*.example.com", "*.example.com"),
        ("store.example.com", "store.example.com", "store.example.com"),
        ("store.example.com", "shop.example.com", None),
        ("*.example.com", "store.example.com", "store.example.com"),
        ("*.example.com", "a.b.example.com", "a.b.example.com"),
        ("*.example.com", "example.com", None),
        ("store.example.com", "*.example.com", "store.example.com"),
        ("*.example.com", "*.foo.example.com", "*.foo.example.com"),
        ("*.foo.example.com", "*.example.com", "*.foo.example.com"),
        ("*.example.com", "*.example.org", None),
        ("*.example.com", "*.example.com", "*.example.com"),
        ("*.example.com", "fooexample.com", None),
    ],
)
def test_intersect(listener: str, route: str, expected: str | None) -> None:
    assert hostnames.intersect(listener, route) == expected


def test_effective_without_route_hostnames_is_the_listener_hostname() -> None:
    assert hostnames.effective("*.example.com", ()) == ("*.example.com",)
    assert hostnames.effective("*", ()) == ("*",)


def test_effective_drops_disjoint_and_sorts_most_specific_first() -> None:
    got = hostnames.effective(
        "*.example.com", ("*.b.example.com", "a.example.com", "x.org", "A.Example.com")
    )
    assert got == ("a.example.com", "*.b.example.com")


def test_normalize() -> None:
    assert hostnames.normalize(None) == "*"
    assert hostnames.normalize("Store.Example.COM") == "store.example.com"


@pytest.mark.parametrize(
    ("pattern", "hostname", "expected"),
    [
        ("*", "*", True),
        ("*.example.com", "*", False),
        ("*.example.com", "*.a.example.com", True),
        ("*.a.example.com", "*.example.com", False),
        ("a.example.com", "*.example.com", False),
        ("a.example.com", "a.example.com", True),
    ],
)
def test_covers(pattern: str, hostname: str, expected: bool) -> None:
    assert hostnames.covers(pattern, hostname) is expected


def test_more_specific_orders_exact_then_longer_wildcards_then_any() -> None:
    assert hostnames.more_specific("a.example.com", "*.example.com")
    assert hostnames.more_specific("*.a.example.com", "*.example.com")
    assert hostnames.more_specific("*.example.com", "*")
    assert not hostnames.more_specific("*", "*")
    assert not hostnames.more_specific("*.example.com", "a.example.com")

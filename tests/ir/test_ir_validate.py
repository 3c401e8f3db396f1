"""Route table invariants: every problem is listed, with its path."""

from __future__ import annotations

import dataclasses

from test_ir_codec import sample

from mcgw.ir import codec, table, validate


def _paths(t: table.RouteTable) -> list[str]:
    return [str(e) for e in validate.validate(t)]


def test_sample_is_valid() -> None:
    assert validate.validate(sample()) == []
    assert validate.validate(codec.stamp(sample())) == []


def test_lists_every_problem() -> None:
    good = sample()
    lis = good.listeners[0]
    vhost = lis.virtual_hosts[0]
    route = vhost.routes[0]
    bad_route = dataclasses.replace(
        route,
        match=dataclasses.replace(
            route.match,
            path=table.PathMatch(table.PathMatchType.REGULAR_EXPRESSION, "/x[("),
            method="get",
        ),
        backends=(table.WeightedBackend("Service/nope/nope:1", -1),),
    )
    bad_listener = dataclasses.replace(
        lis,
        port=70000,
        virtual_hosts=(
            table.VirtualHost("*", ()),
            dataclasses.replace(vhost, routes=(bad_route, bad_route)),
        ),
    )
    bad_backend = dataclasses.replace(good.backends[0], name="wrong", timeout_s=0.0)
    bad = dataclasses.replace(
        good,
        listeners=(bad_listener, bad_listener),
        backends=(bad_backend, bad_backend),
        locality=table.Locality("x", (("b", 2.0), ("a", 1.0), ("a", -1.0))),
        version="xyz",
    )
    text = "\n".join(_paths(bad))
    for expected in [
        "listeners: duplicate listener name 'store/gw/80'",
        "listeners: two listeners bind 0.0.0.0:70000",
        "listeners[0].port: port 70000 is out of range",
        "listeners[0].virtual_hosts: not sorted most specific first",
        "listeners[0].virtual_hosts[1].routes: duplicate route name",
        "routes[0].match.path.value: invalid regular expression",
        "routes[0].match.method: invalid method 'get'",
        "routes[0].backends[0].weight: weight -1 < 0",
        "routes[0].backends[0].backend: unknown backend 'Service/nope/nope:1'",
        "backends: duplicate backend name 'wrong'",
        "backends[0].name: 'wrong' should be 'ServiceImport/store/store:8080'",
        "backends[0].timeout_s: 0.0 must be > 0",
        "locality.region_rtt_ms: duplicate region 'a'",
        "locality.region_rtt_ms[2]: a: rtt -1.0 < 0",
        "locality.region_rtt_ms: not sorted closest first",
        "version: 'xyz' is not 16 hex digits",
    ]:
        assert expected in text, expected


def test_backend_groups_must_be_sorted_and_unique() -> None:
    good = sample()
    backend = good.backends[0]
    swapped = dataclasses.replace(backend, groups=tuple(reversed(backend.groups)))
    twice = dataclasses.replace(backend, groups=(backend.groups[0], backend.groups[0]))
    assert "not sorted by (cluster, zone)" in "\n".join(
        _paths(dataclasses.replace(good, backends=(swapped,)))
    )
    assert "two groups for the same (cluster, zone)" in "\n".join(
        _paths(dataclasses.replace(good, backends=(twice,)))
    )


def test_hostnames_and_addresses() -> None:
    good = sample()
    lis = dataclasses.replace(
        good.listeners[0],
        address="localhost",
        virtual_hosts=(table.VirtualHost("Bad_Host", ()), table.VirtualHost("*", ())),
    )
    text = "\n".join(_paths(dataclasses.replace(good, listeners=(lis,))))
    assert "address: 'localhost' is not an IP address" in text
    assert "hostname: invalid hostname 'Bad_Host'" in text


def test_hostname_order_key() -> None:
    names = ["*", "*.example.com", "a.example.com", "*.a.example.com", "example.com"]
    assert sorted(names, key=validate.hostname_order_key) == [
        "a.example.com",
        "example.com",
        "*.a.example.com",
        "*.example.com",
        "*",
    ]

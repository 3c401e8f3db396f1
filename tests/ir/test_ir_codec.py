"""Canonical encodings of the route table: exact round trips, stable versions."""

from __future__ import annotations

import dataclasses

import pytest

from mcgw.ir import codec, table


def sample() -> table.RouteTable:
    backend = table.Backend(
        name="ServiceImport/store/store:8080",
        kind="ServiceImport",
        namespace="store",
        service="store",
        port=8080,
        groups=(
            table.BackendGroup(
                cluster="gke-east-1",
                region="us-east1",
                zone="us-east1-b",
                endpoints=(table.Endpoint("10.0.0.2", 8080, pod="store-b", ready=False),),
            ),
            table.BackendGroup(
                cluster="gke-west-1",
                region="us-west1",
                zone="us-west1-a",
                endpoints=(table.Endpoint("10.0.0.1", 8080, pod="store-a"),),
            ),
        ),
        health_check=table.HealthCheck(path="/healthz", port=8081, interval_s=10.0),
        timeout_s=12.5,
    )
    route = table.Route(
        name="store/r/rule/0/match/0",
        match=table.Match(
            path=table.PathMatch(table.PathMatchType.REGULAR_EXPRESSION, "/w[a-z]+"),
            headers=(table.HeaderMatch("X-Env", "prod"),),
            query_params=(
                table.QueryParamMatch("v", "^1", table.HeaderMatchType.REGULAR_EXPRESSION),
            ),
            method="GET",
        ),
        backends=(table.WeightedBackend(backend.name, 3), table.WeightedBackend(None, 1)),
        route_namespace="store",
        route_name="r",
    )
    return table.RouteTable(
        listeners=(
            table.Listener(
                name="store/gw/80",
                address="0.0.0.0",
                port=80,
                virtual_hosts=(
                    table.VirtualHost("store.example.com", (route,)),
                    table.VirtualHost("*", ()),
                ),
                gateway="store/gw",
            ),
        ),
        backends=(backend,),
        locality=table.Locality("asia-northeast1", (("us-west1", 111.4), ("us-east1", 159.4))),
    )


def test_yaml_round_trip_is_exact() -> None:
    original = codec.stamp(sample())
    text = codec.dump_yaml(original)
    assert codec.load_yaml(text) == original
    assert codec.dump_yaml(codec.load_yaml(text)) == text


def test_json_round_trip_is_exact() -> None:
    original = codec.stamp(sample())
    assert codec.load_json(codec.dump_json(original)) == original


def test_empty_table_round_trips() -> None:
    empty = codec.stamp(table.RouteTable(listeners=(), backends=()))
    assert codec.load_yaml(codec.dump_yaml(empty)) == empty


def test_stamp_is_a_hash_of_the_content_only() -> None:
    a = codec.stamp(sample())
    assert len(a.version) == 16
    assert codec.stamp(dataclasses.replace(a, version="whatever")).version == a.version
    changed = dataclasses.replace(a, locality=table.Locality("us-east1"))
    assert codec.stamp(changed).version != a.version


def test_json_is_compact_and_in_field_order() -> None:
    raw = codec.dump_json(table.RouteTable(listeners=(), backends=()))
    assert raw.startswith(b'{"listeners":[],"backends":[],"locality":')


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("listeners: []\nbackends: []\nextra: 1\n", "unknown field"),
        ("backends: []\n", "listeners: required field"),
        ("listeners: {}\nbackends: []\n", "listeners: expected a list"),
        ("listeners: []\nbackends: []\nversion: 3\n", "version: expected a string"),
        (
            "listeners: [{name: a, address: 0.0.0.0, port: '80', virtual_hosts: []}]\n"
            "backends: []\n",
            "listeners[0].port: expected an integer",
        ),
        (
            "listeners: []\nbackends: []\nlocality: {region_rtt_ms: [[a, 1, 2]]}\n",
            "locality.region_rtt_ms[0]: expected 2 items",
        ),
        ("listeners: [\n", "not YAML"),
    ],
)
def test_load_is_strict(text: str, where: str) -> None:
    with pytest.raises(codec.DecodeError) as info:
        codec.load_yaml(text)
    assert where in str(info.value)


def test_enum_values_are_checked() -> None:
    text = codec.dump_yaml(sample()).replace("RegularExpression", "Glob", 1)
    with pytest.raises(codec.DecodeError, match="'Glob' is not one of"):
        codec.load_yaml(text)

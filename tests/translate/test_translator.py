"""Properties of translate() beyond single goldens: purity, order independence, no raising."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from translate_support import load_case

from mcgw.config import resources
from mcgw.ir import validate
from mcgw.translate import status, translator

TESTDATA = Path(__file__).parent / "testdata"


def _reversed(res: resources.Resources) -> resources.Resources:
    clusters = []
    for cluster in res.clusters:
        changes: dict[str, Any] = {
            f.name: tuple(reversed(getattr(cluster, f.name)))
            for f in dataclasses.fields(cluster)
            if isinstance(getattr(cluster, f.name), tuple)
        }
        clusters.append(dataclasses.replace(cluster, **changes))
    return dataclasses.replace(res, clusters=tuple(clusters))


@pytest.mark.parametrize("case", ["hostnames", "precedence", "multicluster_endpoints"])
def test_input_order_does_not_matter(case: str) -> None:
    res = load_case(TESTDATA / case)
    assert translator.translate(_reversed(res)) == translator.translate(res)


def test_config_cluster_without_manifests_translates_to_an_empty_table() -> None:
    res = load_case(TESTDATA / "seed_store")
    empty = dataclasses.replace(res, clusters=())
    result = translator.translate(empty)
    assert result.table.listeners == ()
    assert result.table.backends == ()
    assert result.statuses == ()
    assert validate.validate(result.table) == []


def test_seed_scenario_routes_and_ranks_regions() -> None:
    result = translator.translate(load_case(TESTDATA / "seed_store"))
    (listener,) = result.table.listeners
    assert (listener.address, listener.port) == ("127.0.0.1", 80)  # first of the pool
    (vhost,) = listener.virtual_hosts
    assert vhost.hostname == "store.example.com"
    assert [(r.match.path.value, r.backends[0].backend) for r in vhost.routes] == [
        ("/west", "ServiceImport/store/store-west-1:8080"),
        ("/east", "ServiceImport/store/store-east-1:8080"),
        ("/", "ServiceImport/store/store:8080"),
    ]
    assert [r for r, _ in result.table.locality.region_rtt_ms] == ["us-west1", "us-east1"]
    route = next(s for s in result.statuses if s.kind == "HTTPRoute")
    (parent,) = route.parents
    assert parent.controller_name == status.CONTROLLER_NAME
    assert all(c.status is status.ConditionStatus.TRUE for c in parent.conditions)


def test_every_gateway_listener_reports_attached_routes() -> None:
    result = translator.translate(load_case(TESTDATA / "hostnames"))
    gw = next(s for s in result.statuses if s.kind == "Gateway")
    assert {lis.name: lis.attached_routes for lis in gw.listeners} == {
        "any": 1,
        "wild": 1,
        "foo": 2,
        "other": 1,
    }

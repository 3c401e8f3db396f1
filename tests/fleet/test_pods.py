"""Pure parts of the fleet: pod plans and EndpointSlices, without starting anything."""

from __future__ import annotations

import dataclasses
import random
import re
import sys

import pytest
from fleetkit import deployment, example, fleet, service

from mcgw.config import base, core
from mcgw.fleet import endpoints, errors, pods

NAME = re.compile(r"^store-[0-9a-f]{10}-[bcdfghjklmnpqrstvwxz2456789]{5}$")


def test_plan_of_the_seed_fleet() -> None:
    plans = pods.plan(example(), python="/py", rng=random.Random(1))
    assert [(p.cluster, p.address) for p in plans] == [
        ("gke-west-1", "127.1.0.2"),
        ("gke-west-1", "127.1.0.3"),
        ("gke-east-1", "127.2.0.2"),
        ("gke-east-1", "127.2.0.3"),
    ]
    assert all(NAME.match(p.name) for p in plans)
    assert len({p.name for p in plans}) == 4
    # Same template, same pod-template-hash, in every cluster (as Kubernetes computes it).
    assert len({p.name.split("-")[1] for p in plans}) == 1
    west = plans[0]
    assert (west.namespace, west.deployment, west.zone, west.project, west.port) == (
        "store",
        "store",
        "us-west1-a",
        "sandbox-mc-gateway",
        8080,
    )
    assert dict(west.labels) == {
        "app": "store",
        "version": "v1",
        "pod-template-hash": west.name.split("-")[1],
    }
    (container,) = west.containers
    assert container.argv == ("/py", "-m", "mcgw.store")
    env = dict(container.env)
    assert {k: env[k] for k in ("POD_NAME", "POD_NAMESPACE", "POD_IP", "HOST", "PORT")} == {
        "POD_NAME": west.name,
        "POD_NAMESPACE": "store",
        "POD_IP": "127.1.0.2",
        "HOST": "127.1.0.2",
        "PORT": "8080",
    }
    assert (env["CLUSTER_NAME"], env["ZONE"], env["PROJECT_ID"]) == (
        "gke-west-1",
        "us-west1-a",
        "sandbox-mc-gateway",
    )
    assert env["NODE_NAME"] == west.node_name
    assert west.node_name.startswith("gke-gke-west-1-default-pool-")
    assert re.fullmatch(r"[1-9]\d{18}", env["GCE_INSTANCE_ID"])
    assert env["GCE_INSTANCE_ID"] == pods.instance_id(west.node_name)


def test_names_are_reproducible_with_a_seed_and_hash_follows_the_template() -> None:
    first = pods.plan(example(), python="py", rng=random.Random(7))
    again = pods.plan(example(), python="py", rng=random.Random(7))
    assert [p.name for p in first] == [p.name for p in again]
    d = deployment("web", image="whereami")
    changed = deployment("web", image="whereami", env=[{"name": "X", "value": "1"}])
    assert pods.template_hash(d) == pods.template_hash(deployment("web", image="whereami"))
    assert pods.template_hash(d) != pods.template_hash(changed)


def test_container_env_values_field_refs_and_port() -> None:
    d = deployment(
        "web",
        image="gcr.io/whereami:1",
        ports=[{"containerPort": 9000, "name": "http"}],
        env=[
            {"name": "METADATA", "value": "frontend"},
            {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
            {"name": "PORT", "value": "1234"},
        ],
    )
    (plan,) = pods.plan(fleet(("c1", (d,), ())), python="py")
    env = dict(plan.containers[0].env)
    assert env["METADATA"] == "frontend"
    assert env["MY_IP"] == plan.address
    assert "FROM_CM" not in env
    assert env["PORT"] == "9000", "the declared containerPort is what Services reach"
    assert plan.container_port("http") == 9000


def test_other_images_need_the_command_annotation() -> None:
    res = fleet(
        ("c1", (deployment("nginx", image="nginx:1.25"), deployment("ok", image="whereami")), ()),
        ("c2", (deployment("redis", image="redis:7"),), ()),
    )
    with pytest.raises(errors.NotRunnableError) as caught:
        pods.plan(res, python="py")
    assert len(caught.value.problems) == 2
    message = str(caught.value)
    assert "cluster c1: Deployment default/nginx" in message
    assert "cluster c2: Deployment default/redis" in message
    assert "'mcgw.dev/command'" in message and "nginx:1.25" in message


def test_command_annotation_is_split_without_a_shell() -> None:
    d = deployment(
        "app",
        image="nginx",
        annotations={"mcgw.dev/command": f"{sys.executable} -c 'print(\"a b\")'"},
    )
    (plan,) = pods.plan(fleet(("c1", (d,), ())), python="py")
    assert plan.containers[0].argv == (sys.executable, "-c", 'print("a b")')
    bad = deployment("app", image="nginx", annotations={"mcgw.dev/command": "run 'unclosed"})
    with pytest.raises(errors.NotRunnableError, match=r"annotation mcgw\.dev/command"):
        pods.plan(fleet(("c1", (bad,), ())), python="py")


def test_several_custom_containers_need_one_annotation_each() -> None:
    d = deployment(
        "app",
        containers=[
            {"name": "api", "image": "api:1", "ports": [{"containerPort": 8080}]},
            {"name": "sidecar", "image": "envoy:1"},
        ],
        annotations={"mcgw.dev/command.api": "api-server", "mcgw.dev/command": "ambiguous"},
    )
    with pytest.raises(errors.NotRunnableError, match=r"'mcgw\.dev/command\.sidecar'"):
        pods.plan(fleet(("c1", (d,), ())), python="py")


def _slices(
    res_services: tuple[core.Service, ...], *deps: core.Deployment
) -> list[core.EndpointSlice]:
    res = fleet(("c1", deps, res_services))
    plans = pods.plan(res, python="py")
    return list(endpoints.slices(res.clusters[0], plans))


def test_endpoint_slice_for_a_service() -> None:
    d = deployment("web", image="whereami", replicas=2)
    svc = service("web", {"app": "web"}, [{"port": 80, "targetPort": 8080, "name": "http"}])
    (s,) = _slices((svc,), d)
    assert s.metadata.name == "web-fleet"
    assert s.metadata.labels == {
        core.SERVICE_NAME_LABEL: "web",
        endpoints.MANAGED_BY_LABEL: endpoints.MANAGED_BY,
    }
    assert s.service_name == "web" and s.address_type == "IPv4"
    assert [(p.name, p.port, p.protocol) for p in s.ports] == [("http", 8080, "TCP")]
    assert sorted(e.addresses[0] for e in s.endpoints) == ["127.1.0.2", "127.1.0.3"]
    for e in s.endpoints:
        assert e.conditions.ready is True and e.conditions.terminating is False
        assert e.zone == "us-west1-a"
        assert e.target_ref is not None and e.target_ref["kind"] == "Pod"
        assert e.target_ref["namespace"] == "default"


def test_named_target_ports_and_selectors() -> None:
    named = deployment("a", image="whereami", ports=[{"containerPort": 9000, "name": "web"}])
    unnamed = deployment("b", image="whereami", ports=[{"containerPort": 8080}])
    both = service("both", {}, [{"port": 80}])  # no selector: not managed
    by_name = service("x", {"app": "a"}, [{"port": 80, "targetPort": "web"}])
    default_target = service("y", {"app": "b"}, [{"port": 8080}])
    missing = service("z", {"app": "b"}, [{"port": 80, "targetPort": "web"}])
    other_ns = service("w", {"app": "a"}, [{"port": 80}], namespace="elsewhere")
    result = {
        s.metadata.name: s
        for s in _slices((both, by_name, default_target, missing, other_ns), named, unnamed)
    }
    assert sorted(result) == ["x-fleet", "y-fleet", "z-fleet"]
    assert [p.port for p in result["x-fleet"].ports] == [9000]
    assert [p.port for p in result["y-fleet"].ports] == [8080]
    # A name no container declares leaves the port out, but the pod is still an endpoint.
    assert result["z-fleet"].ports == []


def test_replace_keeps_hand_written_slices() -> None:
    d = deployment("web", image="whereami")
    svc = service("web", {"app": "web"}, [{"port": 80}])
    res = fleet(("c1", (d,), (svc,)))
    manual = core.EndpointSlice(
        api_version="discovery.k8s.io/v1",
        kind="EndpointSlice",
        metadata=base.ObjectMeta(name="ext", labels={core.SERVICE_NAME_LABEL: "ext"}),
        address_type="IPv4",
        endpoints=[core.Endpoint(addresses=["10.0.0.1"])],
    )
    cluster = dataclasses.replace(res.clusters[0], endpoint_slices=(manual,))
    published = endpoints.slices(cluster, pods.plan(res, python="py"))
    once = endpoints.replace(cluster, published)
    twice = endpoints.replace(once, published)
    assert [s.metadata.name for s in twice.endpoint_slices] == ["ext", "web-fleet"]
    assert endpoints.replace(twice, ()).endpoint_slices == (manual,)

"""Loading manifests into Resources: fleets, clusters, versions, Lists, warnings."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from mcgw import errors
from mcgw.config import core, gatewayapi, load, mcs, resources

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "examples" / "store"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def names(objs: tuple[core.Resource, ...]) -> list[str]:
    return [o.ref for o in objs]


SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: %s, namespace: %s}
spec:
  ports: [{port: 8080}]
"""

ROUTE = """
apiVersion: gateway.networking.k8s.io/%s
kind: HTTPRoute
metadata:
  name: store
  namespace: store
spec:
  parentRefs:
  - name: external-http
  hostnames: [store.example.com]
  rules:
  - matches:
    - path: {value: /west}
    backendRefs:
    - {group: net.gke.io, kind: ServiceImport, name: store-west-1, port: 8080}
  - backendRefs:
    - {name: store, port: 8080}
"""


# --- the SEED scenario ----------------------------------------------------------------


def test_store_example_has_two_clusters_with_their_own_objects() -> None:
    loaded = load.load([STORE])
    res = loaded.resources
    assert loaded.warnings == ()
    assert res.fleet.metadata.name == "store-demo"
    assert [(c.name, c.region, c.zone) for c in res.clusters] == [
        ("gke-west-1", "us-west1", "us-west1-a"),
        ("gke-east-1", "us-east1", "us-east1-b"),
    ]
    west, east = res.cluster("gke-west-1"), res.cluster("gke-east-1")
    assert names(west.services) == ["store/store", "store/store-west-1"]
    assert names(east.services) == ["store/store", "store/store-east-1"]
    assert names(west.namespaces) == names(east.namespaces) == ["default/store"]
    assert [d.spec.replicas for d in (*west.deployments, *east.deployments)] == [2, 2]
    assert names(east.service_exports) == ["store/store", "store/store-east-1"]
    exports = (*west.service_exports, *east.service_exports)
    assert {e.api_version for e in exports} == {"net.gke.io/v1"}
    assert all(isinstance(e, mcs.ServiceExport) for e in exports)


def test_store_example_gateway_api_objects_are_in_the_config_cluster() -> None:
    res = load.load([STORE]).resources
    config = res.config_cluster
    assert config.name == "gke-west-1"
    assert names(config.gateways) == ["store/external-http"]
    assert names(config.http_routes) == ["store/public-store-route"]
    assert res.cluster("gke-east-1").gateways == ()
    assert res.cluster("gke-east-1").http_routes == ()
    gateway = config.gateways[0]
    assert gateway.spec.gateway_class_name == "gke-l7-global-external-managed-mc"
    assert gateway.spec.listeners[0].allowed_routes.kinds[0].group == gatewayapi.GROUP
    route = config.http_routes[0]
    assert route.api_version == gatewayapi.V1BETA1
    assert [r.backend_refs[0].name for r in route.spec.rules] == [
        "store-west-1",
        "store-east-1",
        "store",
    ]
    # The last rule has no matches: the spec's default, PathPrefix /.
    last = route.spec.rules[2].matches
    assert [(m.path.type, m.path.value) for m in last] == [("PathPrefix", "/")]


def test_fleet_file_alone_loads_the_cluster_folders() -> None:
    assert load.load([STORE / "fleet.yaml"]) == load.load([STORE])


def test_documents_outside_cluster_folders_belong_to_the_config_cluster(tmp_path: Path) -> None:
    write(
        tmp_path,
        "fleet.yaml",
        """
        apiVersion: mcgw.dev/v1alpha1
        kind: Fleet
        metadata: {name: f}
        spec:
          configCluster: b
          clusters:
          - {name: a, region: us-west1, zone: us-west1-a, manifests: a}
          - {name: b, region: us-east1, zone: us-east1-b, manifests: b/}
          - {name: c, region: europe-west1, zone: europe-west1-b}
        """,
    )
    write(tmp_path, "a/svc.yaml", SERVICE % ("only-a", "app"))
    write(tmp_path, "b/deeper/svc.yml", SERVICE % ("only-b", "app"))
    write(tmp_path, "gateway/route.yaml", ROUTE % "v1")
    write(tmp_path, ".hidden/svc.yaml", SERVICE % ("hidden", "app"))
    res = load.load([tmp_path]).resources
    assert [c.name for c in res.clusters] == ["a", "b", "c"]
    assert names(res.cluster("a").services) == ["app/only-a"]
    assert names(res.cluster("b").services) == ["app/only-b"]
    assert res.cluster("c").services == ()
    assert names(res.config_cluster.http_routes) == ["store/store"]
    assert res.cluster("a").http_routes == ()


def test_two_clusters_may_share_a_manifests_folder(tmp_path: Path) -> None:
    write(
        tmp_path,
        "fleet.yaml",
        """
        apiVersion: mcgw.dev/v1alpha1
        kind: Fleet
        metadata: {name: f}
        spec:
          clusters:
          - {name: a, region: us-west1, zone: us-west1-a, manifests: same}
          - {name: b, region: us-east1, zone: us-east1-b, manifests: same}
        """,
    )
    write(tmp_path, "same/svc.yaml", SERVICE % ("store", "store"))
    res = load.load([tmp_path / "fleet.yaml"]).resources
    assert names(res.cluster("a").services) == names(res.cluster("b").services) == ["store/store"]


# --- without a Fleet ------------------------------------------------------------------


def test_without_a_fleet_one_implicit_cluster_holds_everything(tmp_path: Path) -> None:
    write(tmp_path, "svc.yaml", SERVICE % ("store", "store"))
    write(tmp_path, "sub/route.yaml", ROUTE % "v1")
    res = load.load([tmp_path]).resources
    assert res.fleet.metadata.name == "default"
    assert [(c.name, c.region, c.zone) for c in res.clusters] == [("default", "local", "local-a")]
    assert res.config_cluster is res.clusters[0]
    assert names(res.config_cluster.services) == ["store/store"]
    assert names(res.config_cluster.http_routes) == ["store/store"]


def test_empty_folder_loads_nothing(tmp_path: Path) -> None:
    loaded = load.load([tmp_path])
    assert loaded.resources.clusters == (resources.ClusterResources("default", "local", "local-a"),)


def test_objects_are_sorted_by_namespace_then_name(tmp_path: Path) -> None:
    for i, (name, ns) in enumerate([("b", "y"), ("a", "z"), ("c", "x"), ("a", "y")]):
        write(tmp_path, f"{9 - i}.yaml", SERVICE % (name, ns))
    res = load.load([tmp_path]).resources
    assert names(res.config_cluster.services) == ["x/c", "y/a", "y/b", "z/a"]


def test_namespace_defaults_to_default(tmp_path: Path) -> None:
    write(tmp_path, "svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    svc = load.load([tmp_path]).resources.config_cluster.services[0]
    assert svc.metadata.namespace == "default"


# --- versions, Lists, YAML features ------------------------------------------------------


def test_v1_and_v1beta1_load_to_the_same_objects(tmp_path: Path) -> None:
    write(tmp_path, "v1/route.yaml", ROUTE % "v1")
    write(tmp_path, "v1beta1/route.yaml", ROUTE % "v1beta1")
    v1 = load.load([tmp_path / "v1"]).resources.config_cluster.http_routes[0]
    beta = load.load([tmp_path / "v1beta1"]).resources.config_cluster.http_routes[0]
    assert (v1.api_version, beta.api_version) == (gatewayapi.V1, gatewayapi.V1BETA1)
    assert v1.model_dump(exclude={"api_version"}) == beta.model_dump(exclude={"api_version"})


@pytest.mark.parametrize("version", ["v1", "v1beta1", "v1alpha2"])
def test_reference_grant_versions(tmp_path: Path, version: str) -> None:
    write(
        tmp_path,
        "grant.yaml",
        f"""
        apiVersion: gateway.networking.k8s.io/{version}
        kind: ReferenceGrant
        metadata: {{name: allow, namespace: backends}}
        spec:
          from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: store}}]
          to: [{{group: "", kind: Service}}]
        """,
    )
    grant = load.load([tmp_path]).resources.config_cluster.reference_grants[0]
    assert grant.spec.from_[0].namespace == "store"
    assert grant.spec.to[0].name is None


def test_list_kind_items_are_loaded(tmp_path: Path) -> None:
    write(
        tmp_path,
        "list.yaml",
        """
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: Service
          metadata: {name: store, namespace: store}
        - apiVersion: net.gke.io/v1
          kind: ServiceExport
          metadata: {name: store, namespace: store}
        - apiVersion: v1
          kind: ConfigMap
          metadata: {name: cfg, namespace: store}
        """,
    )
    loaded = load.load([tmp_path])
    cluster = loaded.resources.config_cluster
    assert names(cluster.services) == names(cluster.service_exports) == ["store/store"]
    assert loaded.warnings == (
        f"{(tmp_path / 'list.yaml').as_posix()}: document 1, items[2] (ConfigMap store/cfg): "
        "skipped: mcgw does not read ConfigMap (v1)",
    )


def test_unknown_kinds_are_skipped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        "misc.yaml",
        """
        apiVersion: v1
        kind: ServiceAccount
        metadata: {name: robot, namespace: store}
        ---
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: httproutes.gateway.networking.k8s.io}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoutes
        metadata: {name: typo}
        ---
        apiVersion: networking.istio.io/v1beta1
        kind: Gateway
        metadata: {name: istio-gw, namespace: istio-system}
        """,
    )
    loaded = load.load([Path("misc.yaml")])
    assert loaded.warnings == (
        "misc.yaml: document 1 (ServiceAccount store/robot): skipped: mcgw does not read "
        "ServiceAccount (v1)",
        "misc.yaml: document 2 (CustomResourceDefinition httproutes.gateway.networking.k8s.io):"
        " skipped: mcgw does not read CustomResourceDefinition (apiextensions.k8s.io/v1)",
        "misc.yaml: document 3 (HTTPRoutes typo): skipped: mcgw does not read HTTPRoutes "
        "(gateway.networking.k8s.io/v1); did you mean HTTPRoute?",
        "misc.yaml: document 4 (Gateway istio-system/istio-gw): skipped: mcgw does not read "
        "Gateway (networking.istio.io/v1beta1); mcgw reads Gateway of API group "
        "gateway.networking.k8s.io",
    )
    assert loaded.resources.config_cluster.gateways == ()


def test_empty_documents_anchors_and_merge_keys(tmp_path: Path) -> None:
    write(
        tmp_path,
        "svc.yaml",
        """
        ---
        ---
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: Service
          metadata: &meta
            name: store
            namespace: store
            labels: {app: store}
          spec: &spec
            ports: [{port: 8080}]
        - apiVersion: v1
          kind: Service
          metadata:
            <<: *meta
            name: store-2
          spec: *spec
        ---
        """,
    )
    services = load.load([tmp_path]).resources.config_cluster.services
    assert names(services) == ["store/store", "store/store-2"]
    assert services[1].metadata.labels == {"app": "store"}


def test_json_files_load(tmp_path: Path) -> None:
    doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "n"}}
    (tmp_path / "svc.json").write_text(json.dumps(doc), encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a manifest", encoding="utf-8")
    assert names(load.load([tmp_path]).resources.config_cluster.services) == ["n/s"]


def test_kubectl_get_output_loads(tmp_path: Path) -> None:
    """Server-written fields (status, managedFields, unquoted timestamps) are accepted."""
    write(
        tmp_path,
        "route.yaml",
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata:
          name: store
          namespace: store
          creationTimestamp: 2024-05-01T10:00:00Z
          generation: 3
          resourceVersion: "12345"
          uid: 0b6e8f1c-0000-4000-8000-000000000000
          annotations:
            kubectl.kubernetes.io/last-applied-configuration: '{"apiVersion":"..."}'
          managedFields:
          - manager: kubectl
            operation: Apply
            time: 2024-05-01T10:00:00Z
        spec:
          parentRefs: [{name: external-http}]
        status:
          parents:
          - parentRef: {name: external-http}
            controllerName: networking.gke.io/gateway
            conditions:
            - type: Accepted
              status: "True"
              reason: Accepted
              lastTransitionTime: 2024-05-01T10:00:01Z
        """,
    )
    route = load.load([tmp_path]).resources.config_cluster.http_routes[0]
    assert route.metadata.creation_timestamp == "2024-05-01T10:00:00Z"
    assert route.metadata.generation == 3
    assert isinstance(route.status, dict)


# --- all problems at once ---------------------------------------------------------------


def test_every_problem_in_every_file_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a, nmespace: x}\n")
    write(tmp_path, "b.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: [1]\n")
    write(tmp_path, "c.yaml", "key: [unclosed\n")
    write(tmp_path, "ok.yaml", SERVICE % ("fine", "x"))
    with pytest.raises(load.ConfigError) as caught:
        load.load([Path("."), Path("missing.yaml")])
    assert [str(i) for i in caught.value.issues] == [
        "a.yaml: document 1 (Service default/a): metadata.nmespace: unknown field. "
        "Fix: remove it, or did you mean 'namespace'?",
        "b.yaml: document 1 (Service default/b): spec: should be a mapping, got a list. "
        "Fix: write a mapping of key: value lines",
        "c.yaml: YAML syntax error at line 2, column 1: did not find expected ',' or ']'. "
        "Fix: check the indentation, colons and quotes on that line and the one before",
        "missing.yaml: no such file or folder. Fix: check the path given with -f",
    ]
    issue = caught.value.issues[0]
    assert (issue.file, issue.document, issue.path) == ("a.yaml", 1, "metadata.nmespace")
    assert isinstance(caught.value, errors.McgwError)


def test_unknown_field_without_a_close_match_lists_the_allowed_fields(tmp_path: Path) -> None:
    write(
        tmp_path,
        "e.yaml",
        "apiVersion: net.gke.io/v1\nkind: ServiceImport\nmetadata: {name: x}\nspec: {zzz: 1}\n",
    )
    with pytest.raises(load.ConfigError) as caught:
        load.load([tmp_path])
    assert caught.value.issues[0].fix == (
        "remove it (fields allowed here: ips, ports, sessionAffinity, sessionAffinityConfig, type)"
    )


def test_label_keys_with_dots_are_quoted_in_paths(tmp_path: Path) -> None:
    write(
        tmp_path,
        "svc.yaml",
        """
        apiVersion: v1
        kind: Service
        metadata:
          name: s
          labels: {app.kubernetes.io/name: 3}
        """,
    )
    with pytest.raises(load.ConfigError) as caught:
        load.load([tmp_path])
    assert caught.value.issues[0].path == 'metadata.labels["app.kubernetes.io/name"]'

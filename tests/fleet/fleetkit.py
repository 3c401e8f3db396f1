"""Building fleets for the fleet tests: the SEED example, and small custom ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcgw.config import core, load, resources
from mcgw.config import fleet as fleet_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "store"


def example() -> resources.Resources:
    """The SEED scenario: 2 clusters, Deployment ``store`` with 2 replicas in each."""
    loaded = load.load([EXAMPLE])
    return loaded.resources


def deployment(
    name: str = "app",
    *,
    image: str = "example.com/app:1",
    replicas: int = 1,
    namespace: str = "default",
    annotations: dict[str, str] | None = None,
    ports: list[dict[str, Any]] | None = None,
    env: list[dict[str, Any]] | None = None,
    containers: list[dict[str, Any]] | None = None,
) -> core.Deployment:
    labels = {"app": name}
    return core.Deployment.model_validate(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels, "annotations": annotations or {}},
                    "spec": {
                        "containers": containers
                        or [
                            {
                                "name": "main",
                                "image": image,
                                "ports": ports if ports is not None else [{"containerPort": 8080}],
                                "env": env or [],
                            }
                        ]
                    },
                },
            },
        }
    )


def service(
    name: str,
    selector: dict[str, str],
    ports: list[dict[str, Any]],
    namespace: str = "default",
) -> core.Service:
    return core.Service.model_validate(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": selector, "ports": ports},
        }
    )


def fleet(
    *clusters: tuple[str, tuple[core.Deployment, ...], tuple[core.Service, ...]],
) -> resources.Resources:
    """A fleet of clusters in us-west1, us-east1, europe-west1… in the order given."""
    regions = ["us-west1", "us-east1", "europe-west1", "asia-east1"]
    spec = fleet_config.Fleet.model_validate(
        {
            "apiVersion": "mcgw.dev/v1alpha1",
            "kind": "Fleet",
            "metadata": {"name": "test"},
            "spec": {
                "project": "test-project",
                "clusters": [
                    {"name": name, "region": regions[i], "zone": f"{regions[i]}-a"}
                    for i, (name, _, _) in enumerate(clusters)
                ],
            },
        }
    )
    return resources.Resources(
        fleet=spec,
        clusters=tuple(
            resources.ClusterResources(
                name=name,
                region=regions[i],
                zone=f"{regions[i]}-a",
                deployments=deployments,
                services=services,
            )
            for i, (name, deployments, services) in enumerate(clusters)
        ),
    )

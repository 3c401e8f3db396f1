"""Priority tiers from ServiceExport annotations (``mcgw.dev/tier``, ``mcgw.dev/weight``)
into the IR, through the real loader and translator."""

from __future__ import annotations

from pathlib import Path

from mcgw.config import load
from mcgw.ir import table
from mcgw.translate import translator


def test_annotations_on_service_exports_become_tiers(tmp_path: Path) -> None:
    text = ""
    for name, tier, weight in (("c1", "0", "3"), ("c2", "0", None), ("c3", "1", None)):
        folder = tmp_path / name
        folder.mkdir()
        notes = f"mcgw.dev/tier: '{tier}'" + (f", mcgw.dev/weight: '{weight}'" if weight else "")
        (folder / "all.yaml").write_text(f"""apiVersion: v1
kind: Service
metadata: {{name: svc, namespace: ns}}
spec:
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: net.gke.io/v1
kind: ServiceExport
metadata: {{name: svc, namespace: ns, annotations: {{{notes}}}}}
""")
        text += f"  - {{name: {name}, region: us-west1, zone: us-west1-a, manifests: {name}/}}\n"
    (tmp_path / "c1" / "all.yaml").write_text(
        (tmp_path / "c1" / "all.yaml").read_text()
        + """---
apiVersion: net.gke.io/v1
kind: ServiceExport
metadata: {name: other, namespace: ns, annotations: {mcgw.dev/weight: 'lots'}}
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: ns}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
kind: Gateway
apiVersion: gateway.networking.k8s.io/v1
metadata: {name: gw, namespace: ns}
spec:
  gatewayClassName: gke-l7-global-external-managed-mc
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
kind: HTTPRoute
apiVersion: gateway.networking.k8s.io/v1
metadata: {name: r, namespace: ns}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{group: net.gke.io, kind: ServiceImport, name: svc, port: 80}]
  - matches: [{path: {value: /other}}]
    backendRefs: [{group: net.gke.io, kind: ServiceImport, name: other, port: 80}]
"""
    )
    (tmp_path / "fleet.yaml").write_text(f"""apiVersion: mcgw.dev/v1alpha1
kind: Fleet
metadata: {{name: tiers}}
spec:
  configCluster: c1
  clusters:
{text}""")
    result = translator.translate(load.load([tmp_path]).resources)
    svc = result.table.backend("ServiceImport/ns/svc:80")
    assert svc.tiers == (
        table.ClusterTier("c1", tier=0, weight=3),
        table.ClusterTier("c2", tier=0, weight=0),
        table.ClusterTier("c3", tier=1, weight=0),
    )
    other = result.table.backend("ServiceImport/ns/other:80")
    assert other.tiers == (table.ClusterTier("c1"),)
    assert any("mcgw.dev/weight: 'lots'" in w for w in result.warnings), result.warnings

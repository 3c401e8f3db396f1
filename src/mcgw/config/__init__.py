"""Input models: the YAML a platform team writes, parsed strictly, and nothing more.

This layer turns manifests into typed, immutable objects and refuses anything an API
server would refuse. It does no I/O beyond reading the files it is given, never touches
the network and knows nothing of routing: meaning is the translator's business.

Modules:

``base``
    ``Model`` (frozen, unknown fields are errors, snake_case in Python and camelCase in
    YAML) and ``Resource`` (apiVersion, kind, metadata, and an ignored ``status`` so that
    ``kubectl get -o yaml`` output loads).
``gatewayapi``
    GatewayClass, Gateway, HTTPRoute, ReferenceGrant: the whole v1 surface, in ``v1`` and
    ``v1beta1`` spelling, with the CRD defaults applied and the cheap CRD validation done.
``mcs``
    ServiceExport / ServiceImport, GKE's ``net.gke.io/v1`` and upstream
    ``multicluster.x-k8s.io/v1alpha1`` alike.
``policy``
    GKE's HealthCheckPolicy, GCPBackendPolicy and GCPTrafficDistributionPolicy, with
    GKE's documented defaults.
``core``
    Namespace, Service, Deployment, EndpointSlice: the fields mcgw reads.
``fleet``
    mcgw's own ``Fleet``: clusters, their regions and zones, the config cluster.
``resources``
    ``Resources`` / ``ClusterResources``: what was loaded, per cluster, each kind in a
    tuple sorted by (namespace, name) so that translation is deterministic.
``load``
    Files and folders → ``Loaded(resources, warnings)``, or one ``ConfigError`` listing
    every problem as ``file: document N (Kind ns/name): field.path: message. Fix: hint``.
``problem``
    How validators report a rule that spans fields, with its fix.

Glossary:

config cluster
    The fleet member whose Gateway API objects and policies count (as in GKE's
    multi-cluster Gateway); documents outside any cluster's manifests folder land there.
implicit fleet
    Without a ``Fleet`` document, one cluster ``default`` (region ``local``, zone
    ``local-a``) holds everything.
"""

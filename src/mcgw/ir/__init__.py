"""The intermediate representation: the route table the data plane runs.

The translator is its only producer; the data plane (and ``mcgw translate``) its readers.
It is plain immutable data (frozen, slotted dataclasses holding tuples), so one table is
shared by every task without locks and identified by a hash of its canonical bytes.

Modules:
    table      the types: RouteTable ⊃ Listener ⊃ VirtualHost ⊃ Route(Match, backends);
               Backend ⊃ BackendGroup ⊃ Endpoint; Locality.
    codec      canonical YAML (goldens, ``mcgw translate``) and JSON (wire, hashing);
               ``stamp`` sets ``version`` to the hash; ``load_yaml`` is strict.
    validate   ``validate(table) -> list[IRError]``: every broken invariant at once.

Glossary:
    socket         (address, port): one IR Listener; several Gateway listeners that share
                   a port share it.
    virtual host   the routes for one hostname pattern; a request uses the most specific
                   one matching its Host (exact, then longer wildcards, then ``*``).
    precedence     the Gateway API's order of routes within a virtual host; the data
                   plane takes the first route whose match holds.
    backend        a resolved backendRef target: ``<kind>/<namespace>/<name>:<port>``.
    backend group  a backend's endpoints in one (cluster, zone); what the multi-cluster
                   balancer fills, closest region first.
    locality       where requests enter and the round trip to each cluster region.
    filters        per route and per weighted backend: header edits, redirect, URL
                   rewrite, mirrors, CORS; resolved so the data plane only applies them
                   (``table`` documents the processing order).
    version        first 16 hex digits of the SHA-256 of the canonical JSON.

Only ``mcgw.errors`` is imported from mcgw: every layer may depend on the IR.
"""

"""The translator: Resources in, a validated route table and object statuses out.

``translator.translate(resources) -> Result(table, statuses, warnings)`` is a pure,
deterministic function: the same resources give the same bytes and the same version,
whatever order files were read in. It never raises on bad input: what is wrong becomes
a status condition with the Gateway API's reason, the offending piece (a listener, a
rule, a backendRef) is left out, and the rest keeps serving. Only a translator bug
raises (the table must validate).

Passes, one module each, run in order over a pre-indexed :mod:`context`:

    gatewayclasses  which classes are mcgw's (its own controllerName, GKE's built in)
    listeners       Gateways → listeners → sockets; protocol/port/hostname conflicts
    backends        policies by target; backendRefs → IR backends, endpoints grouped
                    by (cluster, zone), ServiceImports derived from ServiceExports
    routes          HTTPRoutes attached to listeners; rules → IR routes in precedence
                    order; listener isolation; uses :mod:`filters` for each rule's
                    filters, per-backendRef filters, timeouts and retry
    regions         the gateway's location → round trip to every cluster region

Helpers: :mod:`hostnames` (intersection, coverage, specificity), :mod:`status`
(conditions, reasons, per-object status, the Kubernetes rendering of it),
:mod:`features` (the conformance feature names mcgw claims).

Options (:class:`translator.Options`): the address pool Gateways without
``spec.addresses`` get their address from (``127.0.0.0/8``: the oldest gets 127.0.0.1).

Glossary:
    attach          a route is attached to a listener when a parentRef selects it, the
                    listener admits the route's namespace and kind, and they share a
                    hostname; ``attachedRoutes`` counts these.
    effective host  listener hostname ∩ route hostname: the more specific of the two.
    derived import  the ServiceImport of ns/name that exists because some cluster
                    exports a Service ns/name; its endpoints span those clusters.
    config cluster  the Fleet's cluster whose Gateway API objects and policies count.
    pruned          left out of the table; always with a condition saying why.
"""

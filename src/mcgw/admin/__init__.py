"""The admin server: health, readiness, JSON views, Prometheus metrics and a live dashboard.

It runs in the gateway's process and event loop, on its own loopback address (never on
a listener's), and reads what the data plane and the controller already hold: the
current snapshot (route table, balancer), the health map, the request counters of
:mod:`mcgw.dataplane.metrics`, and the controller's last translation. Nothing here
runs per proxied request: counters are folded into label sets, rates and percentiles
when they are read, and once a second by the sampler that keeps the recent history
the dashboard draws.

Modules:
    stats       PURE. Folds counter cells into per-cluster/zone, per-route and
                per-backend-group totals; the Sampler keeps one-second samples
                (requests per second, error rate, latency percentiles) for a while.
    exposition  Prometheus text format through prometheus_client: a custom collector
                built from the cells on each scrape.
    views       PURE-ish. The JSON documents of /api/*: route table with statuses,
                endpoint health, stats.
    server      AdminServer: a small httptools/asyncio HTTP/1.1 server and its routes.
    dashboard.html  The live page: vanilla JS and inline SVG, no build step, no CDN.

Glossary:
    cell     the running totals (count, latency sum, buckets) of one counter key.
    group    a backend group: one backend's endpoints in one cluster and zone.
    sample   the difference between two readings of the counters a second apart.
"""

"""The data plane: an HTTP/1.1 reverse proxy running one route table at a time.

It sees only :mod:`mcgw.ir` (plus :mod:`mcgw.errors` and :mod:`mcgw.logschema`).
Pure parts are compiled once per table version and tested without sockets; the
asyncio parts are thin shells around them.

Modules:
    settings   ProxySettings: process knobs (ports, limits, timeouts), documented.
    router     PURE. compile(table) -> Router; Router.find(listener, host, path, ...)
               -> filters.RoutePlan (Router.match -> its ir Route). Host dict,
               wildcard suffixes, precompiled matches.
    filters    PURE. HTTPRoute filters, timeouts and retry compiled per table
               version: header edits on lines, redirect Location, URL rewrite,
               CORS (origin regex compiled once), mirror odds. RoutePlan.plain
               marks a route that costs the protocol nothing extra.
    mirror     RequestMirror copies: fire-and-forget, bounded in flight.
    balancer   PURE. Which backendRef (weights), then which endpoint (locality,
               health, exclusions after failures) and why.
    health     Active checks and passive failures -> a health map the balancer reads.
    snapshot   The current (table, router, balancer); swapped atomically, read once
               per request so requests in flight keep theirs.
    upstream   Keep-alive pool to endpoints: PoolBook (pure bookkeeping) + the I/O
               (UpstreamConnection parses responses with httptools).
    h2upstream Cleartext HTTP/2 to ``h2c`` backends: one shared connection per
               endpoint, a Stream per request standing in for an upstream connection;
               pure header mapping, send queue and connection book.
    h2server   Cleartext HTTP/2 from clients (prior knowledge): ClientConnection
               hands a connection opening with the preface over; each stream runs
               through a private ClientConnection fed HTTP/1.1 bytes in memory.
    tunnel     WebSocket pass-through: after a 101, bytes relayed both ways with
               backpressure, half-close and an idle timeout.
    protocol   ClientConnection: httptools callbacks, framing, hop-by-hop headers,
               flow control both ways, retries, error responses, one access-log
               record per response.
    accesslog  Buffered writer of logschema.AccessRecord lines, off the hot path:
               batches go to a writer process through a pipe.
    logwriter  That process: formats and writes the lines, rotating files.
    metrics    Request counters for Prometheus and the admin API: per request one
               dict update and a bisect into fixed latency buckets; folded when read.
    server     Gateway: apply(table), listeners, timeout sweep, graceful close.
    errors     ProxyError and friends: each carries its HTTP status and the
               Cloud Load Balancing statusDetails written to the log.

Glossary:
    exchange     one request and its response on a client connection.
    attempt      one try of an exchange on one endpoint; connect failures and
                 closes before any response byte are retried on another endpoint.
    snapshot     one route table version with everything compiled from it.
    endpoint     (address, port) of a pod; the pool and health map key.
"""

"""Errors the data plane answers itself, each carrying its HTTP status.

A request that fails inside the gateway is never forwarded: the protocol turns the
error into a small response with :attr:`ProxyError.status`, and the access log
records :attr:`ProxyError.details` as Cloud Load Balancing's ``statusDetails``.
"""

from __future__ import annotations

from mcgw import errors


class ProxyError(errors.McgwError):
    """A request the gateway answers itself instead of forwarding it."""

    status = 500
    """HTTP status of the response sent to the client."""
    details = "internal_error"
    """Cloud Load Balancing ``statusDetails`` written to the access log."""
    close = False
    """Whether the client connection must be closed after the response: the
    request's framing can no longer be trusted or the rest of it was not read."""

    def __init__(self, message: str = "", *, details: str | None = None) -> None:
        super().__init__(message or self.details)
        if details is not None:
            self.details = details


class BadRequest(ProxyError):
    """Malformed or ambiguous request (e.g. both Content-Length and chunked)."""

    status = 400
    details = "malformed_request"
    close = True


class RequestTimeout(ProxyError):
    """The request head did not arrive within ``header_read_timeout_s``, or its body
    was still incomplete when the backend's timeout ran out (the client stalled)."""

    status = 408
    details = "client_timed_out"
    close = True


class BodyTooLarge(ProxyError):
    """The request body exceeds ``max_body_bytes``."""

    status = 413
    details = "request_body_too_large"
    close = True


class HeadersTooLarge(ProxyError):
    """Request line or headers exceed their byte or count limits."""

    status = 431
    details = "request_headers_too_large"
    close = True


class UriTooLong(ProxyError):
    """The request line (its target) exceeds ``max_request_line_bytes``."""

    status = 414
    details = "request_uri_too_long"
    close = True


class NotImplementedMethod(ProxyError):
    """A well-formed request the gateway does not implement: an unknown method, CONNECT
    (RFC 9110 9.1)."""

    status = 501
    details = "method_not_implemented"
    close = True


class NotImplementedCoding(ProxyError):
    """A transfer coding other than chunked (RFC 9112 6.1): the body cannot be read."""

    status = 501
    details = "transfer_coding_not_implemented"
    close = True


class VersionNotSupported(ProxyError):
    """An HTTP major version other than 1 on an HTTP/1 connection (RFC 9110 15.6.6)."""

    status = 505
    details = "http_version_not_supported"
    close = True


class SlowClient(ProxyError):
    """The request body arrived slower than ``min_body_rate_bps`` (a slow POST)."""

    status = 408
    details = "client_body_too_slow"
    close = True


class NoRoute(ProxyError):
    """No virtual host or route matches the request."""

    status = 404
    details = "no_route"


class Misdirected(ProxyError):
    """On an HTTPS socket, the Host names a host another listener serves than the one
    the TLS server name (SNI) chose (RFC 9110 15.5.20; Gateway API
    ``GatewayHTTPSListenerDetectMisdirectedRequests``): the client should retry on a
    connection of its own for that host."""

    status = 421
    details = "misdirected_request"


class InvalidBackend(ProxyError):
    """The matched rule has no backend, or one that could not be resolved."""

    status = 500
    details = "invalid_backend"


class UpstreamFailed(ProxyError):
    """Connecting to or talking with the backend failed and cannot be retried."""

    status = 502
    details = "failed_to_connect_to_backend"


class NoHealthyUpstream(ProxyError):
    """Every endpoint of the chosen backend is unhealthy or not ready."""

    status = 503
    details = "no_healthy_upstream"


class UpstreamTimeout(ProxyError):
    """The backend did not send response headers within ``Backend.timeout_s``."""

    status = 504
    details = "backend_timeout"


class ListenError(errors.McgwError):
    """A listener's socket could not be bound (port in use, permission)."""

    def __init__(self, listener: str, host: str, port: int, reason: str) -> None:
        super().__init__(
            f"listener {listener}: cannot bind {host}:{port}: {reason}. "
            f"Fix: free the port, or serve it elsewhere with --port-map {port}:8080 "
            f"(or {port}:0 for any free port)"
        )
        self.listener = listener
        self.host = host
        self.port = port

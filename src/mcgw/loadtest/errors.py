"""Errors raised by mcgw.loadtest."""

from __future__ import annotations

from mcgw import errors


class LoadError(errors.McgwError):
    """A load test that cannot start: bad options or an unusable URL.

    Failures of the system under test (refused connections, timeouts, 5xx) are not
    errors: they are measured, as ``http_req_failed``.
    """

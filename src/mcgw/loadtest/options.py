"""What a load test is asked to do: k6's command-line options that mcgw supports."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mcgw.loadtest import errors

DEFAULT_TREND_STATS: tuple[str, ...] = ("avg", "min", "med", "max", "p(90)", "p(95)")
"""k6's default ``summaryTrendStats``."""

_STAT_RE = re.compile(r"^(avg|min|med|max|count|p\((\d+(\.\d+)?)\))$")


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """One scenario, as ``k6 run --vus N --duration D`` of a script that does one request
    and then sleeps.

    With ``duration_s`` only, VUs loop until the duration ends (k6's ``constant-vus``).
    With ``iterations``, that many iterations are shared among the VUs (k6's
    ``shared-iterations``) and ``duration_s`` is the maximum duration (default 10 min).
    With neither, one VU runs one iteration, as k6 does.
    """

    url: str
    """``http://host[:port]/path?query`` requested by every iteration."""
    vus: int = 1
    """Virtual users: concurrent loops, each with its own keep-alive connection."""
    duration_s: float | None = None
    iterations: int | None = None
    """Total iterations shared among all VUs; None loops for ``duration_s``."""
    sleep_s: float = 1.0
    """Pause at the end of each iteration, like ``sleep(1)`` in SEED.md's test.js."""
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    """Extra request headers; a ``Host`` here overrides the URL's."""
    body: bytes = b""
    host_map: tuple[tuple[str, str], ...] = ()
    """k6's ``hosts``: ``(host[:port], ip[:port])`` pairs overriding name resolution, so
    that ``http://store.example.com`` can reach a gateway on ``127.0.0.1:PORT`` while
    sending ``Host: store.example.com``."""
    timeout_s: float = 60.0
    """Per request, connect included (k6's default ``timeout``)."""
    graceful_stop_s: float = 30.0
    """After the duration, how long running iterations may take to finish before they
    are interrupted."""
    summary_trend_stats: tuple[str, ...] = DEFAULT_TREND_STATS
    breakdown: bool = False
    """Count responses per backend ``cluster_name``/``zone`` (from an ``x-mcgw-cluster``
    header or a whereami JSON body)."""

    def __post_init__(self) -> None:
        if self.vus < 1:
            raise errors.LoadError(f"vus must be at least 1, got {self.vus}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise errors.LoadError(f"duration must be positive, got {self.duration_s}s")
        if self.iterations is not None and self.iterations < 1:
            raise errors.LoadError(f"iterations must be at least 1, got {self.iterations}")
        if self.sleep_s < 0:
            raise errors.LoadError(f"sleep must not be negative, got {self.sleep_s}s")
        if not self.timeout_s > 0:
            raise errors.LoadError(f"timeout must be positive, got {self.timeout_s}s")
        if self.graceful_stop_s < 0:
            raise errors.LoadError(f"gracefulStop must not be negative: {self.graceful_stop_s}s")
        if not self.method.isalpha():
            raise errors.LoadError(f"bad HTTP method {self.method!r}")
        for stat in self.summary_trend_stats:
            match = _STAT_RE.match(stat)
            if not match or (match.group(2) and float(match.group(2)) > 100):
                raise errors.LoadError(
                    f"unknown summary trend stat {stat!r}: use avg, min, med, max, count "
                    "or p(N) with 0 <= N <= 100"
                )


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNIT_S = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Parse a k6 (Go) duration such as ``60s``, ``1m30s`` or ``500ms`` into seconds.

    A bare number is seconds, as k6 accepts for ``--duration``.

    Raises:
        errors.LoadError: ``text`` is not a duration.
    """
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match[1]) * _DURATION_UNIT_S[match[2]]
        pos = match.end()
    if pos != len(text) or not text:
        raise errors.LoadError(f"invalid duration {text!r}: use e.g. 30s, 1m30s or 500ms")
    return total

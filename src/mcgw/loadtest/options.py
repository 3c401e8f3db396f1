"""What a load test is asked to do: k6's command-line options that mcgw supports."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

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
    script: str | None = None
    """A k6 JavaScript file or a Python scenario module; replaces ``url``/``sleep_s``."""
    stages: tuple[tuple[float, float], ...] = ()
    """``--stage 30s:10``: (duration, target VUs) pairs → a ramping-vus scenario."""
    scenarios: tuple[tuple[str, Mapping[str, object]], ...] = ()
    """k6's ``options.scenarios`` as written; they win over vus/duration/iterations."""
    rps: float | None = None
    """A global cap on requests per second over all VUs (k6's ``--rps``)."""
    tags: tuple[tuple[str, str], ...] = ()
    """Tags added to every sample (``--tag k=v``)."""
    env: tuple[tuple[str, str], ...] = ()
    """``-e KEY=VALUE``: what scripts see as ``__ENV``."""
    thresholds: tuple[tuple[str, tuple[object, ...]], ...] = ()
    """Per metric (or submetric ``name{tag:value}``), k6 threshold expressions: strings or
    ``{threshold, abortOnFail, delayAbortEval}`` objects."""
    throw: bool = False
    """``--throw``: a failed request raises in the script instead of being measured only."""
    out_json: str | None = None
    """``--out json=FILE``: every sample as k6's NDJSON."""
    workers: int = 1
    """Processes sharing the load (``--workers``)."""
    setup_timeout_s: float = 60.0
    insecure_skip_tls_verify: bool = False
    """k6's ``insecureSkipTLSVerify``: https without checking the server's certificate."""
    max_redirects: int = 10
    discard_response_bodies: bool = False
    """k6's ``discardResponseBodies``: requests default to ``responseType: 'none'``."""
    """k6's ``maxRedirects``: redirects a script's request follows (``params.redirects``
    overrides it per request); 0 returns every 3xx as it is."""

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
        if self.workers < 1:
            raise errors.LoadError(f"workers must be at least 1, got {self.workers}")
        if self.max_redirects < 0:
            raise errors.LoadError(f"maxRedirects must not be negative, got {self.max_redirects}")
        if self.rps is not None and not self.rps > 0:
            raise errors.LoadError(f"rps must be positive, got {self.rps}")
        if not self.url and not self.script:
            raise errors.LoadError("nothing to load: give a URL or a script")
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


def parse_stage(text: str) -> tuple[float, float]:
    """``30s:10`` → (30.0, 10.0), as k6's ``--stage``."""
    dur, sep, target = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return parse_duration(dur), float(target)
    except (ValueError, errors.LoadError) as exc:
        raise errors.LoadError(f"invalid stage {text!r}: use DURATION:TARGET, e.g. 30s:10") from exc


def _script_duration(value: object, key: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000.0  # numbers in k6 scripts are milliseconds
    if isinstance(value, str):
        return parse_duration(value)
    raise errors.LoadError(f"options.{key}: expected a duration, got {value!r}")


_SCRIPT_KEYS = frozenset(
    {
        "vus",
        "duration",
        "iterations",
        "stages",
        "scenarios",
        "thresholds",
        "hosts",
        "summaryTrendStats",
        "rps",
        "tags",
        "throw",
        "httpDebug",
        "insecureSkipTLSVerify",
        "noConnectionReuse",
        "userAgent",
        "discardResponseBodies",
        "setupTimeout",
        "teardownTimeout",
        "summaryTimeUnit",
        "systemTags",
        "maxRedirects",
        "batch",
        "batchPerHost",
        "minIterationDuration",
        "vusMax",
        "ext",
        "cloud",
    }
)
"""Options k6 accepts at the top of ``options``; the ones mcgw ignores are listed in the
package docstring. An unknown key is an error (k6 only warns) so typos do not pass."""


def with_script_options(
    base: LoadOptions, script: Mapping[str, object], given: frozenset[str]
) -> LoadOptions:
    """Merge a script's ``export const options`` under the command line, as k6 does:
    a flag given on the command line (its field name in ``given``) wins.

    Raises:
        errors.LoadError: an unknown option or a bad value.
    """
    unknown = set(script) - _SCRIPT_KEYS
    if unknown:
        raise errors.LoadError(f"options: unknown option(s) {', '.join(sorted(unknown))}")
    changes: dict[str, object] = {}

    def take(field: str, value: object) -> None:
        if field not in given:
            changes[field] = value

    if "vus" in script:
        take("vus", int(script["vus"]))  # type: ignore[call-overload]
    if "duration" in script:
        take("duration_s", _script_duration(script["duration"], "duration"))
    if "iterations" in script:
        take("iterations", int(script["iterations"]))  # type: ignore[call-overload]
    if "stages" in script:
        raw = script["stages"]
        if not isinstance(raw, list):
            raise errors.LoadError("options.stages: expected a list")
        take(
            "stages",
            tuple(
                (_script_duration(s.get("duration"), "stages"), float(s.get("target", 0)))
                for s in raw
            ),
        )
    if "scenarios" in script and not ({"vus", "duration_s", "iterations", "stages"} & given):
        raw = script["scenarios"]
        if not isinstance(raw, Mapping):
            raise errors.LoadError("options.scenarios: expected an object")
        changes["scenarios"] = tuple((str(k), v) for k, v in raw.items())
    if "thresholds" in script:
        raw = script["thresholds"]
        if not isinstance(raw, Mapping):
            raise errors.LoadError("options.thresholds: expected an object")
        merged = dict(base.thresholds)
        for name, exprs in raw.items():
            merged[str(name)] = tuple(exprs) if isinstance(exprs, list) else (exprs,)
        changes["thresholds"] = tuple(merged.items())
    if "hosts" in script:
        raw = script["hosts"]
        if not isinstance(raw, Mapping):
            raise errors.LoadError("options.hosts: expected an object")
        # The command line's --host entries win over the script's for the same name.
        cli = dict(base.host_map)
        changes["host_map"] = tuple({**{str(k): str(v) for k, v in raw.items()}, **cli}.items())
    if "summaryTrendStats" in script:
        take("summary_trend_stats", tuple(str(s) for s in script["summaryTrendStats"]))  # type: ignore[attr-defined]
    if "rps" in script:
        take("rps", float(script["rps"]))  # type: ignore[arg-type]
    if "tags" in script and isinstance(script["tags"], Mapping):
        changes["tags"] = tuple(
            {**{str(k): str(v) for k, v in script["tags"].items()}, **dict(base.tags)}.items()
        )
    if "throw" in script:
        take("throw", bool(script["throw"]))
    if "insecureSkipTLSVerify" in script:
        take("insecure_skip_tls_verify", bool(script["insecureSkipTLSVerify"]))
    if "discardResponseBodies" in script:
        changes["discard_response_bodies"] = bool(script["discardResponseBodies"])
    if "maxRedirects" in script:
        take("max_redirects", int(script["maxRedirects"]))  # type: ignore[call-overload]
    if "setupTimeout" in script:
        changes["setup_timeout_s"] = _script_duration(script["setupTimeout"], "setupTimeout")
    if not changes:
        return base
    names = {f.name for f in fields(LoadOptions)}
    assert set(changes) <= names
    return replace(base, **changes)  # type: ignore[arg-type]

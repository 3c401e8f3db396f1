"""HTTPRoute filters, timeouts and retry → IR, with the spec's validation.

A rule's filters (and each backendRef's) compile into a :class:`Draft`: the IR
:class:`~mcgw.ir.table.Filters` except the redirect, whose scheme and port depend on the
listener the route is served from (the spec's default-port rules), so it is finished per
listener by :meth:`Draft.for_listener`.

What can go wrong, and what becomes of it (the spec's words in brackets):

* a filter the spec makes invalid: a header named twice across set/add/remove ("only
  one action for a given header name is permitted"), an invalid header name, a
  malformed CORS origin, RequestRedirect with URLRewrite or with backendRefs,
  ReplacePrefixMatch without a single PathPrefix match → the rule is dropped,
  ``PartiallyInvalid`` (``Accepted=False`` when no rule is left), reason UnsupportedValue;
* a mirror whose backendRef does not resolve → the mirror is left out ("must be dropped
  from the Gateway"), ``ResolvedRefs=False`` with BackendNotFound / RefNotPermitted /
  InvalidKind; the rule keeps serving;
* ExtensionRef and ExternalAuth, which mcgw does not implement → the rule is kept but
  answers 500 ("the filter MUST NOT be skipped ... requests MUST receive a HTTP error
  response"), ``ResolvedRefs=False``.

Config loading already rejects what the CRDs' CEL rules reject; the same checks are
repeated here so that objects built any other way still end as status, not a crash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from mcgw.config import gatewayapi
from mcgw.errors import McgwError
from mcgw.ir import table
from mcgw.translate import backends, status

_R = status.Reason

WELL_KNOWN_PORTS = {"http": 80, "https": 443}

DEFAULT_RETRY_ATTEMPTS = 1
"""Retries when ``retry`` is given without ``attempts`` (implementation-specific)."""
DEFAULT_RETRY_BACKOFF_S = 0.025
"""Wait before a retry when ``retry`` has no ``backoff`` (Envoy's base interval)."""

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_ORIGIN = re.compile(
    r"^(?P<scheme>https?)://(?P<host>\*|(\*\.)?([\w-]+\.)*[\w-]+)(:(?P<port>\d{1,5}))?$"
)
"""CORSOrigin as the CRD's pattern describes it (``*`` alone is handled apart)."""
_LABELS = r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*"
"""What a ``*`` in an origin's host stands for: one or more DNS labels (greedy, left)."""


class Invalid(McgwError):
    """The rule is invalid; the message says why (UnsupportedValue). Caught by the
    routes pass, which drops the rule: it never escapes the translator."""


@dataclass(frozen=True, slots=True)
class RedirectDraft:
    """A redirect before the listener is known."""

    scheme: str | None
    hostname: str | None
    port: int | None
    path: table.PathModifier | None
    status_code: int

    def resolve(self, listener_port: int, listener_scheme: str) -> table.Redirect:
        """Apply the spec's port rules (see :attr:`table.Redirect.port`)."""
        scheme = self.scheme or listener_scheme
        if self.port is not None:
            port = self.port
        elif self.scheme is not None:
            port = WELL_KNOWN_PORTS.get(self.scheme, listener_port)
        else:
            port = listener_port
        shown: int | None = None if WELL_KNOWN_PORTS.get(scheme) == port else port
        return table.Redirect(
            scheme=scheme,
            hostname=self.hostname,
            port=shown,
            path=self.path,
            status_code=self.status_code,
        )


@dataclass(frozen=True, slots=True)
class Draft:
    """Compiled filters; ``broken`` means the rule answers 500 (unsupported filter)."""

    filters: table.Filters = field(default_factory=table.Filters)
    redirect: RedirectDraft | None = None
    broken: bool = False

    def for_listener(self, port: int, scheme: str = "http") -> table.Filters:
        if self.redirect is None:
            return self.filters
        return replace(self.filters, redirect=self.redirect.resolve(port, scheme))


@dataclass(slots=True)
class Findings:
    """Reference problems (ResolvedRefs=False) found while compiling; the rule stays."""

    problems: list[backends.Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --- rule-level checks ------------------------------------------------------------------


def check_rule(rule: gatewayapi.HTTPRouteRule) -> None:
    """Raise :class:`Invalid` when the rule's filters contradict each other or its matches.

    Raises:
        Invalid: why (UnsupportedValue).
    """
    _check_filter_list(rule.filters, "filters")
    for b, ref in enumerate(rule.backend_refs):
        _check_filter_list(ref.filters, f"backendRefs[{b}].filters")
    if rule.backend_refs and any(f.type == "RequestRedirect" for f in rule.filters):
        raise Invalid("a RequestRedirect filter cannot be used together with backendRefs")
    uses_prefix = any(
        _replaces_prefix(f)
        for f in (*rule.filters, *(g for b in rule.backend_refs for g in b.filters))
    )
    if uses_prefix and (len(rule.matches) != 1 or rule.matches[0].path.type != "PathPrefix"):
        raise Invalid("path type ReplacePrefixMatch needs exactly one match, of type PathPrefix")


def _check_filter_list(filters: list[gatewayapi.HTTPRouteFilter], where: str) -> None:
    types = [f.type for f in filters]
    if "RequestRedirect" in types and "URLRewrite" in types:
        raise Invalid(f"{where}: RequestRedirect and URLRewrite cannot be used together")
    for once in ("CORS", "RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect"):
        if types.count(once) > 1:
            raise Invalid(f"{where}: filter {once} is given more than once")
    if types.count("URLRewrite") > 1:
        raise Invalid(f"{where}: filter URLRewrite is given more than once")


def _replaces_prefix(f: gatewayapi.HTTPRouteFilter) -> bool:
    modifier = f.request_redirect or f.url_rewrite
    return (
        modifier is not None
        and modifier.path is not None
        and (modifier.path.type == "ReplacePrefixMatch")
    )


# --- one filter list ---------------------------------------------------------------------


def compile_filters(
    filters: list[gatewayapi.HTTPRouteFilter],
    *,
    route: gatewayapi.HTTPRoute,
    matched_prefix: str,
    resolver: backends.Resolver,
    findings: Findings,
    where: str,
) -> Draft:
    """Compile one list of filters (a rule's or a backendRef's).

    Args:
        matched_prefix: the value of the rule's PathPrefix match when it has exactly one
            (used by ReplacePrefixMatch), else ``""``.
        where: prefix for messages, e.g. ``rule 2`` or ``rule 2 backendRef 0``.

    Raises:
        Invalid: the filters are invalid; the rule must be dropped.
    """
    out = table.Filters()
    redirect: RedirectDraft | None = None
    broken = False
    mirrors: list[table.Mirror] = []
    for f in filters:
        if f.type == "RequestHeaderModifier" and f.request_header_modifier is not None:
            out = replace(out, request_headers=_headers(f.request_header_modifier, where, findings))
        elif f.type == "ResponseHeaderModifier" and f.response_header_modifier is not None:
            out = replace(
                out, response_headers=_headers(f.response_header_modifier, where, findings)
            )
        elif f.type == "RequestRedirect" and f.request_redirect is not None:
            r = f.request_redirect
            redirect = RedirectDraft(
                scheme=r.scheme,
                hostname=r.hostname.lower() if r.hostname else None,
                port=r.port,
                path=_path(r.path, matched_prefix),
                status_code=r.status_code,
            )
        elif f.type == "URLRewrite" and f.url_rewrite is not None:
            u = f.url_rewrite
            out = replace(
                out,
                url_rewrite=table.URLRewrite(
                    hostname=u.hostname.lower() if u.hostname else None,
                    path=_path(u.path, matched_prefix),
                ),
            )
        elif f.type == "RequestMirror" and f.request_mirror is not None:
            mirror = _mirror(f.request_mirror, route, resolver, findings, where)
            if mirror is not None:
                mirrors.append(mirror)
        elif f.type == "CORS" and f.cors is not None:
            out = replace(out, cors=_cors(f.cors, where))
        else:
            # ExtensionRef, ExternalAuth: not implemented; never skipped silently.
            broken = True
            findings.problems.append(
                backends.Problem(
                    _R.INVALID_KIND,
                    f"{where}: filter {f.type} is not supported by mcgw; "
                    "requests it would process are answered 500",
                )
            )
    return Draft(replace(out, mirrors=tuple(mirrors)), redirect, broken)


def _headers(
    spec: gatewayapi.HTTPHeaderFilter, where: str, findings: Findings
) -> table.HeaderModifier:
    seen: dict[str, str] = {}

    def claim(name: str, action: str) -> bool:
        key = name.lower()
        if not _TOKEN.match(name):
            raise Invalid(f"{where}: {name!r} is not a valid header name")
        if key in seen:
            if seen[key] == action:
                # HTTPHeader: "the first entry with an equivalent name MUST be considered".
                findings.warnings.append(
                    f"{where}: header {name} is given twice in {action}; the first one counts"
                )
                return False
            raise Invalid(
                f"{where}: header {name} is both in {seen[key]} and {action} "
                "(only one action per header name is permitted)"
            )
        seen[key] = action
        return True

    set_ = tuple(
        table.HeaderValue(h.name, h.name.lower(), h.value) for h in spec.set if claim(h.name, "set")
    )
    add = tuple(
        table.HeaderValue(h.name, h.name.lower(), h.value) for h in spec.add if claim(h.name, "add")
    )
    remove = tuple(name.lower() for name in spec.remove if claim(name, "remove"))
    return table.HeaderModifier(set=set_, add=add, remove=remove)


def _path(
    spec: gatewayapi.HTTPPathModifier | None, matched_prefix: str
) -> table.PathModifier | None:
    if spec is None:
        return None
    if spec.type == "ReplaceFullPath":
        value = spec.replace_full_path or "/"
        if not value.startswith("/"):
            raise Invalid(f"replaceFullPath {value!r} must start with /")
        return table.PathModifier(table.PathModifierType.REPLACE_FULL_PATH, value)
    value = (spec.replace_prefix_match or "").rstrip("/")
    if value and not value.startswith("/"):
        raise Invalid(f"replacePrefixMatch {spec.replace_prefix_match!r} must start with /")
    return table.PathModifier(
        table.PathModifierType.REPLACE_PREFIX_MATCH, value, matched_prefix.rstrip("/")
    )


def _mirror(
    spec: gatewayapi.HTTPRequestMirrorFilter,
    route: gatewayapi.HTTPRoute,
    resolver: backends.Resolver,
    findings: Findings,
    where: str,
) -> table.Mirror | None:
    name, problem = resolver.resolve_target(route, spec.backend_ref, f"{where}: mirror backendRef")
    if problem is not None or name is None:
        if problem is not None:
            findings.problems.append(problem)
        return None
    if spec.fraction is not None:
        return table.Mirror(name, spec.fraction.numerator, spec.fraction.denominator)
    if spec.percent is not None:
        return table.Mirror(name, spec.percent, 100)
    return table.Mirror(name)


def origin_regex(origins: list[str]) -> str | None:
    """The regular expression equivalent to ``allowOrigins`` (see :class:`table.Cors`).

    Raises:
        Invalid: an origin is not ``scheme://host[:port]``.
    """
    if not origins or origins == ["*"]:
        return None
    parts = []
    for origin in origins:
        m = _ORIGIN.match(origin.lower())
        if m is None:
            raise Invalid(f"CORS origin {origin!r} is not scheme://host[:port] or *")
        scheme, host, port = m["scheme"], m["host"], m["port"]
        host_re = re.escape(host).replace(r"\*", _LABELS)
        default = WELL_KNOWN_PORTS[scheme]
        explicit = port is not None and int(port) != default
        port_re = f":{int(port)}" if explicit else f"(?::{default})?"
        parts.append(f"{scheme}://{host_re}{port_re}")
    return "(?i)(?:" + "|".join(parts) + ")"


def _cors(spec: gatewayapi.HTTPCORSFilter, where: str) -> table.Cors:
    try:
        regex = origin_regex(spec.allow_origins)
    except Invalid as exc:
        raise Invalid(f"{where}: {exc}") from None
    return table.Cors(
        allow_origins=tuple(o.lower() for o in spec.allow_origins),
        origin_regex=regex,
        allow_credentials=bool(spec.allow_credentials),
        allow_methods=tuple(spec.allow_methods),
        allow_headers=tuple(spec.allow_headers),
        expose_headers=tuple(spec.expose_headers),
        max_age_s=spec.max_age,
    )


# --- timeouts and retry ------------------------------------------------------------------


def timeouts(spec: gatewayapi.HTTPRouteTimeouts | None) -> table.Timeouts:
    """IR timeouts; "0s" becomes 0.0 (disabled), an absent field None."""
    if spec is None:
        return table.Timeouts()
    request = gatewayapi.duration_seconds(spec.request) if spec.request else None
    backend = gatewayapi.duration_seconds(spec.backend_request) if spec.backend_request else None
    if request and backend and backend > request:
        raise Invalid(
            f"timeouts.backendRequest {spec.backend_request} is longer than "
            f"timeouts.request {spec.request}"
        )
    return table.Timeouts(request_s=request, backend_request_s=backend)


def retry(spec: gatewayapi.HTTPRouteRetry | None) -> table.Retry | None:
    if spec is None:
        return None
    return table.Retry(
        codes=tuple(sorted(set(spec.codes))),
        attempts=DEFAULT_RETRY_ATTEMPTS if spec.attempts is None else spec.attempts,
        backoff_s=(
            gatewayapi.duration_seconds(spec.backoff)
            if spec.backoff is not None
            else DEFAULT_RETRY_BACKOFF_S
        ),
    )

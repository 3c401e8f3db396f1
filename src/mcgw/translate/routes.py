"""Pass 3: HTTPRoutes attach to listeners; their rules become IR routes in precedence order.

Attaching follows the Gateway API: a parentRef names a Gateway, optionally one listener
(``sectionName``) or port; a listener admits the route when its ``allowedRoutes`` admits
the route's namespace and kind, and when their hostnames intersect. Each failure has its
reason (NoMatchingParent, NotAllowedByListeners, NoMatchingListenerHostname).

Precedence (the spec's, across every route attached to a listener, for one hostname):

1. Exact path, then RegularExpression (longer pattern first; the spec leaves regexes to
   implementations), then PathPrefix, longest prefix first;
2. a method match;
3. more header matches; 4. more query-parameter matches;
5. the older route (creationTimestamp); 6. ``namespace/name`` alphabetically;
7. rule order, then match order, within the route.

Listener isolation: when listeners share a socket, a request goes to the most specific
listener whose hostname matches it, so a hostname a more specific listener covers is
removed from a less specific listener's routes, and each listener's own hostname gets a
virtual host (empty if nothing attached) so unmatched hosts below it answer 404.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field, replace

from mcgw.config import core, gatewayapi
from mcgw.ir import table, validate
from mcgw.translate import backends, context, filters, hostnames, listeners, status

_C = status.ConditionType
_R = status.Reason


@dataclass(frozen=True, slots=True)
class CompiledBackend:
    weighted: table.WeightedBackend
    """Without its filters: they are finished per listener from ``draft``."""
    draft: filters.Draft


@dataclass(frozen=True, slots=True)
class CompiledRule:
    index: int
    matches: tuple[table.Match, ...]
    backends: tuple[CompiledBackend, ...]
    draft: filters.Draft = field(default_factory=filters.Draft)
    timeouts: table.Timeouts = field(default_factory=table.Timeouts)
    retry: table.Retry | None = None

    def ir_backends(self, port: int, scheme: str) -> tuple[table.WeightedBackend, ...]:
        """The weighted backends as served from a listener on ``port``."""
        if self.draft.broken:
            return ()  # An unsupported rule filter: every request is answered 500.
        out = []
        for b in self.backends:
            weighted = b.weighted
            if b.draft.broken:
                weighted = table.WeightedBackend(None, weighted.weight)
            out.append(replace(weighted, filters=b.draft.for_listener(port, scheme)))
        return tuple(out)

    def mirror_backends(self) -> set[str]:
        names = {m.backend for m in self.draft.filters.mirrors}
        for b in self.backends:
            names.update(m.backend for m in b.draft.filters.mirrors)
        return names


@dataclass(slots=True)
class RouteState:
    route: gatewayapi.HTTPRoute
    rules: tuple[CompiledRule, ...]
    invalid_rules: list[str]
    """Why each dropped rule was dropped."""
    ref_problems: list[backends.Problem]
    parents: list[status.ParentStatus]

    @property
    def key(self) -> tuple[str, str]:
        return (self.route.metadata.namespace, self.route.metadata.name)


@dataclass(frozen=True, slots=True)
class Attachment:
    route: RouteState
    listener: listeners.ListenerState
    hostnames: tuple[str, ...]


# --- precedence ---------------------------------------------------------------------------

_PATH_RANK = {
    table.PathMatchType.EXACT: 0,
    table.PathMatchType.REGULAR_EXPRESSION: 1,
    table.PathMatchType.PATH_PREFIX: 2,
}

PrecedenceKey = tuple[int, int, int, int, int, tuple[int, float], str, str, int, int]


def precedence_key(
    match: table.Match,
    created: str | None,
    namespace: str,
    name: str,
    rule_index: int,
    match_index: int,
) -> PrecedenceKey:
    """Sort key putting the match that must win first (see the module docstring)."""
    return (
        _PATH_RANK[match.path.type],
        -len(match.path.value),
        0 if match.method is not None else 1,
        -len(match.headers),
        -len(match.query_params),
        context.created_key(created),
        namespace,
        name,
        rule_index,
        match_index,
    )


# --- rules --------------------------------------------------------------------------------


def _regex_problem(what: str, pattern: str) -> str | None:
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"{what} {pattern!r} is not a valid regular expression: {exc}"
    return None


def compile_match(m: gatewayapi.HTTPRouteMatch) -> tuple[table.Match | None, str | None]:
    """The IR match, or None and why the match is invalid."""
    path_type = table.PathMatchType(m.path.type)
    problem = None
    if path_type is table.PathMatchType.REGULAR_EXPRESSION:
        problem = _regex_problem("path", m.path.value)
    headers = []
    for h in m.headers:
        htype = table.HeaderMatchType(h.type)
        if htype is table.HeaderMatchType.REGULAR_EXPRESSION:
            problem = problem or _regex_problem(f"header {h.name}", h.value)
        headers.append(table.HeaderMatch(h.name, h.value, htype))
    params = []
    for q in m.query_params:
        qtype = table.HeaderMatchType(q.type)
        if qtype is table.HeaderMatchType.REGULAR_EXPRESSION:
            problem = problem or _regex_problem(f"query parameter {q.name}", q.value)
        params.append(table.QueryParamMatch(q.name, q.value, qtype))
    if problem is not None:
        return None, problem
    return (
        table.Match(
            path=table.PathMatch(path_type, m.path.value),
            headers=tuple(headers),
            query_params=tuple(params),
            method=m.method,
        ),
        None,
    )


def compile_route(
    route: gatewayapi.HTTPRoute, resolver: backends.Resolver, warnings: list[str] | None = None
) -> RouteState:
    """Compile every rule of ``route``; invalid rules are dropped with a reason.

    Args:
        warnings: receives what is ignored but has no condition (e.g. a header given
            twice in one list).
    """
    rules: list[CompiledRule] = []
    invalid: list[str] = []
    problems: list[backends.Problem] = []
    for i, rule in enumerate(route.spec.rules):
        findings = filters.Findings()
        try:
            compiled = _compile_rule(route, i, rule, resolver, findings)
        except filters.Invalid as exc:
            why = str(exc)
            invalid.append(why if why.startswith(f"rule {i}") else f"rule {i}: {why}")
            continue
        rules.append(compiled)
        problems.extend(findings.problems)
        if warnings is not None:
            warnings.extend(f"HTTPRoute {route.ref} {w}" for w in findings.warnings)
        if rule.session_persistence is not None and warnings is not None:
            warnings.append(
                f"HTTPRoute {route.ref} rule {i}: sessionPersistence is not supported; ignored"
            )
    return RouteState(route, tuple(rules), invalid, problems, [])


def _compile_rule(
    route: gatewayapi.HTTPRoute,
    i: int,
    rule: gatewayapi.HTTPRouteRule,
    resolver: backends.Resolver,
    findings: filters.Findings,
) -> CompiledRule:
    """One rule, or :class:`filters.Invalid`."""
    filters.check_rule(rule)
    matches: list[table.Match] = []
    for m in rule.matches:
        compiled, problem = compile_match(m)
        if compiled is None:
            raise filters.Invalid(problem or "invalid match")
        matches.append(compiled)
    single = rule.matches[0] if len(rule.matches) == 1 else None
    prefix = single.path.value if single is not None and single.path.type == "PathPrefix" else ""

    def compile_list(items: list[gatewayapi.HTTPRouteFilter], where: str) -> filters.Draft:
        return filters.compile_filters(
            items,
            route=route,
            matched_prefix=prefix,
            resolver=resolver,
            findings=findings,
            where=where,
        )

    draft = compile_list(rule.filters, f"rule {i}")
    timeouts = filters.timeouts(rule.timeouts)
    retry = filters.retry(rule.retry)
    compiled_backends: list[CompiledBackend] = []
    for b, ref in enumerate(rule.backend_refs):
        resolved = resolver.resolve(route, ref)
        if resolved.problem is not None:
            findings.problems.append(resolved.problem)
        backend_draft = compile_list(ref.filters, f"rule {i} backendRef {b}")
        compiled_backends.append(CompiledBackend(resolved.weighted, backend_draft))
    return CompiledRule(i, tuple(matches), tuple(compiled_backends), draft, timeouts, retry)


# --- attachment ---------------------------------------------------------------------------


def _label_selector_matches(selector: core.LabelSelector | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False  # Selector without a selector admits nothing.
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    for expr in selector.match_expressions or ():
        key = str(expr.get("key", ""))
        op = str(expr.get("operator", ""))
        raw = expr.get("values") or []
        values = {str(v) for v in raw} if isinstance(raw, list) else set()
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def namespace_allowed(
    ctx: context.Context, lis: listeners.ListenerState, route_namespace: str
) -> bool:
    spec = lis.spec.allowed_routes.namespaces
    if spec.from_ == "All":
        return True
    if spec.from_ == "Same":
        return route_namespace == lis.gateway.metadata.namespace
    return _label_selector_matches(spec.selector, ctx.namespace_labels(route_namespace))


def attach(
    ctx: context.Context,
    gateways: list[listeners.GatewayState],
    state: RouteState,
) -> list[Attachment]:
    """Attach one route to its parents; fill ``state.parents``; return the attachments."""
    route = state.route
    by_key = {g.key: g for g in gateways}
    attachments: list[Attachment] = []
    resolved_cond = _resolved_refs(state)
    for ref in route.spec.parent_refs:
        parent = status.ParentRef(
            group=ref.group,
            kind=ref.kind,
            namespace=ref.namespace or route.metadata.namespace,
            name=ref.name,
            section_name=ref.section_name,
            port=ref.port,
        )
        found, accepted = _attach_parent(ctx, by_key, state, parent)
        attachments.extend(found)
        conds = [accepted, resolved_cond]
        if accepted.status is status.ConditionStatus.TRUE and state.invalid_rules:
            conds.append(
                status.true(
                    _C.PARTIALLY_INVALID, _R.UNSUPPORTED_VALUE, "; ".join(state.invalid_rules)
                )
            )
        state.parents.append(status.ParentStatus(parent, status.CONTROLLER_NAME, tuple(conds)))
    return attachments


def _resolved_refs(state: RouteState) -> status.Condition:
    if not state.ref_problems:
        return status.true(_C.RESOLVED_REFS, _R.RESOLVED_REFS)
    return status.false(
        _C.RESOLVED_REFS,
        state.ref_problems[0].reason,
        "; ".join(p.message for p in state.ref_problems),
    )


def _attach_parent(
    ctx: context.Context,
    by_key: dict[tuple[str, str], listeners.GatewayState],
    state: RouteState,
    parent: status.ParentRef,
) -> tuple[list[Attachment], status.Condition]:
    route = state.route
    if parent.group != gatewayapi.GROUP or parent.kind != "Gateway":
        return [], status.false(
            _C.ACCEPTED, _R.INVALID_KIND, f"parentRef kind {parent.group}/{parent.kind}"
        )
    gw = by_key.get((parent.namespace, parent.name))
    if gw is None:
        return [], status.false(
            _C.ACCEPTED, _R.NO_MATCHING_PARENT, f"Gateway {parent} does not exist"
        )
    if not gw.handled:
        return [], status.false(
            _C.ACCEPTED,
            _R.NO_MATCHING_PARENT,
            f"Gateway {parent.namespace}/{parent.name} is not handled by mcgw "
            f"(gatewayClassName {gw.gateway.spec.gateway_class_name})",
        )
    if not state.rules:
        return [], status.false(
            _C.ACCEPTED, _R.UNSUPPORTED_VALUE, "no valid rule: " + "; ".join(state.invalid_rules)
        )
    candidates = [
        lis
        for lis in gw.listeners
        if (parent.section_name is None or lis.spec.name == parent.section_name)
        and (parent.port is None or lis.port == parent.port)
    ]
    if not candidates:
        return [], status.false(
            _C.ACCEPTED, _R.NO_MATCHING_PARENT, f"Gateway has no listener matching {parent}"
        )
    candidates = [lis for lis in candidates if lis.programmed]
    if not candidates:
        return [], status.false(
            _C.ACCEPTED, _R.NO_MATCHING_PARENT, f"no listener matching {parent} is programmed"
        )
    allowed = [
        lis
        for lis in candidates
        if "HTTPRoute" in lis.supported_kinds
        and namespace_allowed(ctx, lis, route.metadata.namespace)
    ]
    if not allowed:
        return [], status.false(
            _C.ACCEPTED,
            _R.NOT_ALLOWED_BY_LISTENERS,
            f"no listener of {parent} admits HTTPRoutes from namespace {route.metadata.namespace}",
        )
    found: list[Attachment] = []
    for lis in allowed:
        names = hostnames.effective(lis.hostname, tuple(route.spec.hostnames))
        if names:
            found.append(Attachment(state, lis, names))
    if not found:
        return [], status.false(
            _C.ACCEPTED,
            _R.NO_MATCHING_LISTENER_HOSTNAME,
            f"no hostname of the route ({', '.join(route.spec.hostnames)}) matches a listener "
            f"of {parent}",
        )
    for a in found:
        lis = a.listener
        lis.attached.add(state.key)
    return found, status.true(_C.ACCEPTED, _R.ACCEPTED)


# --- the table ----------------------------------------------------------------------------


def build_listeners(
    sockets: dict[tuple[str, int], list[listeners.ListenerState]],
    attachments: list[Attachment],
) -> tuple[table.Listener, ...]:
    """One IR listener per socket, its virtual hosts and their routes in precedence order."""
    by_listener: dict[int, list[Attachment]] = defaultdict(list)
    for a in attachments:
        by_listener[id(a.listener)].append(a)
    out: list[table.Listener] = []
    for (address, port), group in sockets.items():
        entries: dict[str, dict[str, tuple[PrecedenceKey, table.Route]]] = defaultdict(dict)
        for lis in group:
            more_specific = [
                o.hostname
                for o in group
                if o is not lis and hostnames.more_specific(o.hostname, lis.hostname)
            ]
            if len(group) > 1:
                entries.setdefault(lis.hostname, {})
            for a in by_listener.get(id(lis), ()):
                for host in a.hostnames:
                    if any(hostnames.covers(o, host) for o in more_specific):
                        continue  # Served by the more specific listener only.
                    for key, route in _ir_routes(a.route, port, lis.scheme):
                        entries[host].setdefault(route.name, (key, route))
        vhosts = tuple(
            table.VirtualHost(
                hostname=host,
                routes=tuple(r for _, r in sorted(entries[host].values(), key=lambda e: e[0])),
            )
            for host in sorted(entries, key=validate.hostname_order_key)
        )
        gw = group[0].gateway.metadata
        out.append(
            table.Listener(
                name=f"{gw.namespace}/{gw.name}/{port}",
                address=address,
                port=port,
                virtual_hosts=vhosts,
                gateway=f"{gw.namespace}/{gw.name}",
            )
        )
    return tuple(out)


def _ir_routes(
    state: RouteState, port: int, scheme: str
) -> list[tuple[PrecedenceKey, table.Route]]:
    meta = state.route.metadata
    out = []
    for rule in state.rules:
        weighted = rule.ir_backends(port, scheme)
        rule_filters = rule.draft.for_listener(port, scheme)
        for j, match in enumerate(rule.matches):
            route = table.Route(
                name=f"{meta.namespace}/{meta.name}/rule/{rule.index}/match/{j}",
                match=match,
                backends=weighted,
                route_namespace=meta.namespace,
                route_name=meta.name,
                rule_index=rule.index,
                filters=rule_filters,
                timeouts=rule.timeouts,
                retry=rule.retry,
            )
            key = precedence_key(
                match, meta.creation_timestamp, meta.namespace, meta.name, rule.index, j
            )
            out.append((key, route))
    return out

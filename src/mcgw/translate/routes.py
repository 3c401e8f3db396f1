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
from dataclasses import dataclass

from mcgw.config import core, gatewayapi
from mcgw.ir import table, validate
from mcgw.translate import backends, context, hostnames, listeners, status

_C = status.ConditionType
_R = status.Reason


@dataclass(frozen=True, slots=True)
class CompiledRule:
    index: int
    matches: tuple[table.Match, ...]
    backends: tuple[table.WeightedBackend, ...]


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


def compile_route(route: gatewayapi.HTTPRoute, resolver: backends.Resolver) -> RouteState:
    """Compile every rule of ``route``; invalid rules are dropped with a reason."""
    rules: list[CompiledRule] = []
    invalid: list[str] = []
    problems: list[backends.Problem] = []
    for i, rule in enumerate(route.spec.rules):
        unsupported = sorted(
            {f.type for f in rule.filters} | {f.type for b in rule.backend_refs for f in b.filters}
        )
        if unsupported:
            invalid.append(f"rule {i}: filters are not supported yet ({', '.join(unsupported)})")
            continue
        matches: list[table.Match] = []
        problem = None
        for m in rule.matches:
            compiled, problem = compile_match(m)
            if compiled is None:
                break
            matches.append(compiled)
        if problem is not None:
            invalid.append(f"rule {i}: {problem}")
            continue
        weighted: list[table.WeightedBackend] = []
        for ref in rule.backend_refs:
            resolved = resolver.resolve(route, ref)
            weighted.append(resolved.weighted)
            if resolved.problem is not None:
                problems.append(resolved.problem)
        rules.append(CompiledRule(i, tuple(matches), tuple(weighted)))
    return RouteState(route, tuple(rules), invalid, problems, [])


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
                    for key, route in _ir_routes(a.route):
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


def _ir_routes(state: RouteState) -> list[tuple[PrecedenceKey, table.Route]]:
    meta = state.route.metadata
    out = []
    for rule in state.rules:
        for j, match in enumerate(rule.matches):
            route = table.Route(
                name=f"{meta.namespace}/{meta.name}/rule/{rule.index}/match/{j}",
                match=match,
                backends=rule.backends,
                route_namespace=meta.namespace,
                route_name=meta.name,
                rule_index=rule.index,
            )
            key = precedence_key(
                match, meta.creation_timestamp, meta.namespace, meta.name, rule.index, j
            )
            out.append((key, route))
    return out

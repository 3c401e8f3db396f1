"""The filter, timeout, retry and protocol parts of the IR: round trips and invariants."""

from __future__ import annotations

import dataclasses

from test_ir_codec import sample

from mcgw.ir import codec, table, validate

BACKEND = "ServiceImport/store/store:8080"


def _header(name: str, value: str = "v") -> table.HeaderValue:
    return table.HeaderValue(name, name.lower(), value)


def rich() -> table.RouteTable:
    """The sample table with every new field set to something other than its default."""
    base = sample()
    full = table.PathModifier(table.PathModifierType.REPLACE_FULL_PATH, "/new")
    prefix = table.PathModifier(table.PathModifierType.REPLACE_PREFIX_MATCH, "/one", "/prefix")
    route_filters = table.Filters(
        request_headers=table.HeaderModifier(
            set=(_header("X-Set"),), add=(_header("X-Add", "a,b"),), remove=("x-gone",)
        ),
        response_headers=table.HeaderModifier(add=(_header("X-Resp"),)),
        url_rewrite=table.URLRewrite(hostname="internal.example.com", path=prefix),
        mirrors=(table.Mirror(BACKEND), table.Mirror(BACKEND, 1, 3)),
        cors=table.Cors(
            allow_origins=("https://*.foo.com",),
            origin_regex=r"(?i)(?:https://[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.foo\.com(?::443)?)",
            allow_credentials=True,
            allow_methods=("GET", "OPTIONS"),
            allow_headers=("x-h",),
            expose_headers=("*",),
            max_age_s=3600,
        ),
    )
    redirect = table.Redirect("https", "example.org", 8443, full, 308)
    listener = base.listeners[0]
    vhost = listener.virtual_hosts[0]
    route = dataclasses.replace(
        vhost.routes[0],
        backends=(
            table.WeightedBackend(BACKEND, 3, table.Filters(redirect=redirect)),
            table.WeightedBackend(None, 1),
        ),
        filters=route_filters,
        timeouts=table.Timeouts(request_s=0.0, backend_request_s=1.5),
        retry=table.Retry(codes=(500, 503), attempts=2, backoff_s=0.1),
    )
    return dataclasses.replace(
        base,
        listeners=(
            dataclasses.replace(
                listener,
                virtual_hosts=(
                    dataclasses.replace(vhost, routes=(route,)),
                    *listener.virtual_hosts[1:],
                ),
            ),
        ),
        backends=(dataclasses.replace(base.backends[0], protocol=table.BackendProtocol.H2C),),
    )


def test_rich_table_is_valid() -> None:
    assert validate.validate(rich()) == []


def test_rich_table_round_trips_in_yaml_and_json() -> None:
    original = codec.stamp(rich())
    assert codec.load_yaml(codec.dump_yaml(original)) == original
    assert codec.load_json(codec.dump_json(original)) == original
    assert original.version != codec.version_of(sample())


def _without(data: object, keys: set[str]) -> object:
    if isinstance(data, dict):
        return {k: _without(v, keys) for k, v in data.items() if k not in keys}
    if isinstance(data, list):
        return [_without(v, keys) for v in data]
    return data


def test_defaults_keep_old_tables_loading() -> None:
    # A table written before filters existed (no such keys) loads, with no filter.
    old = _without(codec.encode(sample()), {"filters", "timeouts", "retry", "protocol"})
    loaded = codec.load_yaml(codec.to_yaml(old))
    assert loaded == sample()
    route = loaded.listeners[0].virtual_hosts[0].routes[0]
    assert route.filters == table.Filters() and route.retry is None
    assert loaded.backends[0].protocol is table.BackendProtocol.HTTP


def test_filter_invariants_are_checked() -> None:
    t = rich()
    route = t.listeners[0].virtual_hosts[0].routes[0]
    broken = dataclasses.replace(
        route,
        filters=dataclasses.replace(
            route.filters,
            request_headers=table.HeaderModifier(
                set=(table.HeaderValue("X-A", "X-A", "v"),), remove=("x-a",)
            ),
            redirect=table.Redirect("ftp", None, 0, None, 200),
            mirrors=(table.Mirror("Service/x/y:1", 3, 2),),
            cors=table.Cors(origin_regex="(", max_age_s=0),
        ),
        timeouts=table.Timeouts(request_s=-1.0),
        retry=table.Retry(codes=(600, 500), attempts=-1, backoff_s=-1.0),
    )
    listener = t.listeners[0]
    vhost = dataclasses.replace(listener.virtual_hosts[0], routes=(broken,))
    bad = dataclasses.replace(t, listeners=(dataclasses.replace(listener, virtual_hosts=(vhost,)),))
    messages = "\n".join(str(e) for e in validate.validate(bad))
    for expected in (
        "request_headers.set[0].key: 'X-A' is not the name lower-cased",
        "header 'x-a' has more than one action",
        "redirect and url_rewrite are exclusive",
        "redirect.scheme: 'ftp' is not http/https",
        "redirect.status_code: 200 not allowed",
        "redirect.port: port 0 is out of range",
        "mirrors[0].backend: unknown backend 'Service/x/y:1'",
        "fraction 3/2 not in 0-1",
        "cors.origin_regex: invalid regular expression",
        "cors.max_age_s: 0 < 1",
        "a redirecting route has no backends",
        "timeouts.request_s: -1.0 < 0",
        "retry.codes: 600 is not in 400-599",
        "retry.codes: not sorted and unique",
        "retry.attempts: -1 < 0",
        "retry.backoff_s: -1.0 < 0",
    ):
        assert expected in messages, expected

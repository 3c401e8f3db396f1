"""BigQuery SQL, as Log Analytics accepts it, turned into DuckDB SQL over ``_AllLogs``.

sqlglot does the dialect translation; this module fixes up what Log Analytics means and
sqlglot cannot know, by rewriting the parsed tree before DuckDB SQL is generated:

* tables: any name ending in ``_AllLogs`` (``project.global._Default._AllLogs``) is the
  local view, whatever its project, location and bucket;
* JSON columns: in Log Analytics ``json_payload``, ``labels`` and ``resource.labels`` are
  JSON, so ``resource.labels.location`` is a JSON field access (the result is JSON) —
  DuckDB needs ``json_extract(resource.labels, '$."location"')``;
* ``JSON_VALUE(json)`` / ``JSON_VALUE(json, path)`` return STRING, ``JSON_QUERY`` JSON,
  and ``STRING()``, ``INT64()``, ``FLOAT64()``, ``BOOL()`` convert a JSON value.

* result columns are named as BigQuery names them (:func:`_name_columns`);
* ``FORMAT_TIMESTAMP(format, ts, zone)`` formats the instant's civil time in that
  zone (sqlglot drops the zone for DuckDB, which would format it in UTC: a silently
  wrong answer).

sqlglot already handles double-quoted string literals, ``TIMESTAMP(text, zone)`` (a
civil time in that zone → an instant) and the zones of ``TIMESTAMP_TRUNC``, ``DATE``,
``DATETIME`` and ``EXTRACT … AT TIME ZONE``.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlglot
from sqlglot import exp

from mcgw import logschema
from mcgw.analytics import errors, ingest

JSON_COLUMNS = frozenset({"json_payload", "labels", "proto_payload"})
"""Top-level ``_AllLogs`` columns of type JSON."""

JSON_STRUCT_FIELDS = frozenset({("resource", "labels")})
"""Fields of RECORD columns that are JSON."""

# BigQuery's JSON conversion functions → the DuckDB type to cast the JSON value to.
_JSON_CASTS: dict[type[exp.Expr], str] = {
    exp.Int64: "BIGINT",
    exp.Float64: "DOUBLE",
    exp.JSONBool: "BOOLEAN",
    exp.LaxInt64: "BIGINT",
    exp.LaxFloat64: "DOUBLE",
    exp.LaxBool: "BOOLEAN",
}


def to_duckdb(sql: str) -> str:
    """Translate one BigQuery statement over ``…_AllLogs`` into DuckDB SQL.

    Raises:
        AnalyticsError: the statement does not parse (with line and column).
    """
    try:
        trees = sqlglot.parse(sql, read="bigquery")
    except sqlglot.errors.ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        raise errors.AnalyticsError(
            f"SQL syntax error: {first.get('description') or exc}",
            sql=sql,
            line=first.get("line"),
            column=first.get("col"),
        ) from exc
    except sqlglot.errors.SqlglotError as exc:
        raise errors.AnalyticsError(f"SQL error: {exc}", sql=sql) from exc
    statements = [t for t in trees if t is not None]
    if len(statements) != 1:
        raise errors.AnalyticsError(
            f"expected exactly one SQL statement, got {len(statements)}", sql=sql
        )
    tree = rewrite(statements[0])
    try:
        return tree.sql(dialect="duckdb")
    except sqlglot.errors.SqlglotError as exc:
        raise errors.AnalyticsError(f"cannot translate to DuckDB: {exc}", sql=sql) from exc


def rewrite(tree: exp.Expr) -> exp.Expr:
    """Apply the Log Analytics fix-ups to a parsed statement (any dialect)."""
    _name_columns(tree)
    aliases = _map_tables(tree)
    tree = tree.transform(lambda node: _rewrite_json_access(node, aliases), copy=False)
    tree = tree.transform(_rewrite_json_functions, copy=False)
    tree = tree.transform(_format_in_zone, copy=False)
    return _read_typed_payload(tree)


def _name_columns(tree: exp.Expr) -> None:
    """Name the result's columns as BigQuery does: a column or a field path by its last
    name (``json_payload.cluster`` → ``cluster``), any other expression without an alias
    ``f0_``, ``f1_``… in order. Without this DuckDB would name them after the SQL they
    were translated into (``count_star()``, a ``CASE`` over internal columns)."""
    while isinstance(tree, exp.SetOperation):  # a UNION's names are its first query's
        tree = tree.left
    if not isinstance(tree, exp.Select):
        return
    anonymous = 0
    for node in tree.expressions:
        if isinstance(node, exp.Alias) or node.is_star:
            continue
        if isinstance(node, exp.Column) and not node.table:
            # DuckDB names a bare column alike; aliased, a misspelt one would be reported
            # as a reference to the alias, not as a column not found.
            continue
        name = node.output_name if isinstance(node, exp.Column | exp.Dot) else ""
        if not name:  # BigQuery names no other expression, a literal neither
            name = f"f{anonymous}_"
            anonymous += 1
        node.replace(exp.alias_(node.copy(), name, quoted=True))


def _format_in_zone(node: exp.Expr) -> exp.Expr:
    """``FORMAT_TIMESTAMP(f, ts, zone)`` → ``strftime(timezone(zone, ts), f)``: DuckDB's
    ``timezone(zone, TIMESTAMPTZ)`` is the civil time there, which strftime formats."""
    zone = node.args.get("zone") if isinstance(node, exp.TimeToStr) else None
    if zone is None:
        return node
    instant = node.this
    if isinstance(instant, exp.TsOrDsToTimestamp):  # sqlglot's CAST(… AS TIMESTAMP)
        instant = instant.this
    node.set(
        "this",
        exp.Anonymous(this="timezone", expressions=[zone, exp.cast(instant, "TIMESTAMPTZ")]),
    )
    node.set("zone", None)
    return node


_TYPED = frozenset(logschema.LB_PAYLOAD_STRINGS)


def _read_typed_payload(tree: exp.Expr) -> exp.Expr:
    """Read ``JSON_VALUE(json_payload.<field>)`` of access-log string fields from the
    typed column (:data:`ingest.LB_COLUMN`) where an entry has it, from the JSON
    otherwise: the same values, without parsing JSON per row.

    Only when the statement has no ``*``, which would show the extra column.
    """
    for star in tree.find_all(exp.Star):
        if not isinstance(star.parent, exp.Count):
            return tree  # SELECT *, t.*: a COUNT(*) shows no column
    for select in list(tree.find_all(exp.Select)):
        source = select.args.get("from_") or select.args.get("from")
        table = source.this if isinstance(source, exp.From) else None
        if (
            not isinstance(table, exp.Table)
            or table.name != ingest.VIEW
            or select.args.get("joins")
        ):
            continue  # the typed column is only at hand reading the view itself
        found = [
            (node, field)
            for node in select.find_all(exp.Anonymous)
            if node.find_ancestor(exp.Select) is select
            and (field := _payload_field(node)) is not None
        ]
        for node, (column, name) in found:
            lb = exp.Column(
                this=exp.to_identifier(ingest.LB_COLUMN), table=column.args.get("table")
            )
            node.replace(
                exp.Case(
                    ifs=[exp.If(this=exp.Is(this=lb, expression=exp.Null()), true=node.copy())],
                    default=exp.Anonymous(
                        this="struct_extract", expressions=[lb.copy(), exp.Literal.string(name)]
                    ),
                )
            )
        if found:
            table.set("this", exp.to_identifier(ingest.TYPED_VIEW, quoted=True))
    return tree


def _payload_field(node: exp.Expr) -> tuple[exp.Column, str] | None:
    """(json_payload column, field) if ``node`` is json_extract_string(json_extract(
    json_payload, '$."<field>"'), '$') of a typed field."""
    if not (isinstance(node, exp.Anonymous) and str(node.this).lower() == "json_extract_string"):
        return None
    inner, path = [*node.expressions, None, None][:2]
    if not (isinstance(path, exp.Literal) and path.this == "$" and _is_json_value(inner)):
        return None
    assert isinstance(inner, exp.Anonymous)
    column, key = [*inner.expressions, None, None][:2]
    if not (isinstance(column, exp.Column) and column.name == "json_payload"):
        return None
    if not isinstance(key, exp.Literal):
        return None
    text = str(key.this)
    if not (text.startswith('$."') and text.endswith('"')):
        return None
    name = text[3:-1]
    return (column, name) if name in _TYPED else None


def _map_tables(tree: exp.Expr) -> frozenset[str]:
    """Point ``…_AllLogs`` tables at the view; return the aliases they are known by."""
    aliases = {ingest.VIEW.lower()}
    for table in list(tree.find_all(exp.Table)):
        parts = table.parts
        if not parts or not parts[-1].name.lower().endswith("_alllogs"):
            continue
        alias = table.alias
        new = exp.Table(this=exp.to_identifier(ingest.VIEW, quoted=True))
        if alias:
            new.set("alias", table.args["alias"])
            aliases.add(alias.lower())
        table.replace(new)
    return frozenset(aliases)


def _path(node: exp.Expr) -> list[exp.Identifier] | None:
    """The identifiers of a dotted reference (``a.b.c.d.e``), or None if it is not one."""
    if isinstance(node, exp.Column):
        parts = [p for p in node.parts if isinstance(p, exp.Identifier)]
        return parts if len(parts) == len(node.parts) else None
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Identifier):
        head = _path(node.this)
        return None if head is None else [*head, node.expression]
    return None


def _rewrite_json_access(node: exp.Expr, aliases: frozenset[str]) -> exp.Expr:
    if not isinstance(node, exp.Column | exp.Dot):
        return node
    if isinstance(node.parent, exp.Dot) and node.parent.this is node:
        return node  # the outermost Dot of the chain is rewritten as a whole
    parts = _path(node)
    if parts is None or len(parts) < 2:
        return node
    prefix: list[exp.Identifier] = []
    if parts[0].name.lower() in aliases and len(parts) > 2:
        prefix, parts = parts[:1], parts[1:]
    names = [p.name for p in parts]
    if names[0] in JSON_COLUMNS:
        split = 1
    elif len(names) > 2 and (names[0], names[1]) in JSON_STRUCT_FIELDS:
        split = 2
    else:
        return node
    base = _column([*prefix, *parts[:split]])
    return exp.Anonymous(
        this="json_extract",
        expressions=[base, exp.Literal.string(_json_path(names[split:]))],
    )


def _column(parts: list[exp.Identifier]) -> exp.Expr:
    """A column reference from identifiers; deeper than four parts becomes Dot chains."""
    head = parts[:4]
    col: exp.Expr = exp.Column(
        this=head[-1],
        table=head[-2] if len(head) > 1 else None,
        db=head[-3] if len(head) > 2 else None,
        catalog=head[-4] if len(head) > 3 else None,
    )
    for ident in parts[4:]:
        col = exp.Dot(this=col, expression=ident)
    return col


def _json_path(keys: Iterable[str]) -> str:
    quoted = "".join('."' + k.replace('"', '\\"') + '"' for k in keys)
    return "$" + quoted


def _path_text(node: exp.Expr | None) -> str:
    if node is None:
        return "$"
    if isinstance(node, exp.JSONPath):
        text = node.sql(dialect="duckdb")
        return text[1:-1] if text.startswith("'") else text
    if isinstance(node, exp.Literal) and node.is_string:
        return str(node.this)
    return node.sql(dialect="duckdb")


def _rewrite_json_functions(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.JSONExtractScalar):
        return exp.Anonymous(
            this="json_extract_string",
            expressions=[node.this, exp.Literal.string(_path_text(node.expression))],
        )
    if isinstance(node, exp.JSONExtract) and isinstance(node.expression, exp.JSONPath):
        return exp.Anonymous(
            this="json_extract",
            expressions=[node.this, exp.Literal.string(_path_text(node.expression))],
        )
    if _is_json_value(node.this if hasattr(node, "this") else None):
        if isinstance(node, exp.String | exp.LaxString):
            return exp.Anonymous(
                this="json_extract_string", expressions=[node.this, exp.Literal.string("$")]
            )
        for kind, duck in _JSON_CASTS.items():
            if isinstance(node, kind):
                return exp.cast(node.this, duck)
    return node


def _is_json_value(node: object) -> bool:
    return isinstance(node, exp.Anonymous) and str(node.this).lower() == "json_extract"

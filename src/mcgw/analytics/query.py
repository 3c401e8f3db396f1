"""Run SQL over mcgw's logs and print the result.

``run`` accepts BigQuery SQL as written in Log Analytics (the default) or DuckDB SQL,
reads every ``*.jsonl`` below the log directory (see :mod:`mcgw.analytics.ingest`) and
answers a :class:`QueryResult`. ``format`` prints it as an aligned table, JSON rows or
CSV. ``named`` returns one of the canned queries shipped in ``queries/*.sql``.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import decimal
import hashlib
import importlib.util
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import duckdb

from mcgw.analytics import errors, ingest

Dialect = Literal["bigquery", "duckdb"]
Format = Literal["table", "json", "csv"]

DIALECTS: tuple[str, ...] = ("bigquery", "duckdb")
FORMATS: tuple[str, ...] = ("table", "json", "csv")

_LINE_RE = re.compile(r"LINE (\d+):")


JsonShape = Literal[True] | dict[str, "JsonShape"] | tuple[str, "JsonShape"] | None
"""Where a column's values hold JSON, which DuckDB hands over as its text: ``True``, the
value is JSON; a dict, those fields of a STRUCT hold JSON (``resource``'s ``labels``);
``("list", shape)``, each element of a list does; None, no JSON in it."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    """What a query answered: column names and rows of Python values."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    sql: str = ""
    """The SQL DuckDB ran (after translation from BigQuery)."""
    json: tuple[JsonShape, ...] = ()
    """Per column, where its values are JSON text (:data:`JsonShape`); empty: nowhere.
    The JSON output nests them, as Log Analytics' JSON download does, rather than
    quoting their text as a string."""


def run(
    sql: str,
    log_dir: Path,
    *,
    dialect: str = "bigquery",
    shift_to: dt.datetime | None = None,
    cache: bool = True,
    wait_s: float = ingest.LOCK_WAIT_S,
    say: Callable[[str], None] | None = None,
) -> QueryResult:
    """Run one SQL statement over the logs under ``log_dir``.

    Args:
        sql: one statement. Tables named ``…_AllLogs`` (BigQuery) or ``_AllLogs``
            (DuckDB) are the logs, with Log Analytics' columns.
        log_dir: the gateway's and the fleet's log directory.
        dialect: ``bigquery`` (translated with sqlglot) or ``duckdb`` (run as is).
        shift_to: replay option: rebase all timestamps by one delta so that the earliest
            entry appears at this instant (naive = UTC). Off by default.
        cache: keep parsed logs in ``log_dir/.mcgw-analytics.duckdb`` between runs.
        wait_s: longest wait for the cache while another query has it (then the logs
            are read into memory); a log indexer gives way at once.
        say: where to tell about a wait longer than a second (None: nowhere).

    Returns:
        The columns and rows.

    Raises:
        AnalyticsError: bad SQL (with position), unknown dialect, no logs.
    """
    if dialect not in DIALECTS:
        raise errors.AnalyticsError(f"unknown SQL dialect {dialect!r}; use one of {DIALECTS}")
    memo = _Translations(log_dir) if cache else None
    duck_sql = memo.get(dialect, sql) if memo is not None else None
    if duck_sql is None:
        duck_sql = translate(sql, dialect)
        if memo is not None:
            memo.put(dialect, sql, duck_sql)
    with ingest.opened(log_dir, cache=cache, wait_s=wait_s, say=say) as con:
        ingest.create_view(con, shift_to=shift_to)
        try:
            cur = con.execute(duck_sql)
            rows = cur.fetchall()
        except duckdb.Error as exc:
            raise _engine_error(exc, duck_sql, sql) from exc
        description = cur.description or ()
    return QueryResult(
        columns=tuple(d[0] for d in description),
        rows=tuple(tuple(r) for r in rows),
        sql=duck_sql,
        json=tuple(_json_shape(d[1]) for d in description),
    )


def _json_shape(kind: Any) -> JsonShape:
    """Where a DuckDB type (a ``DuckDBPyType``) holds JSON: see :data:`JsonShape`."""
    if str(kind) == "JSON":  # an alias of VARCHAR: its id says varchar
        return True
    if kind.id == "struct":
        fields = {name: _json_shape(child) for name, child in kind.children}
        return {name: shape for name, shape in fields.items() if shape is not None} or None
    if kind.id == "list":
        inner = _json_shape(kind.children[0][1])
        return None if inner is None else ("list", inner)
    return None


def _decode(value: Any, shape: JsonShape) -> Any:
    """``value`` with the JSON text ``shape`` names parsed into Python values."""
    if value is None or shape is None:
        return value
    if shape is True:
        return json.loads(value)
    if isinstance(shape, dict):
        return {k: _decode(v, shape.get(k)) for k, v in value.items()}
    return [_decode(v, shape[1]) for v in value]


def translate(sql: str, dialect: str = "bigquery") -> str:
    """The DuckDB SQL that runs ``sql`` over the ``_AllLogs`` view.

    Raises:
        AnalyticsError: BigQuery SQL that does not parse.
    """
    # sqlglot takes a third of a second to import: only when a statement is new.
    import sqlglot

    from mcgw.analytics import bigquery

    if dialect == "bigquery":
        return bigquery.to_duckdb(sql)
    try:
        return bigquery.rewrite(sqlglot.parse_one(sql, read="duckdb")).sql("duckdb")
    except sqlglot.errors.SqlglotError:
        return sql  # DuckDB reports the syntax error itself, with its position


class _Translations:
    """Statements translated before, kept next to the log cache (a small JSON file),
    so a query run again — a named one, a dashboard's — starts without sqlglot.

    Entries are keyed by the statement and by the translator's own source and
    sqlglot's version, so an upgrade never serves a stale translation. Any problem
    reading or writing the file only means translating again.
    """

    NAME = ingest.TRANSLATIONS_NAME
    LIMIT = 256
    """Most statements remembered (the oldest are forgotten first)."""

    def __init__(self, log_dir: Path) -> None:
        self.path = log_dir / self.NAME
        self._version = _translator_version()

    def _key(self, dialect: str, sql: str) -> str:
        return hashlib.sha256(f"{self._version}\0{dialect}\0{sql}".encode()).hexdigest()

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, dialect: str, sql: str) -> str | None:
        found = self._load().get(self._key(dialect, sql))
        return found if isinstance(found, str) else None

    def put(self, dialect: str, sql: str, duck_sql: str) -> None:
        entries = self._load()
        entries[self._key(dialect, sql)] = duck_sql
        while len(entries) > self.LIMIT:
            entries.pop(next(iter(entries)))
        with contextlib.suppress(OSError):
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.NAME, suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(entries, f)
                os.replace(tmp, self.path)  # readers see the old file or the new one
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(tmp)


def _translator_version() -> str:
    """A digest of what a translation depends on: bigquery.py, the ingest schema, and
    sqlglot's version (read from its files: importing it is what we avoid)."""
    digest = hashlib.sha256(ingest.SCHEMA_VERSION.encode())
    for module, name in (("mcgw.analytics", "bigquery.py"), ("sqlglot", "_version.py")):
        with contextlib.suppress(OSError, ModuleNotFoundError, ValueError):
            spec = importlib.util.find_spec(module)
            if spec is not None and spec.submodule_search_locations:
                folder = Path(next(iter(spec.submodule_search_locations)))
                digest.update((folder / name).read_bytes())
    return digest.hexdigest()


_NOT_FOUND_RE = re.compile(r'Referenced column "([^"]+)" not found')


def _engine_error(exc: duckdb.Error, sql: str, typed: str) -> errors.AnalyticsError:
    """DuckDB's error as the user can act on it: its headline and its hint (``Candidate
    bindings``), and a position in what they typed (``typed``) where the name it is
    about is found there; else DuckDB's position in the SQL it ran (``sql``, shown)."""
    message = str(exc)
    lines = message.splitlines()
    headline = lines[0] if lines else type(exc).__name__
    hint = "\n".join(text for text in lines[1:3] if text.startswith("Candidate bindings"))
    if headline.startswith("Catalog Error: Table with name"):
        hint = "The logs are the table whose name ends in _AllLogs: `p.global._Default._AllLogs`."
    missing = _NOT_FOUND_RE.search(headline)
    if missing and (at := _find_name(typed, missing.group(1))) is not None:
        return errors.AnalyticsError(headline, sql=typed, line=at[0], column=at[1], hint=hint)
    line = column = None
    match = _LINE_RE.search(message)
    if match:
        line = int(match.group(1))
        # DuckDB marks the position with a caret under the quoted line.
        for i, text in enumerate(lines):
            if text.startswith("LINE") and i + 1 < len(lines) and "^" in lines[i + 1]:
                column = lines[i + 1].index("^") - text.index(":") - 1
                break
    # DuckDB's position is in the SQL it ran: shown, when that is a translation.
    where = f"\n  in: {sql}" if sql != typed else ""
    return errors.AnalyticsError(
        headline + where,
        sql=sql,
        line=line,
        column=column if column is not None and column > 0 else None,
        hint=hint,
    )


def _find_name(sql: str, name: str) -> tuple[int, int] | None:
    """(line, column), 1-based, of the first whole-word ``name`` in ``sql``."""
    found = re.search(rf"(?<![\w.`\"]){re.escape(name)}(?![\w`\"])", sql)
    if found is None:
        return None
    before = sql[: found.start()]
    return before.count("\n") + 1, found.start() - (before.rfind("\n") + 1) + 1


def named(name: str) -> str:
    """Return the SQL (BigQuery dialect) of the canned query ``name``.

    Raises:
        AnalyticsError: no such query; the message lists the known ones.
    """
    text = _queries().get(name)
    if text is None:
        known = ", ".join(sorted(_queries())) or "none"
        raise errors.AnalyticsError(f"no canned query named {name!r}; known: {known}")
    return text


def describe(name: str) -> str:
    """The first sentence of the comment that opens the canned query ``name``.

    Raises:
        AnalyticsError: no such query.
    """
    comment = []
    for line in named(name).splitlines():
        if not line.startswith("--"):
            break
        comment.append(line.removeprefix("--").strip())
    text = " ".join(comment)
    head, dot, _ = text.partition(". ")
    return head + ("." if dot else "")


def names() -> tuple[str, ...]:
    """Names of the canned queries, sorted."""
    return tuple(sorted(_queries()))


def _queries() -> dict[str, str]:
    folder = resources.files("mcgw.analytics") / "queries"
    return {
        entry.name.removesuffix(".sql"): entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    }


def format(result: QueryResult, fmt: str = "table") -> str:
    """Render ``result`` as ``table`` (aligned text), ``json`` (a list of row objects,
    like Log Analytics' JSON download) or ``csv`` (with a header row).

    Raises:
        AnalyticsError: unknown format.
    """
    if fmt not in FORMATS:
        raise errors.AnalyticsError(f"unknown output format {fmt!r}; use one of {FORMATS}")
    shapes = result.json or (None,) * len(result.columns)
    if fmt == "json":
        rows = [
            {
                c: _json_value(_decode(v, shape))
                for c, v, shape in zip(result.columns, row, shapes, strict=True)
            }
            for row in result.rows
        ]
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    # As text, a JSON column is its JSON text already; JSON inside a STRUCT or a list is
    # parsed, so that the cell is JSON once, not JSON quoted inside JSON.
    nested = [None if shape is True else shape for shape in shapes]
    values = [
        tuple(_decode(v, shape) for v, shape in zip(row, nested, strict=True))
        for row in result.rows
    ]
    if fmt == "table":
        return _table(result.columns, values)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([_text(v) for v in row] for row in values)
    return buf.getvalue()


def _text(value: Any) -> str:
    """One cell as text: NULL is empty, instants are RFC 3339 in UTC, JSON stays JSON."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return str(value.astimezone(dt.UTC).isoformat()).replace("+00:00", "Z")
        return str(value.isoformat())
    if isinstance(value, dt.date | dt.time):
        return str(value.isoformat())
    if isinstance(value, dt.timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, dict | list):
        return json.dumps(_json_value(value), ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return _text(value)


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    header = list(columns)
    body = [[_text(v) for v in row] for row in rows]
    numeric = [
        all(isinstance(row[i], int | float | decimal.Decimal) or row[i] is None for row in rows)
        and bool(rows)
        for i in range(len(header))
    ]
    widths = [max([len(h), *(len(r[i]) for r in body)]) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in body)
    n = len(body)
    out.append(f"({n} row{'s' if n != 1 else ''})")
    return "\n".join(out) + "\n"

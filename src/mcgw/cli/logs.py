"""``mcgw logs``: SQL over the logs (``query``), the canned queries (``queries``), the
query cache kept current (``index``) and the last entries as compact lines (``tail``).

``mcgw logs query SQL | --named NAME [-o table|json|csv]`` runs BigQuery SQL (or DuckDB's)
over every ``*.jsonl`` below ``--log-dir``; ``mcgw logs queries`` lists the named ones
shipped with mcgw; ``mcgw logs index [--follow] DIR`` parses new lines into the query
cache (:mod:`mcgw.analytics.indexer`); ``mcgw logs tail [-n N] [--follow] [--cluster C]
[--status 5xx] …`` prints the last entries, filtered, and with ``--follow`` the new ones
as they come.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

FOLLOW_POLL_S = 0.25
"""How often ``tail --follow`` looks for new lines."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    logs = sub.add_parser("logs", help="query and tail the access and container logs")
    logs_sub = logs.add_subparsers(dest="logs_command", required=True, metavar="SUBCOMMAND")

    query = logs_sub.add_parser(
        "query", help="run SQL (BigQuery dialect accepted) or a named query over the logs"
    )
    query.add_argument(
        "sql", nargs="?", help="the query; `..._AllLogs` names the local logs (or use --named)"
    )
    query.add_argument(
        "--named", metavar="NAME", help="run a query shipped with mcgw (`mcgw logs queries`)"
    )
    _log_dir(query)
    query.add_argument(
        "--dialect",
        choices=["bigquery", "duckdb"],
        default="bigquery",
        help="SQL dialect: bigquery (default, as in Log Analytics) or duckdb (run as is)",
    )
    query.add_argument(
        "-o",
        "--output",
        choices=["table", "json", "csv"],
        default="table",
        help="table (default), json (Log Analytics' row objects) or csv",
    )
    query.add_argument(
        "--shift-to",
        type=_instant,
        metavar="TIMESTAMP",
        help="replay: shift every log time so the earliest is TIMESTAMP (ISO 8601 with offset)",
    )

    queries = logs_sub.add_parser("queries", help="list the named queries shipped with mcgw")
    queries.add_argument("--show", metavar="NAME", help="print the SQL of one query")

    # The defaults shown are the indexer's own (a light import: DuckDB loads in follow()).
    from mcgw.analytics import indexer

    index = logs_sub.add_parser(
        "index",
        help="parse new log lines into the query cache now, or (--follow) as they are written",
    )
    index.add_argument(
        "log_dir",
        nargs="?",
        type=Path,
        default=None,
        metavar="DIR",
        help="the log directory (default var/logs; or --log-dir, as query and tail take it)",
    )
    index.add_argument("--log-dir", dest="log_dir_option", type=Path, help=argparse.SUPPRESS)
    index.add_argument(
        "--follow",
        action="store_true",
        help="keep indexing new lines until SIGTERM/Ctrl-C (mcgw up and serve run this)",
    )
    index.add_argument(
        "--interval",
        type=_seconds,
        default=indexer.DEFAULT_INTERVAL_S,
        metavar="DURATION",
        help="with --follow: pause between passes once caught up "
        f"(default {indexer.DEFAULT_INTERVAL_S:g}s)",
    )
    index.add_argument(
        "--parent",
        type=int,
        default=None,
        metavar="PID",
        help="with --follow: also stop when process PID is gone",
    )
    index.add_argument(
        "--budget",
        type=_size,
        default=None,
        metavar="SIZE",
        help="with --follow: most bytes of lines one pass reads "
        f"(default {indexer.PASS_BUDGET >> 20}MiB)",
    )
    index.add_argument(
        "--nice",
        type=int,
        default=indexer.NICENESS,
        metavar="N",
        help=f"with --follow: CPU priority increment (default {indexer.NICENESS}, which also "
        "asks Linux's SCHED_IDLE: only idle CPU)",
    )

    tail = logs_sub.add_parser("tail", help="the last log entries as compact lines, filtered")
    _log_dir(tail)
    tail.add_argument(
        "-n", "--lines", type=_count, default=10, metavar="N", help="entries shown (default 10)"
    )
    tail.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new entries until Ctrl-C"
    )
    tail.add_argument(
        "--type",
        dest="kind",
        choices=["access", "container", "all"],
        default="access",
        help="the gateway's access log (default), the pods' output, or both",
    )
    tail.add_argument("--cluster", action="append", default=[], help="cluster(s), comma-separated")
    tail.add_argument("--zone", action="append", default=[], help="zone(s), comma-separated")
    tail.add_argument(
        "--status", action="append", default=[], help="status codes or classes: 503, 5xx, 4xx,200"
    )
    tail.add_argument("--route", default="", help="part of the route name")
    tail.add_argument(
        "--reason",
        action="append",
        default=[],
        help="routing reason(s), comma-separated: closest, spillover, failover, retry, no_route",
    )
    tail.add_argument("--json", action="store_true", help="print each entry as its JSON line")


def _instant(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time, e.g. 2023-11-30T13:03:00+09:00, got {text!r}"
        ) from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a count >= 0, got {text!r}")
    return value


def _seconds(text: str) -> float:
    from mcgw import logfiles

    try:
        value = logfiles.parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration > 0, e.g. 2s, got {text!r}")
    return value


def _size(text: str) -> int:
    from mcgw import logfiles

    try:
        return logfiles.parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _log_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-dir", type=Path, default=Path("var/logs"), help="where logs are (default var/logs)"
    )


def main(args: argparse.Namespace) -> int:
    """Run ``mcgw logs …``; errors are AnalyticsError (bad input) for the caller to report."""
    from mcgw.analytics import errors

    if args.logs_command == "queries":
        return _queries(args)
    if args.logs_command == "tail":
        return _tail(args)
    if args.logs_command == "index":
        return _index(args)
    from mcgw.analytics import query

    if (args.sql is None) == (args.named is None):
        raise errors.AnalyticsError("give either SQL or --named NAME (see `mcgw logs queries`)")
    sql = args.sql if args.named is None else query.named(args.named)
    result = query.run(sql, args.log_dir, dialect=args.dialect, shift_to=args.shift_to, say=_note)
    sys.stdout.write(query.format(result, args.output))
    return 0


def _note(message: str) -> None:
    print(f"mcgw: {message}", file=sys.stderr, flush=True)


def _index(args: argparse.Namespace) -> int:
    from mcgw.analytics import errors, indexer, ingest

    if args.log_dir is not None and args.log_dir_option is not None:
        raise errors.AnalyticsError("give the log directory once: DIR or --log-dir DIR")
    args.log_dir = args.log_dir or args.log_dir_option or Path("var/logs")
    if args.follow:
        indexer.follow(
            args.log_dir,
            interval_s=args.interval,
            parent=args.parent,
            niceness=args.nice,
            budget=args.budget or indexer.PASS_BUDGET,
        )
        return 0
    start = time.perf_counter()
    with ingest.opened(args.log_dir, say=_note) as con:
        row = con.execute("SELECT count(*) FROM logs").fetchone()
    lines = row[0] if row else 0
    _note(
        f"{lines:,} log entries indexed under {args.log_dir} ({time.perf_counter() - start:.1f} s)"
    )
    return 0


def _queries(args: argparse.Namespace) -> int:
    from mcgw.analytics import query

    if args.show:
        sys.stdout.write(query.named(args.show))
        return 0
    width = max(len(n) for n in query.names())
    for name in query.names():
        sys.stdout.write(f"{name.ljust(width)}  {query.describe(name)}\n")
    return 0


def _tail(args: argparse.Namespace) -> int:
    import json

    from mcgw.analytics import tail

    where = tail.Filter(
        kind=args.kind,
        cluster=tail.split_values(args.cluster),
        zone=tail.split_values(args.zone),
        status=tail.split_values(args.status),
        route=args.route,
        reason=tail.split_values(args.reason),
    )

    def show(entry: dict[str, object]) -> None:
        if args.json:
            line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
        else:
            line = tail.compact(entry)
        sys.stdout.write(line + "\n")

    entries, ends = tail.last(args.log_dir, args.lines, where)
    for entry in entries:
        show(entry)
    sys.stdout.flush()
    if not args.follow:
        return 0
    follower = tail.Follower(args.log_dir, where, ends)
    # Ctrl-C (or SIGINT from a supervisor) ends the follow, even when this process was
    # started with SIGINT ignored, as shells do for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while True:
            time.sleep(FOLLOW_POLL_S)
            for entry in follower.poll():
                show(entry)
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0

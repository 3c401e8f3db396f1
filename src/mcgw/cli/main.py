"""Entry point of the ``mcgw`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from mcgw import errors
from mcgw.analytics import errors as analytics_errors
from mcgw.cli import load as load_cli
from mcgw.config import load
from mcgw.loadtest import errors as load_errors

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _files(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        dest="paths",
        action="append",
        type=Path,
        required=required,
        metavar="PATH",
        help="manifest file or folder (repeatable); a folder may hold a Fleet",
    )


def _gateway_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bind",
        metavar="ADDRESS|CIDR",
        help="where Gateways without spec.addresses listen: one address (0.0.0.0: every "
        "interface) or a block giving each its own (default 127.0.0.0/8)",
    )
    parser.add_argument(
        "--port-map",
        action="append",
        default=[],
        metavar="PORT:LOCAL",
        help="serve listener PORT on LOCAL (0 = any free port), e.g. 80:8080 to run unprivileged",
    )
    parser.add_argument(
        "--log-dir", type=Path, default=Path("var/logs"), help="where logs go (default var/logs)"
    )
    parser.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="do not write the gateway's access log",
    )
    parser.add_argument(
        "--no-watch", dest="watch", action="store_false", help="do not reload on file changes"
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N|auto",
        help="data-plane worker processes sharing the listeners (SO_REUSEPORT), fed by one "
        "control plane; auto: one per core (default 1: the gateway runs in the main process)",
    )
    parser.add_argument(
        "--admin",
        default=None,
        metavar="HOST:PORT|off",
        help="admin server: health, JSON API, Prometheus /metrics and the live /dashboard "
        "(default 127.0.0.1:19000, or a free port if taken; off: none, and no request "
        "counting)",
    )


def _workers(text: str) -> int:
    if text == "auto":
        return os.cpu_count() or 1
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1 or auto, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcgw",
        description="A multi-cluster L7 gateway for the Kubernetes Gateway API.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run the local fleet (pods as processes) and the gateway")
    _files(up)
    _gateway_flags(up)
    _latency_flag(up)

    serve = sub.add_parser("serve", help="run the gateway against EndpointSlices in the files")
    _files(serve)
    _gateway_flags(serve)

    status = sub.add_parser("status", help="resources with their conditions, and backends")
    _files(status)
    status.add_argument(
        "-o",
        "--output",
        choices=["text", "yaml", "json"],
        default="text",
        help="text (default): conditions and backends; yaml/json: each object's status "
        "as Kubernetes shows it",
    )

    feats = sub.add_parser(
        "features", help="the Gateway API conformance features mcgw supports, one a line"
    )
    feats.add_argument(
        "--all", action="store_true", help="also list the features left out, with why"
    )

    translate = sub.add_parser("translate", help="print the compiled route table (the IR)")
    _files(translate)
    translate.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml")

    load_cli.add_parser(sub)

    logs = sub.add_parser("logs", help="query the access and container logs")
    logs_sub = logs.add_subparsers(dest="logs_command", required=True, metavar="SUBCOMMAND")
    query = logs_sub.add_parser("query", help="run SQL (BigQuery dialect accepted) over the logs")
    query.add_argument("sql", help="the query; `..._AllLogs` names the local logs")
    query.add_argument("--log-dir", type=Path, default=Path("var/logs"))
    query.add_argument("--dialect", default="bigquery", help="SQL dialect (default bigquery)")
    query.add_argument("-o", "--output", choices=["table", "json", "csv"], default="table")
    query.add_argument(
        "--shift-to",
        metavar="TIMESTAMP",
        help="replay: shift every log time so the earliest is TIMESTAMP (ISO 8601 with offset)",
    )

    demo = sub.add_parser("demo", help="the SEED.md scenario, end to end")
    _files(demo, required=False)
    demo.add_argument(
        "--duration", default="20s", help="load test length (SEED.md used 60s; default 20s)"
    )
    demo.add_argument("--vus", type=int, default=30)
    demo.add_argument("--log-dir", type=Path, default=None, help="default var/demo-<time>/logs")
    demo.add_argument(
        "--simulate-latency",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="delay each pod's traffic by the round trip between Tokyo and its region, so "
        "latencies look like SEED.md's (default: on)",
    )
    demo.add_argument(
        "--admin",
        default=None,
        metavar="HOST:PORT|off",
        help="where the demo's admin server and live dashboard listen (default "
        "127.0.0.1:19000, or a free port if taken)",
    )
    demo.add_argument(
        "--keep",
        action="store_true",
        help="after the scenario, keep the gateway and its dashboard up until Ctrl-C",
    )
    return parser


def _latency_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--simulate-latency",
        action="store_true",
        help="delay each pod's traffic by the round trip between the gateway's location and "
        "its region (as the Fleet's spec.network.simulateLatency does)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(parser, args)
    except load.ConfigError as exc:
        print(f"error: invalid configuration\n{exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, load_errors.LoadError, analytics_errors.AnalyticsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except errors.McgwError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    # Imports are local so that `mcgw logs query` does not pay for the data plane, etc.
    if args.command in ("up", "serve"):
        from mcgw.cli import run

        options = run.RunOptions(
            paths=tuple(args.paths),
            address_pool=run.parse_address_pool(args.bind),
            port_map=run.parse_port_map(args.port_map),
            log_dir=args.log_dir,
            access_log=args.access_log,
            watch=args.watch,
            with_fleet=args.command == "up",
            simulate_latency=getattr(args, "simulate_latency", False),
            admin=run.parse_admin(args.admin),
            admin_fallback=args.admin is None,
            workers=args.workers,
        )
        run.run(lambda: run.serve_forever(options))
        return EXIT_OK
    if args.command == "translate":
        from mcgw.cli import inspect

        sys.stdout.write(inspect.translate(args.paths, args.output))
        return EXIT_OK
    if args.command == "status":
        from mcgw.cli import inspect

        if args.output == "text":
            sys.stdout.write(inspect.status_report(args.paths))
        else:
            sys.stdout.write(inspect.status_objects(args.paths, args.output))
        return EXIT_OK
    if args.command == "features":
        from mcgw.cli import inspect

        sys.stdout.write(inspect.features_report(show_all=args.all))
        return EXIT_OK
    if args.command == "load":
        return load_cli.main(args)
    if args.command == "logs":
        from mcgw.analytics import query

        shift = datetime.fromisoformat(args.shift_to) if args.shift_to else None
        result = query.run(args.sql, args.log_dir, dialect=args.dialect, shift_to=shift)
        sys.stdout.write(query.format(result, args.output))
        return EXIT_OK
    if args.command == "demo":
        from mcgw.cli import demo

        return demo.main(args)
    parser.error(f"unknown command {args.command}")
    return EXIT_BAD_INPUT  # pragma: no cover - parser.error exits


if __name__ == "__main__":
    sys.exit(main())

"""Entry point of the ``mcgw`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mcgw import errors, logfiles
from mcgw.analytics import errors as analytics_errors
from mcgw.cli import load as load_cli
from mcgw.cli import logs as logs_cli
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
    _access_log_flags(parser)


def _access_log_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--access-log-max-bytes",
        type=logfiles.parse_size,
        default=logfiles.DEFAULT_MAX_BYTES,
        metavar="SIZE",
        help="start a new access log file past this size (e.g. 64MiB; default 256MiB)",
    )
    parser.add_argument(
        "--access-log-keep",
        type=int,
        default=logfiles.DEFAULT_KEEP_FILES,
        metavar="N",
        help="keep at most N access log files, removing the oldest (default 0: all)",
    )
    parser.add_argument(
        "--access-log-max-age",
        type=logfiles.parse_age,
        default=logfiles.DEFAULT_MAX_AGE_S,
        metavar="AGE",
        help="remove access log files older than AGE (e.g. 12h, 7d; 0: never; default 30d, "
        "Cloud Logging's retention)",
    )


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

    logs_cli.add_parser(sub)

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
    except (ValueError, load_errors.LoadError, analytics_errors.AnalyticsError) as exc:
        if _config_error(exc):
            print(f"error: invalid configuration\n{exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except errors.McgwError as exc:
        if _config_error(exc):
            print(f"error: invalid configuration\n{exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _config_error(exc: BaseException) -> bool:
    """Whether ``exc`` is invalid manifests. mcgw.config.load (pydantic, a second to
    import) is looked up, not imported: commands that never read manifests, like
    ``mcgw logs``, start without it."""
    load = sys.modules.get("mcgw.config.load")
    return load is not None and isinstance(exc, load.ConfigError)


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
            access_log_retention=logfiles.Retention(
                max_bytes=args.access_log_max_bytes,
                keep_files=args.access_log_keep,
                max_age_s=args.access_log_max_age,
            ),
            watch=args.watch,
            with_fleet=args.command == "up",
            simulate_latency=getattr(args, "simulate_latency", False),
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
        return logs_cli.main(args)
    if args.command == "demo":
        from mcgw.cli import demo

        return demo.main(args)
    parser.error(f"unknown command {args.command}")
    return EXIT_BAD_INPUT  # pragma: no cover - parser.error exits


if __name__ == "__main__":
    sys.exit(main())

"""Entry point of the ``mcgw`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
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
EXIT_BROKEN_PIPE = 141
"""What a shell reports for a command ended by SIGPIPE (128 + 13), as ``tail`` in
``tail | head`` is."""


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
        "--no-log-index",
        dest="log_index",
        action="store_false",
        help="do not parse logs for `mcgw logs query` while they are written (the first "
        "query then parses them all)",
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
    parser.add_argument(
        "--trusted-peer",
        dest="trusted_peers",
        action="append",
        default=[],
        metavar="CIDR",
        help="a proxy in front of the gateway (repeatable): its X-Forwarded-For is appended "
        "to, its X-Forwarded-Proto/-Host and entry-region header kept; from other peers "
        "they are replaced (default: no peer is trusted)",
    )
    parser.add_argument(
        "--entry-region-header",
        default="",
        metavar="NAME",
        help="request header naming the region a request entered at, e.g. "
        "x-mcgw-entry-region (honoured from trusted peers only)",
    )
    parser.add_argument(
        "--measure-rtt",
        action="store_true",
        help="rank regions by round trips measured to their endpoints (every 10 s) instead "
        "of estimates or the Fleet's latencies",
    )
    parser.add_argument(
        "--debug-headers",
        action="store_true",
        help="add x-mcgw-* response headers: route, cluster, endpoint, reason, entry "
        "region, region ranking and what the balancer saw",
    )
    _access_log_flags(parser)
    _client_limit_flags(parser)


def parse_rate(text: str) -> int:
    """Parse a byte rate: ``1024``, ``1KiB/s``, ``64KB/s`` → bytes per second.

    Raises:
        ValueError: not a rate.
    """
    size = text.strip()
    try:
        return logfiles.parse_size(size[:-2] if size.lower().endswith("/s") else size)
    except ValueError:
        raise ValueError(f"{text!r} is not a rate (e.g. 1KiB/s, 512)") from None


def _count(text: str) -> int:
    number = int(text) if text.strip().isdigit() else 0
    if number < 1:
        raise ValueError(f"{text!r}: expected a positive count")
    return number


def _timeout(text: str) -> float:
    seconds = logfiles.parse_age(text)
    if seconds <= 0:
        raise ValueError(f"{text!r}: expected a duration above zero (e.g. 10s, 2m)")
    return seconds


_CLIENT_LIMITS = (
    # flag, ProxySettings field, parse, metavar, help ("%s": the default)
    ("--header-timeout", "header_read_timeout_s", _timeout, "AGE",
     "time a client has to send a whole request head (408 beyond; default %ss)"),
    ("--body-timeout", "body_timeout_s", _timeout, "AGE",
     "grace a request body has before --min-body-rate applies (default %ss)"),
    ("--min-body-rate", "min_body_rate_bps", parse_rate, "RATE",
     "least average request body rate past --body-timeout, e.g. 1KiB/s (408 below; "
     "0: none; default %s bytes/s)"),
    ("--idle-timeout", "idle_timeout_s", _timeout, "AGE",
     "how long an idle keep-alive client connection stays open (default %ss)"),
    ("--max-connections", "max_connections_per_listener", _count, "N",
     "open client connections per listener; more are answered 503 (default %s)"),
    ("--max-pipelined", "max_pipelined_requests", _count, "N",
     "requests read ahead on one connection while one is proxied (default %s)"),
)  # fmt: skip
"""The slow and hostile client limits (README: Hardening)."""


def _client_limit_flags(parser: argparse.ArgumentParser) -> None:
    from mcgw.dataplane import settings  # small, and the defaults live there

    defaults = settings.ProxySettings()
    for flag, name, parse, metavar, help in _CLIENT_LIMITS:
        parser.add_argument(
            flag, dest=name, type=_argument_type(parse), default=None, metavar=metavar,
            help=help % (getattr(defaults, name),),
        )  # fmt: skip


def _argument_type(parse: Callable[[str], float]) -> Callable[[str], float]:
    """``parse`` with its ValueError's message shown by argparse (not "invalid value")."""

    def checked(text: str) -> float:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return checked


def client_limits(args: argparse.Namespace) -> dict[str, float]:
    """The ProxySettings fields the client limit flags set (the others: defaults)."""
    return {
        name: getattr(args, name)
        for _, name, _, _, _ in _CLIENT_LIMITS
        if getattr(args, name) is not None
    }


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
    status.add_argument(
        "--probe",
        action="store_true",
        help="send every endpoint its health check once (pods must be running, e.g. under "
        "`mcgw up`): warns of health-check paths answering 404",
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

    explain = sub.add_parser(
        "explain",
        help="which route, backend, region and endpoint a request would get, and why",
    )
    _files(explain)
    explain.add_argument("url", help="the request's URL, e.g. http://store.example.com/west")
    explain.add_argument("-X", "--method", default="GET")
    explain.add_argument(
        "-H",
        "--header",
        dest="headers",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header (repeatable)",
    )
    explain.add_argument(
        "--port", type=int, default=None, help="listener port (default: the URL's, else 80)"
    )
    explain.add_argument(
        "--entry-region", default="", help="where the request enters (default: the gateway's)"
    )
    explain.add_argument(
        "--client-ip", default="", help="the client's address (placed by Fleet clientRegions)"
    )
    explain.add_argument(
        "--down",
        action="append",
        default=[],
        metavar="CLUSTER|ZONE|REGION|ADDR:PORT",
        help="treat these endpoints as unhealthy (repeatable)",
    )
    explain.add_argument(
        "--rate",
        type=int,
        default=0,
        metavar="N",
        help="offer N requests in one second and print the split (capacity waterfall)",
    )

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
        code = _dispatch(parser, args)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return code
    except BrokenPipeError:
        # The reader went away (`mcgw logs tail | head`): stop quietly, as coreutils do.
        # stdout goes to /dev/null so that Python's own flush at exit does not fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
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
            admin=run.parse_admin(args.admin),
            admin_fallback=args.admin is None,
            trusted_peers=run.parse_trusted_peers(args.trusted_peers),
            entry_region_header=args.entry_region_header,
            debug_headers=args.debug_headers,
            measure_rtt=args.measure_rtt,
            log_index=args.log_index,
            workers=args.workers,
            client_limits=client_limits(args),
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
            sys.stdout.write(inspect.status_report(args.paths, probe=args.probe))
        else:
            sys.stdout.write(inspect.status_objects(args.paths, args.output))
        return EXIT_OK
    if args.command == "explain":
        from mcgw.cli import explain

        sys.stdout.write(explain.explain(args.paths, explain.parse_request(args)))
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

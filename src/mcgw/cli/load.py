"""``mcgw load``: k6's ``run`` command line over mcgw.loadtest.

``mcgw load [flags] URL|SCRIPT`` — a URL runs the plain loop (request, sleep); a ``.js``
file is a k6 script, a ``.py`` file a Python scenario. Flags are k6's spelling and win
over the script's ``options``. Exit codes: 0, 99 when a threshold failed (as k6), 108
when the script called ``exec.test.abort()`` (as k6), the CLI's bad-input code for
unusable options or scripts.
"""

from __future__ import annotations

import argparse
import sys

from mcgw.loadtest import options as load_options

EXIT_THRESHOLDS_FAILED = 99
"""k6's exit code when thresholds have been crossed."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("load", help="k6-style load test of a URL or a k6 script")
    p.add_argument(
        "url", metavar="URL|SCRIPT", help="http://… requested every iteration, or a .js/.py script"
    )
    p.add_argument("-u", "--vus", type=int, help="virtual users (default 1)")
    p.add_argument("-d", "--duration", help="e.g. 30s, 1m30s; VUs loop until it ends")
    p.add_argument("-i", "--iterations", type=int, help="total iterations shared by VUs")
    p.add_argument(
        "-s",
        "--stage",
        action="append",
        default=[],
        metavar="DURATION:TARGET",
        help="ramp VUs, e.g. --stage 30s:10 --stage 1m:10 (ramping-vus)",
    )
    p.add_argument("--rps", type=float, help="cap on requests per second over all VUs")
    p.add_argument("--summary-trend-stats", help="e.g. avg,min,med,max,p(90),p(95),p(99.9)")
    p.add_argument(
        "-o",
        "--out",
        action="append",
        default=[],
        metavar="json=FILE|html=FILE",
        help="write every sample as k6 NDJSON (json=FILE) or an HTML report (html=FILE)",
    )
    p.add_argument("--summary-export", metavar="FILE", help="write the summary as JSON")
    p.add_argument(
        "--report",
        metavar="FILE",
        help="write a self-contained HTML report (latency over time, clusters); = --out html=",
    )
    p.add_argument(
        "--insecure-skip-tls-verify",
        action="store_true",
        help="https: do not verify the server's certificate (k6's insecureSkipTLSVerify)",
    )
    p.add_argument(
        "--tag", action="append", default=[], metavar="NAME=VALUE", help="tag all samples"
    )
    p.add_argument("--throw", action="store_true", help="failed requests throw in the script")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE", help="__ENV")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the load (default 1)")
    p.add_argument("--sleep", default="1s", help="URL mode: pause after each request (default 1s)")
    p.add_argument("-X", "--method", default="GET", help="URL mode: the method")
    p.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="NAME: VALUE",
        help="URL mode: add a header",
    )
    p.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME=IP:PORT",
        help="k6's hosts option: send requests for NAME to IP:PORT (keeps the Host header)",
    )
    p.add_argument("--timeout", default="60s", help="per request (default 60s)")
    p.add_argument(
        "--max-redirects", type=int, help="redirects a script's request follows (default 10)"
    )
    p.add_argument(
        "--breakdown", action="store_true", help="count responses per backend cluster and zone"
    )


def _pairs(items: list[str], flag: str, sep: str = "=") -> tuple[tuple[str, str], ...]:
    out = []
    for item in items:
        name, found, value = item.partition(sep)
        if not found or not name.strip():
            raise ValueError(f"{flag} {item!r}: expected NAME{sep}VALUE")
        out.append((name.strip(), value.strip()))
    return tuple(out)


def options_from_args(args: argparse.Namespace) -> tuple[load_options.LoadOptions, frozenset[str]]:
    """The options the flags give, and which of them were given (they beat the script's)."""
    given = set()
    is_script = not args.url.startswith(("http://", "https://"))
    kwargs: dict[str, object] = {
        "url": "" if is_script else args.url,
        "script": args.url if is_script else None,
        "sleep_s": load_options.parse_duration(args.sleep),
        "method": args.method.upper(),
        "headers": _pairs(args.header, "--header", ":"),
        "host_map": _pairs(args.host, "--host"),
        "timeout_s": load_options.parse_duration(args.timeout),
        "breakdown": args.breakdown,
        "tags": _pairs(args.tag, "--tag"),
        "env": _pairs(args.env, "-e"),
        "throw": args.throw,
        "workers": args.workers,
        "insecure_skip_tls_verify": args.insecure_skip_tls_verify,
    }
    if args.vus is not None:
        kwargs["vus"] = args.vus
        given.add("vus")
    if args.duration:
        kwargs["duration_s"] = load_options.parse_duration(args.duration)
        given.add("duration_s")
    if args.iterations is not None:
        kwargs["iterations"] = args.iterations
        given.add("iterations")
    if args.stage:
        kwargs["stages"] = tuple(load_options.parse_stage(s) for s in args.stage)
        given.add("stages")
    if args.rps is not None:
        kwargs["rps"] = args.rps
        given.add("rps")
    if args.summary_trend_stats:
        kwargs["summary_trend_stats"] = tuple(
            s.strip() for s in args.summary_trend_stats.split(",") if s.strip()
        )
        given.add("summary_trend_stats")
    if args.max_redirects is not None:
        kwargs["max_redirects"] = args.max_redirects
        given.add("max_redirects")
    if args.throw:
        given.add("throw")
    if args.insecure_skip_tls_verify:
        given.add("insecure_skip_tls_verify")
    for out in args.out:
        kind, _, path = out.partition("=")
        if kind == "json" and path:
            kwargs["out_json"] = path
        elif kind != "html" or not path:
            raise ValueError(f"--out {out!r}: supported are json=FILE and html=FILE")
    return load_options.LoadOptions(**kwargs), frozenset(given)  # type: ignore[arg-type]


def main(args: argparse.Namespace) -> int:
    from mcgw.loadtest import output, report, runner, script, workers

    opts, given = options_from_args(args)
    program = None
    if opts.script:
        program = script.load(opts.script, dict(opts.env))
        opts = load_options.with_script_options(opts, program.options, given)

    def progress(p: runner.Progress) -> None:
        print(f"\r{report.progress_line(p)}", end="", file=sys.stderr, flush=True)

    if opts.workers > 1:
        summary = workers.run(opts, progress)
    else:
        summary = runner.run_sync(opts, progress, program)
    print(file=sys.stderr)
    text = report.render(summary, opts)
    custom = None
    if program is not None:
        data = output.summary_data(summary, opts.summary_trend_stats)
        custom = program.handle_summary(data, text)
    if custom is None:
        sys.stdout.write(text)
    else:
        # k6: handleSummary replaces the end-of-test summary; its keys say where each
        # text goes (stdout, stderr, or a file path).
        for dest, content in custom.items():
            if dest == "stdout":
                sys.stdout.write(content)
            elif dest == "stderr":
                sys.stderr.write(content)
            else:
                with open(dest, "w", encoding="utf-8") as f:
                    f.write(content)
    if args.summary_export:
        output.write_summary(args.summary_export, summary)
    html_paths = [path for kind, _, path in (o.partition("=") for o in args.out) if kind == "html"]
    if args.report:
        html_paths.append(args.report)
    for path in html_paths:
        with open(path, "w", encoding="utf-8") as f:
            f.write(output.html_report(summary, text))
    if summary.abort_code:  # exec.test.abort(): k6's 108, whatever the thresholds say
        return summary.abort_code
    return 0 if summary.thresholds_ok else EXIT_THRESHOLDS_FAILED

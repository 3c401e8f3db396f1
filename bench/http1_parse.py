#!/usr/bin/env python3
"""Micro-benchmark of the strict HTTP/1.1 request parser, llhttp (httptools) alongside.

Both parsers are fed the same bytes over and over on one keep-alive connection, with
callbacks that do nothing, so what is measured is the parse itself (CPU time, µs per
request, the best of several rounds: the machine may be shared). Shapes:

    get          a minimal GET (request line and Host)
    get6         a GET with six browser-like headers
    get20        a GET with twenty headers
    post         a POST with Content-Length and a 64-byte body
    chunked      a POST with a chunked body of two chunks
    pipelined4   four minimal GETs in one read (per request)
    split        a minimal GET arriving in two reads (mid-header)

``--compare OLD.py`` also times another copy of the parser module (say, the version
before a change: ``git show main:src/mcgw/dataplane/http1.py > /tmp/old.py``), in the
same run, so the machine's noise touches both alike.

Usage: python bench/http1_parse.py [--seconds 0.3] [--rounds 3] [--only get,get6]
                                   [--compare OLD.py]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable
from types import ModuleType

import httptools

from mcgw.dataplane import http1

HOST = b"Host: 127.0.0.1:18080\r\n"
BROWSER = (
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-GB,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
)
GET = b"GET / HTTP/1.1\r\n" + HOST + b"\r\n"
SHAPES: dict[str, tuple[list[bytes], int]] = {
    "get": ([GET], 1),
    "get6": ([b"GET /api/items?page=2&sort=name HTTP/1.1\r\n" + HOST + BROWSER + b"\r\n"], 1),
    "get20": (
        [
            b"GET /static/app.js HTTP/1.1\r\n"
            + HOST
            + BROWSER
            + b"".join(b"X-Extra-%d: value-%d; some=thing\r\n" % (i, i) for i in range(14))
            + b"\r\n"
        ],
        1,
    ),
    "post": (
        [
            b"POST /submit HTTP/1.1\r\n"
            + HOST
            + b"Content-Type: application/json\r\nContent-Length: 64\r\n\r\n"
            + b"x" * 64
        ],
        1,
    ),
    "chunked": (
        [
            b"POST /upload HTTP/1.1\r\n"
            + HOST
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + b"20\r\n"
            + b"a" * 32
            + b"\r\n10;ext=1\r\n"
            + b"b" * 16
            + b"\r\n0\r\n\r\n"
        ],
        1,
    ),
    "pipelined4": ([GET * 4], 4),
    "split": ([GET[:25], GET[25:]], 1),
}


class Sink:
    """Callbacks that do nothing (both parsers call the same names)."""

    def on_message_begin(self) -> None:
        pass

    def on_url(self, url: bytes) -> None:
        pass

    def on_header(self, name: bytes, value: bytes) -> None:
        pass

    def on_headers_complete(self) -> None:
        pass

    def on_body(self, body: bytes) -> None:
        pass

    def on_message_complete(self) -> None:
        pass


def strict_feeder(module: ModuleType = http1) -> Callable[[], Callable[[bytes], None]]:
    def make() -> Callable[[bytes], None]:
        parser = module.RequestParser(Sink(), max_target=8192, max_fields=70000)
        return parser.feed_data  # type: ignore[no-any-return]

    return make


def load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("http1_compared", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def llhttp_feeder() -> Callable[[bytes], None]:
    return httptools.HttpRequestParser(Sink()).feed_data  # type: ignore[no-any-return]


def per_request(
    make: Callable[[], Callable[[bytes], None]], reads: list[bytes], per: int, seconds: float
) -> float:
    """µs of CPU per request, feeding ``reads`` in a loop on one parser."""
    feed = make()
    loops = 1
    while True:  # calibrate: a batch of about 10 ms
        t0 = time.process_time()
        for _ in range(loops):
            for data in reads:
                feed(data)
        took = time.process_time() - t0
        if took > 0.01:
            break
        loops *= 4
    batches = max(1, int(seconds / took))
    best = took
    for _ in range(batches):
        t0 = time.process_time()
        for _ in range(loops):
            for data in reads:
                feed(data)
        best = min(best, time.process_time() - t0)
    return best / loops / per * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=0.3, help="per shape, parser and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated shapes")
    ap.add_argument("--compare", default="", help="another http1.py to time alongside")
    args = ap.parse_args()
    only = [s for s in args.only.split(",") if s] or list(SHAPES)
    feeders = {"strict": strict_feeder()}
    if args.compare:
        feeders["compared"] = strict_feeder(load(args.compare))
    feeders["llhttp"] = llhttp_feeder
    print(f"{'shape':<12}" + "".join(f"{name + ' µs':>13}" for name in feeders) + "  strict/llhttp")
    for shape in only:
        reads, per = SHAPES[shape]
        best = dict.fromkeys(feeders, float("inf"))
        for _ in range(args.rounds):  # alternated, so that noise touches all alike
            for name, make in feeders.items():
                best[name] = min(best[name], per_request(make, reads, per, args.seconds))
        cells = "".join(f"{best[name]:>13.2f}" for name in feeders)
        print(f"{shape:<12}{cells}  {best['strict'] / best['llhttp']:>13.1f}")


if __name__ == "__main__":
    main()

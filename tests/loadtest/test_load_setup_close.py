"""setup() and teardown() run on VUs of their own: their HTTP connections are closed when
the function returns, as the scenario VUs' are at the end of their scenario (not left open
until the process ends)."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import time
from collections.abc import Iterator

import loadtest_threaded
import pytest

from mcgw.loadtest import metrics, options, report, runner, script, workers

SETTLE_S = 0.05
"""How long the server lets closes that are on their way arrive before it counts."""


class CountingServer:
    """Counts the connections open right now; ``/open`` answers that count (after
    :data:`SETTLE_S`) and remembers it, anything else answers 200."""

    def __init__(self) -> None:
        self.open = 0
        self.opened = 0
        self.counted: list[int] = []
        """What each ``/open`` request answered (its own connection included)."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.opened += 1
        try:
            while (head := await loadtest_threaded.read_head(reader)) is not None:
                target = head.split(b"\r\n", 1)[0].split(b" ")[1]
                body = b"ok"
                if target == b"/open":
                    await asyncio.sleep(SETTLE_S)
                    self.counted.append(self.open)
                    body = str(self.open).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        finally:
            self.open -= 1
            writer.close()


@contextlib.contextmanager
def serving() -> Iterator[tuple[CountingServer, int]]:
    server = CountingServer()
    with loadtest_threaded.handling(server.handle) as port:
        yield server, port


JS = """\
import http from 'k6/http';
export const options = { iterations: 1 };
const B = 'BASE';
export function setup() { http.get(`${B}/setup`); return { n: 1 }; }
export default function () { http.get(`${B}/`); }
export function teardown(data) { http.get(`${B}/open`); }
"""

PY = """\
options = {"iterations": 1}
B = "BASE"

async def setup(vu):
    await vu.http.get(f"{B}/setup")
    return {"n": 1}

async def default(vu):
    await vu.http.get(f"{B}/")

async def teardown(vu, data):
    await vu.http.get(f"{B}/open")
"""


def _run(
    path: pathlib.Path,
    text: str,
    port: int,
    n_workers: int = 1,
    progress: runner.ProgressCallback | None = None,
) -> metrics.Summary:
    """Run the script ``text`` (its BASE pointing at ``port``) with one VU, as the CLI
    would: in this process, or over ``n_workers`` worker processes (``--workers``)."""
    path.write_text(text.replace("BASE", f"http://127.0.0.1:{port}"))
    program = script.load(str(path), {})
    opts = options.with_script_options(
        options.LoadOptions(url="", script=str(path), vus=1, timeout_s=2.0, workers=n_workers),
        program.options,
        frozenset({"vus", "timeout_s", "workers"}),
    )
    if n_workers > 1:
        return workers.run(opts, progress)
    return runner.run_sync(opts, progress, program)


@pytest.mark.parametrize(("name", "text"), [("close.js", JS), ("close.py", PY)])
def test_setup_and_teardown_close_their_connections(
    tmp_path: pathlib.Path, name: str, text: str
) -> None:
    with serving() as (server, port):
        _run(tmp_path / name, text, port)
        # setup's, the scenario VU's and teardown's own connection: three in all.
        assert server.opened == 3
        # When teardown asks, setup's and the VU's connections are closed: only its own is open.
        assert server.counted == [1]
        # And teardown's own is closed once the run is over.
        deadline = time.monotonic() + 2.0
        while server.open and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.open == 0


@pytest.mark.parametrize("n_workers", [1, 2], ids=["one-process", "workers"])
@pytest.mark.parametrize(("name", "text"), [("count.js", JS), ("count.py", PY)])
def test_setup_and_teardown_requests_count_in_the_summary(
    tmp_path: pathlib.Path, name: str, text: str, n_workers: int
) -> None:
    # As k6's end-of-test summary, taken after teardown: setup's, the iteration's and
    # teardown's requests, three; with --workers too (setup and teardown run in the
    # parent, the iteration in a worker process).
    with serving() as (_, port):
        summary = _run(tmp_path / name, text, port, n_workers)
    counts = {m.name: m for m in summary.metrics}
    assert counts["http_reqs"].get("count") == 3
    assert counts["iterations"].get("count") == 1


SLOW_JS = """\
import http from 'k6/http';
import { sleep } from 'k6';
export const options = { iterations: 1 };
const B = 'BASE';
export function setup() { sleep(0.5); return {}; }
export default function () { http.get(`${B}/`); }
export function teardown(data) { sleep(0.5); }
"""

SLOW_PY = """\
options = {"iterations": 1}
B = "BASE"

async def setup(vu):
    await vu.sleep(0.5)
    return {}

async def default(vu):
    await vu.http.get(f"{B}/")

async def teardown(vu, data):
    await vu.sleep(0.5)
"""


@pytest.mark.parametrize("n_workers", [1, 2], ids=["one-process", "workers"])
@pytest.mark.parametrize(("name", "text"), [("slow.js", SLOW_JS), ("slow.py", SLOW_PY)])
def test_rates_divide_by_a_duration_that_includes_setup_and_teardown(
    tmp_path: pathlib.Path, name: str, text: str, n_workers: int
) -> None:
    # k6's test run duration runs from before setup() to after teardown(): one request
    # in a run whose setup and teardown sleep 0.5 s each is at most 1 request/s. (The
    # scenario alone takes milliseconds: hundreds a second if its time were the divisor.)
    with serving() as (_, port):
        summary = _run(tmp_path / name, text, port, n_workers)
    reqs = {m.name: m for m in summary.metrics}["http_reqs"]
    assert reqs.get("count") == 1
    assert 0.3 < reqs.get("rate") <= 1.0


@pytest.mark.parametrize("n_workers", [1, 2], ids=["one-process", "workers"])
@pytest.mark.parametrize(("name", "text"), [("slow.js", SLOW_JS), ("slow.py", SLOW_PY)])
def test_the_running_line_counts_setup_in_as_k6s_does(
    tmp_path: pathlib.Path, name: str, text: str, n_workers: int
) -> None:
    # k6's "running (…)" elapsed time starts before setup(); a scenario's bar counts
    # from the scenario's start. setup() sleeps 0.5 s; the one iteration takes ms.
    seen: list[runner.Progress] = []
    with serving() as (_, port):
        _run(tmp_path / name, text, port, n_workers, seen.append)
    assert seen, "no progress reported"
    last = seen[-1]
    assert last.test_elapsed_s is not None
    assert last.test_elapsed_s >= 0.5
    assert last.test_elapsed_s - last.elapsed_s >= 0.45
    seconds = float(report.progress_line(last).split("(")[1].split(")")[0].rsplit("m", 1)[1][:-1])
    assert seconds == pytest.approx(last.test_elapsed_s, abs=0.15)

"""The dashboard in a real headless Chromium: it loads clean and its numbers follow traffic.

Debian's chromium is driven by the Playwright library (never Playwright's own browser
builds); ``make test`` installs chromium when it is missing. The gateway, its admin
server and three upstreams run on a uvloop loop in a background thread, since
Playwright's sync API needs the main thread without a running loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import admin_kit
import pytest
import uvloop

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


class Background:
    """An :func:`admin_kit.stack` running on its own loop in a daemon thread."""

    def __init__(self, build: admin_kit.Table = admin_kit.two_clusters) -> None:
        self.build = build
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._cm: Any = None
        self.stack: admin_kit.Stack | None = None

    def __enter__(self) -> admin_kit.Stack:
        self.thread.start()
        self._cm = admin_kit.stack(build=self.build)
        self.stack = self._call(self._cm.__aenter__())
        return self.stack

    def __exit__(self, *exc: object) -> None:
        try:
            if self._cm is not None:
                self._call(self._cm.__aexit__(None, None, None))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)


def _send(address: tuple[str, int], path: str, count: int) -> None:
    conn = http.client.HTTPConnection(*address, timeout=5)
    try:
        for _ in range(count):
            conn.request("GET", path, headers={"Host": "store.example.com"})
            conn.getresponse().read()
    finally:
        conn.close()


@contextlib.contextmanager
def _browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: the dashboard test needs Debian's chromium. "
            "`make test` installs it (its `browser` step runs `apt-get install -y chromium`); "
            "or run `make browser` once."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def _text(page: Any, selector: str) -> str:
    return str(page.locator(selector).first.text_content() or "").strip()


def test_dashboard_shows_live_traffic_without_console_errors() -> None:
    with Background() as s, _browser() as browser:
        page = browser.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        host, port = s.admin.address
        page.goto(f"http://{host}:{port}/dashboard")
        page.wait_for_function("document.getElementById('conn').textContent === 'live'")
        assert _text(page, "#total-requests") == "0"
        page.wait_for_function("document.querySelectorAll('#routes tbody tr').length === 3")
        assert page.locator("#endpoints .dot.up").count() == 3

        _send(s.address, "/west", 7)
        _send(s.address, "/east", 4)
        _send(s.address, "/fail", 2)
        # The page polls every second: no reload, the numbers catch up.
        page.wait_for_function(
            "document.getElementById('total-requests').textContent === '13'", timeout=10_000
        )
        assert _text(page, "#total-errors") == "2"
        west = '#clusters tr[data-zone="gke-west-1/us-west1-a"] td.requests'
        east = '#clusters tr[data-zone="gke-east-1/us-east1-b"] td.requests'
        assert _text(page, west) == "7"
        assert _text(page, east) == "6"
        assert _text(page, '#clusters tr[data-zone="gke-east-1/us-east1-b"] td.errors') == "2"
        # Once samples cover the traffic, the stacked chart has an area per zone, one
        # each. (A sample may fall between the /west and the /east requests: then the
        # east area comes with the next one, a second later.)
        for zone in ("gke-west-1/us-west1-a", "gke-east-1/us-east1-b"):
            area = f'#chart-rps path[data-zone="{zone}"]'
            page.wait_for_selector(area, state="attached", timeout=5_000)
            assert page.locator(area).count() == 1

        _send(s.address, "/west", 5)
        page.wait_for_function(
            """document.querySelector('#clusters tr[data-zone="gke-west-1/us-west1-a"]'
               + ' td.requests').textContent === '12'""",
            timeout=10_000,
        )
        assert _text(page, "#total-requests") == "18"
        # The route table's counts follow too (refreshed every third poll).
        page.wait_for_function(
            """[...document.querySelectorAll('#routes tbody tr')].some(
                 r => r.textContent.includes('to-west') && r.cells[5].textContent === '12')""",
            timeout=10_000,
        )
        page.close()
        assert problems == []


def test_endpoint_health_shows_a_pod_behind_two_backends_once() -> None:
    with Background(admin_kit.shared_pod) as s, _browser() as browser:
        page = browser.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        _send(s.address, "/west", 2)
        _send(s.address, "/shared", 3)
        host, port = s.admin.address
        page.goto(f"http://{host}:{port}/dashboard")
        page.wait_for_function("document.querySelectorAll('#endpoints .cluster').length === 2")
        west = page.locator("#endpoints .cluster").filter(has_text="gke-west-1")
        # The west pod is an endpoint of backends west and west-too: one dot, one count,
        # the requests of both backends.
        assert west.locator(".dot").count() == 1
        assert _text(west, ".healthy-count") == "1/1 healthy"
        title = str(west.locator(".dot").get_attribute("title"))
        assert "west, west-too" in title and title.endswith(" 5 requests"), title
        page.close()
        assert problems == []


def test_a_stalled_gateway_shows_as_disconnected_then_live_again() -> None:
    background = Background()
    with background as s, _browser() as browser:
        page = browser.new_page()
        host, port = s.admin.address
        page.goto(f"http://{host}:{port}/dashboard")
        page.wait_for_function("document.getElementById('conn').textContent === 'live'")
        # A real stall of the loop the admin server answers on (as a long GC pause or a
        # blocking call would make): the kernel accepts connections, no answer comes.
        background.loop.call_soon_threadsafe(time.sleep, 9)
        page.wait_for_function(
            "document.getElementById('conn').textContent === 'disconnected, retrying'",
            timeout=8_000,  # a fetch gives up after 4 s
        )
        page.wait_for_function(
            "document.getElementById('conn').textContent === 'live'", timeout=15_000
        )
        page.close()

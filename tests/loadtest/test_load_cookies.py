"""Per-VU cookie jars (k6's): Set-Cookie kept and sent back, ``http.cookieJar()``,
``params.cookies``, ``res.cookies`` — the pure jar, then scripts against a loopback
server that sets a cookie and records what comes back."""

from __future__ import annotations

import json
import pathlib

import loadtest_server as fake
import loadtest_threaded as threaded
import pytest

from mcgw.cli import main as cli
from mcgw.loadtest import cookies


def test_jar_stores_set_cookie_and_matches_host_and_path() -> None:
    jar = cookies.Jar()
    assert jar.empty and jar.header_for("http://a.test/") == ""
    jar.extract("http://a.test/login", ["sid=abc; Path=/", "pref=dark; Path=/app"])
    assert not jar.empty
    assert jar.header_for("http://a.test/") == "sid=abc"
    assert sorted(jar.header_for("http://a.test/app/x").split("; ")) == ["pref=dark", "sid=abc"]
    assert jar.header_for("http://b.test/") == ""  # another host gets nothing


def test_jar_expiry_set_delete_clear() -> None:
    jar = cookies.Jar()
    jar.extract("http://a.test/", ["gone=1; Max-Age=0", "kept=2"])
    assert jar.cookies_for_url("http://a.test/") == {"kept": ["2"]}
    jar.set("http://a.test/", "manual", "3")
    assert jar.cookies_for_url("http://a.test/") == {"kept": ["2"], "manual": ["3"]}
    jar.delete("http://a.test/", "kept")
    assert jar.cookies_for_url("http://a.test/") == {"manual": ["3"]}
    jar.clear("http://a.test/")
    assert jar.empty


def test_parse_set_cookie_like_k6_res_cookies() -> None:
    parsed = cookies.parse_set_cookie(["sid=abc; Path=/; HttpOnly; Max-Age=60", "sid=def"])
    assert [c["value"] for c in parsed["sid"]] == ["abc", "def"]
    first = parsed["sid"][0]
    assert first["path"] == "/" and first["http_only"] is True and first["max_age"] == 60


SET_COOKIE = fake.Behaviour(
    headers=(("Content-Type", "text/plain"), ("Set-Cookie", "sid=s1; Path=/"))
)

JS = """\
import http from 'k6/http';
import { check } from 'k6';
export const options = { iterations: 1, thresholds: { checks: ['rate==1'] } };
export default function () {
  const first = http.get('BASE/login');
  check(first, { 'res.cookies': (r) => r.cookies.sid[0].value === 's1' });
  http.get('BASE/next');                                    // the jar sends sid back
  http.get('BASE/extra', { cookies: { extra: 'x' } });      // plus a request cookie
  const jar = http.cookieJar();
  jar.set('BASE/', 'manual', 'm');
  check(jar, { 'cookiesForURL': (j) => j.cookiesForURL('BASE/').manual[0] === 'm' });
  http.get('BASE/replaced', { cookies: { sid: { value: 'mine', replace: true } } });
}
"""

PY = """\
options = {"iterations": 1}

async def default(vu):
    await vu.http.get("BASE/login")
    await vu.http.get("BASE/next")
    vu.http.cookie_jar().set("BASE/", "manual", "m")
    res = await vu.http.get("BASE/last", {"cookies": {"extra": "x"}})
    vu.check(res, {"cookies": lambda r: r.cookies["sid"][0]["value"] == "s1"})
"""


def _run(
    tmp_path: pathlib.Path, name: str, text: str
) -> tuple[int, fake.Server, dict[str, object]]:
    with threaded.serving(SET_COOKIE) as server:
        path = tmp_path / name
        path.write_text(text.replace("BASE", f"http://127.0.0.1:{server.port}"))
        export = tmp_path / "summary.json"
        rc = cli.main(["load", "--summary-export", str(export), str(path)])
    return rc, server, json.loads(export.read_text())


def test_js_cookie_jar(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, server, summary = _run(tmp_path, "c.js", JS)
    assert rc == 0, capsys.readouterr().out
    metrics = summary["metrics"]
    assert isinstance(metrics, dict) and metrics["checks"]["value"] == 1
    jar_and = dict(zip(server.targets, server.cookies, strict=True))
    assert jar_and["/login"] == ""
    assert jar_and["/next"] == "sid=s1"
    assert jar_and["/extra"] == "sid=s1; extra=x"
    assert sorted(jar_and["/replaced"].split("; ")) == ["manual=m", "sid=mine"]


def test_python_cookie_jar(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, server, summary = _run(tmp_path, "c.py", PY)
    assert rc == 0, capsys.readouterr().out
    metrics = summary["metrics"]
    assert isinstance(metrics, dict) and metrics["checks"]["value"] == 1
    sent = dict(zip(server.targets, server.cookies, strict=True))
    assert sent["/login"] == "" and sent["/next"] == "sid=s1"
    assert sorted(sent["/last"].split("; ")) == ["extra=x", "manual=m", "sid=s1"]


def test_each_vu_has_its_own_jar(tmp_path: pathlib.Path) -> None:
    # Two VUs, one iteration each: each VU's first request carries no cookie, even
    # though the other VU already got one.
    text = (
        "import http from 'k6/http';\n"
        "export const options = { scenarios: { s: { executor: 'per-vu-iterations',"
        " vus: 2, iterations: 1 } } };\n"
        "export default function () { http.get('BASE/first'); http.get('BASE/second'); }\n"
    )
    rc, server, _ = _run(tmp_path, "v.js", text)
    assert rc == 0
    sent = sorted(zip(server.targets, server.cookies, strict=True))
    assert sent == [("/first", ""), ("/first", ""), ("/second", "sid=s1"), ("/second", "sid=s1")]

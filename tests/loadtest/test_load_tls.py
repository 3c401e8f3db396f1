"""https:// targets against a loopback TLS server with a trustme certificate: the
handshake timed as http_req_tls_handshaking, insecureSkipTLSVerify, verification
against the trust store, and the name checked being the URL's host (not --host's IP)."""

from __future__ import annotations

import asyncio
import collections.abc
import pathlib
import ssl

import loadtest_server as fake
import pytest
import trustme

from mcgw.loadtest import client, metrics, options, runner


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("store.example.com").configure_cert(ctx)
    return ctx


@pytest.fixture
def trust(
    ca: trustme.CA, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> collections.abc.Iterator[None]:
    # The client trusts the system store, which OpenSSL reads from SSL_CERT_FILE: point
    # it at the test CA for this test only.
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    client.tls_context.cache_clear()
    yield
    client.tls_context.cache_clear()


def _load(tls: ssl.SSLContext, url: str, **extra: object) -> tuple[metrics.Summary, int]:
    async def go() -> tuple[metrics.Summary, int]:
        async with fake.serve(tls=tls) as server:
            opts = options.LoadOptions(
                url=url.replace("PORT", str(server.port)),
                iterations=4,
                vus=2,
                sleep_s=0,
                timeout_s=5,
                **extra,  # type: ignore[arg-type]
            )
            return await asyncio.wait_for(runner.run(opts), 20), server.requests

    return asyncio.run(go())


def _value(summary: metrics.Summary, name: str, key: str) -> float:
    metric = summary.metric(name)
    assert metric is not None, name
    return metric.get(key)


def test_https_with_insecure_skip_verify(server_tls: ssl.SSLContext) -> None:
    client.tls_context.cache_clear()
    summary, served = _load(server_tls, "https://127.0.0.1:PORT/", insecure_skip_tls_verify=True)
    assert served == 4
    assert _value(summary, "http_req_failed", "rate") == 0
    # Two VUs, two connections: two handshakes, then reuse (tls 0).
    assert _value(summary, "http_req_tls_handshaking", "max") > 0
    assert _value(summary, "http_req_tls_handshaking", "min") == 0


def test_https_unverifiable_certificate_fails_clearly(server_tls: ssl.SSLContext) -> None:
    client.tls_context.cache_clear()
    summary, served = _load(server_tls, "https://127.0.0.1:PORT/")
    assert served == 0
    assert _value(summary, "http_req_failed", "rate") == 1
    assert summary.errors and summary.errors[0][0].startswith("tls: ")
    assert "CERTIFICATE_VERIFY_FAILED" in summary.errors[0][0]


@pytest.mark.usefixtures("trust")
def test_https_verified_by_the_url_host_through_a_host_override(
    server_tls: ssl.SSLContext,
) -> None:
    # Connect to 127.0.0.1 but check the certificate for store.example.com (SNI too).
    summary, served = _load(
        server_tls,
        "https://store.example.com:PORT/",
        host_map=(("store.example.com", "127.0.0.1"),),
    )
    assert served == 4
    assert _value(summary, "http_req_failed", "rate") == 0


def test_https_target_parsing() -> None:
    target = client.parse_target(
        "https://store.example.com/x", (("store.example.com", "10.0.0.1"),)
    )
    assert (target.scheme, target.connect_host, target.connect_port) == ("https", "10.0.0.1", 443)
    assert target.host_header == "store.example.com" and target.server_name == "store.example.com"
    assert client.parse_target("https://h:8443/").host_header == "h:8443"

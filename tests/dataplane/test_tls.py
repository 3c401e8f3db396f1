"""HTTPS listeners over real loopback sockets: SNI, ALPN, TLS versions, reload.

Certificates are made at test time by trustme (a private CA): the client trusts that
CA only, so a handshake that succeeds proves the gateway served the certificate the
SNI name asked for.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest
import trustme

from mcgw.cli import run
from mcgw.dataplane import server, tls
from mcgw.ir import table
from mcgw.testing import manifests
from mcgw.testing.gateway import SETTINGS, translate_yaml
from mcgw.testing.runner import run as run_async
from mcgw.testing.upstream import FakeUpstream, Reply
from mcgw.translate import translator

HTTPS_SETTINGS = replace(SETTINGS, port_map=((80, 0), (443, 0)))


def secret(name: str, cert: trustme.LeafCert) -> str:
    crt = base64.b64encode(cert.cert_chain_pems[0].bytes()).decode()
    key = base64.b64encode(cert.private_key_pem.bytes()).decode()
    return f"""---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: default}}
type: kubernetes.io/tls
data: {{tls.crt: {crt}, tls.key: {key}}}
"""


def https_manifests(
    backend_port: int, certs: dict[str, trustme.LeafCert], *, secrets: bool = True
) -> str:
    """A Gateway with one HTTPS listener per hostname of ``certs`` on port 443, each
    with its own Secret ``cert-<i>`` (included when ``secrets``), all routed to one
    backend."""
    listeners = "".join(
        f"""
  - name: l{i}
    protocol: HTTPS
    port: 443
    hostname: "{host}"
    tls: {{mode: Terminate, certificateRefs: [{{name: cert-{i}}}]}}"""
        for i, host in enumerate(certs)
    )
    documents = "".join(secret(f"cert-{i}", cert) for i, cert in enumerate(certs.values()))
    return (
        manifests.GATEWAY_CLASS
        + f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: mcgw
  listeners:{listeners}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: app, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - backendRefs: [{{name: app, port: 80}}]
"""
        + (documents if secrets else "")
        + manifests.service("app", backend_port)
    )


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def client_context(ca: trustme.CA, alpn: tuple[str, ...] = ("http/1.1",)) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.set_alpn_protocols(list(alpn))
    return ctx


@contextlib.asynccontextmanager
async def gateway(result: translator.Result) -> AsyncIterator[tuple[server.Gateway, int]]:
    gw = server.Gateway(HTTPS_SETTINGS)
    try:
        await gw.apply(result.table, result.key_pairs)
        yield gw, gw.addresses()["default/gw/443"][1]
    finally:
        await gw.close(timeout_s=1.0)


async def get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str
) -> tuple[bytes, bytes]:
    """One keep-alive GET; (head, body) of the response (Content-Length framed)."""
    writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head, await asyncio.wait_for(reader.readexactly(length), 5)


async def refused(port: int, ctx: ssl.SSLContext, name: str) -> None:
    """Assert the gateway ends the handshake. asyncio's and uvloop's TLS close without
    flushing the alert, so the client sees an EOF or a reset, never a local error
    (which would mean this client could not even offer what the test asks for)."""
    with pytest.raises((ConnectionResetError, ssl.SSLEOFError)):
        await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=name)


def served_names(writer: asyncio.StreamWriter) -> list[str]:
    cert = writer.get_extra_info("ssl_object").getpeercert()
    return [value for kind, value in cert["subjectAltName"] if kind == "DNS"]


async def _case_sni_chooses_the_certificate_of_the_listener_named(
    ca: trustme.CA, tmp_path: Path
) -> None:
    certs = {
        "a.example.test": ca.issue_cert("a.example.test"),
        "*.b.test": ca.issue_cert("*.b.test"),
    }
    async with FakeUpstream() as up:
        result = translate_yaml(tmp_path, https_manifests(up.address[1], certs))
        async with gateway(result) as (_, port):
            for name in ("a.example.test", "x.b.test"):
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=client_context(ca), server_hostname=name
                )
                # The handshake verified the chain and the name against the private CA.
                assert served_names(writer) == ["a.example.test" if name[0] == "a" else "*.b.test"]
                head, body = await get(reader, writer, name)
                assert head.startswith(b"HTTP/1.1 200 ")
                assert body == b"upstream"
                writer.close()
            # A name no listener serves is refused during the handshake.
            await refused(port, client_context(ca), "c.other.test")
    assert [s.header("x-forwarded-proto") for s in up.seen] == ["https"] * 2
    assert [s.header("host") for s in up.seen] == ["a.example.test", "x.b.test"]


async def _case_alpn_negotiates_h2_or_http11(ca: trustme.CA, tmp_path: Path) -> None:
    certs = {"a.example.test": ca.issue_cert("a.example.test")}
    async with FakeUpstream() as up:
        result = translate_yaml(tmp_path, https_manifests(up.address[1], certs))
        async with gateway(result) as (_, port):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1",
                port,
                ssl=client_context(ca, ("h2", "http/1.1")),
                server_hostname="a.example.test",
            )
            assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
            conn = h2.connection.H2Connection(
                h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
            )
            conn.initiate_connection()
            conn.send_headers(
                1,
                [
                    (":method", "GET"),
                    (":path", "/h2"),
                    (":scheme", "https"),
                    (":authority", "a.example.test"),
                ],
                end_stream=True,
            )
            writer.write(conn.data_to_send())
            status, body, ended = "", b"", False
            while not ended:
                data = await asyncio.wait_for(reader.read(65536), 5)
                assert data, "connection closed before the response ended"
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = dict(event.headers)[":status"]
                    elif isinstance(event, h2.events.DataReceived):
                        body += event.data
                        conn.acknowledge_received_data(event.flow_controlled_length, 1)
                    elif isinstance(event, h2.events.StreamEnded):
                        ended = True
                writer.write(conn.data_to_send())
            assert (status, body) == ("200", b"upstream")
            writer.close()

            reader, writer = await asyncio.open_connection(
                "127.0.0.1",
                port,
                ssl=client_context(ca, ("http/1.1",)),
                server_hostname="a.example.test",
            )
            assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
            head, body = await get(reader, writer, "a.example.test")
            assert head.startswith(b"HTTP/1.1 200 ") and body == b"upstream"
            writer.close()
    assert [(s.target, s.header("x-forwarded-proto")) for s in up.seen] == [
        ("/h2", "https"),
        ("/", "https"),
    ]


async def _case_tls_11_is_refused(ca: trustme.CA, tmp_path: Path) -> None:
    certs = {"a.example.test": ca.issue_cert("a.example.test")}
    async with FakeUpstream() as up:
        result = translate_yaml(tmp_path, https_manifests(up.address[1], certs))
        async with gateway(result) as (_, port):
            old = client_context(ca)
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
            # Let this client offer TLS 1.1 at all (OpenSSL 3 forbids it by default),
            # so the refusal comes from the gateway.
            old.set_ciphers("DEFAULT:@SECLEVEL=0")
            await refused(port, old, "a.example.test")
            tls12 = client_context(ca)
            tls12.maximum_version = ssl.TLSVersion.TLSv1_2
            _, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=tls12, server_hostname="a.example.test"
            )
            cipher, version, _ = writer.get_extra_info("ssl_object").cipher()
            assert version == "TLSv1.2" and cipher.startswith("ECDHE-")
            writer.close()
    assert up.seen == []


async def _case_a_new_certificate_serves_new_handshakes_while_connections_go_on(
    ca: trustme.CA, tmp_path: Path
) -> None:
    old, new = ca.issue_cert("a.example.test"), ca.issue_cert("a.example.test")
    async with FakeUpstream() as up:
        first = translate_yaml(tmp_path, https_manifests(up.address[1], {"a.example.test": old}))
        second = translate_yaml(tmp_path, https_manifests(up.address[1], {"a.example.test": new}))
        assert first.table.version != second.table.version
        async with gateway(first) as (gw, port):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context(ca), server_hostname="a.example.test"
            )
            serial = writer.get_extra_info("ssl_object").getpeercert()["serialNumber"]
            await get(reader, writer, "a.example.test")
            await gw.apply(second.table, second.key_pairs)
            assert gw.addresses()["default/gw/443"][1] == port  # same socket
            head, _ = await get(reader, writer, "a.example.test")  # same connection
            assert head.startswith(b"HTTP/1.1 200 ")
            _, writer2 = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context(ca), server_hostname="a.example.test"
            )
            serial2 = writer2.get_extra_info("ssl_object").getpeercert()["serialNumber"]
            assert serial != serial2
            new_serial = new.cert_chain_pems[0].bytes()
            assert int(serial2, 16) == _serial(new_serial)
            writer.close()
            writer2.close()


def _serial(pem: bytes) -> int:
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem).serial_number


async def _case_editing_the_secret_file_reloads_the_certificate(
    ca: trustme.CA, tmp_path: Path
) -> None:
    old, new = ca.issue_cert("a.example.test"), ca.issue_cert("a.example.test")
    async with FakeUpstream() as up:
        (tmp_path / "gw.yaml").write_text(
            https_manifests(up.address[1], {"a.example.test": old}, secrets=False)
        )
        (tmp_path / "secret.yaml").write_text(secret("cert-0", old))
        options = run.RunOptions(
            paths=(tmp_path,),
            port_map=((443, 0),),
            access_log=False,
            with_fleet=False,
        )
        running = await run.start(options, say=lambda _: None)
        try:
            port = running.address(443)[1]

            async def serial() -> int:
                _, writer = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=client_context(ca), server_hostname="a.example.test"
                )
                number = writer.get_extra_info("ssl_object").getpeercert()["serialNumber"]
                writer.close()
                return int(number, 16)

            assert await serial() == _serial(old.cert_chain_pems[0].bytes())
            (tmp_path / "secret.yaml").write_text(secret("cert-0", new))
            want = _serial(new.cert_chain_pems[0].bytes())
            for attempt in range(400):
                if await serial() == want:
                    break
                if attempt % 20 == 19:
                    # The watcher may not have been armed yet when the file was first
                    # written (it starts after the first load): write it again.
                    (tmp_path / "secret.yaml").write_text(secret("cert-0", new))
                await asyncio.sleep(0.1)
            assert await serial() == want
            assert running.address(443)[1] == port
        finally:
            await running.close()


def test_sni_chooses_the_certificate_of_the_listener_named(ca: trustme.CA, tmp_path: Path) -> None:
    run_async(_case_sni_chooses_the_certificate_of_the_listener_named(ca, tmp_path))


def test_alpn_negotiates_h2_or_http11(ca: trustme.CA, tmp_path: Path) -> None:
    run_async(_case_alpn_negotiates_h2_or_http11(ca, tmp_path))


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_11_is_refused(ca: trustme.CA, tmp_path: Path) -> None:
    run_async(_case_tls_11_is_refused(ca, tmp_path))


def test_a_new_certificate_serves_new_handshakes_while_connections_go_on(
    ca: trustme.CA, tmp_path: Path
) -> None:
    run_async(_case_a_new_certificate_serves_new_handshakes_while_connections_go_on(ca, tmp_path))


def test_editing_the_secret_file_reloads_the_certificate(ca: trustme.CA, tmp_path: Path) -> None:
    # File watching (watchfiles, debounced) takes seconds on a busy machine.
    run_async(_case_editing_the_secret_file_reloads_the_certificate(ca, tmp_path), timeout_s=60)


def test_sni_picks_exact_then_longest_wildcard_then_any() -> None:
    # Pure choice over contexts built from real (trustme) certificates, no socket.
    ca = trustme.CA()
    names = ("a.example.test", "*.deep.example.test", "*.example.test", "*")
    pairs = {}
    entries = []
    for i, host in enumerate(names):
        cert = ca.issue_cert(host if host != "*" else "fallback.test")
        pairs[f"f{i}"] = table.KeyPair(
            cert.cert_chain_pems[0].bytes(), cert.private_key_pem.bytes()
        )
        entries.append(table.TLSCertificate(hostname=host, secret=f"ns/s{i}", fingerprint=f"f{i}"))
    terminator = tls.Terminator()
    choice = terminator.prepare(table.ListenerTLS(tuple(entries)), pairs)
    terminator.install(choice)
    by_host = choice.by_host
    assert terminator.select("a.example.test") is by_host["a.example.test"]
    assert terminator.select("A.Example.Test.") is by_host["a.example.test"]
    assert terminator.select("x.y.deep.example.test") is by_host["*.deep.example.test"]
    assert terminator.select("b.example.test") is by_host["*.example.test"]
    assert terminator.select("other.test") is by_host["*"]
    assert terminator.select(None) is by_host["*"]
    # A second table with the same certificates reuses the contexts.
    again = terminator.prepare(table.ListenerTLS(tuple(entries)), {})
    assert again.by_host == by_host
    with pytest.raises(tls.CertificateError, match="no key pair"):
        terminator.prepare(table.ListenerTLS((replace(entries[0], fingerprint="unknown"),)), pairs)


MISDIRECTED = """---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: mcgw
  listeners:
  - {{name: https, protocol: HTTPS, port: 443, tls: {{certificateRefs: [{{name: cert-0}}]}}}}
  - {{name: with-hostname, protocol: HTTPS, port: 443, hostname: second-example.org,
     tls: {{certificateRefs: [{{name: cert-0}}]}}}}
  - {{name: wildcard, protocol: HTTPS, port: 443, hostname: "*.wildcard.org",
     tls: {{certificateRefs: [{{name: cert-0}}]}}}}
  - {{name: in-wildcard, protocol: HTTPS, port: 443, hostname: fourth-example.wildcard.org,
     tls: {{certificateRefs: [{{name: cert-0}}]}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r1, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [example.org]
  rules: [{{backendRefs: [{{name: v1, port: 80}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r2, namespace: default}}
spec:
  parentRefs: [{{name: gw, sectionName: with-hostname}}]
  rules: [{{backendRefs: [{{name: v2, port: 80}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r3, namespace: default}}
spec:
  parentRefs: [{{name: gw, sectionName: wildcard}}]
  hostnames: [third-example.wildcard.org, fourth-example.wildcard.org]
  rules: [{{backendRefs: [{{name: v3, port: 80}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r4, namespace: default}}
spec:
  parentRefs: [{{name: gw, sectionName: in-wildcard}}]
  hostnames: [third-example.wildcard.org, fourth-example.wildcard.org]
  rules: [{{backendRefs: [{{name: v1, port: 80}}]}}]
"""

# (SNI name, Host, status, backend): the cases of the Gateway API conformance test
# HTTPRouteHTTPSListenerDetectMisdirectedRequests.
MISDIRECTED_CASES = (
    ("example.org", "example.org", 200, b"v1"),
    ("example.org", "second-example.org", 421, None),
    ("example.org", "unknown-example.org", 404, None),
    ("second-example.org", "second-example.org", 200, b"v2"),
    ("second-example.org", "example.org", 421, None),
    ("second-example.org", "unknown-example.org", 421, None),
    ("third-example.wildcard.org", "third-example.wildcard.org", 200, b"v3"),
    ("third-example.wildcard.org", "fourth-example.wildcard.org", 421, None),
    ("third-example.wildcard.org", "second-example.org", 421, None),
    ("third-example.wildcard.org", "unknown-example.org", 421, None),
    ("fourth-example.wildcard.org", "fourth-example.wildcard.org", 200, b"v1"),
    ("fourth-example.wildcard.org", "fith-example.wildcard.org", 421, None),
    ("unknown-example.org", "example.org", 200, b"v1"),
    ("unknown-example.org", "unknown-example.org", 404, None),
)


async def _case_misdirected_requests_get_421(ca: trustme.CA, tmp_path: Path) -> None:
    cert = ca.issue_cert(
        "example.org",
        "second-example.org",
        "*.wildcard.org",
        "fourth-example.wildcard.org",
        "unknown-example.org",
    )
    async with (
        FakeUpstream(Reply(body=b"v1")) as v1,
        FakeUpstream(Reply(body=b"v2")) as v2,
        FakeUpstream(Reply(body=b"v3")) as v3,
    ):
        text = (
            manifests.GATEWAY_CLASS
            + MISDIRECTED.format()
            + secret("cert-0", cert)
            + "".join(
                manifests.service(n, u.address[1]) for n, u in (("v1", v1), ("v2", v2), ("v3", v3))
            )
        )
        result = translate_yaml(tmp_path, text)
        async with gateway(result) as (_, port):
            got = []
            for sni, host, _, _ in MISDIRECTED_CASES:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=client_context(ca), server_hostname=sni
                )
                head, body = await get(reader, writer, host)
                status = int(head.split(b" ")[1])
                got.append((sni, host, status, body if status == 200 else None))
                writer.close()
    assert got == list(MISDIRECTED_CASES)


def test_misdirected_requests_get_421(ca: trustme.CA, tmp_path: Path) -> None:
    run_async(_case_misdirected_requests_get_421(ca, tmp_path))

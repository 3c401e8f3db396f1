"""TLS termination on HTTPS listeners: SSL contexts built once per table, chosen by SNI.

Each HTTPS socket is bound once with a :class:`Terminator`'s ``base`` context, whose
SNI callback hands the handshake to the context of the certificate that serves the
name the client asked for (exact name, then wildcards longest first, then the
listener without hostname; a client sending no name gets that one, or the first).
:meth:`Terminator.update` swaps the name → context map when a table arrives: new
handshakes see the new certificates, connections already up keep theirs. Contexts
are cached by fingerprint, so a table that keeps a certificate keeps its context.

Defaults are Mozilla's "intermediate" profile: TLS 1.2 minimum, ECDHE with AEAD
ciphers for TLS 1.2 (TLS 1.3 suites are OpenSSL's, all AEAD), no compression, no
renegotiation, server cipher preference; ALPN offers ``h2`` then ``http/1.1``.

Python's ``ssl`` loads keys from files only: the PEM is written to an anonymous
in-memory file (``memfd``, Linux) or, elsewhere, a private temporary file removed at
once, and never to a path anyone else could read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import tempfile
from collections.abc import Iterator, Mapping

from mcgw import errors
from mcgw.ir import table

log = logging.getLogger(__name__)

ALPN = ("h2", "http/1.1")
"""Application protocols offered, in the server's order of preference."""

CIPHERS_TLS12 = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)
"""TLS 1.2 suites: forward secret and AEAD only."""


class CertificateError(errors.McgwError):
    """A key pair is missing, or the translator accepted one OpenSSL refuses."""


def server_context() -> ssl.SSLContext:
    """A server context with mcgw's defaults and no certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(CIPHERS_TLS12)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    ctx.set_alpn_protocols(list(ALPN))
    return ctx


@contextlib.contextmanager
def _private_file(data: bytes) -> Iterator[str]:
    """A path holding ``data`` that only this process can read, gone afterwards."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        fd = memfd_create("mcgw-tls", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="mcgw-tls-") as folder:  # mode 0700
        path = os.path.join(folder, "pem")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as out:
            out.write(data)
        yield path


def certificate_context(pairs: list[table.KeyPair]) -> ssl.SSLContext:
    """A server context serving ``pairs`` (several: one per key type, RSA and ECDSA).

    Raises:
        CertificateError: OpenSSL refused a pair.
    """
    ctx = server_context()
    for pair in pairs:
        try:
            with _private_file(pair.cert_pem) as cert, _private_file(pair.key_pem) as key:
                ctx.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as exc:
            # The message is OpenSSL's reason (e.g. "KEY_VALUES_MISMATCH"), no PEM.
            raise CertificateError(str(exc)) from None
    return ctx


class Choice:
    """Contexts built for one table's certificates of one socket, not yet live."""

    __slots__ = ("by_host", "contexts")

    def __init__(
        self, contexts: dict[tuple[str, ...], ssl.SSLContext], by_host: dict[str, ssl.SSLContext]
    ) -> None:
        self.contexts = contexts
        """Fingerprints → context, the cache the next table reuses."""
        self.by_host = by_host
        """Listener hostname → context."""


class Terminator:
    """The TLS side of one HTTPS socket: a base context and the SNI choice."""

    __slots__ = ("_any", "_contexts", "_default", "_exact", "_wildcards", "base")

    def __init__(self) -> None:
        self.base = server_context()
        """Bound with the socket for its lifetime; the SNI callback switches away."""
        self.base.sni_callback = self._choose
        self._contexts: dict[tuple[str, ...], ssl.SSLContext] = {}
        self._exact: dict[str, ssl.SSLContext] = {}
        self._wildcards: tuple[tuple[str, ssl.SSLContext], ...] = ()
        self._any: ssl.SSLContext | None = None
        self._default: ssl.SSLContext | None = None

    def prepare(self, tls: table.ListenerTLS, key_pairs: Mapping[str, table.KeyPair]) -> Choice:
        """Build (or reuse) the contexts of ``tls``; :meth:`install` makes them live.

        Raises:
            CertificateError: a pair is missing or refused.
        """
        by_host: dict[str, list[str]] = {}
        for cert in tls.certificates:
            by_host.setdefault(cert.hostname, []).append(cert.fingerprint)
        contexts: dict[tuple[str, ...], ssl.SSLContext] = {}
        chosen: dict[str, ssl.SSLContext] = {}
        for host, prints in by_host.items():
            key = tuple(prints)
            ctx = contexts.get(key) or self._contexts.get(key)
            if ctx is None:
                missing = [p for p in prints if p not in key_pairs]
                if missing:
                    raise CertificateError(f"no key pair for certificate {missing[0]}")
                ctx = certificate_context([key_pairs[p] for p in prints])
            contexts[key] = chosen[host] = ctx
        return Choice(contexts, chosen)

    def install(self, choice: Choice) -> None:
        """Serve ``choice`` to handshakes from now on (connections up keep theirs)."""
        chosen = choice.by_host
        self._contexts = choice.contexts
        self._exact = {h: c for h, c in chosen.items() if not h.startswith("*")}
        self._wildcards = tuple(
            sorted(
                ((h[1:], c) for h, c in chosen.items() if h.startswith("*.")),
                key=lambda item: -len(item[0]),
            )
        )
        self._any = chosen.get("*")
        self._default = self._any or next(iter(chosen.values()), None)

    def select(self, server_name: str | None) -> ssl.SSLContext | None:
        """The context for a ClientHello naming ``server_name`` (None: no SNI)."""
        if server_name is None:
            return self._default
        name = server_name.lower().rstrip(".")
        ctx = self._exact.get(name)
        if ctx is not None:
            return ctx
        for suffix, wild in self._wildcards:
            if name.endswith(suffix):
                return wild
        return self._any

    def _choose(
        self, sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> int | None:
        ctx = self.select(server_name)
        if ctx is None:
            # No listener of this socket serves the name: refuse the handshake.
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        sock.context = ctx
        return None

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
    """The certificates of one socket for one table: built, then installed.

    It also answers, for a request's Host, which listener (by hostname) serves it, so
    that a request whose Host belongs to another listener than its SNI name is caught
    (HTTP 421, :meth:`misdirected`).
    """

    __slots__ = ("_any", "_cache", "_exact", "_wildcards", "by_host", "contexts", "default")

    def __init__(
        self, contexts: dict[tuple[str, ...], ssl.SSLContext], by_host: dict[str, ssl.SSLContext]
    ) -> None:
        self.contexts = contexts
        """Fingerprints → context, the cache the next table reuses."""
        self.by_host = by_host
        """Listener hostname → context."""
        self._exact = {h for h in by_host if not h.startswith("*")}
        self._wildcards = tuple(
            sorted((h[1:] for h in by_host if h.startswith("*.")), key=lambda x: -len(x))
        )
        self._any = "*" in by_host
        self.default = "*" if self._any else next(iter(by_host), "")
        """The listener of clients that send no server name."""
        self._cache: dict[bytes, str | None] = {}

    def listener(self, name: str) -> str | None:
        """The hostname of the listener serving ``name`` (lower-case, no port)."""
        if name in self._exact:
            return name
        for suffix in self._wildcards:
            if name.endswith(suffix):
                return "*" + suffix
        return "*" if self._any else None

    def misdirected(self, sni: str, host: bytes) -> bool:
        """True when a raw Host header names a host another listener serves than the
        one the SNI name chose (RFC 9110 15.5.20: answer 421)."""
        try:
            owner = self._cache[host]
        except KeyError:
            name = host
            colon = name.rfind(b":")
            if colon != -1 and name.find(b"]", colon) == -1:
                name = name[:colon]
            owner = self.listener(name.decode("latin-1").lower().rstrip("."))
            if len(self._cache) < 1024:
                self._cache[host] = owner
        return owner is not None and owner != sni


class Terminator:
    """The TLS side of one HTTPS socket: a base context and the SNI choice.

    The SNI callback records on the TLS object which listener the client named (and
    the choice it was made from), for :func:`sni_of`.
    """

    __slots__ = ("_choice", "base")

    def __init__(self) -> None:
        self.base = server_context()
        """Bound with the socket for its lifetime; the SNI callback switches away."""
        self.base.sni_callback = self._choose
        self._choice: Choice | None = None

    def prepare(self, tls: table.ListenerTLS, key_pairs: Mapping[str, table.KeyPair]) -> Choice:
        """Build (or reuse) the contexts of ``tls``; :meth:`install` makes them live.

        Raises:
            CertificateError: a pair is missing or refused.
        """
        by_host: dict[str, list[str]] = {}
        for cert in tls.certificates:
            by_host.setdefault(cert.hostname, []).append(cert.fingerprint)
        known = self._choice.contexts if self._choice is not None else {}
        contexts: dict[tuple[str, ...], ssl.SSLContext] = {}
        chosen: dict[str, ssl.SSLContext] = {}
        for host, prints in by_host.items():
            key = tuple(prints)
            ctx = contexts.get(key) or known.get(key)
            if ctx is None:
                missing = [p for p in prints if p not in key_pairs]
                if missing:
                    raise CertificateError(f"no key pair for certificate {missing[0]}")
                ctx = certificate_context([key_pairs[p] for p in prints])
            contexts[key] = chosen[host] = ctx
        return Choice(contexts, chosen)

    def install(self, choice: Choice) -> None:
        """Serve ``choice`` to handshakes from now on (connections up keep theirs)."""
        self._choice = choice

    def select(self, server_name: str | None) -> ssl.SSLContext | None:
        """The context for a ClientHello naming ``server_name`` (None: no SNI)."""
        choice = self._choice
        if choice is None:
            return None
        if server_name is None:
            return choice.by_host.get(choice.default)
        owner = choice.listener(server_name.lower().rstrip("."))
        return None if owner is None else choice.by_host[owner]

    def _choose(
        self, sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> int | None:
        choice = self._choice
        owner = None
        if choice is not None:
            owner = (
                choice.default
                if server_name is None
                else choice.listener(server_name.lower().rstrip("."))
            )
        if choice is None or owner is None:
            # No listener of this socket serves the name: refuse the handshake.
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        sock.context = choice.by_host[owner]
        if server_name is not None:
            sock.mcgw_sni = (owner, choice)  # type: ignore[union-attr]
        return None


def sni_of(transport: object) -> tuple[str, Choice] | None:
    """(listener hostname the client's SNI chose, the choice) of a TLS transport, or
    None (plain TCP, or a client that sent no server name)."""
    get = getattr(transport, "get_extra_info", None)
    sslobj = get("ssl_object") if get is not None else None
    found: tuple[str, Choice] | None = getattr(sslobj, "mcgw_sni", None)
    return found

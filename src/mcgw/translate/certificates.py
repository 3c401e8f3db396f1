"""The certificates of HTTPS listeners: certificateRefs → Secrets → checked key pairs.

A listener with ``tls.mode: Terminate`` names Secrets of type ``kubernetes.io/tls``
(``tls.crt``: the PEM chain, leaf first; ``tls.key``: its PEM private key). Each ref is
resolved as the Gateway API says: group ``""`` and kind ``Secret`` only; a Secret in
another namespace needs a ReferenceGrant there (else ``RefNotPermitted``); a missing
Secret, another type, missing keys, PEM that does not parse, an encrypted key or a
key that does not belong to the certificate is ``InvalidCertificateRef``.

Parsing is cached by content hash, so the reconciles that follow endpoint changes do
not parse keys again. Messages name Secrets and what is wrong, never key material.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mcgw.config import core, gatewayapi
from mcgw.ir import table
from mcgw.translate import context, status

_R = status.Reason

FINGERPRINT_LENGTH = 16
"""Hex digits of the SHA-256 kept as a certificate's fingerprint."""


@dataclass(frozen=True, slots=True)
class Certificate:
    """One valid certificateRef."""

    secret: str
    """``<namespace>/<name>``."""
    fingerprint: str
    pair: table.KeyPair


@dataclass(frozen=True, slots=True)
class Resolved:
    certificates: tuple[Certificate, ...]
    """The refs that resolved, in the listener's order."""
    reason: status.Reason | None = None
    """None when every ref resolved; else why the first that did not failed."""
    message: str = ""


def fingerprint(cert_pem: bytes, key_pem: bytes) -> str:
    """A short hash of a chain and its key: changes whenever either does."""
    digest = hashlib.sha256(cert_pem + b"\0" + key_pem).hexdigest()
    return digest[:FINGERPRINT_LENGTH]


@functools.lru_cache(maxsize=256)
def _check(digest: str, cert_pem: bytes, key_pem: bytes) -> tuple[str, str]:
    """(problem, expiry warning) of a chain and key; ``problem`` is "" when valid.

    ``digest`` keys the cache (the PEM bytes are compared too, so no collision can
    pass a wrong key).
    """
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        return "tls.crt is not a PEM certificate chain", ""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        return "tls.key is encrypted; give the key without a passphrase", ""
    except (ValueError, x509.UnsupportedGeneralNameType):
        return "tls.key is not a PEM private key", ""
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(der, spki) != chain[0].public_key().public_bytes(der, spki):
        return "tls.key is not the key of the first certificate in tls.crt", ""
    expires = chain[0].not_valid_after_utc
    if expires < datetime.datetime.now(datetime.UTC):
        return "", f"the certificate expired on {expires:%Y-%m-%d %H:%M} UTC"
    return "", ""


def resolve(ctx: context.Context, gw: gatewayapi.Gateway, spec: gatewayapi.Listener) -> Resolved:
    """Resolve the certificateRefs of one HTTPS listener of ``gw``."""
    tls = spec.tls
    if tls is None or not tls.certificate_refs:
        return Resolved(
            (), _R.INVALID_CERTIFICATE_REF, "an HTTPS listener needs tls.certificateRefs"
        )
    secrets = {(s.metadata.namespace, s.metadata.name): s for s in ctx.config.secrets}
    found: list[Certificate] = []
    reason: status.Reason | None = None
    message = ""
    for index, ref in enumerate(tls.certificate_refs):
        namespace = ref.namespace or gw.metadata.namespace
        name = f"{namespace}/{ref.name}"
        at = f"certificateRefs[{index}] ({name})"
        problem = ""
        why = _R.INVALID_CERTIFICATE_REF
        if ref.group != "" or ref.kind != "Secret":
            problem = f"{ref.group or 'core'}/{ref.kind} is not supported; refer to a Secret"
        elif not ctx.reference_permitted(
            "Gateway", gw.metadata.namespace, "", "Secret", (namespace, ref.name)
        ):
            why = _R.REF_NOT_PERMITTED
            problem = (
                f"no ReferenceGrant in namespace {namespace} lets Gateways of "
                f"{gw.metadata.namespace} use it"
            )
        else:
            secret = secrets.get((namespace, ref.name))
            cert_pem = key_pem = None
            if secret is None:
                problem = "Secret not found"
            elif secret.type != core.TLS_SECRET_TYPE:
                problem = f"Secret type is {secret.type!r}, not {core.TLS_SECRET_TYPE!r}"
            else:
                cert_pem, key_pem = secret.value("tls.crt"), secret.value("tls.key")
                if not cert_pem or not key_pem:
                    problem = "the Secret needs both tls.crt and tls.key"
            if not problem and cert_pem and key_pem:
                digest = fingerprint(cert_pem, key_pem)
                problem, expiry = _check(digest, cert_pem, key_pem)
                if expiry:
                    ctx.warnings.append(f"Gateway {gw.ref} listener {spec.name}: {at}: {expiry}")
                if not problem:
                    found.append(Certificate(name, digest, table.KeyPair(cert_pem, key_pem)))
        if problem and reason is None:
            reason, message = why, f"{at}: {problem}"
    return Resolved(tuple(found), reason, message)

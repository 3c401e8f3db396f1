"""Private keys stay out of everything mcgw prints: dumps, statuses, reprs, errors."""

from __future__ import annotations

from pathlib import Path

from translate_support import load_case

from mcgw.config import load
from mcgw.ir import codec
from mcgw.translate import translator

CASE = Path(__file__).parent / "testdata" / "tls_certificates"


def test_keys_travel_beside_the_table_never_in_it() -> None:
    resources = load_case(CASE)
    result = translator.translate(resources)
    pems = [p.key_pem for p in result.key_pairs.values()]
    assert len(pems) == 2  # cert-a and the granted wildcard; nothing from broken refs
    assert all(b"PRIVATE KEY" in pem for pem in pems)
    secret_lines = {line for pem in pems for line in pem.decode().splitlines()[1:-1]}
    printed = "\n".join(
        (
            codec.dump_yaml(result.table),
            codec.dump_json(result.table).decode(),
            codec.to_yaml(codec.encode(result.statuses)),
            repr(result),
            repr(resources),
            "\n".join(result.warnings),
        )
    )
    assert "PRIVATE KEY" not in printed
    assert not [line for line in secret_lines if line in printed]
    # Every fingerprint the table names has its pair, and only those are handed over.
    named = {c.fingerprint for x in result.table.listeners if x.tls for c in x.tls.certificates}
    assert named == set(result.key_pairs)


def test_a_loaded_secret_hides_its_values_from_repr(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\n"
        "stringData: {tls.key: very-secret-value}\ndata: {tls.crt: c2VjcmV0LWNlcnQ=}\n"
    )
    secret = load.load([tmp_path]).resources.config_cluster.secrets[0]
    assert secret.value("tls.key") == b"very-secret-value"
    assert secret.value("tls.crt") == b"secret-cert"
    assert "very-secret-value" not in repr(secret) and "c2VjcmV0" not in repr(secret)

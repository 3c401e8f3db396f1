"""``k6/encoding`` and ``k6/crypto``: the pure core against Python's own base64/hashlib/hmac
(and k6's documented vector), then the JS modules as a script's init context sees them
(values exported through ``options.ext``), ArrayBuffers both ways, and errors naming the
script's line."""

from __future__ import annotations

import base64
import hashlib
import hmac
import pathlib

import pytest

from mcgw.loadtest import script, stdlib


def test_b64_variants_follow_go() -> None:
    data = b"\xfb\xff\xfe hello"
    assert stdlib.b64encode(data) == base64.b64encode(data).decode()
    assert stdlib.b64encode(data, "url") == base64.urlsafe_b64encode(data).decode()
    assert stdlib.b64encode(data, "rawurl") == base64.urlsafe_b64encode(data).decode().rstrip("=")
    assert stdlib.b64encode(data, "rawstd") == base64.b64encode(data).decode().rstrip("=")
    assert stdlib.b64encode(data, "nonsense") == stdlib.b64encode(data, "std")  # k6's default
    for enc in ("std", "rawstd", "url", "rawurl"):
        assert stdlib.b64decode(stdlib.b64encode(data, enc), enc) == data
    with pytest.raises(stdlib.LibError):
        stdlib.b64decode("aGk", "std")  # std needs its padding
    with pytest.raises(stdlib.LibError):
        stdlib.b64decode("aGk=", "rawstd")  # raw refuses it
    with pytest.raises(stdlib.LibError):
        stdlib.b64decode("+/8=", "url")  # not the url alphabet


def test_digests_and_hmac_match_hashlib() -> None:
    # k6's documentation: sha256('hello world!', 'hex')
    assert stdlib.digest("sha256", [b"hello ", b"world!"]).hex() == (
        "7509e5bda0c762d2bac7f90d758b5b2263fa01ccbc542ab5e3df163be08e6ca9"
    )
    for alg in ("md5", "sha1", "sha384", "sha512", "sha512_224", "sha512_256", "ripemd160"):
        assert stdlib.digest(alg, [b"x"]) == hashlib.new(alg, b"x").digest()
    mac = stdlib.digest("sha256", [b"data"], key=b"secret")
    assert mac == hmac.new(b"secret", b"data", "sha256").digest()
    assert stdlib.encode_digest(mac, "base64rawurl") == base64.urlsafe_b64encode(
        mac
    ).decode().rstrip("=")
    with pytest.raises(stdlib.LibError, match="Invalid output encoding: hexx"):
        stdlib.encode_digest(mac, "hexx")
    with pytest.raises(stdlib.LibError, match="unsupported hash algorithm 'sha3'"):
        stdlib.digest("sha3", [b"x"])
    assert len(stdlib.random_bytes(16)) == 16


JS = """\
import encoding from 'k6/encoding';
import { b64decode } from 'k6/encoding';
import crypto from 'k6/crypto';
import { sha256, createHMAC } from 'k6/crypto';

const bytes = new Uint8Array([0, 1, 200, 255]).buffer;
const hasher = crypto.createHash('sha1');
hasher.update('hello ');
hasher.update(new Uint8Array([119, 111, 114, 108, 100, 33]).buffer);
const mac = createHMAC('sha512', 'secret');
mac.update('da');
mac.update('ta');
const decoded = b64decode('AAHI/w==');
const bin = crypto.md5('é', 'binary');
const random = crypto.randomBytes(8);
export const options = {
  ext: {
    std: encoding.b64encode('héllo'),
    rawurl: encoding.b64encode(bytes, 'rawurl'),
    decodedString: b64decode('aMOpbGxv', 'std', 's'),
    decoded: [decoded instanceof ArrayBuffer, Array.from(new Uint8Array(decoded))],
    sha256: sha256('hello world!', 'hex'),
    sha1: hasher.digest('hex'),
    sha1again: hasher.digest('base64'),
    hmac: mac.digest('base64url'),
    hmacOnce: crypto.hmac('sha256', bytes, 'data', 'hex'),
    md5bin: [bin instanceof ArrayBuffer, Array.from(new Uint8Array(bin))],
    random: [random instanceof ArrayBuffer, random.byteLength],
    ripemd: crypto.ripemd160('x', 'hex'),
    sha512_224: crypto.sha512_224('x', 'base64'),
  },
};
export default function () {}
"""


def test_js_modules_in_the_init_context(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "lib.js"
    path.write_text(JS)
    ext = script.load(str(path), {}).options["ext"]
    raw = bytes([0, 1, 200, 255])
    assert ext == {  # type: ignore[comparison-overlap]
        "std": base64.b64encode("héllo".encode()).decode(),
        "rawurl": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "decodedString": "héllo",
        "decoded": [True, list(raw)],
        "sha256": hashlib.sha256(b"hello world!").hexdigest(),
        "sha1": hashlib.sha1(b"hello world!").hexdigest(),
        "sha1again": base64.b64encode(hashlib.sha1(b"hello world!").digest()).decode(),
        "hmac": base64.urlsafe_b64encode(hmac.new(b"secret", b"data", "sha512").digest()).decode(),
        "hmacOnce": hmac.new(raw, b"data", "sha256").hexdigest(),
        "md5bin": [True, list(hashlib.md5("é".encode()).digest())],
        "random": [True, 8],
        "ripemd": hashlib.new("ripemd160", b"x").hexdigest(),
        "sha512_224": base64.b64encode(hashlib.new("sha512_224", b"x").digest()).decode(),
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("const x = crypto.md5('a', 'hexx');", "Invalid output encoding: hexx"),
        ("const x = crypto.createHash('sha3');", "unsupported hash algorithm 'sha3'"),
        ("const x = crypto.md4('a', 'hex');", "not available in this Python's hashlib"),
        ("const x = encoding.b64decode('a=b');", "illegal base64 data"),
        ("const x = crypto.getRandomValues(1);", "k6/crypto.getRandomValues is not supported"),
        ("const { nope } = encoding; nope('x');", "k6/encoding.nope is not supported"),
    ],
)
def test_js_misuse_names_the_line(tmp_path: pathlib.Path, line: str, message: str) -> None:
    path = tmp_path / "bad.js"
    path.write_text(
        "import crypto from 'k6/crypto';\nimport encoding from 'k6/encoding';\n\n"
        f"{line}\nexport default function () {{}}\n"
    )
    with pytest.raises(script.ScriptLoadError, match=rf"bad\.js:4: .*{message}"):
        script.load(str(path), {})

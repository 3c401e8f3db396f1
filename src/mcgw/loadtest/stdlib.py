"""k6's ``k6/encoding`` and ``k6/crypto`` over Python's base64, hashlib, hmac and secrets.

The functions here are the pure core, in Python terms (bytes in, str or bytes out), with
k6's names and rules; Python scenarios may call them directly (``stdlib.b64encode(b"x",
"rawurl")``) though the standard library serves as well. :data:`JS_MODULE` puts them
behind k6's JavaScript API: binary data (an ``ArrayBuffer`` or a typed array) crosses as
a string of code points 0–255 and becomes an ``ArrayBuffer`` again in JS; a JS string
is hashed or encoded as its UTF-8 bytes, as k6 (Go) does.

k6's rules kept: ``b64encode``/``b64decode`` take ``std`` (the default for an unknown
name), ``rawstd`` (no padding), ``url``, ``rawurl``; ``b64decode`` returns an
``ArrayBuffer`` unless its format is ``"s"``. Digests are ``hex``, ``base64``,
``base64url``, ``base64rawurl`` or ``binary`` (an ``ArrayBuffer``); another name is
k6's error ``Invalid output encoding``. ``md4`` is not in this Python's OpenSSL: asking
for it is an error saying so.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from typing import Any

from mcgw.loadtest import errors


class LibError(errors.LoadError):
    """A k6/encoding or k6/crypto call k6 would refuse (the message is k6's, or says why)."""


_ENCODINGS: dict[str, tuple[bytes, bool]] = {
    "std": (b"+/", True),
    "rawstd": (b"+/", False),
    "url": (b"-_", True),
    "rawurl": (b"-_", False),
}
"""Base64 variants: the two last alphabet characters and whether output is padded."""


def b64encode(data: bytes, encoding: str = "std") -> str:
    """k6's ``encoding.b64encode``: an unknown ``encoding`` is ``std``, as in k6."""
    alt, padded = _ENCODINGS.get(encoding, _ENCODINGS["std"])
    text = base64.b64encode(data, altchars=alt).decode("ascii")
    return text if padded else text.rstrip("=")


def b64decode(text: str, encoding: str = "std") -> bytes:
    """k6's ``encoding.b64decode`` (strict, as Go's decoder: the raw variants refuse
    padding, the padded ones require it).

    Raises:
        LibError: not valid base64 of that variant.
    """
    alt, padded = _ENCODINGS.get(encoding, _ENCODINGS["std"])
    if not padded:
        if "=" in text:
            raise LibError(f"b64decode: illegal base64 data at input byte {text.index('=')}")
        text += "=" * (-len(text) % 4)
    bad = next((i for i, c in enumerate(text) if c in "+/"), -1) if alt == b"-_" else -1
    if bad >= 0:  # (Python maps the url alphabet onto the std one, which it also takes)
        raise LibError(f"b64decode: illegal base64 data at input byte {bad}")
    try:
        return base64.b64decode(text.encode("ascii"), altchars=alt, validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise LibError(f"b64decode: illegal base64 data ({exc})") from None


HASHES = (
    "md4",
    "md5",
    "sha1",
    "sha256",
    "sha384",
    "sha512",
    "sha512_224",
    "sha512_256",
    "ripemd160",
)
"""k6/crypto's hash algorithms."""

DIGEST_ENCODINGS = ("hex", "base64", "base64url", "base64rawurl", "binary")


def _constructor(algorithm: str) -> Callable[..., Any]:
    if algorithm not in HASHES:
        raise LibError(
            f"unsupported hash algorithm {algorithm!r} (k6/crypto has {', '.join(HASHES)})"
        )
    if algorithm not in hashlib.algorithms_available:
        raise LibError(
            f"hash algorithm {algorithm!r} is not available in this Python's hashlib "
            "(OpenSSL 3 leaves md4 out)"
        )

    def new(data: bytes = b"") -> Any:
        return hashlib.new(algorithm, data)

    return new


def digest(algorithm: str, chunks: list[bytes], key: bytes | None = None) -> bytes:
    """The hash (``key`` None) or HMAC of ``chunks`` concatenated.

    Raises:
        LibError: an algorithm k6 does not have, or this Python cannot compute.
    """
    new = _constructor(algorithm)
    h = new() if key is None else hmac.new(key, digestmod=new)
    for chunk in chunks:
        h.update(chunk)
    return bytes(h.digest())


def encode_digest(raw: bytes, encoding: str) -> str | bytes:
    """A digest in k6's output encoding (``binary``: the bytes).

    Raises:
        LibError: another encoding (k6's message).
    """
    if encoding == "hex":
        return raw.hex()
    if encoding == "base64":
        return b64encode(raw, "std")
    if encoding == "base64url":
        return b64encode(raw, "url")
    if encoding == "base64rawurl":
        return b64encode(raw, "rawurl")
    if encoding == "binary":
        return raw
    raise LibError(f"Invalid output encoding: {encoding}")


def random_bytes(size: int) -> bytes:
    """k6's ``crypto.randomBytes``: ``size`` cryptographically random bytes."""
    if size < 1:
        raise LibError("invalid size")
    return secrets.token_bytes(size)


# ----------------------------------------------------------------------- JS binding

JS_MODULE = r"""
(function (lib) {
  // Binary data crosses as a string of code points 0-255, tagged 'b'; a JS string as 's'.
  function arg(x) {
    if (typeof x === 'string') { return ['s', x]; }
    var bytes = null;
    if (x instanceof ArrayBuffer) { bytes = new Uint8Array(x); }
    else if (ArrayBuffer.isView(x)) {
      bytes = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    }
    else if (Array.isArray(x)) { bytes = Uint8Array.from(x); }
    if (bytes === null) { return ['s', String(x)]; }
    var parts = [];
    for (var i = 0; i < bytes.length; i += 4096) {
      parts.push(String.fromCharCode.apply(null, bytes.subarray(i, i + 4096)));
    }
    return ['b', parts.join('')];
  }
  function buffer(text) {
    var out = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) { out[i] = text.charCodeAt(i); }
    return out.buffer;
  }
  function call(op, args) {
    var out = JSON.parse(lib(op, JSON.stringify(args)));
    if (out.__error) { throw new Error(out.__error); }
    return out.b === undefined ? out.s : buffer(out.b);
  }
  // Unknown members are errors, not silent undefineds. QuickJS tags a frame with the line
  // of its latest call, so a member read would be reported at an earlier line: the member
  // is a stand-in that throws when called (at the call's line) or read further.
  function strict(name, obj) {
    return new Proxy(obj, {
      get: function (target, key) {
        if (key in target || typeof key === 'symbol' || key === 'toJSON' || key === 'then') {
          return target[key];
        }
        var message = name + '.' + String(key) + ' is not supported by mcgw load';
        function fail() { throw new Error(message); }
        return new Proxy(fail, { apply: fail, construct: fail, get: fail, set: fail });
      },
    });
  }
  var encoding = {
    b64encode: function (input, enc) { return call('b64encode', [arg(input), enc || 'std']); },
    b64decode: function (input, enc, format) {
      return call('b64decode', [String(input), enc || 'std', format === 's' ? 's' : 'b']);
    },
  };
  function Hasher(algorithm, key) {
    this._alg = String(algorithm);
    this._key = key === undefined ? null : arg(key);
    this._chunks = [];
    call('check', [this._alg]);
  }
  Hasher.prototype.update = function (input) { this._chunks.push(arg(input)); };
  Hasher.prototype.digest = function (enc) {
    return call('digest', [this._alg, this._key, this._chunks, String(enc)]);
  };
  var crypto = {
    createHash: function (alg) { return new Hasher(alg); },
    createHMAC: function (alg, secret) { return new Hasher(alg, secret); },
    hmac: function (alg, secret, data, enc) {
      var h = new Hasher(alg, secret);
      h.update(data);
      return h.digest(enc);
    },
    randomBytes: function (n) { return call('randomBytes', [Number(n)]); },
  };
  ['md4', 'md5', 'sha1', 'sha256', 'sha384', 'sha512', 'sha512_224', 'sha512_256',
   'ripemd160'].forEach(function (alg) {
    crypto[alg] = function (input, enc) {
      var h = new Hasher(alg);
      h.update(input);
      return h.digest(enc);
    };
  });
  __k6.modules['k6/encoding'] = strict('k6/encoding', encoding);
  __k6.modules['k6/crypto'] = strict('k6/crypto', crypto);
  __k6.strict = strict;
})(__py_lib);
"""


def _bytes(spec: list[str]) -> bytes:
    kind, text = spec
    # A JS string is hashed as UTF-8 (as k6's Go strings); binary data is code points 0-255.
    return text.encode("latin-1") if kind == "b" else text.encode("utf-8", "surrogatepass")


def _out(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return json.dumps({"b": value.decode("latin-1")})
    return json.dumps({"s": value})


def js_call(op: str, args_json: str) -> str:
    """The JS module's one Python callable: never raises into QuickJS (errors come back
    as ``{"__error": …}``, thrown by the module at the script's line)."""
    try:
        args = json.loads(args_json)
        if op == "b64encode":
            return _out(b64encode(_bytes(args[0]), str(args[1])))
        if op == "b64decode":
            raw = b64decode(str(args[0]), str(args[1]))
            return _out(raw.decode("utf-8", "replace") if args[2] == "s" else raw)
        if op == "check":
            _constructor(str(args[0]))
            return _out("")
        if op == "digest":
            alg, key, chunks, enc = args
            raw = digest(
                str(alg), [_bytes(c) for c in chunks], None if key is None else _bytes(key)
            )
            return _out(encode_digest(raw, str(enc)))
        if op == "randomBytes":
            return _out(random_bytes(int(args[0])))
    except LibError as exc:
        return json.dumps({"__error": str(exc)})
    except (ValueError, TypeError, IndexError) as exc:
        return json.dumps({"__error": f"{op}: {exc}"})
    return json.dumps({"__error": f"{op} is not supported by mcgw load"})


def install_js(ctx: Any) -> str:
    """Add ``k6/encoding``'s and ``k6/crypto``'s callable to a QuickJS context; returns
    the JS to evaluate after the k6 prelude, in the same evaluation (its lines are the
    prelude's, past the script's: padding a module of its own to such lines with newlines
    would cost QuickJS ~20 instructions a newline, per VU)."""
    ctx.add_callable("__py_lib", js_call)
    return JS_MODULE

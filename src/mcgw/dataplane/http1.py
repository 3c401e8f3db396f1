"""A strict HTTP/1.1 request parser (RFC 9112 framing, RFC 9110 field syntax).

Pure: bytes in, callbacks out, no sockets. It keeps the callback interface the
client protocol was written against (``on_message_begin``, ``on_url``,
``on_header``, ``on_headers_complete``, ``on_body``, ``on_message_complete``) and
raises a :class:`errors.ProxyError` carrying the status to answer for anything it
does not accept. After an error the parser is dead: the connection must close.

Why not llhttp (httptools) alone: it hides the request line it rejected (so 400,
501 and 505 cannot be told apart) and has no say on several forms a proxy must not
pass on. Here the whole head is checked against the grammar (one compiled regular
expression, one pass) before anything is called back, so no request the gateway
forwards was ambiguous. A read holding a whole head goes straight to it; valid Host
values and header-name spellings are remembered (bounded). ``bench/http1_parse.py``
measures it: about 5× llhttp's CPU time for a small GET (3 µs against 0.6 µs here;
the Python loop over header lines and the callbacks dominate):

* request line: ``token SP request-target SP HTTP/d.d``, one space each (400);
  a major version other than 1 is 505, HTTP/1.x above 1.1 is read as 1.1 (RFC
  9112 2.3); an unknown method or CONNECT is 501; a target must be origin-form,
  absolute-form (http/https, a host, no userinfo) or ``*`` for OPTIONS, without
  fragment, with valid percent-encoding (400); longer than the limit is 414.
* field lines: ``token ":" OWS value OWS`` CRLF, no obs-fold, no whitespace before
  the colon, no CTL but HTAB, no bare CR or LF (400); a head beyond the limit 431.
* Host: exactly one on HTTP/1.1, valid ``uri-host [":" port]``; an absolute-form
  target's authority must equal it (400).
* framing (RFC 9112 6): Content-Length is one header of ``1*DIGIT``; with
  Transfer-Encoding, or Transfer-Encoding on HTTP/1.0, is 400; Transfer-Encoding must
  end in one ``chunked`` (400), and a coding other than chunked is 501.
* chunked bodies: hex size (no sign, no whitespace, at most 15 digits), extensions of
  the RFC's grammar within :data:`MAX_CHUNK_LINE`, CRLF after each chunk, trailer
  field lines of the same syntax as headers (400).
"""

from __future__ import annotations

import re
from typing import Protocol

from mcgw.dataplane import errors

MAX_CHUNK_LINE = 4096
"""Longest chunk-size line, extensions included (400 beyond)."""
MAX_LEADING_CRLF = 8
"""Empty lines tolerated before a request line (RFC 9112 2.2 asks for at least one)."""

METHODS = frozenset(
    (
        b"GET",
        b"HEAD",
        b"POST",
        b"PUT",
        b"DELETE",
        b"OPTIONS",
        b"TRACE",
        b"PATCH",
        b"QUERY",
        # WebDAV, CalDAV and friends (IANA HTTP Method Registry).
        b"ACL",
        b"BASELINE-CONTROL",
        b"BIND",
        b"CHECKIN",
        b"CHECKOUT",
        b"COPY",
        b"LABEL",
        b"LINK",
        b"LOCK",
        b"MERGE",
        b"MKACTIVITY",
        b"MKCALENDAR",
        b"MKCOL",
        b"MKREDIRECTREF",
        b"MKWORKSPACE",
        b"MOVE",
        b"ORDERPATCH",
        b"PROPFIND",
        b"PROPPATCH",
        b"REBIND",
        b"REPORT",
        b"SEARCH",
        b"UNBIND",
        b"UNCHECKOUT",
        b"UNLINK",
        b"UNLOCK",
        b"UPDATE",
        b"UPDATEREDIRECTREF",
        b"VERSION-CONTROL",
    )
)
"""Methods forwarded; any other token is 501 (CONNECT too: the gateway tunnels only
WebSocket upgrades)."""

_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_TOKEN = _TCHAR + rb"+"
_TOKEN_RE = re.compile(_TOKEN)
_PCT = rb"%[0-9A-Fa-f]{2}"
_PCHAR = rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|" + _PCT + rb")"
_QUERY = rb"(?:\?(?:" + _PCHAR + rb"|[/?])*)?"
_REG_NAME = rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|" + _PCT + rb")*"
_IP_LITERAL = rb"\[[0-9A-Fa-f:.]+\]|\[[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+\]"
_HOST = rb"(?:" + _IP_LITERAL + rb"|" + _REG_NAME + rb")(?::[0-9]*)?"

_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([^ \r\n]+) HTTP/([0-9])\.([0-9])\r\n")
_ORIGIN_FORM = re.compile(rb"/(?:" + _PCHAR + rb"|/)*" + _QUERY)
_ABSOLUTE_FORM = re.compile(
    rb"[Hh][Tt][Tt][Pp][Ss]?://(" + _HOST + rb")(?:/(?:" + _PCHAR + rb"|/)*)?" + _QUERY
)
_HOST_VALUE = re.compile(_HOST)
_FIELD_LINE = _TOKEN + rb":[\t\x20-\x7e\x80-\xff]*\r\n"
_FIELD_LINES = re.compile(rb"(?:" + _FIELD_LINE + rb")*")
_HEAD_LINES = re.compile(_REQUEST_LINE.pattern + rb"(?:" + _FIELD_LINE + rb")*")
"""A whole valid head at once (request line and field lines, one C pass): when it
fails, the checks are made again one by one to say why."""
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]+)(?:[ \t]*;[ \t]*"
    + _TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + _TOKEN
    + rb'|"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"))?)*'
)

# Header names the parser reads itself (lower-case).
_OTHER = 0
_HOST_KIND = 1
_CL = 2
_TE = 3
_CONN = 4
_UPGRADE = 5
_LOOKALIKE = 6
"""``Transfer_Encoding``, ``Content_Length``, ``Host``-alikes: dropped, never passed on
(servers that map ``_`` to ``-``, as CGI does, would read them as framing)."""
_KINDS = {
    b"host": _HOST_KIND,
    b"content-length": _CL,
    b"transfer-encoding": _TE,
    b"connection": _CONN,
    b"upgrade": _UPGRADE,
}
_kind_cache: dict[bytes, int] = {}
_KIND_CACHE_MAX = 4096
"""Raw spellings remembered; beyond, names are lower-cased each time (no growth from
a client inventing names)."""
_valid_hosts: set[bytes] = set()
"""Host values found valid (a gateway sees few): a set lookup instead of the check."""
_VALID_HOSTS_MAX = 4096
_CACHED_MAX_LEN = 256
"""Longer names and hosts are not remembered (both caches stay under a few MB)."""

# Parser states.
_HEAD = 0
_BODY = 1
_CHUNK_SIZE = 2
_CHUNK_DATA = 3
_CHUNK_END = 4
_TRAILERS = 5
_CLOSED = 6
_DEAD = 7

_PREFACE_LINE = b"PRI * HTTP/2.0"
_LINE_OVERHEAD = 64
"""Request line bytes allowed beyond the target's limit: method, spaces, version."""


class Callbacks(Protocol):
    """What the parser calls, in this order per request."""

    def on_message_begin(self) -> None: ...
    def on_url(self, url: bytes) -> None: ...
    def on_header(self, name: bytes, value: bytes) -> None: ...
    def on_headers_complete(self) -> None: ...
    def on_body(self, body: bytes) -> None: ...
    def on_message_complete(self) -> None: ...


class Upgrade(Exception):
    """A request asked to switch protocols: parsing stops after its message.

    ``offset`` is where, in the data just fed, the bytes after that message begin.
    """

    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


class H2Preface(Exception):
    """The connection opened with the HTTP/2 preface (prior knowledge)."""


_PATH_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?"
"""Characters an origin-form target may hold anywhere (``%`` aside): when nothing else
is in it, the regular expression need not run (the common case, cheaper)."""
_HEX_DIGITS = b"0123456789ABCDEFabcdef"
_NAME_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;="


def _valid_host(host: bytes) -> bool:
    """Whether ``host`` is ``uri-host [":" port]`` (RFC 9110 7.2), the common forms fast."""
    name, colon, port = host.rpartition(b":")
    if not colon:
        name = port
    elif not (port.isdigit() or not port) or not port.isascii():
        return _HOST_VALUE.fullmatch(host) is not None
    if name and not name.translate(None, _NAME_CHARS):
        return True
    return _HOST_VALUE.fullmatch(host) is not None


def _kind(name: bytes) -> int:
    lower = name.lower()
    kind = _KINDS.get(lower, _OTHER)
    if not kind and b"_" in lower and lower.replace(b"_", b"-") in _KINDS:
        return _LOOKALIKE
    return kind


def _bad(message: str) -> errors.BadRequest:
    return errors.BadRequest(message)


def field_line_problem(line: bytes) -> str:
    """Say what is wrong with a field line the grammar refused (for the log)."""
    if line[:1] in (b" ", b"\t"):
        return "obs-fold (line folding) in a field"
    name, colon, _ = line.partition(b":")
    if not colon:
        return "field line without a colon"
    if name[-1:] in (b" ", b"\t"):
        return "whitespace before the colon of a field name"
    if not _TOKEN_RE.fullmatch(name):
        return "invalid character in a field name"
    if b"\n" in line:
        return "bare LF in a field line"
    if b"\r" in line:
        return "bare CR in a field line"
    if b"\0" in line:
        return "NUL in a field value"
    return "invalid character in a field value"


def transfer_coding_error(value: bytes) -> errors.ProxyError | None:
    """Check a request's (combined) Transfer-Encoding: None when it is one final chunked.

    RFC 9112 6.3: chunked not last is a framing error (400); chunked twice is not
    allowed (6.1, 400); any other coding is not understood (501, 6.1).
    """
    codings = [c.strip(b" \t") for c in value.split(b",")]
    codings = [c for c in codings if c]  # empty list elements are ignored (RFC 9110 5.6.1)
    if not codings:
        return _bad("empty Transfer-Encoding")
    names = []
    for coding in codings:
        name = coding.partition(b";")[0].rstrip(b" \t")
        if not _TOKEN_RE.fullmatch(name):
            return _bad("invalid Transfer-Encoding")
        names.append(name.lower())
    if names[-1] != b"chunked" or b";" in codings[-1]:
        return _bad("Transfer-Encoding does not end in chunked")
    if names.count(b"chunked") > 1:
        return _bad("chunked applied more than once")
    if len(names) > 1:
        return errors.NotImplementedCoding("transfer coding other than chunked")
    return None


def content_length(values: list[bytes]) -> int:
    """The body length of one Content-Length header's value (ProxyError if invalid).

    Stricter than RFC 9110 8.6's leniency for ``5, 5``: one header, one number.
    """
    if len(values) != 1:
        raise _bad("several Content-Length headers")
    value = values[0]
    if not value.isdigit() or not value.isascii():
        raise _bad("invalid Content-Length")
    if len(value) > 18:
        # Valid but beyond any body limit; not converted (no huge integers).
        raise errors.BodyTooLarge()
    return int(value)


class RequestParser:
    """Parses the requests of one client connection, calling ``cb`` back.

    Args:
        cb: the callbacks (the client protocol).
        max_target: longest request target, in bytes (414 beyond).
        max_fields: largest field section (headers, and trailers), in bytes (431 beyond).
    """

    __slots__ = (
        "_acc",
        "_begun",
        "_buf",
        "_cb",
        "_chunked",
        "_crlfs",
        "_keep_alive",
        "_max_fields",
        "_max_target",
        "_method",
        "_remaining",
        "_state",
        "_trailer_bytes",
        "_upgrade",
        "_version",
    )

    def __init__(self, cb: Callbacks, *, max_target: int, max_fields: int) -> None:
        self._cb = cb
        self._max_target = max_target
        self._max_fields = max_fields
        self._buf = b""
        """Unparsed bytes of a chunk line or CRLF split by reads."""
        self._acc: bytearray | None = None
        """The unfinished head of a request (all of it from its first byte)."""
        self._begun = False
        self._crlfs = 0
        """Empty lines read since the last request (bounded)."""
        self._state = _HEAD
        self._method = b""
        self._version = "1.1"
        self._keep_alive = True
        self._upgrade = False
        self._chunked = False
        self._remaining = 0
        self._trailer_bytes = 0

    def get_method(self) -> bytes:
        return self._method

    def get_http_version(self) -> str:
        return self._version

    def should_keep_alive(self) -> bool:
        return self._keep_alive

    def feed_data(self, data: bytes) -> None:
        """Parse ``data``, the next bytes of the connection.

        Raises:
            errors.ProxyError: the request is not acceptable; nothing more is parsed.
            Upgrade: a request asked to switch protocols (after its message).
            H2Preface: the connection is HTTP/2 with prior knowledge.
        """
        state = self._state
        if state >= _CLOSED:
            return
        try:
            acc = self._acc
            if acc is not None:
                # A head arriving in pieces: grown in place and searched only where it
                # is new, so a head dripping in byte by byte costs linear time.
                prev = len(acc)
                acc += data
                seen = max(0, prev - 3)
                if acc.find(b"\r\n\r\n", seen) < 0:
                    self._incomplete(acc, seen)
                    return
                self._acc = None
                buf = bytes(acc)
            elif self._buf:
                prev = len(self._buf)
                buf = self._buf + data
                self._buf = b""
            else:
                prev = 0
                buf = data
                if state == _HEAD and not self._begun:
                    # The usual read: it starts with a whole request head. Straight to
                    # it, without the general loop; whatever follows goes through it.
                    end = data.find(b"\r\n\r\n")
                    if end > 0 and data[0] != 13:
                        self._begun = True
                        self._cb.on_message_begin()
                        self._head_parsed(data, 0, end + 2)
                        pos = end + 4
                        if self._state == _HEAD:  # no body: the message is complete
                            pos = self._complete(pos, 0)
                        if pos == len(data):
                            return
                        pos = self._parse(data, 0, pos)
                        if pos < len(data) and self._state < _CLOSED:
                            self._keep(data, pos)
                        return
            pos = self._parse(buf, prev, 0)
        except BaseException:
            self._state = _DEAD
            raise
        if pos < len(buf) and self._state < _CLOSED:
            self._keep(buf, pos)

    def _keep(self, buf: bytes, pos: int) -> None:
        """Keep ``buf[pos:]``, not parsed yet, for the next read."""
        if self._state == _HEAD and self._begun:
            self._acc = bytearray(buf[pos:])
        else:
            self._buf = buf[pos:]

    def _parse(self, buf: bytes, prev: int, pos: int) -> int:
        """Consume what it can of ``buf`` from ``pos``; return where the unconsumed
        bytes begin."""
        n = len(buf)
        cb = self._cb
        while pos < n:
            state = self._state
            if state == _HEAD:
                if not self._begun:
                    while buf.startswith(b"\r\n", pos):
                        pos += 2
                        self._crlfs += 1
                        if self._crlfs > MAX_LEADING_CRLF:
                            self._begun = True
                            cb.on_message_begin()  # the error is this request's
                            raise _bad("too many empty lines before the request")
                    if pos >= n or buf[pos:] == b"\r":
                        return pos
                    # The first byte of a request: its head deadline starts now.
                    self._begun = True
                    cb.on_message_begin()
                # Bytes buffered from earlier reads were searched already: a head
                # dripping in a byte at a time costs linear time, not quadratic.
                seen = max(pos, prev - 3)
                end = buf.find(b"\r\n\r\n", seen)
                if end < 0:
                    self._incomplete(buf[pos:], seen - pos)
                    return pos
                self._head_parsed(buf, pos, end + 2)
                pos = end + 4
                if self._state == _HEAD:  # no body: the message is complete
                    pos = self._complete(pos, prev)
            elif state == _BODY:
                take = min(self._remaining, n - pos)
                cb.on_body(buf[pos : pos + take] if pos or take < n else buf)
                pos += take
                self._remaining -= take
                if not self._remaining:
                    pos = self._complete(pos, prev)
            elif state == _CHUNK_DATA:
                take = min(self._remaining, n - pos)
                cb.on_body(buf[pos : pos + take])
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if n - pos < 2:
                    if buf[pos:] != b"\r":
                        raise _bad("chunk data not followed by CRLF")
                    return pos
                if buf[pos : pos + 2] != b"\r\n":
                    raise _bad("chunk data not followed by CRLF")
                pos += 2
                self._state = _CHUNK_SIZE
            elif state in (_CHUNK_SIZE, _TRAILERS):
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    rest = buf[pos:]
                    if b"\n" in rest or b"\r" in rest[:-1]:
                        raise _bad("bare CR or LF in chunked framing")
                    if n - pos > MAX_CHUNK_LINE:
                        raise _bad("chunk line too long")
                    return pos
                line = buf[pos:eol]
                pos = eol + 2
                if state == _CHUNK_SIZE:
                    self._chunk_size(line)
                elif line:
                    self._trailer(line)
                else:
                    pos = self._complete(pos, prev)
            else:  # closed or dead: the rest is not read
                return n
        return pos

    # -- the head ---------------------------------------------------------------------

    def _incomplete(self, rest: bytes | bytearray, seen: int) -> None:
        """Reject an unfinished head early when it can never become valid.

        Each check, true of a prefix, stays true of anything longer, and they are made
        in the order :meth:`_head_parsed` makes them: however the bytes are split, the
        answer is the same. ``rest[:seen]`` was checked by earlier calls already.
        """
        eol = rest.find(b"\r\n")
        line_limit = self._max_target + _LINE_OVERHEAD
        if eol > line_limit or (eol < 0 and len(rest) > line_limit):
            raise errors.UriTooLong("request line too long")
        if eol >= 0 and len(rest) - eol > self._max_fields:
            raise errors.HeadersTooLarge("request head too large")
        new = rest[seen:]  # (from up to 3 bytes before the new ones: CR LF split by reads)
        if new.count(b"\n") != new.count(b"\r\n") + (seen > 0 and new[:1] == b"\n"):
            raise _bad("bare LF in the request head")
        line = rest if eol < 0 else rest[:eol]
        sp = line.find(b" ")
        method = line if sp < 0 else line[:sp]
        if method and not _TOKEN_RE.fullmatch(method):
            raise _bad("invalid method")

    def _head_parsed(self, buf: bytes, pos: int, end: int) -> None:
        """Check and call back the head in ``buf[pos:end]`` (its last line's CRLF
        included, not the empty line)."""
        cb = self._cb
        eol = buf.find(b"\r\n", pos)
        if eol - pos > self._max_target + _LINE_OVERHEAD:
            raise errors.UriTooLong("request line too long")
        if end - eol - 2 > self._max_fields:
            raise errors.HeadersTooLarge("request head too large")
        m = _HEAD_LINES.fullmatch(buf, pos, end)
        if m is None:
            raise self._head_error(buf, pos, eol, end)
        method, target, major, minor = m.groups()
        if major != b"1":
            if buf.startswith(_PREFACE_LINE, pos) and eol + 2 == end:
                raise H2Preface()
            raise errors.VersionNotSupported(f"HTTP/{major.decode()}.{minor.decode()}")
        http10 = minor == b"0"
        if method not in METHODS:
            if method == b"PRI":  # only ever the HTTP/2 preface (RFC 9113 3.4)
                raise _bad("PRI request that is not the HTTP/2 preface")
            raise errors.NotImplementedMethod(f"method {method.decode('latin-1')!r}")
        if len(target) > self._max_target:
            raise errors.UriTooLong("request target too long")
        absolute: bytes | None = None
        if target[0] == 47:  # "/": origin-form
            if target.translate(None, _PATH_CHARS) and _ORIGIN_FORM.fullmatch(target) is None:
                raise _bad("invalid request target")
        elif target == b"*":
            if method != b"OPTIONS":
                raise _bad("asterisk-form target on a method other than OPTIONS")
        else:
            am = _ABSOLUTE_FORM.fullmatch(target)
            if am is None or not am.group(1) or am.group(1)[:1] == b":":
                raise _bad("invalid request target")
            absolute = am.group(1).lower()
        self._method = method
        self._version = "1.0" if http10 else "1.1"
        cb.on_url(target)
        host: bytes | None = None
        hosts = 0
        length: bytes | None = None
        lengths = 0
        te = b""
        tes = 0
        conn = b""
        upgrade = False
        cache = _kind_cache
        on_header = cb.on_header
        # The grammar held: each line is ``name ":" value``, the value's OWS stripped.
        for field in buf[eol + 2 : end - 2].split(b"\r\n") if eol + 2 < end else ():
            name, _, value = field.partition(b":")
            value = value.strip(b" \t")
            kind = cache.get(name)
            if kind is None:
                kind = _kind(name)
                if len(cache) < _KIND_CACHE_MAX and len(name) <= _CACHED_MAX_LEN:
                    cache[name] = kind
            if kind:
                if kind == _LOOKALIKE:
                    continue
                if kind == _HOST_KIND:
                    hosts += 1
                    host = value
                elif kind == _CL:
                    # Checked before the callback sees it: it may convert it.
                    if not value.isdigit() or not value.isascii():
                        raise _bad("invalid Content-Length")
                    length = value
                    lengths += 1
                elif kind == _TE:
                    te = value if not tes else te + b"," + value
                    tes += 1
                elif kind == _CONN:
                    conn = value if not conn else conn + b"," + value
                else:
                    upgrade = True
            on_header(name, value)
        if hosts != 1:
            if hosts:
                raise _bad("several Host headers")
            if not http10:
                raise _bad("HTTP/1.1 request without Host")
        elif host not in _valid_hosts:
            assert host is not None
            if not _valid_host(host):
                raise _bad("invalid Host")
            if len(_valid_hosts) < _VALID_HOSTS_MAX and len(host) <= _CACHED_MAX_LEN:
                _valid_hosts.add(host)
        if absolute is not None and host is not None and host.lower() != absolute:
            raise _bad("absolute-form target disagrees with Host")
        keep = not http10
        if conn:
            lower = conn.lower()
            if lower == b"keep-alive":  # the common values without splitting
                keep = True
                upgrade = False
            elif lower == b"close":
                keep = False
                upgrade = False
            else:
                tokens = [t.strip(b" \t") for t in lower.split(b",")]
                if b"close" in tokens:
                    keep = False
                elif b"keep-alive" in tokens:
                    keep = True
                upgrade = upgrade and b"upgrade" in tokens
        else:
            upgrade = False
        self._keep_alive = keep
        self._upgrade = upgrade
        if tes:
            if lengths:
                raise _bad("both Content-Length and Transfer-Encoding")
            if http10:
                raise _bad("Transfer-Encoding in an HTTP/1.0 request")
            if te != b"chunked":  # the one valid value, spelled as usual, not re-checked
                err = transfer_coding_error(te)
                if err is not None:
                    raise err
            self._chunked = True
            self._remaining = 0
            cb.on_headers_complete()
            self._state = _CHUNK_SIZE
            return
        self._chunked = False
        if length is None:
            self._remaining = 0
        elif lengths > 1:
            raise _bad("several Content-Length headers")
        elif len(length) > 18:
            # Valid but beyond any body limit; not converted (no huge integers).
            raise errors.BodyTooLarge()
        else:
            self._remaining = int(length)
        cb.on_headers_complete()
        if self._remaining:
            self._state = _BODY

    def _head_error(self, buf: bytes, pos: int, eol: int, end: int) -> errors.ProxyError:
        """Why the head the whole-head grammar refused is invalid (cold path), the
        checks made in the order a line-by-line reading would make them."""
        m = _REQUEST_LINE.match(buf, pos, end)
        if m is None:
            return self._line_error(buf[pos:eol])
        for bad in buf[m.end() : end].split(b"\r\n"):
            if bad and not _FIELD_LINES.fullmatch(bad + b"\r\n"):
                return _bad(field_line_problem(bad))
        return _bad("invalid field line")

    @staticmethod
    def _line_error(line: bytes) -> errors.ProxyError:
        """The error for a request line the grammar refused (cold path)."""
        parts = line.split(b" ")
        if len(parts) == 2 and _TOKEN_RE.fullmatch(parts[0]):
            return _bad("HTTP/0.9 request")
        if b"\0" in line:
            return _bad("NUL in the request line")
        if b"\r" in line or b"\n" in line:
            return _bad("bare CR or LF in the request line")
        return _bad("invalid request line")

    # -- bodies -----------------------------------------------------------------------

    def _chunk_size(self, line: bytes) -> None:
        if line and not line.translate(None, _HEX_DIGITS):
            digits = line.lstrip(b"0")  # the usual line, bare hex, no regex needed
        else:
            m = _CHUNK_LINE.fullmatch(line)
            if m is None:
                raise _bad("invalid chunk size line")
            digits = m.group(1).lstrip(b"0")
        if len(digits) > 15:
            raise _bad("chunk size too large")
        size = int(digits, 16) if digits else 0
        if size:
            self._remaining = size
            self._state = _CHUNK_DATA
        else:
            self._state = _TRAILERS
            self._trailer_bytes = 0

    def _trailer(self, line: bytes) -> None:
        self._trailer_bytes += len(line)
        if self._trailer_bytes > self._max_fields:
            raise errors.HeadersTooLarge("trailer section too large")
        if _FIELD_LINES.fullmatch(line + b"\r\n") is None:
            raise _bad("trailer: " + field_line_problem(line))

    def _complete(self, pos: int, prev: int) -> int:
        """The message ended at ``pos``: call back, then get ready for the next one."""
        self._state = _HEAD
        self._begun = False
        self._crlfs = 0
        self._cb.on_message_complete()
        if self._upgrade:
            self._state = _CLOSED
            raise Upgrade(pos - prev)
        if not self._keep_alive:
            # RFC 9112 9.6: nothing after a "close" request is read.
            self._state = _CLOSED
        return pos

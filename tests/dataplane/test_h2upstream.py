"""The pure parts of the h2c upstream: header mapping, the send queue, the connection book."""

from __future__ import annotations

from mcgw.dataplane import h2upstream


def test_request_headers_move_host_to_authority_and_drop_hop_by_hop() -> None:
    fields = [
        (b"Host", b"example.com:8080"),
        (b"User-Agent", b"t"),
        (b"Connection", b"keep-alive"),
        (b"Keep-Alive", b"5"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Upgrade", b"h2c"),
        (b"TE", b"gzip"),
        (b"X-Forwarded-For", b"1.2.3.4"),
        (b"Content-Length", b"3"),
    ]
    got = h2upstream.request_headers(b"POST", b"/a/b?x=1&y", fields, b"10.0.0.1:80")
    assert got == [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":authority", b"example.com:8080"),
        (b":path", b"/a/b?x=1&y"),
        (b"user-agent", b"t"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"content-length", b"3"),
    ]


def test_request_headers_keep_te_trailers_and_default_the_authority() -> None:
    got = h2upstream.request_headers(b"GET", b"/", [(b"te", b"Trailers")], b"10.0.0.1:80")
    assert (b":authority", b"10.0.0.1:80") in got
    assert (b"te", b"trailers") in got


def test_request_headers_turn_absolute_form_into_origin_form() -> None:
    got = h2upstream.request_headers(b"GET", b"http://h.example:81/p?q=1", [], b"x")
    assert got[2:4] == [(b":authority", b"h.example:81"), (b":path", b"/p?q=1")]
    got = h2upstream.request_headers(b"OPTIONS", b"*", [(b"host", b"h")], b"x")
    assert got[3] == (b":path", b"*")


def test_response_head_has_a_status_line_and_no_pseudo_or_hop_headers() -> None:
    status, reason, lines, length = h2upstream.response_head(
        [
            (b":status", b"201"),
            (b"content-type", b"text/plain"),
            (b"content-length", b"12"),
            (b"connection", b"close"),
            (b"transfer-encoding", b"chunked"),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
        ],
        b"1.1 mcgw",
    )
    assert (status, reason, length) == (201, b"Created", 12)
    assert lines == [
        b"content-type: text/plain\r\n",
        b"set-cookie: a=1\r\n",
        b"set-cookie: b=2\r\n",
        b"Via: 1.1 mcgw\r\n",
    ]


def test_response_head_appends_to_via_and_knows_odd_statuses() -> None:
    status, reason, lines, length = h2upstream.response_head(
        [(b":status", b"599"), (b"via", b"2 backend")], b"1.1 mcgw"
    )
    assert (status, reason, length) == (599, b"", -1)
    assert lines == [b"Via: 2 backend, 1.1 mcgw\r\n"]


def test_response_head_without_status_is_rejected() -> None:
    for headers in ([(b"x", b"1")], [(b":status", b"abc")], [(b":status", b"42")]):
        try:
            h2upstream.response_head(headers, b"v")
        except h2upstream.BadResponse:
            continue
        raise AssertionError(f"accepted {headers}")


def test_outbox_hands_out_no_more_than_window_and_frame_size() -> None:
    box = h2upstream.Outbox()
    box.push(b"a" * 10)
    box.push(b"")
    box.push(b"b" * 5)
    assert box.size == 15
    assert box.take(0, 4) == []
    assert [bytes(p) for p in box.take(7, 4)] == [b"aaaa", b"aaa"]
    assert box.size == 8
    assert [bytes(p) for p in box.take(100, 4)] == [b"aaa", b"bbbb", b"b"]
    assert box.size == 0
    assert box.take(100, 4) == []


def test_conn_book_one_current_connection_per_endpoint() -> None:
    book: h2upstream.ConnBook[str] = h2upstream.ConnBook(idle_s=10)
    key = ("10.0.0.1", 80)
    assert book.current(key) is None
    assert book.add(key, "c1", now=0) == []
    assert book.current(key) == "c1"
    book.opened("c1")
    book.opened("c1")
    assert book.streams("c1") == 2
    # A replacement retires c1: it finishes its streams, then is closed.
    assert book.add(key, "c2", now=1) == []
    assert book.current(key) == "c2"
    assert book.finished("c1", now=2) is False
    assert book.finished("c1", now=3) is True
    assert book.streams("c1") == 0


def test_conn_book_retire_closes_an_idle_connection_at_once() -> None:
    book: h2upstream.ConnBook[str] = h2upstream.ConnBook(idle_s=10)
    key = ("10.0.0.1", 80)
    book.add(key, "c1", now=0)
    assert book.retire("c1") == ["c1"]
    assert book.current(key) is None
    assert book.retire("c1") == []


def test_conn_book_expires_connections_idle_long_enough() -> None:
    book: h2upstream.ConnBook[str] = h2upstream.ConnBook(idle_s=10)
    a, b = ("10.0.0.1", 80), ("10.0.0.2", 80)
    book.add(a, "ca", now=0)
    book.add(b, "cb", now=0)
    book.opened("cb")
    assert book.expire(now=5) == []
    assert book.expire(now=10) == ["ca"]  # cb has a stream: kept however old
    assert book.current(a) is None
    book.finished("cb", now=12)
    assert book.expire(now=21) == []
    assert book.expire(now=22) == ["cb"]
    assert book.drain() == []


def test_conn_book_forget_and_drain() -> None:
    book: h2upstream.ConnBook[str] = h2upstream.ConnBook(idle_s=10)
    key = ("10.0.0.1", 80)
    book.add(key, "c1", now=0)
    book.forget("c1")
    assert book.current(key) is None
    assert book.finished("c1", now=1) is False
    book.add(key, "c2", now=0)
    assert book.drain() == ["c2"]
    assert book.current(key) is None

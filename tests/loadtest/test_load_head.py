"""Reading header fields from a raw response head (the client keeps the head's bytes
instead of a callback per header)."""

from __future__ import annotations

from mcgw.loadtest import client

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: a=1; Path=/\r\n"
    b'set-cookie:b=2\r\nX-Mcgw-Cluster:  gke-west-1 \r\n\r\n{"set-cookie": "in the body"}'
)


def test_split_head_keeps_order_case_and_repeats() -> None:
    assert client.split_head(HEAD) == [
        (b"Content-Type", b"application/json"),
        (b"Set-Cookie", b"a=1; Path=/"),
        (b"set-cookie", b"b=2"),
        (b"X-Mcgw-Cluster", b"gke-west-1"),
    ]


def test_head_field_reads_the_head_only() -> None:
    lower = HEAD.lower()
    assert client._head_field(lower, b"x-mcgw-cluster") == b"gke-west-1"
    assert client._head_field(lower, b"content-length") is None
    # a name that appears only in the body is not a header
    assert client._head_field(lower, b'{"set-cookie"') is None


def test_result_headers_are_parsed_lazily() -> None:
    result = client.Result(200, "", 0, 0, 0, 0, 0, 0, len(HEAD), head=HEAD)
    assert result.set_cookie
    assert [v for k, v in result.headers if k.lower() == b"set-cookie"] == [b"a=1; Path=/", b"b=2"]
    assert not client.Result(200, "", 0, 0, 0, 0, 0, 0, 0).headers

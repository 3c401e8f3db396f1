"""upstream.PoolBook: keep-alive pool bookkeeping, without sockets."""

from __future__ import annotations

from mcgw.dataplane import upstream

A = ("10.0.0.1", 80)
B = ("10.0.0.2", 80)


def test_take_returns_most_recently_used_first() -> None:
    book: upstream.PoolBook[str] = upstream.PoolBook(idle_s=10, max_idle=4)
    assert book.take(A, 0) == (None, ())
    book.give(A, "old", 1)
    book.give(A, "new", 2)
    book.give(B, "b", 2)
    assert book.take(A, 3) == ("new", ())
    assert book.take(A, 3) == ("old", ())
    assert book.take(A, 3) == (None, ())
    assert book.idle_count() == 1


def test_expired_connections_are_returned_to_close() -> None:
    book: upstream.PoolBook[str] = upstream.PoolBook(idle_s=10, max_idle=4)
    book.give(A, "c1", 0)
    book.give(A, "c2", 5)
    book.give(B, "b1", 8)
    # c2 (the freshest of A) is expired at 15: so is everything older.
    assert book.take(A, 15) == (None, ("c2", "c1"))
    assert book.idle_count(A) == 0
    assert book.expire(17) == []
    assert book.expire(18) == ["b1"]
    assert book.idle_count() == 0


def test_expire_keeps_fresh_ones() -> None:
    book: upstream.PoolBook[str] = upstream.PoolBook(idle_s=10, max_idle=4)
    for i, t in enumerate((0, 1, 20)):
        book.give(A, f"c{i}", t)
    assert book.expire(15) == ["c0", "c1"]
    assert book.take(A, 21) == ("c2", ())


def test_limit_closes_the_oldest() -> None:
    book: upstream.PoolBook[str] = upstream.PoolBook(idle_s=10, max_idle=2)
    assert book.give(A, "c1", 0) == ()
    assert book.give(A, "c2", 1) == ()
    assert book.give(A, "c3", 2) == ("c1",)
    assert book.idle_count(A) == 2


def test_forget_and_drain() -> None:
    book: upstream.PoolBook[str] = upstream.PoolBook(idle_s=10, max_idle=4)
    book.give(A, "c1", 0)
    book.give(A, "c2", 0)
    book.give(B, "b1", 0)
    assert book.forget(A, "c1") is True
    assert book.forget(A, "c1") is False
    assert book.forget(("x", 1), "c1") is False
    assert sorted(book.drain()) == ["b1", "c2"]
    assert book.idle_count() == 0


def test_filter_connection_listed() -> None:
    lines = [b"X-A: 1\r\n", b"x-b: 2\r\n", b"X-C: 3\r\n"]
    assert upstream.filter_connection_listed(lines, b"close, X-B") == [b"X-A: 1\r\n", b"X-C: 3\r\n"]
    assert upstream.filter_connection_listed(lines, b"keep-alive") is lines

"""The rule of FIFO per key on its own (engine.queue.by_key): both queue backends apply
it, the SQL one through this function (the conformance suite runs it end to end)."""

from __future__ import annotations

from engine.queue.by_key import Seen, first_free_per_key

ME, OTHER, GONE = "host:1", "host:2", "host:3"
LIVE = {ME, OTHER}


def ids(found: list[Seen]) -> list[int]:
    return [s.id for s in found]


def test_only_the_first_entry_of_each_key_and_only_when_free() -> None:
    entries = [Seen(1, "a", ME), Seen(2, "b", None), Seen(3, "a", None),
               Seen(4, "c", OTHER), Seen(5, "c", None), Seen(6, "", None), Seen(7, "", None),
               Seen(8, "d", GONE), Seen(9, "b", None)]
    # a: held by this owner; c: by another live one; d: by a dead one, so free
    assert ids(first_free_per_key(entries, LIVE, limit=10, window=100)) == [2, 6, 8]


def test_limit_and_window_bound_the_walk() -> None:
    entries = [Seen(i, f"p{i}", None) for i in range(1, 11)]
    assert ids(first_free_per_key(entries, LIVE, limit=3, window=100)) == [1, 2, 3]
    assert ids(first_free_per_key(entries, LIVE, limit=10, window=4)) == [1, 2, 3, 4]
    walked: list[int] = []

    def lazily():  # stops reading once it has enough: the SQL queue reads in chunks
        for e in entries:
            walked.append(e.id)
            yield e
    first_free_per_key(lazily(), LIVE, limit=2, window=100)
    assert walked == [1, 2]

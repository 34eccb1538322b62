"""FIFO per key: which entries a `by_key` lease may hand out (engine.queue.base).

The SQL queue walks its entries here; the Redis Streams queue does the same walk in Lua
(engine.queue.redis_scripts.LEASE_BY_KEY), by the same rule: only the first entry of a
key in queue order is a candidate, and only if no live owner holds it. An entry held by
a live owner (this one included: in flight, or waiting for its next attempt) holds back
its key and nothing else.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import NamedTuple


class Seen(NamedTuple):
    """An entry of the destination, in queue order: its id, its key (the patient
    pseudonym, "" for none) and who holds it (None when it is ready)."""

    id: int
    key: str
    owner: str | None


def first_free_per_key(entries: Iterable[Seen], live: Container[str], limit: int,
                       window: int) -> list[Seen]:
    """Up to `limit` entries, in queue order, each the first of its key among `entries`
    (in queue order) and ready or held by an owner not in `live`; looks at no more than
    `window` entries."""
    seen: set[str] = set()
    free: list[Seen] = []
    for n, entry in enumerate(entries):
        if n >= window:
            break
        if entry.key in seen:
            continue
        seen.add(entry.key)
        if entry.owner is None or entry.owner not in live:
            free.append(entry)
            if len(free) >= limit:
                break
    return free

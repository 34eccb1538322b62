"""engine/ops/trail_feed.py: the process serving the status page counts what every
process sharing the store committed, each event once, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from engine.events import Event, Kind
from engine.ops.stats import Stats
from engine.ops.trail_feed import TrailFeed, seed_point
from engine.security.keys import KeyRing
from engine.store.database import open_database
from engine.store.writer import UnitOfWork, Writer


@pytest.fixture
async def two_writers(db_url, tmp_path):
    """Two processes' writers on one store (and one audit key, as a cluster shares)."""
    db = open_database(db_url)
    key = KeyRing.load(tmp_path / "keys").audit
    writers = [Writer(db, key), Writer(open_database(db_url), key)]
    for w in writers:
        w.start()
    yield db, writers
    for w in writers:
        await w.close()
    db.dispose()


async def _commit(writer: Writer, *events: Event) -> None:
    uow = UnitOfWork()
    for e in events:
        uow.record(e)
    await writer.commit(uow)


def _received(n: int) -> Event:
    return Event(kind=Kind.RECEIVED, channel="adt", message_id=f"M{n}")


def _sent(n: int) -> Event:
    return Event(kind=Kind.SENT, channel="adt", destination="ehr", message_id=f"M{n}",
                 detail={"latency_ms": 12})


async def test_every_process_s_events_are_counted_once_from_the_seed_on(two_writers):
    db, (mine, theirs) = two_writers
    for n in range(3):  # before this process started: in the seeded totals
        await _commit(theirs, _received(n), _sent(n))
    uow = UnitOfWork()
    uow.query = seed_point
    totals, mark = await mine.commit(uow)
    stats = Stats()
    stats.seed(totals)
    feed = TrailFeed(db, stats.observe, after=mark)

    await _commit(theirs, _received(3))
    await _commit(mine, _received(4), _sent(3))
    await _commit(theirs, Event(kind=Kind.REJECTED, channel="adt", message_id="M5",
                                detail={"reason": "AR: no MSH"}))
    assert await feed.follow() == 4
    assert await feed.follow() == 0  # nothing is fed twice

    counts = stats.channels["adt"].counts
    assert counts["received"] == 5 and counts["sent"] == 4 and counts["rejected"] == 1
    assert stats.channels["adt"].destinations["ehr"].counts["sent"] == 4
    assert stats.channels["adt"].last_error == "AR: no MSH"


async def test_a_feed_pages_through_more_events_than_one_read(two_writers, monkeypatch):
    from engine.ops import trail_feed

    db, (mine, theirs) = two_writers
    monkeypatch.setattr(trail_feed, "CHUNK", 7)
    stats = Stats()
    feed = TrailFeed(db, stats.observe, after=0)
    await _commit(theirs, *(_received(n) for n in range(20)))
    await _commit(mine, *(_received(n) for n in range(20, 30)))
    assert await feed.follow() == 30
    assert stats.channels["adt"].counts["received"] == 30

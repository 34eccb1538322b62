"""engine/store/writer.py: group commit, failure isolation within a batch, query results,
the committed-events callback, after-commit hooks and a closing writer; on SQLite and PostgreSQL.

The single bad unit next to a good one, through the queue, is also in
tests/conformance/test_store.py."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import sqlalchemy as sa

from engine.errors import StoreError
from engine.events import Event, Kind
from engine.security.keys import KeyRing
from engine.store import audit
from engine.store import writer as writer_module
from engine.store.database import execute_together, insert_tuples, open_database
from engine.store.schema import audit as trail
from engine.store.schema import messages, queue_owners
from engine.store.writer import UnitOfWork, Writer


@pytest.fixture
def key(tmp_path):
    return KeyRing.load(tmp_path / "keys").audit


@pytest.fixture
async def writer(db, key):
    seen: list[list[Event]] = []
    w = Writer(db, key, on_committed=seen.append)
    w.start()
    w.seen = seen
    yield w
    await w.close()


def _unit(mid: str, *, event: bool = True) -> UnitOfWork:
    uow = UnitOfWork()
    uow.insert(messages, {"id": mid, "channel": "ch", "received_at": 0.0, "status": "accepted",
                          "size": 1, "content_hash": "h", "key_id": "k", "content": b"x"})
    if event:
        uow.record(Event(kind=Kind.RECEIVED, channel="ch", message_id=mid))
    return uow


def _ids(db) -> list[str]:
    with db.connect() as conn:
        return list(conn.execute(sa.select(messages.c.id).order_by(messages.c.id)).scalars())


def _trail(db) -> list[str | None]:
    with db.connect() as conn:
        return list(conn.execute(sa.select(trail.c.message_id).order_by(trail.c.seq))
                    .scalars())


async def test_units_waiting_together_commit_in_one_transaction(db, writer, key):
    futures = [writer.submit(_unit(f"M{i:03d}")) for i in range(200)]
    await asyncio.gather(*futures)
    assert writer.units == 200
    assert writer.batches < 10, f"{writer.batches} transactions for 200 waiting units"
    assert _ids(db) == [f"M{i:03d}" for i in range(200)]
    # Their events join the chain in the order the units were submitted.
    assert _trail(db) == [f"M{i:03d}" for i in range(200)]
    with db.connect() as conn:
        assert audit.verify(conn, key) == audit.Verified(200)


async def test_work_a_commit_wakes_joins_the_next_commit(writer, monkeypatch):
    """A message's "acknowledged" is recorded a few rounds of the event loop after its
    commit (its reply is written first), while its sender's next message comes at once.
    The writer waits those rounds before committing, so each round's acknowledgements
    share the next round's commit instead of taking commits of their own."""
    monkeypatch.setattr(writer_module, "GATHER_S", 60.0)  # rounds, not this machine's speed
    acknowledging: list[asyncio.Future] = []

    async def acknowledge(mid: str) -> None:
        for _ in range(3):  # the reply written, then recorded
            await asyncio.sleep(0)
        await writer.submit(_unit(mid))

    async def sender(n: int) -> None:
        for i in range(3):
            await writer.commit(_unit(f"M{n}{i}"))
            acknowledging.append(asyncio.ensure_future(acknowledge(f"A{n}{i}")))

    await asyncio.gather(*(sender(n) for n in range(8)))
    await asyncio.gather(*acknowledging)
    batches = [{e.message_id for e in events} for events in writer.seen]
    for i in (0, 1):
        [together] = [b for b in batches if f"A0{i}" in b]
        assert together == {f"A{n}{i}" for n in range(8)} | {f"M{n}{i + 1}" for n in range(8)}
    assert writer.batches == 4  # messages 0, messages 1 + acks 0, 2 + 1, acks 2


async def test_a_batch_is_never_larger_than_max_batch(db, key):
    w = Writer(db, key, max_batch=7)
    w.start()
    try:
        await asyncio.gather(*(w.submit(_unit(f"M{i:02d}")) for i in range(30)))
    finally:
        await w.close()
    assert w.units == 30 and w.batches >= 5


async def test_a_failing_unit_does_not_fail_its_neighbours(db, writer):
    await writer.commit(_unit("DUP"))
    writer.seen.clear()
    units = [_unit("A"), _unit("DUP"), _unit("B"), _unit("DUP"), _unit("C")]
    results = await asyncio.gather(*(writer.submit(u) for u in units), return_exceptions=True)
    assert [isinstance(r, StoreError) for r in results] == [False, True, False, True, False]
    assert all("store write failed" in str(r) for r in results if isinstance(r, Exception))
    assert _ids(db) == ["A", "B", "C", "DUP"]
    # Nothing of a failed unit was written, its event included.
    assert _trail(db) == ["DUP", "A", "B", "C"]
    assert [e.message_id for batch in writer.seen for e in batch] == ["A", "B", "C"]


async def test_failing_batches_one_after_another_log_one_line_with_a_count(db, writer,
                                                                          caplog):
    """A store away fails every batch: the first failure is logged, the rest in the next
    seconds are counted into a later line, not written each (600 lines in 10 s, once)."""
    await writer.commit(_unit("DUP"))
    with caplog.at_level(logging.ERROR, logger="conduit.store"):
        for _ in range(5):
            results = await asyncio.gather(writer.submit(_unit("DUP")), writer.submit(
                _unit("DUP")), return_exceptions=True)
            assert all(isinstance(r, StoreError) for r in results)
    lines = [r.getMessage() for r in caplog.records if "store write failed" in r.getMessage()]
    assert len(lines) == 1, lines


async def test_a_failed_unit_is_written_all_or_nothing(db, writer):
    await writer.commit(_unit("DUP"))
    half = _unit("NEW")
    half.insert(messages, _unit("DUP").inserts[messages][0])
    with pytest.raises(StoreError):
        await writer.commit(half)
    assert _ids(db) == ["DUP"]
    assert _trail(db) == ["DUP"]


async def test_the_error_quotes_no_bound_parameters(writer):
    await writer.commit(_unit("DUP"))
    secret = _unit("DUP")
    secret.inserts[messages][0]["content"] = b"SMITH^ALEX"
    secret.inserts[messages][0]["content_hash"] = "PATIENT-SECRET"
    with pytest.raises(StoreError) as err:
        await writer.commit(secret)
    assert "SMITH" not in str(err.value) and "PATIENT-SECRET" not in str(err.value)


async def test_query_results_come_back_to_their_own_unit(writer):
    def count(conn):
        return conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar()

    first, asking, second = _unit("A"), _unit("B"), _unit("C")
    asking.query = count
    other = UnitOfWork()
    other.query = lambda conn: "other"
    results = await asyncio.gather(writer.submit(first), writer.submit(asking),
                                   writer.submit(second), writer.submit(other))
    assert results[0] is None and results[2] is None
    assert results[1] in (2, 3)  # sees its own insert and what ran before it
    assert results[3] == "other"


async def test_statements_run_after_the_inserts_of_their_batch(db, writer):
    insert = _unit("A")
    update = UnitOfWork()
    update.execute(messages.update().where(messages.c.id == sa.bindparam("mid"))
                   .values(status="error"), {"mid": "A"})
    await asyncio.gather(writer.submit(insert), writer.submit(update))
    with db.connect() as conn:
        assert conn.execute(sa.select(messages.c.status)).scalar_one() == "error"


async def test_a_batch_deletes_exactly_the_rows_its_units_name(db, writer, monkeypatch):
    """Deletes of many units go in a few statements (of at most _DELETE_CHUNK keys, here
    7); a key no row has is no error, and a row another unit of the batch inserts and
    deletes is gone."""
    monkeypatch.setattr(writer_module, "_DELETE_CHUNK", 7)
    await asyncio.gather(*(writer.submit(_unit(f"M{n:03d}", event=False)) for n in range(40)))
    doomed = [f"M{n:03d}" for n in range(0, 40, 3)]
    units = []
    for mid in doomed:
        unit = UnitOfWork()
        unit.delete(messages, mid)
        units.append(unit)
    units[0].delete(messages, "no such row")
    units[1].insert(messages, _unit("NEW").inserts[messages][0])
    units[1].delete(messages, "NEW")
    await asyncio.gather(*(writer.submit(u) for u in units))
    assert writer.batches == 2
    assert _ids(db) == [f"M{n:03d}" for n in range(40) if n % 3]


async def test_on_committed_gets_exactly_the_committed_events(writer):
    await writer.commit(_unit("DUP"))
    writer.seen.clear()
    quiet = _unit("Q", event=False)
    admin = UnitOfWork()
    admin.record(Event(kind=Kind.ADMIN, detail={"action": "test"}))
    await asyncio.gather(writer.submit(_unit("A")), writer.submit(quiet), writer.submit(admin),
                         writer.submit(_unit("DUP")), return_exceptions=True)
    events = [e for batch in writer.seen for e in batch]
    assert [(e.kind, e.message_id) for e in events] == [(Kind.RECEIVED, "A"),
                                                        (Kind.ADMIN, None)]
    assert all(batch for batch in writer.seen), "called with no events"


async def test_after_commit_hooks_run_once_the_unit_is_durable_and_never_if_refused(db, writer):
    await writer.commit(_unit("DUP"))
    published: list[tuple[str, list[str]]] = []

    def unit(mid: str) -> UnitOfWork:
        uow = _unit(mid)
        uow.after_commit.append(lambda: published.append((mid, _ids(db))))
        return uow

    def broken() -> None:
        raise RuntimeError("the stream is down")

    failing_hook = unit("B")
    failing_hook.after_commit.insert(0, broken)
    results = await asyncio.gather(writer.submit(unit("A")), writer.submit(unit("DUP")),
                                   writer.submit(failing_hook), return_exceptions=True)
    assert isinstance(results[1], StoreError) and results[0] is None and results[2] is None
    # Each hook saw its own row already committed; the refused unit's hook never ran,
    # and a hook that raised neither failed its unit nor stopped the hooks after it.
    assert [mid for mid, _ in published] == ["A", "B"]
    assert all(mid in committed for mid, committed in published)
    merged = UnitOfWork.merged([unit("C"), unit("D")])
    await writer.commit(merged)
    assert [mid for mid, _ in published] == ["A", "B", "C", "D"]


async def test_close_writes_everything_submitted_then_refuses(db, key):
    seen: list[Event] = []
    w = Writer(db, key, on_committed=seen.extend)
    w.start()
    futures = [w.submit(_unit(f"M{i:03d}")) for i in range(50)]
    await w.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert len(_ids(db)) == 50 and len(seen) == 50
    with pytest.raises(StoreError, match="closed"):
        w.submit(_unit("LATE"))

async def test_an_insert_into_another_table_is_written_or_refused(db_url, tmp_path):
    db = open_database(db_url)
    writer = Writer(db, KeyRing.load(tmp_path / "keys").audit)
    writer.start()
    try:
        uow = UnitOfWork()
        uow.insert(queue_owners, {"owner": "p1", "started_at": time.time(),
                                  "heartbeat_at": time.time()})
        try:
            await writer.commit(uow)
        except StoreError:
            return  # refused: acceptable
        with db.connect() as conn:
            rows = conn.execute(sa.select(queue_owners.c.owner)).scalars().all()
        assert rows == ["p1"], "the unit committed, but its queue_owners row was dropped"
    finally:
        await writer.close()
        db.dispose()


async def test_a_writer_whose_postgresql_connection_was_cut_writes_on_a_new_one(
        pg_url, key):
    """The batch's inserts go out in one pipeline on PostgreSQL (engine.store.database.
    execute_together); when the server has cut the connection, the batch is written
    again on a new one, and so is everything after it."""
    db = open_database(pg_url)
    w = Writer(db, key)
    w.start()
    try:
        await w.commit(_unit("A"))
        with db.connect() as admin:
            cut = admin.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).all()
            admin.commit()
        assert cut, "the writer's connection was not found"
        await w.commit(_unit("B"))
        await w.commit(_unit("C"))
    finally:
        await w.close()
        db.dispose()
    db = open_database(pg_url)
    assert _ids(db) == ["A", "B", "C"]
    with db.connect() as conn:
        assert audit.verify(conn, key) == audit.Verified(3)
    db.dispose()


def test_many_rows_go_in_whole_in_order_and_with_their_values(db):
    """SQLite takes a long insert in chunks of many rows (engine.store.database); every
    row arrives once, in order (the queue's ids are given in that order), with values of
    every type the store writes."""
    table = sa.Table("chunked", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("name", sa.String(20)), sa.Column("size", sa.Float),
                     sa.Column("content", sa.LargeBinary), sa.Column("note", sa.Text))
    table.create(db)
    rows = [(f"r{i}", i / 4, bytes([i % 256]) * 3, None if i % 3 else "x") for i in range(1237)]
    with db.begin() as conn:
        execute_together(conn, [insert_tuples(conn, table, ("name", "size", "content", "note"),
                                              rows)])
    with db.connect() as conn:
        stored = conn.execute(sa.select(table).order_by(table.c.id)).all()
    assert [tuple(r)[1:] for r in stored] == rows
    assert [r.id for r in stored] == list(range(1, 1238))

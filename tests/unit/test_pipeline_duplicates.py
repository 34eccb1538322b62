"""engine/pipeline/duplicates.py: the duplicate index never says "no" to a message it saw
within the window; the channel's step tells a resend from a reused control id, first from
the messages not yet committed, then from the store; on a store other processes share,
every message taken on claims its key and the commit asks the store, after any other
process's commit (engine.store.claims; on SQLite and PostgreSQL)."""

import asyncio
import json
import time

import pytest
import sqlalchemy as sa

from engine.events import Event, Kind
from engine.message import MessageStatus, Parsed, new_message_id
from engine.pipeline.duplicates import DuplicateIndex, Duplicates, Earlier
from engine.security.crypto import Vault
from engine.security.keys import KeyRing
from engine.store.claims import Resend
from engine.store.database import open_database
from engine.store.messages import MessageStore
from engine.store.schema import audit
from engine.store.writer import UnitOfWork, Writer

T0 = 1_800_000_000.0


def test_no_false_no_within_the_window_and_forgetting_after_it():
    index = DuplicateIndex(window=3600)
    for i in range(5000):
        index.remember("EPIC^NORTH", f"C{i}", T0 + i * 0.1)
    now = T0 + 600
    assert all(index.maybe_seen("EPIC^NORTH", f"C{i}", now) for i in range(5000))
    # Another sender's identical control ids are (almost all) new.
    others = sum(index.maybe_seen("CERNER^SOUTH", f"C{i}", now) for i in range(5000))
    assert others < 50
    # Two windows later both filters have turned over.
    later = T0 + 3 * 3600 + 1
    assert not any(index.maybe_seen("EPIC^NORTH", f"C{i}", later) for i in range(100))


def test_entries_survive_at_least_one_window_whatever_the_rotations():
    for start in (0, 30, 99):  # the entry arrives early, midway, late in a filter's turn
        index = DuplicateIndex(window=100)
        index.remember("A", "first", T0)
        index.remember("A", "X", T0 + start)
        for age in range(0, 100, 5):
            index.remember("A", f"other{age}", T0 + start + age)  # traffic turns filters
            assert index.maybe_seen("A", "X", T0 + start + age), (start, age)


def test_memory_does_not_grow_with_traffic():
    index = DuplicateIndex(window=3600)
    before = len(index._current.bits) + len(index._previous.bits)
    for i in range(20000):
        index.remember("EPIC^NORTH", f"C{i}", T0)
    assert len(index._current.bits) + len(index._previous.bits) == before


# -- the channel's step: Duplicates ------------------------------------------------------

class FakeStore:
    """The store's two answers: recent control ids, and the messages taken with one."""

    def __init__(self, taken: list[tuple[str, str]] = (), recent=()) -> None:
        self.taken = list(taken)
        self.recent = list(recent)
        self.asked = 0

    def recent_control_ids(self, channel, since):
        return self.recent

    def taken_with_control_ids(self, channel, keys, since):
        self.asked += 1
        return {key: self.taken for key in keys}


def parsed(control_id: str = "C1", sender: str = "EPIC^NORTH") -> Parsed:
    return Parsed("hl7v2", "ADT^A01", control_id, "2.5", sender)


async def test_a_new_message_is_none_and_a_pending_resend_is_found_without_the_store():
    store = FakeStore()
    step = Duplicates("adt", 3600, store)
    assert await step.check(parsed(), "h1", T0) is None
    step.taken(parsed(), "M1", "h1", T0, MessageStatus.ACCEPTED)
    assert await step.check(parsed(), "h1", T0 + 1) == Earlier("M1", resend=True)
    assert store.asked == 0  # pending: answered before the store is asked
    # the same id with other content: reused, naming the pending message
    assert await step.check(parsed(), "h2", T0 + 1) == Earlier("M1", resend=False)


async def test_once_committed_the_store_answers():
    store = FakeStore(taken=[("M0", "h0"), ("M1", "h1")])
    step = Duplicates("adt", 3600, store)
    step.taken(parsed(), "M1", "h1", T0, MessageStatus.ACCEPTED)
    step.forget(parsed(), "M1")
    assert await step.check(parsed(), "h1", T0 + 1) == Earlier("M1", resend=True)
    assert await step.check(parsed(), "h9", T0 + 1) == Earlier("M0", resend=False)
    assert store.asked == 2


async def test_errored_messages_are_not_remembered_and_forget_keeps_a_later_owner():
    step = Duplicates("adt", 3600, FakeStore())
    step.taken(parsed(), "M1", "h1", T0, MessageStatus.ERROR)
    assert await step.check(parsed(), "h1", T0) is None
    step.taken(parsed(), "M2", "h2", T0, MessageStatus.FILTERED)
    step.forget(parsed(), "M1")  # not the owner: the entry stays
    assert await step.check(parsed(), "h2", T0) == Earlier("M2", resend=True)


async def test_a_window_of_zero_turns_the_step_off_and_warm_up_fills_the_index():
    off = Duplicates("adt", 0, FakeStore())
    off.taken(parsed(), "M1", "h1", T0, MessageStatus.ACCEPTED)
    assert await off.check(parsed(), "h1", T0) is None
    await off.warm_up(T0)  # nothing to fill
    store = FakeStore(taken=[("M0", "h0")], recent=[("EPIC^NORTH", "C1", "M0", T0 - 10)])
    warm = Duplicates("adt", 3600, store)
    await warm.warm_up(T0)
    assert await warm.check(parsed(), "h0", T0) == Earlier("M0", resend=True)
    assert await warm.check(parsed("C2"), "h0", T0) is None


# -- shared: two processes' steps on one real store -----------------------------------------

@pytest.fixture
async def shared_store(db_url, tmp_path):
    keys = KeyRing.load(tmp_path / "keys")
    db = open_database(db_url)
    writer = Writer(db, keys.audit)
    writer.start()
    yield writer, MessageStore(db, Vault(keys))
    await writer.close()
    db.dispose()


class Counting:
    """The real store, counting the questions the step asks it."""

    def __init__(self, store: MessageStore) -> None:
        self.store, self.asked = store, 0

    def recent_control_ids(self, channel, since):
        return self.store.recent_control_ids(channel, since)

    def taken_with_control_ids(self, channel, keys, since):
        self.asked += 1
        return self.store.taken_with_control_ids(channel, keys, since)


async def take(step: Duplicates, writer: Writer, store: MessageStore, message: Parsed,
               raw: bytes, now: float) -> tuple[str, Earlier | Resend | None]:
    """What the channel does with one message: check, take on if new (with its claim on
    a shared store), commit, forget; a copy another process stored first comes back
    from the commit as a Resend."""
    digest, message_id = f"h-{raw.decode()}", new_message_id()
    earlier = await step.check(message, digest, now)
    status = MessageStatus.DUPLICATE if earlier and earlier.resend else MessageStatus.ACCEPTED
    step.taken(message, message_id, digest, now, status)
    uow = UnitOfWork()
    hop = {"channel": "adt", "message_id": message_id, "peer": "127.0.0.1:5000",
           "patient": None}
    uow.record(Event(kind=Kind.PARSED, **hop))
    uow.claim = step.claim(message, digest, now, status, hop)
    store.add_message(uow, {
        "id": message_id, "channel": "adt", "received_at": now, "status": status,
        "standard": "hl7v2", "message_type": "ADT^A01", "control_id": message.control_id,
        "sender": message.sender, "peer": "127.0.0.1:5000", "patient": None,
        "content_hash": digest, "error": None}, raw)
    result = await writer.commit(uow)
    step.forget(message, message_id)
    return message_id, result if isinstance(result, Resend) else earlier


def audited(writer: Writer, kind: str) -> list[tuple[str, str]]:
    with writer._engine.connect() as conn:
        return [(r.message_id, json.loads(r.detail)["original"]) for r in conn.execute(
            sa.select(audit.c.message_id, audit.c.detail).where(audit.c.kind == kind))]


async def test_a_resend_taken_by_another_process_is_found_at_its_commit(shared_store):
    writer, store = shared_store
    now = time.time()
    one, other = Counting(store), Counting(store)
    first = Duplicates("adt", 3600, one, shared=True)
    second = Duplicates("adt", 3600, other, shared=True)
    assert first.index is None and second.index is None  # no filter to keep in step
    await first.warm_up(now)
    original, earlier = await take(first, writer, store, parsed(), b"one", now)
    assert earlier is None
    # The copy reaches the other process, which has nothing pending under its id: the
    # commit finds the first stored, and stores nothing of this one.
    copy, earlier = await take(second, writer, store, parsed(), b"one", now + 1)
    assert earlier == Resend(original)
    assert store.get(copy) is None
    # The id reused for new content is taken on, and flagged as reused by the commit.
    reuse, earlier = await take(second, writer, store, parsed(), b"two", now + 2)
    assert earlier is None and store.get(reuse).status == "accepted"
    assert audited(writer, "control-id-reused") == [(reuse, original)]
    assert (one.asked, other.asked) == (0, 0)  # the commit asks, in its transaction
    # Out of the window, a copy is new again.
    late = Duplicates("adt", 1, Counting(store), shared=True)
    _, earlier = await take(late, writer, store, parsed(), b"one", now + 5)
    assert earlier is None
    # A process alone on its store trusts its filter's "no", and makes no claim.
    alone = Duplicates("adt", 3600, Counting(store))
    assert await alone.check(parsed(), "h-one", now + 3) is None
    assert alone.claim(parsed(), "h-one", now + 3, MessageStatus.ACCEPTED, {}) is None
    # No control id, no claim.
    assert second.claim(parsed(""), "h-x", now, MessageStatus.ACCEPTED, {}) is None


async def test_copies_arriving_together_in_one_process_are_taken_once(shared_store):
    writer, store = shared_store
    counting = Counting(store)
    step = Duplicates("adt", 3600, counting, shared=True)
    now = time.time()
    results = await asyncio.gather(*(take(step, writer, store, parsed("C7"), b"same", now)
                                     for _ in range(5)))
    news = [message_id for message_id, earlier in results if earlier is None]
    assert len(news) == 1
    assert [e for _, e in results if e is not None] == [Earlier(news[0], resend=True)] * 4
    assert counting.asked == 0  # the others found the first pending
    assert store.taken_with_control_ids("adt", [("EPIC^NORTH", "C7")], now - 60) == {
        ("EPIC^NORTH", "C7"): [(news[0], "h-same")]}


class AwayStore:
    """A store that cannot be reached (its database refuses connections)."""

    def taken_with_control_ids(self, channel, keys, since):
        raise ConnectionRefusedError("the database refuses connections")

    def recent_control_ids(self, channel, since):
        raise ConnectionRefusedError("the database refuses connections")


async def test_a_store_that_cannot_be_asked_leaves_the_message_to_its_commit(caplog):
    """The message is taken as new, so the commit that follows (failing too while the
    store is away) answers the sender "send again": it must not go unanswered."""
    step = Duplicates("adt", window=3600, store=AwayStore())
    message = parsed("C9", sender="EPIC^NORTH")
    assert step.index is not None
    step.index.remember("EPIC^NORTH", "C9", T0)  # a "maybe": the store is asked
    assert await step.check(message, "digest", T0) is None
    assert "could not ask the store whether a message is a resend" in caplog.text
    assert "C9" not in caplog.text and "EPIC" not in caplog.text
    # the question is over: a copy arriving next asks again instead of waiting forever
    assert await asyncio.wait_for(step.check(message, "digest", T0), 2) is None


async def test_questions_asked_together_go_to_the_store_as_one(shared_store):
    """The index's "maybe"s ask the store; those arriving together (a round of senders)
    share one query, and each still gets its own key's answer."""
    writer, store = shared_store
    now = time.time()
    first = Duplicates("adt", 3600, Counting(store))
    originals = [await take(first, writer, store, parsed(f"K{i}"), b"x", now) for i in range(3)]
    counting = Counting(store)
    step = Duplicates("adt", 3600, counting)
    assert step.index is not None
    for key in ("K0", "K1", "K2", "K9"):
        step.index.remember("EPIC^NORTH", key, now)
    step.index.remember("CERNER^SOUTH", "K0", now)
    results = await asyncio.gather(
        *(step.check(parsed(f"K{i}"), "h-x", now + 1) for i in range(3)),
        step.check(parsed("K0", sender="CERNER^SOUTH"), "h-x", now + 1),  # another sender
        step.check(parsed("K9"), "h-x", now + 1))
    assert results == [Earlier(mid, resend=True) for mid, _ in originals] + [None, None]
    assert counting.asked == 1

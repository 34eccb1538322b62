"""engine/store/audit.py: the hash chain as `append` writes it, what `verify` finds, and
`events_of_message`; on SQLite and PostgreSQL.

Tampering through the writer (an edited actor, a deleted middle or tail row, two rows
swapped, a chain recomputed without the key) is in tests/conformance/test_store.py; this
file covers the chain itself and the tampering cases that suite leaves out."""

from __future__ import annotations

import itertools
import json

import pytest
import sqlalchemy as sa

from engine.events import Event, Kind
from engine.security.keys import KeyRing
from engine.store import audit
from engine.store.database import open_database
from engine.store.schema import audit as trail
from engine.store.schema import audit_head


@pytest.fixture
def env(db_url, tmp_path):
    db = open_database(db_url)
    yield db, KeyRing.load(tmp_path / "keys").audit
    db.dispose()


def _events(n: int, message_id: str = "M1", start: int = 0) -> list[Event]:
    return [Event(kind=Kind.RECEIVED if i % 2 else Kind.QUEUED, channel="adt",
                  destination=None if i % 2 else "fhir", message_id=message_id,
                  detail={"i": start + i}) for i in range(n)]


def _append(db, key, events) -> None:
    with db.begin() as conn:
        audit.append(conn, key, events)


def _rows(db) -> list[dict]:
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(trail).order_by(trail.c.seq))
                .mappings()]


def _verify(db, key, chunk: int = 5000) -> audit.Verified:
    with db.connect() as conn:
        return audit.verify(conn, key, chunk)


def test_an_empty_trail_verifies(env):
    db, key = env
    assert _verify(db, key) == audit.Verified(0)


def test_append_numbers_events_and_links_each_to_the_one_before(env):
    db, key = env
    _append(db, key, _events(3))
    _append(db, key, _events(2, start=3))
    rows = _rows(db)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["prev_hash"] == audit.GENESIS
    for before, row in itertools.pairwise(rows):
        assert row["prev_hash"] == before["hash"]
    for row in rows:
        assert audit.link_hash(key, row["prev_hash"], row) == row["hash"]
    assert [json.loads(r["detail"]) for r in rows] == [{"i": i} for i in range(5)]
    assert (rows[1]["kind"], rows[1]["channel"], rows[1]["destination"]) == (
        "received", "adt", None)
    with db.connect() as conn:
        head = conn.execute(sa.select(audit_head).where(audit_head.c.id == 1)).mappings().one()
    assert (head["seq"], head["hash"]) == (5, rows[-1]["hash"])
    assert _verify(db, key) == audit.Verified(5)


def test_the_chain_is_keyed(env):
    db, key = env
    _append(db, key, _events(2))
    assert _verify(db, key).broken is None
    broken = _verify(db, b"x" * 32).broken
    assert broken is not None and broken.seq == 1


def test_verify_walks_the_trail_in_chunks(env):
    db, key = env
    for start in range(0, 25, 5):
        _append(db, key, _events(5, start=start))
    assert _verify(db, key, chunk=4) == audit.Verified(25)
    with db.begin() as conn:
        conn.execute(trail.update().where(trail.c.seq == 13).values(detail='{"i":99}'))
    assert _verify(db, key, chunk=4).broken.seq == 13


def _edit_detail(conn):
    conn.execute(trail.update().where(trail.c.seq == 3).values(detail='{"i":"forged"}'))


def _edit_kind(conn):
    conn.execute(trail.update().where(trail.c.seq == 3).values(kind="viewed"))


def _delete_first(conn):
    conn.execute(trail.delete().where(trail.c.seq == 1))


def _delete_tail_and_move_head(conn):
    """Without the key the head cannot be made to match: the tail's hash is kept."""
    conn.execute(trail.delete().where(trail.c.seq >= 5))
    conn.execute(audit_head.update().values(seq=4))


def _delete_tail_and_point_the_head_at_the_new_last(conn):
    """The new last event's hash is in its row: the head is moved onto it exactly, as
    someone with write access but not the key would do to hide the newest events."""
    last = conn.execute(sa.select(trail.c.hash).where(trail.c.seq == 4)).scalar_one()
    conn.execute(trail.delete().where(trail.c.seq >= 5))
    conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=4, hash=last))


def _unseal_the_head(conn):
    _delete_tail_and_point_the_head_at_the_new_last(conn)
    conn.execute(audit_head.update().where(audit_head.c.id == audit.SEAL_ROW)
                 .values(hash=audit.UNSEALED))


def _add_a_row_after_the_head(conn):
    last = conn.execute(sa.select(trail).where(trail.c.seq == 6)).mappings().one()
    conn.execute(trail.insert().values({**last, "seq": 7, "prev_hash": last["hash"],
                                        "hash": "f" * 64}))


def _edit_the_head(conn):
    conn.execute(audit_head.update().values(hash="e" * 64))


@pytest.mark.parametrize(("tamper", "seq", "reason"), [
    (_edit_detail, 3, "differs"),
    (_edit_kind, 3, "differs"),
    (_delete_first, 2, "missing"),
    (_delete_tail_and_move_head, 4, "recorded as the last"),
    (_delete_tail_and_point_the_head_at_the_new_last, 4, "not recorded as the last"),
    (_unseal_the_head, 4, "not sealed"),
    (_add_a_row_after_the_head, 7, "differs"),
    (_edit_the_head, 6, "recorded as the last"),
], ids=lambda v: v.__name__.strip("_") if callable(v) else None)
def test_verify_names_the_first_broken_link(env, tamper, seq, reason):
    db, key = env
    _append(db, key, _events(6))
    with db.begin() as conn:
        tamper(conn)
    result = _verify(db, key)
    assert result.broken is not None
    assert result.broken.seq == seq
    assert reason in result.broken.reason


def test_events_of_message_in_order_and_only_that_message(env):
    db, key = env
    _append(db, key, _events(2, "M1"))
    _append(db, key, _events(1, "M2"))
    _append(db, key, [Event(kind=Kind.SENT, channel="adt", destination="fhir",
                            message_id="M1")])
    with db.connect() as conn:
        first = audit.events_of_message(conn, "M1")
        assert audit.events_of_message(conn, "M3") == []
    assert [(e["seq"], e["kind"]) for e in first] == [(1, "queued"), (2, "received"),
                                                      (4, "sent")]
    assert {e["message_id"] for e in first} == {"M1"}


def test_a_store_from_before_the_seal_is_sealed_by_its_next_event(env):
    """A trail written by an earlier version has no seal: verify says so (it cannot
    tell a whole trail from a shortened one) until the engine's next event seals it."""
    db, key = env
    _append(db, key, _events(3))
    with db.begin() as conn:
        conn.execute(audit_head.update().where(audit_head.c.id == audit.SEAL_ROW)
                     .values(hash=audit.UNSEALED))
    assert "not sealed" in _verify(db, key).broken.reason
    _append(db, key, _events(1, start=3))
    assert _verify(db, key) == audit.Verified(4)

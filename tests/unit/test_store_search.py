"""engine/store/search.py: finding messages and audit events by their indexed fields,
newest first, a page at a time both ways; on SQLite and PostgreSQL.

The same searches through the HTTP API (cursors, the page cap as the status page sees
them): tests/integration/test_api_operations.py."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from engine.events import Event, Kind
from engine.message import message_id_floor
from engine.security.keys import KeyRing
from engine.store import audit
from engine.store.database import bulk_insert
from engine.store.schema import audit as trail
from engine.store.schema import messages
from engine.store.search import MAX_PAGE, AuditQuery, MessageQuery, find_audit, find_messages

T0 = time.time() - 3600


def _row(i: int, **over) -> dict:
    return {"id": message_id_floor(T0 + i)[:-4] + f"{i:04d}", "channel": "adt",
            "received_at": T0 + i, "status": "accepted", "standard": "hl7v2",
            "message_type": "ADT^A01", "control_id": f"C{i}", "sender": "EPIC^NW",
            "peer": "127.0.0.1", "patient": None, "size": 10, "content_hash": "0" * 64,
            "key_id": "k", "content": b"x", "error": None, **over}


@pytest.fixture
def stored(db):
    """Ten messages, one a second: odd ones errors on channel lab, every third ORU, a
    patient on 4 and 7."""
    rows = [_row(i, status="error" if i % 2 else "accepted",
                 channel="lab" if i % 2 else "adt",
                 message_type="ORU^R01" if i % 3 == 0 else "ADT^A01",
                 patient="P1" if i in (4, 7) else None)
            for i in range(10)]
    with db.begin() as conn:
        bulk_insert(conn, messages, rows)
    return [r["id"] for r in rows]


def _find(db, **q) -> list[str]:
    with db.connect() as conn:
        return [m.id for m in find_messages(conn, MessageQuery(**q))]


def test_messages_come_newest_first_with_metadata_and_no_content(db, stored):
    assert _find(db) == stored[::-1]
    with db.connect() as conn:
        [newest] = find_messages(conn, MessageQuery(limit=1))
    assert (newest.id, newest.channel, newest.status, newest.control_id) == (
        stored[9], "lab", "error", "C9")
    assert not hasattr(newest, "content")


@pytest.mark.parametrize(("query", "expected"), [
    ({"channel": "adt"}, [8, 6, 4, 2, 0]),
    ({"status": "error"}, [9, 7, 5, 3, 1]),
    ({"message_type": "ORU^R01"}, [9, 6, 3, 0]),
    ({"control_id": "C4"}, [4]),
    ({"patient": "P1"}, [7, 4]),
    ({"channel": "adt", "message_type": "ORU^R01"}, [6, 0]),
    ({"since": T0 + 3, "until": T0 + 6}, [5, 4, 3]),
    ({"channel": "nowhere"}, []),
], ids=lambda v: "-".join(v) if isinstance(v, dict) else None)
def test_message_filters_combine(db, stored, query, expected):
    assert _find(db, **query) == [stored[i] for i in expected]


def test_message_pages_continue_both_ways(db, stored):
    newest = stored[::-1]
    assert _find(db, limit=3) == newest[:3]
    assert _find(db, limit=3, before=newest[2]) == newest[3:6]
    assert _find(db, limit=3, before=newest[8]) == newest[9:]
    # Back: the oldest `limit` of those newer than `after`, shown newest first.
    assert _find(db, limit=3, after=newest[6]) == newest[3:6]
    assert _find(db, limit=3, after=newest[1]) == newest[:1]
    assert _find(db, limit=2, status="error", before=stored[7]) == [stored[5], stored[3]]


@pytest.mark.parametrize(("limit", "expected"), [(0, 1), (-5, 1), (10_000, MAX_PAGE)])
def test_message_page_size_is_kept_between_one_and_the_cap(db, limit, expected):
    with db.begin() as conn:
        bulk_insert(conn, messages, [_row(i) for i in range(MAX_PAGE + 5)])
    assert len(_find(db, limit=limit)) == expected


@pytest.fixture
def events(db, tmp_path):
    """Two messages' events as the engine records them: each message's row is stored
    with its hops, and carries their patient pseudonym (none for M2)."""
    key = KeyRing.load(tmp_path / "keys").audit
    with db.begin() as conn:
        bulk_insert(conn, messages, [_row(1, id="M1", patient="P1"),
                                     _row(2, id="M2", channel="lab")])
        audit.append(conn, key, [
            Event(kind=Kind.RECEIVED, channel="adt", message_id="M1", patient="P1"),
            Event(kind=Kind.VIEWED, actor="alice", channel="adt", message_id="M1",
                  patient="P1"),
            Event(kind=Kind.RECEIVED, channel="lab", message_id="M2"),
            Event(kind=Kind.VIEWED, actor="bob", channel="lab", message_id="M2"),
            Event(kind=Kind.ADMIN, actor="alice", detail={"action": "user-added"}),
        ])


def _audit(db, **q) -> list[int]:
    with db.connect() as conn:
        return [e["seq"] for e in find_audit(conn, AuditQuery(**q))]


@pytest.mark.parametrize(("query", "expected"), [
    ({}, [5, 4, 3, 2, 1]),
    ({"message_id": "M1"}, [2, 1]),
    ({"channel": "lab"}, [4, 3]),
    ({"patient": "P1"}, [2, 1]),
    ({"actor": "alice"}, [5, 2]),
    ({"kind": "viewed"}, [4, 2]),
    ({"kind": "viewed", "actor": "bob"}, [4]),
    ({"before_seq": 4, "limit": 2}, [3, 2]),
    ({"after_seq": 2}, [3, 4, 5]),  # oldest first, for exports
    ({"after_seq": 1, "limit": 2}, [2, 3]),
], ids=lambda v: "-".join(v) or "all" if isinstance(v, dict) else None)
def test_audit_filters_and_pages(db, events, query, expected):
    assert _audit(db, **query) == expected


def test_audit_time_bounds(db, events):
    with db.connect() as conn:
        [first] = find_audit(conn, AuditQuery(after_seq=0, limit=1))
    at = first["at_us"]  # one append: every event has the same time
    assert _audit(db, since_us=at) == [5, 4, 3, 2, 1]
    assert _audit(db, since_us=at + 1) == []
    assert _audit(db, until_us=at) == []
    assert _audit(db, until_us=at + 1) == [5, 4, 3, 2, 1]


def test_audit_rows_carry_every_column(db, events):
    [row] = [r for r in _rows_of(db) if r["seq"] == 2]
    assert {c.name for c in trail.columns} <= set(row)
    assert (row["actor"], row["kind"], row["message_id"]) == ("alice", "viewed", "M1")


def _rows_of(db) -> list[dict]:
    with db.connect() as conn:
        return find_audit(conn, AuditQuery())


@pytest.fixture
def patient_trail(db, tmp_path):
    _fill_patient_trail(db, KeyRing.load(tmp_path / "keys").audit)


def _fill_patient_trail(db, key: bytes) -> None:
    """P1's events through both routes, interleaved with another patient's: hops of its
    messages (found through messages.patient) and reads, requeues and answers (found
    through the audit's own patient index)."""
    with db.begin() as conn:
        bulk_insert(conn, messages, [_row(1, id="M1", patient="P1"),
                                     _row(2, id="M2", patient="P2"),
                                     _row(3, id="M3", patient="P1")])
        audit.append(conn, key, [
            Event(kind=Kind.RECEIVED, channel="adt", message_id="M1", patient="P1"),  # 1
            Event(kind=Kind.RECEIVED, channel="adt", message_id="M2", patient="P2"),  # 2
            Event(kind=Kind.MAPPED, channel="adt", message_id="M1", patient="P1"),  # 3
            Event(kind=Kind.VIEWED, actor="ana", message_id="M1", patient="P1"),  # 4
            Event(kind=Kind.SENT, channel="adt", message_id="M2", patient="P2"),  # 5
            Event(kind=Kind.SENT, channel="adt", message_id="M1", patient="P1"),  # 6
            Event(kind=Kind.REQUEUED, actor="olive", message_id="M3", patient="P1"),  # 7
            Event(kind=Kind.ACKNOWLEDGED, channel="adt", message_id="M3",
                  patient="P1"),  # 8
            Event(kind=Kind.VIEWED, actor="ana", patient="P1",
                  detail={"search": "patient"}),  # 9: tied to no message
        ])


@pytest.mark.parametrize(("query", "expected"), [
    ({}, [9, 8, 7, 6, 4, 3, 1]),
    ({"limit": 3}, [9, 8, 7]),
    ({"limit": 3, "before_seq": 7}, [6, 4, 3]),
    ({"limit": 3, "before_seq": 3}, [1]),
    ({"after_seq": 0, "limit": 4}, [1, 3, 4, 6]),
    ({"after_seq": 6}, [7, 8, 9]),
    ({"kind": "sent"}, [6]),
    ({"kind": "viewed"}, [9, 4]),
    ({"message_id": "M3"}, [8, 7]),
], ids=lambda v: "-".join(map(str, v)) or "all" if isinstance(v, dict) else None)
def test_a_patients_events_come_by_both_routes_a_page_at_a_time(db, patient_trail,
                                                                 query, expected):
    assert _audit(db, patient="P1", **query) == expected
    assert _audit(db, patient="P2") == [5, 2]


def test_the_patient_search_reads_indexes_not_the_whole_trail(tmp_path):
    """A trail of years is searched by patient through the messages' and the audit's
    patient indexes; a scan of the audit table would take minutes. SQLite's plan only:
    PostgreSQL's planner chooses by the table's statistics."""
    from engine.store.database import open_database

    db = open_database(f"sqlite:///{tmp_path / 'plan.db'}")
    _fill_patient_trail(db, KeyRing.load(tmp_path / "keys").audit)
    seen: list[str] = []

    def explain(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM audit" in statement:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                        tuple(parameters)).all()
            seen.append(" / ".join(row[-1] for row in plan))

    sa_event.listen(db, "before_cursor_execute", explain)
    try:
        _audit(db, patient="P1")
    finally:
        sa_event.remove(db, "before_cursor_execute", explain)
        db.dispose()
    assert len(seen) == 2, seen
    assert all("SCAN audit" not in plan for plan in seen), seen
    assert any("ix_audit_patient_other" in plan for plan in seen), seen
    assert any("ix_audit_message" in plan and "ix_messages_patient" in plan
               for plan in seen), seen


def test_a_store_made_before_the_partial_index_trades_the_full_one_for_it(db_url):
    """A store an earlier version made, with the audit's patient index on every event:
    opened, it loses that index (its pages were a third of each commit's writes) and gains
    the partial one, so searches by patient still read an index."""
    from engine.store.database import open_database

    db = open_database(db_url)
    try:
        with db.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_audit_patient_other")
            conn.exec_driver_sql("CREATE INDEX ix_audit_patient ON audit (patient)")
        db.dispose()
        db = open_database(db_url)
        names = {ix["name"] for ix in sa.inspect(db).get_indexes("audit")}
        assert "ix_audit_patient" not in names and "ix_audit_patient_other" in names
    finally:
        db.dispose()

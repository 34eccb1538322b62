"""engine/store/messages.py: sealed messages and outputs, statuses, the lookups duplicate
detection relies on, and audited reading; on SQLite and PostgreSQL.

The queue and the audit chain over the same store: tests/conformance/test_store.py."""

from __future__ import annotations

import base64
import os
import time

import pytest
import sqlalchemy as sa

from engine.errors import KeyError_, StoreError
from engine.message import _base32hex, message_id_floor, new_message_id
from engine.security.crypto import Vault, content_hash
from engine.security.keys import KeyRing
from engine.store.database import open_database
from engine.store.messages import MessageStore, StoredMessage
from engine.store.schema import audit, messages, outputs
from engine.store.writer import UnitOfWork, Writer

RAW = b"MSH|^~\\&|EPIC|NORTHWING|||20240301||ADT^A01|C1|P|2.5.1\rPID|1||MRN777^^^NW^MR"


@pytest.fixture
async def env(db_url, tmp_path):
    keys = KeyRing.load(tmp_path / "keys")
    db = open_database(db_url)
    writer = Writer(db, keys.audit)
    writer.start()
    yield db, writer, MessageStore(db, Vault(keys))
    await writer.close()
    db.dispose()


def _row(mid: str, *, channel: str = "adt", status: str = "accepted", sender: str = "EPIC^NW",
         control_id: str = "C1", raw: bytes = RAW) -> dict:
    return {"id": mid, "channel": channel, "received_at": time.time(), "status": status,
            "standard": "hl7v2", "message_type": "ADT^A01", "control_id": control_id,
            "sender": sender, "peer": "127.0.0.1:5000", "patient": "pseudo-1",
            "content_hash": content_hash(raw), "error": None}


async def _add(writer, store, mid: str | None = None, raw: bytes = RAW, **row) -> str:
    mid = mid or new_message_id()
    uow = UnitOfWork()
    store.add_message(uow, _row(mid, raw=raw, **row), raw)
    await writer.commit(uow)
    return mid


def _at(seconds_ago: float, n: int = 0) -> str:
    """A message id made `seconds_ago` (ids begin with their time)."""
    return message_id_floor(time.time() - seconds_ago)[:-4] + f"{n:04d}"


async def test_add_message_seals_content_and_records_its_size(env):
    db, writer, store = env
    mid = await _add(writer, store)
    with db.connect() as conn:
        row = conn.execute(sa.select(messages).where(messages.c.id == mid)).mappings().one()
    assert row["content"] != RAW
    assert b"MRN777" not in row["content"] and b"EPIC" not in row["content"]
    assert row["size"] == len(RAW)
    assert row["key_id"]
    assert store.open_raw(mid) == RAW


async def test_sealed_content_is_bound_to_its_message_id(env):
    """Content copied onto another row cannot be opened there (the id is associated data)."""
    db, writer, store = env
    first = await _add(writer, store)
    second = await _add(writer, store, raw=b"MSH|other")
    with db.begin() as conn:
        sealed = conn.execute(sa.select(messages.c.content)
                              .where(messages.c.id == first)).scalar_one()
        conn.execute(messages.update().where(messages.c.id == second).values(content=sealed))
    with pytest.raises(KeyError_, match="failed authentication"):
        store.open_raw(second)


async def test_outputs_are_sealed_and_open_in_order(env):
    db, writer, store = env
    mid = await _add(writer, store)
    uow = UnitOfWork()
    first = store.add_output(uow, mid, "hl7v2-adt-to-fhir@1", "application/fhir+json",
                             b'{"mrn": "MRN777"}')
    time.sleep(0.002)  # output ids sort by their millisecond, as mapping runs do
    second = store.add_output(uow, mid, "hl7v2-adt-to-fhir@2", "application/fhir+json",
                              b'{"mrn": "MRN777", "v": 2}')
    await writer.commit(uow)
    with db.connect() as conn:
        sealed = conn.execute(sa.select(outputs.c.content)).scalars().all()
    assert len(sealed) == 2 and all(b"MRN777" not in s for s in sealed)
    assert store.open_outputs(mid) == [
        ("hl7v2-adt-to-fhir@1", "application/fhir+json", b'{"mrn": "MRN777"}'),
        ("hl7v2-adt-to-fhir@2", "application/fhir+json", b'{"mrn": "MRN777", "v": 2}')]
    meta = store.outputs_of(mid)
    assert [m["id"] for m in meta] == sorted([first, second])
    assert meta[0]["content_hash"] == content_hash(b'{"mrn": "MRN777"}')
    assert "content" not in meta[0]
    assert store.open_outputs(new_message_id()) == []


async def test_open_raw_of_an_unknown_message_is_none(env):
    _, _, store = env
    assert store.open_raw(new_message_id()) is None


async def test_set_status_and_get(env):
    _, writer, store = env
    mid = await _add(writer, store)
    got = store.get(mid)
    assert isinstance(got, StoredMessage)
    assert (got.id, got.channel, got.status, got.error, got.size) == (
        mid, "adt", "accepted", None, len(RAW))
    assert (got.control_id, got.sender, got.patient) == ("C1", "EPIC^NW", "pseudo-1")
    uow = UnitOfWork()
    store.set_status(uow, mid, "error", "PID-7: not a date")
    await writer.commit(uow)
    got = store.get(mid)
    assert (got.status, got.error) == ("error", "PID-7: not a date")
    assert store.get(new_message_id()) is None


async def test_taken_with_control_ids_keeps_to_window_sender_channel_and_statuses(env):
    _, writer, store = env
    old = await _add(writer, store, _at(3600))
    ok = await _add(writer, store, _at(30, 1))
    filtered = await _add(writer, store, _at(20, 2), status="filtered", raw=b"MSH|filtered")
    await _add(writer, store, _at(15, 3), status="error")
    await _add(writer, store, _at(14, 4), status="rejected")
    await _add(writer, store, _at(13, 5), status="duplicate")
    await _add(writer, store, _at(12, 6), sender="OTHER^APP")
    await _add(writer, store, _at(11, 7), channel="lab")
    await _add(writer, store, _at(10, 8), control_id="C2")
    since, key = time.time() - 60, ("EPIC^NW", "C1")

    def taken(since: float, **limit: int) -> list[tuple[str, str]]:
        return store.taken_with_control_ids("adt", [key], since, **limit).get(key, [])

    assert taken(since) == [
        (ok, content_hash(RAW)), (filtered, content_hash(b"MSH|filtered"))]
    assert [m for m, _ in taken(time.time() - 7200)] == [old, ok, filtered]
    assert [m for m, _ in taken(since, limit=1)] == [ok]


async def test_recent_control_ids_of_a_channel_oldest_first(env):
    _, writer, store = env
    await _add(writer, store, _at(3600), control_id="OLD")
    a = await _add(writer, store, _at(30, 1), control_id="A")
    b = await _add(writer, store, _at(20, 2), control_id="B", status="filtered")
    await _add(writer, store, _at(15, 3), control_id="E", status="error")
    await _add(writer, store, _at(10, 4), control_id="L", channel="lab")
    recent = store.recent_control_ids("adt", time.time() - 60)
    assert [(s, c, m) for s, c, m, _ in recent] == [("EPIC^NW", "A", a), ("EPIC^NW", "B", b)]
    assert all(isinstance(at, float) for *_, at in recent)


async def test_read_is_audited_with_its_reason_before_content_is_returned(env):
    db, writer, store = env
    mid = await _add(writer, store)
    assert await store.read(writer, mid, actor="alice", reason="ticket 42") == RAW
    with db.connect() as conn:
        [viewed] = conn.execute(sa.select(audit).where(audit.c.kind == "viewed")).mappings()
    assert (viewed["actor"], viewed["message_id"], viewed["channel"]) == ("alice", mid, "adt")
    assert viewed["patient"] == "pseudo-1"
    assert viewed["content_hash"] == content_hash(RAW)
    assert '"reason":"ticket 42"' in viewed["detail"]


@pytest.mark.parametrize("reason", ["", "   ", "\n"])
async def test_read_refuses_an_empty_reason_and_records_nothing(env, reason):
    db, writer, store = env
    mid = await _add(writer, store)
    with pytest.raises(StoreError, match="reason"):
        await store.read(writer, mid, actor="alice", reason=reason)
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit)
                            .where(audit.c.kind == "viewed")).scalar() == 0


async def test_read_of_an_unknown_message_is_a_store_error(env):
    _, writer, store = env
    with pytest.raises(StoreError, match="no message"):
        await store.read(writer, new_message_id(), actor="alice", reason="ticket 42")


def test_message_ids_are_base32hex_of_time_then_randomness_and_sort_by_time():
    for raw in (bytes(16), b"\xff" * 16, *(os.urandom(16) for _ in range(200))):
        assert _base32hex(raw) == base64.b32hexencode(raw)[:26].decode()
    floor = message_id_floor(1_700_000_000.0)
    assert floor == base64.b32hexencode(
        (1_700_000_000_000).to_bytes(6, "big") + bytes(10))[:26].decode()
    assert message_id_floor(1_700_000_000.0) < new_message_id() < message_id_floor(
        time.time() + 1)

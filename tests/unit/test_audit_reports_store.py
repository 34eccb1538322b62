"""The disclosures query and the export on a real store, SQLite and PostgreSQL: hops
without the pseudonym are found through the message, the export vouches only for a chain
that verifies, and the pseudonym matches what ingest makes of an identifier."""

from __future__ import annotations

import os
import time

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine import audit_export
from engine.events import Event, Kind
from engine.security.crypto import identifier_value
from engine.security.signing import public_pem, signing_key
from engine.store import audit as chain
from engine.store import disclosures
from engine.store.database import open_database
from engine.store.schema import audit, messages

KEY = os.urandom(32)
A, B = "a" * 32, "b" * 32  # two patients' pseudonyms
M1, M2, M3 = "01M1" + "0" * 22, "01M2" + "0" * 22, "01M3" + "0" * 22


@pytest.fixture
def store(db_url):
    db = open_database(db_url)
    with db.begin() as conn:
        conn.execute(sa.insert(messages), [_message(M1, A), _message(M2, B),
                                           _message(M3, A)])
        hop = {"channel": "adt"}
        chain.append(conn, KEY, [
            Event(kind=Kind.RECEIVED, message_id=M1, patient=A, peer="10.0.0.5", **hop),
            Event(kind=Kind.ACKNOWLEDGED, message_id=M1, **hop),  # no pseudonym
            Event(kind=Kind.MAPPED, message_id=M1, patient=A, **hop,
                  detail={"mapping": "adt@2", "output": "o1"}),
            Event(kind=Kind.RECEIVED, message_id=M2, patient=B, **hop),
            Event(kind=Kind.SENT, message_id=M1, patient=A, destination="ehr", **hop),
            Event(kind=Kind.SENT, message_id=M2, patient=B, destination="ehr", **hop),
            Event(kind=Kind.DEAD_LETTERED, message_id=M3, patient=A, destination="ehr",
                  **hop, detail={"reason": "HTTP 503"}),
            # a requeue names the message only; M3 is A's through the messages table
            Event(kind=Kind.REQUEUED, actor="cli:ops", message_id=M3, destination="ehr",
                  **hop),
            Event(kind=Kind.VIEWED, actor="web:ana", message_id=M1, patient=A, **hop,
                  detail={"reason": "ticket 7"}),
        ])
    yield db
    db.dispose()


def _message(mid: str, patient: str) -> dict:
    return {"id": mid, "channel": "adt", "received_at": time.time(), "status": "accepted",
            "patient": patient, "size": 1, "content_hash": "0" * 64, "key_id": "k",
            "content": b"x", "sender": "LAB^HOSP", "message_type": "ADT^A01"}


def test_a_patients_hops_include_those_found_through_the_message(store):
    with store.connect() as conn:
        rows = disclosures.find(conn, A, 0, 2**62)
    assert [(r["event"], r["message_id"]) for r in rows] == [
        ("received", M1), ("acknowledged", M1), ("mapped", M1), ("sent", M1),
        ("dead-lettered", M3), ("requeued", M3), ("viewed", M1)]
    by = {r["event"]: r for r in rows}
    assert by["sent"]["mapping"] == "adt@2" and by["sent"]["what"] == "sent to adt/ehr"
    assert by["received"]["sender"] == "LAB^HOSP" and by["received"]["peer"] == "10.0.0.5"
    assert by["requeued"]["actor"] == "cli:ops" and by["dead-lettered"]["mapping"] == ""
    assert (by["viewed"]["actor"], by["viewed"]["reason"]) == ("web:ana", "ticket 7")
    with store.connect() as conn:
        assert disclosures.find(conn, A, 2**61, 2**62) == []


@pytest.mark.parametrize("typed", ["MRN123", " MRN123 ", "MRN123^^^HOSP^MR",
                                   "MRN123&x^^^HOSP", "http://hosp.example/mrn|MRN123"])
def test_the_identifier_is_keyed_as_ingest_keys_it(typed):
    assert identifier_value(typed) == "MRN123"


def test_period_dates_are_utc_days_and_to_is_inclusive():
    lo, hi = disclosures.period("2026-03-01", "2026-03-01", 0)
    assert hi - lo == 86_400 * 1_000_000
    assert disclosures.iso(lo) == "2026-03-01T00:00:00.000Z"
    assert disclosures.parse_time("2026-03-01T10:00:00+02:00") == \
        disclosures.parse_time("2026-03-01T08:00:00Z")
    with pytest.raises(disclosures.BadPeriod):
        disclosures.period("2026-03-02", "2026-03-01", 0)


def test_export_signs_a_verified_chain_and_refuses_a_broken_one(store):
    signer = Ed25519PrivateKey.generate()
    with store.connect() as conn:
        doc = audit_export.build(conn, KEY, signer, 0, 2**62, {"engine_version": "t"})
    data = audit_export.canonical(doc)  # any JSON spelling of the document will do
    problems, payload = audit_export.check(data, public_pem(signer).encode())
    assert problems == [] and payload["events"] == 9
    with store.begin() as conn:
        conn.execute(sa.update(audit).where(audit.c.seq == 4).values(actor="x"))
    with store.connect() as conn, pytest.raises(audit_export.ExportRefused, match="#4"):
        audit_export.build(conn, KEY, signer, 0, 2**62, {})


def test_an_export_of_a_later_period_links_to_the_event_before_it(store):
    signer = Ed25519PrivateKey.generate()
    time.sleep(0.002)
    since = time.time_ns() // 1000
    with store.begin() as conn:
        chain.append(conn, KEY, [Event(kind=Kind.ADMIN, detail={"action": "later"})] * 2)
    with store.connect() as conn:
        doc = audit_export.build(conn, KEY, signer, since, 2**62, {})
        ninth = conn.execute(sa.select(audit.c.hash).where(audit.c.seq == 9)).scalar()
    payload = doc["payload"]
    assert [r["seq"] for r in payload["rows"]] == [10, 11]
    assert payload["start"] == {"seq": 9, "hash": ninth}
    assert payload["chain_head"] == {"seq": 11, "hash": payload["rows"][-1]["hash"]}
    assert audit_export.check(audit_export.canonical(doc), public_pem(signer).encode()
                              )[0] == []


def test_signing_key_is_private_created_once_and_derivable_from_conduit_key(tmp_path):
    first = signing_key(tmp_path / "keys", env={})
    assert (tmp_path / "keys" / "audit-signing.key").stat().st_mode & 0o777 == 0o600
    assert public_pem(signing_key(tmp_path / "keys", env={})) == public_pem(first)
    env = {"CONDUIT_KEY": "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVoxMjM0NTY="}
    derived = signing_key(tmp_path / "none", env=env)
    assert public_pem(derived) == public_pem(signing_key(tmp_path / "other", env=env))
    assert public_pem(derived) != public_pem(first) and not (tmp_path / "none").exists()

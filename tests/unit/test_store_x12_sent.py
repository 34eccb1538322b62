"""engine/store/x12_sent.py on SQLite and PostgreSQL: sets sent are found again by the
partner's id (whatever qualifier it answers under) and group/set or interchange numbers,
the newest first; a message's partner_ack sums up its sets; counts per channel."""

from __future__ import annotations

from engine.store import x12_sent
from engine.store.schema import x12_sent as table


def _send(db, message_id: str, group: str, sets: list[str], partner: str = "ZZ:PAYERX",
          channel: str = "claims") -> None:
    with db.begin() as conn:
        conn.execute(table.insert(), [x12_sent.row(
            partner=partner, interchange=group.zfill(9), group_control=group,
            set_control=s, message_id=message_id, channel=channel, now=1.0) for s in sets])


def _mark(db, message_id: str, set_control: str, state: str, code: str,
          errors: list[str]) -> None:
    [row] = [r for r in _all(db)
             if r.message_id == message_id and r.set_control == set_control]
    with db.begin() as conn:
        conn.execute(x12_sent.verdict(row.id, state, {"code": code, "errors": errors,
                                                      "notes": [], "ack": "A1"}, 2.0))


def _all(db):
    with db.connect() as conn:
        return conn.execute(table.select()).all()


def test_found_by_partner_id_under_any_qualifier_and_by_numbers(db):
    _send(db, "M1", "1", ["0001"])
    _send(db, "M2", "2", ["0001", "0002"])
    _send(db, "M3", "2", ["0001"], partner="ZZ:PAYER_Y")  # _ is no wildcard here
    _send(db, "M4", "2", ["0001"], partner="ZZ:XPAYERX")
    found = x12_sent.find(db, "PAYERX", ["2"], [])
    assert [(r.message_id, r.set_control) for r in found] == [("M2", "0002"), ("M2", "0001")]
    assert [r.message_id for r in x12_sent.find(db, "PAYERX", [], ["000000001"])] == ["M1"]
    _send(db, "M5", "7", ["0001"], partner="01:PAYERX")
    assert [r.message_id for r in x12_sent.find(db, "PAYERX", ["7"], [])] == ["M5"]
    assert x12_sent.find(db, "PAYER%", ["2"], []) == []
    assert x12_sent.find(db, "PAYERX", [], []) == []


def test_partner_ack_of_a_message_and_counts(db):
    assert x12_sent.of_message(db, "M1") is None
    _send(db, "M1", "1", ["0001", "0002"])
    _send(db, "M2", "2", ["0001"])
    ack = x12_sent.of_message(db, "M1")
    assert ack is not None and (ack["state"], ack["at"], ack["sets"]) == (
        "sent", None, ["0001", "0002"])
    _mark(db, "M1", "0001", "accepted", "A", [])
    assert x12_sent.of_message(db, "M1")["state"] == "sent"  # one still awaited
    _mark(db, "M1", "0002", "rejected", "R", ["5"])
    ack = x12_sent.of_message(db, "M1")
    assert (ack["state"], ack["code"], ack["errors"], ack["at"]) == ("rejected", "R", ["5"],
                                                                     2.0)
    _mark(db, "M2", "0001", "accepted-with-errors", "E", ["5"])
    assert x12_sent.counts(db, "claims") == {"partner_accepted": 2, "partner_rejected": 1,
                                             "awaiting_partner_ack": 0}
    assert x12_sent.counts(db, "other") == {"partner_accepted": 0, "partner_rejected": 0,
                                            "awaiting_partner_ack": 0}

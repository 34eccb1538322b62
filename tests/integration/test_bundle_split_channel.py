"""Bundle splitting and FHIRPath filters in a running channel with the real store: each
part stored, filtered, mapped, queued and audited on its own; a transaction all or
nothing; the source told what became of every entry."""

from __future__ import annotations

import json
import logging

import pytest
import sqlalchemy as sa

from engine.message import MessageStatus, SourceMeta
from engine.store.schema import audit, messages, outputs
from tests.harness import EngineHarness

EPIC_MRN = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
STAMP = "2024-03-01T10:15:00-05:00"


def channel(out, extra: str = "") -> str:
    return f"""
        source: {{type: channel, inbox: fhir-in}}
        format: fhir
        split: {{resource: Patient}}
        mapping: fhir-to-hl7v2-adt@1
        destinations: [{{name: files, type: file, directory: "{out}"}}]
        {extra}
        """


def patient(pid: str, family: str, *, birth: str = "1980-02-03", system: str = EPIC_MRN,
            identifier: bool = True, version: str | None = None) -> dict:
    body: dict = {"resourceType": "Patient", "id": pid, "birthDate": birth,
                  "name": [{"family": family, "given": ["Alex"]}], "gender": "female"}
    if identifier:
        body["identifier"] = [{"system": system, "value": f"MRN{pid}"}]
    if version:
        body["meta"] = {"versionId": version, "lastUpdated": STAMP}
    return body


OBSERVATION = {"resourceType": "Observation", "id": "obs1", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}}


def bundle(kind: str, *resources: dict, stamp: str = STAMP) -> bytes:
    return json.dumps({"resourceType": "Bundle", "type": kind, "timestamp": stamp, "entry": [
        {"fullUrl": f"urn:uuid:{r['id']}", "resource": r,
         "request": {"method": "POST", "url": r["resourceType"]}} for r in resources]}).encode()


@pytest.fixture
async def running(tmp_path):
    started: list[EngineHarness] = []

    async def start(extra: str = ""):
        harness = EngineHarness(tmp_path)
        started.append(harness)
        engine = await harness.start({"fhir-in": channel(tmp_path / "out", extra)})
        return harness, engine, engine.channels["fhir-in"]

    yield start
    for harness in started:
        await harness.stop()


def rows(engine):
    with engine.services.db.connect() as conn:
        return conn.execute(sa.select(messages).order_by(messages.c.id)).all()


def trail(engine, message_id: str) -> list[tuple[str, dict]]:
    with engine.services.db.connect() as conn:
        found = conn.execute(sa.select(audit.c.kind, audit.c.detail)
                             .where(audit.c.message_id == message_id)
                             .order_by(audit.c.seq)).all()
    return [(r.kind, json.loads(r.detail) if r.detail else {}) for r in found]


def output_count(engine) -> int:
    with engine.services.db.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(outputs)).scalar_one()


async def acknowledged(harness, engine, message_id: str) -> None:
    """The acknowledged event is written after the reply, asynchronously."""
    await harness.settle(lambda: trail(engine, message_id)[-1][0] == "acknowledged")


async def deliver(ch, raw: bytes):
    receipt = await ch.deliver(raw, SourceMeta("test", "127.0.0.1", len(raw)))
    receipt.replied()
    return receipt


async def test_a_transaction_of_three_patients_becomes_three_adt_messages(running, tmp_path):
    harness, engine, ch = await running()
    raw = bundle("transaction", patient("p1", "ONE"), patient("p2", "TWO"),
                 patient("p3", "THREE"))
    receipt = await deliver(ch, raw)

    assert receipt.status is MessageStatus.ACCEPTED
    assert [(p.index, p.status) for p in receipt.parts] == [
        (0, MessageStatus.ACCEPTED), (1, MessageStatus.ACCEPTED), (2, MessageStatus.ACCEPTED)]
    stored = rows(engine)
    assert sorted(r.id for r in stored) == sorted(p.message_id for p in receipt.parts)
    assert receipt.message_id == receipt.parts[0].message_id
    assert {(r.status, r.message_type) for r in stored} == {("accepted", "Patient")}
    assert output_count(engine) == 3
    # each part is stored as its own resource, not the Bundle
    for part in receipt.parts:
        body = json.loads(engine.services.store.open_raw(part.message_id))
        assert body["resourceType"] == "Patient" and body["meta"]["lastUpdated"] == STAMP
    # the audit chain of each part, from received (saying where it came from) to sent
    await harness.settle(lambda: len(list((tmp_path / "out").glob("*.hl7"))) == 3)
    await harness.settle(lambda: all(trail(engine, p.message_id)[-1][0] == "sent"
                                     for p in receipt.parts))
    for part in receipt.parts:
        events = trail(engine, part.message_id)
        assert [k for k, _ in events] == ["received", "parsed", "mapped", "queued",
                                          "acknowledged", "sent"]
        received = events[0][1]
        assert received["split_from"] == part.index
        assert (received["parts"], received["entries"]) == (3, 3)
        assert "dropped" not in received
    written = sorted(p.read_text() for p in (tmp_path / "out").glob("*.hl7"))
    assert all("ADT^A28^ADT_A05" in text for text in written)
    assert sorted(t.split("PID|")[1].split("|")[4].split("^")[0] for t in written) == [
        "ONE", "THREE", "TWO"]
    # one reply for the Bundle, locating each part
    reply = json.loads(receipt.replies[0])
    assert [i["expression"] for i in reply["issue"] if "expression" in i] == [
        ["Bundle.entry[0].resource"], ["Bundle.entry[1].resource"],
        ["Bundle.entry[2].resource"]]


async def test_a_batch_entry_that_fails_its_mapping_fails_alone(running, tmp_path):
    harness, engine, ch = await running()
    raw = bundle("batch", patient("p1", "ONE"), patient("p2", "TWO", identifier=False),
                 patient("p3", "THREE"))
    receipt = await deliver(ch, raw)

    assert receipt.status is MessageStatus.ERROR
    assert [(p.index, p.status) for p in receipt.parts] == [
        (0, MessageStatus.ACCEPTED), (1, MessageStatus.ERROR), (2, MessageStatus.ACCEPTED)]
    failed = receipt.parts[1]
    assert failed.message_id and "Patient.identifier" in failed.problems[0].text
    assert [p.segment for p in receipt.problems] == ["Bundle.entry[1].resource"]
    assert output_count(engine) == 2
    await harness.settle(lambda: len(list((tmp_path / "out").glob("*.hl7"))) == 2)
    await acknowledged(harness, engine, failed.message_id)
    assert [k for k, _ in trail(engine, failed.message_id)] == [
        "received", "parsed", "errored", "acknowledged"]


async def test_a_transaction_with_a_failing_entry_is_refused_whole(running, tmp_path):
    harness, engine, ch = await running()
    raw = bundle("transaction", patient("p1", "ONE"), patient("p2", "TWO", identifier=False),
                 patient("p3", "THREE"))
    receipt = await deliver(ch, raw)

    assert receipt.status is MessageStatus.REJECTED and receipt.parts == ()
    [problem] = receipt.problems
    assert problem.segment == "Bundle.entry[1].resource"
    assert "Patient.identifier" in problem.text
    [stored] = rows(engine)  # the Bundle, kept whole for the analyst
    assert (stored.id, stored.status) == (receipt.message_id, "rejected")
    assert json.loads(engine.services.store.open_raw(stored.id))["type"] == "transaction"
    assert output_count(engine) == 0
    await acknowledged(harness, engine, stored.id)
    assert [k for k, _ in trail(engine, stored.id)] == ["received", "rejected", "acknowledged"]
    reply = json.loads(receipt.replies[0])
    assert reply["issue"][0]["expression"] == ["Bundle.entry[1].resource"]
    # fixed and resent, the whole transaction goes through
    fixed = bundle("transaction", patient("p1", "ONE"), patient("p2", "TWO"),
                   patient("p3", "THREE"))
    again = await deliver(ch, fixed)
    assert [p.status for p in again.parts] == [MessageStatus.ACCEPTED] * 3


async def test_a_resent_bundle_is_duplicate_part_by_part_and_a_new_version_is_not(
        running, tmp_path):
    harness, _engine, ch = await running()
    first = bundle("transaction", patient("p1", "ONE", version="1"), patient("p2", "TWO"))
    await deliver(ch, first)
    resent = await deliver(ch, first)
    assert [p.status for p in resent.parts] == [MessageStatus.DUPLICATE] * 2
    assert resent.status is MessageStatus.DUPLICATE
    # p1 in a new version, p2 unchanged but in a later Bundle (its time is the Bundle's)
    newer = bundle("transaction", patient("p1", "ONE", version="2"), patient("p2", "TWO"),
                   stamp="2024-03-02T09:00:00Z")
    receipt = await deliver(ch, newer)
    assert [p.status for p in receipt.parts] == [MessageStatus.ACCEPTED] * 2
    await harness.settle(lambda: len(list((tmp_path / "out").glob("*.hl7"))) == 4)
    texts = [p.read_text() for p in (tmp_path / "out").glob("*.hl7")]
    assert sum("ADT^A31" in t for t in texts) == 1


async def test_a_resent_transaction_of_new_patients_without_ids_is_duplicate(running):
    _harness, engine, ch = await running()

    def new_patients(stamp: str) -> bytes:
        body = json.loads(bundle("transaction", patient("p1", "ONE"), patient("p2", "TWO"),
                                 stamp=stamp))
        for entry in body["entry"]:
            del entry["resource"]["id"]  # POSTed: the server assigns ids
        return json.dumps(body).encode()

    first = await deliver(ch, new_patients(STAMP))
    assert [p.status for p in first.parts] == [MessageStatus.ACCEPTED] * 2
    resent = await deliver(ch, new_patients(STAMP))
    assert [p.status for p in resent.parts] == [MessageStatus.DUPLICATE] * 2
    later = await deliver(ch, new_patients("2024-03-02T09:00:00Z"))
    assert [p.status for p in later.parts] == [MessageStatus.ACCEPTED] * 2
    control_ids = [r.control_id for r in rows(engine)]
    assert all(c.startswith("sha256:") for c in control_ids) and len(set(control_ids)) == 4
    assert output_count(engine) == 4


async def test_bundles_with_nothing_to_split_or_malformed(running, tmp_path):
    _harness, engine, ch = await running()
    only_obs = await deliver(ch, bundle("collection", OBSERVATION))
    assert only_obs.status is MessageStatus.FILTERED and only_obs.parts == ()
    assert trail(engine, only_obs.message_id)[2] == (
        "filtered", {"rule": "split: the Bundle holds no Patient entries"})
    broken = json.dumps({"resourceType": "Bundle", "type": "batch",
                         "entry": [{"resource": patient("p1", "ONE")}, 7]}).encode()
    refused = await deliver(ch, broken)
    assert refused.status is MessageStatus.REJECTED and refused.parts == ()
    assert [p.text for p in refused.problems] == ["Bundle.entry[1] is not an object"]
    alone = await deliver(ch, json.dumps(patient("p9", "NINE", version="1")).encode())
    assert alone.status is MessageStatus.ACCEPTED and alone.parts == ()
    assert output_count(engine) == 1


async def test_a_stored_part_reprocesses_as_itself(running, tmp_path):
    _harness, engine, ch = await running()
    receipt = await deliver(ch, bundle("batch", patient("p1", "ONE"), patient("p2", "TWO")))
    part = receipt.parts[1]
    raw = engine.services.store.open_raw(part.message_id)
    assert await ch.reprocess(part.message_id, raw, None, "analyst") is MessageStatus.ACCEPTED
    assert output_count(engine) == 3


async def test_a_transaction_refused_whole_is_not_reprocessed_as_one_message(running):
    _harness, engine, ch = await running()
    raw = bundle("transaction", patient("p1", "ONE"), patient("p2", "TWO", identifier=False))
    receipt = await deliver(ch, raw)
    stored = engine.services.store.open_raw(receipt.message_id)
    status = await ch.reprocess(receipt.message_id, stored, None, "analyst")
    assert status is MessageStatus.REJECTED and output_count(engine) == 0
    [row] = rows(engine)
    assert row.error.startswith("a Bundle this channel splits cannot be reprocessed")


FILTERS = f"""
        filter:
          - fhirpath: "Patient.birthDate >= @2000-01-01"
          - fhirpath: "Patient.identifier.where(system = '{EPIC_MRN}').exists()"
        """


async def test_fhirpath_filters_route_each_part_and_say_which_rule(running, tmp_path, caplog):
    _harness, engine, ch = await running(FILTERS)
    caplog.set_level(logging.DEBUG)
    raw = bundle("batch", patient("p1", "OLDSTER", birth="1950-05-05"),
                 patient("p2", "YOUNGSTER", birth="2010-10-10"),
                 patient("p3", "ELSEWHERE", birth="2011-11-11", system="urn:oid:9.9"))
    receipt = await deliver(ch, raw)
    assert [p.status for p in receipt.parts] == [
        MessageStatus.FILTERED, MessageStatus.ACCEPTED, MessageStatus.FILTERED]
    assert receipt.status is MessageStatus.FILTERED
    old, _, other = receipt.parts
    assert trail(engine, old.message_id)[2] == (
        "filtered", {"rule": "fhirpath Patient.birthDate >= @2000-01-01"})
    assert trail(engine, other.message_id)[2] == (
        "filtered", {"rule": f"fhirpath Patient.identifier.where(system = '{EPIC_MRN}')"
                             ".exists()"})
    filtered = {r.id: r.error for r in rows(engine) if r.status == "filtered"}
    assert filtered[old.message_id] == "filtered: fhirpath Patient.birthDate >= @2000-01-01"
    assert output_count(engine) == 1
    with engine.services.db.connect() as conn:
        details = " ".join(r.detail or "" for r in conn.execute(sa.select(audit.c.detail)))
    for phi in ("OLDSTER", "YOUNGSTER", "ELSEWHERE", "1950-05-05", "MRNp1", "MRNp3"):
        assert phi not in details and phi not in caplog.text


async def test_fhirpath_rules_on_a_large_resource(running):
    _harness, engine, ch = await running(FILTERS)
    big = patient("p1", "BIG", birth="2001-01-01", system="urn:oid:9.9", version="1")
    big["identifier"] += [{"system": "urn:oid:9.9", "value": f"X{i}"} for i in range(600)]
    raw = json.dumps(big).encode()
    assert len(raw) > 16 * 1024  # evaluated off the event loop
    assert (await deliver(ch, raw)).status is MessageStatus.FILTERED
    big["identifier"].append({"system": EPIC_MRN, "value": "E1"})
    big["id"] = "p2"  # another resource (p1 again would be a duplicate of the filtered one)
    assert (await deliver(ch, json.dumps(big).encode())).status is MessageStatus.ACCEPTED
    assert output_count(engine) == 1


async def test_a_fhirpath_rule_that_cannot_be_evaluated_errors_the_message(running, caplog):
    harness, engine, ch = await running(
        'filter: [{fhirpath: "Patient.name > 5 \'a\'"}]')
    caplog.set_level(logging.DEBUG)
    receipt = await deliver(ch, json.dumps(patient("p1", "SECRETNAME",
                                                   version="1")).encode())
    assert receipt.status is MessageStatus.ERROR
    [stored] = rows(engine)
    assert stored.status == "error" and stored.error.startswith("filter: fhirpath ")
    await acknowledged(harness, engine, stored.id)
    assert [k for k, _ in trail(engine, stored.id)] == [
        "received", "parsed", "errored", "acknowledged"]
    assert "SECRETNAME" not in caplog.text and "1980-02-03" not in caplog.text


async def test_a_transaction_is_stored_all_or_nothing(running):
    """The store refusing part of a transaction refuses all of it; a batch's parts stand
    alone. (Here the outputs table is gone: the filtered part needs none.)"""
    _harness, engine, ch = await running(
        'filter: [{fhirpath: "Patient.birthDate >= @2000-01-01"}]')
    with engine.services.db.begin() as conn:
        conn.execute(sa.text("DROP TABLE outputs"))
    parts = (patient("p1", "ONE", birth="2001-01-01"), patient("p2", "TWO", birth="1950-01-01"))
    receipt = await deliver(ch, bundle("transaction", *parts))
    assert [(p.message_id, p.status) for p in receipt.parts] == [("", MessageStatus.ERROR)] * 2
    assert rows(engine) == []
    receipt = await deliver(ch, bundle("batch", *parts, stamp="2024-03-02T09:00:00Z"))
    assert [p.status for p in receipt.parts] == [MessageStatus.ERROR, MessageStatus.FILTERED]
    assert [r.status for r in rows(engine)] == ["filtered"]

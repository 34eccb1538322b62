"""engine/pipeline/envelope.py: one interface for the codec's envelopes (an HL7 batch)
and the channel's splitter (a FHIR Bundle), the all-or-nothing rule once, and the one
reply for the whole."""

from __future__ import annotations

import json

from engine.config.rules import SplitConfig
from engine.formats.fhir import FhirCodec
from engine.formats.hl7v2 import Hl7v2Codec
from engine.message import MessageStatus, Problem, Receipt, SourceMeta
from engine.pipeline.envelope import Envelopes, combine, located
from engine.pipeline.splitting import Splitter


def _msg(control_id: str) -> bytes:
    return (f"MSH|^~\\&|LAB|NORTH|EHR|SOUTH|20240102||ADT^A01|{control_id}|P|2.5\r"
            f"PID|1||{control_id}-MRN^^^NORTH^MR\r").encode()


def _batch(count: int = 2) -> bytes:
    return (b"BHS|^~\\&|LAB|NORTH|EHR|SOUTH|20240102||ADT|first|B001\r" + _msg("M1")
            + _msg("M2") + f"BTS|{count}\r".encode())


def _bundle(kind: str, *, observation: bool = True) -> bytes:
    entries = [{"resource": {"resourceType": "Patient", "id": "a"}},
               {"resource": {"resourceType": "Patient"}}]
    if observation:  # not taken by the Patient splitter
        entries.insert(0, {"resource": {"resourceType": "Observation", "id": "o"}})
    return json.dumps({"resourceType": "Bundle", "type": kind, "entry": entries}).encode()


META = SourceMeta("mllp", "127.0.0.1:1", 999, tls_subject="CN=lab",
                  changes=("Bundle.entry[1].meta", "Bundle.entry[2].meta", "meta.x"))
HL7 = Envelopes(Hl7v2Codec(), None)
FHIR = Envelopes(FhirCodec(), Splitter(SplitConfig(resource="Patient")))


def test_one_message_is_no_envelope_and_a_truncated_one_is_never_opened():
    assert HL7.open(_msg("M1"), META) is None
    assert HL7.open(_batch(), SourceMeta("mllp", truncated=True)) is None
    assert FHIR.open(_bundle("batch"), SourceMeta("http", truncated=True)) is None
    assert FHIR.open(b'{"resourceType": "Patient"}', META) is None


def test_an_hl7_batch_opens_into_its_messages_each_with_its_own_size():
    opened = HL7.open(_batch(), META)
    assert opened is not None and not opened.atomic
    parts = list(opened.parts)
    assert [p.raw for p in parts] == [_msg("M1"), _msg("M2")]
    assert parts[0].meta == SourceMeta("mllp", "127.0.0.1:1", len(_msg("M1")),
                                              tls_subject="CN=lab")
    assert opened.refusal(()) == ()
    # parts are independent: one failing refuses nothing
    assert opened.refusal([(MessageStatus.ERROR, (Problem("x"),))]) == ()


def test_an_hl7_batch_with_a_wrong_count_is_refused_whole_with_a_batch_reply():
    opened = HL7.open(_batch(count=3), META)
    refused = opened.refusal(())
    assert [p.segment for p in refused] == ["BTS"]
    kept = Receipt("M0", MessageStatus.REJECTED, (b"single",), None)
    receipt = opened.refused(kept, refused)
    assert receipt.message_id == "M0" and receipt.status is MessageStatus.REJECTED
    assert receipt.replies[0].startswith(b"BHS|") and receipt.replies[0].count(b"MSA|AR") == 2


def test_a_split_bundle_opens_into_its_parts_with_their_entry_changes():
    opened = FHIR.open(_bundle("batch"), META)
    assert opened is not None and not opened.atomic
    assert [p.received["split_from"] for p in opened.parts] == [1, 2]
    assert opened.parts[0].control_id == ""  # has an id: the codec's applies
    assert opened.parts[1].control_id.startswith("sha256:")
    assert opened.parts[0].meta.changes == ("Bundle.entry[1].meta", "meta.x")
    assert opened.parts[0].meta.size == len(opened.parts[0].raw)


def test_a_transaction_is_refused_whole_when_a_part_fails_naming_its_entry():
    opened = FHIR.open(_bundle("transaction", observation=False), META)
    assert opened.atomic
    ok = (MessageStatus.ACCEPTED, ())
    assert opened.refusal([ok, ok]) == ()
    failed = (MessageStatus.REJECTED, (Problem("bad", segment="Patient.name"),))
    refusal = opened.refusal([ok, failed])
    assert [p.segment for p in refusal] == ["Bundle.entry[1].resource.name"]
    kept = Receipt("M0", MessageStatus.REJECTED, (b"outcome",))
    assert opened.refused(kept, refusal) is kept


def test_a_malformed_bundle_is_refused_before_any_part():
    opened = FHIR.open(b'{"resourceType": "Bundle", "entry": {"x": 1}}', META)
    assert opened.parts == [] and [p.text for p in opened.refusal(())] == [
        "Bundle.entry is not a list"]


def test_the_receipt_for_a_split_bundle_itemises_its_parts():
    opened = FHIR.open(_bundle("batch"), META)
    receipts = [Receipt("M1", MessageStatus.ACCEPTED),
                Receipt("M2", MessageStatus.ERROR, problems=(Problem("no", segment="x"),))]
    ok = json.dumps({"resourceType": "OperationOutcome", "issue": [
        {"severity": "information", "code": "informational", "diagnostics": "ok"}]}).encode()
    receipt = opened.receipt(receipts, [ok, ok])
    assert (receipt.message_id, receipt.status) == ("M1", MessageStatus.ERROR)
    assert [(p.index, p.message_id) for p in receipt.parts] == [(1, "M1"), (2, "M2")]
    assert [p.segment for p in receipt.problems] == ["Bundle.entry[2].resource"]
    issues = json.loads(receipt.replies[0])["issue"]
    assert issues[0]["diagnostics"] == "message M1: ok"


def test_combine_takes_the_worst_status_and_acknowledges_each():
    acked: list[str] = []
    receipts = [Receipt("", MessageStatus.ERROR, on_replied=lambda: acked.append("a")),
                Receipt("M2", MessageStatus.FILTERED, on_replied=lambda: acked.append("b"))]
    receipt = combine(receipts, b"reply")
    assert (receipt.message_id, receipt.status, receipt.replies) == (
        "M2", MessageStatus.ERROR, (b"reply",))
    receipt.replied()
    assert acked == ["a", "b"]
    assert combine([], b"r").status is MessageStatus.ACCEPTED


def test_located_keeps_the_element_path_under_the_entry():
    assert located(3, Problem("x", segment="Patient.identifier", field=2)).segment == \
        "Bundle.entry[3].resource.identifier"
    assert located(0, Problem("x", segment="MSH")).segment == "Bundle.entry[0].resource"


def test_splits_says_whether_a_reprocess_must_refuse():
    assert FHIR.splits(_bundle("transaction"))
    assert not FHIR.splits(b'{"resourceType": "Patient"}')
    assert not HL7.splits(_batch())
    every = Envelopes(FhirCodec(), Splitter(SplitConfig(resource="*")))
    assert not every.splits(_bundle("transaction"))

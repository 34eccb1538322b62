"""The SCRIPT codec on every message type a prescriber or pharmacy system sends, in
their styles (default namespace, a `script:` prefix, no namespace, one line; 2017071 and
2023011): each is routed by its Header, sound ones pass strict validation, broken ones
are named by the element they lack (never by a value), answers correlate by
RelatesToMessageID, and a receiver's Status/Error/Verify is read back for the queue."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.errors import ParseError
from engine.formats.ncpdp import NcpdpCodec
from engine.formats.ncpdp.message import ScriptMessage
from engine.formats.ncpdp.xml import parse_xml
from engine.message import Fail, Outbound, Outcome, Problem, Retry, Sent, Verdict

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "tests" / "fixtures" / "ncpdp"
codec = NcpdpCodec()

EHR, EHR2 = "HARBORSIDEEHR^C", "GREENMTNCLINIC01^C"
CASCO, LAKE = "7701630^P", "4608821^P"
ASTRID, TOMAS = "MRN448120", "PT-0093317"
NORTHSTAR, BEACON, RENEE = "NORTHSTAR-EHR-77^C", "2218840^P", "NS-0044712"

# file (under tests/fixtures/ncpdp or mappings/), type, MessageID, From, To, patient, version
ROUTED = [
    ("newrx_default_ns.xml", "NewRx", "a3f1c2d4e5b6478899aa0011bb22cc33", EHR, CASCO, ASTRID,
     "2017071"),
    ("newrx_controlled_prefixed_2023011.xml", "NewRx", "GMC-NRX-000440", EHR2, LAKE, TOMAS,
     "2023011"),
    ("newrx_veterinary_no_namespace.xml", "NewRx", "LVC-NRX-0098", "LAKEVIEWVETCLINIC^C",
     CASCO, "VET-20931", "2017071"),
    ("ncpdp-cancelrx-to-fhir/fixtures/v1/cancelrx_default_ns.xml", "CancelRx",
     "c7d2e1f0a9b84c3d9e8f7a6b5c4d3e2f", EHR, CASCO, ASTRID, "2017071"),
    ("ncpdp-cancelrx-to-fhir/fixtures/v1/cancelrx_controlled_prefixed_2023011.xml", "CancelRx",
     "GMC-CX-000451", EHR2, LAKE, TOMAS, "2023011"),
    ("ncpdp-cancelrx-to-fhir/fixtures/v1/cancelrx_no_namespace_compact.xml", "CancelRx",
     "c7d2e1f0a9b84c3d9e8f7a6b5c4d3e30", EHR, CASCO, ASTRID, "2017071"),
    ("ncpdp-cancelrx-to-fhir/fixtures/v1/cancelrx_response_approved.xml", "CancelRxResponse",
     "CBP-20261203-000877", CASCO, EHR, ASTRID, "2017071"),
    ("ncpdp-cancelrx-to-fhir/fixtures/v1/cancelrx_response_denied_prefixed.xml",
     "CancelRxResponse", "LSA-CXR-55012", LAKE, EHR2, None, "2023011"),
    ("cancelrx_response_denied_no_namespace.xml", "CancelRxResponse", "CBP-20261203-000901",
     CASCO, EHR, None, "2017071"),
    ("ncpdp-rxfill-to-fhir/fixtures/v1/rxfill_dispensed_default_ns.xml", "RxFill",
     "CBP-20261202-000611", CASCO, EHR, ASTRID, "2017071"),
    ("ncpdp-rxfill-to-fhir/fixtures/v1/rxfill_partially_dispensed_prefixed.xml", "RxFill",
     "CBP-20261202-000598", CASCO, EHR, ASTRID, "2017071"),
    ("ncpdp-rxfill-to-fhir/fixtures/v1/rxfill_not_dispensed_no_namespace_2023011.xml", "RxFill",
     "LSA-FILL-90017", LAKE, EHR2, TOMAS, "2023011"),
    ("ncpdp-rxfill-to-fhir/fixtures/v1/rxfill_transferred_compact.xml", "RxFill",
     "CBP-20261205-000140", CASCO, EHR, ASTRID, "2017071"),
    ("rxfill_dispensed_no_namespace.xml", "RxFill", "LSA-FILL-90002", LAKE, EHR2, TOMAS,
     "2017071"),
    ("rxfillindicatorchange_default_ns.xml", "RxFillIndicatorChange",
     "c7d2e1f0a9b84c3d9e8f7a6b5c4d3f01", EHR, CASCO, ASTRID, "2017071"),
    ("rxfillindicatorchange_prefixed_2023011.xml", "RxFillIndicatorChange", "GMC-FIC-000077",
     EHR2, LAKE, TOMAS, "2023011"),
    ("ncpdp-rxrenewal-to-fhir/fixtures/v1/renewal_request_default_ns.xml", "RxRenewalRequest",
     "CBP-20261210-001204", CASCO, EHR, ASTRID, "2017071"),
    ("ncpdp-rxrenewal-to-fhir/fixtures/v1/renewal_request_prefixed_2023011.xml",
     "RxRenewalRequest", "LSA-REN-31007", LAKE, EHR2, TOMAS, "2023011"),
    ("ncpdp-rxrenewal-to-fhir/fixtures/v1/renewal_response_approved_default_ns.xml",
     "RxRenewalResponse", "c7d2e1f0a9b84c3d9e8f7a6b5c4d4a10", EHR, CASCO, ASTRID, "2017071"),
    ("ncpdp-rxrenewal-to-fhir/fixtures/v1/renewal_response_denied_prefixed_2023011.xml",
     "RxRenewalResponse", "GMC-RRR-004410", EHR2, LAKE, TOMAS, "2023011"),
    ("ncpdp-rxrenewal-to-fhir/fixtures/v1/renewal_response_replace_no_namespace.xml",
     "RxRenewalResponse", "c7d2e1f0a9b84c3d9e8f7a6b5c4d4a11", EHR, CASCO, ASTRID, "2017071"),
    ("rxchange_request_generic_default_ns.xml", "RxChangeRequest", "CBP-20261201-000451",
     CASCO, EHR, ASTRID, "2017071"),
    ("rxchange_request_prior_auth_prefixed.xml", "RxChangeRequest", "LSA-CHG-40031", LAKE,
     EHR2, TOMAS, "2023011"),
    ("rxchange_response_approved_no_namespace.xml", "RxChangeResponse",
     "c7d2e1f0a9b84c3d9e8f7a6b5c4d3f55", EHR, CASCO, ASTRID, "2017071"),
    ("rxchange_response_denied_prefixed.xml", "RxChangeResponse", "GMC-CHR-000902", EHR2, LAKE,
     TOMAS, "2023011"),
    ("status_default_ns.xml", "Status", "SS-ST-10001", CASCO, EHR, None, "2017071"),
    ("status_prefixed_2023011.xml", "Status", "SS-ST-10002", LAKE, EHR2, None, "2023011"),
    ("error_no_namespace.xml", "Error", "SS-ER-20001", CASCO, EHR, None, "2017071"),
    ("error_prefixed_602.xml", "Error", "SS-ER-20002", LAKE, EHR2, None, "2023011"),
    ("verify_default_ns.xml", "Verify", "SS-VF-30001", CASCO, EHR, None, "2017071"),
    ("verify_compact.xml", "Verify", "SS-VF-30002", LAKE, EHR2, None, "2017071"),
    ("unknown_drugadministration_default_ns.xml", "DrugAdministration", "LSA-DA-0001", LAKE,
     EHR2, TOMAS, "2023011"),
    ("unknown_clinicalinforequest_prefixed.xml", "ClinicalInfoRequest", "CBP-CIR-0001", CASCO,
     EHR, ASTRID, "2017071"),
    # other systems' styles: an ns:/ncpdp:/s: prefix, one line, minidom's tabs, CDATA,
    # a bare `version` attribute, no patient identifier at all
    ("newrx_compound_one_line_2023011_no_ids.xml", "NewRx", "dc-2023-0000451", "DERMCO-RX^C",
     "5531177^P", None, "2023011"),
    ("cancelrx_response_approved_ncpdp_prefix.xml", "CancelRxResponse", "PH-CXR-9001",
     BEACON, NORTHSTAR, None, "2017071"),
    ("rxrenewal_response_approved_s_prefix_one_line.xml", "RxRenewalResponse", "NS-RNR-0002",
     NORTHSTAR, BEACON, RENEE, "2017071"),
    ("rxfill_partial_minidom_tabs.xml", "RxFill", "PH-FILL-8001", BEACON, NORTHSTAR, RENEE,
     "2017071"),
    ("error_900_descriptioncode_version_attribute.xml", "Error", "PH-ERR-0006", "5531177^P",
     "DERMCO-RX^C", None, "2023011"),
    ("unknown_rxhistoryrequest_no_namespace.xml", "RxHistoryRequest", "NS-UNK-0008",
     NORTHSTAR, BEACON, RENEE, "2017071"),
]
ANSWERS = {"Status", "Error", "Verify"}


def raw_of(name: str) -> bytes:
    path = SHARED / name if "/" not in name else ROOT / "mappings" / name
    return path.read_bytes()


def answer_of(reply: bytes) -> ScriptMessage:
    root, namespace = parse_xml(reply)
    return ScriptMessage(root, namespace)


@pytest.mark.parametrize(("name", "kind", "mid", "sender", "receiver", "patient", "version"),
                         ROUTED, ids=[r[0].rsplit("/", 1)[-1] for r in ROUTED])
def test_every_fixture_is_routed_by_its_header(name, kind, mid, sender, receiver, patient,
                                               version):
    raw = raw_of(name)
    assert codec.detect(raw)
    parsed = codec.parse(raw)
    assert (parsed.message_type, parsed.control_id, parsed.sender, parsed.receiver,
            parsed.patient_id, parsed.version) == (kind, mid, sender, receiver, patient,
                                                   version)
    assert codec.validate(parsed, "strict") == [], "a sound fixture passes strict checks"


def test_styles_of_one_message_read_the_same():
    """Default namespace, prefix and no namespace are the same elements by path."""
    prefixed = codec.parse(raw_of("ncpdp-cancelrx-to-fhir/fixtures/v1/"
                                  "cancelrx_controlled_prefixed_2023011.xml")).body
    compact = codec.parse(raw_of("ncpdp-cancelrx-to-fhir/fixtures/v1/"
                                 "cancelrx_no_namespace_compact.xml")).body
    assert prefixed.value("CancelRx/Prescriber/NonVeterinarian/Identification/DEANumber") \
        == "BN4417263"
    assert prefixed.value("CancelRx/Patient/HumanPatient/Name/LastName") == "Bergström-Reyes"
    assert compact.value("CancelRx/MedicationPrescribed/Quantity/Value") == "90"
    assert compact.value("Header/PrescriberOrderNumber") == "ORD-2026-55120"
    assert compact.namespace == "" and prefixed.namespace == "http://www.ncpdp.org/schema/SCRIPT"


BROKEN = [
    ("broken_newrx_no_dob.xml", "patient date of birth", "NewRx",
     ("Lindqvist", "Astrid", "1962")),
    ("broken_newrx_controlled_no_dea.xml", "DEA number", "NewRx",
     ("Bergström", "Nakamura", "oxycodone", "C48672")),
    ("broken_cancelrx_no_drug.xml", "drug description", "CancelRx", ("Lindqvist",)),
    ("broken_rxrenewalresponse_no_relates.xml", "Header/RelatesToMessageID", "Header",
     ("Lindqvist",)),
    ("broken_rxfill_no_fill_status.xml", "fill status", "RxFill", ("Lindqvist", "atorvastatin")),
    ("broken_error_no_code.xml", "error code", "Error", ("something went wrong",)),
]


@pytest.mark.parametrize(("name", "names", "where", "values"), BROKEN,
                         ids=[b[0] for b in BROKEN])
def test_broken_messages_name_what_they_lack_never_a_value(name, names, where, values):
    parsed = codec.parse(raw_of(name))
    strict = codec.validate(parsed, "strict")
    assert len(strict) == 1, [p.text for p in strict]
    problem = strict[0]
    assert names in problem.text and problem.segment == where
    assert problem.severity == "E" and problem.code == "900"
    assert not any(v.lower() in problem.text.lower() for v in values)
    lenient = codec.validate(parsed, "lenient")
    assert [(p.text, p.severity) for p in lenient] == [(problem.text, "W")]


def test_a_veterinarians_newrx_is_sound_without_an_npi():
    """An animal patient (NonHumanPatient) and a Veterinarian identified by state
    license and DEA number pass; without any identifier the prescriber is named."""
    raw = raw_of("newrx_veterinary_no_namespace.xml")
    assert codec.validate(codec.parse(raw), "strict") == []
    unnamed = raw.replace(b"<StateLicenseNumber>VT-DVM-4471</StateLicenseNumber>",
                          b"").replace(b"<DEANumber>FH3390217</DEANumber>", b"")
    assert b"VT-DVM" not in unnamed and b"FH3390217" not in unnamed
    texts = [p.text for p in codec.validate(codec.parse(unnamed), "strict")]
    assert texts == [
        "NewRx: prescriber NPI is missing (Prescriber/NonVeterinarian/Identification/NPI)",
        "NewRx: a controlled substance needs the prescriber's DEA number "
        "(Prescriber/NonVeterinarian/Identification/DEANumber)"]
    human = raw_of("newrx_default_ns.xml").replace(b"<NPI>1326048851</NPI>", b"")
    assert [p.text for p in codec.validate(codec.parse(human), "strict")] == [
        "NewRx: prescriber NPI is missing (Prescriber/NonVeterinarian/Identification/NPI)"]


@pytest.mark.parametrize(("sent", "wrong"), [
    (b"<Value>thirty</Value>", "quantity is not a number above 0"),
    (b"<Value>1,000</Value>", "quantity is not a number above 0"),
    (b"<Value>0</Value>", "quantity is not a number above 0"),
    (b"<DaysSupply>30.0</DaysSupply>", "days supply is not a whole number of days"),
    (b"<NumberOfRefills>\xc2\xb2</NumberOfRefills>", "number of refills is not a whole number"),
    (b"<Date>1962-02-30</Date>", "patient date of birth is not a date (CCYY-MM-DD)"),
    (b"<Date>20261201</Date>", "written date is not a date (CCYY-MM-DD)"),
], ids=["words", "thousands", "zero", "decimal-days", "superscript", "feb-30", "compact"])
def test_strict_names_a_value_the_mapping_could_not_read(sent, wrong):
    """What strict takes, the mappings map: a value present but unreadable is refused
    naming the element (never quoting the value), not silently left out."""
    raw = raw_of("newrx_default_ns.xml")
    original = {b"Value": b"<Value>90</Value>", b"DaysSupply": b"<DaysSupply>90</DaysSupply>",
                b"NumberOfRefills": b"<NumberOfRefills>3</NumberOfRefills>"}
    tag = sent[1:sent.index(b">")]
    if tag == b"Date":
        was = b"<Date>1962-07-14</Date>" if b"1962" in sent else b"<Date>2026-12-01</Date>"
    else:
        was = original[tag]
    texts = [p.text for p in codec.validate(codec.parse(raw.replace(was, sent, 1)), "strict")]
    assert len(texts) == 1 and f"NewRx: {wrong}" in texts[0], texts
    assert sent[len(tag) + 2:-len(tag) - 3].decode() not in texts[0].replace(wrong, "")


def test_an_rxfill_of_an_unknown_fill_status_is_refused_by_strict():
    ok = raw_of("ncpdp-rxfill-to-fhir/fixtures/v1/rxfill_dispensed_default_ns.xml")
    assert codec.validate(codec.parse(ok), "strict") == []
    odd = ok.replace(b"<Dispensed", b"<Dispensed_Partial").replace(b"</Dispensed>",
                                                                 b"</Dispensed_Partial>")
    assert [p.text for p in codec.validate(codec.parse(odd), "strict")] == [
        "RxFill: fill status is none of Dispensed, PartiallyDispensed, NotDispensed, "
        "Transferred (FillStatus)"]


def test_choice_elements_count_as_present():
    """A Response or FillStatus holds an element, never text: <Replace/> and
    <Dispensed/> are answers, and an empty <Response/> is not."""
    ok = raw_of("ncpdp-rxrenewal-to-fhir/fixtures/v1/renewal_response_replace_no_namespace.xml")
    assert b"<Replace/>" in ok
    assert codec.validate(codec.parse(ok), "strict") == []
    empty = ok.replace(b"<Replace/>", b"")
    problems = codec.validate(codec.parse(empty), "strict")
    assert [p.text for p in problems] == ["RxRenewalResponse: response is missing (Response)"]


def test_unknown_message_types_parse_and_are_taken_on():
    """Anything SCRIPT does not list here is routed by its Header and answered Status."""
    for name in ("unknown_drugadministration_default_ns.xml",
                 "unknown_clinicalinforequest_prefixed.xml"):
        raw = raw_of(name)
        parsed = codec.parse(raw)
        assert parsed.message_type not in ANSWERS
        status = answer_of(codec.reply(raw, parsed, Outcome(Verdict.ACCEPTED)))
        assert status.message_type == "Status"
        assert status.value("Header/RelatesToMessageID") == parsed.control_id


@pytest.mark.parametrize("row", [r for r in ROUTED if r[1] not in ANSWERS],
                         ids=[r[0].rsplit("/", 1)[-1] for r in ROUTED if r[1] not in ANSWERS])
def test_accepted_messages_are_answered_status_correlated(row):
    name, _kind, mid, sender, receiver, *_ = row
    raw = raw_of(name)
    parsed = codec.parse(raw)
    replies = codec.replies(raw, parsed, Outcome(Verdict.ACCEPTED))
    assert len(replies) == 1
    status = answer_of(replies[0])
    assert status.message_type == "Status" and status.value("Status/Code") == "000"
    assert status.value("Header/RelatesToMessageID") == mid
    assert status.value("Header/MessageID") not in ("", mid)
    assert (f"{status.value('Header/To')}^{status.value('Header/To@Qualifier')}",
            f"{status.value('Header/From')}^{status.value('Header/From@Qualifier')}") \
        == (sender, receiver), "To and From are swapped"
    assert status.version == parsed.version
    assert status.namespace == "http://www.ncpdp.org/schema/SCRIPT"


def test_refused_message_is_answered_error_900_saying_what_is_missing():
    raw = raw_of("broken_newrx_no_dob.xml")
    parsed = codec.parse(raw)
    problems = tuple(codec.validate(parsed, "strict"))
    error = answer_of(codec.reply(raw, parsed, Outcome(Verdict.REJECTED, problems)))
    assert error.message_type == "Error"
    assert error.value("Error/Code") == "900"
    assert "patient date of birth is missing" in error.value("Error/Description")
    assert error.value("Header/RelatesToMessageID") == parsed.control_id
    assert error.value("Header/To") == "HARBORSIDEEHR"


def test_a_refused_message_answered_without_its_parse_is_addressed_from_its_header():
    """A channel answers a message validation refused without the parse (as it does an
    unreadable one): the Error still goes To its From, in its version and namespace,
    and a refused Status, Error or Verify is still never answered."""
    raw = raw_of("newrx_controlled_prefixed_2023011.xml").replace(b"<script:LastName>", b"<x>", 1)
    raw = raw.replace(b"</script:LastName>", b"</x>", 1)
    problem = Problem("NewRx: patient last name is missing", code="900")
    error = answer_of(codec.reply(raw, None, Outcome(Verdict.REJECTED, (problem,))))
    assert error.value("Error/Code") == "900"
    assert (error.value("Header/To"), error.value("Header/From")) == (
        "GREENMTNCLINIC01", "4608821")
    assert error.version == "2023011"
    assert error.value("Header/RelatesToMessageID") == "GMC-NRX-000440"
    for name in ("status_default_ns.xml", "error_no_namespace.xml", "verify_compact.xml"):
        refused = raw_of(name).replace(b"RelatesToMessageID", b"RelatesTo")
        assert codec.replies(refused, None, Outcome(Verdict.REJECTED, (problem,))) == ()


def test_an_answer_too_broken_to_parse_is_still_not_answered():
    """A pharmacy's Status with a mistyped end tag: not well-formed, but still an
    answer by its Body, so no Error goes back (two engines would answer each other)."""
    problem = Problem("not well-formed XML", code="900")
    for name in ("status_default_ns.xml", "error_no_namespace.xml", "verify_compact.xml"):
        broken = raw_of(name).replace(b"</Code>", b"</Cod>", 1)
        with pytest.raises(ParseError):
            codec.parse(broken)
        assert codec.replies(broken, None, Outcome(Verdict.REJECTED, (problem,))) == (), name
    newrx = raw_of("newrx_default_ns.xml").replace(b"</Body>", b"</Bdy>")
    assert codec.replies(newrx, None, Outcome(Verdict.REJECTED, (problem,)))  # answered


def test_unreadable_message_is_answered_error_correlated_when_its_id_is_found():
    raw = raw_of("newrx_default_ns.xml").replace(b"</Body>", b"</Bdy>")
    with pytest.raises(ParseError) as caught:
        codec.parse(raw)
    problem = Problem(str(caught.value), code="900")
    error = answer_of(codec.reply(raw, None, Outcome(Verdict.REJECTED, (problem,))))
    assert error.value("Error/Code") == "900"
    assert error.value("Header/RelatesToMessageID") == "a3f1c2d4e5b6478899aa0011bb22cc33"
    assert error.value("Error/Description") == (
        "Message: not well-formed XML at line 111, column 4 (mismatched tag)")
    # addressed back to its sender, as a readable message's Error is
    assert (error.value("Header/To"), error.value("Header/To@Qualifier")) == (
        "HARBORSIDEEHR", "C")
    assert (error.value("Header/From"), error.value("Header/From@Qualifier")) == (
        "7701630", "P")


@pytest.mark.parametrize("name", [r[0] for r in ROUTED if r[1] in ANSWERS])
def test_answers_are_never_answered(name):
    raw = raw_of(name)
    parsed = codec.parse(raw)
    assert codec.replies(raw, parsed, Outcome(Verdict.ACCEPTED)) == ()
    assert codec.replies(raw, parsed, Outcome(Verdict.REJECTED, (Problem("x", code="900"),))
                         ) == ()


def _sent(raw: bytes) -> Outbound:
    return Outbound(entry_id=1, message_id="m", channel="c", destination="d", content=raw,
                    content_type="application/xml")


def test_receivers_answers_are_read_back():
    out = _sent(raw_of("newrx_default_ns.xml"))
    assert codec.read_reply(raw_of("status_default_ns.xml"), out) == Sent("010")
    assert codec.read_reply(raw_of("status_prefixed_2023011.xml"), out) == Sent("000")
    assert codec.read_reply(raw_of("verify_default_ns.xml"), out) == Sent("010")
    assert codec.read_reply(raw_of("verify_compact.xml"), out) == Sent("010")
    refused = codec.read_reply(raw_of("error_no_namespace.xml"), out)
    assert isinstance(refused, Fail) and refused.code == "900"
    assert "1000" in refused.reason and "Unable" not in refused.reason, "codes, no text"
    again = codec.read_reply(raw_of("error_prefixed_602.xml"), out)
    assert isinstance(again, Retry) and again.code == "602"
    assert isinstance(codec.read_reply(b"<html>busy</html>", out), Retry)
    newrx = codec.read_reply(raw_of("newrx_default_ns.xml"), out)
    assert isinstance(newrx, Retry), "a message that is not an answer is not a delivery"


def test_our_own_answers_read_back_as_the_receiver_would():
    raw = raw_of("ncpdp-rxfill-to-fhir/fixtures/v1/rxfill_transferred_compact.xml")
    parsed = codec.parse(raw)
    out = _sent(raw)
    assert isinstance(codec.read_reply(codec.reply(raw, parsed, Outcome(Verdict.ACCEPTED)),
                                       out), Sent)
    refused = codec.reply(raw, parsed, Outcome(Verdict.REJECTED,
                                               (Problem("RxFill: fill status is missing",
                                                        code="900"),)))
    assert isinstance(codec.read_reply(refused, out), Fail)
    assert codec.parse(refused).control_id != parsed.control_id


def test_an_unreadable_message_with_control_characters_still_gets_readable_xml():
    """A NUL in the MessageID (or in what is said about the message) never reaches the
    answer: the Error stays well-formed and is simply not correlated."""
    raw = raw_of("newrx_default_ns.xml").replace(b"<MessageID>", b"<MessageID>\x00")
    with pytest.raises(ParseError):
        codec.parse(raw)
    error = answer_of(codec.reply(raw, None, Outcome(Verdict.REJECTED, (
        Problem("bad byte \x00 at column 9", code="900"),))))
    assert error.value("Header/RelatesToMessageID") == ""
    assert error.value("Error/Description") == "bad byte ? at column 9"


def test_a_body_with_two_messages_is_named_not_half_read():
    """Only the first message element would be routed, mapped and answered: strict
    refuses the Message naming Body, lenient takes it with that warning."""
    raw = raw_of("newrx_default_ns.xml").replace(
        b"</NewRx>", b"</NewRx><CancelRx><Patient/></CancelRx>")
    parsed = codec.parse(raw)
    strict = codec.validate(parsed, "strict")
    assert [(p.segment, p.severity, p.text) for p in strict] == [
        ("Body", "E", "Body holds 2 message elements; a SCRIPT Message carries one")]
    assert [p.severity for p in codec.validate(parsed, "lenient")] == ["W"]
    error = answer_of(codec.reply(raw, parsed, Outcome(Verdict.REJECTED, tuple(strict))))
    assert error.value("Error/Code") == "900" and "Body holds 2" in error.value(
        "Error/Description")


def test_a_cancel_naming_no_prescription_is_refused_before_its_mapping_fails():
    """Without an order number or the NewRx's MessageID no pharmacy can match a CancelRx
    (nor can ncpdp-cancelrx-to-fhir@1): strict validation refuses it with Error 900
    instead of taking it and answering Error 601 after the mapping failed."""
    raw = raw_of("ncpdp-cancelrx-to-fhir/fixtures/v1/cancelrx_default_ns.xml")
    assert codec.validate(codec.parse(raw), "strict") == []
    without = re.sub(rb"<(PrescriberOrderNumber|RelatesToMessageID)>[^<]*</\1>", b"", raw)
    problems = codec.validate(codec.parse(without), "strict")
    assert [(p.segment, p.text) for p in problems] == [
        ("Header", "CancelRx: prescription cancelled is missing "
                   "(Header/PrescriberOrderNumber)")]
    relating = without.replace(b"<SentTime>", b"<RelatesToMessageID>a3f1c2d4e5b6478899aa0011"
                                              b"bb22cc33</RelatesToMessageID><SentTime>")
    assert codec.validate(codec.parse(relating), "strict") == []

"""A SCRIPT 10.6 message (version="010" release="006"), which still arrives from older
prescriber systems, is checked and answered in 10.6's own terms: its Error names the
elements as 10.6 names them (a sender looking for Patient/HumanPatient or Sig/SigText in
its message finds nothing), and the answer says 10.6's version, not 2017071's."""

from __future__ import annotations

from pathlib import Path

from engine.formats.ncpdp import NcpdpCodec
from engine.formats.ncpdp.message import ScriptMessage
from engine.message import Outcome, Verdict

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "ncpdp" / "v10_6" / \
    "newrx_complete_default_ns.xml"
# Elements 10.6 does not have: naming one tells a 10.6 sender nothing it can act on.
NOT_IN_10_6 = ("HumanPatient", "NonVeterinarian", "BusinessName", "SigText",
               "QuantityUnitOfMeasure", "NumberOfRefills")
codec = NcpdpCodec()


def refused(raw: bytes) -> tuple[list[str], ScriptMessage]:
    """What strict validation says, and the Error the codec answers with."""
    parsed = codec.parse(raw)
    problems = tuple(codec.validate(parsed, "strict"))
    answer = codec.reply(raw, parsed, Outcome(Verdict.REJECTED, problems))
    body = codec.parse(answer).body
    assert isinstance(body, ScriptMessage)
    return [p.text for p in problems], body


def test_a_complete_10_6_newrx_passes_strict_checks():
    assert codec.validate(codec.parse(SAMPLE.read_bytes()), "strict") == []


def test_what_a_10_6_newrx_lacks_is_named_as_10_6_names_it():
    raw = SAMPLE.read_bytes()
    for element in (b"<Directions>", b"<StoreName>", b"<Gender>"):
        start = raw.index(element)
        raw = raw[:start] + raw[raw.index(b"</" + element[1:], start) + len(element) + 1:]
    problems, error = refused(raw)
    assert problems == ["NewRx: patient gender is missing (Patient/Gender)",
                        "NewRx: pharmacy name is missing (Pharmacy/StoreName)",
                        "NewRx: directions (Sig) is missing (MedicationPrescribed/Directions)"]
    description = error.value("Error/Description")
    assert "Pharmacy/StoreName" in description
    assert not [name for name in NOT_IN_10_6 if name in description]


def test_a_10_6_message_is_answered_in_10_6():
    _, error = refused(SAMPLE.read_bytes().replace(b"<StoreName>", b"<Name>").replace(
        b"</StoreName>", b"</Name>"))
    assert error.message_type == "Error"
    assert (error.root.get("version"), error.root.get("release")) == ("010", "006")
    assert "TransactionVersion" not in error.root.attrib
    accepted = codec.reply(SAMPLE.read_bytes(), codec.parse(SAMPLE.read_bytes()),
                           Outcome(Verdict.ACCEPTED))
    assert codec.parse(accepted).body.root.get("version") == "010"


def test_a_2017071_message_is_still_told_in_2017071_names():
    raw = (Path(__file__).resolve().parents[1] / "fixtures" / "ncpdp" /
           "broken_newrx_no_dob.xml").read_bytes()
    problems, _ = refused(raw)
    assert "NewRx: patient date of birth is missing (Patient/HumanPatient/DateOfBirth/Date)" \
        in problems

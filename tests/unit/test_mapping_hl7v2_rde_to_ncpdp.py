"""hl7v2-rde-to-ncpdp-newrx@1: every fixture (five EHR styles) gives a NewRx that the
SCRIPT codec parses and strict validation passes; identifiers, units, days supply, Sig
and times as the mapping's docstring says; errors name the HL7 field, never the value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import MappingError, ParseError
from engine.formats.ncpdp import NcpdpCodec
from engine.formats.ncpdp.message import ScriptMessage
from engine.mapping import Mapping, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import run, segment
from tests.unit.test_hl7v2_fuzz import FUZZ

REF = "hl7v2-rde-to-ncpdp-newrx@1"
FIXTURES = checks.Fixtures(REF, ".hl7", ".xml")
codec = NcpdpCodec()
rde = checks.mapping_fixture(REF)

TestFixtures = checks.fixture_tests(FIXTURES, min_outputs=5)

MED = "Body/NewRx/MedicationPrescribed"
PRESCRIBER = "Body/NewRx/Prescriber/NonVeterinarian"


def newrx(mapping: Mapping, raw: bytes) -> ScriptMessage:
    """The mapped NewRx, parsed back and sound under strict validation."""
    out = run(mapping, raw)
    assert isinstance(out, bytes)
    parsed = codec.parse(out)
    assert [p.text for p in codec.validate(parsed, "strict")] == []
    assert parsed.message_type == "NewRx"
    return parsed.body


@pytest.mark.parametrize("case", FIXTURES.output_cases)
def test_every_output_is_a_sound_newrx_routed_by_the_rde(rde: Mapping, case: str) -> None:
    raw = FIXTURES.input(case)
    message = newrx(rde, raw)
    control_id = raw.split(b"\r" if b"\r" in raw else b"\n")[0].split(b"|")[9].decode()
    assert message.value("Header/MessageID") == control_id
    assert message.value("Header/To@Qualifier") == "P"
    assert message.value("Header/To") == message.value(
        "Body/NewRx/Pharmacy/Identification/NCPDPID")
    assert message.value("Header/From@Qualifier") == "C"


# ---- one order, built field by field -----------------------------------------------------

ORC = {1: "NW", 2: "P-100^EHR", 9: "20261110091500-0500",
       12: "1234567893^Rowe^Annika^^^^MD^^NPI"}
RXE = {2: "197361^amlodipine 5 MG Oral Tablet^RXNORM", 3: "1", 5: "TAB", 10: "30",
       11: "TAB^tablet", 12: "2", 21: "Take 1 tablet by mouth daily",
       40: "1234567^Elm Street Pharmacy^NCPDP"}
TQ1 = {1: "1", 3: "QD"}
PID = "PID|1||MG001234^^^MERCY^MR||Rowe^Tamsin^^^^^L||19900101|F"


def message(orc: dict | None = None, rxe: dict | None = None, tq1: dict | None = TQ1,
            pid: str = PID, msh7: str = "20261110091700-0500", version: str = "2.5.1",
            extra: list[str] = ()) -> bytes:
    segments = [f"MSH|^~\\&|EHR|MERCY_GEN|ERX|SS|{msh7}||RDE^O11^RDE_O11|C-77|P|{version}",
                pid, segment("ORC", {**ORC, **(orc or {})}),
                segment("RXE", {**RXE, **(rxe or {})})]
    if tq1 is not None:
        segments.append(segment("TQ1", tq1))
    return ("\r".join([*segments, *extra]) + "\r").encode()


def test_the_base_order_is_sound(rde: Mapping) -> None:
    found = newrx(rde, message())
    assert found.value(f"{MED}/DaysSupply") == "30"  # 30 tablets, 1 a day
    assert found.value(f"{MED}/DrugCoded/DrugDBCode/Code") == "197361"
    assert found.value(f"{MED}/DrugCoded/DrugDBCode/Qualifier") == "SCD"
    assert found.value(f"{MED}/NumberOfRefills") == "2"
    assert found.value("Header/PrescriberOrderNumber") == "P-100"
    assert found.value("Header/From") == "MERCY_GEN"


def test_npi_and_dea_are_read_by_their_authority_not_their_place(rde: Mapping) -> None:
    by_oid = "X99^Rowe^Annika^^^^MD^^LOCAL~1234567893^Rowe^Annika^^^^MD^^&2.16.840.1.113883.4.6&ISO"
    found = newrx(rde, message(orc={12: by_oid + "~AR1234563^Rowe^Annika^^^^MD^^DEA"}))
    assert found.value(f"{PRESCRIBER}/Identification/NPI") == "1234567893"
    assert found.value(f"{PRESCRIBER}/Identification/DEANumber") == "AR1234563"
    by_type = newrx(rde, message(orc={12: "1234567893^Rowe^Annika^^^^^^^^^^NPI"},
                                 rxe={13: "BR7654321^Rowe^Annika"}))
    assert by_type.value(f"{PRESCRIBER}/Identification/NPI") == "1234567893"
    assert by_type.value(f"{PRESCRIBER}/Identification/DEANumber") == "BR7654321"
    checks.check_error(rde, message(orc={12: "1234567893^Rowe^Annika^^^^MD^^LOCAL"}),
                       "ORC-12", phi=["Rowe", "Tamsin", "1234567893"])
    checks.check_error(rde, message(orc={12: "12345^Rowe^Annika^^^^MD^^NPI"}), "ORC-12",
                       phi=["12345"])


@pytest.mark.parametrize(("unit", "code"), [
    ("TAB^tablet", "C48542"), ("CAPS", "C48480"), ("mL^milliliter", "C28254"),
    ("GM", "C48155"), ("EA^each", "C64933"), ("C48480^Capsule^NCI", "C48480"),
])
def test_common_units_get_their_nci_code(rde: Mapping, unit: str, code: str) -> None:
    found = newrx(rde, message(rxe={5: unit, 11: unit}))
    assert found.value(f"{MED}/Quantity/QuantityUnitOfMeasure/Code") == code
    assert found.value(f"{MED}/Note") == ""


def test_an_unknown_unit_is_unspecified_and_kept_as_sent_in_the_note(rde: Mapping) -> None:
    found = newrx(rde, message(rxe={11: "BTL^bottle", 5: "TAB"}, tq1={1: "1", 6: "30^d"}))
    assert found.value(f"{MED}/Quantity/QuantityUnitOfMeasure/Code") == "C38046"
    assert found.value(f"{MED}/Note") == "Dispense unit as sent: bottle"
    noted = newrx(rde, message(rxe={11: "BTL^bottle"}, tq1={1: "1", 6: "30^d"},
                               extra=["NTE|1||Patient prefers\\.br\\large print~labels",
                                      "NTE|2||" + "x" * 300]))
    note = noted.value(f"{MED}/Note")
    assert note.startswith("Dispense unit as sent: bottle; Patient prefers large print labels; x")
    assert len(note) == 210 and note.endswith("...")


@pytest.mark.parametrize(("rxe", "tq1", "days"), [
    ({}, {1: "1", 3: "BID"}, "15"),  # 30 tablets, 2 a day
    ({10: "20", 3: "1"}, {1: "1", 3: "Q6H"}, "5"),  # 4 a day
    ({10: "12", 3: "2"}, {1: "1", 3: "TID"}, "2"),  # 6 a day
    ({}, {1: "1", 3: "QD", 6: "2^wk", 7: "20261110"}, "14"),  # the duration wins
    ({}, {1: "1", 3: "PRN", 7: "20261110", 8: "20261210"}, "30"),  # start to end
    ({1: "1^QD^D10"}, None, "10"),  # a v2.3 TQ in RXE-1
])
def test_days_supply(rde: Mapping, rxe: dict, tq1: dict | None, days: str) -> None:
    assert newrx(rde, message(rxe=rxe, tq1=tq1)).value(f"{MED}/DaysSupply") == days


@pytest.mark.parametrize(("rxe", "tq1"), [
    ({}, {1: "1", 3: "PRN"}),  # as needed: no rate to count by
    ({5: "MG", 3: "5"}, {1: "1", 3: "QD"}),  # dose in mg, dispensed in tablets
    ({10: "25"}, {1: "1", 3: "BID"}),  # 12.5 days is not a whole number
    ({}, {1: "1", 3: "PRN", 7: "2026", 8: "2027"}),  # years are not a period in days
])
def test_days_supply_that_cannot_be_worked_out_fails_naming_tq1_6(rde, rxe, tq1) -> None:
    checks.check_error(rde, message(rxe=rxe, tq1=tq1), "TQ1-6", phi=["Rowe", "Tamsin"])


def test_sig_comes_from_rxe21_then_rxe7_then_tq1_11_then_the_parts(rde: Mapping) -> None:
    sig = f"{MED}/Sig/SigText"
    assert newrx(rde, message()).value(sig) == "Take 1 tablet by mouth daily"
    assert newrx(rde, message(rxe={21: "", 7: "T1D^Take one tablet daily"})).value(sig) == (
        "Take one tablet daily")
    assert newrx(rde, message(rxe={21: ""}, tq1={**TQ1, 11: "one daily with food"})).value(
        sig) == "one daily with food"
    assert newrx(rde, message(rxe={21: ""}, extra=["RXR|PO^Oral^HL70162"])).value(sig) == (
        "1 TAB PO QD")
    checks.check_error(rde, message(rxe={21: "", 3: ""}, tq1={1: "1", 6: "30^d"}), "RXE-21")


def test_sent_time_is_utc_when_msh7_has_a_zone_else_the_senders_clock(rde: Mapping) -> None:
    assert newrx(rde, message()).value("Header/SentTime") == "2026-11-10T14:17:00.000Z"
    assert newrx(rde, message(msh7="20261110231705.5+0930")).value("Header/SentTime") == (
        "2026-11-10T13:47:05.500Z")
    assert newrx(rde, message(msh7="202611100917")).value("Header/SentTime") == (
        "2026-11-10T09:17:00")
    checks.check_error(rde, message(msh7="20261110"), "MSH-7")


def test_substitution_not_allowed_only_when_rxe9_says_1(rde: Mapping) -> None:
    assert newrx(rde, message(rxe={9: "1"})).value(f"{MED}/Substitutions") == "1"
    for code in ("", "0", "N", "G"):
        assert newrx(rde, message(rxe={9: code})).value(f"{MED}/Substitutions") == "0"


def test_a_scheduled_drug_carries_its_schedule_and_needs_a_dea_number(rde: Mapping) -> None:
    found = newrx(rde, message(rxe={35: "IV", 13: "AR1234563"}))
    assert found.value(f"{MED}/DrugCoded/DEASchedule/Code") == "C48677"
    checks.check_error(rde, message(rxe={35: "IV"}), "RXE-13", phi=["Rowe"])
    checks.check_error(rde, message(rxe={35: "VI", 13: "AR1234563"}), "RXE-35")


def test_written_date_is_rxe32_else_orc9(rde: Mapping) -> None:
    assert newrx(rde, message()).value(f"{MED}/WrittenDate/Date") == "2026-11-10"
    assert newrx(rde, message(rxe={32: "20261101"})).value(f"{MED}/WrittenDate/Date") == (
        "2026-11-01")
    checks.check_error(rde, message(orc={9: ""}), "ORC-9")


def test_the_pharmacy_must_be_named_by_its_ncpdp_id(rde: Mapping) -> None:
    found = newrx(rde, message(rxe={40: "1457392810^Elm Street Pharmacy^NPI^1234567^^NCPDP"}))
    assert found.value("Body/NewRx/Pharmacy/Identification/NPI") == "1457392810"
    assert found.value("Header/To") == "1234567"
    checks.check_error(rde, message(rxe={40: "1457392810^Elm Street Pharmacy^NPI"}),
                       "RXE-40")
    checks.check_error(rde, message(rxe={40: "1234567"}), "RXE-40")


def test_xml_characters_are_escaped_and_control_characters_refused(rde: Mapping) -> None:
    found = newrx(rde, message(rxe={2: "1^A \\T\\ B <5 mg> tablet^RXNORM"}))
    assert found.value(f"{MED}/DrugDescription") == "A & B <5 mg> tablet"
    with pytest.raises(Exception) as caught:
        run(rde, message(pid=PID.replace("Tamsin", "Tam\\X07\\sin")))
    assert "Tam" not in str(caught.value) and "cannot carry" in str(caught.value)


def test_patient_requirements_fail_naming_the_pid_field(rde: Mapping) -> None:
    checks.check_error(rde, message(pid=PID.replace("19900101", "")), "PID-7",
                       phi=["Rowe", "Tamsin"])
    checks.check_error(rde, message(pid=PID.replace("19900101", "199001")), "PID-7",
                       values=["199001"])
    checks.check_error(rde, message(pid=PID.replace("Rowe^Tamsin", "Rowe")), "PID-5",
                       phi=["Rowe"])
    unknown = newrx(rde, message(pid=PID.replace("|F", "|X")))
    assert unknown.value("Body/NewRx/Patient/HumanPatient/Gender") == "U"


def test_other_order_controls_are_skipped_and_other_messages_fail(rde: Mapping) -> None:
    assert isinstance(run(rde, message(orc={1: "DC"})), Skip)
    assert isinstance(run(rde, message().replace(b"RDE^O11", b"RDE^O25")), Skip)
    checks.check_error(rde, message().replace(b"RDE^O11", b"ORM^O01"), "MSH-9")


def test_v231_and_v25_senders_read_alike(rde: Mapping) -> None:
    newer = run(rde, message())
    older = run(rde, message(version="2.3.1"))
    assert newer == older


def test_output_reads_back_through_ncpdp_newrx_to_fhir_when_shipped(rde: Mapping) -> None:
    reader = checks.catalog().get("ncpdp-newrx-to-fhir@1")
    if reader is None:
        pytest.skip("ncpdp-newrx-to-fhir@1 has not landed")
    out = run(rde, FIXTURES.input("epic_o11_v251_atorvastatin"))
    bundle = checks.bundle_of(reader, out)
    kinds = {e["resource"]["resourceType"] for e in bundle.get("entry", [])}
    assert "MedicationRequest" in kinds


# ---- fuzzing: a changed field fails naming it or still gives a sound NewRx --------------

FIELDS = st.sampled_from(["PID-5", "PID-7", "PID-8", "PID-11", "PID-13", "ORC-2", "ORC-9",
                          "ORC-12", "ORC-14", "RXE-2", "RXE-3", "RXE-5", "RXE-9", "RXE-10",
                          "RXE-11", "RXE-12", "RXE-13", "RXE-21", "RXE-32", "RXE-35",
                          "RXE-40", "TQ1-3", "TQ1-6", "TQ1-7", "TQ1-8", "MSH-7", "MSH-10"])
VALUES = st.one_of(st.sampled_from(["", '""', "0", "-1", "1.5", "2^wk", "20260230",
                                    "19000101", "2026", "C48542^^NCI", "^^NPI", "II", "VII",
                                    "PRN", "Q0H", "Q2D", "99999999999999999999", "\\X07\\",
                                    "<&>", "1^x^NDC", "1234567^^NCPDP"]),
                   st.text(st.characters(blacklist_categories=["Cs"],
                                         blacklist_characters="|\r\n"), max_size=12))


@FUZZ
@given(st.sampled_from(FIXTURES.output_cases), FIELDS, VALUES)
def test_changed_fields_fail_by_name_or_stay_sound(case: str, field: str, value: str) -> None:
    mapping = checks.mapping(REF)
    name, number = field.split("-")
    raw = FIXTURES.input(case)
    end = b"\r\n" if b"\r\n" in raw else b"\r" if b"\r" in raw else b"\n"
    lines = raw.split(end)
    for i, line in enumerate(lines):
        if line.startswith(name.encode()):
            parts = line.decode().split("|")
            index = int(number) - (1 if name == "MSH" else 0)
            parts += [""] * (index + 1 - len(parts))
            parts[index] = value
            lines[i] = "|".join(parts).encode()
    try:
        out = run(mapping, end.join(lines))
    except MappingError as exc:
        assert "raised" not in str(exc), str(exc)  # an unexpected exception, not a reason
        return
    except ParseError:
        return
    if isinstance(out, Skip):
        return
    parsed = codec.parse(out)
    assert [p.text for p in codec.validate(parsed, "strict")] == []

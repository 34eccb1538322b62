"""The shared vocabulary every mapping uses: coding systems and the one local-code rule
(`engine.maplib.v2_codes`), the v2 data-type readers (`datatypes`: EI, NM, TM, TQ,
instants), the encounter reference and Bundle.timestamp (`v2_fhir`), and the inverse
FHIR-to-v2 coding-system names (`fhir_to_v2`)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib import fhir_to_v2, v2_fhir
from engine.maplib.fhir import ID_NAMESPACE, resource_id
from engine.maplib.v2_codes import (
    Bound,
    coding_system,
    cwe_to_codeable_concept,
    local_code_system,
)


def message(*segments: str, msh7: str = "20240312084512-0500") -> Hl7Message:
    msh = f"MSH|^~\\&|APP|MERCY GEN|EHR|HOSP|{msh7}||ADT^A01|C1|P|2.5.1"
    return Hl7Message.parse("\r".join((msh, *segments)) + "\r")


def rep(value: str):
    """The first repetition of a value in OBX-5."""
    return message(f"OBX|1|CWE||{value}").segment("OBX").repetitions(4)[0]


# ---- coding systems ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "system"),
    [
        ("LN", tables.LOINC), ("SCT", tables.SNOMED), ("SNM", tables.SNOMED),
        ("SNOMED CT", tables.SNOMED), ("I10", tables.ICD10), ("I10C", tables.ICD10CM),
        ("ICD10CM", tables.ICD10CM), ("I9CDX", tables.ICD9CM), ("CVX", tables.CVX),
        ("NDC", tables.NDC), ("RXNORM", tables.RXNORM), ("RXN", tables.RXNORM),
        ("UCUM", tables.UCUM), ("CPT", tables.CPT), ("C4", tables.CPT),
        ("HL70162", tables.V2_0162), ("HL7-0162", tables.V2_0162), ("hl70074", tables.V2_0074),
        ("2.16.840.1.113883.6.1", tables.LOINC), ("1.2.3.4", "urn:oid:1.2.3.4"),
        ("http://example.org/codes", "http://example.org/codes"),
        ("L", "urn:conduit:code:MERCY%20GEN:L"), ("99ZLB", "urn:conduit:code:MERCY%20GEN:99ZLB"),
        ("", "urn:conduit:code:MERCY%20GEN:local"),
    ],
)
def test_coding_system(name: str, system: str) -> None:
    assert coding_system(name, "MERCY GEN") == system


def test_one_local_code_rule() -> None:
    assert local_code_system("NORTHGATE") == "urn:conduit:code:NORTHGATE:local"
    assert local_code_system("NORTHGATE", "99NGL") == "urn:conduit:code:NORTHGATE:99NGL"


def test_diagnoses_read_icd_as_the_clinical_modification() -> None:
    assert coding_system("I10", "F", tables.DIAGNOSIS_CODING_SYSTEMS) == tables.ICD10CM
    assert coding_system("I9", "F", tables.DIAGNOSIS_CODING_SYSTEMS) == tables.ICD9CM


def test_both_triplets_version_and_text() -> None:
    concept = cwe_to_codeable_concept(rep("2345-7^Glucose^LN^GLU^Glucose^L^2.77^^Sugar"), "F")
    assert concept == {
        "coding": [
            {"system": tables.LOINC, "version": "2.77", "code": "2345-7", "display": "Glucose"},
            {"system": "urn:conduit:code:F:L", "code": "GLU", "display": "Glucose"},
        ],
        "text": "Sugar",
    }


@pytest.mark.parametrize(
    ("value", "concept"),
    [
        ("Take with food", {"text": "Take with food"}),
        ("^Hemolysed", {"text": "Hemolysed"}),
        ("X^Y^L^X^Y^L", {"coding": [{"system": "urn:conduit:code:F:L", "code": "X",
                                     "display": "Y"}]}),
        ('""', None),
    ],
)
def test_free_text_and_repeated_codings(value: str, concept: dict | None) -> None:
    assert cwe_to_codeable_concept(rep(value), "F") == concept


@pytest.mark.parametrize(
    ("value", "coding"),
    [
        ("im", {"system": tables.V2_0162, "code": "IM", "display": "Intramuscular"}),
        ("IM^By injection", {"system": tables.V2_0162, "code": "IM", "display": "By injection"}),
        ("IM^^HL70162", {"system": tables.V2_0162, "code": "IM", "display": "Intramuscular"}),
        ("ZZ^Local route", {"system": "urn:conduit:code:F:local", "code": "ZZ",
                            "display": "Local route"}),
        ("C28161^Intramuscular^NCIT", {"system": tables.NCI_THESAURUS, "code": "C28161",
                                       "display": "Intramuscular"}),
    ],
)
def test_a_field_bound_to_a_table(value: str, coding: dict) -> None:
    route = Bound(tables.V2_0162, tables.ROUTE_OF_ADMINISTRATION)
    assert cwe_to_codeable_concept(rep(value), "F", route) == {"coding": [coding]}


def test_a_table_without_a_list_takes_every_code() -> None:
    concept = cwe_to_codeable_concept(rep("208^COVID-19"), "F", Bound(tables.CVX))
    assert concept == {"coding": [{"system": tables.CVX, "code": "208", "display": "COVID-19"}]}


@pytest.mark.parametrize(
    ("system", "name"),
    [
        (tables.LOINC, "LN"), (tables.SNOMED, "SCT"), (tables.ICD10CM, "I10C"),
        (tables.ICD9CM, "I9CDX"), (tables.CPT, "C4"), (tables.V2_0162, "HL70162"),
        ("urn:conduit:code:F:99ZLB", "99ZLB"), ("urn:conduit:code:F:local", ""),
        ("urn:conduit:code:F", ""), ("http://example.org/codes", "L"),
    ],
)
def test_fhir_to_v2_writes_the_name_back(system: str, name: str) -> None:
    assert fhir_to_v2.system_name(system) == name
    if name not in ("", "L"):
        assert coding_system(name, "F") == system


# ---- v2 data types ----------------------------------------------------------------------


def test_ei_with_and_without_an_authority() -> None:
    orc = message("ORC|NW|ORD1^EPIC^1.2.3^ISO|LAB7").segment("ORC")
    assert dt.ei_to_identifier(dt.first_rep(orc, 2), "F", tables.PLACER_IDENTIFIER) == {
        "type": {"coding": [tables.PLACER_IDENTIFIER.as_fhir()]},
        "system": "urn:oid:1.2.3", "value": "ORD1",
    }
    assert dt.ei_to_identifier(dt.first_rep(orc, 3), "LIS") == {
        "system": "urn:conduit:id:LIS", "value": "LAB7",
    }
    assert dt.ei_to_identifier(dt.first_rep(orc, 4), "F") is None


@pytest.mark.parametrize(
    ("value", "offset", "instant"),
    [
        ("20240312084512-0500", None, "2024-03-12T08:45:12-05:00"),
        ("202403120845", "+0100", "2024-03-12T08:45:00+01:00"),
        ("202403120845", None, None),
        ("20240312", "-0500", None),
        ("", "-0500", None),
    ],
)
def test_instant(value: str, offset: str | None, instant: str | None) -> None:
    assert dt.to_fhir_instant(value, "TXA-6", offset) == instant


@pytest.mark.parametrize(
    ("value", "number"),
    [("5.10", "5.10"), ("+5", "5"), ("007.5", "7.5"), (".5", "0.5"), ("-0", "0"),
     ("-1.250", "-1.250"), ("", None), ("TNP", None), ("1e5", None)],
)
def test_nm_keeps_the_digits_sent(value: str, number: str | None) -> None:
    found = dt.parse_nm(value)
    assert (str(found) if found is not None else None) == number


def test_an_nm_that_must_be_a_number_fails_naming_the_field() -> None:
    assert dt.to_fhir_decimal("2.50", "RXE-3") == Decimal("2.50")
    with pytest.raises(MappingError) as caught:
        dt.to_fhir_decimal("two", "RXE-3")
    assert caught.value.field == "RXE-3" and "two" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "time"),
    [("0915", "09:15:00"), ("091530.25-0500", "09:15:30"), ("08:30", "08:30:00"),
     ("2400", "00:00:00"), ("2430", None), ("0960", None), ("", None)],
)
def test_tm(value: str, time: str | None) -> None:
    assert dt.to_fhir_time(value) == time


@pytest.mark.parametrize(
    ("value", "duration"),
    [("M15", ("min", 15)), ("h2", ("h", 2)), ("L1", ("mo", 1)), ("X3", ("X", 3)),
     ("INDEF", None), ("15", None)],
)
def test_tq_duration(value: str, duration: tuple | None) -> None:
    assert dt.tq_duration(value) == duration


# ---- message facts ----------------------------------------------------------------------


def test_encounter_reference_is_the_adt_encounter() -> None:
    msg = message("PID|1||MRN1^^^MERCY^MR", "PV1|1|I|4N^401^B||||||||||||||||V100^^^MERCY^VN")
    pv1 = msg.segment("PV1")
    made = v2_fhir.encounter(pv1, "A01", "MERCY GEN", "p", None)
    reference = v2_fhir.encounter_reference(msg, "MERCY GEN")
    assert reference == {"reference": f"Encounter/{made['id']}",
                         "identifier": made["identifier"][0]}


@pytest.mark.parametrize(
    ("msh7", "timestamp"),
    [("20240312084512-0500", "2024-03-12T08:45:12-05:00"), ("202403120845+0100",
     "2024-03-12T08:45:00+01:00"), ("20240312084512", None), ("20240312", None),
     ("2024031299", None)],
)
def test_bundle_timestamp_from_msh7(msh7: str, timestamp: str | None) -> None:
    bundle = v2_fhir.bundle(message(msh7=msh7), [])
    assert bundle.get("timestamp") == timestamp
    assert (bundle["resourceType"], bundle["type"], bundle["entry"]) == (
        "Bundle", "transaction", [])


def test_a_field_that_reads_every_code_in_its_table() -> None:
    eligibility = Bound(tables.V2_0064, {"V01": "Not VFC eligible"}, every_code=True)
    concept = cwe_to_codeable_concept(rep("V07"), "F", eligibility)
    assert concept == {"coding": [{"system": tables.V2_0064, "code": "V07"}]}


@pytest.mark.parametrize("value", ["12345", "Ünïcødé 患者", "", "a|b"])
def test_resource_ids_are_the_uuid5_receiving_servers_already_hold(value: str) -> None:
    ident = {"system": "urn:oid:1.2.840", "value": value}
    expected = uuid.uuid5(ID_NAMESPACE, f"Patient|MERCY GEN|urn:oid:1.2.840|{value}")
    assert resource_id("Patient", "MERCY GEN", ident) == str(expected)
    assert resource_id("Patient", "X", {"value": "1"}) == str(
        uuid.uuid5(ID_NAMESPACE, "Patient|X||1"))

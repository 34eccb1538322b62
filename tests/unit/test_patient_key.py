"""The Patient's key under the patient-key rule (hl7v2-to-fhir@2, hl7v2-adt-to-fhir@4,
hl7v2-oru-to-fhir@3): the same record number from two feeds of one hospital is one
Patient, whatever each feed puts in MSH-4; the record number, not an SSN sent before it,
keys it; and every resource of the Bundle refers to that one Patient.

The released versions keep their keys: their fixtures say so, byte for byte, and
`test_released_versions_still_key_within_the_sending_facility` pins the rule itself.
"""

from __future__ import annotations

import pytest

from engine.formats.hl7v2 import Hl7v2Codec
from engine.mapping import Mapping
from tests import mapping_checks as checks

ADT_NEW, ORU_NEW, ANY_NEW = "hl7v2-adt-to-fhir@4", "hl7v2-oru-to-fhir@3", "hl7v2-to-fhir@2"
ADT_OLD, ORU_OLD = "hl7v2-adt-to-fhir@3", "hl7v2-oru-to-fhir@2"
HOSPITAL = "NORTHWING&2.16.840.1.113883.3.9999.1&ISO"  # the MRN's authority, CX-4
REFERRING = ("subject", "patient", "beneficiary")


def _adt(facility: str, pid3: str, event: str = "A01") -> bytes:
    return (f"MSH|^~\\&|EPICADT|{facility}|CONDUIT|HIE|20240402170512-0400||ADT^{event}|"
            f"C{facility}{event}|P|2.5.1\r"
            f"EVN|{event}|20240402170500-0400\r"
            f"PID|1||{pid3}||QUINTERO^BEATRIZ^^^^^L||19880309|F\r"
            "PV1|1|I|5W^514^2^NWH||||1234^ATTEND^ANNA|||||||||||||V100233^^^NWH^VN\r"
            ).encode()


def _oru(facility: str, pid3: str) -> bytes:
    return (f"MSH|^~\\&|LIS|{facility}|CONDUIT|HIE|20240403081500-0400||ORU^R01^ORU_R01|"
            f"R{facility}|P|2.5.1\r"
            f"PID|1||{pid3}||QUINTERO^BEATRIZ^^^^^L||19880309|F\r"
            "PV1|1|I|5W^514^2^NWH||||||||||||||||V100233^^^NWH^VN\r"
            "ORC|RE|ORD77^EPIC|LAB55^LIS\r"
            "OBR|1|ORD77^EPIC|LAB55^LIS|2823-3^Potassium^LN|||20240403070000-0400|||||||"
            "||||||||20240403080000-0400|||F\r"
            "OBX|1|NM|2823-3^Potassium^LN||4.1|mmol/L^^UCUM|3.5-5.1|N|||F\r").encode()


def _patient_id(ref: str, raw: bytes) -> str:
    return checks.only(checks.bundle_of(checks.mapping(ref), raw), "Patient")["id"]


def _references_to_patients(bundle: dict) -> set[str]:
    """Every reference to a Patient that a resource of the Bundle makes, as urn:uuid."""
    patients = {f"urn:uuid:{p['id']}" for p in checks.of_type(bundle, "Patient")}
    found = set()
    for entry in bundle["entry"]:
        refs = checks.references(entry["resource"])
        found |= {r for r in refs if r in patients}
    return found


# ---- defect 1: one hospital, two feeds, one Patient -------------------------------------


@pytest.mark.parametrize("pid3", [
    f"E4410072^^^{HOSPITAL}^MR",  # Epic: namespace and OID
    "E4410072^^^NORTHWING^MR",  # a v2.3 sender: the namespace only
    "E4410072^^^&2.16.840.1.113883.3.9999.1&ISO^MR",  # the universal id and its type only
])
def test_the_adt_and_the_lab_feed_of_one_hospital_make_one_patient(pid3):
    admitted = _patient_id(ADT_NEW, _adt("ADT1", pid3))
    resulted = _patient_id(ORU_NEW, _oru("LAB", pid3))
    assert admitted == resulted, "the lab's MSH-4 made a second Patient for one MRN"
    assert _patient_id(ANY_NEW, _adt("ADT1", pid3)) == admitted
    assert _patient_id(ANY_NEW, _oru("LAB", pid3)) == admitted


def test_a_lab_naming_the_hospital_as_authority_files_under_the_adt_feeds_patient():
    """A lab system with its own MSH-4 ("SUNQUEST") that sends the hospital's namespace in
    PID-3.4 matches an ADT feed whose MSH-4 is that namespace and leaves CX-4 empty."""
    admitted = _patient_id(ADT_NEW, _adt("NORTHWING", "E4410072^^^^MR"))
    assert _patient_id(ORU_NEW, _oru("SUNQUEST", "E4410072^^^NORTHWING^MR")) == admitted


def test_the_same_number_from_two_authorities_is_two_patients():
    one = _patient_id(ADT_NEW, _adt("ADT1", "E4410072^^^NORTHWING^MR"))
    other = _patient_id(ADT_NEW, _adt("ADT1", "E4410072^^^SOUTHPARK^MR"))
    assert one != other


def test_without_an_authority_the_sending_facility_still_scopes_the_key():
    """No CX-4: nothing says two senders' numbers are one series, so two Patients, each
    with the id the released version gave it (a channel moving on keeps its Patients)."""
    adt1 = _patient_id(ADT_NEW, _adt("ADT1", "E4410072^^^^MR"))
    lab = _patient_id(ORU_NEW, _oru("LAB", "E4410072^^^^MR"))
    assert adt1 != lab
    assert adt1 == _patient_id(ADT_OLD, _adt("ADT1", "E4410072^^^^MR"))
    assert lab == _patient_id(ORU_OLD, _oru("LAB", "E4410072^^^^MR"))


def test_released_versions_still_key_within_the_sending_facility():
    """hl7v2-adt-to-fhir@3 and hl7v2-oru-to-fhir@2 are released: their ids never change,
    so they still make two Patients (the defect the new versions fix)."""
    pid3 = f"E4410072^^^{HOSPITAL}^MR"
    assert _patient_id(ADT_OLD, _adt("ADT1", pid3)) != _patient_id(ORU_OLD, _oru("LAB", pid3))


# ---- defect 2: the record number keys the Patient, not the SSN sent before it -----------


@pytest.mark.parametrize(("pid3", "mrn"), [
    ("123-45-6789^^^SSA^SS~E4410072^^^NORTHWING^MRN", "E4410072^^^NORTHWING^MRN"),
    ("123456789^^^^SS~D9921^^^CA^DL~E4410072^^^NORTHWING^PI", "E4410072^^^NORTHWING^PI"),
    ("W771^^^AETNA^MB~E4410072^^^NORTHWING", "E4410072^^^NORTHWING"),
    ("E4410072^^^NORTHWING^PT~X1^^^NORTHWING^MR", "X1^^^NORTHWING^MR"),
])
def test_the_local_record_number_keys_the_patient_whatever_comes_first(pid3, mrn):
    assert _patient_id(ADT_NEW, _adt("ADT1", pid3)) == _patient_id(ADT_NEW, _adt("ADT1", mrn))
    assert _patient_id(ORU_NEW, _oru("LAB", pid3)) == _patient_id(ORU_NEW, _oru("LAB", mrn))


def test_an_ssn_keys_the_patient_only_when_nothing_else_is_sent():
    alone = _patient_id(ADT_NEW, _adt("ADT1", "123-45-6789^^^SSA^SS"))
    assert alone != _patient_id(ADT_NEW, _adt("ADT1", "E4410072^^^NORTHWING^MRN"))


def test_the_first_of_equals_keys_the_patient():
    both = _patient_id(ADT_NEW, _adt("ADT1", "A1^^^NORTHWING^MR~B2^^^NORTHWING^MR"))
    assert both == _patient_id(ADT_NEW, _adt("ADT1", "A1^^^NORTHWING^MR"))


# ---- defect 3: every reference in the Bundle is to that one Patient ---------------------


@pytest.mark.parametrize(("ref", "raw"), [
    (ADT_NEW, _adt("ADT1", f"123-45-6789^^^SSA^SS~E4410072^^^{HOSPITAL}^MRN")),
    (ORU_NEW, _oru("LAB", f"123-45-6789^^^SSA^SS~E4410072^^^{HOSPITAL}^MRN")),
    (ANY_NEW, _oru("LAB", f"123-45-6789^^^SSA^SS~E4410072^^^{HOSPITAL}^MRN")),
])
def test_every_resource_refers_to_the_patient_by_the_new_key(ref: str, raw: bytes):
    bundle = checks.bundle_of(checks.mapping(ref), raw)
    patient = checks.only(bundle, "Patient")
    assert patient["id"] == _patient_id(ADT_NEW, _adt("ADT1", f"E4410072^^^{HOSPITAL}^MR"))
    mentions = {f"urn:uuid:{patient['id']}"}
    assert _references_to_patients(bundle) == mentions
    for entry in bundle["entry"]:
        resource = entry["resource"]
        for element in REFERRING:
            if element in resource and resource["resourceType"] != "Provenance":
                assert resource[element] == {"reference": f"urn:uuid:{patient['id']}"}, (
                    f"{resource['resourceType']}.{element}")
    kinds = {e["resource"]["resourceType"] for e in bundle["entry"]
             if e["resource"].get("subject") == {"reference": f"urn:uuid:{patient['id']}"}}
    assert "Encounter" in kinds
    if ref != ADT_NEW:
        assert {"Observation", "DiagnosticReport"} <= kinds


def test_a_merge_retires_the_prior_patient_keyed_by_the_same_rule():
    """A40 from the ADT feed: the patient MRG-1 names is the one an earlier message for
    that record number made (an SSN sent first in MRG-1 does not key it)."""
    raw = _adt("ADT1", f"E4410072^^^{HOSPITAL}^MR", "A40") + (
        f"MRG|123-45-6789^^^SSA^SS~E0000001^^^{HOSPITAL}^MRN\r").encode()
    bundle = checks.bundle_of(checks.mapping(ADT_NEW), raw)
    retired = [p for p in checks.of_type(bundle, "Patient") if p.get("active") is False]
    assert [p["id"] for p in retired] == [
        _patient_id(ADT_NEW, _adt("ADT1", f"E0000001^^^{HOSPITAL}^MR"))]


@pytest.mark.parametrize("ref", [ADT_NEW, ORU_NEW, ANY_NEW])
def test_new_versions_are_deterministic(ref: str):
    mapping: Mapping = checks.mapping(ref)
    raw = _oru("LAB", f"E4410072^^^{HOSPITAL}^MR") if "oru" in ref or ref == ANY_NEW else \
        _adt("ADT1", f"E4410072^^^{HOSPITAL}^MR")
    checks.check_deterministic(mapping, raw)


# ---- visits and accounts sent without their own authority --------------------------------


def _hie_adt(pid3: str, visit: str, account: str = "ACC77") -> bytes:
    return ("MSH|^~\\&|HIE|STATEHIE|CONDUIT|HOSP|20240402170512-0400||ADT^A01|"
            f"H{pid3[:6]}{visit}|P|2.5.1\r"
            "EVN|A01|20240402170500-0400\r"
            f"PID|1||{pid3}||ROE^SAM^^^^^L||19700101|M||||||||||{account}\r"
            f"PV1|1|I|5W^514^2||||1234^ATTEND^ANNA||||||||||||{visit}\r").encode()


def test_two_patients_visit_numbers_from_one_sender_are_two_encounters():
    """An HIE relays two facilities' patients, each with visit V100 and account ACC77 and
    no authority on either: keyed within MSH-4 they were one Encounter and one Account
    whose subject switched from one patient to the other."""
    adt = checks.mapping(ADT_NEW)
    north = checks.bundle_of(adt, _hie_adt("N1^^^&2.16.840.1.113883.3.1&ISO^MR", "V100"))
    south = checks.bundle_of(adt, _hie_adt("N1^^^&2.16.840.1.113883.3.2&ISO^MR", "V100"))
    for kind in ("Encounter", "Account"):
        assert checks.only(north, kind)["id"] != checks.only(south, kind)["id"], kind
    # a visit number with its own authority is that authority's, whoever the patient
    own = "V100^^^NWH^VN"
    assert checks.only(checks.bundle_of(adt, _hie_adt("N1^^^&2.16.840.1.113883.3.1&ISO^MR",
                                                        own)), "Encounter")["id"] == \
        checks.only(checks.bundle_of(adt, _hie_adt("N1^^^&2.16.840.1.113883.3.2&ISO^MR",
                                                     own)), "Encounter")["id"]


def test_one_patients_visit_from_two_feeds_is_one_encounter():
    """The ADT and the lab feed (each its own MSH-4) send the same patient and visit
    number without an authority: one Patient already, and now one Encounter too."""
    pid3 = f"E100^^^{HOSPITAL}^MR"
    adt = _adt("NWADT", pid3).replace(b"||V100233^^^NWH^VN", b"|V100233")  # to PV1-19
    oru = _oru("NWLAB", pid3).replace(b"V100233^^^NWH^VN", b"V100233")
    from_adt = checks.only(checks.bundle_of(checks.mapping(ADT_NEW), adt), "Encounter")
    from_lab = checks.only(checks.bundle_of(checks.mapping(ORU_NEW), oru), "Encounter")
    assert from_adt["id"] == from_lab["id"]


@pytest.mark.parametrize(("pid3", "keyed"), [
    ("999-12-3456^^^USSSA^SS~Z100^^^NORTHWING^MRN", "Z100"),  # Cerner-like: SSN first
    ("D4477^^^IL^DL~M200^^^CMC^PI", "M200"),
    ("P1^^^X^PT~E1^^^EPI^MR", "E1"),
    ("999-12-3456^^^USSSA^SS", "999-12-3456"),  # nothing else sent
])
def test_the_audit_pseudonym_follows_the_same_identifier_as_the_patient(pid3, keyed):
    """The patient pseudonym behind audit searches and the accounting of disclosures is
    the record number the Patient is keyed on: with an SSN first it was the SSN, so a
    search by the MRN missed that patient's messages."""
    parsed = Hl7v2Codec().parse(_adt("NWADT", pid3))
    assert parsed.patient_id == keyed


def test_a_record_number_in_pid2_beats_an_ssn_in_pid3():
    """A v2.3 sender puts its MRN in PID-2 and only the SSN in PID-3: the Patient is the
    one the same MRN sent in PID-3 keys, not one keyed on the SSN."""
    mrn = f"E4410072^^^{HOSPITAL}^MR"
    in_pid2 = _adt("NWADT", "999-12-3456^^^USSSA^SS").replace(
        b"PID|1||", f"PID|1|{mrn}|".encode())
    assert _patient_id(ADT_NEW, in_pid2) == _patient_id(ADT_NEW, _adt("NWADT", mrn))
    assert _patient_id(ADT_OLD, in_pid2) != _patient_id(ADT_OLD, _adt("NWADT", mrn))


def test_two_strangers_with_one_name_and_no_ids_are_not_one_patient():
    """DOE^JOHN with no identifier and no birth date from two messages (a man in
    Springfield, a woman in Chicago): keyed on the name alone they were one Patient, the
    second overwriting the first."""
    def nameless(control: str, sex: str) -> bytes:
        return (f"MSH|^~\\&|REG|NWH|CONDUIT|HIE|20240402170512-0400||ADT^A04|{control}|P|"
                f"2.5.1\rEVN|A04|20240402170500-0400\rPID|1||||DOE^JOHN|||{sex}\r").encode()
    first, second = nameless("J1", "M"), nameless("J2", "F")
    assert _patient_id(ADT_NEW, first) != _patient_id(ADT_NEW, second)
    warned = [str(w) for w in checks.mapped(checks.mapping(ADT_NEW), first).warnings]
    assert any("no birth date either" in w for w in warned)
    assert _patient_id(ADT_OLD, first) == _patient_id(ADT_OLD, second)  # released: as was

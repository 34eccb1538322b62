"""Facts the reference converter gives that the newest HL7v2 builders had missed: an ISO
8601 MSH-7 still dates the Bundle and its Provenance (with a warning), and the older
released versions keep refusing it as before."""

from __future__ import annotations

import pytest

from engine.errors import MappingError
from tests import mapping_checks as checks

ORU_ISO = (
    b"MSH|^~\\&|EPIC|NORTHWIND|LAB|RECV|2024-01-15T12:00:00-05:00||ORU^R01^ORU_R01|M1|P|2.5.1\r"
    b"PID|1||MRN123^^^NW^MR||DOE^JANE||19800512|F\r"
    b"OBR|1|ORD1|FIL1|2345-7^Glucose^LN|||202401151100-0500||||||||||||||||||F\r"
    b"OBX|1|NM|2345-7^Glucose^LN||98|mg/dL|70-99|N|||F|||202401151100-0500\r"
)


def test_an_iso_msh7_dates_the_bundle_and_provenance_with_a_warning() -> None:
    mapping = checks.mapping("hl7v2-to-fhir@1")
    bundle = checks.bundle_of(mapping, ORU_ISO)
    assert bundle["timestamp"] == "2024-01-15T12:00:00-05:00"
    assert checks.only(bundle, "Provenance")["recorded"] == "2024-01-15T12:00:00-05:00"
    warnings = checks.warnings_of(mapping, ORU_ISO)
    assert any(w.startswith("MSH-7: is an ISO 8601 date/time") for w in warnings)
    assert not any("engine's zone" in w for w in warnings)
    checks.check_transaction(bundle)


def test_an_iso_msh7_in_utc_and_without_seconds_is_the_same_instant() -> None:
    raw = ORU_ISO.replace(b"2024-01-15T12:00:00-05:00", b"2024-01-15T17:00Z")
    bundle = checks.bundle_of(checks.mapping("hl7v2-oru-to-fhir@2"), raw)
    assert bundle["timestamp"] == "2024-01-15T17:00:00+00:00"


def test_the_released_oru_version_still_gives_no_timestamp() -> None:
    bundle = checks.bundle_of(checks.mapping("hl7v2-oru-to-fhir@1"), ORU_ISO)
    assert "timestamp" not in bundle


# ---- PID-18 account and PID-21 mother, as the reference's order and result templates ----

MSH = "MSH|^~\\&|LIS|RIVERBEND|EHR|RIVERBEND|20240301101500-0600||{type}|C-{n}|P|{v}\r"
PID = ("PID|1||RB-{n}^^^RIVERBEND^MR||LARK^MINA||20230901|F||||||||||"
       "ACCT-{n}^^^RIVERBEND^AN|||{mom}\r")
ORU_BODY = ("OBR|1|P-{n}|F-{n}|718-7^Hemoglobin^LN|||202403010900-0600|||||||||||||||"
            "202403011000-0600|||F\r"
            "OBX|1|NM|718-7^Hemoglobin^LN||11.2|g/dL|10.5-14.0||||F\r")


def _message(kind: str, n: int, body: str, *, mom: str = "", extra: str = "",
             version: str = "2.5.1") -> bytes:
    return (MSH.format(type=kind, n=n, v=version) + PID.format(n=n, mom=mom) + extra
            + body.format(n=n)).encode()


def test_an_oru_keeps_each_patients_pid18_account_on_their_visit() -> None:
    two = _message("ORU^R01^ORU_R01", 1, "PV1|1|O|LAB^^^RIVERBEND||||||||||||||||V-1\r"
                   + ORU_BODY) + (PID.format(n=2, mom="") + ORU_BODY.format(n=2)).encode()
    bundle = checks.bundle_of(checks.mapping("hl7v2-to-fhir@1"), two)
    accounts = checks.of_type(bundle, "Account")
    assert [a["identifier"][0]["value"] for a in accounts] == ["ACCT-1", "ACCT-2"]
    patients = checks.of_type(bundle, "Patient")
    assert [a["subject"] for a in accounts] == [[checks.reference_to(p)] for p in patients]
    visits = checks.of_type(bundle, "Encounter")  # the second patient's is unknown
    assert [v["account"] for v in visits] == [[checks.reference_to(a)] for a in accounts]
    assert not any("PID-18" in line for line in checks.mapped(
        checks.mapping("hl7v2-to-fhir@1"), two).left_behind)
    checks.check_transaction(bundle)


def test_an_order_without_nk1_names_pid21_as_the_mother_and_keeps_the_account() -> None:
    orm = _message("ORM^O01", 3, "ORC|NW|P-3\rOBR|1|P-3||718-7^Hemoglobin^LN\r",
                   mom="MOM-77^^^RIVERBEND^MR", version="2.3")
    bundle = checks.bundle_of(checks.mapping("hl7v2-orm-to-fhir@2"), orm)
    mother = checks.only(bundle, "RelatedPerson")
    assert mother["identifier"][0]["value"] == "MOM-77"
    assert mother["relationship"][0]["coding"][0]["code"] == "MTH"
    assert checks.only(bundle, "Account")["identifier"][0]["value"] == "ACCT-3"
    checks.check_transaction(bundle)


def test_an_nk1_says_more_than_pid21_so_no_second_mother_is_made() -> None:
    nk1 = "NK1|1|LARK^ADA|MTH^Mother^HL70063\r"
    orm = _message("ORM^O01", 4, "ORC|NW|P-4\rOBR|1|P-4||718-7^Hemoglobin^LN\r",
                   mom="MOM-78^^^RIVERBEND^MR", extra=nk1)
    bundle = checks.bundle_of(checks.mapping("hl7v2-orm-to-fhir@2"), orm)
    assert [r["name"][0]["family"] for r in checks.of_type(bundle, "RelatedPerson")] == ["LARK"]


def test_pharmacy_messages_keep_the_account_and_the_mother() -> None:
    rds = _message("RDS^O13^RDS_O13", 5, "ORC|RE|P-5\rRXD|1|00093105301^Amoxicillin 250mg^NDC|"
                   "20240301|30|ML\r", mom="MOM-79^^^RIVERBEND^MR")
    rde = rds.replace(b"RDS^O13^RDS_O13", b"RDE^O11^RDE_O11").replace(
        b"RXD|1|00093105301^Amoxicillin 250mg^NDC|20240301|30|ML",
        b"RXE|^^^20240301^^R|00093105301^Amoxicillin 250mg^NDC|250||mg")
    for ref, raw in (("hl7v2-rds-to-fhir@1", rds), ("hl7v2-rde-to-fhir@2", rde)):
        bundle = checks.bundle_of(checks.mapping(ref), raw)
        assert checks.only(bundle, "Account")["identifier"][0]["value"] == "ACCT-5", ref
        assert checks.only(bundle, "RelatedPerson")["identifier"][0]["value"] == "MOM-79", ref
        checks.check_transaction(bundle)


def test_an_appointment_names_pid21_as_the_mother() -> None:
    siu = _message("SIU^S12^SIU_S12", 6,
                   "SCH|A-6|A-6|||||CHECKUP^Well child^L|||30|MIN|^^30^202403051000-0600\r",
                   mom="MOM-80^^^RIVERBEND^MR")
    bundle = checks.bundle_of(checks.mapping("hl7v2-siu-to-fhir@2"), siu)
    assert checks.only(bundle, "RelatedPerson")["identifier"][0]["value"] == "MOM-80"
    assert checks.only(bundle, "Account")["identifier"][0]["value"] == "ACCT-6"
    checks.check_transaction(bundle)


def test_an_iso_birth_date_is_still_the_patients_birth_date() -> None:
    adt = (b"MSH|^~\\&|ATHENA|NORTHCLINIC|HUB|HUB|20240301101010-0500||ADT^A04^ADT_A01|A7|P|"
           b"2.5.1\rEVN||20240301101000-0500\r"
           b"PID|1||A-55123^^^ATHENA^PI||NGUYEN^THI||1990-07-04|F\rPV1|1|O\r")
    mapping = checks.mapping("hl7v2-to-fhir@1")
    assert checks.only(checks.bundle_of(mapping, adt), "Patient")["birthDate"] == "1990-07-04"
    assert any(w.startswith("PID-7: is an ISO 8601") for w in checks.warnings_of(mapping, adt))


def test_a_sex_sent_as_a_word_is_that_sex_with_a_warning() -> None:
    adt = (b"MSH|^~\\&|CPSI|RURALHOSP|||20240312101500-0600||ADT^A04|CP2|P|2.3\r"
           b"PID|1||445566^^^RURALHOSP^MR||DUNN^WALTER||19480101|Male\rPV1|1|O\r")
    mapping = checks.mapping("hl7v2-to-fhir@1")
    assert checks.only(checks.bundle_of(mapping, adt), "Patient")["gender"] == "male"
    assert any(w.startswith("PID-8: is a word") for w in checks.warnings_of(mapping, adt))
    unreadable = adt.replace(b"|Male\r", b"|Mal\r")
    assert checks.only(checks.bundle_of(mapping, unreadable), "Patient")["gender"] == "unknown"


def test_a_repeated_rxa5_keeps_the_cvx_code_beside_the_cpt() -> None:
    vxu = (b"MSH|^~\\&|ECW|SMALLPEDS|IIS|IIS|20240401093000-0500||VXU^V04|VX2|P|2.3.1\r"
           b"PID|1||SP-77^^^SMALLPEDS||PARK^LEO||20220202|M\r"
           b"RXA|0|1|20240401|20240401|90700^DTaP^C4~20^DTaP^cvx|0.5|mL\r")
    bundle = checks.bundle_of(checks.mapping("hl7v2-vxu-to-fhir@2"), vxu)
    codes = [(c["system"], c["code"])
             for c in checks.only(bundle, "Immunization")["vaccineCode"]["coding"]]
    assert codes == [("http://www.ama-assn.org/go/cpt", "90700"),
                     ("http://hl7.org/fhir/sid/cvx", "20")]
    checks.check_transaction(bundle)


def test_an_adt_pv1_with_only_a_patient_class_is_still_the_visit_of_that_class() -> None:
    adt = (b"MSH|^~\\&|APP|FAC|RCV|RCVFAC|20240901120000-0500||ADT^A01|D1|P|2.5.1\r"
           b"EVN||20240901120000-0500\rPID|1||D-1^^^FAC^MR||DOE^JO||19800101|F\rPV1|1|I\r")
    mapping = checks.mapping("hl7v2-adt-to-fhir@3")
    assert checks.only(checks.bundle_of(mapping, adt), "Encounter")["class"]["code"] == "IMP"
    placeholder = adt.replace(b"PV1|1|I\r", b"PV1|1|N\r")
    assert not checks.of_type(checks.bundle_of(mapping, placeholder), "Encounter")


def test_a_result_message_without_results_still_maps_its_patient() -> None:
    oul = (b"MSH|^~\\&|LIS|GH|EHR|GH|20240301120000-0500||OUL^R22^OUL_R22|C9|P|2.5.1\r"
           b"PID|1||GH4471^^^GH^MR||SMITH^ALEX||19700101|M\r")
    mapping = checks.mapping("hl7v2-to-fhir@1")
    assert checks.only(checks.bundle_of(mapping, oul), "Patient")["birthDate"] == "1970-01-01"
    assert any(w.startswith("OBR: the message has no SPM") for w in
               checks.warnings_of(mapping, oul))
    nothing = b"MSH|^~\\&|EPIC|MERCY|RCV|HIE|20250203101522-0600||SIU^S12|S1|P|2.5.1\rRGS|1\r"
    with pytest.raises(MappingError, match="SCH-2: the SCH segment is missing"):
        checks.run(checks.mapping("hl7v2-siu-to-fhir@2"), nothing)  # nothing to map to


def test_results_without_a_pv1_belong_to_an_unknown_visit_kept_across_corrections() -> None:
    oru = _message("ORU^R01^ORU_R01", 7, ORU_BODY)
    mapping = checks.mapping("hl7v2-oru-to-fhir@2")
    bundle = checks.bundle_of(mapping, oru)
    visit = checks.only(bundle, "Encounter")
    assert (visit["status"], visit["class"]["code"]) == ("unknown", "UNK")
    assert checks.only(bundle, "DiagnosticReport")["encounter"] == checks.reference_to(visit)
    corrected = oru.replace(b"|C-7|", b"|C-8|").replace(b"||F\r", b"||C\r")
    again = checks.only(checks.bundle_of(mapping, corrected), "Encounter")
    assert again["id"] == visit["id"]
    checks.check_transaction(bundle)

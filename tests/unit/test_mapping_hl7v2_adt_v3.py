"""hl7v2-adt-to-fhir@3: every fixture a valid R4 transaction, and the facts of each area
where the reference converter puts them: the Patient's identifiers, names, telecoms,
marital status, language, religion, multiple birth, death, PD1 and merges; the
Encounter's class and status per event, participants, locations and hospitalization;
the Provenance. Odd fields are located warnings without values, only a message without
a PID fails, ids are deterministic and the Patient is the one hl7v2-adt-to-fhir@1 makes."""

from __future__ import annotations

import json
import time

import pytest

from engine.conformance import us_core
from engine.conformance.gate import Gate, check_all
from engine.errors import MappingError
from engine.maplib.v2_to_fhir import adt as adt_builder
from engine.mapping import Mapping, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, mapped, of_type, only, resolve, run

FIXTURES = checks.Fixtures("hl7v2-adt-to-fhir@3")
V3 = "http://terminology.hl7.org/CodeSystem/v3-"
V2 = "http://terminology.hl7.org/CodeSystem/v2-"
EXT = "http://hl7.org/fhir/StructureDefinition/"

adt = checks.mapping_fixture(FIXTURES.ref, accepts="hl7v2", emits="application/fhir+json")

TestFixtures = checks.fixture_tests(FIXTURES, min_cases=35, min_outputs=35,
                                    output=checks.check_transaction)

PID = ("PID|1||MG001234^^^MERCY^MR||ROWE^TAMSIN^^^^^L||19900101|F|||1 ELM ST^^SALEM^OR^97301"
       "^USA^H")
PV1 = "PV1|1|I|3E^301^A^MERCY" + "|" * 16 + "MGV5550001^^^MERCY^VN"


def message(*segments: str, event: str = "A01", pid: str | None = PID, pv1: str | None = PV1,
            evn: str | None = None) -> bytes:
    """An ADT from MERCY_GEN: MSH, EVN, the PID and PV1 given, then `segments`."""
    head = [f"MSH|^~\\&|ADT|MERCY_GEN|CONDUIT|HIE|20240601120000-0500||ADT^{event}|C1|P|2.5",
            evn or f"EVN|{event}|20240601115900-0500"]
    body = [s for s in (pid, pv1) if s]
    return ("\r".join([*head, *body, *segments]) + "\r").encode()


def patient_of(mapping: Mapping, pid: str, *segments: str, **kw) -> dict:
    return only(bundle_of(mapping, message(*segments, pid=pid, **kw)), "Patient")


# ---- declarations -----------------------------------------------------------------------


def test_declares_every_listed_event_and_the_resources_its_bundles_hold(adt: Mapping) -> None:
    listed = {f"A{n:02d}" for n in (*range(1, 18), *range(25, 32))} | {
        "A40", "A41", "A45", "A47", "A60"}
    assert set(adt_builder.CORE_EVENTS) == listed
    assert set(adt_builder.EVENTS) == listed | set(adt_builder.MORE_EVENTS)
    seen = {e["resource"]["resourceType"] for case in FIXTURES.output_cases
            for e in bundle_of(adt, FIXTURES.input(case))["entry"]}
    assert seen <= set(adt_builder.RESOURCES), seen - set(adt_builder.RESOURCES)
    events = {bundle_of(adt, FIXTURES.input(c))["entry"][-1]["resource"].get("activity", {})
              .get("coding", [{}])[0].get("code") for c in FIXTURES.output_cases}
    header_events = {e["resource"]["eventCoding"]["code"] for c in FIXTURES.output_cases
                     for e in bundle_of(adt, FIXTURES.input(c))["entry"]
                     if e["resource"]["resourceType"] == "MessageHeader"}
    assert listed <= header_events, f"events without a fixture: {listed - header_events}"
    assert events - {None} <= listed


# ---- Patient ----------------------------------------------------------------------------


def test_every_identifier_with_its_type(adt: Mapping) -> None:
    pid = ("PID|1|EXT9^^^OLDSYS|MG001234^^^MERCY^MR~77^^^STATE^PI|ALT5^^^LEGACY|ROWE^TAMSIN"
           + "|" * 14 + "123-45-6789|D99^OR^20300101")
    found = {(i.get("type", {}).get("coding", [{}])[0].get("code"), i.get("system"), i["value"])
             for i in patient_of(adt, pid)["identifier"]}
    assert ("MR", "urn:conduit:id:MERCY", "MG001234") in found
    assert ("PI", "urn:conduit:id:STATE", "77") in found
    assert (None, "urn:conduit:id:OLDSYS", "EXT9") in found
    assert (None, "urn:conduit:id:LEGACY", "ALT5") in found
    assert ("SS", "http://hl7.org/fhir/sid/us-ssn", "123-45-6789") in found
    license_ = next(i for i in patient_of(adt, pid)["identifier"] if i["value"] == "D99")
    assert license_["type"]["coding"][0]["code"] == "DL"
    assert license_["period"] == {"end": "2030-01-01"}


def test_names_keep_their_use_and_period(adt: Mapping) -> None:
    pid = ("PID|1||MG001234^^^MERCY^MR||ROWE^TAMSIN^J^^^^L~ROWE^TAM^^^^^D~BELL^TAMSIN^^^^^M"
           "^^^^^20000101^20100101~ROWE^TT^^^^^N||19900101|F|ROE^TAMMY")
    names = patient_of(adt, pid)["name"]
    assert [(n.get("use"), n["family"]) for n in names] == [
        ("official", "ROWE"), ("usual", "ROWE"), ("maiden", "BELL"), ("nickname", "ROWE"),
        ("nickname", "ROE")]
    assert names[2]["period"] == {"start": "2000-01-01", "end": "2010-01-01"}


def test_telecoms_by_use_and_equipment(adt: Mapping) -> None:
    pid = (PID + "||^PRN^PH^^1^503^5550100~^PRN^CP^^1^503^5550101~^NET^Internet^t@example.org"
           "|^WPN^FX^^1^503^5550199")
    telecom = patient_of(adt, pid)["telecom"]
    assert telecom == [
        {"system": "phone", "value": "+1 (503) 555-0100", "use": "home"},
        {"system": "phone", "value": "+1 (503) 555-0101", "use": "mobile"},
        {"system": "email", "value": "t@example.org", "use": "home"},
        {"system": "fax", "value": "+1 (503) 555-0199", "use": "work"},
    ]


@pytest.mark.parametrize(("code", "system", "expected"), [
    ("M", V3 + "MaritalStatus", "M"), ("A", V3 + "MaritalStatus", "L"),
    ("S", V3 + "MaritalStatus", "S"), ("P", V3 + "MaritalStatus", "T"),
    ("U", V3 + "NullFlavor", "UNK"),
])
def test_marital_status_in_v3(adt: Mapping, code: str, system: str, expected: str) -> None:
    pid = PID + "|" * 5 + code
    coding = patient_of(adt, pid)["maritalStatus"]["coding"][0]
    assert (coding["system"], coding["code"]) == (system, expected)


@pytest.mark.parametrize(("sent", "code"), [
    ("ENG^English^ISO639", "en"), ("es-MX", "es-MX"), ("SPA", "es"), ("Vietnamese", "vi")])
def test_language_in_bcp47_where_recognisable(adt: Mapping, sent: str, code: str) -> None:
    pid = PID + "|" * 4 + sent
    [comm] = patient_of(adt, pid)["communication"]
    assert comm["preferred"] is True
    assert comm["language"]["coding"][0] == {**comm["language"]["coding"][0],
                                             "system": "urn:ietf:bcp:47", "code": code}


def test_a_language_the_sender_codes_its_own_way_keeps_its_code(adt: Mapping) -> None:
    pid = PID + "|" * 4 + "KLN^Klingon^99LANG"
    [comm] = patient_of(adt, pid)["communication"]
    assert comm["language"]["coding"][0]["code"] == "KLN"
    assert comm["language"]["coding"][0]["system"] != "urn:ietf:bcp:47"


def test_religion_birth_place_and_mothers_maiden_name_are_extensions(adt: Mapping) -> None:
    pid = ("PID|1||MG001234^^^MERCY^MR||ROWE^TAMSIN|OKAFOR^ADA|19900101|F" + "|" * 9
           + "BAP^Baptist^HL70006" + "|" * 6 + "LAGOS, NIGERIA")
    ext = {e["url"]: e for e in patient_of(adt, pid)["extension"]}
    assert ext[EXT + "patient-religion"]["valueCodeableConcept"]["coding"][0] == {
        "system": V2 + "0006", "code": "BAP", "display": "Baptist"}
    assert ext[EXT + "patient-mothersMaidenName"]["valueString"] == "OKAFOR"
    assert ext[EXT + "patient-birthPlace"]["valueAddress"] == {"text": "LAGOS, NIGERIA"}


def test_multiple_birth_order_else_indicator(adt: Mapping) -> None:
    base = "PID|1||MG001234^^^MERCY^MR||ROWE^TAMSIN||19900101|F" + "|" * 16
    assert patient_of(adt, base + "Y|2")["multipleBirthInteger"] == 2
    assert patient_of(adt, base + "N")["multipleBirthBoolean"] is False
    assert patient_of(adt, base + "Y")["multipleBirthBoolean"] is True


def test_death_time_else_indicator(adt: Mapping) -> None:
    base = "PID|1||MG001234^^^MERCY^MR||ROWE^TAMSIN||19900101|F" + "|" * 21
    assert patient_of(adt, base + "202406010930-0500|Y")["deceasedDateTime"] == (
        "2024-06-01T09:30:00-05:00")
    assert patient_of(adt, base + "|Y")["deceasedBoolean"] is True
    assert "deceasedBoolean" not in patient_of(adt, PID)


def test_pd1_primary_care_is_general_practitioner(adt: Mapping) -> None:
    pd1 = "PD1|||SALEM FAMILY CLINIC^^SFC1|1558444123^WELBY^MARCUS^^^DR^^^^^^^NPI"
    bundle = bundle_of(adt, message(pd1, pv1=None, event="A28"))
    patient = only(bundle, "Patient")
    doctors = [resolve(bundle, r) for r in patient["generalPractitioner"]]
    assert [d["resourceType"] for d in doctors] == ["Practitioner", "Organization"]
    assert doctors[0]["identifier"][0] == {**doctors[0]["identifier"][0],
                                           "system": "http://hl7.org/fhir/sid/us-npi",
                                           "value": "1558444123"}
    assert doctors[1]["name"] == "SALEM FAMILY CLINIC"


def test_nk1_is_a_related_person_and_a_patient_contact(adt: Mapping) -> None:
    nk1 = "NK1|1|ROWE^SAM|SPO^Spouse^HL70063||^PRN^PH^^1^503^5550111"
    bundle = bundle_of(adt, message(nk1))
    related = only(bundle, "RelatedPerson")
    assert related["patient"] == {"reference": f"urn:uuid:{only(bundle, 'Patient')['id']}"}
    [contact] = only(bundle, "Patient")["contact"]
    assert contact["name"]["family"] == "ROWE"
    assert contact["relationship"][0]["coding"][0]["code"] == "SPO"


def test_merge_links_the_surviving_and_the_retired_patient(adt: Mapping) -> None:
    raw = message("MRG|MG009999^^^MERCY^MR", event="A40", pv1=None)
    bundle = bundle_of(adt, raw)
    survivor, retired = of_type(bundle, "Patient")
    assert survivor["link"] == [{"other": {"reference": f"urn:uuid:{retired['id']}"},
                                 "type": "replaces"}]
    assert retired["active"] is False
    assert retired["link"] == [{"other": {"reference": f"urn:uuid:{survivor['id']}"},
                                "type": "replaced-by"}]
    # The retired resource is the very Patient the ADT feed made for that identifier.
    prior_pid = PID.replace("MG001234", "MG009999")
    checks.check_same_patient(retired, message(pid=prior_pid, event="A01"))
    linkage = only(bundle, "Linkage")
    assert [i["type"] for i in linkage["item"]] == ["source", "historical"]


def test_a47_identifier_change_retires_the_old_identifiers_patient(adt: Mapping) -> None:
    bundle = bundle_of(adt, message("MRG|OLD77^^^MERCY^MR", event="A47", pv1=None))
    survivor, retired = of_type(bundle, "Patient")
    assert retired["identifier"][0]["value"] == "OLD77"
    assert survivor["link"][0]["type"] == "replaces"


def test_a17_maps_both_patients_and_their_visits(adt: Mapping) -> None:
    second = ["PID|2||MG005555^^^MERCY^MR||BELL^IRIS||19700101|F",
              "PV1|2|I|3E^302^A^MERCY" + "|" * 16 + "MGV5550002^^^MERCY^VN"]
    bundle = bundle_of(adt, message(*second, event="A17"))
    patients, visits = of_type(bundle, "Patient"), of_type(bundle, "Encounter")
    assert len(patients) == 2 and len(visits) == 2
    assert [v["subject"]["reference"] for v in visits] == [
        f"urn:uuid:{p['id']}" for p in patients]


def test_a29_makes_the_patient_inactive(adt: Mapping) -> None:
    assert only(bundle_of(adt, message(event="A29", pv1=None)), "Patient")["active"] is False


# ---- Encounter --------------------------------------------------------------------------


@pytest.mark.parametrize(("event", "status"), [
    ("A01", "in-progress"), ("A02", "in-progress"), ("A03", "finished"), ("A04", "in-progress"),
    ("A05", "planned"), ("A06", "in-progress"), ("A11", "cancelled"), ("A13", "in-progress"),
    ("A14", "planned"), ("A27", "cancelled"), ("A16", "in-progress"),
])
def test_encounter_status_follows_the_event(adt: Mapping, event: str, status: str) -> None:
    assert only(bundle_of(adt, message(event=event)), "Encounter")["status"] == status


def test_an_update_reads_the_status_from_the_visit(adt: Mapping) -> None:
    discharged = PV1 + "|" * 26 + "20240601080000-0500"
    assert only(bundle_of(adt, message(event="A08", pv1=discharged)),
               "Encounter")["status"] == "finished"
    assert only(bundle_of(adt, message(event="A08")), "Encounter")["status"] == "in-progress"


@pytest.mark.parametrize(("code", "system", "expected"), [
    ("I", V3 + "ActCode", "IMP"), ("O", V3 + "ActCode", "AMB"), ("E", V3 + "ActCode", "EMER"),
    ("P", V3 + "ActCode", "PRENC"), ("R", V2 + "0004", "R"),
    ("SDC", "urn:conduit:code:MERCY_GEN:HL70004", "SDC"), ("", V3 + "NullFlavor", "UNK"),
])
def test_encounter_class(adt: Mapping, code: str, system: str, expected: str) -> None:
    pv1 = PV1.replace("PV1|1|I|", f"PV1|1|{code}|")
    found = only(bundle_of(adt, message(pv1=pv1)), "Encounter")["class"]
    assert (found["system"], found["code"]) == (system, expected)


def test_every_doctor_is_a_practitioner_participant(adt: Mapping) -> None:
    pv1 = ("PV1|1|I|3E^301^A^MERCY||||11^ATT^AL^^^DR|22^REF^RO^^^DR|33^CON^CY^^^DR||||||||"
           "44^ADM^AD^^^DR||MGV5550001^^^MERCY^VN")
    pv2 = "PV2" + "|" * 13 + "55^SRC^SU^^^DR"
    bundle = bundle_of(adt, message(pv2, pv1=pv1))
    encounter = only(bundle, "Encounter")
    roles = [(p["type"][0]["coding"][0]["code"], resolve(bundle, p["individual"]))
             for p in encounter["participant"]]
    assert [(code, who["resourceType"], who["identifier"][0]["value"]) for code, who in roles] == [
        ("ATND", "Practitioner", "11"), ("REF", "Practitioner", "22"),
        ("CON", "Practitioner", "33"), ("ADM", "Practitioner", "44"),
        ("REF", "Practitioner", "55")]
    assert all(c["system"] == V3 + "ParticipationType"
               for p in encounter["participant"] for c in p["type"][0]["coding"][:1])


def test_evn_operator_is_the_provenance_enterer(adt: Mapping) -> None:
    evn = ("EVN|A01|20240601115900-0500||01|77^DESK^DANA^^^^^^MERCY|20240601114500-0500")
    bundle = bundle_of(adt, message(evn=evn))
    provenance = bundle["entry"][-1]["resource"]
    assert provenance["resourceType"] == "Provenance"
    assert provenance["recorded"] == "2024-06-01T11:59:00-05:00"
    assert provenance["occurredDateTime"] == "2024-06-01T11:45:00-05:00"
    assert provenance["reason"][0]["coding"][0] == {
        "system": V2 + "0062", "code": "01", "display": "Patient request"}
    assert provenance["activity"]["coding"][0]["code"] == "A01"
    agents = {a["type"]["coding"][0]["code"]: resolve(bundle, a["who"])
              for a in provenance["agent"]}
    assert agents["author"] == {**agents["author"], "resourceType": "Organization",
                                "name": "MERCY_GEN"}
    assert agents["enterer"]["name"][0]["family"] == "DESK"
    targets = {t["reference"] for t in provenance["target"]}
    assert f"urn:uuid:{only(bundle, 'Patient')['id']}" in targets
    assert f"urn:uuid:{only(bundle, 'Encounter')['id']}" in targets
    header = only(bundle, "MessageHeader")
    assert header["eventCoding"]["code"] == "A01"
    assert resolve(bundle, header["sender"]) is agents["author"]


def test_locations_current_prior_and_pending(adt: Mapping) -> None:
    pv1 = ("PV1|1|I|5W^512^2^MERCY|||ED^07^^MERCY" + "|" * 13 + "MGV5550001^^^MERCY^VN"
           + "|" * 23 + "TELE^210^A^MERCY")
    bundle = bundle_of(adt, message(pv1=pv1, event="A02"))
    places = [(resolve(bundle, loc["location"])["name"], loc["status"])
              for loc in only(bundle, "Encounter")["location"]]
    assert places == [("5W / 512 / 2", "active"), ("ED / 07", "completed"),
                      ("TELE / 210 / A", "planned")]
    assert {r["resourceType"] for r in (resolve(bundle, loc["location"]) for loc in
                                        only(bundle, "Encounter")["location"])} == {"Location"}


def test_hospitalization_admission_and_discharge(adt: Mapping) -> None:
    pv1 = ("PV1|1|I|3E^301^A^MERCY|E|PRE1^^^MERCY|||||MED||||7|A2||||MGV5550001^^^MERCY^VN"
           + "|" * 17 + "01^Home^HL70112|SNF OAKS|DIAB^Diabetic" + "|" * 7
           + "20240601080000-0500")
    pv2 = "PV2|||R07.9^Chest pain^I10" + "|" * 8 + "4"
    encounter = only(bundle_of(adt, message(pv2, pv1=pv1, event="A03")), "Encounter")
    stay = encounter["hospitalization"]
    assert stay["preAdmissionIdentifier"]["value"] == "PRE1"
    assert stay["admitSource"]["coding"][0]["code"] == "7"
    assert stay["dischargeDisposition"]["coding"][0] == {
        "system": V2 + "0112", "code": "01", "display": "Home"}
    assert stay["specialArrangement"][0]["coding"][0]["code"] == "A2"
    assert stay["dietPreference"][0]["coding"][0]["code"] == "DIAB"
    assert "destination" in stay
    assert encounter["type"][0]["coding"][0]["code"] == "E"
    assert encounter["priority"]["coding"][0]["code"] == "EM"
    assert encounter["serviceType"]["coding"][0]["code"] == "MED"
    assert encounter["reasonCode"][0]["coding"][0]["system"] == "http://hl7.org/fhir/sid/icd-10-cm"
    assert encounter["length"] == {"value": 4, "unit": "d",
                                   "system": "http://unitsofmeasure.org", "code": "d"}
    assert encounter["period"]["end"] == "2024-06-01T08:00:00-05:00"


def test_pid18_account_is_the_encounters(adt: Mapping) -> None:
    pid = PID + "|" * 7 + "AC55^^^MERCY^AN"
    bundle = bundle_of(adt, message(pid=pid))
    account = only(bundle, "Account")
    assert account["identifier"][0]["value"] == "AC55"
    assert only(bundle, "Encounter")["account"] == [{"reference": f"urn:uuid:{account['id']}"}]


def test_person_events_ignore_a_placeholder_visit(adt: Mapping) -> None:
    assert of_type(bundle_of(adt, message(pv1="PV1|1|N", event="A31")), "Encounter") == []
    assert len(of_type(bundle_of(adt, message(event="A31")), "Encounter")) == 1


# ---- leniency, failure, identity ----------------------------------------------------------


@pytest.mark.parametrize(("pid", "pv1", "place"), [
    (PID.replace("19900101", "19900231"), PV1, "PID-7"),
    (PID.replace("|F|", "|Q|"), PV1, "PID-8"),
    (PID, PV1 + "|" * 25 + "20240601080000+2500", "PV1-44"),
    (PID, PV1.replace("MGV5550001^^^MERCY^VN", ""), "PV1-19"),
    ("PID|1||^^^MERCY^MR|MG7^^^ALT|ROWE^TAMSIN||19900101|F", PV1, "PID-3"),
])
def test_one_odd_field_is_a_located_warning_without_values(adt: Mapping, pid: str, pv1: str,
                                                           place: str) -> None:
    result = mapped(adt, message(pid=pid, pv1=pv1))
    said = [str(w) for w in result.warnings]
    assert [w.split(":")[0] for w in said] == [place]
    for value in ("19900231", "Q", "+2500", "ROWE", "TAMSIN", "MG7", "MG001234"):
        assert all(value not in w.split(":", 1)[1] for w in said), said
    assert of_type(json.loads(result.output), "Patient")


def test_a_code_without_a_system_is_kept_as_the_senders_without_warning(adt: Mapping) -> None:
    pv1 = "PV1|1|I|3E^301^A^MERCY|ZZ" + "|" * 15 + "MGV5550001^^^MERCY^VN"
    result = mapped(adt, message(pv1=pv1))
    assert not result.warnings
    encounter = only(json.loads(result.output), "Encounter")
    assert encounter["type"][0]["coding"][0] == {
        "system": "urn:conduit:code:MERCY_GEN:local", "code": "ZZ"}


def test_only_a_message_without_a_pid_fails(adt: Mapping) -> None:
    checks.check_error(adt, message(pid=None), "PID-3", values=["MGV5550001"])
    assert isinstance(run(adt, message(event="A20")), Skip)
    with pytest.raises(MappingError):
        run(adt, message(pid=None, event="A08"))


def test_the_patient_is_the_adt_feeds_and_ids_are_deterministic(adt: Mapping) -> None:
    v1 = checks.mapping(checks.ADT_REF)
    compared = 0
    for case in FIXTURES.output_cases:
        raw = FIXTURES.input(case)
        try:
            earlier = run(v1, raw)
        except MappingError:  # v1 fails where v3 warns (a bad date, no PID-3 id)
            continue
        if isinstance(earlier, bytes):  # v1 maps seven events, skipping the rest
            checks.check_same_patient(of_type(bundle_of(adt, raw), "Patient")[0], raw)
            compared += 1
    assert compared >= 10, f"only {compared} fixtures are events v1 maps too"
    raw = message()
    assert run(adt, raw) == run(adt, raw)
    encounter = only(bundle_of(adt, raw), "Encounter")
    assert encounter["id"] == only(checks.adt_bundle(raw), "Encounter")["id"]


def test_little_is_left_behind_of_a_typical_epic_admit(adt: Mapping) -> None:
    result = mapped(adt, FIXTURES.input("epic_a01_admit_full"))
    mapped_fields = {f"PID-{n}" for n in (3, 5, 6, 7, 8, 10, 11, 13, 14, 15, 16, 17, 18, 19,
                                          20, 22, 23, 24, 26)}
    mapped_fields |= {f"PV1-{n}" for n in (2, 3, 4, 5, 7, 8, 9, 10, 14, 15, 17, 18, 19, 39, 44)}
    mapped_fields |= {"EVN-2", "EVN-4", "EVN-5", "EVN-6", "EVN-7", "PD1-3", "PD1-4", "NK1-2",
                      "NK1-3", "NK1-7", "PV2-3", "PV2-25", "ROL-3", "ROL-4", "MSH-11", "MSH-12"}
    assert not mapped_fields & set(result.left_behind)
    assert len(result.left_behind) <= 8, result.left_behind


def test_a_newborns_mother_and_the_identifiers_assigner(adt: Mapping) -> None:
    pid = ("PID|1||NB1^^^MERCY&2.16.840.1.113883.3.99&ISO^MR||ROWE^BABY||20240601|F"
           + "|" * 13 + "MG001234^^^MERCY^MR")
    bundle = bundle_of(adt, message(pid=pid))
    patient = only(bundle, "Patient")
    assigner = resolve(bundle, patient["identifier"][0]["assigner"])
    assert assigner["identifier"] == [{"system": "urn:ietf:rfc:3986",
                                       "value": "urn:oid:2.16.840.1.113883.3.99"}]
    mother = only(bundle, "RelatedPerson")
    assert mother["identifier"][0]["value"] == "MG001234"
    assert mother["relationship"][0]["coding"][0]["code"] == "MTH"
    assert mother["patient"] == {"reference": f"urn:uuid:{patient['id']}"}


def test_a_visit_without_number_is_one_encounter_across_updates(adt: Mapping) -> None:
    pv1 = "PV1|1|O|CLINIC B^^^MERCY"
    first = only(bundle_of(adt, message(pv1=pv1, event="A04")), "Encounter")
    later = message(pv1=pv1, event="A08").replace(b"|C1|", b"|C2|")
    assert only(bundle_of(adt, later), "Encounter")["id"] == first["id"]
    # a class alone is a fact about the visit (as the reference keeps it): one Encounter
    # per patient and class across updates; a placeholder "PV1|1|N" makes none
    class_only = only(bundle_of(adt, message(pv1="PV1|1|O", event="A08")), "Encounter")
    again = message(pv1="PV1|1|O", event="A08").replace(b"|C1|", b"|C3|")
    assert only(bundle_of(adt, again), "Encounter")["id"] == class_only["id"]
    assert of_type(bundle_of(adt, message(pv1="PV1|1|N", event="A08")), "Encounter") == []


def test_the_sending_software_is_a_device_assembling_the_provenance(adt: Mapping) -> None:
    sft = "SFT|Acme Health^L|7.2.1|AcmeADT|B7210||20230101"
    raw = message().replace(b"\rEVN|", f"\r{sft}\rEVN|".encode())
    bundle = bundle_of(adt, raw)
    device = only(bundle, "Device")
    assert (device["manufacturer"], device["deviceName"][0]["name"],
            device["version"][0]["value"]) == ("Acme Health", "AcmeADT", "7.2.1")
    agents = bundle["entry"][-1]["resource"]["agent"]
    assert agents[1] == {"type": agents[1]["type"],
                         "who": {"reference": f"urn:uuid:{device['id']}"},
                         "onBehalfOf": agents[0]["who"]}  # for the sender, MSH-4
    sender = next(e["resource"] for e in bundle["entry"]
                  if e["fullUrl"] == agents[0]["who"]["reference"])
    assert (sender["resourceType"], sender["name"]) == ("Organization", "MERCY_GEN")
    assert agents[1]["type"]["coding"][0]["code"] == "assembler"


def test_a_merge_keeps_the_retired_patients_alternate_id(adt: Mapping) -> None:
    raw = message("MRG|MG009999^^^MERCY^MR|ALT42^^^LEGACY", event="A40", pv1=None)
    retired = of_type(bundle_of(adt, raw), "Patient")[1]
    assert [i["value"] for i in retired["identifier"]] == ["MG009999", "ALT42"]


def test_length_from_the_period_when_pv2_does_not_say_it(adt: Mapping) -> None:
    stay = PV1 + "|" * 25 + "20240601080000-0500|20240603093000-0500"
    length = only(bundle_of(adt, message(pv1=stay, event="A03")), "Encounter")["length"]
    assert length == {"value": 2970, "unit": "min", "system": "http://unitsofmeasure.org",
                      "code": "min"}
    dates = PV1 + "|" * 25 + "20240601|20240604"
    assert only(bundle_of(adt, message(pv1=dates, event="A03")),
               "Encounter")["length"]["value"] == 3


def test_rol_people_are_participants_and_practitioner_roles(adt: Mapping) -> None:
    rol = "ROL|1|AD|AT^Attending^HL70443|91^WARD^WENDY^^^DR|20240601100000-0500"
    bundle = bundle_of(adt, message(rol))
    role = only(bundle, "PractitionerRole")
    doctor = resolve(bundle, role["practitioner"])
    assert doctor["identifier"][0]["value"] == "91"
    assert role["code"][0]["coding"][0]["code"] == "AT"
    assert role["period"] == {"start": "2024-06-01T10:00:00-05:00"}
    [participant] = only(bundle, "Encounter")["participant"]
    assert participant["individual"]["reference"] == f"urn:uuid:{doctor['id']}"
    assert participant["type"][0]["coding"][0]["code"] == "ATND"
    deleted = rol.replace("|AD|", "|DE|")
    assert of_type(bundle_of(adt, message(deleted)), "PractitionerRole") == []


# ---- what US Core requires and a sender left empty --------------------------------------

US_CORE = Gate(profiles=us_core.expand(["us-core"]))
SNOMED = "http://snomed.info/sct"


@pytest.fixture
def chicago(monkeypatch: pytest.MonkeyPatch):
    """The engine's local zone is America/Chicago for the test (then back)."""
    monkeypatch.setenv("TZ", "America/Chicago")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_sender_without_zones_or_types_still_passes_us_core(adt: Mapping, chicago) -> None:
    """No zone in MSH-7 or EVN-2, no PV1-4/PV1-18, an attending doctor without an id, no
    PID-8: the Provenance is recorded in the engine's zone (summer time at that date),
    with a warning saying so; the Encounter is typed by its class; the doctor is
    identified by Conduit's key; the gender is unknown. The whole passes US Core."""
    raw = (b"MSH|^~\\&|REG|LAKEVIEW|CONDUIT|HIE|20240115120000||ADT^A01|Z1|P|2.3\r"
           b"EVN|A01|20240715083000\r"
           b"PID|1||LV1001^^^LAKEVIEW^MR||BRANDT^OLA\r"
           b"PV1|1|E|ER^04^^LAKEVIEW||||^HALVORSEN^INGRID^^^DR" + b"|" * 12 + b"LV-V77\r")
    result = mapped(adt, raw)
    bundle = json.loads(result.output)
    provenance = only(bundle, "Provenance")
    assert provenance["recorded"] == "2024-07-15T08:30:00-05:00"
    cut = "has a time of day but no time zone, here or in MSH-7; FHIR needs one with a " \
          "time, so only the date is kept"
    assert sorted(str(w) for w in result.warnings if "zone" in str(w)) == [
        f"EVN-2: {cut}",
        "EVN-2: has no time zone (nor has MSH-7); Provenance.recorded assumes the engine's "
        "zone, UTC-05:00",
        f"MSH-7: {cut}"]
    assert only(bundle, "Encounter")["type"][0]["coding"] == [
        {"system": SNOMED, "code": "50849002",
         "display": "Emergency room admission (procedure)"}]
    doctor = only(bundle, "Practitioner")
    assert doctor["identifier"] == [{"use": "secondary", "system": "urn:ietf:rfc:3986",
                                     "value": f"urn:uuid:{doctor['id']}"}]
    assert only(bundle, "Patient")["gender"] == "unknown"
    verdict = check_all(result.output, [US_CORE])[US_CORE]
    assert verdict.reasons == ()


def test_the_engine_zone_is_read_at_the_messages_date(adt: Mapping, chicago) -> None:
    raw = message(evn="EVN|A01|").replace(b"20240601120000-0500", b"20240115120000")
    assert only(bundle_of(adt, raw), "Provenance")["recorded"] == "2024-01-15T12:00:00-06:00"


def test_a_visit_type_sent_is_never_replaced(adt: Mapping) -> None:
    pv1 = "PV1|1|I|3E^301^A^MERCY||||||||||||||||MGV5550001^^^MERCY^VN"
    typed = pv1.replace("MERCY||", "MERCY|E|")
    assert only(bundle_of(adt, message(pv1=pv1)), "Encounter")["type"][0]["coding"][0][
        "code"] == "32485007"
    assert [c["code"] for c in only(bundle_of(adt, message(pv1=typed)), "Encounter")["type"][
        0]["coding"]] == ["E"]


def test_an_aut_is_a_preauthorization_claim_response_on_its_coverage(adt: Mapping) -> None:
    in1 = "IN1|1|PPO1^Blue PPO|BCX^^^MERCY^NIIP|BLUE CROSS" + "|" * 13 + "SEL"
    aut = "AUT|PPO1|BCX|BLUE CROSS|20240601|20240701|AU-778|1500|4|3"
    bundle = bundle_of(adt, message(in1, aut))
    claim = only(bundle, "ClaimResponse")
    assert claim["identifier"][0]["value"] == "AU-778"
    assert claim["use"] == "preauthorization"
    assert resolve(bundle, claim["insurer"])["name"] == "BLUE CROSS"
    assert claim["patient"] == {"reference": f"urn:uuid:{only(bundle, 'Patient')['id']}"}


def test_an_insured_without_relationship_is_unknown_for_us_core(adt: Mapping) -> None:
    in1 = "IN1|1|PPO1^Blue PPO|BCX^^^MERCY^NIIP|BLUE CROSS"
    coverage = only(bundle_of(adt, message(in1)), "Coverage")
    assert coverage["relationship"]["coding"][0]["code"] == "unknown"
    selfpaid = only(bundle_of(adt, message(in1 + "|" * 13 + "SEL")), "Coverage")
    assert selfpaid["relationship"]["coding"][0]["code"] == "self"


def test_an_obx_without_time_was_observed_as_of_the_event(adt: Mapping) -> None:
    obx = "OBX|1|NM|29463-7^Body weight^LN||82.5|kg^kilogram^UCUM|||||F"
    evn = "EVN|A01|20240601115900-0500||||20240601114500-0500"
    weight = only(bundle_of(adt, message(obx, evn=evn)), "Observation")
    assert weight["effectiveDateTime"] == "2024-06-01T11:45:00-05:00"
    timed = obx + "|||20240531080000-0500"
    assert only(bundle_of(adt, message(timed, evn=evn)), "Observation")[
        "effectiveDateTime"] == "2024-05-31T08:00:00-05:00"


def test_the_retired_record_of_a_merge_is_the_same_person(adt: Mapping) -> None:
    mrg = "MRG|MG000777^^^MERCY^MR"
    bundle = bundle_of(adt, message(mrg, event="A40", pv1=None))
    retired = next(p for p in of_type(bundle, "Patient") if p.get("active") is False)
    assert (retired["name"][0]["family"], retired["gender"]) == ("ROWE", "female")
    verdict = check_all(json.dumps(bundle).encode(), [US_CORE])[US_CORE]
    assert verdict.reasons == ()


def test_an_accident_is_an_observation_of_the_visit(adt: Mapping) -> None:
    acc = ("ACC|20240601093000-0500|MV^Motor vehicle accident^HL70050|I-5 EXIT 12|OR|Y|N|"
           "55^CLERK^CARL")
    bundle = bundle_of(adt, message(acc))
    accident = only(bundle, "Observation")
    assert accident["code"]["coding"][0] == {
        "system": V2 + "0050", "code": "MV", "display": "Motor vehicle accident"}
    assert accident["effectiveDateTime"] == "2024-06-01T09:30:00-05:00"
    assert accident["category"][0]["coding"][0]["code"] == "survey"
    assert [n["text"] for n in accident["note"]] == [
        "Location: I-5 EXIT 12", "Auto accident state: OR", "Job related: yes", "Death: no"]
    assert resolve(bundle, accident["performer"][0])["name"][0]["family"] == "CLERK"
    assert accident["encounter"] == {"reference": f"urn:uuid:{only(bundle, 'Encounter')['id']}"}
    assert of_type(bundle_of(adt, message()), "Observation") == []


def test_pv1_54_is_the_visits_episode_of_care(adt: Mapping) -> None:
    pv1 = PV1 + "|" * 34 + "Knee replacement|EP-11^^^MERCY"
    dg1 = "DG1|1|I10|M17.11^Osteoarthritis of right knee^I10||20240601|A"
    bundle = bundle_of(adt, message(dg1, pv1=pv1))
    episode = only(bundle, "EpisodeOfCare")
    visit = only(bundle, "Encounter")
    assert (episode["identifier"][0]["value"], episode["status"]) == ("EP-11", "active")
    assert episode["type"] == [{"text": "Knee replacement"}]
    assert resolve(bundle, episode["diagnosis"][0]["condition"])["code"]["coding"][0][
        "code"] == "M17.11"
    assert visit["episodeOfCare"] == [{"reference": f"urn:uuid:{episode['id']}"}]
    assert of_type(bundle_of(adt, message()), "EpisodeOfCare") == []


def test_an_operator_known_by_user_id_alone_is_referred_to_by_it(adt: Mapping) -> None:
    evn = "EVN|A01|20240601115900-0500|||MTUSER01"
    bundle = bundle_of(adt, message(evn=evn))
    [enterer] = [a for a in only(bundle, "Provenance")["agent"]
                 if a["type"]["coding"][0]["code"] == "enterer"]
    assert enterer["who"] == {"type": "Practitioner", "identifier": {
        "system": "urn:conduit:id:MERCY_GEN:practitioner", "value": "MTUSER01"}}
    assert of_type(bundle, "Practitioner") == []
    assert check_all(json.dumps(bundle).encode(), [US_CORE])[US_CORE].reasons == ()


def test_v28_prt_participants_of_the_visit_and_the_patient(adt: Mapping) -> None:
    """PRT (v2.7+) after PV1 names the visit's participants as ROL does; after PID, a
    primary care provider is the patient's general practitioner."""
    visit_prt = ("PRT|1|AD||AT^Attending Provider^HL70912|92^VANCE^VERA^^^DR" + "|" * 6
                 + "20240601100000-0500")
    patient_prt = "PRT|2|AD||PP^Primary Care Provider^HL70912|93^PARK^PAUL^^^DR"
    raw = message().replace(b"\rPV1|", f"\r{patient_prt}\rPV1|".encode())
    raw = raw.rstrip(b"\r") + f"\r{visit_prt}\r".encode()
    bundle = bundle_of(adt, raw)
    [participant] = only(bundle, "Encounter")["participant"]
    assert [c["code"] for c in participant["type"][0]["coding"]] == ["ATND", "AT"]
    assert participant["period"] == {"start": "2024-06-01T10:00:00-05:00"}
    assert resolve(bundle, participant["individual"])["name"][0]["family"] == "VANCE"
    [gp] = only(bundle, "Patient")["generalPractitioner"]
    assert resolve(bundle, gp)["name"][0]["family"] == "PARK"
    roles = {r["code"][0]["coding"][0]["code"]: resolve(bundle, r["practitioner"])["name"][0][
        "family"] for r in of_type(bundle, "PractitionerRole")}
    assert roles == {"PP": "PARK", "AT": "VANCE"}
    deleted = raw.replace(b"PRT|1|AD|", b"PRT|1|DE|")
    assert "participant" not in only(bundle_of(adt, deleted), "Encounter")


@pytest.mark.parametrize(("sex", "gender"), [("F", "female"), ("N", "other"), ("A", "other"),
                                             ("U", "unknown"), ("", "unknown")])
def test_administrative_sex_as_the_reference_reads_it(adt: Mapping, sex: str,
                                                      gender: str) -> None:
    pid = PID.replace("|19900101|F|", f"|19900101|{sex}|")
    assert patient_of(adt, pid)["gender"] == gender


def test_an_rf1_is_the_referral_behind_the_visit(adt: Mapping) -> None:
    rf1 = "RF1|A^Accepted^HL70283|R^Routine^HL70280|MED^Medical^HL70281|||REF-55^MERCY"
    dg1 = "DG1|1|I10|M25.561^Pain in right knee^I10||20240601|A"
    bundle = bundle_of(adt, message(dg1, rf1))
    referral = only(bundle, "ServiceRequest")
    assert (referral["status"], referral["intent"]) == ("active", "order")
    assert referral["identifier"][0]["value"] == "REF-55"
    assert not mapped(adt, message(dg1, rf1)).warnings
    assert referral["subject"] == {"reference": f"urn:uuid:{only(bundle, 'Patient')['id']}"}
    assert referral["reasonReference"] == [
        {"reference": f"urn:uuid:{only(bundle, 'Condition')['id']}"}]


@pytest.mark.parametrize("event", adt_builder.MORE_EVENTS)
def test_every_other_adt_event_gives_a_valid_patient_and_visit(adt: Mapping, event: str) -> None:
    """The events beyond issue 13's list (leave of absence, deletes, links, the other
    merges, moves and changes, their cancels) give output too, never a skip."""
    mrg = "MRG|MG000777^^^MERCY^MR||MA-1^^^MERCY^AN|MG000777"
    bundle = bundle_of(adt, message(mrg, event=event))
    checks.check_transaction(bundle)
    assert only(bundle, "MessageHeader")["eventCoding"]["display"].startswith("ADT/ACK - ")
    assert next(p["identifier"][0]["value"] for p in of_type(bundle, "Patient")
            if p.get("active") is not False) == "MG001234"
    if event in adt_builder.MERGES:
        retired = next(p for p in of_type(bundle, "Patient") if p.get("active") is False)
        assert retired["link"][0]["type"] == "replaced-by"
    if event not in adt_builder.PERSON_EVENTS:
        status = only(bundle, "Encounter")["status"]
        assert status == {"A21": "onleave", "A23": "entered-in-error", "A38": "cancelled",
                          "A53": "onleave"}.get(event, "in-progress")


def test_a24_links_two_patients_and_a37_unlinks_them(adt: Mapping) -> None:
    other = "PID|1||MG009999^^^MERCY^MR||ROWE^TAMSIN^A||19900101|F"
    linked = bundle_of(adt, message(other, event="A24", pv1=None))
    first, second = of_type(linked, "Patient")
    assert first["link"] == [{"other": {"reference": f"urn:uuid:{second['id']}"},
                              "type": "seealso"}]
    assert second["link"] == [{"other": {"reference": f"urn:uuid:{first['id']}"},
                               "type": "seealso"}]
    unlinked = of_type(bundle_of(adt, message(other, event="A37", pv1=None)), "Patient")
    assert len(unlinked) == 2 and not any("link" in p for p in unlinked)

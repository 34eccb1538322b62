"""ncpdp-newrx-to-fhir@1 and fhir-to-ncpdp-newrx@1: every fixture (as `conduit test`
runs it), valid R4 out, NewRx -> FHIR -> NewRx keeping every element both map, each
NewRx written passing the codec's strict checks, the same people and pharmacy as the
same resources from every SCRIPT message, and what a pharmacy or EHR sees in the
mapped prescription (controlled substances, structured Sig, substitution, compounds)."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET

import pytest

from engine.errors import MappingError, ParseError
from engine.formats.ncpdp.codec import NcpdpCodec, _leaves
from engine.formats.ncpdp.message import ScriptMessage
from engine.maplib import ncpdp_fhir as ncpdp
from engine.mapping import Mapping
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, by_type, run

NEWRX = checks.Fixtures("ncpdp-newrx-to-fhir@1", input_ext=".xml")
BUILD = checks.Fixtures("fhir-to-ncpdp-newrx@1", input_ext=".json", output_ext=".xml")
FHIR = "application/fhir+json"
codec = NcpdpCodec()

to_fhir = checks.mapping_fixture(NEWRX.ref, accepts="ncpdp", emits=FHIR)
to_newrx = checks.mapping_fixture(BUILD.ref, accepts="fhir", emits="application/xml")

TestNewRxFixtures = checks.fixture_tests(NEWRX, min_cases=9, min_outputs=7,
                                         output=checks.check_transaction)
TestBuildFixtures = checks.fixture_tests(BUILD, min_cases=7, min_outputs=4)

# What the round trip does not keep, by design (the module docstrings say why): the
# Header's MessageID (a hash of the request id) and SentTime (from authoredOn),
# SenderSoftware and DigitalSignature (they describe and sign the original message),
# and the version attributes (fhir-to-ncpdp-newrx@1 writes 2017071).
NOT_KEPT = ("Message/Header[1]/MessageID[1]", "Message/Header[1]/SentTime[1]",
            "Message/Header[1]/SenderSoftware[1]", "Message/Header[1]/DigitalSignature[1]",
            "Message@")
# What a NewRx written from FHIR always says, FHIR's silence read as the fewest: no
# NumberOfRefills sent is numberOfRepeatsAllowed absent, written back as 0 refills.
WRITTEN_WHEN_ABSENT = {"Message/Body[1]/NewRx[1]/MedicationPrescribed[1]/NumberOfRefills[1]":
                       "0"}


def _script(raw: bytes) -> ScriptMessage:
    parsed = codec.parse(raw)
    assert isinstance(parsed.body, ScriptMessage)
    return parsed.body


def _strict(raw: bytes) -> list[str]:
    return [p.text for p in codec.validate(codec.parse(raw), "strict")]


def _kept(leaves: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in leaves.items() if not k.startswith(NOT_KEPT)}


# ---- round trip -------------------------------------------------------------------------


@pytest.mark.parametrize("case", NEWRX.output_cases)
def test_newrx_to_fhir_to_newrx_keeps_every_mapped_element(
        to_fhir: Mapping, to_newrx: Mapping, case: str) -> None:
    raw = NEWRX.input(case)
    again = run(to_newrx, run(to_fhir, raw))
    assert isinstance(again, bytes)
    before, after = _kept(_leaves(_script(raw))), _kept(_leaves(_script(again)))
    lost = {k: v for k, v in before.items() if after.get(k) != v}
    added = sorted(k for k in set(after) - set(before) if WRITTEN_WHEN_ABSENT.get(k) != after[k])
    assert not lost and not added, f"lost or changed: {sorted(lost)}; added: {added}"
    # every element of the Body, and the Header's routing, is in what is compared
    assert any(k.startswith("Message/Body[1]/NewRx[1]/MedicationPrescribed") for k in before)
    assert "Message/Header[1]/PrescriberOrderNumber[1]" in before
    assert all(c.path.startswith(NOT_KEPT) or c.path in WRITTEN_WHEN_ABSENT
               for c in codec.diff(raw, again))


@pytest.mark.parametrize("case", NEWRX.output_cases + BUILD.output_cases)
def test_each_newrx_written_parses_and_passes_strict_checks(
        to_fhir: Mapping, to_newrx: Mapping, case: str) -> None:
    source = (BUILD.input(case) if case in BUILD.output_cases
              else run(to_fhir, NEWRX.input(case)))
    out = run(to_newrx, source)
    assert isinstance(out, bytes)
    parsed = codec.parse(out)
    assert parsed.message_type == "NewRx"
    assert parsed.receiver.endswith("^P") and parsed.sender.endswith("^C")
    assert _strict(out) == []


@pytest.mark.parametrize("case", NEWRX.output_cases)
def test_every_fixture_input_itself_passes_strict_checks(case: str) -> None:
    assert _strict(NEWRX.input(case)) == []


# ---- NewRx -> FHIR ----------------------------------------------------------------------


def _bundle(mapping: Mapping, case: str) -> dict[str, dict]:
    return by_type(bundle_of(mapping, NEWRX.input(case)))


def test_the_prescription_a_pharmacy_system_reads(to_fhir: Mapping) -> None:
    found = _bundle(to_fhir, "ehr_default_ns_atorvastatin")
    request, patient = found["MedicationRequest"], found["Patient"]
    assert (request["status"], request["intent"]) == ("active", "order")
    assert request["subject"]["reference"] == f"urn:uuid:{patient['id']}"
    assert request["requester"]["reference"] == f"urn:uuid:{found['Practitioner']['id']}"
    assert request["medicationReference"]["reference"] == (
        f"urn:uuid:{found['Medication']['id']}")
    assert request["authoredOn"] == "2026-12-01"
    assert {i["system"]: i["value"] for i in request["identifier"]} == {
        ncpdp.ID_LOCAL + "PrescriberOrderNumber": "ORD-2026-55120",
        ncpdp.ID_LOCAL + "MessageID": "a3f1c2d4e5b6478899aa0011bb22cc33"}
    dispense = request["dispenseRequest"]
    assert dispense["quantity"]["value"] == 90
    assert (dispense["quantity"]["code"], dispense["quantity"]["unit"]) == ("C48542", "Tablet")
    assert dispense["numberOfRepeatsAllowed"] == 3
    assert dispense["expectedSupplyDuration"] == {"value": 90, "unit": "days",
                                                  "system": "http://unitsofmeasure.org",
                                                  "code": "d"}
    assert dispense["performer"]["reference"] == f"urn:uuid:{found['Organization']['id']}"
    assert request["substitution"] == {"allowedBoolean": True}
    assert request["dosageInstruction"] == [
        {"text": "Take 1 tablet by mouth once daily at bedtime"}]
    codes = {c["system"]: c["code"] for c in found["Medication"]["code"]["coding"]}
    assert codes == {ncpdp.RXNORM: "617310", ncpdp.NDC: "00093505698"}
    assert patient["birthDate"] == "1962-07-14" and patient["gender"] == "female"
    pharmacy = found["Organization"]
    assert {i["system"]: i["value"] for i in pharmacy["identifier"]} == {
        ncpdp.NCPDP_ID: "7701630", ncpdp.NPI: "1457392810"}


def test_controlled_substance_keeps_schedule_and_dea_number(to_fhir: Mapping) -> None:
    found = _bundle(to_fhir, "epcs_schedule_ii_oxycodone_signed")
    schedule = [e for e in found["Medication"]["extension"]
                if e["url"] == ncpdp.DEA_SCHEDULE_EXT]
    assert schedule[0]["valueCodeableConcept"]["coding"][0] == {
        "system": ncpdp.NCI, "code": "C48675", "display": "Schedule II"}
    assert {"system": ncpdp.DEA, "value": "BN4829316"}.items() <= next(
        i for i in found["Practitioner"]["identifier"] if i["system"] == ncpdp.DEA).items()
    strength = found["Medication"]["ingredient"][0]["strength"]["numerator"]
    assert (strength["value"], strength["code"]) == (5, "C28253")
    assert found["MedicationRequest"]["dispenseRequest"]["numberOfRepeatsAllowed"] == 0
    assert found["MedicationRequest"]["note"] == [
        {"text": "Post-operative supply only. No early refills."}]


def test_structured_sig_gives_dose_route_method_and_frequency(to_fhir: Mapping) -> None:
    dosage = _bundle(to_fhir, "structured_sig_metformin")["MedicationRequest"][
        "dosageInstruction"][0]
    assert dosage["text"] == "Take 1 tablet by mouth 2 times a day with meals"
    dose = dosage["doseAndRate"][0]["doseQuantity"]
    assert (dose["value"], dose["unit"], dose["code"]) == (1, "tablet", "C48542")
    assert dosage["route"]["coding"][0]["code"] == "26643006"
    assert dosage["route"]["coding"][0]["system"] == "http://snomed.info/sct"
    assert dosage["method"]["coding"][0]["code"] == "419652001"
    assert dosage["timing"] == {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}


def test_dispense_as_written_and_diagnosis(to_fhir: Mapping) -> None:
    request = _bundle(to_fhir, "prefixed_ns_amoxicillin_dispense_as_written")[
        "MedicationRequest"]
    assert request["substitution"] == {"allowedBoolean": False}
    assert request["reasonCode"][0]["coding"][0] == {
        "system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "H6690",
        "display": "Otitis media, unspecified, unspecified ear"}
    assert request["authoredOn"] == "2026-12-03T09:10:05-05:00"


def test_a_compound_without_codes_is_a_medication_by_its_description(
        to_fhir: Mapping) -> None:
    found = _bundle(to_fhir, "compound_free_text_crlf")
    assert "coding" not in found["Medication"]["code"]
    assert found["Medication"]["code"]["text"].startswith("Magic mouthwash")
    assert found["MedicationRequest"]["dispenseRequest"]["quantity"]["code"] == "C28254"


def test_a_veterinarians_newrx_maps_its_animal_and_goes_back_as_one(
        to_fhir: Mapping, to_newrx: Mapping) -> None:
    """The codec takes a NonHumanPatient as sound; the mapping once failed on it
    ("no patient with a name"), so the shipped channel answered Error 601 and the
    pharmacy never got the prescription."""
    found = _bundle(to_fhir, "veterinary_nonhuman_patient_no_namespace")
    animal = found["Patient"]
    assert animal["extension"] == [{"url": ncpdp.ANIMAL_EXT, "extension": [
        {"url": "species", "valueCodeableConcept": {"coding": [
            {"system": ncpdp.NCI, "code": "C14201"}]}}]}]
    assert animal["name"] == [{"family": "Haugland", "given": ["Biscuit"]}]
    back = _script(run(to_newrx, run(to_fhir, NEWRX.input(
        "veterinary_nonhuman_patient_no_namespace"))))
    assert back.value("NewRx/Patient/NonHumanPatient/Species/Code") == "C14201"
    assert back.value("NewRx/Prescriber/Veterinarian/Identification/StateLicenseNumber") \
        == "VT-DVM-4471"


def test_2023011_maps_like_2017071(to_fhir: Mapping) -> None:
    request = _bundle(to_fhir, "v2023011_prefixed_insulin_pen")["MedicationRequest"]
    assert [r["coding"][0]["code"] for r in request["reasonCode"]] == ["E109", "Z794"]
    assert request["dispenseRequest"]["numberOfRepeatsAllowed"] == 11


def test_other_substitution_codes_are_kept_as_a_code(to_fhir: Mapping) -> None:
    raw = NEWRX.input("ehr_default_ns_atorvastatin").replace(
        b"<Substitutions>0</Substitutions>", b"<Substitutions>7</Substitutions>")
    request = by_type(bundle_of(to_fhir, raw))["MedicationRequest"]
    assert request["substitution"] == {"allowedCodeableConcept": {"coding": [
        {"system": ncpdp.CODE_LOCAL + "Substitutions", "code": "7"}]}}


def test_same_people_and_pharmacy_are_the_same_resources_in_every_message(
        to_fhir: Mapping) -> None:
    newrx = _bundle(to_fhir, "ehr_default_ns_atorvastatin")
    cancel = _script(NEWRX.input("cancelrx_not_newrx_error")).body
    assert cancel is not None
    assert ncpdp.practitioner(cancel.find("Prescriber"))["id"] == newrx["Practitioner"]["id"]
    # the same order number, prescriber and pharmacy reach the same resources again
    again = NEWRX.input("ehr_default_ns_atorvastatin").replace(
        b"a3f1c2d4e5b6478899aa0011bb22cc33", b"ffff0000ffff0000ffff0000ffff0000")
    resent = by_type(bundle_of(to_fhir, again))
    for kind in ("MedicationRequest", "Patient", "Practitioner", "Organization",
                 "Medication"):
        assert resent[kind]["id"] == newrx[kind]["id"], kind


def test_the_no_namespace_message_maps_like_a_namespaced_one(to_fhir: Mapping) -> None:
    plain = NEWRX.input("ehr_default_ns_atorvastatin").replace(
        b' xmlns="http://www.ncpdp.org/schema/SCRIPT"', b"")
    assert run(to_fhir, plain) == run(to_fhir, NEWRX.input("ehr_default_ns_atorvastatin"))


def test_errors_name_the_element_and_show_no_patient_data(to_fhir: Mapping) -> None:
    checks.check_error(to_fhir, NEWRX.input("cancelrx_not_newrx_error"), "Body",
                       phi=["Lindqvist", "Astrid", "1962"])
    no_prescriber = NEWRX.input("ehr_default_ns_atorvastatin")
    start, end = no_prescriber.index(b"<Prescriber>"), no_prescriber.index(b"</Prescriber>")
    checks.check_error(to_fhir, no_prescriber[:start] + no_prescriber[end + 13:],
                       "NewRx/Prescriber", phi=["Lindqvist", "Okafor"])
    no_drug = NEWRX.input("ehr_default_ns_atorvastatin").replace(
        b"MedicationPrescribed>", b"MedicationOther>")
    checks.check_error(to_fhir, no_drug, "NewRx/MedicationPrescribed",
                       phi=["Lindqvist", "atorvastatin"])


# ---- FHIR -> NewRx ----------------------------------------------------------------------


def _build_input(case: str) -> dict:
    return json.loads(BUILD.input(case))


def test_header_routes_to_the_pharmacy_from_the_prescriber_system(to_newrx: Mapping) -> None:
    message = _script(run(to_newrx, BUILD.input("bundle_structured_sig_metformin")))
    assert (message.value("Header/To"), message.value("Header/To@Qualifier")) == (
        "2209315", "P")
    assert (message.value("Header/From"), message.value("Header/From@Qualifier")) == (
        "PRAIRIEVIEWCLINIC", "C")
    assert message.value("Header/PrescriberOrderNumber") == "PVC-2026-90311"
    assert message.value("Header/SentTime") == "2026-12-05T00:00:00.000Z"
    assert len(message.value("Header/MessageID")) == 32
    unassigned = _script(run(to_newrx, BUILD.input(
        "collection_relative_refs_no_order_number")))
    assert unassigned.value("Header/From") == "CONDUIT"
    assert len(unassigned.value("Header/PrescriberOrderNumber")) <= 35


def test_contained_resources_and_a_codeable_concept(to_newrx: Mapping) -> None:
    message = _script(run(to_newrx, BUILD.input("contained_codeable_concept_interval")))
    prescribed = "NewRx/MedicationPrescribed"
    assert message.value(f"{prescribed}/DrugCoded/DrugDBCode/Code") == "308191"
    assert message.value(f"{prescribed}/DrugCoded/DrugDBCode/Qualifier") == "SCD"
    assert message.value(f"{prescribed}/Substitutions") == "1"
    assert message.value(f"{prescribed}/WrittenDate/DateTime") == "2026-12-03T09:10:05-05:00"
    assert message.value("Header/SentTime") == "2026-12-03T14:10:05.000Z"
    interval = f"{prescribed}/Sig/Instruction/TimingAndDuration/Interval"
    assert message.value(f"{interval}/IntervalNumericValue") == "12"
    assert message.value(f"{interval}/IntervalUnits/Code") == "C25529"
    assert message.value("NewRx/Patient/HumanPatient/Name/LastName") == "Abernathy-Ruiz"


EHR = "ehr_collection_ucum_units_phone_zip4_alias_ncpdpid"


def test_an_ehrs_own_fhir_is_written_scripts_way(to_newrx: Mapping) -> None:
    """A MedicationRequest as an EHR writes it (not as ncpdp-newrx-to-fhir@1 does):
    UCUM units, punctuated phone numbers, ZIP+4, USA, THO's code system URL for the
    pharmacy's NCPDP id, the EHR's own order identifier."""
    message = _script(run(to_newrx, BUILD.input(EHR)))
    assert message.value("Header/To") == "2211445"
    assert message.value("Header/PrescriberOrderNumber") == "ORD-99123"
    human = "NewRx/Patient/HumanPatient"
    assert message.value(f"{human}/CommunicationNumbers/PrimaryTelephone/Number") == (
        "6175550101")
    assert message.value(f"{human}/Address/PostalCode") == "021341234"
    assert message.value(f"{human}/Address/CountryCode") == "US"
    assert message.value("NewRx/Prescriber/NonVeterinarian/CommunicationNumbers/"
                         "WorkTelephone/Number") == "6175550199"
    prescribed = "NewRx/MedicationPrescribed"
    assert message.value(f"{prescribed}/Quantity/QuantityUnitOfMeasure/Code") == "C48542"
    dose = f"{prescribed}/Sig/Instruction/DoseAdministration/Dosage/DoseUnitOfMeasure"
    assert (message.value(f"{dose}/Code"), message.value(f"{dose}/Qualifier")) == (
        "C48542", "DoseUnitOfPresentation")
    # three times every two days is neither SCRIPT Frequency (per one unit) nor Interval
    # (once every n units): it is said by SigText alone, never as "3 a day"
    assert message.find(f"{prescribed}/Sig/Instruction/TimingAndDuration") is None
    assert "three times every 2 days" in message.value(f"{prescribed}/Sig/SigText")


def test_text_with_markup_characters_is_escaped_and_reads_back(to_newrx: Mapping) -> None:
    bundle = _build_input("bundle_structured_sig_metformin")
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "MedicationRequest":
            entry["resource"]["note"] = [{"text": 'Use <b>only</b> "as directed" & call'}]
    message = _script(run(to_newrx, bundle))
    assert message.value("NewRx/MedicationPrescribed/Note") == (
        'Use <b>only</b> "as directed" & call')


def test_build_errors_name_the_element(to_newrx: Mapping) -> None:
    bundle = _build_input("bundle_structured_sig_metformin")
    without_patient = copy.deepcopy(bundle)
    without_patient["entry"] = [e for e in bundle["entry"]
                                if e["resource"]["resourceType"] != "Patient"]
    checks.check_error(to_newrx, without_patient, "MedicationRequest.subject")
    without_prescriber = copy.deepcopy(bundle)
    without_prescriber["entry"] = [e for e in bundle["entry"]
                                   if e["resource"]["resourceType"] != "Practitioner"]
    checks.check_error(to_newrx, without_prescriber, "MedicationRequest.requester",
                       phi=["Thibodeaux"])
    control = copy.deepcopy(bundle)
    for entry in control["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["name"][0]["family"] = "Thibo\x02deaux"
    checks.check_error(to_newrx, control, "MedicationRequest", phi=["Thibo"])
    checks.check_error(to_newrx, {"resourceType": "Bundle", "type": "collection",
                                  "entry": []}, "Bundle.entry")



# ---- what senders leave out never crashes -----------------------------------------------

ROBUST = ("epcs_schedule_ii_oxycodone_signed", "structured_sig_metformin",
          "prefixed_ns_amoxicillin_dispense_as_written")


def _variants(raw: bytes) -> list[bytes]:
    """The message once without each element, and with each text made nonsense: a bad
    date and markup, or digits Python's isdigit() takes and int() refuses ("²")."""
    root = _script(raw).root
    out = []
    for index, element in enumerate(root.iter()):
        if index:  # the root stays
            trimmed = copy.deepcopy(root)
            parents = {child: parent for parent in trimmed.iter() for child in parent}
            target = list(trimmed.iter())[index]
            parents[target].remove(target)
            out.append(ET.tostring(trimmed))
        if element.text and element.text.strip():
            for nonsense in ("9999-99-99T99:99 x<&>", "\u00b2"):
                garbled = copy.deepcopy(root)
                list(garbled.iter())[index].text = nonsense
                out.append(ET.tostring(garbled))
    return out


@pytest.mark.parametrize("case", ROBUST)
def test_any_element_missing_or_garbled_maps_or_fails_naming_an_element(
        to_fhir: Mapping, to_newrx: Mapping, case: str) -> None:
    outcomes = {"output": 0, "error": 0}
    for raw in _variants(NEWRX.input(case)):
        try:
            out = run(to_fhir, raw)
        except ParseError:
            continue  # no Header or Body: the codec refuses it before any mapping
        except MappingError as exc:
            assert exc.field, str(exc)
            outcomes["error"] += 1
            continue
        assert isinstance(out, bytes)
        checks.check_transaction(json.loads(out))
        outcomes["output"] += 1
        try:
            back = run(to_newrx, out)
        except MappingError as exc:
            assert exc.field, str(exc)
            continue
        codec.parse(back)
    assert outcomes["output"] > 50 and outcomes["error"] > 0, outcomes


def test_fhir_of_the_wrong_json_types_maps_what_it_can(to_newrx: Mapping) -> None:
    """A ContactPoint rank sent as a string (or any value of the wrong JSON type) is read
    as absent, never fails the whole prescription."""
    bundle = _build_input(EHR)
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["telecom"] = [{"system": "phone", "value": "617-555-0188",
                                             "rank": "2"},
                                            {"system": "phone", "value": "6175550101",
                                             "rank": 1}]
    message = _script(run(to_newrx, bundle))
    numbers = "NewRx/Patient/HumanPatient/CommunicationNumbers"
    assert message.value(f"{numbers}/PrimaryTelephone/Number") == "6175550101"
    assert message.value(f"{numbers}/OtherTelephone/Number") == "6175550188"


def test_an_impossible_date_is_left_out_not_passed_on(to_fhir: Mapping) -> None:
    raw = NEWRX.input("ehr_default_ns_atorvastatin").replace(
        b"<Date>1962-07-14</Date>", b"<Date>1962-02-31</Date>")
    found = by_type(bundle_of(to_fhir, raw))
    assert "birthDate" not in found["Patient"]
    checks.check_valid(found["Patient"])


def test_a_drug_without_a_description_fails_naming_it(to_newrx: Mapping) -> None:
    bundle = _build_input("bundle_structured_sig_metformin")
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Medication":
            entry["resource"]["code"] = {"coding": [
                {"system": ncpdp.RXNORM, "code": "861007"}]}
    checks.check_error(to_newrx, bundle, "MedicationRequest.medication[x]")

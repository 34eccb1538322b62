"""ncpdp-newrx-to-fhir@1: an NCPDP SCRIPT NewRx (2017071 or 2023011; any namespace or
prefix) as a FHIR R4 transaction Bundle: MedicationRequest, Patient, Practitioner (the
prescriber), Organization (the pharmacy) and Medication.

A message that is not a NewRx fails naming Body; a NewRx without a patient (or a
patient without a name) fails naming NewRx/Patient, without a prescriber
NewRx/Prescriber, without MedicationPrescribed NewRx/MedicationPrescribed.

Choices a receiver will notice:
- Patient, Practitioner, Organization and Medication come from
  `engine.maplib.ncpdp_fhir`, with ids scoped "ncpdp": the same patient, prescriber,
  pharmacy and drug are the same resources from every SCRIPT message.
- MedicationRequest: status active, intent order; id from the prescriber order number
  within its prescriber (`ncpdp_fhir.request_id`), so CancelRx and RxFill reach it;
  identifier Header/PrescriberOrderNumber (type PLAC, assigner the Header/From
  system) and Header/MessageID (urn:conduit:id:ncpdp:MessageID); subject, requester,
  medicationReference (always a Medication resource, also for a compound or a
  free-text drug without codes: its code is then the description only); authoredOn
  WrittenDate (a date, or a dateTime when sent with a zone).
- dosageInstruction: one Dosage, text SigText always; dose, route, method and
  frequency from Sig/Instruction where present (`ncpdp_fhir.dosage`).
- dispenseRequest: quantity (NCI unit code, CodeListQualifier kept in an extension),
  numberOfRepeatsAllowed NumberOfRefills, expectedSupplyDuration DaysSupply in days
  (UCUM d), performer the pharmacy Organization.
- substitution: Substitutions 0 (substitution allowed) -> allowedBoolean true, 1
  (substitution not allowed by the prescriber, dispense as written) -> allowedBoolean
  false; any other code -> allowedCodeableConcept in urn:conduit:code:ncpdp:Substitutions.
- note: MedicationPrescribed/Note; reasonCode: Diagnosis Primary and Secondary (Code
  with Qualifier ABF ICD-10-CM, LD SNOMED CT, DX ICD-9-CM, else
  urn:conduit:code:ncpdp:<Qualifier>; the Description as display and text).
- Controlled substances: DrugCoded/DEASchedule (NCI code) is the Medication extension
  urn:conduit:fhir:extension:ncpdp-dea-schedule (not an extra coding in
  Medication.code: a schedule is not a name of the drug); the prescriber's DEA number
  is a Practitioner identifier (urn:oid:2.16.840.1.113883.4.814). Header
  DigitalSignature is not mapped (it signs the SCRIPT message, not the FHIR one; the
  engine keeps the message itself byte for byte).
- Bundle.timestamp: Header/SentTime when it has a time and a zone.
- Not mapped: SenderSoftware, Supervisor, Observation, PriorAuthorization, benefits,
  DrugUseEvaluation, a second Sig/Instruction (its text is in SigText).
"""

from __future__ import annotations

from typing import Any

from engine.errors import MappingError
from engine.formats.ncpdp.message import ScriptMessage
from engine.maplib import ncpdp_fhir as ncpdp
from engine.maplib.fhir import compact, reference, transaction
from engine.mapping import mapping


@mapping("ncpdp-newrx-to-fhir@1", accepts="ncpdp", emits="application/fhir+json")
def newrx_to_fhir(message: ScriptMessage) -> dict:
    """The NewRx as a MedicationRequest with its Patient, prescriber, pharmacy and drug."""
    if message.message_type != "NewRx":
        raise MappingError(f"the message is a {message.message_type or 'nothing'}, "
                           "not a NewRx", field="Body")
    rx = message.body
    assert rx is not None
    patient = ncpdp.patient(rx.find("Patient"))
    if patient is None:
        raise MappingError("the NewRx has no patient with a name", field="NewRx/Patient")
    prescriber = ncpdp.practitioner(rx.find("Prescriber"))
    if prescriber is None:
        raise MappingError("the NewRx has no prescriber", field="NewRx/Prescriber")
    drug = rx.find("MedicationPrescribed")
    medication = ncpdp.medication(drug)
    if drug is None or medication is None:
        raise MappingError("the NewRx has no prescribed drug",
                           field="NewRx/MedicationPrescribed")
    pharmacy = ncpdp.pharmacy(rx.find("Pharmacy"))
    order_number = message.value("Header/PrescriberOrderNumber")
    message_id = message.value("Header/MessageID")
    request = compact({
        "resourceType": "MedicationRequest",
        "id": ncpdp.request_id(order_number or message_id, prescriber),
        "identifier": _identifiers(message, order_number, message_id),
        "status": "active", "intent": "order",
        "medicationReference": reference(medication),
        "subject": reference(patient),
        "authoredOn": ncpdp.date_of(drug.find("WrittenDate")),
        "requester": reference(prescriber),
        "reasonCode": ncpdp.diagnoses(drug),
        "note": [{"text": n} for n in (ncpdp.text(x) for x in drug.findall("Note")) if n],
        "dosageInstruction": [d for d in [ncpdp.dosage(drug.find("Sig"))] if d],
        "dispenseRequest": ncpdp.dispense_request(drug, pharmacy),
        "substitution": ncpdp.substitution(ncpdp.text(drug, "Substitutions")),
    })
    resources = [r for r in (request, patient, prescriber, pharmacy, medication) if r]
    return transaction(resources, _instant(message.value("Header/SentTime")))


def _identifiers(message: ScriptMessage, order_number: str, message_id: str
                 ) -> list[dict[str, Any]]:
    out = []
    if order_number:
        out.append(ncpdp.order_identifier(order_number, message.value("Header/From")))
    if message_id:
        out.append({"system": ncpdp.ID_LOCAL + "MessageID", "value": message_id})
    return out


def _instant(sent: str) -> str | None:
    found = ncpdp.date_time(sent)
    return found if found and "T" in found else None

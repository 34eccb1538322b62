"""What the SCRIPT messages about an existing order share when they become FHIR
(CancelRx, CancelRxResponse, RxFill, RxRenewalRequest/Response), on top of
`ncpdp_fhir`'s patient, prescriber, pharmacy and drug:

- which order a message is about (`order_number`): Header/PrescriberOrderNumber, else
  RelatesToMessageID when that names the NewRx (a NewRx without an order number gets
  its MedicationRequest id from its own MessageID, so the answer meets it);
- the MedicationRequest a message describes (`medication_request`), written the way
  ncpdp-newrx-to-fhir@1 writes a NewRx's, so a CancelRx that rewrites it keeps what the
  NewRx said;
- the Task a request and its response share (`task_id`): the request's MessageID within
  the system that sent it (Header/From of the request, Header/To of the response,
  whose RelatesToMessageID is that MessageID);
- a response's decision (`decision`): Approved, ApprovedWithChanges, Denied, Replace,
  Pending, Validated with its Note, ReasonCode and DenialReason.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from engine.errors import MappingError
from engine.formats.ncpdp.message import ScriptMessage
from engine.maplib import ncpdp_fhir as ncpdp
from engine.maplib.fhir import compact, reference, resource_id
from engine.maplib.ncpdp_scope import order_literal, prescriber_system

TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
MESSAGE_ID = ncpdp.ID_LOCAL + "MessageID"
RX_REFERENCE = ncpdp.ID_LOCAL + "RxReferenceNumber"
REASON_CODE = ncpdp.CODE_LOCAL + "ReasonCode"
RESPONSE_CODE = ncpdp.CODE_LOCAL + "Response"  # + the response element's name


@dataclass(frozen=True)
class Parties:
    """The people and places a SCRIPT message names, as FHIR (None when absent)."""

    patient: dict[str, Any] | None
    prescriber: dict[str, Any] | None
    pharmacy: dict[str, Any] | None

    def resources(self) -> list[dict[str, Any]]:
        return [r for r in (self.patient, self.prescriber, self.pharmacy) if r]


def parties(body: ET.Element, assigner: str = "") -> Parties:
    """The patient, prescriber and pharmacy; with an `assigner` (the prescriber's
    system, version 2 mappings) their per-sender identifiers are keyed within it."""
    return Parties(ncpdp.patient(body.find("Patient"), assigner=assigner),
                   ncpdp.practitioner(body.find("Prescriber"), assigner=assigner),
                   ncpdp.pharmacy(body.find("Pharmacy"), assigner=assigner))


def named_as_written(patient: dict[str, Any] | None) -> bool:
    """Whether a later message's patient has the id its NewRx wrote: only one keyed on
    the EHR's record number is sure to. Without it the id comes from another identifier
    or the name and birth date, which the NewRx (sent with the MRN) did not use, and a
    reference to it would name a Patient no server holds (refused where references are
    checked); the order the message names leads to the patient instead."""
    mrn = ncpdp.ID_LOCAL + "MedicalRecordIdentificationNumberEHR"
    return patient is not None and any(
        i.get("system") == mrn for i in patient.get("identifier", []))


def assigner(message: ScriptMessage, version: int) -> str:
    """The system a mapping version keys per-sender ids within: none for version 1
    (the MRN alone), the prescriber's system from version 2 (`ncpdp_scope`)."""
    return prescriber_system(message) if version >= 2 else ""


def order_number(message: ScriptMessage, *, relates_names_order: bool) -> str:
    """The prescriber's order number; else, for a message whose RelatesToMessageID names
    the NewRx (CancelRx, RxFill), that MessageID; "" when neither is sent."""
    number = message.value("Header/PrescriberOrderNumber")
    if number or not relates_names_order:
        return number
    return message.value("Header/RelatesToMessageID")


def order_reference(number: str, prescriber: dict[str, Any] | None) -> dict[str, Any] | None:
    """The order's MedicationRequest (the one ncpdp-newrx-to-fhir@1 PUT): a literal
    reference with the order number as identifier when the prescriber is named (its id
    needs the prescriber), else a logical reference by the order number alone; None
    without a number."""
    if not number:
        return None
    identifier = {"system": ncpdp.ID_LOCAL + "PrescriberOrderNumber", "value": number}
    if prescriber is None:
        return {"type": "MedicationRequest", "identifier": identifier}
    return {"reference": f"MedicationRequest/{ncpdp.request_id(number, prescriber)}",
            "type": "MedicationRequest", "identifier": identifier}


def order_by_number(number: str, system: str) -> dict[str, Any]:
    """A logical reference to the order by its PrescriberOrderNumber as `system`
    numbered it: what a message that does not name the NewRx's MessageID can say."""
    return {"type": "MedicationRequest",
            "identifier": ncpdp.order_identifier(number, system)}


def order_reference_v2(message: ScriptMessage, *, relates_names_order: bool
                       ) -> dict[str, Any] | None:
    """The order a message is about, as the version 2 mappings name it: a literal
    reference to the id ncpdp-newrx-to-fhir@2 gave it when RelatesToMessageID names the
    NewRx (CancelRx, RxFill), whatever order number the message carries; else a logical
    reference by PrescriberOrderNumber (its id cannot be known from the number); None
    when neither is sent."""
    system = prescriber_system(message)
    relates = message.value("Header/RelatesToMessageID") if relates_names_order else ""
    if relates:
        return order_literal(system, relates)
    number = message.value("Header/PrescriberOrderNumber")
    return order_by_number(number, system) if number else None


def message_identifier(message: ScriptMessage) -> dict[str, Any] | None:
    value = message.value("Header/MessageID")
    return {"system": MESSAGE_ID, "value": value} if value else None


def task_id(system: str, request_message_id: str) -> str:
    """The Task of a request (CancelRx, RxRenewalRequest) and of its response: the
    request's MessageID within its sending system."""
    return resource_id("Task", ncpdp.SCOPE, {"system": MESSAGE_ID,
                                             "value": f"{system}|{request_message_id}"})


def proposal_id(system: str, request_message_id: str) -> str:
    """The MedicationRequest a pharmacy proposes in an RxRenewalRequest: like the Task,
    by the request's MessageID within the pharmacy's system."""
    return resource_id("MedicationRequest", ncpdp.SCOPE, {
        "system": MESSAGE_ID, "value": f"proposal|{system}|{request_message_id}"})


def instant(sent: str) -> str | None:
    """Header/SentTime as an instant when it has a time and a zone."""
    found = ncpdp.date_time(sent)
    return found if found and "T" in found else None


def medication_request(message: ScriptMessage, drug: ET.Element, who: Parties,
                       medication: dict[str, Any], *, rid: str, status: str,
                       intent: str, identifiers: list[dict[str, Any]] | None = None
                       ) -> dict[str, Any]:
    """The MedicationRequest a MedicationPrescribed (or Dispensed) describes, with the
    same elements and rules ncpdp-newrx-to-fhir@1 uses: dosage from Sig, dispense
    request (quantity, refills, days supply, the pharmacy), substitution, notes,
    diagnoses. `identifiers` default to the order number (PLAC, assigner Header/From)."""
    number = message.value("Header/PrescriberOrderNumber")
    if identifiers is None:
        identifiers = [ncpdp.order_identifier(number, message.value("Header/From"))] \
            if number else []
    return compact({
        "resourceType": "MedicationRequest", "id": rid, "identifier": identifiers,
        "status": status, "intent": intent,
        "medicationReference": reference(medication),
        "subject": reference(who.patient) if who.patient else None,
        "authoredOn": ncpdp.date_of(drug.find("WrittenDate")),
        "requester": reference(who.prescriber) if who.prescriber else None,
        "reasonCode": ncpdp.diagnoses(drug),
        "note": [{"text": n} for n in (ncpdp.text(x) for x in drug.findall("Note")) if n],
        "dosageInstruction": [d for d in [ncpdp.dosage(drug.find("Sig"))] if d],
        "dispenseRequest": ncpdp.dispense_request(drug, who.pharmacy),
        "substitution": ncpdp.substitution(ncpdp.text(drug, "Substitutions")),
    })


@dataclass(frozen=True)
class Decision:
    """A response's Response choice: `kind` its element (Approved, Denied ...), the
    Note, and for a denial the ReasonCode(s) and DenialReason."""

    kind: str
    note: str
    reasons: tuple[str, ...]
    denial: str

    def reason(self) -> dict[str, Any] | None:
        """ReasonCode and DenialReason as a CodeableConcept (Task.statusReason)."""
        return compact({"coding": [{"system": REASON_CODE, "code": c} for c in self.reasons],
                        "text": self.denial}) or None

    def business_status(self, message_type: str) -> dict[str, Any]:
        return {"coding": [{"system": f"{RESPONSE_CODE}:{message_type}",
                            "code": self.kind}], "text": self.kind}


def decision(body: ET.Element) -> Decision | None:
    """Response/<choice> of a CancelRxResponse, RxRenewalResponse or RxChangeResponse;
    None when the Response holds no element."""
    response = body.find("Response")
    choice = next((c for c in response if isinstance(c.tag, str)), None) \
        if response is not None else None
    if choice is None:
        return None
    reasons = tuple(r for r in (ncpdp.text(x) for x in choice.findall("ReasonCode")) if r)
    return Decision(choice.tag, ncpdp.text(choice, "Note"), reasons,
                    ncpdp.text(choice, "DenialReason"))


def answered(message: ScriptMessage) -> tuple[str, Decision]:
    """What a response (CancelRxResponse, RxRenewalResponse) answers and decides; a
    MappingError naming the element when it says neither."""
    kind = message.message_type
    relates = message.value("Header/RelatesToMessageID")
    if not relates:
        raise MappingError(f"the {kind} does not say which message it answers",
                           field="Header/RelatesToMessageID")
    body = message.body
    answer = decision(body) if body is not None else None
    if answer is None:
        raise MappingError(f"the {kind} holds no decision (Approved, Denied ...)",
                           field=f"{kind}/Response")
    return relates, answer

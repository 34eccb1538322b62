"""The logic of ncpdp-newrx-to-fhir@1 and @2 (a SCRIPT NewRx as a FHIR transaction
Bundle), importable so ncpdp-to-fhir can dispatch to it: a mapping file cannot import
another. `version` picks a released version's rules, so @1's output never changes. The
choices a receiver notices are documented in mappings/ncpdp-newrx-to-fhir/v<N>.py.
"""

from __future__ import annotations

from typing import Any

from engine.errors import MappingError
from engine.formats.ncpdp.message import ScriptMessage
from engine.maplib import ncpdp_fhir as ncpdp
from engine.maplib import ncpdp_orders as orders
from engine.maplib.fhir import compact, reference, transaction
from engine.maplib.ncpdp_scope import order_id


def newrx_to_fhir(message: ScriptMessage, version: int = 1) -> dict:
    """The NewRx as a MedicationRequest with its Patient, prescriber, pharmacy and drug,
    as ncpdp-newrx-to-fhir@<version> writes it (2: per-sender ids within the sender)."""
    if message.message_type != "NewRx":
        raise MappingError(f"the message is a {message.message_type or 'nothing'}, "
                           "not a NewRx", field="Body")
    rx = message.body
    assert rx is not None
    assigner = orders.assigner(message, version)
    patient = ncpdp.patient(rx.find("Patient"), assigner=assigner)
    if patient is None:
        raise MappingError("the NewRx has no patient with a name", field="NewRx/Patient")
    prescriber = ncpdp.practitioner(rx.find("Prescriber"), assigner=assigner)
    if prescriber is None:
        raise MappingError("the NewRx has no prescriber", field="NewRx/Prescriber")
    drug = rx.find("MedicationPrescribed")
    medication = ncpdp.medication(drug)
    if drug is None or medication is None:
        raise MappingError("the NewRx has no prescribed drug",
                           field="NewRx/MedicationPrescribed")
    pharmacy = ncpdp.pharmacy(rx.find("Pharmacy"), assigner=assigner)
    order_number = message.value("Header/PrescriberOrderNumber")
    message_id = message.value("Header/MessageID")
    request = compact({
        "resourceType": "MedicationRequest",
        "id": _request_id(order_number, message_id, prescriber, assigner),
        "identifier": _identifiers(message, order_number, message_id, assigner),
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


def _request_id(order_number: str, message_id: str, prescriber: dict[str, Any],
                assigner: str) -> str:
    """@1: the order number (else the MessageID) within the prescriber; @2 (with an
    assigner): the MessageID within the prescriber's system, which a CancelRx or RxFill
    names in RelatesToMessageID whatever order number it carries."""
    if assigner:
        return order_id(assigner, message_id)
    return ncpdp.request_id(order_number or message_id, prescriber)


def _identifiers(message: ScriptMessage, order_number: str, message_id: str,
                 assigner: str = "") -> list[dict[str, Any]]:
    out = []
    if order_number:
        # assigner: Header/From as @1 wrote it, which fhir-to-ncpdp-newrx reads back
        out.append(ncpdp.order_identifier(order_number, message.value("Header/From")))
    if message_id:
        out.append(compact({"system": ncpdp.ID_LOCAL + "MessageID", "value": message_id,
                            "assigner": {"display": assigner} if assigner else None}))
    return out


def _instant(sent: str) -> str | None:
    found = ncpdp.date_time(sent)
    return found if found and "T" in found else None

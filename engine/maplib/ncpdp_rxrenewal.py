"""The logic of ncpdp-rxrenewal-to-fhir@1 and @2 (a SCRIPT RxRenewalRequest or
RxRenewalResponse as a FHIR Task-based renewal Bundle), importable so ncpdp-to-fhir can
dispatch to it; `version` picks a released version's rules. The choices a receiver
notices are documented in mappings/ncpdp-rxrenewal-to-fhir/v<N>.py.
"""

from __future__ import annotations

from typing import Any

from engine.errors import MappingError
from engine.formats.ncpdp.message import ScriptMessage
from engine.maplib import ncpdp_fhir as ncpdp
from engine.maplib import ncpdp_orders as orders
from engine.maplib.fhir import compact, reference, transaction
from engine.maplib.fhir_patch import held_by_server, literal, patch_entry, set_ops, with_entries
from engine.maplib.ncpdp_scope import order_id, prescriber_system

RENEWAL = {"coding": [{"system": orders.TASK_CODE, "code": "fulfill",
                       "display": "Fulfill the focal request"}],
           "text": "Prescription renewal request"}
APPROVED = frozenset({"Approved", "ApprovedWithChanges", "Replace"})
STATUS = {"Denied": "rejected", "Pending": "accepted"}


def rxrenewal_to_fhir(message: ScriptMessage, version: int = 1) -> dict:
    """A renewal request as a proposal and its Task; a response as that Task decided;
    by ncpdp-rxrenewal-to-fhir@<version>'s rules."""
    if message.message_type == "RxRenewalRequest":
        return _request(message, version)
    if message.message_type == "RxRenewalResponse":
        return _response(message, version)
    raise MappingError(f"the message is a {message.message_type or 'nothing'}, not an "
                       "RxRenewalRequest or RxRenewalResponse", field="Body")


def _who(message: ScriptMessage, version: int) -> orders.Parties:
    assert message.body is not None
    who = orders.parties(message.body, orders.assigner(message, version))
    if who.patient is None:
        raise MappingError(f"the {message.message_type} has no patient with a name",
                           field=f"{message.message_type}/Patient")
    return who


def _request(message: ScriptMessage, version: int) -> dict:
    body = message.body
    assert body is not None
    who = _who(message, version)
    drug = body.find("MedicationPrescribed")
    if drug is None:
        drug = body.find("MedicationDispensed")
    medication = ncpdp.medication(drug)
    if drug is None or medication is None:
        raise MappingError("the RxRenewalRequest names no drug",
                           field="RxRenewalRequest/MedicationDispensed")
    pharmacy_system = message.value("Header/From")
    message_id = message.value("Header/MessageID")
    prior = orders.order_reference_v2(message, relates_names_order=False) \
        if version >= 2 else orders.order_reference(
            message.value("Header/PrescriberOrderNumber"), who.prescriber)
    proposal = orders.medication_request(
        message, drug, who, medication,
        rid=orders.proposal_id(pharmacy_system, message_id), status="active",
        intent="proposal", identifiers=_identifiers(message))
    proposal["requester"] = reference(who.pharmacy) if who.pharmacy else \
        proposal.get("requester")
    requested = ncpdp.text(body, "MedicationDispensed/PharmacyRequestedRefills")
    if requested.isdecimal():
        proposal.setdefault("dispenseRequest", {})["numberOfRepeatsAllowed"] = int(requested)
    if prior:
        proposal["priorPrescription"] = prior
    sent = orders.instant(message.value("Header/SentTime"))
    if sent:
        proposal["authoredOn"] = sent
    task = compact({
        "resourceType": "Task", "id": orders.task_id(pharmacy_system, message_id),
        "identifier": _identifiers(message), "basedOn": [prior] if prior else [],
        "status": "requested", "intent": "order", "code": RENEWAL,
        "focus": reference(proposal),
        "for": reference(who.patient) if who.patient else None,
        "authoredOn": sent, "lastModified": sent,
        "requester": reference(who.pharmacy) if who.pharmacy else None,
        "owner": reference(who.prescriber) if who.prescriber else None,
    })
    written = [task, compact(proposal), *who.resources(), medication]
    if version >= 2:  # the NewRx wrote the patient and prescriber: name, do not rewrite
        written = held_by_server(written, who.patient, who.prescriber)
    return transaction(written, sent)


def _identifiers(message: ScriptMessage) -> list[dict[str, Any]]:
    rx_number = message.value("Header/RxReferenceNumber")
    identifier = orders.message_identifier(message)
    return ([identifier] if identifier else []) + (
        [{"system": orders.RX_REFERENCE, "value": rx_number}] if rx_number else [])


def _response(message: ScriptMessage, version: int) -> dict:
    body = message.body
    assert body is not None
    relates, answer = orders.answered(message)
    who = _who(message, version)
    pharmacy_system = message.value("Header/To")
    proposal_ref = {"reference": "MedicationRequest/"
                    + orders.proposal_id(pharmacy_system, relates)}
    renewed = _renewed(message, who, proposal_ref, version) \
        if answer.kind in APPROVED else None
    status = "completed" if answer.kind in APPROVED else STATUS.get(answer.kind, "rejected")
    sent = orders.instant(message.value("Header/SentTime"))
    task = compact({
        "resourceType": "Task", "id": orders.task_id(pharmacy_system, relates),
        "identifier": [{"system": orders.MESSAGE_ID, "value": relates}],
        "status": status,
        "statusReason": answer.reason() if status == "rejected" else None,
        "businessStatus": answer.business_status("RxRenewalResponse"),
        "intent": "order", "code": RENEWAL, "focus": proposal_ref,
        "for": reference(who.patient) if who.patient else None, "lastModified": sent,
        "requester": reference(who.pharmacy) if who.pharmacy else None,
        "owner": reference(who.prescriber) if who.prescriber else None,
        "note": [{"text": answer.note}] if answer.note else [],
        "output": [{"type": {"text": "renewed prescription"},
                    "valueReference": reference(renewed[0])}] if renewed else [],
    })
    if version >= 2:
        return _decided(task, renewed or [], who, sent)
    return transaction([task, *(renewed or []), *who.resources()], sent)


def _decided(task: dict[str, Any], renewed: list[dict[str, Any]], who: orders.Parties,
             sent: str | None) -> dict:
    """@2: the request's Task decided by a PATCH of what the response says (so it keeps
    what the request wrote), the renewed order and its drug written whole (this
    response is their source), the patient, prescriber and pharmacy only named."""
    written = held_by_server([*renewed, *who.resources()], who.patient, who.prescriber,
                             who.pharmacy)
    output = [{"type": {"text": "renewed prescription"},
               "valueReference": literal("MedicationRequest", renewed[0]["id"])}] \
        if renewed else None
    decided = patch_entry(f"Task/{task['id']}", set_ops({
        "status": task["status"], "statusReason": task.get("statusReason"),
        "businessStatus": task["businessStatus"], "lastModified": sent,
        "note": task.get("note"), "output": output}))
    return with_entries(transaction(written, sent), [decided])


def _renewed(message: ScriptMessage, who: orders.Parties, proposal: dict[str, Any],
             version: int) -> list[dict[str, Any]] | None:
    """The renewed order and its drug; None when the response carries no prescription.
    @2 gives the order the id a NewRx's gets (`ncpdp_scope.order_id`: this response's
    MessageID within the prescriber's system), which an RxFill or CancelRx names in
    RelatesToMessageID."""
    body = message.body
    assert body is not None
    drug = body.find("MedicationPrescribed")
    medication = ncpdp.medication(drug)
    if drug is None or medication is None:
        return None
    if who.prescriber is None:
        raise MappingError("the approval names no prescriber for the renewed order",
                           field="RxRenewalResponse/Prescriber")
    number = message.value("Header/PrescriberOrderNumber") or \
        message.value("Header/MessageID")
    identifier = orders.message_identifier(message)
    identifiers = ([ncpdp.order_identifier(number, message.value("Header/From"))]
                   if message.value("Header/PrescriberOrderNumber") else []) + (
                       [identifier] if identifier else [])
    rid = order_id(prescriber_system(message), message.value("Header/MessageID")) \
        if version >= 2 else ncpdp.request_id(number, who.prescriber)
    request = orders.medication_request(
        message, drug, who, medication, rid=rid, status="active", intent="order",
        identifiers=identifiers)
    request["basedOn"] = [proposal]
    return [request, medication]

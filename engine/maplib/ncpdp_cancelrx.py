"""The logic of ncpdp-cancelrx-to-fhir@1 (a SCRIPT CancelRx or CancelRxResponse as a FHIR
transaction Bundle), importable so ncpdp-to-fhir@1 can dispatch to it; @2 is
`ncpdp_cancelrx_v2`. The choices a receiver notices are documented in
mappings/ncpdp-cancelrx-to-fhir/v1.py.
"""

from __future__ import annotations

from typing import Any

from engine.errors import MappingError
from engine.formats.ncpdp.message import ScriptMessage
from engine.maplib import ncpdp_fhir as ncpdp
from engine.maplib import ncpdp_orders as orders
from engine.maplib.fhir import compact, reference, transaction

ABORT = {"coding": [{"system": orders.TASK_CODE, "code": "abort",
                     "display": "Mark the focal resource as no longer active"}],
         "text": "Cancel prescription"}
RESPONSE_STATUS = {"Approved": "completed", "Denied": "rejected"}


def cancelrx_to_fhir(message: ScriptMessage) -> dict:
    """A CancelRx as its cancelled MedicationRequest and a requested Task; a
    CancelRxResponse as that Task completed or rejected."""
    if message.message_type == "CancelRx":
        return _cancel(message)
    if message.message_type == "CancelRxResponse":
        return _response(message)
    raise MappingError(f"the message is a {message.message_type or 'nothing'}, not a "
                       "CancelRx or CancelRxResponse", field="Body")


def _cancel(message: ScriptMessage) -> dict:
    body = message.body
    assert body is not None
    who = orders.parties(body)
    if who.patient is None:
        raise MappingError("the CancelRx has no patient with a name", field="CancelRx/Patient")
    if who.prescriber is None:
        raise MappingError("the CancelRx has no prescriber", field="CancelRx/Prescriber")
    drug = body.find("MedicationPrescribed")
    medication = ncpdp.medication(drug)
    if drug is None or medication is None:
        raise MappingError("the CancelRx names no prescribed drug",
                           field="CancelRx/MedicationPrescribed")
    number = orders.order_number(message, relates_names_order=True)
    if not number:
        raise MappingError("the CancelRx names no order (neither an order number nor the "
                           "NewRx's RelatesToMessageID)", field="Header/PrescriberOrderNumber")
    request = orders.medication_request(
        message, drug, who, medication, rid=ncpdp.request_id(number, who.prescriber),
        status="cancelled", intent="order")
    sent = orders.instant(message.value("Header/SentTime"))
    identifier = orders.message_identifier(message)
    task = compact({
        "resourceType": "Task",
        "id": orders.task_id(message.value("Header/From"), message.value("Header/MessageID")),
        "identifier": [identifier] if identifier else [],
        "status": "requested", "intent": "order", "code": ABORT,
        "focus": reference(request), "for": reference(who.patient),
        "authoredOn": sent, "lastModified": sent,
        "requester": reference(who.prescriber),
        "owner": reference(who.pharmacy) if who.pharmacy else None,
    })
    return transaction([task, request, *who.resources(), medication], sent)


def _response(message: ScriptMessage) -> dict:
    body = message.body
    assert body is not None
    relates, answer = orders.answered(message)
    who = orders.parties(body)
    focus = orders.order_reference(message.value("Header/PrescriberOrderNumber"),
                                   who.prescriber)
    status = RESPONSE_STATUS.get(answer.kind, "rejected" if "Denied" in answer.kind
                                 else "completed")
    task: dict[str, Any] = compact({
        "resourceType": "Task",
        "id": orders.task_id(message.value("Header/To"), relates),
        "identifier": [{"system": orders.MESSAGE_ID, "value": relates}],
        "status": status,
        "statusReason": answer.reason() if status == "rejected" else None,
        "businessStatus": answer.business_status("CancelRxResponse"),
        "intent": "order", "code": ABORT, "focus": focus,
        "for": reference(who.patient) if who.patient else None,
        "lastModified": orders.instant(message.value("Header/SentTime")),
        "requester": reference(who.prescriber) if who.prescriber else None,
        "owner": reference(who.pharmacy) if who.pharmacy else None,
        "note": [{"text": answer.note}] if answer.note else [],
    })
    return transaction([task, *who.resources()],
                       orders.instant(message.value("Header/SentTime")))

"""The logic of ncpdp-cancelrx-to-fhir@2, importable so ncpdp-to-fhir@2 can dispatch to
it. It differs from @1 (`ncpdp_cancelrx`) in which order a CancelRx reaches: the one
whose NewRx its RelatesToMessageID names (the id ncpdp-newrx-to-fhir@2 derived from that
MessageID within the prescriber's system), never one made up from a number it cannot
place. The choices a receiver notices are documented in
mappings/ncpdp-cancelrx-to-fhir/v2.py.
"""

from __future__ import annotations

from typing import Any

from engine.errors import MappingError
from engine.formats.ncpdp.message import ScriptMessage
from engine.maplib import ncpdp_fhir as ncpdp
from engine.maplib import ncpdp_orders as orders
from engine.maplib.fhir import compact, reference, transaction
from engine.maplib.ncpdp_cancelrx import ABORT, RESPONSE_STATUS
from engine.maplib.ncpdp_scope import order_id, prescriber_system


def cancelrx_to_fhir(message: ScriptMessage) -> dict:
    """A CancelRx as a cancel of the NewRx's order and a requested Task; a
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
    system = prescriber_system(message)
    who = orders.parties(body, system)
    if who.patient is None:
        raise MappingError("the CancelRx has no patient with a name", field="CancelRx/Patient")
    if who.prescriber is None:
        raise MappingError("the CancelRx has no prescriber", field="CancelRx/Prescriber")
    drug = body.find("MedicationPrescribed")
    medication = ncpdp.medication(drug)
    if drug is None or medication is None:
        raise MappingError("the CancelRx names no prescribed drug",
                           field="CancelRx/MedicationPrescribed")
    relates = message.value("Header/RelatesToMessageID")
    number = message.value("Header/PrescriberOrderNumber")
    if not relates and not number:
        raise MappingError("the CancelRx names no order (neither an order number nor the "
                           "NewRx's RelatesToMessageID)", field="Header/PrescriberOrderNumber")
    # Without RelatesToMessageID the order's id cannot be known (it is derived from the
    # NewRx's MessageID): no MedicationRequest is written rather than one at a made-up
    # id, and the Task names the order by its number. Not a warning: a strict channel
    # fails a mapping that warns, and would then withhold the CancelRx from the pharmacy.
    request = orders.medication_request(
        message, drug, who, medication, rid=order_id(system, relates), status="cancelled",
        intent="order", identifiers=[{"system": orders.MESSAGE_ID, "value": relates,
                                      "assigner": {"display": system}}]) if relates else None
    focus = reference(request) if request else orders.order_by_number(number, system)
    sent = orders.instant(message.value("Header/SentTime"))
    task = _task(message, who, focus, sent)
    return transaction([task, *([request] if request else []), *who.resources(),
                        medication], sent)


def _task(message: ScriptMessage, who: orders.Parties, focus: dict[str, Any],
          sent: str | None) -> dict[str, Any]:
    identifier = orders.message_identifier(message)
    return compact({
        "resourceType": "Task",
        "id": orders.task_id(message.value("Header/From"), message.value("Header/MessageID")),
        "identifier": [identifier] if identifier else [],
        "status": "requested", "intent": "order", "code": ABORT,
        "focus": focus, "for": reference(who.patient),
        "authoredOn": sent, "lastModified": sent,
        "requester": reference(who.prescriber),
        "owner": reference(who.pharmacy) if who.pharmacy else None,
    })


def _response(message: ScriptMessage) -> dict:
    body = message.body
    assert body is not None
    relates, answer = orders.answered(message)
    who = orders.parties(body, prescriber_system(message))
    focus = orders.order_reference_v2(message, relates_names_order=False)
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

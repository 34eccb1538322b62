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
from engine.maplib.fhir import compact, transaction
from engine.maplib.fhir_patch import literal, patch_entry, search_token, set_ops, with_entries
from engine.maplib.ncpdp_cancelrx import ABORT, RESPONSE_STATUS
from engine.maplib.ncpdp_scope import order_id, order_literal, prescriber_system


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
    if ncpdp.medication(body.find("MedicationPrescribed")) is None:
        raise MappingError("the CancelRx names no prescribed drug",
                           field="CancelRx/MedicationPrescribed")
    relates = message.value("Header/RelatesToMessageID")
    number = message.value("Header/PrescriberOrderNumber")
    if not relates and not number:
        raise MappingError("the CancelRx names no order (neither an order number nor the "
                           "NewRx's RelatesToMessageID)", field="Header/PrescriberOrderNumber")
    target = _order_url(relates, number, system)
    focus = order_literal(system, relates) if relates \
        else orders.order_by_number(number, system)
    sent = orders.instant(message.value("Header/SentTime"))
    cancel = patch_entry(target, set_ops({"status": "cancelled"}))
    return with_entries(transaction([_task(message, who, focus, sent)], sent), [cancel])


def _order_url(relates: str, number: str, system: str) -> str:
    """The order to cancel: by the id its NewRx's MessageID gives (RelatesToMessageID);
    without one, the server's one MedicationRequest with this PrescriberOrderNumber (a
    conditional PATCH: its id cannot be derived from the number, and the server refuses
    when none or several match rather than cancel another order). Not narrowed by the
    patient: a CancelRx that identifies the patient otherwise than the NewRx did (no
    MRN: keyed on the name and birth date) would name a Patient that does not exist,
    match nothing, and leave the order active."""
    if relates:
        return f"MedicationRequest/{order_id(system, relates)}"
    token = search_token(ncpdp.ID_LOCAL + "PrescriberOrderNumber", number)
    return f"MedicationRequest?identifier={token}"


def _task(message: ScriptMessage, who: orders.Parties, focus: dict[str, Any],
          sent: str | None) -> dict[str, Any]:
    """The cancel request to the pharmacy: written whole (the CancelRx is its source),
    naming the patient, prescriber and pharmacy the NewRx wrote, not rewriting them."""
    identifier = orders.message_identifier(message)
    assert who.patient is not None and who.prescriber is not None
    return compact({
        "resourceType": "Task",
        "id": orders.task_id(message.value("Header/From"), message.value("Header/MessageID")),
        "identifier": [identifier] if identifier else [],
        "status": "requested", "intent": "order", "code": ABORT,
        "focus": focus, "for": literal("Patient", who.patient["id"])
        if orders.named_as_written(who.patient) else None,
        "authoredOn": sent, "lastModified": sent,
        "requester": literal("Practitioner", who.prescriber["id"]),
        "owner": literal("Organization", who.pharmacy["id"]) if who.pharmacy else None,
    })


def _response(message: ScriptMessage) -> dict:
    """The CancelRx's Task decided: a PATCH of what the response says (status, its
    Response, reason, note, time), so the Task keeps what the CancelRx wrote."""
    relates, answer = orders.answered(message)
    status = RESPONSE_STATUS.get(answer.kind, "rejected" if "Denied" in answer.kind
                                 else "completed")
    sent = orders.instant(message.value("Header/SentTime"))
    task = f"Task/{orders.task_id(message.value('Header/To'), relates)}"
    decided = patch_entry(task, set_ops({
        "status": status,
        "statusReason": answer.reason() if status == "rejected" else None,
        "businessStatus": answer.business_status("CancelRxResponse"),
        "lastModified": sent,
        "note": [{"text": answer.note}] if answer.note else None}))
    return with_entries(transaction([], sent), [decided])

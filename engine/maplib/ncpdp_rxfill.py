"""The logic of ncpdp-rxfill-to-fhir@1 and @2 (a SCRIPT RxFill as a FHIR
MedicationDispense Bundle), importable so ncpdp-to-fhir can dispatch to it; `version`
picks a released version's rules. The choices a receiver notices are documented in
mappings/ncpdp-rxfill-to-fhir/v<N>.py.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from engine.errors import MappingError
from engine.formats.ncpdp.message import ScriptMessage
from engine.maplib import ncpdp_fhir as ncpdp
from engine.maplib import ncpdp_orders as orders
from engine.maplib.fhir import compact, reference, resource_id, transaction
from engine.maplib.fhir_patch import held_by_server

FILL_STATUS = {"Dispensed": "completed", "PartiallyDispensed": "in-progress",
               "NotDispensed": "declined", "Transferred": "cancelled"}
HANDED_OVER = frozenset({"completed", "in-progress"})


def rxfill_to_fhir(message: ScriptMessage, version: int = 1) -> dict:
    """An RxFill as the MedicationDispense it reports, by ncpdp-rxfill-to-fhir
    @<version>'s rules."""
    if message.message_type != "RxFill":
        raise MappingError(f"the message is a {message.message_type or 'nothing'}, "
                           "not an RxFill", field="Body")
    body = message.body
    assert body is not None
    fill = body.find("FillStatus")
    choice = next((c for c in fill if isinstance(c.tag, str)), None) \
        if fill is not None else None
    if choice is None or choice.tag not in FILL_STATUS:
        raise MappingError("the RxFill holds no Dispensed, PartiallyDispensed, "
                           "NotDispensed or Transferred", field="RxFill/FillStatus")
    who = orders.parties(body, orders.assigner(message, version))
    if who.patient is None:
        raise MappingError("the RxFill has no patient with a name", field="RxFill/Patient")
    prescribed = body.find("MedicationPrescribed")
    dispensed = body.find("MedicationDispensed")
    drug = dispensed if dispensed is not None else prescribed
    medication = ncpdp.medication(drug)
    if drug is None or medication is None:
        raise MappingError("the RxFill names no dispensed or prescribed drug",
                           field="RxFill/MedicationDispensed")
    status = FILL_STATUS[choice.tag]
    note = ncpdp.text(choice, "Note")
    filled = ncpdp.date_of(drug.find("LastFillDate"))
    handed = (ncpdp.date_of(drug.find("DeliveredOnDate")) or filled) \
        if status in HANDED_OVER else None
    authorizing = orders.order_reference_v2(message, relates_names_order=True) \
        if version >= 2 else orders.order_reference(
            orders.order_number(message, relates_names_order=True), who.prescriber)
    dispense = compact({
        "resourceType": "MedicationDispense",
        "id": _dispense_id(message, who.pharmacy, filled,
                           ncpdp.text(drug, "Quantity/Value")),
        "identifier": _identifiers(message),
        "status": status,
        "statusReasonCodeableConcept": {"text": note or choice.tag}
        if status in ("declined", "cancelled") else None,
        "medicationReference": reference(medication),
        "subject": reference(who.patient)
        if version < 2 or orders.named_as_written(who.patient) else None,
        "performer": [{"actor": reference(who.pharmacy)}] if who.pharmacy else [],
        "authorizingPrescription": [authorizing] if authorizing else [],
        "quantity": ncpdp.quantity(drug.find("Quantity")),
        "daysSupply": ncpdp.days(ncpdp.text(drug, "DaysSupply")),
        "whenPrepared": filled, "whenHandedOver": handed,
        "note": [{"text": note}] if note and status not in ("declined", "cancelled")
        else [],
        "dosageInstruction": [d for d in [ncpdp.dosage(drug.find("Sig"))] if d],
        "substitution": _substitution(prescribed, dispensed),
    })
    sent = orders.instant(message.value("Header/SentTime"))
    written = [dispense, *who.resources(), medication]
    if version >= 2:  # the NewRx wrote the patient and prescriber: name, do not rewrite
        written = held_by_server(written, who.patient, who.prescriber)
    return transaction(written, sent)


def _dispense_id(message: ScriptMessage, pharmacy: dict[str, Any] | None,
                 filled: str | None, amount: str) -> str:
    number = message.value("Header/RxReferenceNumber")
    scope = (pharmacy or {}).get("id", "")
    if number:
        key = {"system": orders.RX_REFERENCE, "value": f"{scope}|{number}|{filled or ''}|{amount}"}
    else:
        key = {"system": orders.MESSAGE_ID,
               "value": f"{message.value('Header/From')}|{message.value('Header/MessageID')}"}
    return resource_id("MedicationDispense", ncpdp.SCOPE, key)


def _identifiers(message: ScriptMessage) -> list[dict[str, Any]]:
    number = message.value("Header/RxReferenceNumber")
    out = [{"system": orders.RX_REFERENCE, "value": number}] if number else []
    identifier = orders.message_identifier(message)
    return out + ([identifier] if identifier else [])


def _substitution(prescribed: ET.Element | None, dispensed: ET.Element | None
                  ) -> dict[str, Any] | None:
    codes = [{(c["system"], c["code"]) for c in ncpdp.drug_codings(d)}
             for d in (prescribed, dispensed)]
    if not codes[0] or not codes[1]:
        return None
    return {"wasSubstituted": not codes[0] & codes[1]}

"""ncpdp-rxfill-to-fhir@1: an NCPDP SCRIPT RxFill (the pharmacy telling the prescriber
what became of a prescription) as a FHIR R4 transaction Bundle: MedicationDispense,
Patient, Organization (the pharmacy), Practitioner (the prescriber) and Medication.

- status by FillStatus: Dispensed -> completed; PartiallyDispensed -> in-progress (part
  of the quantity was handed over, the rest is still owed); NotDispensed -> declined
  (e.g. not picked up, returned to stock); Transferred -> cancelled (this pharmacy will
  not dispense it: another one will). The FillStatus Note is statusReason's text for
  declined and cancelled, and a note otherwise. An RxFill without a FillStatus choice
  fails naming RxFill/FillStatus.
- id: the pharmacy's prescription number (Header/RxReferenceNumber), the fill date
  (LastFillDate) and the quantity dispensed, within the pharmacy: a NotDispensed sent
  after a Dispensed for the same fill (returned to stock) updates that dispense, while
  a partial fill and the rest handed over later are two dispenses. Without
  RxReferenceNumber, the RxFill's own MessageID within its sender. identifier RxReferenceNumber
  (urn:conduit:id:ncpdp:RxReferenceNumber) and the MessageID.
- authorizingPrescription: the order's MedicationRequest, id as ncpdp-newrx-to-fhir@1
  gave it (Header/PrescriberOrderNumber within the prescriber, else RelatesToMessageID:
  the NewRx's MessageID), a literal `MedicationRequest/<id>` reference (it is not in
  this Bundle: a server enforcing references needs the NewRx first) with the order
  number as identifier; a logical reference by order number alone when the RxFill
  names no prescriber; left out when it names no order.
- medication: MedicationDispensed (else MedicationPrescribed) as a Medication
  (`ncpdp_fhir.medication`); quantity and daysSupply (UCUM d) from MedicationDispensed;
  dosageInstruction its Sig; substitution.wasSubstituted true when the dispensed
  drug's codes share none with the prescribed drug's, false when they share one
  (left out when either is not coded).
- whenPrepared LastFillDate; whenHandedOver DeliveredOnDate, else LastFillDate, and only
  for Dispensed and PartiallyDispensed (nothing was handed over otherwise).
- performer the pharmacy; subject the patient (an RxFill without a patient with a name
  fails naming RxFill/Patient; without MedicationDispensed or MedicationPrescribed,
  naming RxFill/MedicationDispensed). Any other message type fails naming Body.
- Bundle.timestamp Header/SentTime with a time and zone. Not mapped: the
  MedicationPrescribed beyond its codes (the order is the NewRx's), Supervisor,
  benefits.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from engine.errors import MappingError
from engine.formats.ncpdp.message import ScriptMessage
from engine.maplib import ncpdp_fhir as ncpdp
from engine.maplib import ncpdp_orders as orders
from engine.maplib.fhir import compact, reference, resource_id, transaction
from engine.mapping import mapping

FILL_STATUS = {"Dispensed": "completed", "PartiallyDispensed": "in-progress",
               "NotDispensed": "declined", "Transferred": "cancelled"}
HANDED_OVER = frozenset({"completed", "in-progress"})


@mapping("ncpdp-rxfill-to-fhir@1", accepts="ncpdp", emits="application/fhir+json")
def rxfill_to_fhir(message: ScriptMessage) -> dict:
    """An RxFill as the MedicationDispense it reports."""
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
    who = orders.parties(body)
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
    authorizing = orders.order_reference(
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
        "subject": reference(who.patient),
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
    return transaction([dispense, *who.resources(), medication], sent)


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
